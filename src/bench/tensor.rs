//! Tensor-model benchmarks (wake word, voice activity, classifiers), two ways:
//!
//! - **burst**: inferences back to back after warm-up — load, first inference, latency
//!   percentiles, inferences/s: what TF Lite's benchmark_model and onnxruntime_perf_test give.
//! - **stream**: inferences paced at the input's real rate (a frame is due every `1/rate` s from
//!   the start) for a duration: deadline misses (a frame not done before the next is due), latency
//!   from the frame's arrival, the CPU time the duty cycle costs, energy per inference and battery
//!   %/h at that duty cycle, and windows of the run (misses, p99, temperature). This is the figure
//!   an always-on feature is judged on.
//!
//! A pipeline (openWakeWord's melspectrogram → embedding → head) runs its models in order per
//! frame; the frame's latency is the pipeline's. A stage's input is fed the previous stage's
//! output where one has its dtype and size, else what `--input` says, else seeded random values;
//! the result records which.
//!
//! Runs in one `odai worker` process (fresh: the load is cold to the runtime and peak memory is
//! this run's alone); timing, telemetry and energy use the same code as LLM cells.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::bench::stats;
use crate::bench::telemetry::{Energy, Sampler, Telemetry};
use crate::rng::Rng;
use crate::runtime::tensor::{self, InputSource, Signature, Tensor};
use crate::runtime::{self, LoadOptions, RuntimeInfo, RuntimeKind};
use crate::sysroot::Reading;

/// How the inferences are driven.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Mode {
    /// Back to back: `warmup` discarded, then `iterations` (or as many as fit `duration_s`).
    Burst {
        warmup: u32,
        iterations: Option<u64>,
        duration_s: Option<f64>,
    },
    /// Paced at `rate_hz` for `duration_s`, judged per `window_s`.
    Stream {
        rate_hz: f64,
        duration_s: f64,
        window_s: f64,
    },
}

/// One model of a pipeline and how to run it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageSpec {
    pub model: PathBuf,
    pub runtime: RuntimeKind,
}

/// A tensor benchmark, as a coordinator sends it to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorBenchSpec {
    pub protocol: u32,
    pub stages: Vec<StageSpec>,
    pub mode: Mode,
    pub threads: Option<u32>,
    /// ONNX Runtime's execution provider / TF Lite's delegate.
    pub provider: Option<String>,
    /// Libraries by runtime name (`onnxruntime`, `tflite`), from `--runtime-lib`.
    pub libraries: Vec<(String, PathBuf)>,
    /// `--input NAME=…`: where an input's values come from (any stage's input of that name).
    pub inputs: Vec<(String, InputSource)>,
    /// `--shape NAME=DIMS`.
    pub shapes: Vec<(String, Vec<usize>)>,
    pub seed: u64,
    pub cold: bool,
    pub root: Option<PathBuf>,
    pub sample_interval_s: Option<f64>,
}

/// An output of the last inference, summarised (for checking what the model said: a speech
/// probability, a wake-word score).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutputSummary {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// The first values (at most 8).
    pub head: Vec<f64>,
}

/// One stage as it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub model: String,
    /// The file's size and sha256: which model these figures are of.
    #[serde(default)]
    pub model_bytes: Option<u64>,
    #[serde(default)]
    pub model_sha256: Option<String>,
    #[serde(flatten)]
    pub ran: RuntimeInfo,
    pub load_ms: f64,
    pub signature: Signature,
    /// Each input and where its values came from: `random`, `constant 16000`, `file x.npy`,
    /// `pipe <stage>.<output>`.
    pub fed: Vec<(String, String)>,
    /// This stage's share of a frame: mean compute per inference.
    pub mean_ms: f64,
    pub outputs: Vec<OutputSummary>,
}

/// A window of a stream run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamWindow {
    pub start_s: f64,
    pub frames: u64,
    pub deadline_misses: u64,
    /// None for a window in which no frame finished (never a made-up zero).
    pub latency_ms_p99: Option<f64>,
    pub max_temp_c: Option<f64>,
}

/// What pacing at the input rate cost.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamFigures {
    pub rate_hz: f64,
    pub period_ms: f64,
    pub duration_s: f64,
    pub frames: u64,
    /// Frames not done before the next frame was due.
    pub deadline_misses: u64,
    pub deadline_miss_pct: f64,
    /// Latency from a frame's arrival (when it was due) to its result.
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_max: f64,
    /// The process's CPU time over the run's wall time, in % of one core (200 = two cores busy).
    pub cpu_duty_pct: f64,
    pub windows: Vec<StreamWindow>,
}

/// A tensor benchmark's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorResult {
    /// `1`: the keys of docs/results.md (`tensor`).
    #[serde(default = "schema_one")]
    pub schema_version: u32,
    /// The odai that measured (the worker's).
    #[serde(default)]
    pub odai_version: String,
    /// `burst` or `stream`.
    pub mode: String,
    pub stages: Vec<StageResult>,
    /// All stages loaded (each stage's is in `stages`).
    pub load_ms: f64,
    pub cold: bool,
    /// The first inference after load (pays lazy initialisation: kernel selection, packing).
    pub first_inference_ms: f64,
    /// Inferences measured (a pipeline's frame counts once).
    pub inferences: u64,
    pub inferences_per_s: f64,
    /// Compute latency per inference (a pipeline's whole frame).
    pub latency_ms_mean: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p90: f64,
    pub latency_ms_p99: f64,
    pub latency_ms_p999: f64,
    pub latency_ms_max: f64,
    pub threads: u32,
    /// Background contention during the run (`--load`), as the coordinator started it.
    #[serde(default = "no_load")]
    pub load: String,
    pub peak_rss_bytes: Option<u64>,
    pub stream: Option<StreamFigures>,
    pub energy: Option<Energy>,
    pub energy_j_per_inference: Option<Reading<f64>>,
    pub telemetry: Option<Telemetry>,
}

fn schema_one() -> u32 {
    1
}

fn no_load() -> String {
    "none".into()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

struct Stage {
    rt: Box<dyn runtime::Runtime>,
    name: String,
    /// Per input: a fixed tensor, frames of a recording, or the index of the previous stage's
    /// output to copy from.
    feeds: Vec<Feed>,
    fed: Vec<(String, String)>,
    load_ms: f64,
    total: Duration,
}

enum Feed {
    Fixed(Tensor),
    Frames(Vec<Tensor>),
    Pipe(usize, Tensor),
}

fn summarize(t: &Tensor) -> Option<OutputSummary> {
    let v = t.values_f64()?;
    if v.is_empty() {
        return None;
    }
    Some(OutputSummary {
        name: t.name.clone(),
        dtype: t.dtype.to_string(),
        shape: t.shape.clone(),
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        mean: v.iter().sum::<f64>() / v.len() as f64,
        head: v.iter().take(8).copied().collect(),
    })
}

/// Loads every stage and decides each input's feed.
fn load_stages(spec: &TensorBenchSpec) -> Result<Vec<Stage>, String> {
    let mut rng = Rng::new(spec.seed);
    let mut stages: Vec<Stage> = Vec::new();
    let mut prev_outputs: Vec<Tensor> = Vec::new();
    for (k, st) in spec.stages.iter().enumerate() {
        crate::engine::regular_file(&st.model)
            .map_err(|why| format!("{}: {why}", st.model.display()))?;
        let kind = match st.runtime {
            RuntimeKind::Auto => runtime::tensor_runtime_for(&st.model).ok_or_else(|| {
                format!(
                    "{}: not a tensor model by its name (.onnx, .tflite): give --runtime onnxruntime or tflite",
                    st.model.display()
                )
            })?,
            k => k,
        };
        if spec.cold {
            crate::platform::evict_from_page_cache(&st.model)?;
        }
        let opts = LoadOptions {
            threads: spec.threads,
            library: spec
                .libraries
                .iter()
                .find(|(r, _)| r == kind.name())
                .map(|(_, p)| p.clone()),
            provider: spec.provider.clone(),
            // Paced runs sleep between frames: spinning pool threads would burn the idle time
            // a duty-cycle measurement is about.
            no_spin: matches!(spec.mode, Mode::Stream { .. }),
            shapes: spec.shapes.clone(),
            ..Default::default()
        };
        let t = Instant::now();
        let rt = runtime::load(kind, &st.model, &opts).map_err(|e| e.to_string())?;
        let load_ms = ms(t.elapsed());
        let sig = rt
            .signature()
            .cloned()
            .ok_or_else(|| format!("{}: the runtime gave no signature", st.model.display()))?;
        let name = st
            .model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("stage{k}"));
        let mut feeds = Vec::new();
        let mut fed = Vec::new();
        let mut used = vec![false; prev_outputs.len()];
        for input in &sig.inputs {
            let given_shape = spec
                .shapes
                .iter()
                .find(|(n, _)| *n == input.name)
                .map(|(_, d)| d.as_slice());
            let shape = tensor::resolve_shape(input, given_shape)
                .map_err(|e| format!("{}: {e}", st.model.display()))?;
            let n: usize = shape.iter().product();
            let source = spec
                .inputs
                .iter()
                .find(|(n, _)| *n == input.name)
                .map(|(_, s)| s);
            let at = |e: String| format!("{}: input {}: {e}", st.model.display(), input.name);
            let (feed, how) = match source {
                Some(InputSource::Constant { value }) => (
                    Feed::Fixed(
                        Tensor::filled(&input.name, input.dtype, &shape, *value).map_err(at)?,
                    ),
                    format!("constant {value}"),
                ),
                Some(InputSource::Npy { path }) => {
                    let mut t = tensor::read_npy(path).map_err(at)?;
                    if t.dtype != input.dtype {
                        return Err(at(format!(
                            "{} holds {}, the input takes {}",
                            path.display(),
                            t.dtype,
                            input.dtype
                        )));
                    }
                    t.name = input.name.clone();
                    if t.shape == shape {
                        (Feed::Fixed(t), format!("file {}", path.display()))
                    } else if t.shape.len() == shape.len() + 1
                        && t.shape[1..] == shape[..]
                        && t.shape[0] > 0
                    {
                        let size = n * input.dtype.size().unwrap_or(1);
                        let frames = t
                            .data
                            .chunks_exact(size)
                            .map(|c| Tensor {
                                name: input.name.clone(),
                                dtype: t.dtype,
                                shape: shape.clone(),
                                data: c.to_vec(),
                            })
                            .collect::<Vec<_>>();
                        let how =
                            format!("file {} ({} frames, cycled)", path.display(), frames.len());
                        (Feed::Frames(frames), how)
                    } else {
                        return Err(at(format!(
                            "{} has shape {:?}; the input needs {shape:?} (or frames × {shape:?})",
                            path.display(),
                            t.shape
                        )));
                    }
                }
                _ => {
                    let pipe = prev_outputs
                        .iter()
                        .enumerate()
                        .position(|(i, o)| !used[i] && o.dtype == input.dtype && o.elements() == n);
                    match pipe {
                        Some(i) => {
                            used[i] = true;
                            let how =
                                format!("pipe {}.{}", stages[k - 1].name, prev_outputs[i].name);
                            let t = Tensor {
                                name: input.name.clone(),
                                dtype: input.dtype,
                                shape: shape.clone(),
                                data: prev_outputs[i].data.clone(),
                            };
                            (Feed::Pipe(i, t), how)
                        }
                        None => (
                            Feed::Fixed(
                                Tensor::random(&input.name, input.dtype, &shape, &mut rng)
                                    .map_err(at)?,
                            ),
                            "random".to_owned(),
                        ),
                    }
                }
            };
            feeds.push(feed);
            fed.push((input.name.clone(), how));
        }
        let mut stage = Stage {
            rt,
            name,
            feeds,
            fed,
            load_ms,
            total: Duration::ZERO,
        };
        // The outputs' dtypes and sizes, for the next stage's wiring: one inference (its first,
        // which run() times separately after every stage is loaded, runs again there).
        prev_outputs = if k + 1 < spec.stages.len() {
            let inputs = current_inputs(&stage, &[], 0);
            stage
                .rt
                .infer(&inputs)
                .map_err(|e| format!("{}: inference failed: {e}", st.model.display()))?
        } else {
            Vec::new()
        };
        stage.total = Duration::ZERO;
        stages.push(stage);
    }
    Ok(stages)
}

fn current_inputs(stage: &Stage, prev: &[Tensor], frame: u64) -> Vec<Tensor> {
    stage
        .feeds
        .iter()
        .map(|f| match f {
            Feed::Fixed(t) => t.clone(),
            Feed::Frames(v) => v[(frame % v.len() as u64) as usize].clone(),
            Feed::Pipe(i, t) => match prev.get(*i) {
                Some(o) => Tensor {
                    data: o.data.clone(),
                    ..t.clone()
                },
                None => t.clone(),
            },
        })
        .collect()
}

/// One frame through every stage; returns the last stage's outputs.
fn frame(stages: &mut [Stage], n: u64) -> Result<Vec<Tensor>, String> {
    let mut prev: Vec<Tensor> = Vec::new();
    for s in stages.iter_mut() {
        let inputs = current_inputs(s, &prev, n);
        let t = Instant::now();
        prev =
            s.rt.infer(&inputs)
                .map_err(|e| format!("{}: inference failed: {e}", s.name))?;
        s.total += t.elapsed();
    }
    Ok(prev)
}

/// Runs the benchmark in this process.
pub fn run(spec: &TensorBenchSpec) -> Result<TensorResult, String> {
    if spec.stages.is_empty() {
        return Err("no model to run".into());
    }
    let t = Instant::now();
    let mut stages = load_stages(spec)?;
    let load_ms = ms(t.elapsed());

    let t = Instant::now();
    let mut last = frame(&mut stages, 0)?;
    let first_inference_ms = ms(t.elapsed());
    for s in stages.iter_mut() {
        s.total = Duration::ZERO;
    }

    let mut latencies: Vec<f64> = Vec::new();
    let mut stream = None;
    let t0 = Instant::now();
    let sampler =
        crate::bench::worker::sampler_at(spec.root.as_deref(), spec.sample_interval_s, t0)?;
    let wall_s;
    match &spec.mode {
        Mode::Burst {
            warmup,
            iterations,
            duration_s,
        } => {
            for i in 0..*warmup {
                last = frame(&mut stages, 1 + i as u64)?;
            }
            for s in stages.iter_mut() {
                s.total = Duration::ZERO;
            }
            let start = Instant::now();
            let mut n = 0u64;
            loop {
                if let Some(it) = iterations
                    && n >= *it
                {
                    break;
                }
                if let Some(d) = duration_s
                    && start.elapsed().as_secs_f64() >= *d
                    && n > 0
                {
                    break;
                }
                let t = Instant::now();
                last = frame(&mut stages, n)?;
                latencies.push(ms(t.elapsed()));
                n += 1;
            }
            wall_s = start.elapsed().as_secs_f64();
        }
        Mode::Stream {
            rate_hz,
            duration_s,
            window_s,
        } => {
            let period = 1.0 / rate_hz;
            let frames = (duration_s * rate_hz).floor().max(1.0) as u64;
            let mut arrival_ms = Vec::with_capacity(frames as usize);
            let mut done_s = Vec::with_capacity(frames as usize);
            let mut misses = Vec::with_capacity(frames as usize);
            let cpu0 = crate::platform::process_cpu_s()?;
            let start = Instant::now();
            for k in 0..frames {
                let due = Duration::from_secs_f64(k as f64 * period);
                let now = start.elapsed();
                if due > now {
                    // The next frame has not arrived yet: the device idles, as it would between
                    // audio buffers.
                    std::thread::sleep(due - now);
                }
                let t = Instant::now();
                last = frame(&mut stages, k)?;
                latencies.push(ms(t.elapsed()));
                let end = start.elapsed();
                arrival_ms.push(ms(end.saturating_sub(due)));
                done_s.push(end.as_secs_f64());
                misses.push(end.as_secs_f64() > (k + 1) as f64 * period);
            }
            // The run lasts until the last frame's period is over (its idle time counts).
            let end = start
                .elapsed()
                .max(Duration::from_secs_f64(frames as f64 * period));
            wall_s = end.as_secs_f64();
            let cpu_s = crate::platform::process_cpu_s()? - cpu0;
            let missed = misses.iter().filter(|&&m| m).count() as u64;
            let mut sorted = arrival_ms.clone();
            sorted.sort_by(f64::total_cmp);
            let mut windows = Vec::new();
            let mut w0 = 0.0;
            while w0 < wall_s {
                let w1 = w0 + window_s;
                let idx: Vec<usize> = (0..frames as usize)
                    .filter(|&i| done_s[i] >= w0 && done_s[i] < w1)
                    .collect();
                let mut lat: Vec<f64> = idx.iter().map(|&i| arrival_ms[i]).collect();
                lat.sort_by(f64::total_cmp);
                windows.push(StreamWindow {
                    start_s: w0,
                    frames: idx.len() as u64,
                    deadline_misses: idx.iter().filter(|&&i| misses[i]).count() as u64,
                    latency_ms_p99: (!lat.is_empty()).then(|| stats::percentile_sorted(&lat, 99.0)),
                    max_temp_c: None,
                });
                w0 = w1;
            }
            stream = Some(StreamFigures {
                rate_hz: *rate_hz,
                period_ms: period * 1e3,
                duration_s: wall_s,
                frames,
                deadline_misses: missed,
                deadline_miss_pct: 100.0 * missed as f64 / frames as f64,
                latency_ms_p50: stats::percentile_sorted(&sorted, 50.0),
                latency_ms_p99: stats::percentile_sorted(&sorted, 99.0),
                latency_ms_max: *sorted.last().unwrap_or(&0.0),
                cpu_duty_pct: 100.0 * cpu_s / wall_s,
                windows,
            });
        }
    }
    let telemetry = sampler.map(Sampler::finish);
    if let (Some(s), Some(tel), Mode::Stream { window_s, .. }) =
        (stream.as_mut(), telemetry.as_ref(), &spec.mode)
    {
        // Sample times are since t0, which the stream's start follows within microseconds.
        for w in s.windows.iter_mut() {
            w.max_temp_c = tel
                .samples
                .iter()
                .filter(|x| x.t_s >= w.start_s && x.t_s < w.start_s + window_s)
                .filter_map(|x| x.max_temp_c)
                .reduce(f64::max);
        }
    }
    let inferences = latencies.len() as u64;
    if inferences == 0 {
        return Err(
            "no inference was timed: nothing to measure (raise --iterations or --duration)".into(),
        );
    }
    let mut sorted = latencies.clone();
    sorted.sort_by(f64::total_cmp);
    let pct = |q: f64| stats::percentile_sorted(&sorted, q);
    let energy = telemetry.as_ref().map(Telemetry::energy);
    let energy_j_per_inference = energy
        .as_ref()
        .map(|e| e.energy_j.clone().map(|j| j / inferences as f64));
    let threads = spec.threads.unwrap_or_else(|| stages[0].rt.threads());
    let stage_results = stages
        .iter()
        .enumerate()
        .map(|(i, s)| StageResult {
            model: spec.stages[i].model.display().to_string(),
            model_bytes: std::fs::metadata(&spec.stages[i].model)
                .ok()
                .map(|m| m.len()),
            model_sha256: crate::engine::fingerprint::sha256_file(&spec.stages[i].model).ok(),
            ran: s.rt.info(),
            load_ms: s.load_ms,
            signature: s.rt.signature().cloned().unwrap_or_default(),
            fed: s.fed.clone(),
            mean_ms: ms(s.total) / inferences as f64,
            outputs: if i + 1 == stages.len() {
                last.iter().filter_map(summarize).collect()
            } else {
                Vec::new()
            },
        })
        .collect();
    Ok(TensorResult {
        schema_version: 1,
        odai_version: env!("CARGO_PKG_VERSION").into(),
        mode: match spec.mode {
            Mode::Burst { .. } => "burst".into(),
            Mode::Stream { .. } => "stream".into(),
        },
        stages: stage_results,
        load_ms,
        cold: spec.cold,
        first_inference_ms,
        inferences,
        inferences_per_s: inferences as f64 / wall_s,
        latency_ms_mean: latencies.iter().sum::<f64>() / inferences as f64,
        latency_ms_p50: pct(50.0),
        latency_ms_p90: pct(90.0),
        latency_ms_p99: pct(99.0),
        latency_ms_p999: pct(99.9),
        latency_ms_max: *sorted.last().unwrap(),
        threads,
        load: no_load(),
        peak_rss_bytes: Some(crate::platform::peak_rss_bytes()?),
        stream,
        energy,
        energy_j_per_inference,
        telemetry,
    })
}

//! `odai bench` on a tensor model (.onnx, .tflite): builds a [`TensorBenchSpec`] from the
//! command line, runs it in a fresh worker (`bench::run_tensor`), and renders the figures as
//! text, JSON or CSV.

use std::path::PathBuf;

use anyhow::Context;

use super::bench::invalid;
use crate::bench::tensor::{Mode, StageSpec, TensorBenchSpec, TensorResult};
use crate::cli::{BenchArgs, BenchFormat, TensorMode};
use crate::error::Error;
use crate::exit;
use crate::protocol::PROTOCOL_VERSION;
use crate::runtime::{self, RuntimeKind, tensor};
use crate::sysroot::{Reading, SysRoot};
use crate::units;

/// Whether `odai bench` was asked about a tensor model: by `--runtime`, or by the file's name.
pub fn wanted(a: &BenchArgs) -> bool {
    a.runtime
        .iter()
        .any(|r| matches!(r, RuntimeKind::Onnxruntime | RuntimeKind::Tflite))
        || (a.runtime.iter().all(|r| *r == RuntimeKind::Auto)
            && a.endpoint.is_none()
            && a.model
                .iter()
                .any(|m| runtime::tensor_runtime_for(m).is_some()))
}

/// Stream runs last a minute unless told.
const DEFAULT_STREAM_S: f64 = 60.0;
const DEFAULT_BURST_ITERATIONS: u64 = 1000;
const DEFAULT_BURST_WARMUP: u32 = 10;

pub struct Config {
    pub spec: TensorBenchSpec,
    pub load: crate::bench::load::Load,
    pub format: BenchFormat,
    /// `--export-FORMAT FILE` and `--out FILE`.
    pub exports: Vec<(BenchFormat, PathBuf)>,
}

impl Config {
    pub fn new(root: SysRoot, a: &BenchArgs) -> anyhow::Result<Self> {
        super::bench::check_exports(&super::bench::exports(a))?;
        if !a.synthetic.is_empty() {
            return Err(invalid(
                "--synthetic",
                "synthetic models are GGUF language models; a tensor model needs --model FILE"
                    .into(),
            ));
        }
        // Lists are axes of language-model cells; a tensor model's cells are `[[tensor]]`
        // entries of a matrix file.
        for (len, flag) in [
            (a.model.len(), "--model"),
            (a.threads.len(), "--threads"),
            (a.runtime.len(), "--runtime"),
            (a.prompt_tokens.len(), "-p"),
            (a.gen_tokens.len(), "-n"),
        ] {
            if len > 1 {
                return Err(invalid(
                    flag,
                    "takes one value for a tensor model: several models, thread counts or \
                     providers go in a matrix file's [[tensor]] entries (odai matrix run)"
                        .into(),
                ));
            }
        }
        if matches!(a.format, BenchFormat::Md | BenchFormat::Sql)
            || !a.export_markdown.is_empty()
            || !a.export_sql.is_empty()
        {
            return Err(invalid(
                "-o md|sql",
                "llama-bench's table and the results database are for language models; a \
                 tensor model's figures are text, csv, json or jsonl"
                    .into(),
            ));
        }
        let model = a.model[0].clone();
        // Flags of language-model cells that mean nothing here are refused, not ignored.
        for (given, flag) in [
            (a.sustained.is_some(), "--sustained"),
            (a.token_deadline_ms.is_some(), "--token-deadline-ms"),
            (!a.gpu_layers.is_empty(), "--gpu-layers"),
            (!a.pg.is_empty(), "--pg"),
            (a.idle_baseline.is_some(), "--idle-baseline"),
            (a.reps.is_some(), "--reps"),
            (a.cooldown.is_some(), "--cooldown"),
            (a.cooldown_to.is_some(), "--cooldown-to"),
        ] {
            if given {
                return Err(invalid(
                    flag,
                    "applies to language models; a tensor model runs once in one process: \
                     --iterations N or --duration D (burst), --mode stream --rate HZ --duration D"
                        .into(),
                ));
            }
        }
        for m in std::iter::once(&model).chain(&a.then) {
            if !m.is_file() {
                return Err(Error::Model {
                    file: m.clone(),
                    problem: "no such model file".into(),
                }
                .into());
            }
        }
        let first = match a.runtime[0] {
            RuntimeKind::Auto => runtime::tensor_runtime_for(&model).unwrap_or(RuntimeKind::Auto),
            k => k,
        };
        let mut stages = vec![StageSpec {
            model: model.clone(),
            runtime: first,
        }];
        for m in &a.then {
            let runtime = runtime::tensor_runtime_for(m).ok_or_else(|| {
                invalid(
                    "--then",
                    format!(
                        "{}: not a tensor model by its name (.onnx, .tflite)",
                        m.display()
                    ),
                )
            })?;
            stages.push(StageSpec {
                model: m.clone(),
                runtime,
            });
        }
        let mut libraries = Vec::new();
        for l in &a.runtime_lib {
            let (rt, path) = match l.split_once('=') {
                Some((r, p)) => (
                    RuntimeKind::parse(r).map_err(|e| invalid("--runtime-lib", e))?,
                    PathBuf::from(p),
                ),
                None => (first, PathBuf::from(l)),
            };
            libraries.push((rt.name().to_owned(), path));
        }
        // A library named by path that is not there is found out here, before a worker starts:
        // a missing input (exit 3), said once.
        for st in &stages {
            let given = libraries
                .iter()
                .find(|(r, _)| r == st.runtime.name())
                .map(|(_, p)| p.as_path());
            let (path, hint) = match st.runtime {
                RuntimeKind::Onnxruntime => (
                    runtime::onnxruntime::library_path(given),
                    runtime::onnxruntime::INSTALL_HINT,
                ),
                RuntimeKind::Tflite => (
                    runtime::tflite::library_path(given),
                    runtime::tflite::INSTALL_HINT,
                ),
                _ => continue,
            };
            if path.components().count() > 1 && !path.exists() {
                let what = if st.runtime == RuntimeKind::Tflite {
                    "TensorFlow Lite"
                } else {
                    "ONNX Runtime"
                };
                return Err(Error::Runtime {
                    runtime: st.runtime.name().into(),
                    problem: format!("{what}'s library {} does not exist: {hint}", path.display()),
                }
                .into());
            }
        }
        let inputs = a
            .input
            .iter()
            .map(|s| tensor::parse_input_arg(s).map_err(|e| invalid("--input", e)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let shapes = a
            .shape
            .iter()
            .map(|s| tensor::parse_shape_arg(s).map_err(|e| invalid("--shape", e)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rate = match (a.rate, a.frame, a.sample_rate) {
            (Some(r), _, _) => Some(r),
            (None, Some(f), Some(sr)) => Some(sr as f64 / f as f64),
            _ => None,
        };
        let mode = match a.mode {
            TensorMode::Burst => {
                if rate.is_some() {
                    return Err(invalid(
                        "--rate",
                        "paces a stream run: add --mode stream".into(),
                    ));
                }
                Mode::Burst {
                    warmup: a.warmup.unwrap_or(DEFAULT_BURST_WARMUP),
                    iterations: match (a.iterations, a.duration) {
                        (Some(n), _) => Some(n),
                        (None, Some(_)) => None,
                        (None, None) => Some(DEFAULT_BURST_ITERATIONS),
                    },
                    duration_s: a.duration.map(|d| d.as_secs_f64()),
                }
            }
            TensorMode::Stream => {
                let rate_hz = rate.ok_or_else(|| {
                    invalid(
                        "--mode stream",
                        "give the input rate: --rate 31.25/s, or --frame 512 --sample-rate 16000"
                            .into(),
                    )
                })?;
                if a.iterations.is_some() {
                    return Err(invalid(
                        "--iterations",
                        "a stream run lasts --duration; --iterations counts a burst".into(),
                    ));
                }
                let duration_s = a.duration.map_or(DEFAULT_STREAM_S, |d| d.as_secs_f64());
                if duration_s * rate_hz < 1.0 {
                    return Err(invalid(
                        "--duration",
                        format!("{duration_s} s at {rate_hz}/s is not one frame"),
                    ));
                }
                Mode::Stream {
                    rate_hz,
                    duration_s,
                    window_s: a.window.as_secs_f64().min(duration_s),
                }
            }
        };
        let threads = Some(
            a.threads
                .first()
                .copied()
                .unwrap_or_else(|| crate::probe::cpu::probe(&root).default_threads().0),
        );
        Ok(Config {
            spec: TensorBenchSpec {
                protocol: PROTOCOL_VERSION,
                stages,
                mode,
                threads,
                provider: a.provider.clone(),
                libraries,
                inputs,
                shapes,
                seed: a.seed,
                cold: a.cold,
                root: (!root.is_live()).then(|| root.base().to_owned()),
                sample_interval_s: a.sample_interval.0.map(|d| d.as_secs_f64()),
            },
            load: crate::bench::load::Load::parse(&a.load)?,
            format: if a.out.is_some() {
                BenchFormat::Text
            } else {
                a.format
            },
            exports: super::bench::exports(a),
        })
    }
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let exe = std::env::current_exe().context("cannot find odai's own executable for workers")?;
    // Contention (`--load`) runs beside the worker for the whole run, as for language models.
    let contention =
        crate::bench::load::Contention::start(&exe, cfg.load).map_err(|e| anyhow::anyhow!(e))?;
    let mut result =
        crate::bench::run_tensor(&exe, &cfg.spec).map_err(|e| anyhow::anyhow!("{e}"))?;
    drop(contention);
    result.load = cfg.load.label();
    let render = |format: BenchFormat| -> anyhow::Result<String> {
        Ok(match format {
            BenchFormat::Text => render_text(&result),
            BenchFormat::Json => super::document(&result)?,
            BenchFormat::Jsonl => super::json_line(&result)?,
            BenchFormat::Csv => render_csv(&result)?,
            BenchFormat::Md | BenchFormat::Sql => unreachable!("refused in Config::new"),
        })
    };
    for (format, file) in &cfg.exports {
        super::bench::write_export(file, &render(*format)?)?;
    }
    super::print(&render(cfg.format)?)?;
    Ok(exit::SUCCESS)
}

fn show(r: &Reading<f64>, unit: &str) -> String {
    match r {
        Reading::Value(v) => format!("{v:.4} {unit}"),
        Reading::Unavailable(why) => format!("unavailable: {why}"),
    }
}

fn render_text(r: &TensorResult) -> String {
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<20} {v}\n"));
    for (i, st) in r.stages.iter().enumerate() {
        line(
            if i == 0 { "model" } else { "then" },
            format!(
                "{} on {} {} ({}), loaded in {:.1} ms",
                st.model, st.ran.runtime, st.ran.runtime_version, st.ran.backend, st.load_ms
            ),
        );
        for (input, spec) in st.fed.iter().zip(&st.signature.inputs) {
            line("  input", format!("{spec} ← {}", input.1));
        }
        for o in &st.signature.outputs {
            line("  output", o.to_string());
        }
        if r.stages.len() > 1 {
            line("  mean per frame", format!("{:.3} ms", st.mean_ms));
        }
    }
    line(
        "mode",
        format!(
            "{}, {} threads, background load {}",
            r.mode, r.threads, r.load
        ),
    );
    line(
        "load",
        format!(
            "{:.1} ms{}, first inference {:.3} ms",
            r.load_ms,
            if r.cold { " (cold)" } else { "" },
            r.first_inference_ms
        ),
    );
    line(
        "latency",
        format!(
            "p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}, {} inferences)",
            r.latency_ms_p50,
            r.latency_ms_p90,
            r.latency_ms_p99,
            r.latency_ms_p999,
            r.latency_ms_max,
            r.latency_ms_mean,
            r.inferences
        ),
    );
    line(
        "throughput",
        format!("{:.1} inferences/s", r.inferences_per_s),
    );
    if let Some(st) = &r.stream {
        line(
            "stream",
            format!(
                "{:.3}/s (a frame every {:.2} ms) for {:.0} s: {} frames",
                st.rate_hz, st.period_ms, st.duration_s, st.frames
            ),
        );
        line(
            "deadline misses",
            format!("{} ({:.3} %)", st.deadline_misses, st.deadline_miss_pct),
        );
        line(
            "from arrival",
            format!(
                "p50 {:.3} ms  p99 {:.3}  max {:.3}",
                st.latency_ms_p50, st.latency_ms_p99, st.latency_ms_max
            ),
        );
        line("CPU duty", format!("{:.2} % of one core", st.cpu_duty_pct));
    }
    if let Some(p) = r.peak_rss_bytes {
        line("peak memory", units::bytes(p));
    }
    if let Some(e) = &r.energy {
        line(
            "energy / inference",
            r.energy_j_per_inference
                .as_ref()
                .map_or("unavailable: not sampled".into(), |j| show(j, "J")),
        );
        line("battery", show(&e.battery_drain_pct_per_hour, "%/h"));
    }
    if let Some(last) = r.stages.last() {
        for o in &last.outputs {
            line(
                "last output",
                format!(
                    "{} {}{:?}: min {:.4} max {:.4} mean {:.4}",
                    o.name, o.dtype, o.shape, o.min, o.max, o.mean
                ),
            );
        }
    }
    s
}

/// One row: the figures a review sheet compares.
fn render_csv(r: &TensorResult) -> anyhow::Result<String> {
    let mut w = crate::report::csv::SafeCsv::new();
    w.write_record([
        "model",
        "runtime",
        "runtime_version",
        "backend",
        "mode",
        "threads",
        "load_ms",
        "first_inference_ms",
        "inferences",
        "inferences_per_s",
        "latency_ms_p50",
        "latency_ms_p90",
        "latency_ms_p99",
        "latency_ms_p999",
        "latency_ms_max",
        "rate_hz",
        "deadline_miss_pct",
        "cpu_duty_pct",
        "peak_rss_bytes",
    ])?;
    let st = &r.stages[0];
    let models: Vec<&str> = r.stages.iter().map(|s| s.model.as_str()).collect();
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    w.write_record([
        models.join(" → "),
        st.ran.runtime.clone(),
        st.ran.runtime_version.clone(),
        st.ran.backend.clone(),
        r.mode.clone(),
        r.threads.to_string(),
        r.load_ms.to_string(),
        r.first_inference_ms.to_string(),
        r.inferences.to_string(),
        r.inferences_per_s.to_string(),
        r.latency_ms_p50.to_string(),
        r.latency_ms_p90.to_string(),
        r.latency_ms_p99.to_string(),
        r.latency_ms_p999.to_string(),
        r.latency_ms_max.to_string(),
        opt(r.stream.as_ref().map(|s| s.rate_hz)),
        opt(r.stream.as_ref().map(|s| s.deadline_miss_pct)),
        opt(r.stream.as_ref().map(|s| s.cpu_duty_pct)),
        r.peak_rss_bytes.map_or(String::new(), |b| b.to_string()),
    ])?;
    Ok(String::from_utf8(w.into_inner()?)?)
}

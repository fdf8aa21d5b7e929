//! One benchmark cell on this device — memory fit first, then warm-up and measured repetitions in
//! fresh worker processes, a summary with confidence intervals and warnings, the roofline, energy,
//! and the provenance of every number. `odai bench` renders it; the matrix runner stores it.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::load::{Contention, Load};
use super::stats;
use super::sustained::Sustained;
use super::telemetry::Sampler;
use crate::engine::gguf::{Gguf, MemoryNeeds, ModelInfo};
use crate::engine::kv::{KvType, KvTypes};
use crate::engine::{fingerprint, synth};
use crate::error::Error;
use crate::probe::{self, bandwidth, thermal};
use crate::protocol::{CellSpec, EndpointSpec, PROTOCOL_VERSION, RepResult, SustainedSpec};
use crate::runtime::{RuntimeInfo, RuntimeKind};
use crate::sysroot::{Reading, SysRoot};
use crate::units;

pub enum Source {
    File(PathBuf),
    Synthetic(&'static synth::Preset, synth::Quant),
    /// A model behind an OpenAI-compatible endpoint (the `openai` runtime).
    Endpoint(EndpointSpec),
}

pub struct Config {
    pub root: SysRoot,
    pub source: Source,
    pub threads: Option<u32>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    /// Tokens already in the context before the prompt (`-d`).
    pub depth: u32,
    pub reps: u32,
    pub warmup: u32,
    pub cold: bool,
    pub token_deadline_ms: Option<f64>,
    pub force: bool,
    pub seed: u64,
    pub sustained: Option<SustainedSpec>,
    pub sample_interval_s: Option<f64>,
    pub load: Load,
    pub cooldown: Cooldown,
    pub idle_baseline: Option<Duration>,
    pub runtime: RuntimeKind,
    pub gpu_layers: Option<u32>,
    /// The KV cache's key and value types (`-ctk`/`-ctv`); `None`: the runtime's default.
    pub kv_types: Option<KvTypes>,
    /// Prompt batch, micro-batch and mapping (`-b`, `-ub`, `--mmap`).
    pub batching: crate::runtime::batching::Batching,
    /// An endpoint cell's time limit, repetitions together (a matrix's cell deadline): each
    /// request gets what is left, and none starts after it.
    pub deadline: Option<Duration>,
}

/// What to wait for before each repetition.
#[derive(Clone, Copy, Debug)]
pub enum Cooldown {
    None,
    For(Duration),
    /// Until the hottest zone is within this many °C of its idle temperature.
    ToWithin(f64),
}

impl Cooldown {
    fn label(&self) -> String {
        match self {
            Cooldown::None => "none".into(),
            Cooldown::For(d) => format!("{} s", d.as_secs_f64()),
            Cooldown::ToWithin(c) => format!("to within {c} °C of idle"),
        }
    }
}

/// The longest `--cooldown-to` waits before going on with a warning.
const COOLDOWN_LIMIT: Duration = Duration::from_secs(600);
/// How often `--cooldown-to` reads the thermal zones while the device cools down.
const COOLDOWN_POLL: Duration = Duration::from_secs(1);

/// What produced the numbers.
#[derive(Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub odai_version: String,
    /// The git commit odai was built from (`unknown` when built outside a checkout).
    #[serde(default)]
    pub git_commit: String,
    /// When the cell started, UTC (RFC 3339).
    #[serde(default)]
    pub started_utc: String,
    pub protocol: u32,
    /// The file's name, or the model name an endpoint serves.
    pub model_file: String,
    /// Null for an endpoint (the file is not here to measure), as are sha256, architecture,
    /// quant and parameters.
    pub model_bytes: Option<u64>,
    pub model_sha256: Option<String>,
    pub synthetic: Option<String>,
    pub architecture: Option<String>,
    pub quant: Option<String>,
    pub parameters: Option<u64>,
    /// The runtime that ran the reps (`odai`, `candle`, `llama.cpp`, `openai`), its version and
    /// backend, as the first measured rep reported them.
    #[serde(flatten)]
    pub ran: RuntimeInfo,
    /// What was asked for: `auto` picks odai's engine where it runs the model, else candle.
    #[serde(default)]
    pub runtime_requested: RuntimeKind,
    #[serde(default)]
    pub gpu_layers: Option<u32>,
    /// The KV cache's key and value types the runtime held, as llama-bench names them (null
    /// for an endpoint or a tensor model, and in results from before they were recorded).
    #[serde(default)]
    pub type_k: Option<KvType>,
    #[serde(default)]
    pub type_v: Option<KvType>,
    /// The prompt batch, micro-batch and mapping the runtime ran with, as llama-bench names
    /// them (null for an endpoint or a tensor model, and in results from before they were
    /// recorded).
    #[serde(default)]
    pub n_batch: Option<u32>,
    #[serde(default)]
    pub n_ubatch: Option<u32>,
    #[serde(default)]
    pub use_mmap: Option<bool>,
    /// The endpoint's URL (never its API key), for the `openai` runtime.
    #[serde(default)]
    pub endpoint: Option<String>,
    pub threads: u32,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    /// Tokens already in the context before the prompt (llama-bench's `-d`); 0 in results from
    /// before depth was measured.
    #[serde(default)]
    pub depth: u32,
    pub reps: u32,
    pub warmup: u32,
    pub cold: bool,
    pub seed: u64,
    pub token_deadline_ms: Option<f64>,
    pub simd: String,
    /// Background contention during the run (`--load`).
    pub load: String,
    pub cooldown: String,
    pub device: DeviceSummary,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct DeviceSummary {
    pub hostname: Reading<String>,
    pub cpu: Reading<String>,
    pub logical_cores: Reading<u32>,
    pub memory_total_bytes: Reading<u64>,
    pub headroom_bytes: Reading<u64>,
    pub class: Reading<String>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Roofline {
    pub triad_gb_s: f64,
    /// Bytes one decoded token reads: the weights it multiplies plus the KV cache at the run's
    /// mean decode context.
    pub bytes_per_token: u64,
    pub roofline_tps: f64,
    /// Mean decode tok/s as a share of the roofline.
    pub roofline_pct: f64,
}

/// A repetition that failed where failing is a measurement (an endpoint that errs, drops or
/// stalls): recorded with its reason, and the cell goes on.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FailedRep {
    /// 1-based among the measured repetitions.
    pub rep: u32,
    pub reason: String,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    pub provenance: Provenance,
    /// Null for an endpoint: its memory is not on this device.
    pub memory_needs: Option<MemoryNeeds>,
    /// Null for an endpoint: no local weights stream from this device's memory.
    pub roofline: Option<Roofline>,
    pub summary: std::collections::BTreeMap<String, stats::Summary>,
    pub warnings: Vec<String>,
    /// Where energy came from (`rapl:package-0`, `battery`…), over the measured repetitions.
    pub energy_source: Reading<String>,
    pub mean_power_w: Reading<f64>,
    pub energy_j_per_token: Reading<f64>,
    pub battery_drain_pct_per_hour: Reading<f64>,
    /// Power before the run, on the idle device (`--idle-baseline`).
    pub idle_power_w: Reading<f64>,
    /// mean_power_w − idle_power_w: what running the model costs.
    pub marginal_power_w: Reading<f64>,
    /// The first measured repetition's sustained run, with `--sustained`.
    pub sustained: Option<Sustained>,
    pub reps: Vec<RepResult>,
    /// The warm-up repetitions, reported apart (TF Lite's "Warmup (avg)"): what a first run
    /// after install or reboot costs, never in the summary.
    #[serde(default)]
    pub warmup_reps: Vec<RepResult>,
    /// The metrics over the warm-up repetitions, as `summary` is over the measured ones.
    #[serde(default)]
    pub warmup_summary: std::collections::BTreeMap<String, stats::Summary>,
    /// Measured repetitions that failed (endpoint cells only; a local runtime's failure fails
    /// the cell).
    #[serde(default)]
    pub failed_reps: Vec<FailedRep>,
}

/// Bump on an incompatible change to the report (docs/bench-json.md). 2: a repetition's prefill
/// or decode figures may be null (`-p 0`, `-n 0`); warm-ups reported apart; provenance's
/// `git_commit` and `started_utc`.
pub const SCHEMA_VERSION: u32 = 2;

/// Metric name, whether higher is better, and how to read it from a repetition.
pub type Metric = (&'static str, bool, fn(&RepResult) -> Option<f64>);

pub const METRICS: &[Metric] = &[
    ("load_ms", false, |r| Some(r.load_ms)),
    ("first_ttft_ms", false, |r| r.first_ttft_ms),
    ("ttft_ms", false, |r| r.ttft_ms),
    ("prefill_tps", true, |r| r.prefill_tps),
    ("decode_tps", true, |r| r.decode_tps),
    ("pg_tps", true, pg_tps),
    ("token_ms_p50", false, |r| r.token_ms_p50),
    ("token_ms_p90", false, |r| r.token_ms_p90),
    ("token_ms_p95", false, |r| r.token_ms_p95),
    ("token_ms_p99", false, |r| r.token_ms_p99),
    ("token_ms_p999", false, |r| r.token_ms_p999),
    ("token_ms_max", false, |r| r.token_ms_max),
    ("deadline_miss_pct", false, |r| r.deadline_miss_pct),
    ("peak_rss_bytes", false, |r| {
        r.peak_rss_bytes.map(|b| b as f64)
    }),
    ("peak_rss_anon_bytes", false, |r| {
        r.peak_rss_anon_bytes.map(|b| b as f64)
    }),
    ("peak_rss_file_bytes", false, |r| {
        r.peak_rss_file_bytes.map(|b| b as f64)
    }),
    ("cpu_user_s", false, |r| r.cpu_user_s),
    ("cpu_system_s", false, |r| r.cpu_system_s),
    ("mean_power_w", false, |r| {
        r.energy
            .as_ref()
            .and_then(|e| e.mean_power_w.value().copied())
    }),
    ("energy_j_per_token", false, |r| {
        r.energy_j_per_token
            .as_ref()
            .and_then(|e| e.value().copied())
    }),
];

/// llama-bench's `ppP+tgN` figure: prompt and generated tokens over the prefill and decode time
/// together (its `-pg`). Only for a repetition that measured both; the prompt length comes back
/// from prefill_tps × TTFT.
pub fn pg_tps(r: &RepResult) -> Option<f64> {
    let (ttft_ms, prefill_tps, decode_tps) = (r.ttft_ms?, r.prefill_tps?, r.decode_tps?);
    let prompt = prefill_tps * ttft_ms / 1e3;
    let generated = r.token_ms.len() as f64;
    if generated == 0.0 {
        return None;
    }
    Some((prompt + generated) / (ttft_ms / 1e3 + generated / decode_tps))
}

/// Where progress messages go instead of a terminal: a worker running a cell for a remote
/// coordinator sends them as protocol `progress` events.
static PROGRESS_SINK: std::sync::OnceLock<fn(&str)> = std::sync::OnceLock::new();

pub fn set_progress_sink(sink: fn(&str)) {
    let _ = PROGRESS_SINK.set(sink);
}

/// Told each time a repetition (warm-up or measured) ends: `odai bench`'s progress bar.
static REP_DONE_SINK: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

pub fn set_rep_done_sink(sink: fn()) {
    let _ = REP_DONE_SINK.set(sink);
}

pub fn progress(msg: &str) {
    if let Some(sink) = PROGRESS_SINK.get() {
        sink(msg);
    } else if std::io::stderr().is_terminal() {
        eprintln!("{msg}");
    }
}

/// What a cell runs: a local model file, or a model behind an endpoint.
enum Target {
    Local {
        path: PathBuf,
        info: Box<ModelInfo>,
        synthetic: Option<String>,
    },
    Endpoint(EndpointSpec),
}

/// Runs one benchmark cell on this device. The stages, in order: resolve the model, probe the
/// device, check the memory fit, choose threads, sample idle power, run the repetitions (each in
/// a fresh worker; an endpoint's from here), summarize with warnings, the roofline, energy.
pub fn run(cfg: &Config) -> anyhow::Result<Report> {
    cfg.runtime.available()?;
    let started_utc = units::utc_rfc3339(units::now_unix_s() as u64);
    let target = resolve(cfg)?;
    let device = probe::run(&cfg.root, &probe::Options::quick());
    let mut warnings = Vec::new();
    let needs = check_fit(cfg, &target, &device, &mut warnings)?;
    let threads = choose_threads(cfg, &device, &mut warnings);
    let spec = cell_spec(cfg, &target);
    let idle = idle_baseline(cfg);
    let (reps, warmup_reps, failed_reps) = measure(cfg, &spec, &target, threads, &mut warnings)?;
    let summary = summarize(cfg, &reps, &failed_reps, &mut warnings);
    let warmup_summary = summary_of(&warmup_reps);
    let roofline = match &target {
        Target::Local { info, .. } => Some(roofline(cfg, info, threads, &summary)),
        Target::Endpoint(_) => None,
    };
    let energy = energy_summary(&reps, &summary, cfg.sample_interval_s.is_some());
    let idle_power_w = match &idle {
        None => Reading::unavailable("not measured: pass --idle-baseline DURATION"),
        Some(t) => t.energy().mean_power_w,
    };
    let marginal_power_w = match (&idle_power_w, &energy.1) {
        (Reading::Value(i), Reading::Value(m)) => Reading::Value(m - i),
        (Reading::Unavailable(r), _) | (_, Reading::Unavailable(r)) => {
            Reading::Unavailable(r.clone())
        }
    };
    let sustained = reps.first().and_then(|r| r.sustained.clone());
    let mut provenance = provenance(cfg, &target, &device, threads, &reps)?;
    provenance.started_utc = started_utc;
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        provenance,
        memory_needs: needs,
        roofline,
        summary,
        warnings,
        energy_source: energy.0,
        mean_power_w: energy.1,
        energy_j_per_token: energy.2,
        battery_drain_pct_per_hour: energy.3,
        idle_power_w,
        marginal_power_w,
        sustained,
        reps,
        warmup_reps,
        warmup_summary,
        failed_reps,
    })
}

/// Stage 1: the model file (a synthetic one is written once into the cache) and its metadata,
/// checked against the cell's context; or the endpoint.
fn resolve(cfg: &Config) -> anyhow::Result<Target> {
    let (path, synthetic) = match &cfg.source {
        Source::Endpoint(e) => return Ok(Target::Endpoint(e.clone())),
        Source::File(p) => (p.clone(), None),
        Source::Synthetic(p, q) => {
            progress(&format!(
                "odai: preparing synthetic {}:{} (cached after the first run)",
                p.name,
                q.name()
            ));
            (
                synth::cached(p, *q)?,
                Some(format!("{}:{}", p.name, q.name())),
            )
        }
    };
    let g = Gguf::open(&path)?;
    let info = ModelInfo::from_gguf(&g)?;
    drop(g);
    let context = u64::from(cfg.prompt_tokens) + u64::from(cfg.gen_tokens);
    if let Some(max) = info.context_length
        && context > max
    {
        return Err(Error::Invalid {
            flag: "-p/-n".into(),
            problem: format!(
                "{} prompt + {} generated tokens exceed the model's context length {max}",
                cfg.prompt_tokens, cfg.gen_tokens
            ),
        }
        .into());
    }
    Ok(Target::Local {
        path,
        info: Box::new(info),
        synthetic,
    })
}

/// Stage 2: whether the model fits the device's memory headroom (refused unless `--force`).
fn check_fit(
    cfg: &Config,
    target: &Target,
    device: &probe::Probe,
    warnings: &mut Vec<String>,
) -> anyhow::Result<Option<MemoryNeeds>> {
    let Target::Local { path, info, .. } = target else {
        return Ok(None);
    };
    let context = u64::from(cfg.depth) + u64::from(cfg.prompt_tokens) + u64::from(cfg.gen_tokens);
    // As the runtime that will hold it holds it (tensor runtimes have no GGUF to size).
    let Some(holder) = crate::runtime::memory::Holder::for_kind(cfg.runtime, info) else {
        return Ok(None);
    };
    let needs = crate::runtime::memory::needs(
        info,
        holder,
        context,
        cfg.prompt_tokens.max(cfg.depth).into(),
        holder.kv_types(cfg.kv_types),
        &cfg.batching,
    );
    match &device.memory.headroom_bytes {
        Reading::Value(headroom) if needs.total_bytes > *headroom && !cfg.force => {
            return Err(Error::DoesNotFit {
                file: path.clone(),
                needs: units::bytes(needs.total_bytes),
                headroom: units::bytes(*headroom),
            }
            .into());
        }
        Reading::Value(_) => {}
        Reading::Unavailable(why) => warnings.push(format!(
            "memory fit not checked: the device's headroom is unavailable ({why})"
        )),
    }
    Ok(Some(needs))
}

/// Stage 3: `--threads`, else one per physical core the process may use, within the cgroup
/// quota ([`probe::cpu::Cpu::default_threads`] says why). More threads than allowed CPUs is
/// measured as asked, with a warning: the figures then include time-slicing.
fn choose_threads(cfg: &Config, device: &probe::Probe, warnings: &mut Vec<String>) -> u32 {
    let Some(t) = cfg.threads else {
        return device.cpu.default_threads().0;
    };
    if let Some(&allowed) = device.cpu.allowed_cores.value()
        && t > allowed
    {
        warnings.push(format!(
            "--threads {t} on {allowed} allowed CPU(s) ({}): threads share CPUs, so the figures \
             include time-slicing",
            device.cpu.allowed_cpus.value().map_or("?", String::as_str)
        ));
    }
    t
}

fn cell_spec(cfg: &Config, target: &Target) -> CellSpec {
    let (model, endpoint) = match target {
        Target::Local { path, .. } => (path.clone(), None),
        Target::Endpoint(e) => (PathBuf::new(), Some(e.clone())),
    };
    CellSpec {
        protocol: PROTOCOL_VERSION,
        model,
        prompt_tokens: cfg.prompt_tokens,
        gen_tokens: cfg.gen_tokens,
        depth: cfg.depth,
        seed: cfg.seed,
        cold: cfg.cold,
        token_deadline_ms: cfg.token_deadline_ms,
        root: (!cfg.root.is_live()).then(|| cfg.root.base().to_owned()),
        sample_interval_s: cfg.sample_interval_s,
        sustained: cfg.sustained.clone(),
        runtime: match target {
            Target::Endpoint(_) => RuntimeKind::Openai,
            Target::Local { .. } => cfg.runtime,
        },
        gpu_layers: cfg.gpu_layers,
        kv_types: cfg.kv_types,
        batching: cfg.batching,
        endpoint,
    }
}

/// Stage 4: the idle device's power, before any load (`--idle-baseline`).
fn idle_baseline(cfg: &Config) -> Option<super::telemetry::Telemetry> {
    let sample_every = Duration::from_secs_f64(cfg.sample_interval_s.unwrap_or(1.0));
    cfg.idle_baseline.map(|idle_sampling| {
        progress(&format!(
            "odai: sampling idle power for {:.0} s",
            idle_sampling.as_secs_f64()
        ));
        let sampler = Sampler::start(cfg.root.clone(), sample_every, Instant::now());
        std::thread::sleep(idle_sampling);
        sampler.finish()
    })
}

/// Stage 5: warm-up and measured repetitions under the cell's background load, each after its
/// cool-down. A local runtime's repetition runs in a fresh worker process (real thread counts,
/// its own peak memory, cold starts that are cold) and its failure fails the cell; an endpoint's
/// runs here, and a failed one is recorded (a failure rate is a figure of the endpoint) unless
/// every one failed.
fn measure(
    cfg: &Config,
    spec: &CellSpec,
    target: &Target,
    threads: u32,
    warnings: &mut Vec<String>,
) -> anyhow::Result<(Vec<RepResult>, Vec<RepResult>, Vec<FailedRep>)> {
    let exe = std::env::current_exe().context("cannot find odai's own executable for workers")?;
    let idle_temp_c = thermal::zones(&cfg.root)
        .iter()
        .filter_map(|z| z.temp_c.value().copied())
        .reduce(f64::max);
    let _contention = Contention::start(&exe, cfg.load).map_err(|e| anyhow::anyhow!(e))?;
    let what = match target {
        Target::Local { path, .. } => path.display().to_string(),
        Target::Endpoint(e) => format!("{} at {}", e.model, e.url),
    };
    let total = cfg.warmup + cfg.reps;
    let mut reps = Vec::with_capacity(cfg.reps as usize);
    let mut warmups = Vec::with_capacity(cfg.warmup as usize);
    let mut failed = Vec::new();
    let cell_started = Instant::now();
    for i in 0..total {
        if crate::interrupt::requested() {
            anyhow::bail!("{what}: interrupted");
        }
        if let Some(w) = cool_down(cfg, idle_temp_c) {
            warnings.push(w);
        }
        let measured = i >= cfg.warmup;
        let label = if measured {
            format!("rep {}/{}", i + 1 - cfg.warmup, cfg.reps)
        } else {
            format!("warmup {}/{}", i + 1, cfg.warmup)
        };
        progress(&format!("odai: {label}"));
        let result = match target {
            Target::Local { .. } => super::run_rep(&exe, spec, Some(threads)),
            Target::Endpoint(_) => match cfg.deadline {
                None => crate::runtime::openai::run_rep(spec),
                Some(d) => {
                    let left = d.saturating_sub(cell_started.elapsed());
                    if left.is_zero() {
                        anyhow::bail!(
                            "{what}: ran past the cell's deadline of {} before {label}",
                            units::duration(d)
                        );
                    }
                    let mut spec = spec.clone();
                    if let Some(e) = &mut spec.endpoint {
                        e.deadline_s = Some(left.as_secs_f64());
                    }
                    crate::runtime::openai::run_rep(&spec)
                }
            },
        };
        if let Some(done) = REP_DONE_SINK.get() {
            done();
        }
        if let Ok(r) = &result {
            for w in &r.warnings {
                if !warnings.contains(w) {
                    warnings.push(w.clone());
                }
            }
        }
        match (result, target) {
            (Ok(r), _) if measured => reps.push(r),
            (Ok(r), _) => warmups.push(r),
            (Err(e), Target::Endpoint(_)) => {
                progress(&format!("odai: {label} failed: {e}"));
                if measured {
                    failed.push(FailedRep {
                        rep: i + 1 - cfg.warmup,
                        reason: e,
                    });
                }
            }
            (Err(e), Target::Local { .. }) => anyhow::bail!("{what}: {label} failed: {e}"),
        }
    }
    if reps.is_empty()
        && let Some(last) = failed.last()
    {
        anyhow::bail!(
            "{what}: every repetition failed ({} of {}); the last: {}",
            failed.len(),
            cfg.reps,
            last.reason
        );
    }
    Ok((reps, warmups, failed))
}

/// Each metric's summary over `reps`, without warnings (the warm-up's).
fn summary_of(reps: &[RepResult]) -> std::collections::BTreeMap<String, stats::Summary> {
    METRICS
        .iter()
        .filter_map(|(name, _, get)| {
            let values = values_of(reps, *get);
            (!values.is_empty()).then(|| ((*name).to_owned(), stats::summarize(&values)))
        })
        .collect()
}

/// A metric's finite values over `reps`.
fn values_of(reps: &[RepResult], get: fn(&RepResult) -> Option<f64>) -> Vec<f64> {
    reps.iter()
        .filter_map(get)
        .filter(|v| v.is_finite())
        .collect()
}

/// Stage 6: each metric summarized over the measured repetitions, with the warnings a reader
/// needs (outliers, a slow first rep, too few reps, a noisy machine, failed reps).
fn summarize(
    cfg: &Config,
    reps: &[RepResult],
    failed: &[FailedRep],
    warnings: &mut Vec<String>,
) -> std::collections::BTreeMap<String, stats::Summary> {
    let mut summary = std::collections::BTreeMap::new();
    for (name, higher, get) in METRICS {
        let values = values_of(reps, *get);
        if values.is_empty() {
            continue;
        }
        warnings.extend(stats::warnings(name, &values, *higher));
        summary.insert((*name).to_owned(), stats::summarize(&values));
    }
    if cfg.reps < 3 && cfg.sustained.is_none() {
        warnings.push(format!(
            "only {} repetition(s): too few for a confidence interval to mean much (use --reps 5 or more)",
            cfg.reps
        ));
    }
    if let Some(s) = summary.get("decode_tps")
        && s.cov_pct > 10.0
    {
        warnings.push(format!(
            "decode_tps varies by {:.0} % between repetitions: the machine is noisy (other load, \
             thermal throttling); compare with care",
            s.cov_pct
        ));
    }
    if let Some(o) = reps.first().and_then(|r| r.offload.as_ref())
        && o.fell_back()
    {
        warnings.push(format!(
            "asked for {} GPU layers, but every layer ran on the CPU (devices: {}): {}",
            o.requested,
            o.devices.join(", "),
            // Results from before the runtime said why: the likeliest cause.
            o.fallback.as_deref().unwrap_or(
                "build odai with a GPU backend (--features llama-cpp-vulkan, llama-cpp-cuda or \
                 llama-cpp-metal)"
            )
        ));
    }
    if !failed.is_empty() {
        warnings.push(format!(
            "{} of {} repetition(s) failed (first: rep {}: {})",
            failed.len(),
            cfg.reps,
            failed[0].rep,
            failed[0].reason
        ));
    }
    summary
}

/// Stage 7: how close decode runs to what the device's memory bandwidth allows.
fn roofline(
    cfg: &Config,
    info: &ModelInfo,
    threads: u32,
    summary: &std::collections::BTreeMap<String, stats::Summary>,
) -> Roofline {
    let bw = bandwidth::measure_cached(
        &cfg.root,
        threads,
        5,
        &synth::cache_dir().join("bandwidth.jsonl"),
    );
    let mean_ctx =
        u64::from(cfg.depth) + u64::from(cfg.prompt_tokens) + u64::from(cfg.gen_tokens) / 2;
    let kv = crate::runtime::memory::kv_types_for(cfg.runtime, info, cfg.kv_types);
    let bytes_per_token = info.decode_weight_bytes + info.kv_cache_bytes(mean_ctx, kv);
    let roofline_tps = bw.triad_gb_s * 1e9 / bytes_per_token as f64;
    let decode_mean = summary.get("decode_tps").map_or(0.0, |s| s.mean);
    Roofline {
        triad_gb_s: bw.triad_gb_s,
        bytes_per_token,
        roofline_tps,
        roofline_pct: 100.0 * decode_mean / roofline_tps,
    }
}

/// Stage 8: what produced the numbers.
fn provenance(
    cfg: &Config,
    target: &Target,
    device: &probe::Probe,
    threads: u32,
    reps: &[RepResult],
) -> anyhow::Result<Provenance> {
    let first = reps.first();
    // What is known of the model: everything for a local file, its name for an endpoint.
    let mut p = Provenance {
        odai_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: crate::GIT_COMMIT.into(),
        started_utc: String::new(),
        protocol: PROTOCOL_VERSION,
        model_file: String::new(),
        model_bytes: None,
        model_sha256: None,
        synthetic: None,
        architecture: None,
        quant: None,
        parameters: None,
        ran: first.map(|r| r.ran.clone()).unwrap_or_default(),
        runtime_requested: cfg.runtime,
        gpu_layers: cfg.gpu_layers,
        type_k: first.and_then(|r| r.kv_types).map(|t| t.k),
        type_v: first.and_then(|r| r.kv_types).map(|t| t.v),
        n_batch: first.and_then(|r| r.batching).and_then(|b| b.batch),
        n_ubatch: first.and_then(|r| r.batching).and_then(|b| b.ubatch),
        use_mmap: first.and_then(|r| r.batching).and_then(|b| b.mmap),
        endpoint: None,
        threads: first.map_or(threads, |r| r.threads),
        prompt_tokens: cfg.prompt_tokens,
        gen_tokens: cfg.gen_tokens,
        depth: cfg.depth,
        reps: cfg.reps,
        warmup: cfg.warmup,
        cold: cfg.cold,
        seed: cfg.seed,
        token_deadline_ms: cfg.token_deadline_ms,
        load: cfg.load.label(),
        cooldown: cfg.cooldown.label(),
        simd: first.map_or_else(|| "unrecorded".into(), |r| r.simd.clone()),
        device: DeviceSummary {
            hostname: device.device.hostname.clone(),
            cpu: device.cpu.model_name.clone(),
            logical_cores: device.cpu.logical_cores.clone(),
            memory_total_bytes: device.memory.total_bytes.clone(),
            headroom_bytes: device.memory.headroom_bytes.clone(),
            class: device.class.clone().map(|c| c.id),
        },
    };
    match target {
        Target::Local {
            path,
            info,
            synthetic,
        } => {
            p.model_file = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            p.model_bytes = Some(info.file_size_bytes);
            p.model_sha256 = Some(fingerprint::sha256_cached(
                path,
                &synth::cache_dir().join("sha256.tsv"),
            )?);
            p.synthetic = synthetic.clone();
            p.architecture = Some(info.architecture.clone());
            p.quant = Some(info.quant.clone());
            p.parameters = Some(info.parameters);
        }
        Target::Endpoint(e) => {
            p.model_file = e.model.clone();
            p.endpoint = Some(e.url.clone());
        }
    }
    Ok(p)
}

/// Waits as `--cooldown` / `--cooldown-to` ask; a warning when the device did not cool enough.
fn cool_down(cfg: &Config, idle_temp_c: Option<f64>) -> Option<String> {
    match cfg.cooldown {
        Cooldown::None => None,
        Cooldown::For(cooldown) => {
            progress(&format!(
                "odai: cooling down for {:.0} s",
                cooldown.as_secs_f64()
            ));
            std::thread::sleep(cooldown);
            None
        }
        Cooldown::ToWithin(delta) => {
            let Some(idle) = idle_temp_c else {
                return Some(
                    "--cooldown-to: no thermal zone is readable, so the run did not wait".into(),
                );
            };
            let started = Instant::now();
            loop {
                let hottest = thermal::zones(&cfg.root)
                    .iter()
                    .filter_map(|z| z.temp_c.value().copied())
                    .reduce(f64::max);
                match hottest {
                    Some(t) if t <= idle + delta => return None,
                    _ if started.elapsed() >= COOLDOWN_LIMIT => {
                        return Some(format!(
                            "--cooldown-to: the device stayed above {:.1} °C for {} s; ran anyway",
                            idle + delta,
                            COOLDOWN_LIMIT.as_secs()
                        ));
                    }
                    _ => std::thread::sleep(COOLDOWN_POLL),
                }
            }
        }
    }
}

type EnergyFields = (Reading<String>, Reading<f64>, Reading<f64>, Reading<f64>);

/// The report's energy fields: means over repetitions where measured, else the first
/// repetition's reason.
fn energy_summary(
    reps: &[RepResult],
    summary: &std::collections::BTreeMap<String, stats::Summary>,
    sampled: bool,
) -> EnergyFields {
    let Some(e) = reps.first().and_then(|r| r.energy.clone()) else {
        let why = if sampled {
            "no telemetry came back from the worker"
        } else {
            "not measured: the sampler is off (--sample-interval off)"
        };
        return (
            Reading::unavailable(why),
            Reading::unavailable(why),
            Reading::unavailable(why),
            Reading::unavailable(why),
        );
    };
    let mean_or = |metric: &str, fallback: &Reading<f64>| match summary.get(metric) {
        Some(s) => Reading::Value(s.mean),
        None => fallback.clone(),
    };
    let per_token = reps
        .first()
        .and_then(|r| r.energy_j_per_token.clone())
        .unwrap_or_else(|| Reading::unavailable("not measured"));
    (
        e.energy_source.clone(),
        mean_or("mean_power_w", &e.mean_power_w),
        mean_or("energy_j_per_token", &per_token),
        e.battery_drain_pct_per_hour.clone(),
    )
}

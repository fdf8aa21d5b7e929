//! `odai bench`: one benchmark cell on this device — memory fit first, then warmup and measured
//! repetitions in fresh worker processes, a summary with confidence intervals and warnings, the
//! roofline, and the provenance of every number.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use crate::bench::load::{Contention, Load};
use crate::bench::sustained::Sustained;
use crate::bench::telemetry::Sampler;
use crate::bench::{self, stats};
use crate::cli::{BenchArgs, BenchFormat};
use crate::engine::gguf::{Gguf, MemoryNeeds, ModelInfo};
use crate::engine::{fingerprint, simd_path, synth};
use crate::error::Error;
use crate::exit;
use crate::probe::{self, bandwidth, class::Classes, gpu::Enumerate, thermal};
use crate::protocol::{CellSpec, PROTOCOL_VERSION, RepResult, SustainedSpec};
use crate::sysroot::{Reading, SysRoot};
use crate::units;

pub enum Source {
    File(PathBuf),
    Synthetic(&'static synth::Preset, synth::Quant),
}

pub struct Config {
    pub root: SysRoot,
    pub source: Source,
    pub threads: Option<u32>,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub reps: u32,
    pub warmup: u32,
    pub cold: bool,
    pub token_deadline_ms: Option<f64>,
    pub force: bool,
    pub seed: u64,
    pub format: BenchFormat,
    pub out: Option<PathBuf>,
    pub sustained: Option<SustainedSpec>,
    pub sample_interval_s: Option<f64>,
    pub load: Load,
    pub cooldown: Cooldown,
    pub idle_baseline: Option<Duration>,
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

impl Config {
    pub fn new(root: SysRoot, a: &BenchArgs) -> anyhow::Result<Self> {
        let source = match (&a.model, &a.synthetic) {
            (Some(m), None) => Source::File(m.clone()),
            (None, Some(s)) => {
                let (p, q) = synth::parse_spec(s, "--synthetic")?;
                Source::Synthetic(p, q)
            }
            _ => unreachable!("clap requires exactly one of --model and --synthetic"),
        };
        if let Some(d) = a.token_deadline_ms
            && !(d.is_finite() && d > 0.0)
        {
            return Err(Error::Invalid {
                flag: "--token-deadline-ms".into(),
                problem: format!("{d} is not a positive number of milliseconds"),
            }
            .into());
        }
        let sustained = a.sustained.map(|d| SustainedSpec {
            duration_s: d.as_secs_f64(),
            window_s: a.window.as_secs_f64(),
            checkpoints_s: a.checkpoints.iter().map(|c| c.as_secs_f64()).collect(),
        });
        if let Some(s) = &sustained
            && s.window_s > s.duration_s
        {
            return Err(Error::Invalid {
                flag: "--window".into(),
                problem: format!(
                    "a {} s window does not fit a {} s sustained run",
                    s.window_s, s.duration_s
                ),
            }
            .into());
        }
        let long = sustained.is_some();
        Ok(Config {
            root,
            source,
            threads: a.threads,
            prompt_tokens: a.prompt_tokens,
            gen_tokens: a.gen_tokens,
            reps: a.reps.unwrap_or(if long { 1 } else { 5 }),
            warmup: a.warmup.unwrap_or(if long { 0 } else { 1 }),
            sustained,
            sample_interval_s: a.sample_interval.0.map(|d| d.as_secs_f64()),
            load: Load::parse(&a.load)?,
            cooldown: match (a.cooldown, a.cooldown_to) {
                (Some(d), _) => Cooldown::For(d),
                (None, Some(c)) if c.is_finite() && c >= 0.0 => Cooldown::ToWithin(c),
                (None, Some(c)) => {
                    return Err(Error::Invalid {
                        flag: "--cooldown-to".into(),
                        problem: format!("{c} is not a temperature difference in °C"),
                    }
                    .into());
                }
                (None, None) => Cooldown::None,
            },
            idle_baseline: a.idle_baseline,
            cold: a.cold,
            token_deadline_ms: a.token_deadline_ms,
            force: a.force,
            seed: a.seed,
            format: a.format,
            out: a.out.clone(),
        })
    }
}

/// What produced the numbers.
#[derive(Serialize)]
struct Provenance {
    odai_version: String,
    protocol: u32,
    model_file: String,
    model_bytes: u64,
    model_sha256: String,
    synthetic: Option<String>,
    architecture: String,
    quant: String,
    parameters: u64,
    threads: u32,
    prompt_tokens: u32,
    gen_tokens: u32,
    reps: u32,
    warmup: u32,
    cold: bool,
    seed: u64,
    token_deadline_ms: Option<f64>,
    simd: String,
    /// Background contention during the run (`--load`).
    load: String,
    cooldown: String,
    device: DeviceSummary,
}

#[derive(Serialize)]
struct DeviceSummary {
    hostname: Reading<String>,
    cpu: Reading<String>,
    logical_cores: Reading<u32>,
    memory_total_bytes: Reading<u64>,
    headroom_bytes: Reading<u64>,
    class: Reading<String>,
}

#[derive(Serialize)]
struct Roofline {
    triad_gb_s: f64,
    /// Bytes one decoded token reads: the weights it multiplies plus the KV cache at the run's
    /// mean decode context.
    bytes_per_token: u64,
    roofline_tps: f64,
    /// Mean decode tok/s as a share of the roofline.
    roofline_pct: f64,
}

#[derive(Serialize)]
struct Report {
    schema_version: u32,
    provenance: Provenance,
    memory_needs: MemoryNeeds,
    roofline: Roofline,
    summary: std::collections::BTreeMap<&'static str, stats::Summary>,
    warnings: Vec<String>,
    /// Where energy came from (`rapl:package-0`, `battery`…), over the measured repetitions.
    energy_source: Reading<String>,
    mean_power_w: Reading<f64>,
    energy_j_per_token: Reading<f64>,
    battery_drain_pct_per_hour: Reading<f64>,
    /// Power before the run, on the idle device (`--idle-baseline`).
    idle_power_w: Reading<f64>,
    /// mean_power_w − idle_power_w: what running the model costs.
    marginal_power_w: Reading<f64>,
    /// The first measured repetition's sustained run, with `--sustained`.
    sustained: Option<Sustained>,
    reps: Vec<RepResult>,
}

/// Metric name, whether higher is better, and how to read it from a repetition.
type Metric = (&'static str, bool, fn(&RepResult) -> Option<f64>);

const METRICS: &[Metric] = &[
    ("load_ms", false, |r| Some(r.load_ms)),
    ("first_ttft_ms", false, |r| Some(r.first_ttft_ms)),
    ("ttft_ms", false, |r| Some(r.ttft_ms)),
    ("prefill_tps", true, |r| Some(r.prefill_tps)),
    ("decode_tps", true, |r| Some(r.decode_tps)),
    ("token_ms_p50", false, |r| Some(r.token_ms_p50)),
    ("token_ms_p90", false, |r| Some(r.token_ms_p90)),
    ("token_ms_p99", false, |r| Some(r.token_ms_p99)),
    ("deadline_miss_pct", false, |r| r.deadline_miss_pct),
    ("peak_rss_bytes", false, |r| Some(r.peak_rss_bytes as f64)),
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

fn progress(msg: &str) {
    if std::io::stderr().is_terminal() {
        eprintln!("{msg}");
    }
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let (path, synthetic) = match &cfg.source {
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

    let device = probe::run(
        &cfg.root,
        &probe::Options {
            gpu: Enumerate::Skip,
            classes: Classes::embedded(),
            bandwidth: false,
        },
    );
    let needs = info.memory_needs(context, cfg.prompt_tokens.into());
    let mut warnings = Vec::new();
    match &device.memory.headroom_bytes {
        Reading::Value(headroom) if needs.total_bytes > *headroom && !cfg.force => {
            return Err(Error::DoesNotFit {
                file: path,
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
    let threads = cfg.threads.unwrap_or_else(|| {
        let cores = device.cpu.logical_cores.value().copied().unwrap_or(1);
        match device.cpu.quota_cores.value() {
            Some(Some(q)) => (q.ceil() as u32).clamp(1, cores),
            _ => cores,
        }
    });

    let exe = std::env::current_exe().context("cannot find odai's own executable for workers")?;
    let spec = CellSpec {
        protocol: PROTOCOL_VERSION,
        model: path.clone(),
        prompt_tokens: cfg.prompt_tokens,
        gen_tokens: cfg.gen_tokens,
        seed: cfg.seed,
        cold: cfg.cold,
        token_deadline_ms: cfg.token_deadline_ms,
        root: (!cfg.root.is_live()).then(|| cfg.root.base().to_owned()),
        sample_interval_s: cfg.sample_interval_s,
        sustained: cfg.sustained.clone(),
    };
    let sample_every = Duration::from_secs_f64(cfg.sample_interval_s.unwrap_or(1.0));
    let idle = cfg.idle_baseline.map(|idle_sampling| {
        progress(&format!(
            "odai: sampling idle power for {:.0} s",
            idle_sampling.as_secs_f64()
        ));
        let sampler = Sampler::start(cfg.root.clone(), sample_every, Instant::now());
        std::thread::sleep(idle_sampling);
        sampler.finish()
    });
    let idle_temp_c = thermal::zones(&cfg.root)
        .iter()
        .filter_map(|z| z.temp_c.value().copied())
        .reduce(f64::max);
    let _contention = Contention::start(&exe, cfg.load).map_err(|e| anyhow::anyhow!(e))?;
    let total = cfg.warmup + cfg.reps;
    let mut reps = Vec::with_capacity(cfg.reps as usize);
    for i in 0..total {
        if let Some(w) = cool_down(cfg, idle_temp_c) {
            warnings.push(w);
        }
        let label = if i < cfg.warmup {
            format!("warmup {}/{}", i + 1, cfg.warmup)
        } else {
            format!("rep {}/{}", i + 1 - cfg.warmup, cfg.reps)
        };
        progress(&format!("odai: {label}"));
        let r = bench::run_rep(&exe, &spec, Some(threads))
            .map_err(|e| anyhow::anyhow!("{}: {label} failed: {e}", path.display()))?;
        if i >= cfg.warmup {
            reps.push(r);
        }
    }

    let mut summary = std::collections::BTreeMap::new();
    for (name, higher, get) in METRICS {
        let values: Vec<f64> = reps.iter().filter_map(get).collect();
        if values.is_empty() {
            continue;
        }
        warnings.extend(stats::warnings(name, &values, *higher));
        summary.insert(*name, stats::summarize(&values));
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

    let bw = bandwidth::measure(&cfg.root, threads, 5);
    let mean_ctx = u64::from(cfg.prompt_tokens) + u64::from(cfg.gen_tokens) / 2;
    let bytes_per_token = info.decode_weight_bytes + info.kv_cache_bytes(mean_ctx);
    let roofline_tps = bw.triad_gb_s * 1e9 / bytes_per_token as f64;
    let decode_mean = summary.get("decode_tps").map_or(0.0, |s| s.mean);

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
    let sha = fingerprint::sha256_cached(&path, &synth::cache_dir().join("sha256.tsv"))?;
    let report = Report {
        schema_version: 1,
        provenance: Provenance {
            odai_version: env!("CARGO_PKG_VERSION").into(),
            protocol: PROTOCOL_VERSION,
            model_file: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            model_bytes: info.file_size_bytes,
            model_sha256: sha,
            synthetic,
            architecture: info.architecture.clone(),
            quant: info.quant.clone(),
            parameters: info.parameters,
            threads: reps.first().map_or(threads, |r| r.threads),
            prompt_tokens: cfg.prompt_tokens,
            gen_tokens: cfg.gen_tokens,
            reps: cfg.reps,
            warmup: cfg.warmup,
            cold: cfg.cold,
            seed: cfg.seed,
            token_deadline_ms: cfg.token_deadline_ms,
            load: cfg.load.label(),
            cooldown: cfg.cooldown.label(),
            simd: reps
                .first()
                .map_or_else(|| simd_path().to_owned(), |r| r.simd.clone()),
            device: DeviceSummary {
                hostname: device.device.hostname.clone(),
                cpu: device.cpu.model_name.clone(),
                logical_cores: device.cpu.logical_cores.clone(),
                memory_total_bytes: device.memory.total_bytes.clone(),
                headroom_bytes: device.memory.headroom_bytes.clone(),
                class: device.class.clone().map(|c| c.id),
            },
        },
        memory_needs: needs,
        roofline: Roofline {
            triad_gb_s: bw.triad_gb_s,
            bytes_per_token,
            roofline_tps,
            roofline_pct: 100.0 * decode_mean / roofline_tps,
        },
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
    };

    let rendered = match cfg.format {
        BenchFormat::Text => render_text(&report),
        BenchFormat::Json => super::json_text(&report)?,
        BenchFormat::Csv => render_csv(&report)?,
    };
    if let Some(out) = &cfg.out {
        std::fs::write(out, &rendered)
            .with_context(|| format!("cannot write the result to {}", out.display()))?;
        super::print(&render_text(&report))?;
    } else {
        super::print(&rendered)?;
    }
    Ok(exit::SUCCESS)
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
    summary: &std::collections::BTreeMap<&'static str, stats::Summary>,
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

fn render_text(r: &Report) -> String {
    let p = &r.provenance;
    let mut s = format!(
        "{} ({} {}, {:.1} M params, {}) on {} threads, p={} n={}, {} reps + {} warmup, {} load, simd {}, background load {}\n\n",
        p.model_file,
        p.architecture,
        p.quant,
        p.parameters as f64 / 1e6,
        units::bytes(p.model_bytes),
        p.threads,
        p.prompt_tokens,
        p.gen_tokens,
        p.reps,
        p.warmup,
        if p.cold { "cold" } else { "warm" },
        p.simd,
        p.load,
    );
    s.push_str(&format!(
        "  {:<18} {:>12} {:>12} {:>12} {:>12} {:>12} {:>7}\n",
        "metric", "mean", "± ci95", "median", "min", "max", "cov %"
    ));
    for (name, sm) in METRICS
        .iter()
        .filter_map(|(n, _, _)| r.summary.get(n).map(|s| (n, s)))
    {
        let f = |v: f64| {
            if *name == "peak_rss_bytes" {
                units::bytes(v as u64)
            } else {
                format!("{v:.2}")
            }
        };
        s.push_str(&format!(
            "  {:<18} {:>12} {:>12} {:>12} {:>12} {:>12} {:>7.1}\n",
            name,
            f(sm.mean),
            f(sm.ci95_high - sm.mean),
            f(sm.median),
            f(sm.min),
            f(sm.max),
            sm.cov_pct
        ));
    }
    let rf = &r.roofline;
    s.push_str(&format!(
        "\n  roofline: {:.1} GB/s triad ÷ {} per token = {:.0} tok/s; decode runs at {:.0} % of it\n",
        rf.triad_gb_s,
        units::bytes(rf.bytes_per_token),
        rf.roofline_tps,
        rf.roofline_pct
    ));
    s.push_str(&format!(
        "  memory: needs {} at {} tokens (weights {}, KV cache {}, working {})\n",
        units::bytes(r.memory_needs.total_bytes),
        r.memory_needs.context,
        units::bytes(r.memory_needs.weights_bytes),
        units::bytes(r.memory_needs.kv_cache_bytes),
        units::bytes(r.memory_needs.working_bytes),
    ));
    let show = |v: &Reading<f64>, unit: &str| match v {
        Reading::Value(x) => format!("{x:.3} {unit}"),
        Reading::Unavailable(why) => format!("unavailable: {why}"),
    };
    match &r.energy_source {
        Reading::Value(src) => s.push_str(&format!(
            "  energy ({src}): mean power {}, {} per token\n",
            show(&r.mean_power_w, "W"),
            show(&r.energy_j_per_token, "J"),
        )),
        Reading::Unavailable(why) => s.push_str(&format!("  energy: unavailable: {why}\n")),
    }
    if let (Reading::Value(idle), Reading::Value(marginal)) = (&r.idle_power_w, &r.marginal_power_w)
    {
        s.push_str(&format!(
            "  idle power {idle:.3} W, so the model costs {marginal:.3} W on top\n"
        ));
    }
    s.push_str(&format!(
        "  battery drain: {}\n",
        show(&r.battery_drain_pct_per_hour, "%/h")
    ));
    if let Some(sus) = &r.sustained {
        s.push_str(&render_sustained(sus));
    }
    for w in &r.warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
    s
}

fn render_sustained(sus: &Sustained) -> String {
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |x| format!("{x:.1}{unit}"));
    let mut s = format!(
        "\n  sustained {:.0} s: {} tokens, {} context resets, {:.0} s windows\n",
        sus.duration_s, sus.tokens, sus.resets, sus.window_s
    );
    s.push_str(&format!(
        "  {:>8} {:>10} {:>10} {:>10}\n",
        "t_s", "decode_tps", "max_temp", "cpu_mhz"
    ));
    for w in &sus.windows {
        s.push_str(&format!(
            "  {:>8.1} {:>10.2} {:>10} {:>10}\n",
            w.t_s,
            w.decode_tps,
            opt(w.max_temp_c, " °C"),
            opt(w.cpu_mhz, "")
        ));
    }
    let reading = |r: &Reading<f64>, unit: &str| match r {
        Reading::Value(v) => format!("{v:.2}{unit}"),
        Reading::Unavailable(why) => format!("unavailable: {why}"),
    };
    s.push_str(&format!(
        "  stability (slowest ÷ fastest window): {}\n",
        reading(&sus.stability, "")
    ));
    for c in &sus.checkpoints {
        s.push_str(&format!(
            "  at {:.0} s: {:.2} tok/s = {:.0} % of the first minute, {}, {} MHz\n",
            c.at_s,
            c.decode_tps,
            100.0 * c.relative_to_first_minute,
            opt(c.max_temp_c, " °C"),
            opt(c.cpu_mhz, "")
        ));
    }
    s.push_str(&format!(
        "  first throttle event: {}; temperature rise {}; CPU frequency drop {}\n",
        match &sus.time_to_first_throttle_s {
            Reading::Value(Some(t)) => format!("after {t:.1} s"),
            Reading::Value(None) => "none".to_owned(),
            Reading::Unavailable(why) => format!("unavailable: {why}"),
        },
        reading(&sus.temp_rise_c, " °C"),
        reading(&sus.freq_drop_pct, " %"),
    ));
    s
}

/// One row per repetition, provenance in every row, so a spreadsheet needs nothing else; for a
/// sustained run, one row per window (the time series, ready for plots).
fn render_csv(r: &Report) -> anyhow::Result<String> {
    let p = &r.provenance;
    let mut w = csv::Writer::from_writer(Vec::new());
    if let Some(sus) = &r.sustained {
        w.write_record([
            "t_s",
            "decode_tps",
            "max_temp_c",
            "cpu_mhz",
            "model_file",
            "threads",
        ])?;
        let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
        for win in &sus.windows {
            w.write_record([
                format!("{:.3}", win.t_s),
                format!("{:.3}", win.decode_tps),
                opt(win.max_temp_c),
                opt(win.cpu_mhz),
                p.model_file.clone(),
                p.threads.to_string(),
            ])?;
        }
        return Ok(String::from_utf8(w.into_inner()?)?);
    }
    w.write_record([
        "rep",
        "model_file",
        "model_sha256",
        "architecture",
        "quant",
        "threads",
        "prompt_tokens",
        "gen_tokens",
        "cold",
        "simd",
        "load_ms",
        "first_ttft_ms",
        "ttft_ms",
        "prefill_tps",
        "decode_tps",
        "token_ms_p50",
        "token_ms_p90",
        "token_ms_p99",
        "deadline_miss_pct",
        "peak_rss_bytes",
        "roofline_tps",
        "odai_version",
    ])?;
    for (i, rep) in r.reps.iter().enumerate() {
        w.write_record([
            (i + 1).to_string(),
            p.model_file.clone(),
            p.model_sha256.clone(),
            p.architecture.clone(),
            p.quant.clone(),
            rep.threads.to_string(),
            p.prompt_tokens.to_string(),
            p.gen_tokens.to_string(),
            rep.cold.to_string(),
            rep.simd.clone(),
            format!("{:.3}", rep.load_ms),
            format!("{:.3}", rep.first_ttft_ms),
            format!("{:.3}", rep.ttft_ms),
            format!("{:.3}", rep.prefill_tps),
            format!("{:.3}", rep.decode_tps),
            format!("{:.3}", rep.token_ms_p50),
            format!("{:.3}", rep.token_ms_p90),
            format!("{:.3}", rep.token_ms_p99),
            rep.deadline_miss_pct
                .map_or(String::new(), |v| format!("{v:.2}")),
            rep.peak_rss_bytes.to_string(),
            format!("{:.3}", r.roofline.roofline_tps),
            p.odai_version.clone(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

//! `odai bench`: builds a cell's typed config from the command line, runs it
//! (`bench::cell::run`), and renders the report as text, JSON or CSV.

use anyhow::Context;

use crate::bench::cell::{Config, Cooldown, METRICS, Report, Source};
use crate::bench::load::Load;
use crate::bench::sustained::Sustained;
use crate::cli::{BenchArgs, BenchFormat};
use crate::engine::synth;
use crate::error::Error;
use crate::exit;
use crate::protocol::{EndpointSpec, SustainedSpec};
use crate::runtime::RuntimeKind;
use crate::sysroot::{Reading, SysRoot};
use crate::units;

impl Config {
    pub fn new(root: SysRoot, a: &BenchArgs) -> anyhow::Result<Self> {
        let runtime = match (a.runtime.runtime, &a.endpoint) {
            (RuntimeKind::Auto, Some(_)) | (RuntimeKind::Openai, Some(_)) => RuntimeKind::Openai,
            (RuntimeKind::Openai, None) => {
                return Err(Error::Invalid {
                    flag: "--runtime openai".into(),
                    problem: "give the endpoint: --endpoint URL --model NAME".into(),
                }
                .into());
            }
            (other, Some(_)) => {
                return Err(Error::Invalid {
                    flag: "--endpoint".into(),
                    problem: format!(
                        "an endpoint runs on the openai runtime, not {other} (drop --runtime)"
                    ),
                }
                .into());
            }
            (RuntimeKind::Auto, None) => RuntimeKind::from_env(),
            (other, None) => other,
        };
        runtime.available()?;
        let source = match (&a.model, &a.synthetic) {
            (Some(m), None) if runtime == RuntimeKind::Openai => Source::Endpoint(EndpointSpec {
                url: a.endpoint.clone().unwrap_or_default(),
                model: m.display().to_string(),
                api_key_env: a.api_key_env.clone(),
                timeout_s: a.request_timeout.as_secs_f64(),
            }),
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
            runtime,
            gpu_layers: a.runtime.gpu_layers,
        })
    }
}

pub fn execute(
    cfg: &Config,
    format: BenchFormat,
    out: Option<&std::path::Path>,
) -> anyhow::Result<i32> {
    let report = crate::bench::cell::run(cfg)?;
    let rendered = match format {
        BenchFormat::Text => render_text(&report),
        BenchFormat::Json => super::json_text(&report)?,
        BenchFormat::Csv => render_csv(&report)?,
    };
    if let Some(out) = out {
        std::fs::write(out, &rendered)
            .with_context(|| format!("cannot write the result to {}", out.display()))?;
        super::print(&render_text(&report))?;
    } else {
        super::print(&rendered)?;
    }
    Ok(exit::SUCCESS)
}

fn render_text(r: &Report) -> String {
    let p = &r.provenance;
    let what = match (&p.endpoint, &p.architecture, &p.quant) {
        (Some(url), _, _) => format!("{} at {url}", p.model_file),
        (None, arch, quant) => format!(
            "{} ({} {}, {:.1} M params, {})",
            p.model_file,
            arch.as_deref().unwrap_or("?"),
            quant.as_deref().unwrap_or("?"),
            p.parameters.unwrap_or(0) as f64 / 1e6,
            p.model_bytes.map_or_else(|| "?".into(), units::bytes),
        ),
    };
    let mut s = format!(
        "{what} on {} {} ({}), {} threads, p={} n={}, {} reps + {} warmup, {} load, background load {}\n\n",
        p.ran.runtime,
        p.ran.runtime_version,
        p.ran.backend,
        p.threads,
        p.prompt_tokens,
        p.gen_tokens,
        p.reps,
        p.warmup,
        if p.cold { "cold" } else { "warm" },
        p.load,
    );
    s.push_str(&format!(
        "  {:<18} {:>12} {:>12} {:>12} {:>12} {:>12} {:>7}\n",
        "metric", "mean", "± ci95", "median", "min", "max", "cov %"
    ));
    for (name, sm) in METRICS
        .iter()
        .filter_map(|(n, _, _)| r.summary.get(*n).map(|s| (n, s)))
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
    if let Some(rf) = &r.roofline {
        s.push_str(&format!(
            "\n  roofline: {:.1} GB/s triad ÷ {} per token = {:.0} tok/s; decode runs at {:.0} % of it\n",
            rf.triad_gb_s,
            units::bytes(rf.bytes_per_token),
            rf.roofline_tps,
            rf.roofline_pct
        ));
    }
    if let Some(m) = &r.memory_needs {
        s.push_str(&format!(
            "  memory: needs {} at {} tokens (weights {}, KV cache {}, working {})\n",
            units::bytes(m.total_bytes),
            m.context,
            units::bytes(m.weights_bytes),
            units::bytes(m.kv_cache_bytes),
            units::bytes(m.working_bytes),
        ));
    }
    if let Some(o) = r.reps.first().and_then(|x| x.offload.as_ref()) {
        s.push_str(&format!(
            "  offload: {} of {} layers on a GPU (asked for {}); devices: {}\n",
            o.on_gpu,
            o.layers,
            o.requested,
            o.devices.join(", ")
        ));
    }
    if let Some(e) = r.reps.first().and_then(|x| x.endpoint.as_ref()) {
        s.push_str(&format!(
            "\n  endpoint: connection set-up {:.1} ms (load_ms), {} prompt tokens by its usage, {} content chunks\n",
            e.connect_ms,
            e.usage_prompt_tokens
                .map_or_else(|| "unreported".into(), |n| n.to_string()),
            e.chunks
        ));
    }
    if !r.failed_reps.is_empty() {
        s.push_str(&format!(
            "  failed repetitions: {} of {}\n",
            r.failed_reps.len(),
            r.provenance.reps
        ));
    }
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
        "runtime",
        "runtime_version",
        "backend",
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
            p.model_sha256.clone().unwrap_or_default(),
            p.architecture.clone().unwrap_or_default(),
            p.quant.clone().unwrap_or_default(),
            rep.threads.to_string(),
            p.prompt_tokens.to_string(),
            p.gen_tokens.to_string(),
            rep.cold.to_string(),
            rep.ran.runtime.clone(),
            rep.ran.runtime_version.clone(),
            rep.ran.backend.clone(),
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
            rep.peak_rss_bytes.map_or(String::new(), |b| b.to_string()),
            r.roofline
                .as_ref()
                .map_or(String::new(), |rf| format!("{:.3}", rf.roofline_tps)),
            p.odai_version.clone(),
        ])?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

//! The worker side of a benchmark repetition: load the model in this fresh process, prefill,
//! decode, and measure. Runs as `odai worker` (hidden), one repetition per process, so thread
//! counts are real (candle's pool is fixed per process), peak memory is this run's alone, and a
//! cold start is cold.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::bench::stats;
use crate::bench::sustained;
use crate::bench::telemetry::{Sampler, Telemetry};
use crate::protocol::{CellSpec, EndpointFigures, RepResult};
use crate::rng::Rng;
use crate::runtime::{self, LoadOptions, Offload, RuntimeInfo, RuntimeKind};
use crate::sysroot::{Reading, SysRoot};

/// llama-bench-style prompt: BOS first where the model has one, then seeded random ids below
/// the vocabulary size.
pub fn prompt_ids(vocab: u64, bos: Option<u64>, len: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed);
    let mut ids = Vec::with_capacity(len);
    if let Some(b) = bos.filter(|&b| b < vocab) {
        ids.push(b as u32);
    }
    while ids.len() < len {
        ids.push(rng.below(vocab) as u32);
    }
    ids
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// What a runtime's run gave the clock: the shared part of every repetition, whichever runtime
/// produced it. `finish` turns it into a [`RepResult`] the same way for all of them.
pub struct Timings {
    pub load_ms: f64,
    /// None when no prompt was measured (`-p 0`).
    pub first_ttft_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    /// Prompt tokens the measured prefill ran (an endpoint's is what its `usage` counted).
    pub prompt_tokens: usize,
    /// Every decoded token's latency, in order.
    pub token_ms: Vec<f64>,
    /// Each decoded token's time since decoding started.
    pub token_times_s: Vec<f64>,
    pub decode_s: f64,
    /// Context resets of a sustained run.
    pub resets: u64,
    pub threads: u32,
    pub runtime: RuntimeInfo,
    pub offload: Option<Offload>,
    pub kv_types: Option<crate::engine::kv::KvTypes>,
    pub batching: Option<crate::runtime::batching::Batching>,
    /// This process's peak RSS, where the model ran in it (not for an endpoint).
    pub peak_rss_bytes: Option<u64>,
    /// User and system CPU seconds of the process that ran the model (not for an endpoint).
    pub cpu_times_s: Option<(f64, f64)>,
    /// The largest anonymous and file-backed resident bytes seen (not for an endpoint).
    pub rss_split: Option<(u64, u64)>,
    pub endpoint: Option<EndpointFigures>,
    /// What the reader must know about this repetition's figures (logits that were NaN).
    pub warnings: Vec<String>,
}

/// Turns a run's timings and telemetry into a repetition's figures: throughput, percentiles,
/// deadline misses, energy per token, the sustained analysis.
pub fn finish(
    spec: &CellSpec,
    t: Timings,
    telemetry: Option<Telemetry>,
) -> Result<RepResult, String> {
    let decoded = t.token_ms.len();
    // Every figure below is a measurement: a phase the cell asked for that timed nothing has
    // none to give (NaN would also not survive results.jsonl: JSON writes it as null).
    let decodes = spec.gen_tokens > 0 || spec.sustained.is_some();
    if decodes && (decoded == 0 || t.decode_s <= 0.0) {
        return Err("no token was timed: nothing to measure (raise -n)".into());
    }
    let ttft_ms = t.ttft_ms.filter(|&ms| ms > 0.0);
    if spec.prompt_tokens > 0 && ttft_ms.is_none() {
        return Err("the prompt was not timed: nothing to measure (raise -p)".into());
    }
    let energy = telemetry.as_ref().map(Telemetry::energy);
    let energy_j_per_token = energy.as_ref().map(|e| {
        e.energy_j.clone().and_then(|j| {
            if decoded > 0 {
                Reading::Value(j / decoded as f64)
            } else {
                Reading::unavailable("no token was decoded")
            }
        })
    });
    let sustained = spec.sustained.as_ref().map(|sus| {
        sustained::analyze(
            &t.token_times_s,
            t.resets,
            sus.duration_s,
            sus.window_s,
            &sus.checkpoints_s,
            telemetry.as_ref().unwrap_or(&Telemetry::default()),
        )
    });
    // Sorted once for the percentiles (a sustained run has tens of thousands of tokens).
    let mut sorted_ms = t.token_ms.clone();
    sorted_ms.sort_by(f64::total_cmp);
    let pct = |q: f64| (decoded > 0).then(|| stats::percentile_sorted(&sorted_ms, q));
    let (cpu_user_s, cpu_system_s) = match t.cpu_times_s {
        Some((u, s)) => (Some(u), Some(s)),
        None => (None, None),
    };
    Ok(RepResult {
        load_ms: t.load_ms,
        cold: spec.cold,
        first_ttft_ms: t.first_ttft_ms.filter(|_| ttft_ms.is_some()),
        ttft_ms,
        prefill_tps: ttft_ms.map(|ms| t.prompt_tokens as f64 / (ms / 1e3)),
        decode_tps: (decoded > 0).then(|| decoded as f64 / t.decode_s),
        token_ms_p50: pct(50.0),
        token_ms_p90: pct(90.0),
        token_ms_p95: pct(95.0),
        token_ms_p99: pct(99.0),
        token_ms_p999: pct(99.9),
        token_ms_max: sorted_ms.last().copied(),
        cpu_user_s,
        cpu_system_s,
        peak_rss_anon_bytes: t.rss_split.map(|(anon, _)| anon),
        peak_rss_file_bytes: t.rss_split.map(|(_, file)| file),
        deadline_miss_pct: spec.token_deadline_ms.map(|d| {
            100.0 * t.token_ms.iter().filter(|&&x| x > d).count() as f64 / decoded.max(1) as f64
        }),
        peak_rss_bytes: t.peak_rss_bytes,
        threads: t.threads,
        simd: t.runtime.backend.clone(),
        ran: t.runtime,
        offload: t.offload,
        kv_types: t.kv_types,
        batching: t.batching,
        endpoint: t.endpoint,
        token_ms: if spec.sustained.is_some() {
            // Thousands of tokens: the windows carry the time series instead.
            Vec::new()
        } else {
            t.token_ms
        },
        energy,
        energy_j_per_token,
        telemetry,
        sustained,
        warnings: t.warnings,
    })
}

/// The telemetry sampler of a repetition's decode phase, as the spec asks.
pub fn start_sampler(spec: &CellSpec, t0: Instant) -> Result<Option<Sampler>, String> {
    sampler_at(spec.root.as_deref(), spec.sample_interval_s, t0)
}

/// A sampler on the device tree `root` (`None`: the live device) every `interval_s`, if asked
/// for: shared by language-model repetitions and tensor runs.
pub fn sampler_at(
    root: Option<&Path>,
    interval_s: Option<f64>,
    t0: Instant,
) -> Result<Option<Sampler>, String> {
    let root = match root {
        Some(dir) => SysRoot::at(dir).map_err(|e| e.to_string())?,
        None => SysRoot::live(),
    };
    Ok(match interval_s {
        Some(s) if s > 0.0 => Some(Sampler::start(root, Duration::from_secs_f64(s), t0)),
        _ => None,
    })
}

/// One repetition on a local runtime, in this process: load, a first prefill (which pays any
/// lazy one-time work on the weights), the measured prefill, then decode.
pub fn run(spec: &CellSpec) -> Result<RepResult, String> {
    if spec.runtime == RuntimeKind::Openai {
        return crate::runtime::openai::run_rep(spec);
    }
    if spec.cold {
        crate::platform::evict_from_page_cache(&spec.model)?;
    }
    let p = spec.prompt_tokens as usize;
    let n = spec.gen_tokens as usize;
    let d = spec.depth as usize;
    // Decode only (`-p 0`, llama-bench's tgN): one untimed token (BOS where the model has one)
    // starts the sequence, as llama-bench's test_gen does. At a depth, the depth's tokens do.
    let fed = if d > 0 { p } else { p.max(1) };
    let opts = LoadOptions {
        threads: std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|t| t.parse().ok()),
        context: (d + fed + n) as u32,
        gpu_layers: spec.gpu_layers,
        kv_types: spec.kv_types,
        batching: spec.batching,
        ..Default::default()
    };
    let started = Instant::now();
    let mut rt = runtime::load(spec.runtime, &spec.model, &opts).map_err(|e| e.to_string())?;
    let load_ms = ms(started);

    let vocab = rt.vocab();
    if let Some(ctx) = vocab.context_length
        && (d + p + n) as u64 > ctx
    {
        let depth = if d > 0 {
            format!("{d} tokens of depth + ")
        } else {
            String::new()
        };
        return Err(format!(
            "{depth}{p} prompt + {n} generated tokens exceed the model's context length {ctx}"
        ));
    }
    if vocab.size == 0 {
        return Err("the model does not say its vocabulary size".into());
    }
    let fail = |what: &str, e: String| format!("{what} failed: {e}");
    let (mut first_ttft, mut ttft) = (None, None);
    // Forward passes run before decoding, for the NaN warning's "n of m".
    let mut passes = 1u64;
    let mut next;
    if d == 0 {
        let prompt = prompt_ids(vocab.size, vocab.bos, fed, spec.seed);
        let t = Instant::now();
        next = rt.prefill(&prompt).map_err(|e| fail("prefill", e))?;
        let first_ttft_ms = ms(t);
        if p > 0 {
            let t = Instant::now();
            next = rt.prefill(&prompt).map_err(|e| fail("prefill", e))?;
            passes += 1;
            (first_ttft, ttft) = (Some(first_ttft_ms), Some(ms(t)));
        }
    } else {
        // llama-bench's `-d`: the context holds `d` tokens (filled untimed) before the test —
        // the prompt's prefill (`ppP @ dD`) and the decode after it (`tgN @ dD+P`).
        let lead = prompt_ids(vocab.size, vocab.bos, d, spec.seed);
        let prompt = prompt_ids(vocab.size, None, p, spec.seed.wrapping_add(1));
        next = rt
            .prefill(&lead)
            .map_err(|e| fail("filling the depth", e))?;
        if p > 0 {
            let t = Instant::now();
            rt.extend(&prompt).map_err(|e| fail("prefill", e))?;
            first_ttft = Some(ms(t));
            // The steady figure: the same prompt at the same depth again, the depth kept where
            // the runtime can shorten its sequence, else filled again.
            if rt.truncate(d).is_err() {
                rt.prefill(&lead)
                    .map_err(|e| fail("filling the depth", e))?;
                passes += 1;
            }
            let t = Instant::now();
            next = rt.extend(&prompt).map_err(|e| fail("prefill", e))?;
            ttft = Some(ms(t));
            passes += 2;
        }
    }

    let t0 = Instant::now();
    let sampler = start_sampler(spec, t0)?;
    let mut token_ms = Vec::with_capacity(n);
    let mut token_times_s = Vec::with_capacity(n);
    let mut resets = 0u64;
    let mut pos = d + fed;
    let context = d + fed + n;
    loop {
        let t = Instant::now();
        match &spec.sustained {
            None if token_ms.len() >= n => break,
            Some(sus) if t0.elapsed().as_secs_f64() >= sus.duration_s => break,
            Some(_) if pos >= context => {
                // The cell's context (p + n, what the memory-fit check approved) is full: start
                // a new sequence from this token at position 0, so the run stays pure decoding
                // and never stops or errors.
                next = rt.prefill(&[next]).map_err(|e| fail("decode", e))?;
                pos = 1;
                resets += 1;
            }
            _ => {
                next = rt.decode(next).map_err(|e| fail("decode", e))?;
                pos += 1;
            }
        }
        token_ms.push(ms(t));
        token_times_s.push(t0.elapsed().as_secs_f64());
    }
    let decode_s = t0.elapsed().as_secs_f64();
    let telemetry = sampler.map(Sampler::finish);
    // Found in review: a model whose weights hold NaN benchmarked like any other. Its passes
    // take their time, but what they compute is not a model's: the figures say so.
    let steps = passes + token_ms.len() as u64;
    let bad = rt.non_finite_steps();
    let warnings = if bad > 0 {
        vec![format!(
            "the model's logits were NaN or infinite in {bad} of {steps} forward passes: its \
             weights hold NaN or overflow (a damaged or mis-converted file?), so these figures \
             time arithmetic on NaN, not a working model (odai quality scores its output)"
        )]
    } else {
        Vec::new()
    };
    let timings = Timings {
        load_ms,
        first_ttft_ms: first_ttft,
        ttft_ms: ttft,
        prompt_tokens: p,
        token_ms,
        token_times_s,
        decode_s,
        resets,
        threads: rt.threads(),
        runtime: rt.info(),
        offload: rt.offload(),
        kv_types: rt.kv_types(),
        batching: rt.batching(),
        peak_rss_bytes: Some(crate::platform::peak_rss_bytes()?),
        cpu_times_s: crate::platform::cpu_times_s().ok(),
        rss_split: peak_rss_split(telemetry.as_ref()),
        endpoint: None,
        warnings,
    };
    finish(spec, timings, telemetry)
}

/// The largest anonymous and file-backed resident sizes among the telemetry samples and a
/// reading now (the model is still loaded), each on its own: None where the OS does not split
/// the resident set.
fn peak_rss_split(telemetry: Option<&Telemetry>) -> Option<(u64, u64)> {
    let samples = telemetry.map_or(&[][..], |t| &t.samples[..]);
    let seen = samples
        .iter()
        .filter_map(|s| s.rss_anon_bytes.zip(s.rss_file_bytes))
        .chain(crate::platform::own_rss_split());
    seen.reduce(|(a, f), (a2, f2)| (a.max(a2), f.max(f2)))
}

#[cfg(test)]
mod tests {
    use super::prompt_ids;

    #[test]
    fn prompts_start_with_bos_and_stay_below_the_vocabulary() {
        let ids = prompt_ids(1000, Some(1), 64, 7);
        assert_eq!(ids.len(), 64);
        assert_eq!(ids[0], 1);
        assert!(ids.iter().all(|&i| i < 1000));
        assert_eq!(ids, prompt_ids(1000, Some(1), 64, 7), "seeded");
        assert_ne!(ids, prompt_ids(1000, Some(1), 64, 8));
        assert_eq!(prompt_ids(1000, None, 3, 7).len(), 3);
    }
}

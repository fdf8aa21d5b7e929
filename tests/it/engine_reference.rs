//! The correctness gate: odai's engine must reproduce llama.cpp's greedy tokens on the real test
//! model, parting from them only where llama.cpp's own pick is a near-tie (`NEAR_TIE`; the
//! teacher-forced check of every step is crates/odai-engine/tests/arch_fidelity.rs's). A fast
//! engine that computes the wrong thing is worthless.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use common::{odai, reference, test_model};
use serde_json::Value;

/// A pick whose lead (llama.cpp's logit for it less the best other) is under this many logits is a
/// near-tie: llama.cpp's own f32 KV cache and flash attention move leads by up to 0.39 on this
/// reference (tests/data/reference-leads.json), so engines that are equally right may part there.
/// The value and its evidence: crates/odai-engine/tests/arch_fidelity.rs's `NEAR_TIE`.
const NEAR_TIE: f64 = 0.8;

/// llama.cpp's lead at each step of each reference case, teacher-forced (scripts/reference_leads.py).
fn leads() -> Vec<Vec<f64>> {
    let path = common::repo().join("tests/data/reference-leads.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(v["model_sha256"], reference()["model"]["sha256"]);
    serde_json::from_value(v["leads"]["default"].clone()).unwrap()
}

/// Generated ids against the reference's: equal up to the first step where they part, and that
/// step — if any — a near-tie in llama.cpp's own figures. Returns how many ids agree.
fn check_ids(who: &str, case: usize, ours: &Value, want: &Value, leads: &[f64]) -> usize {
    let same = agreeing_prefix(ours, want);
    let n = ours.as_array().unwrap().len();
    if same < n {
        assert!(
            leads[same] < NEAR_TIE,
            "{who}: case {case} parts from llama.cpp at id {same}, where llama.cpp's pick leads by {:.3}\n odai: {ours}\n ref:  {want}",
            leads[same]
        );
    }
    same
}

fn generate(args: &[&str]) -> Value {
    generate_on("auto", args)
}

fn generate_on(runtime: &str, args: &[&str]) -> Value {
    let model = test_model();
    let out = odai()
        .arg("generate")
        .arg("--model")
        .arg(&model)
        .args(args)
        .args(["--format", "json", "--threads", "2", "--runtime", runtime])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn agreeing_prefix(a: &Value, b: &Value) -> usize {
    a.as_array()
        .unwrap()
        .iter()
        .zip(b.as_array().unwrap())
        .take_while(|(x, y)| x == y)
        .count()
}

#[test]
fn generate_reproduces_llama_cpp_greedy_ids_from_prompt_ids() {
    gate_on("auto");
}

/// The same gate on linked llama.cpp: the reference came from llama.cpp (through
/// llama-cpp-python 0.3.36), so the linked build must reproduce it too.
#[cfg(feature = "llama-cpp")]
#[test]
fn linked_llama_cpp_reproduces_the_reference_greedy_ids() {
    gate_on("llama.cpp");
    let out = generate_on("llama.cpp", &["--prompt-ids", "1,2,3", "-n", "2"]);
    assert_eq!(out["runtime"], "llama.cpp");
    assert!(
        out["runtime_version"]
            .as_str()
            .unwrap()
            .starts_with("llama-cpp-2 0.1.160, ggml "),
        "{}",
        out["runtime_version"]
    );
    assert!(
        out["backend"].as_str().unwrap().starts_with("cpu "),
        "{}",
        out["backend"]
    );
    assert_eq!(out["threads"], 2);
}

/// A prompt fed in calls of 3 tokens, each run in micro-batches of 2, on weights read into
/// memory (`-b 3 -ub 2 --mmap 0`), still follows the reference: on odai's engine the very ids
/// one pass over the mapped file gives (its rows are computed alike, to the bit), on llama.cpp
/// ids that part from the reference only at a near-tie. Each run says what it ran with.
#[test]
fn micro_batches_and_a_read_file_keep_the_reference_ids() {
    let (r, leads) = (reference(), leads());
    let mut runtimes = vec!["odai"];
    if cfg!(feature = "llama-cpp") {
        runtimes.push("llama.cpp");
    }
    for runtime in runtimes {
        for (c, case) in r["cases"].as_array().unwrap().iter().enumerate() {
            assert!(
                case["prompt_ids"].as_array().unwrap().len() > 3,
                "case {c}: a prompt the pieces split"
            );
            let (ids, n) = case_args(case);
            let args = ["--prompt-ids", &ids, "-n", &n];
            let pieces = generate_on(
                runtime,
                &[&args[..], &["-b", "3", "-ub", "2", "--mmap", "0"]].concat(),
            );
            assert_eq!(
                (&pieces["n_batch"], &pieces["n_ubatch"], &pieces["use_mmap"]),
                (&Value::from(3), &Value::from(2), &Value::from(false)),
                "{runtime}"
            );
            if runtime == "odai" {
                let whole = generate_on(runtime, &args);
                assert_eq!(whole["use_mmap"], true);
                assert_eq!(pieces["generated_ids"], whole["generated_ids"], "case {c}");
            }
            check_ids(
                runtime,
                c,
                &pieces["generated_ids"],
                &case["greedy_ids"],
                &leads[c],
            );
        }
    }
}

/// A reference case as `generate` takes it: its prompt ids, comma-separated, and how many
/// tokens it generated.
fn case_args(case: &Value) -> (String, String) {
    let ids: Vec<String> = case["prompt_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let n = case["greedy_ids"].as_array().unwrap().len();
    (ids.join(","), n.to_string())
}

fn gate_on(runtime: &str) {
    let (r, leads) = (reference(), leads());
    for (c, case) in r["cases"].as_array().unwrap().iter().enumerate() {
        let (ids, n) = case_args(case);
        let out = generate_on(runtime, &["--prompt-ids", &ids, "-n", &n]);
        check_ids(
            runtime,
            c,
            &out["generated_ids"],
            &case["greedy_ids"],
            &leads[c],
        );
    }
}

#[test]
fn prompt_text_tokenizes_like_llama_cpp() {
    let (r, leads) = (reference(), leads());
    for (c, case) in r["cases"].as_array().unwrap().iter().enumerate() {
        let out = generate(&["--prompt", case["prompt"].as_str().unwrap(), "-n", "12"]);
        assert_eq!(
            out["prompt_ids"], case["prompt_ids"],
            "prompt {:?}",
            case["prompt"]
        );
        let same = check_ids(
            "auto",
            c,
            &out["generated_ids"],
            &case["greedy_ids"],
            &leads[c],
        );
        // The text of the ids that agree (all 12, or up to the near-tie they part at).
        let out = if same < 12 {
            let n = same.max(1).to_string();
            generate(&["--prompt", case["prompt"].as_str().unwrap(), "-n", &n])
        } else {
            out
        };
        let text = out["generated_text"].as_str().unwrap();
        assert!(
            same == 0 || case["greedy_text"].as_str().unwrap().starts_with(text),
            "decoded {text:?} is not a prefix of the reference text"
        );
    }
}

#[test]
fn inspect_reports_the_test_model() {
    let model = test_model();
    let out = odai()
        .args(["model", "inspect", "--sha256", "--format", "json"])
        .arg(&model)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = reference();
    assert_eq!(v["sha256"], r["model"]["sha256"]);
    assert_eq!(v["file_size_bytes"], r["model"]["bytes"]);
    assert_eq!(v["architecture"], "llama");
    assert_eq!(v["quant"], "Q4_1");
    assert_eq!(v["n_layers"], 30);
    assert_eq!(v["n_kv_heads"], 3);
    assert_eq!(v["vocab_size"], 49152);
    assert_eq!(v["context_length"], 8192);
    assert_eq!(v["tensor_types"]["Q8_0"]["tensors"], 1);
    // Sized as `auto` holds it: odai's engine, an f16 KV cache allocated for the 512-token
    // prompt and grown to the 8192-token context, both copies live while it is copied:
    // 2 (K,V) x 30 layers x (512 + 8192) positions x 3 kv heads x 64 dims x 2 bytes.
    assert_eq!(v["memory"]["runtime"], "odai");
    assert_eq!(
        v["memory"]["kv_cache_bytes"],
        2u64 * 30 * (512 + 8192) * 3 * 64 * 2
    );
    let params = v["parameters"].as_u64().unwrap();
    assert!((130_000_000..140_000_000).contains(&params), "{params}");
}

//! Synthetic models: every quantization of a real family's shape loads and runs, and a file whose
//! architecture odai does not run is refused by name.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;

use common::odai;
use serde_json::Value;

fn synth(dir: &std::path::Path, preset: &str, quant: &str) -> std::path::PathBuf {
    let out = dir.join(format!("{preset}-{quant}.gguf"));
    odai()
        .args([
            "model", "synth", "--preset", preset, "--quant", quant, "--output",
        ])
        .arg(&out)
        .assert()
        .success();
    out
}

#[test]
fn every_quant_of_smollm2_loads_and_generates() {
    let dir = tempfile::tempdir().unwrap();
    for (quant, ggml) in [
        ("q4_0", "Q4_0"),
        ("q8_0", "Q8_0"),
        ("q4_k", "Q4_K"),
        ("f16", "F16"),
    ] {
        let f = synth(dir.path(), "smollm2-135m", quant);
        let out = odai()
            .args(["model", "inspect", "--format", "json"])
            .arg(&f)
            .output()
            .unwrap();
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["architecture"], "llama");
        assert_eq!(v["n_layers"], 30);
        assert_eq!(v["vocab_size"], 49152);
        // 576-wide rows are not whole 256-element super-blocks: K-quants fall back to Q8_0 there.
        let expect = if quant == "q4_k" { "Q8_0" } else { ggml };
        assert_eq!(v["quant"], expect, "{quant}");
        let params = v["parameters"].as_u64().unwrap();
        assert!((134_000_000..136_000_000).contains(&params), "{params}");

        let out = odai()
            .arg("generate")
            .arg("--model")
            .arg(&f)
            .args(["--prompt-ids", "1,2,3", "-n", "3", "--format", "json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{quant}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["generated_ids"].as_array().unwrap().len(), 3);
    }
}

#[test]
fn other_families_write_their_architecture() {
    let dir = tempfile::tempdir().unwrap();
    // The smallest of the non-llama shapes; the rest are the same code with bigger numbers.
    let f = synth(dir.path(), "qwen2.5-0.5b", "q8_0");
    let out = odai()
        .arg("generate")
        .arg("--model")
        .arg(&f)
        .args(["--prompt-ids", "1,2", "-n", "2", "--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn unsupported_architecture_is_named_with_the_supported_list() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "smollm2-135m", "q4_0");
    let mut bytes = fs::read(&f).unwrap();
    let key = b"general.architecture";
    let at = bytes.windows(key.len()).position(|w| w == key).unwrap();
    let value = at + key.len() + 4 + 8; // value type u32, string length u64
    assert_eq!(&bytes[value..value + 5], b"llama");
    bytes[value..value + 5].copy_from_slice(b"mamba");
    fs::write(&f, bytes).unwrap();
    odai()
        .args(["model", "inspect"])
        .arg(&f)
        .assert()
        .code(3)
        .stderr(format!(
            "odai: error: {}: architecture \"mamba\" is not supported (supported: llama, qwen2, \
             qwen3, phi3, gemma3)\n",
            f.display()
        ));
}

#[test]
fn unknown_preset_is_a_usage_error_listing_presets() {
    odai()
        .args(["model", "synth", "--preset", "gpt-5", "--output", "x.gguf"])
        .assert()
        .code(2)
        .stderr(
            "odai: error: --preset: no preset \"gpt-5\" (presets: smollm2-135m, qwen2.5-0.5b, \
             qwen3-0.6b, llama-3.2-1b, tinyllama-1.1b, llama-3.2-3b, phi-3-mini, gemma-3-1b, \
             llama-3.1-8b, toy)\n",
        );
}

#[test]
fn unsupported_tensor_type_lists_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), "smollm2-135m", "q4_0");
    let mut bytes = fs::read(&f).unwrap();
    // Tensor info: name, n_dims u32, dims u64 × n, ggml type u32. Make token_embd an IQ2_XXS (16).
    let name = b"token_embd.weight";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    let ty = at + name.len() + 4 + 2 * 8;
    assert_eq!(u32::from_le_bytes(bytes[ty..ty + 4].try_into().unwrap()), 2);
    bytes[ty..ty + 4].copy_from_slice(&16u32.to_le_bytes());
    fs::write(&f, bytes).unwrap();
    odai()
        .args(["model", "inspect"])
        .arg(&f)
        .assert()
        .code(3)
        .stderr(format!(
            "odai: error: {}: uses a tensor type this engine cannot load (tensor token_embd.weight \
             is ggml type 16); supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, \
             Q5_K, Q6_K, Q8_K\n",
            f.display()
        ));
}

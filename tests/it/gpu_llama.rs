//! LLM layers on a GPU through linked llama.cpp's Vulkan backend (feature `llama-cpp-vulkan`),
//! on Mesa's lavapipe: a real Vulkan device, run by the CPU. The point is the path — layers
//! assigned to the GPU device, weights in its buffers, the right tokens out, a fallback said —
//! not the speed. scripts/test.sh builds this feature in its own cached target and runs this file.

#![cfg(all(unix, feature = "llama-cpp-vulkan"))]

use crate::common;

use common::{odai, ok, reference, test_model};
use serde_json::Value;

fn bench(extra: &[&str], envs: &[(&str, &str)]) -> Value {
    let mut cmd = odai();
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["bench", "--runtime", "llama.cpp", "--model"])
        .arg(test_model())
        .args(["-p", "16", "-n", "4", "-r", "1", "--warmup", "0", "-t", "2"])
        .args(["--sample-interval", "off", "-o", "json"])
        .args(extra)
        .output()
        .unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

fn offload(cell: &Value) -> &Value {
    &cell["reps"][0]["offload"]
}

/// llama.cpp's Vulkan backend leaves out software devices unless GGML_VK_VISIBLE_DEVICES names
/// them: lavapipe, the only Vulkan device here, is index 0.
const LAVAPIPE: (&str, &str) = ("GGML_VK_VISIBLE_DEVICES", "0");

/// `-ngl 0,10,99`: no layer, ten, and every layer on Vulkan0; llama.cpp's own assignment is
/// what each result records.
#[test]
fn layers_run_on_a_vulkan_device_as_asked_and_each_result_records_the_split() {
    let cells = bench(&["-ngl", "0,10,99"], &[LAVAPIPE]);
    let cells = cells.as_array().unwrap();
    assert_eq!(cells.len(), 3);
    let gpu_layers = |o: &Value| -> Vec<(String, u64)> {
        o["split"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["cpu"] == false)
            .map(|d| {
                (
                    d["device"].as_str().unwrap().to_owned(),
                    d["layers"].as_u64().unwrap(),
                )
            })
            .collect()
    };

    // 0: the CPU alone (no GPU device given to llama.cpp), and no fallback to speak of.
    let o = offload(&cells[0]);
    assert_eq!(
        (o["requested"].as_u64(), o["on_gpu"].as_u64()),
        (Some(0), Some(0)),
        "{o}"
    );
    assert!(gpu_layers(o).is_empty(), "{o}");
    assert!(
        cells[0]["provenance"]["backend"]
            .as_str()
            .unwrap()
            .starts_with("cpu "),
        "{}",
        cells[0]["provenance"]["backend"]
    );

    // 10 of SmolLM2's 31 offloadable layers (30 repeating + output) on the GPU, the rest on the CPU.
    let o = offload(&cells[1]);
    assert_eq!(
        (o["on_gpu"].as_u64(), o["layers"].as_u64()),
        (Some(10), Some(31)),
        "{o}"
    );
    let on_gpu = gpu_layers(o);
    assert_eq!(on_gpu.len(), 1, "{o}");
    assert!(on_gpu[0].0.starts_with("Vulkan0 ("), "{o}");
    assert_eq!(on_gpu[0].1, 10);

    // 99: every layer, and the weights in the Vulkan device's buffer.
    let o = offload(&cells[2]);
    assert_eq!(o["on_gpu"], 31, "{o}");
    assert_eq!(gpu_layers(o)[0].1, 31, "{o}");
    assert!(
        o["weights"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w["buffer"] == "Vulkan0" && w["bytes"].as_u64().unwrap() > 30 << 20),
        "{o}"
    );
    let backend = cells[2]["provenance"]["backend"].as_str().unwrap();
    assert!(backend.starts_with("gpu Vulkan0 ("), "{backend}");
    for c in cells {
        assert!(c["summary"]["decode_tps"]["mean"].as_f64().unwrap() > 0.0);
        assert!(
            !c["warnings"]
                .to_string()
                .contains("every layer ran on the CPU"),
            "{}",
            c["warnings"]
        );
    }
}

/// Without GGML_VK_VISIBLE_DEVICES, llama.cpp has no GPU device here (lavapipe is software): a
/// run that asked for 99 layers measured the CPU, and its result, warning and CSV say so and why.
#[test]
fn asking_for_gpu_layers_with_no_usable_vulkan_device_falls_back_and_says_why() {
    let v = bench(&["-ngl", "99"], &[]);
    let o = offload(&v);
    assert_eq!(
        (o["requested"].as_u64(), o["on_gpu"].as_u64()),
        (Some(99), Some(0)),
        "{o}"
    );
    let why = "llama.cpp's GPU backend found no GPU device (its Vulkan backend leaves out \
               software devices such as lavapipe unless GGML_VK_VISIBLE_DEVICES names them)";
    assert_eq!(o["fallback"], why);
    assert_eq!(
        v["warnings"][1],
        format!(
            "asked for 99 GPU layers, but every layer ran on the CPU (devices: {}): {why}",
            o["devices"][0].as_str().unwrap()
        ),
        "{}",
        v["warnings"]
    );
    let csv = ok(&odai()
        .args(["bench", "--runtime", "llama.cpp", "--model"])
        .arg(test_model())
        .args([
            "-p", "8", "-n", "2", "-r", "1", "--warmup", "0", "-ngl", "99",
        ])
        .args(["--sample-interval", "off", "-o", "csv"])
        .output()
        .unwrap());
    let row = csv.lines().nth(1).unwrap();
    // gpu_layers, gpu_layers_on_gpu, offload, then the cache types (columns after them follow).
    assert!(
        row.contains(",99,0,0/31 on GPU (fell back to the CPU),f16,f16,"),
        "{row}"
    );
}

/// The GPU path computes the same model: greedy decoding on Vulkan follows llama.cpp's
/// reference ids (../shared/reference, from its CPU). Sums in another order part after a
/// near-tie — here the first prompt's sixth token — so every case must agree on its first five
/// ids and one case on all of them: a wrong kernel does neither.
#[test]
fn greedy_ids_on_the_vulkan_device_follow_the_reference() {
    let r = reference();
    let mut agreed = Vec::new();
    for case in r["cases"].as_array().unwrap() {
        let ids: Vec<String> = case["prompt_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(Value::to_string)
            .collect();
        let want = case["greedy_ids"].as_array().unwrap();
        let out = odai()
            .env(LAVAPIPE.0, LAVAPIPE.1)
            .args([
                "generate",
                "--runtime",
                "llama.cpp",
                "--gpu-layers",
                "99",
                "--model",
            ])
            .arg(test_model())
            .args([
                "--prompt-ids",
                &ids.join(","),
                "-n",
                &want.len().to_string(),
            ])
            .args(["--format", "json"])
            .output()
            .unwrap();
        let v: Value = serde_json::from_str(&ok(&out)).unwrap();
        assert!(
            v["backend"].as_str().unwrap().starts_with("gpu Vulkan0 ("),
            "{}",
            v["backend"]
        );
        let got = v["generated_ids"].as_array().unwrap();
        let same = got.iter().zip(want).take_while(|(a, b)| a == b).count();
        assert!(
            same >= 5,
            "{}: only {same} ids agree\n got:  {got:?}\n want: {want:?}",
            case["prompt"]
        );
        agreed.push((same, want.len()));
    }
    assert!(agreed.iter().any(|(same, n)| same == n), "{agreed:?}");
}

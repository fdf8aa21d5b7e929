//! Tensor models through the binary, on real models and real runtime libraries from PyPI wheels
//! (scripts/fetch-test-model.sh): silero-vad and magika on ONNX Runtime, microWakeWord and
//! openWakeWord's three-model pipeline on TF Lite. Outputs are checked, not only timings.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::path::{Path, PathBuf};

use common::{fetch_model, odai};
use serde_json::Value;

fn ort_lib() -> PathBuf {
    fetch_model("onnxruntime-lib")
}

fn tflite_lib() -> PathBuf {
    fetch_model("tflite-lib")
}

/// `odai bench` on a tensor model with both libraries found through their environment
/// variables and the sampler off.
fn bench(model: &Path) -> assert_cmd::Command {
    let mut c = odai();
    c.env("ORT_DYLIB_PATH", ort_lib())
        .env("ODAI_TFLITE_LIB", tflite_lib())
        .args([
            "bench",
            "--threads",
            "1",
            "--sample-interval",
            "off",
            "--model",
        ])
        .arg(model);
    c
}

fn json(c: &mut assert_cmd::Command) -> Value {
    let out = c.args(["--format", "json"]).output().unwrap();
    assert!(
        out.status.success(),
        "odai failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn silero() -> assert_cmd::Command {
    let mut c = bench(&fetch_model("silero-vad"));
    c.args([
        "--shape",
        "input=1x512",
        "--shape",
        "state=2x1x128",
        "--input",
        "sr=16000",
    ]);
    c
}

/// The speech probability silero-vad gives a frame of `input` (a constant or a .npy file).
fn silero_probability(input: &str) -> f64 {
    let v = json(silero().args(["--iterations", "3", "--input", input, "--input", "state=0"]));
    let out = &v["stages"][0]["outputs"][0];
    assert_eq!(out["name"], "output");
    out["mean"].as_f64().unwrap()
}

/// A .npy file of f32 samples.
fn npy(path: &Path, shape: &[usize], values: &[f32]) {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}), }}",
        shape.iter().map(|d| format!("{d},")).collect::<String>()
    );
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend((header.len() as u16).to_le_bytes());
    b.extend(header.as_bytes());
    for v in values {
        b.extend(v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn silero_vad_bursts_on_onnx_runtime_with_its_signature_and_figures() {
    let v = json(silero().args(["--iterations", "50", "--load", "cpu:1"]));
    assert_eq!(v["mode"], "burst");
    assert_eq!(v["load"], "cpu:1", "the contention it ran under");
    assert_eq!(v["inferences"], 50);
    let st = &v["stages"][0];
    assert_eq!(st["runtime"], "onnxruntime");
    assert_eq!(st["runtime_version"], "1.32.0");
    assert_eq!(st["backend"], "cpu");
    let inputs: Vec<String> = st["signature"]["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{} {} {}", i["name"], i["dtype"], i["shape"]))
        .collect();
    assert_eq!(
        inputs,
        [
            r#""input" "f32" ["?","?"]"#,
            r#""state" "f32" [2,"?",128]"#,
            r#""sr" "i64" []"#
        ]
    );
    assert_eq!(st["fed"][2], serde_json::json!(["sr", "constant 16000"]));
    for k in [
        "latency_ms_p50",
        "latency_ms_p99",
        "latency_ms_p999",
        "inferences_per_s",
        "load_ms",
    ] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}: {}", v[k]);
    }
    assert!(v["latency_ms_p50"].as_f64() <= v["latency_ms_p99"].as_f64());
    assert!(v["peak_rss_bytes"].as_u64().unwrap() > 1 << 20);
    assert_eq!(v["stream"], Value::Null);
}

#[test]
fn silero_vad_hears_a_tone_differently_from_silence() {
    let dir = tempfile::tempdir().unwrap();
    let tone = dir.path().join("tone.npy");
    // 512 samples at 16 kHz of a 220 Hz tone with harmonics, at speech-like loudness.
    let samples: Vec<f32> = (0..512)
        .map(|i| {
            let t = i as f32 / 16000.0;
            let w = 2.0 * std::f32::consts::PI * 220.0 * t;
            0.3 * w.sin() + 0.15 * (2.0 * w).sin() + 0.1 * (3.0 * w).sin()
        })
        .collect();
    npy(&tone, &[1, 512], &samples);
    let silence = silero_probability("input=0");
    let heard = silero_probability(&format!("input={}", tone.display()));
    assert!((0.0..=1.0).contains(&silence), "{silence}");
    assert!((0.0..=1.0).contains(&heard), "{heard}");
    assert_ne!(silence, heard, "the model's answer depends on its input");
}

#[test]
fn recorded_frames_are_fed_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.npy");
    npy(&clip, &[3, 1, 512], &vec![0.01; 3 * 512]);
    let v = json(
        silero()
            .args(["--iterations", "6", "--input"])
            .arg(format!("input={}", clip.display())),
    );
    assert_eq!(
        v["stages"][0]["fed"][0][1],
        format!("file {} (3 frames, cycled)", clip.display())
    );
    let bad = dir.path().join("bad.npy");
    npy(&bad, &[2, 256], &vec![0.0; 512]);
    let out = silero()
        .args(["--iterations", "1", "--input"])
        .arg(format!("input={}", bad.display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains(&format!(
            "input input: {} has shape [2, 256]; the input needs [1, 512] (or frames × [1, 512])",
            bad.display()
        )),
        "{e}"
    );
}

#[test]
fn a_stream_run_paces_frames_at_the_input_rate() {
    // 512-sample frames at 16 kHz: 31.25 frames/s for 2 s is 62 frames, each due 32 ms apart.
    let v = json(silero().args([
        "--mode",
        "stream",
        "--frame",
        "512",
        "--sample-rate",
        "16000",
        "--duration",
        "2s",
        "--window",
        "1s",
    ]));
    assert_eq!(v["mode"], "stream");
    let s = &v["stream"];
    assert_eq!(s["rate_hz"], 31.25);
    assert_eq!(s["period_ms"], 32.0);
    assert_eq!(s["frames"], 62);
    assert_eq!(v["inferences"], 62);
    assert!(s["duration_s"].as_f64().unwrap() >= 62.0 / 31.25);
    let misses = s["deadline_misses"].as_u64().unwrap();
    assert!(misses <= 62);
    let duty = s["cpu_duty_pct"].as_f64().unwrap();
    assert!(duty > 0.0 && duty <= 100.0 * 64.0, "{duty}");
    let windows = s["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 2, "{windows:?}");
    let framed: u64 = windows.iter().map(|w| w["frames"].as_u64().unwrap()).sum();
    assert_eq!(framed, 62);
    // Paced: the run cannot go faster than its input.
    assert!(v["inferences_per_s"].as_f64().unwrap() <= 31.25 + 1e-9);
}

#[test]
fn magika_classifies_bytes_into_its_214_content_types() {
    let v =
        json(bench(&fetch_model("magika")).args(["--shape", "bytes=1x2048", "--iterations", "5"]));
    let out = &v["stages"][0]["outputs"][0];
    assert_eq!(out["shape"], serde_json::json!([1, 214]));
    assert_eq!(out["dtype"], "f32");
    // A softmax over content types: probabilities.
    assert!(out["min"].as_f64().unwrap() >= 0.0 && out["max"].as_f64().unwrap() <= 1.0);
}

#[test]
fn a_micro_wake_word_model_scores_silence_low_on_tflite() {
    let v = json(bench(&fetch_model("micro-hey-jarvis")).args([
        "--iterations",
        "20",
        "--input",
        "serving_default_input_audio:0=0",
    ]));
    let st = &v["stages"][0];
    assert_eq!(st["runtime"], "tflite");
    assert_eq!(st["runtime_version"], "2.17.1");
    assert_eq!(st["signature"]["inputs"][0]["dtype"], "i8");
    assert_eq!(
        st["signature"]["inputs"][0]["shape"],
        serde_json::json!([1, 3, 40])
    );
    let out = &st["outputs"][0];
    assert_eq!(out["dtype"], "u8");
    // A u8 probability: 255 is certain; zeros are far from the wake word.
    assert!(out["max"].as_f64().unwrap() < 128.0, "{out}");
}

#[test]
fn the_open_wake_word_pipeline_runs_three_models_per_frame() {
    let mut c = bench(&fetch_model("oww-mel"));
    c.arg("--then")
        .arg(fetch_model("oww-embedding"))
        .arg("--then")
        .arg(fetch_model("oww-hey-jarvis"))
        .args([
            "--shape",
            "serving_default_input:0=1x1760",
            "--shape",
            "serving_default_input_1:0=1x76x32x1",
            "--iterations",
            "10",
            "--provider",
            "xnnpack",
        ]);
    let v = json(&mut c);
    let stages = v["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3);
    assert!(
        stages
            .iter()
            .all(|s| s["runtime"] == "tflite" && s["backend"] == "xnnpack")
    );
    assert_eq!(
        stages[0]["signature"]["outputs"][0]["shape"],
        serde_json::json!([1, 1, 8, 32])
    );
    assert_eq!(stages[2]["outputs"][0]["shape"], serde_json::json!([1, 1]));
    // A frame's latency is the pipeline's: at least the sum of its stages' means, give or take
    // the clock's rounding.
    let stage_sum: f64 = stages.iter().map(|s| s["mean_ms"].as_f64().unwrap()).sum();
    assert!(
        v["latency_ms_mean"].as_f64().unwrap() >= stage_sum * 0.99,
        "{v}"
    );
}

#[test]
fn a_missing_runtime_library_says_what_to_install() {
    let out = odai()
        .env("ORT_DYLIB_PATH", "/nonexistent/libonnxruntime.so")
        .args([
            "bench",
            "--sample-interval",
            "off",
            "--shape",
            "input=1x512",
            "--model",
        ])
        .arg(fetch_model("silero-vad"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a missing input: {e}");
    assert!(
        e.starts_with(
            "odai: error: onnxruntime: ONNX Runtime's library /nonexistent/libonnxruntime.so does \
             not exist: install it with `pip install onnxruntime==1.32.0`"
        ),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "one line: {e}");
}

#[test]
fn tensor_model_errors_name_the_file_and_what_to_do() {
    let model = fetch_model("silero-vad");
    let out = bench(&model).output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        e.trim(),
        format!(
            "odai: error: {}: the model's input input f32[?,?] has a symbolic dimension ?: give \
             its shape with --shape input=…",
            model.display()
        )
    );
    let out = bench(&model).args(["--mode", "stream"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "odai: error: --mode stream: give the input rate: --rate 31.25/s, or --frame 512 --sample-rate 16000"
    );
    let dir = tempfile::tempdir().unwrap();
    let corrupt = dir.path().join("corrupt.tflite");
    std::fs::write(&corrupt, b"not a flatbuffer at all").unwrap();
    let out = bench(&corrupt).output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.lines().any(|l| l
            == format!(
                "odai: error: {}: TensorFlow Lite cannot load it (not a .tflite flatbuffer, or corrupt)",
                corrupt.display()
            )),
        "{e}"
    );
    let out = bench(&model).args(["--sustained", "1m"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = bench(&model).args(["--reps", "3"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "odai: error: --reps: applies to language models; a tensor model runs once in one \
         process: --iterations N or --duration D (burst), --mode stream --rate HZ --duration D"
    );
}

#[test]
fn inspect_lists_operators_parameters_and_the_signature() {
    let v = json(
        odai()
            .env("ORT_DYLIB_PATH", ort_lib())
            .args(["model", "inspect"])
            .arg(fetch_model("silero-vad")),
    );
    assert_eq!(v["format"], "onnx");
    assert_eq!(v["file_size_bytes"], 2327524);
    assert_eq!(v["format_version"], "IR 8, opset 16");
    // silero-vad keeps its weights in Constant nodes (and If branches), not initializers.
    assert_eq!(v["operators"]["LSTM"], 4);
    assert_eq!(v["operators"]["If"], 25);
    assert_eq!(v["operator_total"], 689);
    assert_eq!(v["parameters"], 545601);
    assert_eq!(v["runtime"]["runtime"], "onnxruntime");
    assert_eq!(v["signature"]["inputs"][1]["name"], "state");

    let v = json(
        odai()
            .env("ODAI_TFLITE_LIB", tflite_lib())
            .args(["model", "inspect"])
            .arg(fetch_model("oww-mel")),
    );
    assert_eq!(v["format"], "tflite");
    assert_eq!(v["operators"]["BATCH_MATMUL"], 1);
    assert_eq!(v["operator_total"], 26);
    // The input's samples are dynamic in the flatbuffer (shape_signature -1).
    assert_eq!(
        v["signature"]["inputs"][0]["shape"],
        serde_json::json!(["?", "?"])
    );
}

#[test]
fn inspect_without_the_runtime_says_why_the_signature_is_missing() {
    let out = odai()
        .env("ODAI_TFLITE_LIB", "/nonexistent/libtensorflowlite_c.so")
        .args(["model", "inspect"])
        .arg(fetch_model("micro-hey-jarvis"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("operators         57 ("), "{text}");
    assert!(
        text.contains(
            "signature         unavailable: tflite: TensorFlow Lite's library \
             /nonexistent/libtensorflowlite_c.so does not exist"
        ),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, [0x0a, 0xff, 0x01]).unwrap();
    let out = odai()
        .args(["model", "inspect"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!(
            "odai: error: {}: not a valid onnxruntime model: a length-delimited field runs past the end",
            bad.display()
        )
    );
}

/// A matrix of tensor cells: silero-vad paced at its frame rate, the openWakeWord pipeline in a
/// burst; then reports with a tensor workload and a language one.
#[test]
fn tensor_matrices_run_record_and_score_against_tensor_workloads() {
    let dir = tempfile::tempdir().unwrap();
    let matrix = dir.path().join("tensor.toml");
    std::fs::write(
        &matrix,
        format!(
            r#"[[tensor]]
workload = "voice-activity"
models = ["{vad}"]
mode = "stream"
frame = 512
sample_rate = 16000
duration = "2s"
window = "1s"
threads = [1]
shapes = {{ input = [1, 512], state = [2, 1, 128] }}
inputs = {{ sr = 16000 }}

[[tensor]]
models = ["{mel}", "{emb}", "{head}"]
mode = "burst"
iterations = 5
threads = [1]
shapes = {{ "serving_default_input:0" = [1, 1760], "serving_default_input_1:0" = [1, 76, 32, 1] }}
"#,
            vad = fetch_model("silero-vad").display(),
            mel = fetch_model("oww-mel").display(),
            emb = fetch_model("oww-embedding").display(),
            head = fetch_model("oww-hey-jarvis").display(),
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = odai()
        .env("ORT_DYLIB_PATH", ort_lib())
        .env("ODAI_TFLITE_LIB", tflite_lib())
        .args(["matrix", "run", "--sample-interval", "off", "--out"])
        .arg(&out)
        .arg(&matrix)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let records = common::records(&out);
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["status"], "ok", "{r}");
        assert_eq!(r["report"], Value::Null);
    }
    let stream = &records[0]["tensor"];
    assert_eq!(stream["stream"]["frames"], 62);
    assert_eq!(records[0]["cell"]["tensor"]["workload"], "voice-activity");
    assert_eq!(records[1]["tensor"]["stages"].as_array().unwrap().len(), 3);

    let report = |profile: &str| {
        let o = odai()
            .args(["report", "--format", "csv", "--profile", profile])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out.join("report/scorecard.csv")).unwrap()
    };
    let card = report("voice-activity");
    let vad_row = |criterion: &str| {
        card.lines()
            .find(|l| l.contains("silero_vad.onnx") && l.contains(&format!(",{criterion},")))
            .unwrap_or_else(|| panic!("no {criterion} row: {card}"))
            .to_owned()
    };
    assert!(vad_row("frame_deadline_miss_pct").contains(",%,max,0.1,3,"));
    assert!(!vad_row("cpu_duty_pct").contains(",N/A,"), "measured");
    // The burst-only pipeline has no paced figures: said, not made up.
    let oww = card
        .lines()
        .find(|l| l.contains("oww-hey_jarvis.tflite") && l.contains(",cpu_duty_pct,"))
        .unwrap();
    assert!(
        oww.contains("N/A") && oww.contains("no paced stream of this model"),
        "{oww}"
    );
    // The HTML report charts a tensor workload's own figures.
    let html = odai()
        .args(["report", "--format", "html", "--profile", "voice-activity"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(html.status.success());
    let page = std::fs::read_to_string(out.join("report/report.html")).unwrap();
    assert!(
        page.contains("CPU duty cycle at the input rate"),
        "tensor charts"
    );
    assert!(
        !page.contains("Decode speed by device class"),
        "no token charts"
    );
    // A language workload does not judge tensor cells: with no cell of its kind it says so
    // (exit 3) instead of passing vacuously.
    let chat = odai()
        .args(["report", "--format", "csv", "--profile", "chat-assistant"])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(chat.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&chat.stderr).contains(
            "holds no language-model cells of a device for the chat-assistant profile to judge"
        ),
        "{}",
        String::from_utf8_lossy(&chat.stderr)
    );
    let csv = std::fs::read_to_string(out.join("report/measurements.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let vad: Vec<&str> = csv
        .lines()
        .find(|l| l.contains("silero_vad"))
        .unwrap()
        .split(',')
        .collect();
    assert_eq!(vad[col("runtime")], "onnxruntime");
    assert!(vad[col("inference_ms_p99")].parse::<f64>().unwrap() > 0.0);
    assert!(vad[col("frame_deadline_miss_pct")].parse::<f64>().is_ok());
    assert_eq!(
        vad[col("decode_tps_mean")],
        "",
        "no tokens: empty, not zero"
    );
}

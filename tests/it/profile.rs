//! `odai profile`: probe, a matrix on this device, results on disk and a table — driven with the
//! toy preset so it takes seconds (the built-in quick matrix is the same path with real shapes).

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;

use common::{cache, odai};
use serde_json::Value;

#[test]
fn profile_probes_runs_the_matrix_and_prints_what_it_measured() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("toy.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\", \"synthetic:llama-3.1-8b:q4_0\"]\nthreads = [1]\n\
         prompt_tokens = [16]\ngen_tokens = [8]\nreps = 2\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    // The pod's cgroup leaves 2.8 GiB: the 8B shape is skipped, not attempted.
    let root = common::fixture("container-cgroup-v2");
    let run = odai()
        .env("ODAI_CACHE_DIR", cache())
        .arg("profile")
        .arg("--matrix")
        .arg(&m)
        .arg("--out")
        .arg(&out)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = String::from_utf8(run.stdout).unwrap();
    assert!(text.starts_with("Device"), "the probe comes first: {text}");
    assert!(text.contains("infer-7d9f8-abcde"));
    let table = text
        .lines()
        .skip_while(|l| !l.starts_with("model "))
        .collect::<Vec<_>>();
    assert!(table[0].contains("TTFT ms") && table[0].contains("decode t/s"));
    assert!(table[1].starts_with("synthetic:toy:q8_0") && table[1].ends_with("  ok"));
    assert!(
        table[2].contains("skipped: does not fit: needs ")
            && table[2].ends_with(" GiB, headroom 2.8 GiB"),
        "{}",
        table[2]
    );
    assert!(text.contains("1 ok, 0 failed, 1 skipped"), "{text}");
    // It ends with the scorecard for this device and the report files.
    assert!(
        text.contains("Readiness for Chat assistant on this device (chat-assistant):"),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.trim_start().starts_with("synthetic:llama-3.1-8b:q4_0")
                && l.contains("cloud-only")
        ),
        "the shape that does not fit is cloud-only: {text}"
    );
    assert!(text.contains("fails memory fit on Desktop, server or VM"));
    for f in [
        "report.html",
        "report.md",
        "report.json",
        "measurements.csv",
        "scorecard.csv",
    ] {
        assert!(out.join("report").join(f).is_file(), "{f}");
    }
    let records: Vec<Value> = fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    assert!(out.join("probe-local.json").is_file());

    // JSON: one document with the probe, every cell and the summary.
    let json = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args(["profile", "--format", "json", "--matrix"])
        .arg(&m)
        .arg("--out")
        .arg(dir.path().join("out2"))
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["probe"]["device"]["hostname"], "infer-7d9f8-abcde");
    assert_eq!(v["cells"].as_array().unwrap().len(), 2);
    assert_eq!(v["devices"][0]["ok"], 1);
    assert_eq!(v["scorecards"].as_array().unwrap().len(), 2);
}

#[test]
fn profile_refuses_to_mix_into_earlier_results() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("results.jsonl"), "{}\n").unwrap();
    odai()
        .arg("profile")
        .arg("--out")
        .arg(dir.path())
        .assert()
        .code(3)
        .stderr(format!(
            "odai: error: {}: already holds results: pass --resume to continue that run, or choose another --out\n",
            dir.path().display()
        ));
}

/// On the live device the profile's probe runs the GPU compute check on every hardware adapter;
/// software rasterisers (Mesa's llvmpipe, where scripts/test.sh installed it) only with
/// `--gpu-check-software`, and no check allocates more than a quarter of the headroom;
/// `--no-gpu-check` leaves it all out.
#[test]
fn regression_profile_skips_software_adapters_unless_asked_and_bounds_check_memory() {
    // Found in review: the profile spent 23–46 s of a ~100 s run checking llvmpipe (the CPU
    // behind a GPU API), and the largest-buffer step climbed to the driver's max_buffer_size
    // whatever the device's headroom (an integrated GPU shares the phone's RAM).
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("toy.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1]\nprompt_tokens = [8]\ngen_tokens = [4]\nreps = 1\n",
    )
    .unwrap();
    let profile = |out: &str, extra: &[&str]| -> Value {
        let run = odai()
            .env("ODAI_CACHE_DIR", cache())
            .args(["profile", "--format", "json", "--matrix"])
            .arg(&m)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(extra)
            .output()
            .unwrap();
        serde_json::from_str(&common::ok(&run)).unwrap()
    };
    let v = profile("checked", &[]);
    let Some(list) = v["probe"]["gpus"].as_array().filter(|l| !l.is_empty()) else {
        assert!(
            std::env::var("ODAI_TEST_REQUIRE_GPU_ADAPTER").as_deref() != Ok("1"),
            "Mesa is installed but the profile found no adapter"
        );
        return;
    };
    for a in list {
        if a["device_type"] == "cpu" {
            assert_eq!(
                a["check_unavailable"],
                "skipped: a software rasteriser (the CPU behind a GPU API); --gpu-check-software \
                 checks it",
                "{a}"
            );
        } else {
            assert!(
                ["passed", "failed"].contains(&a["check"]["status"].as_str().unwrap_or("")),
                "{a}"
            );
        }
    }
    let v = profile("software", &["--gpu-check-software"]);
    let headroom = v["probe"]["memory"]["headroom_bytes"].as_u64().unwrap();
    for a in v["probe"]["gpus"].as_array().unwrap() {
        let c = &a["check"];
        assert!(
            ["passed", "failed"].contains(&c["status"].as_str().unwrap_or("")),
            "{a}"
        );
        if let Some(largest) = c["largest_buffer_bytes"].as_u64() {
            assert!(
                largest as f64 <= headroom as f64 * 0.25,
                "{largest} bytes against a headroom of {headroom}: {a}"
            );
        }
    }
    let v = profile("unchecked", &["--no-gpu-check"]);
    for a in v["probe"]["gpus"].as_array().unwrap() {
        assert_eq!(a["check_unavailable"], "not run: pass --gpu-check");
    }
}

//! `odai probe --gpu-check` on real adapters: Mesa's lavapipe (Vulkan) and llvmpipe (GL/EGL),
//! which scripts/test.sh installs (then ODAI_TEST_REQUIRE_GPU_ADAPTER=1 makes them required).
//! The shaders really run; their figures are the CPU's behind a GPU API, so only their presence,
//! units and consistency are asserted, never a speed.

// The shared helpers (tests/it/common) copy fixture trees with Unix symlinks.
#![cfg(unix)]

use crate::common;

use std::fs;

use common::{odai, ok};
use serde_json::Value;

fn required() -> bool {
    std::env::var("ODAI_TEST_REQUIRE_GPU_ADAPTER").as_deref() == Ok("1")
}

/// The probe's adapters, or `None` (said on stderr) where Mesa is not installed.
fn adapters(v: &Value) -> Option<&Vec<Value>> {
    match v["gpus"].as_array() {
        Some(list) if !list.is_empty() => Some(list),
        _ => {
            assert!(!required(), "Mesa is installed but no adapter: {v}");
            eprintln!("skipped: no GPU adapter (scripts/test.sh installs Mesa)");
            None
        }
    }
}

#[test]
fn every_real_adapter_passes_a_verified_compute_check_with_figures_and_limits() {
    let dir = tempfile::tempdir().unwrap();
    // A class that wants a GPU path: a software rasteriser must never satisfy it, however fast.
    let classes = dir.path().join("classes.toml");
    fs::write(
        &classes,
        "schema_version = 1\n[[class]]\nid = \"gpu-box\"\nlabel = \"GPU box\"\nmin_gpu_bandwidth_gbs = 0.001\n\
         [[class]]\nid = \"any\"\nlabel = \"Any\"\n",
    )
    .unwrap();
    let out = odai()
        .args(["probe", "--format", "json", "--gpu-check", "--classes"])
        .arg(&classes)
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    let Some(list) = adapters(&v) else { return };
    for a in list {
        let name = format!("{} ({})", a["name"], a["backend"]);
        let c = &a["check"];
        assert_eq!(c["status"], "passed", "{name}: {c}");
        assert_eq!(c["error"], Value::Null, "{name}");
        assert_eq!(
            c["functional"],
            "65536 saxpy values, 65536 xorshift32 hashes and 1024 workgroup sums exact",
            "{name}"
        );
        for k in [
            "copy_gb_s",
            "triad_gb_s",
            "matmul_f32_gflop_s",
            "dispatch_p50_us",
        ] {
            assert!(c[k].as_f64().is_some_and(|x| x > 0.0), "{name}: {k} in {c}");
        }
        assert!(c["dispatch_p50_us"].as_f64() <= c["dispatch_p95_us"].as_f64());
        let n = c["matmul_n"].as_u64().unwrap();
        assert!(
            n.is_power_of_two() && (256..=2048).contains(&n),
            "{name}: n {n}"
        );
        let limits = &c["limits"];
        let max_buffer = limits["max_buffer_size_bytes"].as_u64().unwrap();
        assert_eq!(max_buffer, a["max_buffer_size_bytes"].as_u64().unwrap());
        let largest = c["largest_buffer_bytes"].as_u64().unwrap();
        assert!(
            largest >= 1 << 20 && largest <= max_buffer,
            "{name}: {largest}"
        );
        assert!(c["stream_array_bytes"].as_u64().unwrap() <= 64 << 20);
        assert_eq!(
            limits["max_compute_workgroup_size"]
                .as_array()
                .unwrap()
                .len(),
            3
        );
        assert!(
            limits["max_compute_invocations_per_workgroup"]
                .as_u64()
                .unwrap()
                >= 64
        );
        // f16 is measured exactly where the adapter has shader-f16, and said so elsewhere.
        let f16 = c["features"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f == "shader-f16");
        if f16 {
            assert!(c["matmul_f16_gflop_s"].as_f64().unwrap() > 0.0, "{name}");
        } else {
            assert_eq!(
                c["matmul_f16_gflop_s_unavailable"],
                "not supported: the adapter lacks wgpu's shader-f16 feature"
            );
        }
    }
    // Mesa's adapters are software rasterisers: checked, passed, and still not a GPU path.
    if list.iter().all(|a| a["device_type"] == "cpu") {
        assert_eq!(v["class"]["id"], "any", "{}", v["class"]);
    }

    // The text summary puts each adapter's figures under it.
    let text = ok(&odai().args(["probe", "--gpu-check"]).output().unwrap());
    let checks: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("check "))
        .collect();
    assert_eq!(checks.len(), list.len(), "{text}");
    for l in checks {
        assert!(
            l.contains("passed in ") && l.contains(" GB/s") && l.contains("GFLOP/s"),
            "{l}"
        );
    }
}

/// Regression guard for "never counted as a GPU path": llvmpipe's GL driver with its compute
/// extension withdrawn (Mesa's MESA_EXTENSION_OVERRIDE) is a real adapter that cannot run a
/// compute shader. Its check fails with wgpu's own error; the Vulkan adapter beside it still
/// passes, and the probe itself succeeds.
#[test]
fn an_adapter_that_cannot_compute_fails_its_check_with_wgpus_error() {
    let out = odai()
        .env("MESA_EXTENSION_OVERRIDE", "-GL_ARB_compute_shader")
        .args(["probe", "--format", "json", "--gpu-check"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    let Some(list) = adapters(&v) else { return };
    let Some(gl) = list.iter().find(|a| a["backend"] == "gl") else {
        assert!(!required(), "Mesa's GL adapter is missing: {v}");
        return;
    };
    let error = "Validation Error: Caused by: In Device::create_compute_pipeline, label = 'main': \
        Downlevel flags DownlevelFlags(COMPUTE_SHADERS) are required but not supported on the device.: \
        This is not an invalid use of WebGPU: the underlying API or device does not support enough \
        features to be a fully compliant implementation. A subset of the features can still be used. \
        If you are running this program on native and not in a browser and wish to work around this \
        issue, call Adapter::downlevel_properties or Device::downlevel_properties to get a listing of \
        the features the current platform supports.";
    let c = &gl["check"];
    assert_eq!(c["status"], "failed");
    assert_eq!(c["error"], error);
    assert_eq!(c["functional"], Value::Null);
    assert_eq!(c["functional_unavailable"], format!("failed: {error}"));
    assert_eq!(c["triad_gb_s"], Value::Null);
    assert_eq!(
        c["triad_gb_s_unavailable"],
        format!("not measured: {error}")
    );
    for a in list.iter().filter(|a| a["backend"] == "vulkan") {
        assert_eq!(a["check"]["status"], "passed", "{a}");
    }
    let text = ok(&odai()
        .env("MESA_EXTENSION_OVERRIDE", "-GL_ARB_compute_shader")
        .args(["probe", "--gpu-check", "--color", "never"])
        .output()
        .unwrap());
    assert!(
        text.lines().any(|l| l
            .trim_start()
            .strip_prefix("check")
            .is_some_and(|rest| rest.trim_start() == format!("FAILED: {error}"))),
        "{text}"
    );
}

/// A check that overruns `--gpu-check-timeout` (here: no check finishes in a millisecond) is
/// reported per adapter, and the probe exits instead of waiting on the driver's thread.
#[test]
fn a_check_past_its_time_limit_is_reported_and_the_probe_still_exits() {
    let out = odai()
        .args([
            "probe",
            "--format",
            "json",
            "--gpu-check",
            "--gpu-check-timeout",
            "0.001",
        ])
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    let Some(list) = adapters(&v) else { return };
    assert_eq!(list[0]["check"], Value::Null);
    assert_eq!(
        list[0]["check_unavailable"],
        "timed out after 0.001 s checking adapter 0 (a hung driver?)"
    );
}

#[test]
fn gpu_check_and_no_gpu_contradict_each_other() {
    odai()
        .args(["probe", "--gpu-check", "--no-gpu"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "the argument '--gpu-check' cannot be used with '--no-gpu'",
        ));
}

#[test]
fn without_gpu_check_each_adapter_says_how_to_run_it() {
    let out = odai().args(["probe", "--format", "json"]).output().unwrap();
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    let Some(list) = adapters(&v) else { return };
    for a in list {
        assert_eq!(a["check"], Value::Null);
        assert_eq!(a["check_unavailable"], "not run: pass --gpu-check");
    }
}

/// `matrix run --gpu-check`: each device's own probe (probe-DEVICE.json, what its class and the
/// report read) carries the check.
#[test]
fn a_matrix_run_with_gpu_check_records_each_devices_check_in_its_probe() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("toy.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1]\nprompt_tokens = [8]\ngen_tokens = [2]\nreps = 1\nwarmup = 0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    ok(&odai()
        .env("ODAI_CACHE_DIR", common::cache())
        .args(["matrix", "run", "--gpu-check", "--out"])
        .arg(&out)
        .arg(&m)
        .output()
        .unwrap());
    let v: Value =
        serde_json::from_str(&fs::read_to_string(out.join("probe-local.json")).unwrap()).unwrap();
    let Some(list) = adapters(&v) else { return };
    for a in list {
        assert!(
            ["passed", "failed"].contains(&a["check"]["status"].as_str().unwrap_or("")),
            "{a}"
        );
    }
}

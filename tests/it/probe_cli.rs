//! `odai probe` as users and scripts meet it: the live device, the JSON contract's keys, real GPU
//! enumeration, errors with their exact text and exit codes, permissions, pipes and colour.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use common::{copy_tree, fixture, odai, probe_json};
use predicates::prelude::*;
use serde_json::Value;

/// The keys docs/probe-json.md promises always exist.
const CONTRACT: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "schema_version",
            "device",
            "cpu",
            "memory",
            "gpus",
            "npus",
            "thermal",
            "power",
            "class",
        ],
    ),
    (
        "memory",
        &[
            "total_bytes",
            "available_bytes",
            "headroom_bytes",
            "cgroup_limit_bytes",
            "swap_total_bytes",
            "psi_some_avg10",
        ],
    ),
    (
        "thermal",
        &["zones", "max_temp_c", "throttled", "throttle_reasons"],
    ),
    ("power", &["batteries", "on_ac", "energy_meters"]),
];

fn assert_contract(v: &Value) {
    for (section, keys) in CONTRACT {
        let obj = if section.is_empty() { v } else { &v[section] };
        for k in *keys {
            assert!(obj.get(k).is_some(), "missing key {section}.{k}");
            if obj[k].is_null() && !(*section == "memory" && *k == "cgroup_limit_bytes") {
                assert!(
                    obj.get(format!("{k}_unavailable"))
                        .is_some_and(Value::is_string),
                    "{section}.{k} is null without a reason"
                );
            }
        }
    }
}

#[test]
fn live_probe_without_gpu_keeps_the_json_contract() {
    let out = odai()
        .args(["probe", "--format", "json", "--no-gpu"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_contract(&v);
    assert_eq!(v["captured"], false);
    assert_eq!(v["gpus"], Value::Null);
    assert_eq!(v["gpus_unavailable"], "skipped: --no-gpu");
    assert!(v["memory"]["total_bytes"].as_u64().unwrap() > 0);
    assert!(v["cpu"]["logical_cores"].as_u64().unwrap() >= 1);
}

#[test]
fn every_fixture_keeps_the_json_contract() {
    for entry in fs::read_dir(fixture("")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_contract(&probe_json(&path));
        }
    }
}

/// Real enumeration through wgpu. scripts/test.sh installs Mesa (llvmpipe through GL/EGL, lavapipe
/// through Vulkan) and sets ODAI_TEST_REQUIRE_GPU_ADAPTER=1, so there this must find an adapter.
#[test]
fn gpu_enumeration_finds_a_real_adapter() {
    let out = odai()
        .env_remove("NODEVICE_SELECT")
        .env_remove("XDG_RUNTIME_DIR")
        .args(["probe", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    // Regression: Mesa's device-select layer printed this on every headless probe.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("XDG_RUNTIME_DIR"),
        "driver noise on stderr: {stderr}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let required = std::env::var("ODAI_TEST_REQUIRE_GPU_ADAPTER").is_ok_and(|v| v == "1");
    match v["gpus"].as_array() {
        Some(list) => {
            if required {
                assert!(
                    !list.is_empty(),
                    "Mesa is installed but wgpu found no adapter"
                );
            }
            for a in list {
                assert!(a["name"].as_str().is_some_and(|n| !n.is_empty()));
                assert!(
                    ["vulkan", "gl", "metal", "dx12"].contains(&a["backend"].as_str().unwrap())
                );
                assert!(a["device_type"].is_string());
                assert!(a["max_buffer_size_bytes"].as_u64().unwrap() > 0);
            }
        }
        None => {
            assert!(!required, "enumeration failed: {}", v["gpus_unavailable"]);
            assert!(v["gpus_unavailable"].is_string());
        }
    }
}

#[test]
fn gpus_are_not_enumerated_for_a_captured_tree() {
    let out = odai()
        .args(["probe", "--format", "json", "--root"])
        .arg(fixture("intel-laptop"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["gpus_unavailable"],
        "not enumerated: --root points at a captured device tree"
    );
}

#[test]
fn missing_root_is_a_clear_error_with_exit_code_3() {
    odai()
        .args(["probe", "--root", "/no/such/tree"])
        .assert()
        .code(3)
        .stdout("")
        .stderr(
            "odai: error: --root /no/such/tree: no such directory (point --root or ODAI_ROOT at a \
             captured device tree, or omit it to probe this device)\n",
        );
}

#[test]
fn odai_root_env_points_at_a_tree() {
    odai()
        .env("ODAI_ROOT", fixture("raspberry-pi-5"))
        .args(["probe", "--no-gpu"])
        .assert()
        .success()
        .stdout(predicate::str::contains("Raspberry Pi 5 Model B Rev 1.0"));
}

#[test]
fn root_that_is_a_file_is_rejected() {
    odai()
        .args(["probe", "--root", "Cargo.toml"])
        .current_dir(common::repo())
        .assert()
        .code(3)
        .stderr(predicate::str::starts_with(
            "odai: error: --root Cargo.toml: not a directory",
        ));
}

#[test]
fn malformed_classes_file_names_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("classes.toml");
    fs::write(
        &file,
        "schema_version = 1\n\n[[class]]\nid = \"phone\"\nlabel = \"Phone\"\nmax_ram = 4\n",
    )
    .unwrap();
    odai()
        .args(["probe", "--no-gpu", "--classes"])
        .arg(&file)
        .assert()
        .code(3)
        .stderr(format!(
            "odai: error: {}:6:1: unknown field `max_ram`, expected one of `id`, `label`, \
             `description`, `os`, `arch`, `min_ram_gib`, `max_ram_gib`, `min_cores`, `max_cores`, \
             `npu`, `battery`, `board_contains`, `min_gpu_bandwidth_gbs`, `fleet_share`\n",
            file.display()
        ));
}

#[test]
fn user_classes_file_decides_the_class() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("classes.toml");
    fs::write(
        &file,
        "schema_version = 1\n[[class]]\nid = \"big-arm\"\nlabel = \"Big Arm\"\narch = [\"aarch64\"]\nmin_cores = 6\n\
         [[class]]\nid = \"other\"\nlabel = \"Other\"\n",
    )
    .unwrap();
    let out = odai()
        .args(["probe", "--format", "json", "--no-gpu", "--classes"])
        .arg(&file)
        .arg("--root")
        .arg(fixture("jetson-orin"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["class"]["id"], "big-arm");
    assert_eq!(
        v["class"]["reasons"],
        serde_json::json!(["architecture is aarch64", "6 cores >= 6"])
    );
}

#[test]
fn zero_gpu_timeout_is_a_usage_error() {
    odai()
        .args(["probe", "--gpu-timeout", "0"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "\"0\" must be a positive number of seconds",
        ));
}

/// A FIFO in a captured tree would block a naive read forever.
#[test]
fn fifo_in_a_tree_is_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&fixture("raspberry-pi-5"), dir.path());
    let temp = dir.path().join("sys/class/thermal/thermal_zone0/temp");
    fs::remove_file(&temp).unwrap();
    let c = std::ffi::CString::new(temp.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let v = probe_json(dir.path());
    assert_eq!(
        v["thermal"]["zones"][0]["temp_c_unavailable"],
        "unreadable: /sys/class/thermal/thermal_zone0/temp is not a regular file"
    );
}

/// RAPL's energy_uj is root-only since Linux 5.10: the probe must say so, not print zero.
/// Root reads anything, so as root the probe runs as `nobody` through setpriv(1).
#[test]
fn unreadable_rapl_counter_says_needs_root() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    copy_tree(&fixture("intel-laptop"), dir.path());
    let uj = dir.path().join("sys/class/powercap/intel-rapl:0/energy_uj");
    fs::set_permissions(&uj, fs::Permissions::from_mode(0o000)).unwrap();

    let bin = assert_cmd::cargo::cargo_bin("odai");
    let mut cmd = if unsafe { libc::geteuid() } == 0 {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let out = cmd
        .args(["probe", "--format", "json", "--no-gpu", "--root"])
        .arg(dir.path())
        .env_remove("ODAI_ROOT")
        .output()
        .expect("setpriv runs (util-linux; scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let m = &v["power"]["energy_meters"][0];
    assert_eq!(m["label"], "package-0");
    assert_eq!(m["readable"], false);
    assert_eq!(m["reading"], Value::Null);
    assert_eq!(
        m["reading_unavailable"],
        "permission denied: /sys/class/powercap/intel-rapl:0/energy_uj (needs root: RAPL is root-only since Linux 5.10)"
    );
}

#[test]
fn closed_pipe_is_not_an_error() {
    let bin = assert_cmd::cargo::cargo_bin("odai");
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' probe --no-gpu --root '{}' | true; echo \"${{PIPESTATUS[0]}}\"",
            bin.display(),
            fixture("amd-xdna-laptop").display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn colour_follows_the_flag_and_no_color() {
    let root = fixture("intel-laptop");
    let always = odai()
        .args(["probe", "--no-gpu", "--color", "always", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&always.stdout).contains("\x1b["));
    let no_color = odai()
        .env("NO_COLOR", "1")
        .args(["probe", "--no-gpu", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&no_color.stdout).contains('\x1b'));
}

#[test]
fn text_summary_of_a_laptop() {
    let out = odai()
        .args(["probe", "--no-gpu", "--color", "never", "--root"])
        .arg(fixture("intel-laptop"))
        .output()
        .unwrap();
    insta::assert_snapshot!("intel-laptop-text", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn json_reads_back_into_odai_types_unchanged() {
    let v = probe_json(&fixture("hostile"));
    let probe: odai::probe::Probe = odai::sysroot::from_contract_json(v.clone()).unwrap();
    assert_eq!(odai::sysroot::to_contract_json(&probe).unwrap(), v);
}

/// scripts/capture-tree.sh copies what the probe reads; probing the copy must describe this
/// machine as probing it live does (values that drift by the second, like MemAvailable, aside).
#[test]
fn captured_tree_of_this_machine_probes_like_the_machine() {
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("bash")
        .arg(common::repo().join("scripts/capture-tree.sh"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let captured = probe_json(dir.path());
    let out = odai()
        .args(["probe", "--format", "json", "--no-gpu"])
        .output()
        .unwrap();
    let live: Value = serde_json::from_slice(&out.stdout).unwrap();
    for ptr in [
        "/device/hostname",
        "/device/kernel",
        "/device/arch",
        "/device/os",
        "/device/board",
        "/cpu/model_name",
        "/cpu/logical_cores",
        "/cpu/physical_cores",
        "/cpu/quota_cores",
        "/cpu/simd",
        "/memory/total_bytes",
        "/memory/swap_total_bytes",
        "/memory/cgroup_version",
        "/memory/cgroup_limit_bytes",
        "/class/id",
    ] {
        assert_eq!(captured.pointer(ptr), live.pointer(ptr), "{ptr} differs");
    }
    let names = |v: &Value, list: &str| -> Vec<Value> {
        v.pointer(list)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|x| x["name"].clone()).collect())
            .unwrap_or_default()
    };
    for list in [
        "/thermal/zones",
        "/thermal/cooling_devices",
        "/power/batteries",
        "/drm_cards",
    ] {
        assert_eq!(names(&captured, list), names(&live, list), "{list} differs");
    }
}

/// A Vulkan driver that never returns (a real failure mode of broken GPU stacks) must cost the
/// probe its timeout, not hang it — neither during enumeration nor at exit, where the driver's
/// exit handlers would wait on locks the stuck thread holds. The fake driver is a Vulkan ICD
/// built here with the C compiler Rust already needs for linking.
#[test]
fn hung_gpu_driver_times_out_and_the_probe_still_exits() {
    if std::env::var("ODAI_TEST_REQUIRE_GPU_ADAPTER").as_deref() != Ok("1") {
        eprintln!("skipped: needs the Vulkan loader that scripts/test.sh installs");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("hang.c");
    let lib = dir.path().join("libhang.so");
    fs::write(
        &src,
        "#include <unistd.h>\n\
         int vk_icdNegotiateLoaderICDInterfaceVersion(unsigned *v) { for (;;) pause(); }\n\
         void *vk_icdGetInstanceProcAddr(void *i, const char *n) { for (;;) pause(); }\n",
    )
    .unwrap();
    let cc = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .unwrap();
    assert!(cc.success());
    let icd = dir.path().join("hang.json");
    fs::write(
        &icd,
        format!(
            r#"{{"file_format_version": "1.0.0", "ICD": {{"library_path": "{}", "api_version": "1.3.0"}}}}"#,
            lib.display()
        ),
    )
    .unwrap();
    // The harness kills the probe after 60 s: a hang shows as a failed exit status.
    let out = odai()
        .env("VK_ICD_FILENAMES", &icd)
        .env("VK_DRIVER_FILES", &icd)
        .args(["probe", "--format", "json", "--gpu-timeout", "1"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "probe did not exit cleanly: {:?}",
        out.status
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["gpus_unavailable"],
        "timed out after 1.0 s enumerating GPU adapters (a hung driver?)"
    );
}

#[test]
fn bandwidth_is_measured_only_when_asked() {
    let out = odai()
        .args(["probe", "--format", "json", "--no-gpu", "--bandwidth"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["bandwidth"]["triad_gb_s"].as_f64().unwrap() > 0.0);
    assert!(v["bandwidth"]["array_bytes"].as_u64().unwrap() >= 64 << 20);
    let v = probe_json(&fixture("intel-laptop"));
    assert_eq!(v["bandwidth_unavailable"], "not measured: pass --bandwidth");
}

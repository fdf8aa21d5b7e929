//! Sustained runs with live telemetry. A captured tree whose files this test rewrites while the
//! run goes on stands in for a device heating up, throttling, drawing power and draining its
//! battery; and a real short run on this machine, which has no thermal or power files.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use common::{cache, odai};
use serde_json::Value;

/// Writes `text` at `root/path` atomically (rename), so a sample never reads half a file.
fn put(root: &Path, path: &str, text: impl ToString) {
    let p = root.join(path);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    let tmp = p.with_extension("tmp~");
    fs::write(&tmp, text.to_string()).unwrap();
    fs::rename(&tmp, &p).unwrap();
}

/// The device at `t` seconds: heating 5 °C/s, the CPU cooling device on for one second in two,
/// the clock falling, a 10 W package (a 20 J RAPL counter, so it wraps every 2 s: at least once in
/// any 3 s run, yet never twice between samples however loaded the machine) and a 10 W battery
/// drain.
fn device_at(root: &Path, t: f64) {
    put(
        root,
        "sys/class/thermal/thermal_zone0/temp",
        (45_000.0 + 5_000.0 * t) as u64,
    );
    put(
        root,
        "sys/class/thermal/cooling_device0/cur_state",
        (t as u64) % 2,
    );
    put(
        root,
        "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq",
        (3_000_000.0 - 100_000.0 * t).max(800_000.0) as u64,
    );
    put(
        root,
        "sys/class/powercap/intel-rapl:0/energy_uj",
        ((10e6 * t) as u64) % 20_000_000,
    );
    put(
        root,
        "sys/class/power_supply/BAT0/energy_now",
        (50e6 - 10e6 * t / 3600.0) as u64,
    );
}

fn device(root: &Path) {
    put(
        root,
        "proc/meminfo",
        "MemTotal: 16000000 kB\nMemAvailable: 8000000 kB\n",
    );
    put(root, "sys/class/thermal/thermal_zone0/type", "x86_pkg_temp");
    put(root, "sys/class/thermal/cooling_device0/type", "Processor");
    put(root, "sys/class/thermal/cooling_device0/max_state", 3);
    let pol = "sys/devices/system/cpu/cpufreq/policy0";
    put(root, &format!("{pol}/related_cpus"), "0");
    put(root, &format!("{pol}/scaling_max_freq"), 3_000_000);
    put(root, &format!("{pol}/cpuinfo_max_freq"), 3_000_000);
    put(root, "sys/class/powercap/intel-rapl:0/name", "package-0");
    put(
        root,
        "sys/class/powercap/intel-rapl:0/max_energy_range_uj",
        20_000_000,
    );
    put(root, "sys/class/hwmon/hwmon0/name", "broken");
    put(root, "sys/class/hwmon/hwmon0/energy1_input", "x");
    let bat = "sys/class/power_supply/BAT0";
    put(root, &format!("{bat}/type"), "Battery");
    put(root, &format!("{bat}/status"), "Discharging");
    put(root, &format!("{bat}/capacity"), 80);
    put(root, &format!("{bat}/energy_full"), 60_000_000);
    put(root, &format!("{bat}/power_now"), 10_000_000);
    device_at(root, 0.0);
}

#[test]
fn sampler_sees_a_device_heat_up_throttle_and_drain() {
    let root = tempfile::tempdir().unwrap();
    device(root.path());
    let done = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) {
                device_at(root.path(), start.elapsed().as_secs_f64());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let out = odai()
            .env("ODAI_CACHE_DIR", cache())
            .args([
                "bench",
                "--synthetic",
                "smollm2-135m:q8_0",
                "-p",
                "8",
                "-n",
                "32",
            ])
            .args(["--threads", "1", "--sustained", "3s", "--window", "500ms"])
            .args([
                "--checkpoints",
                "1s,3s",
                "--sample-interval",
                "100ms",
                "--format",
                "json",
            ])
            .args(["--idle-baseline", "500ms"])
            .arg("--root")
            .arg(root.path())
            .output()
            .unwrap();
        done.store(true, Ordering::SeqCst);
        out
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sus = &v["sustained"];
    let windows = sus["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 6);
    for w in windows {
        assert!(w["t_s"].is_number() && w["decode_tps"].as_f64().unwrap() > 0.0);
    }
    // Heating: the last window is hotter than the first, and the clock fell.
    assert!(sus["temp_rise_c"].as_f64().unwrap() > 0.0, "{sus}");
    assert!(sus["freq_drop_pct"].as_f64().unwrap() > 0.0, "{sus}");
    // The Processor cooling device engaged during the run.
    assert!(sus["time_to_first_throttle_s"].as_f64().is_some(), "{sus}");
    assert!(sus["stability"].as_f64().unwrap() > 0.0);
    assert_eq!(sus["checkpoints"].as_array().unwrap().len(), 2);
    // 10 W through a RAPL counter that wraps during the run: wrap-around handled, not negative.
    assert_eq!(v["energy_source"], "rapl:package-0");
    let watts = v["mean_power_w"].as_f64().unwrap();
    assert!((7.0..13.0).contains(&watts), "mean power {watts} W");
    assert!(v["energy_j_per_token"].as_f64().unwrap() > 0.0);
    // The simulated device draws 10 W idle too: the model's marginal power is about zero.
    let idle = v["idle_power_w"]
        .as_f64()
        .unwrap_or_else(|| panic!("{}", v["idle_power_w_unavailable"]));
    assert!((7.0..13.0).contains(&idle), "idle {idle} W");
    assert!(v["marginal_power_w"].as_f64().unwrap().abs() < 3.0);
    // 10 W out of a 60 Wh battery: 16.7 %/h.
    let drain = v["battery_drain_pct_per_hour"].as_f64().unwrap();
    assert!((12.0..21.0).contains(&drain), "drain {drain} %/h");
    let unreadable = v["reps"][0]["energy"]["unreadable_meters"]
        .as_array()
        .unwrap();
    assert_eq!(unreadable.len(), 1);
    assert!(
        unreadable[0].as_str().unwrap().starts_with(
            "hwmon-energy broken energy1: unparsable: /sys/class/hwmon/hwmon0/energy1_input"
        ),
        "{unreadable:?}"
    );
}

#[test]
fn a_short_sustained_run_here_has_windows_and_says_why_energy_is_missing() {
    let out = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args([
            "bench",
            "--synthetic",
            "smollm2-135m:q8_0",
            "-p",
            "8",
            "-n",
            "32",
        ])
        .args(["--threads", "1", "--sustained", "2s", "--window", "500ms"])
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sustained"]["windows"].as_array().unwrap().len(), 4);
    assert!(v["sustained"]["stability"].as_f64().unwrap() > 0.0);
    // This machine (like CI) has no RAPL, hwmon, INA3221 or battery.
    if v["energy_source"].is_null() {
        assert_eq!(
            v["energy_source_unavailable"],
            "no energy meter: no RAPL, hwmon energy/power, INA3221 or battery on this device"
        );
        assert_eq!(v["battery_drain_pct_per_hour_unavailable"], "no battery");
    }
    // The CSV of a sustained run is its time series.
    let out = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args([
            "bench",
            "--synthetic",
            "smollm2-135m:q8_0",
            "-p",
            "8",
            "-n",
            "32",
        ])
        .args([
            "--threads",
            "1",
            "--sustained",
            "1s",
            "--window",
            "500ms",
            "--format",
            "csv",
        ])
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "t_s,decode_tps,max_temp_c,cpu_mhz,model_file,threads"
    );
    assert_eq!(lines.len(), 3);
}

#[test]
fn a_paced_tensor_stream_gets_energy_battery_and_temperature_from_the_same_sampler() {
    // silero-vad at its frame rate on the simulated 10 W device: energy per inference, battery
    // %/h at that duty cycle and each window's temperature come from the sampler LLM cells use.
    let root = tempfile::tempdir().unwrap();
    device(root.path());
    let done = AtomicBool::new(false);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) {
                device_at(root.path(), start.elapsed().as_secs_f64());
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let out = odai()
            .env("ORT_DYLIB_PATH", common::fetch_model("onnxruntime-lib"))
            .args(["bench", "--threads", "1", "--model"])
            .arg(common::fetch_model("silero-vad"))
            .args([
                "--shape",
                "input=1x512",
                "--shape",
                "state=2x1x128",
                "--input",
                "sr=16000",
            ])
            .args([
                "--mode",
                "stream",
                "--rate",
                "31.25/s",
                "--duration",
                "3s",
                "--window",
                "1s",
            ])
            .args(["--sample-interval", "100ms", "--format", "json", "--root"])
            .arg(root.path())
            .output()
            .unwrap();
        done.store(true, Ordering::SeqCst);
        out
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &v["energy"];
    assert_eq!(e["energy_source"], "rapl:package-0");
    let watts = e["mean_power_w"].as_f64().unwrap();
    assert!((7.0..13.0).contains(&watts), "mean power {watts} W");
    // About 10 W × 3 s over 93 frames.
    let j = v["energy_j_per_inference"].as_f64().unwrap();
    assert!((0.15..0.5).contains(&j), "{j} J per inference");
    let drain = e["battery_drain_pct_per_hour"].as_f64().unwrap();
    assert!((12.0..21.0).contains(&drain), "drain {drain} %/h");
    let windows = v["stream"]["windows"].as_array().unwrap();
    assert_eq!(windows.len(), 3);
    let first = windows[0]["max_temp_c"].as_f64().unwrap();
    let last = windows[2]["max_temp_c"].as_f64().unwrap();
    assert!(last > first, "heating shows per window: {first} → {last}");
}

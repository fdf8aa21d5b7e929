//! `odai probe --root` on every captured device tree in tests/fixtures: the parsed values, and a
//! snapshot of the whole JSON document so any change to the contract is seen in review.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use common::{fixture, probe_json};
use serde_json::{Value, json};

fn snapshot(name: &str, v: &Value) {
    insta::assert_json_snapshot!(name, v, { ".odai_version" => "[version]" });
}

#[test]
fn intel_laptop_on_battery_with_rapl_and_throttle_counters() {
    let v = probe_json(&fixture("intel-laptop"));
    assert_eq!(v["captured"], true);
    assert_eq!(v["device"]["board"], "LENOVO ThinkPad X1 Carbon Gen 9");
    assert_eq!(v["device"]["arch"], "x86_64");
    assert_eq!(v["cpu"]["logical_cores"], 8);
    assert_eq!(v["cpu"]["physical_cores"], 4);
    assert_eq!(v["cpu"]["simd"]["avx512_vnni"], true);
    assert_eq!(v["cpu"]["simd"]["avx_vnni"], false);
    assert_eq!(v["cpu"]["policies"][0]["hw_max_mhz"], 4700.0);
    let bat = &v["power"]["batteries"][0];
    assert_eq!(bat["name"], "BAT0");
    assert_eq!(bat["status"], "Discharging");
    assert_eq!(bat["capacity_pct"], 76.0);
    assert_eq!(bat["energy_wh"], 43.12);
    assert_eq!(bat["power_w"], 9.87);
    // A mouse battery (scope Device) is not the device's battery.
    assert_eq!(v["power"]["batteries"].as_array().unwrap().len(), 1);
    assert_eq!(v["power"]["on_ac"], false);
    let meters = v["power"]["energy_meters"].as_array().unwrap();
    let labels: Vec<&str> = meters
        .iter()
        .map(|m| m["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["package-0", "core", "uncore", "psys"]);
    assert!(
        meters
            .iter()
            .all(|m| m["kind"] == "rapl" && m["readable"] == true)
    );
    assert_eq!(
        meters[0]["path"],
        "/sys/class/powercap/intel-rapl:0/energy_uj"
    );
    assert_eq!(
        v["thermal"]["throttle_counters"],
        json!({"core_events": 7, "package_events": 37})
    );
    assert_eq!(v["thermal"]["throttled"], true);
    assert_eq!(
        v["thermal"]["throttle_reasons"],
        json!(["thermal_throttle counters: 7 core and 37 package events since boot"])
    );
    assert_eq!(v["thermal"]["max_temp_c"], 71.0);
    assert_eq!(v["drm_cards"][0]["driver"], "i915");
    assert_eq!(v["class"]["id"], "laptop");
    snapshot("intel-laptop", &v);
}

#[test]
fn container_nested_cgroup_v2_limit_bounds_headroom() {
    let v = probe_json(&fixture("container-cgroup-v2"));
    let m = &v["memory"];
    assert_eq!(m["available_bytes"], 52_428_800u64 * 1024);
    // The pod's 4 GiB limit with 1.2 GiB used binds, not the container's "max" nor MemAvailable.
    assert_eq!(m["cgroup_version"], "v2");
    assert_eq!(m["cgroup_limit_bytes"], 4_294_967_296u64);
    assert_eq!(m["cgroup_usage_bytes"], 1_288_490_188u64);
    assert_eq!(m["headroom_bytes"], 4_294_967_296u64 - 1_288_490_188);
    assert_eq!(m["headroom_source"], "cgroup");
    assert!(
        m["cgroup_path"]
            .as_str()
            .unwrap()
            .ends_with("kubepods-burstable-pod1234.slice")
    );
    assert_eq!(m["psi_some_avg10"], 1.52);
    assert_eq!(m["psi_full_avg60"], 0.12);
    assert_eq!(v["cpu"]["quota_cores"], 2.0);
    assert_eq!(v["cpu"]["simd"]["amx"], true);
    snapshot("container-cgroup-v2", &v);
}

#[test]
fn cgroup_v1_sandbox_without_thermal_or_power_files() {
    let v = probe_json(&fixture("ci-sandbox-cgroup-v1"));
    let m = &v["memory"];
    assert_eq!(m["cgroup_version"], "v1");
    // The leaf says "unlimited" (v1's sentinel); its parent's 8 GiB limit binds.
    assert_eq!(m["cgroup_limit_bytes"], 8_589_934_592u64);
    assert_eq!(m["headroom_bytes"], 8_589_934_592u64 - 2_147_483_648);
    assert_eq!(m["swap_total_bytes"], 0);
    assert_eq!(v["cpu"]["quota_cores"], Value::Null);
    assert!(v["cpu"].get("quota_cores_unavailable").is_none());
    assert_eq!(v["cpu"]["policies"], Value::Null);
    assert!(
        v["cpu"]["policies_unavailable"]
            .as_str()
            .unwrap()
            .starts_with("missing: /sys/devices/system/cpu/cpufreq")
    );
    assert_eq!(v["thermal"]["zones"], json!([]));
    assert_eq!(v["thermal"]["max_temp_c"], Value::Null);
    assert_eq!(
        v["thermal"]["max_temp_c_unavailable"],
        "missing: /sys/class/thermal/thermal_zone*"
    );
    assert_eq!(v["thermal"]["throttled"], Value::Null);
    assert_eq!(
        v["thermal"]["throttled_unavailable"],
        "no readable thermal zone, cooling device, cpufreq policy or throttle counter"
    );
    assert_eq!(v["power"]["batteries"], json!([]));
    assert_eq!(v["power"]["on_ac"], Value::Null);
    assert_eq!(v["power"]["energy_meters"], json!([]));
    assert_eq!(v["class"]["id"], "desktop-or-server");
    snapshot("ci-sandbox-cgroup-v1", &v);
}

#[test]
fn raspberry_pi_5_that_has_throttled() {
    let v = probe_json(&fixture("raspberry-pi-5"));
    assert_eq!(v["device"]["board"], "Raspberry Pi 5 Model B Rev 1.0");
    assert_eq!(v["device"]["soc"], "brcm,bcm2712");
    assert_eq!(v["cpu"]["model_name"], "4x Cortex-A76");
    assert_eq!(v["cpu"]["isa"], "arm");
    assert_eq!(v["cpu"]["simd"]["dotprod"], true);
    assert_eq!(v["cpu"]["simd"]["i8mm"], false);
    let rpi = &v["thermal"]["rpi_throttled"];
    assert_eq!(rpi["raw"], "0xe0000");
    assert_eq!(rpi["throttled_now"], false);
    assert_eq!(rpi["throttled_occurred"], true);
    assert_eq!(v["thermal"]["throttled"], true);
    // The fan at full speed cools; it does not throttle.
    let reasons = v["thermal"]["throttle_reasons"].as_array().unwrap();
    assert_eq!(reasons.len(), 3);
    assert!(
        reasons
            .iter()
            .all(|r| !r.as_str().unwrap().contains("pwm-fan"))
    );
    assert_eq!(v["class"]["id"], "single-board-computer");
    snapshot("raspberry-pi-5", &v);
}

#[test]
fn jetson_orin_ina3221_rails_are_energy_meters() {
    let v = probe_json(&fixture("jetson-orin"));
    assert_eq!(
        v["device"]["board"],
        "NVIDIA Jetson Orin Nano Developer Kit"
    );
    assert_eq!(v["cpu"]["model_name"], "6x Cortex-A78AE");
    let meters = v["power"]["energy_meters"].as_array().unwrap();
    assert_eq!(meters.len(), 3);
    assert_eq!(meters[0]["kind"], "ina3221");
    assert_eq!(meters[0]["label"], "VDD_IN");
    assert_eq!(meters[0]["unit"], "W");
    // 5072 mV x 1236 mA
    assert_eq!(meters[0]["reading"], 6.268992);
    assert_eq!(v["thermal"]["max_temp_c"], 53.1);
    assert_eq!(v["thermal"]["throttled"], false);
    assert_eq!(v["class"]["id"], "edge-box");
    snapshot("jetson-orin", &v);
}

#[test]
fn intel_npu_laptop_reports_intel_vpu() {
    let v = probe_json(&fixture("intel-npu-laptop"));
    let npu = &v["npus"][0];
    assert_eq!(npu["driver"], "intel_vpu");
    assert_eq!(npu["node"], "/dev/accel/accel0");
    assert_eq!(npu["description"], "Intel NPU");
    assert_eq!(npu["pci_vendor"], "0x8086");
    assert_eq!(npu["pci_device"], "0x7d1d");
    // Charging battery with charge_* only: energy from charge_now (µAh) x voltage_now (µV).
    let bat = &v["power"]["batteries"][0];
    assert_eq!(bat["status"], "Charging");
    assert!((bat["energy_wh"].as_f64().unwrap() - 1.835 * 16.2).abs() < 1e-9);
    assert_eq!(bat["current_sign"], Value::Null);
    assert_eq!(v["power"]["on_ac"], true);
    // x86_pkg_temp's unset passive trip (0) is not a throttle; an active fan is not either.
    assert_eq!(v["thermal"]["throttled"], false);
    assert_eq!(v["cpu"]["simd"]["avx_vnni"], true);
    assert_eq!(v["cpu"]["simd"]["avx512f"], false);
    assert_eq!(v["class"]["id"], "ai-pc");
    snapshot("intel-npu-laptop", &v);
}

#[test]
fn amd_xdna_laptop_reports_amdxdna_and_hwmon_meters() {
    let v = probe_json(&fixture("amd-xdna-laptop"));
    assert_eq!(v["npus"][0]["driver"], "amdxdna");
    assert_eq!(v["npus"][0]["pci_vendor"], "0x1022");
    let bat = &v["power"]["batteries"][0];
    // No power_now: |current_now| x voltage_now = 0.82 A x 16.2 V.
    assert!((bat["power_w"].as_f64().unwrap() - 13.284).abs() < 1e-9);
    assert_eq!(bat["current_sign"], "positive while discharging");
    let kinds: Vec<&str> = v["power"]["energy_meters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["hwmon-power", "hwmon-energy"]);
    assert_eq!(v["power"]["energy_meters"][1]["reading"], 5821.963);
    assert_eq!(v["class"]["id"], "ai-pc");
    snapshot("amd-xdna-laptop", &v);
}

#[test]
fn android_phone_negative_current_in_microamps() {
    let v = probe_json(&fixture("android-phone"));
    assert_eq!(v["device"]["os_family"], "android");
    assert_eq!(v["device"]["os"], "Android 14");
    assert_eq!(v["device"]["board"], "motorola moto g84 5G");
    assert_eq!(v["device"]["soc"], "QTI SM6375");
    // No /proc/sys/kernel/arch on a 5.10 kernel: told from cpuinfo instead.
    assert_eq!(v["device"]["arch"], "aarch64");
    assert_eq!(v["cpu"]["model_name"], "2x Cortex-A78 + 6x Cortex-A55");
    let bat = &v["power"]["batteries"][0];
    assert_eq!(bat["current_a"], -0.452);
    assert_eq!(bat["voltage_v"], 3.912);
    assert_eq!(bat["current_sign"], "negative while discharging");
    assert!((bat["power_w"].as_f64().unwrap() - 0.452 * 3.912).abs() < 1e-9);
    // charge_counter (µAh) x voltage_now when there is no energy_now or charge_now.
    assert!((bat["energy_wh"].as_f64().unwrap() - 2.76 * 3.912).abs() < 1e-9);
    assert_eq!(v["power"]["on_ac"], false);
    // Only the compute DSP is an NPU path: not the audio DSP, not the secure node.
    let nodes: Vec<&str> = v["npus"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["node"].as_str().unwrap())
        .collect();
    assert_eq!(nodes, ["/dev/fastrpc-cdsp"]);
    assert_eq!(v["npus"][0]["driver"], "fastrpc");
    assert_eq!(v["class"]["id"], "midrange-phone");
    snapshot("android-phone", &v);
}

#[test]
fn rock_5b_rknpu_devfreq_and_coral_apex() {
    let v = probe_json(&fixture("rock-5b"));
    let npus = v["npus"].as_array().unwrap();
    assert_eq!(npus.len(), 2);
    assert_eq!(npus[0]["node"], "/dev/apex_0");
    assert_eq!(npus[0]["driver"], "apex");
    assert_eq!(npus[1]["node"], "/sys/class/devfreq/fdab0000.npu");
    assert_eq!(npus[1]["driver"], "rknpu");
    assert_eq!(v["device"]["soc"], "rockchip,rk3588");
    // The vendor kernel caps the big cores below their hardware maximum: a throttle reason.
    assert_eq!(v["thermal"]["throttled"], true);
    assert_eq!(
        v["thermal"]["throttle_reasons"][0],
        "policy4: scaling_max_freq 2256 MHz below hardware max 2400 MHz"
    );
    assert_eq!(v["class"]["id"], "single-board-computer");
    snapshot("rock-5b", &v);
}

#[test]
fn hostile_tree_gives_reasons_not_crashes() {
    let v = probe_json(&fixture("hostile"));
    let reason = |obj: &Value, key: &str| -> String {
        assert_eq!(obj[key], Value::Null, "{key} should be null");
        obj[format!("{key}_unavailable")]
            .as_str()
            .unwrap_or_else(|| panic!("{key}_unavailable missing"))
            .to_owned()
    };
    assert_eq!(
        reason(&v["device"], "hostname"),
        "unparsable: /proc/sys/kernel/hostname is not UTF-8 text"
    );
    assert_eq!(
        reason(&v["device"], "kernel"),
        "unparsable: /proc/sys/kernel/osrelease is empty"
    );
    assert!(reason(&v["memory"], "total_bytes").starts_with("unparsable: /proc/meminfo holds"));
    assert!(reason(&v["memory"], "headroom_bytes").starts_with("unparsable: /proc/meminfo"));
    assert!(
        reason(&v["memory"], "cgroup_limit_bytes").starts_with("unparsable: /proc/self/cgroup")
    );
    assert_eq!(
        reason(&v["cpu"], "simd"),
        "unparsable: /proc/cpuinfo has neither flags nor Features"
    );
    // online "0-" is garbage; the one processor block of the truncated cpuinfo still counts.
    assert_eq!(v["cpu"]["logical_cores"], 1);
    let pol = &v["cpu"]["policies"][0];
    assert_eq!(
        reason(pol, "cur_mhz"),
        "unparsable: /sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq holds \"fast\", not a number"
    );
    assert_eq!(
        reason(pol, "governor"),
        "unparsable: /sys/devices/system/cpu/cpufreq/policy0/scaling_governor is empty"
    );
    let zones = &v["thermal"]["zones"];
    assert_eq!(
        reason(&zones[0], "temp_c"),
        "unparsable: /sys/class/thermal/thermal_zone0/temp holds -274000000 m°C, not a plausible temperature"
    );
    assert_eq!(
        reason(&zones[1], "temp_c"),
        "unparsable: /sys/class/thermal/thermal_zone1/temp is a directory"
    );
    assert_eq!(
        reason(&zones[1], "kind"),
        "missing: /sys/class/thermal/thermal_zone1/type"
    );
    assert!(reason(&v["thermal"], "rpi_throttled").contains("holds \"zzz\", not a hex word"));
    assert_eq!(v["thermal"]["throttled"], Value::Null);
    let bat = &v["power"]["batteries"][0];
    assert_eq!(
        reason(bat, "capacity_pct"),
        "unparsable: /sys/class/power_supply/BAT0/capacity holds 250, not a percentage"
    );
    assert_eq!(
        reason(bat, "status"),
        "unparsable: /sys/class/power_supply/BAT0/status is not UTF-8 text"
    );
    assert!(reason(&v["power"], "on_ac").contains("holds \"maybe\""));
    let meters = v["power"]["energy_meters"].as_array().unwrap();
    assert_eq!(meters[0]["readable"], false);
    assert!(reason(&meters[0], "reading").contains("\"99999999999999999999999\", not a number"));
    assert_eq!(meters[1]["kind"], "ina3221");
    assert!(reason(&meters[1], "reading").contains("\"NaN\", not a number"));
    assert_eq!(
        reason(&v["npus"][0], "driver"),
        "unparsable: /sys/class/accel/accel0/device/driver is not a symlink"
    );
    snapshot("hostile", &v);
}

//! The probe where there is no `/proc` or `/sys` (macOS, Windows): CPU, memory and device
//! figures from the OS through `sysinfo`, SIMD features from the CPU itself (std's run-time
//! detection, the same answer odai's kernels dispatch on), batteries through `starship-battery`
//! (IOKit power sources on macOS, the battery device interface on Windows) and the AC line from
//! `GetSystemPowerStatus` on Windows. What the OS does not expose is `unavailable: reason`.
//!
//! On Linux and Android the `SysRoot` readers stay in charge (they see cgroups, PSI, throttle
//! counters and captured trees, which sysinfo does not); there this module is only the
//! cross-check of their figures (the tests below).

use std::collections::BTreeMap;

use crate::sysroot::{Reading, SysRoot};

use super::cpu::Cpu;
use super::device::Device;
use super::memory::Memory;
use super::power::Power;
use super::thermal::Thermal;

/// Whether the probe of `root` comes from here: the live device of an OS without procfs.
pub fn applies(root: &SysRoot) -> bool {
    root.is_live() && !cfg!(any(target_os = "linux", target_os = "android"))
}

/// Why a Linux kernel interface has no counterpart on this OS, in the contract's words.
fn not_on_this_os(what: &str) -> String {
    format!("not on {}: {what}", crate::platform::family())
}

fn system() -> Result<sysinfo::System, String> {
    sysinfo::System::new().map_err(|e| format!("unreadable: sysinfo could not start ({e})"))
}

/// A count or size the OS gave: zero is what sysinfo answers when its call failed, and no
/// device has zero memory or zero cores, so zero is a failure here, not a figure.
fn nonzero<T: PartialEq + Default>(v: T, what: &str) -> Reading<T> {
    if v == T::default() {
        Reading::unavailable(format!("unreadable: the OS reported no {what}"))
    } else {
        Reading::Value(v)
    }
}

/// The CPU brand string and the logical CPU count, from one CPU-list refresh.
fn cpu_list() -> (Reading<String>, Reading<u32>) {
    match system() {
        Ok(mut s) => {
            s.refresh_cpu_list(sysinfo::CpuRefreshKind::nothing());
            let brand = s
                .cpus()
                .first()
                .map(|c| c.brand().trim().to_owned())
                .unwrap_or_default();
            (
                nonzero(brand, "CPU brand string"),
                nonzero(s.cpus().len() as u32, "logical CPUs"),
            )
        }
        Err(r) => (Reading::unavailable(r.clone()), Reading::unavailable(r)),
    }
}

pub fn cpu() -> Cpu {
    let (model_name, logical) = cpu_list();
    let physical = match sysinfo::System::physical_core_count() {
        Ok(n) => nonzero(n as u32, "physical cores"),
        Err(e) => Reading::unavailable(format!("unreadable: physical core count ({e})")),
    };
    // std's answer honours the process's affinity and job limits on Windows; macOS has no CPU
    // affinity, so there every logical CPU is usable.
    let allowed_cores = match std::thread::available_parallelism() {
        Ok(n) => Reading::Value(n.get() as u32),
        Err(e) => Reading::unavailable(format!("unreadable: available parallelism ({e})")),
    };
    let (isa, simd) = simd();
    Cpu {
        model_name,
        logical_cores: logical,
        physical_cores: physical,
        allowed_cpus: Reading::unavailable(not_on_this_os(
            "CPU lists are Linux's (sched_getaffinity)",
        )),
        allowed_cores,
        allowed_physical_cores: Reading::unavailable(not_on_this_os(
            "which physical cores the allowed CPUs sit on is read from Linux's sysfs topology",
        )),
        quota_cores: Reading::unavailable(not_on_this_os("CPU quotas are Linux cgroups'")),
        policies: Reading::unavailable(not_on_this_os("cpufreq policies are Linux's")),
        isa,
        simd,
    }
}

/// The inference-relevant features, named as the Linux reader names them (`cpu.rs`), from the
/// CPU's own answer (cpuid on x86, sysctl/hwcaps on Arm). AMX is left out: std's detection of it
/// is not stable, and an absent key says "not known", where `false` would say "absent".
fn simd() -> (Reading<String>, Reading<BTreeMap<String, bool>>) {
    #[cfg(target_arch = "x86_64")]
    {
        let f = BTreeMap::from([
            ("avx2".to_owned(), std::is_x86_feature_detected!("avx2")),
            ("fma".to_owned(), std::is_x86_feature_detected!("fma")),
            ("f16c".to_owned(), std::is_x86_feature_detected!("f16c")),
            (
                "avx512f".to_owned(),
                std::is_x86_feature_detected!("avx512f"),
            ),
            (
                "avx512_vnni".to_owned(),
                std::is_x86_feature_detected!("avx512vnni"),
            ),
            (
                "avx512_bf16".to_owned(),
                std::is_x86_feature_detected!("avx512bf16"),
            ),
            (
                "avx_vnni".to_owned(),
                std::is_x86_feature_detected!("avxvnni"),
            ),
        ]);
        (Reading::Value("x86".into()), Reading::Value(f))
    }
    #[cfg(target_arch = "aarch64")]
    {
        let f = BTreeMap::from([
            (
                "neon".to_owned(),
                std::arch::is_aarch64_feature_detected!("neon"),
            ),
            (
                "fp16".to_owned(),
                std::arch::is_aarch64_feature_detected!("fp16"),
            ),
            (
                "dotprod".to_owned(),
                std::arch::is_aarch64_feature_detected!("dotprod"),
            ),
            (
                "i8mm".to_owned(),
                std::arch::is_aarch64_feature_detected!("i8mm"),
            ),
            (
                "bf16".to_owned(),
                std::arch::is_aarch64_feature_detected!("bf16"),
            ),
            (
                "sve".to_owned(),
                std::arch::is_aarch64_feature_detected!("sve"),
            ),
            (
                "sve2".to_owned(),
                std::arch::is_aarch64_feature_detected!("sve2"),
            ),
        ]);
        (Reading::Value("arm".into()), Reading::Value(f))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let r = format!(
            "unavailable: no feature list for {}",
            std::env::consts::ARCH
        );
        (Reading::unavailable(r.clone()), Reading::unavailable(r))
    }
}

pub fn memory() -> Memory {
    let (total, available, swap_total, swap_free) = match system() {
        Ok(mut s) => {
            s.refresh_memory();
            (
                nonzero(s.total_memory(), "total memory"),
                nonzero(s.available_memory(), "available memory"),
                // No swap configured is a real zero (a Windows machine without a page file),
                // and sysinfo reads swap with the same call that gave the memory above.
                Reading::Value(s.total_swap()),
                Reading::Value(s.free_swap()),
            )
        }
        Err(r) => {
            let u = || Reading::unavailable(r.clone());
            (u(), u(), u(), u())
        }
    };
    let source = match &available {
        Reading::Value(_) => Reading::Value("os".to_owned()),
        Reading::Unavailable(r) => Reading::Unavailable(r.clone()),
    };
    fn no_cgroup<T>() -> Reading<T> {
        Reading::unavailable(not_on_this_os("cgroups are Linux's"))
    }
    fn no_psi() -> Reading<f64> {
        Reading::unavailable(not_on_this_os("pressure stall information is Linux's"))
    }
    Memory {
        total_bytes: total,
        headroom_bytes: available.clone(),
        available_bytes: available,
        headroom_source: source,
        cgroup_version: no_cgroup(),
        cgroup_path: no_cgroup(),
        cgroup_limit_bytes: no_cgroup(),
        cgroup_usage_bytes: no_cgroup(),
        swap_total_bytes: swap_total,
        swap_free_bytes: swap_free,
        psi_some_avg10: no_psi(),
        psi_some_avg60: no_psi(),
        psi_full_avg10: no_psi(),
        psi_full_avg60: no_psi(),
    }
}

fn text(r: Result<String, sysinfo::Error>, what: &str) -> Reading<String> {
    match r {
        Ok(s) if !s.trim().is_empty() => Reading::Value(s.trim().to_owned()),
        Ok(_) => Reading::unavailable(format!("unreadable: the OS reported no {what}")),
        Err(e) => Reading::unavailable(format!("unreadable: {what} ({e})")),
    }
}

pub fn device() -> Device {
    let arch = crate::platform::kernel_machine().map(|a| match a.as_str() {
        "arm64" => "aarch64".to_owned(),
        "amd64" => "x86_64".to_owned(),
        _ => a,
    });
    // The product (a Mac's model identifier, a PC's DMI product name), with its vendor.
    let board = match (sysinfo::Product::vendor_name(), sysinfo::Product::name()) {
        (Ok(v), Ok(p)) if !v.trim().is_empty() && !p.starts_with(v.trim()) => {
            Reading::Value(format!("{} {}", v.trim(), p.trim()))
        }
        (_, p) => text(p, "product name"),
    };
    // Apple silicon names its SoC in the CPU brand ("Apple M2 Pro"); a PC's CPU is no SoC.
    // Only the brand: the whole CPU probe (core counts, feature detection) is not needed here.
    let brand = cpu_list().0;
    let soc = match brand.value() {
        Some(b) if b.starts_with("Apple ") => Reading::Value(b.clone()),
        _ => Reading::unavailable(not_on_this_os(
            "a SoC name is read from a device tree or Android's properties",
        )),
    };
    Device {
        hostname: text(sysinfo::System::host_name(), "host name"),
        os_family: crate::platform::family().to_owned(),
        os: text(sysinfo::System::long_os_version(), "OS version"),
        kernel: text(sysinfo::System::kernel_version(), "kernel version"),
        arch,
        board,
        soc,
    }
}

pub fn thermal() -> Thermal {
    let why = if cfg!(target_os = "macos") {
        "not exposed: macOS gives temperatures only through private SMC keys"
    } else if cfg!(windows) {
        "not read: Windows exposes thermal zones only through WMI (MSAcpi_ThermalZoneTemperature, \
         administrator-only), which odai does not query"
    } else {
        "not read: no thermal interface odai knows on this OS"
    };
    Thermal {
        zones: Vec::new(),
        max_temp_c: Reading::unavailable(why),
        cooling_devices: Vec::new(),
        throttle_counters: Reading::unavailable(not_on_this_os(
            "throttle counters are Linux's thermal_throttle sysfs",
        )),
        rpi_throttled: Reading::Value(None),
        throttled: Reading::unavailable(why),
        throttle_reasons: Vec::new(),
    }
}

/// This process's resident memory through sysinfo (task_info on macOS).
pub fn own_rss_bytes() -> Option<u64> {
    let pid = sysinfo::get_current_pid().ok()?;
    let mut s = system().ok()?;
    s.refresh_processes_specifics(
        sysinfo::ProcessesToUpdate::Some(&[pid]),
        false,
        sysinfo::ProcessRefreshKind::nothing().with_memory(),
    );
    s.process(pid).map(|p| p.memory()).filter(|&b| b > 0)
}

#[cfg(any(target_os = "macos", windows))]
pub fn power() -> Power {
    use starship_battery::units::electric_potential::volt;
    use starship_battery::units::energy::watt_hour;
    use starship_battery::units::power::watt;
    use starship_battery::units::ratio::percent;

    let mut batteries = Vec::new();
    let mut unreadable = None;
    match starship_battery::Manager::new().and_then(|m| m.batteries()) {
        Ok(all) => {
            for (i, b) in all.enumerate() {
                let b = match b {
                    Ok(b) => b,
                    Err(e) => {
                        unreadable = Some(format!("unreadable: battery {i} ({e})"));
                        continue;
                    }
                };
                // The Linux ABI's words (Documentation/ABI/testing/sysfs-class-power), so a
                // scorecard reads a Mac's status as it reads a Linux laptop's.
                let status = match b.state() {
                    starship_battery::State::Charging => "Charging",
                    starship_battery::State::Discharging => "Discharging",
                    starship_battery::State::Full => "Full",
                    starship_battery::State::Paused => "Not charging",
                    starship_battery::State::Empty => "Discharging",
                    starship_battery::State::Unknown => "Unknown",
                };
                let watts = f64::from(b.energy_rate().get::<watt>()).abs();
                batteries.push(super::power::Battery {
                    name: format!("BAT{i}"),
                    status: Reading::Value(status.to_owned()),
                    capacity_pct: Reading::Value(f64::from(b.state_of_charge().get::<percent>())),
                    energy_wh: Reading::Value(f64::from(b.energy().get::<watt_hour>())),
                    energy_full_wh: Reading::Value(f64::from(b.energy_full().get::<watt_hour>())),
                    power_w: Reading::Value(watts),
                    current_a: Reading::unavailable(
                        "not exposed: the OS battery interface gives power, not current",
                    ),
                    voltage_v: Reading::Value(f64::from(b.voltage().get::<volt>())),
                    current_sign: Reading::unavailable(
                        "not exposed: the OS battery interface gives power, not current",
                    ),
                });
            }
        }
        Err(e) => unreadable = Some(format!("unreadable: batteries ({e})")),
    }
    let supplies = ac_line().into_iter().collect::<Vec<_>>();
    let on_ac = super::power::on_ac(&supplies, &batteries).or_else(|| match &unreadable {
        Some(r) => Reading::unavailable(r.clone()),
        None => Reading::unavailable("no AC line status and no battery status"),
    });
    Power {
        batteries,
        supplies,
        on_ac,
        energy_meters: Vec::new(),
    }
}

#[cfg(not(any(target_os = "macos", windows)))]
pub fn power() -> Power {
    Power {
        batteries: Vec::new(),
        supplies: Vec::new(),
        on_ac: Reading::unavailable(not_on_this_os("no power interface odai knows")),
        energy_meters: Vec::new(),
    }
}

/// The mains line as a supply, from GetSystemPowerStatus (ACLineStatus: 0 offline, 1 online,
/// 255 unknown).
#[cfg(windows)]
fn ac_line() -> Option<super::power::Supply> {
    use windows_sys::Win32::System::Power::{GetSystemPowerStatus, SYSTEM_POWER_STATUS};
    // SAFETY: GetSystemPowerStatus fills the zeroed struct.
    let mut s: SYSTEM_POWER_STATUS = unsafe { std::mem::zeroed() };
    let ok = unsafe { GetSystemPowerStatus(&mut s) } != 0;
    let online = match (ok, s.ACLineStatus) {
        (false, _) => Reading::unavailable(format!(
            "unreadable: GetSystemPowerStatus ({})",
            std::io::Error::last_os_error()
        )),
        (true, 0) => Reading::Value(false),
        (true, 1) => Reading::Value(true),
        (true, _) => Reading::unavailable(
            "not known: GetSystemPowerStatus says the AC line status is unknown",
        ),
    };
    Some(super::power::Supply {
        name: "AC".into(),
        kind: "Mains".into(),
        online,
    })
}

/// macOS: starship-battery does not report the adapter; a battery's state says it instead.
#[cfg(target_os = "macos")]
fn ac_line() -> Option<super::power::Supply> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// sysinfo and odai's own /proc readers read the same kernel: their figures must agree.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_linux_readers_agree_with_sysinfo() {
        let root = SysRoot::live();
        let ours = super::super::cpu::probe(&root);
        let theirs = cpu();
        assert_eq!(ours.logical_cores, theirs.logical_cores);
        assert_eq!(ours.isa, theirs.isa);
        // std's detection and /proc/cpuinfo's flags: the same CPUID bits (AMX left out here).
        let (ours_simd, theirs_simd) = (ours.simd.value().unwrap(), theirs.simd.value().unwrap());
        for (k, v) in theirs_simd {
            assert_eq!(ours_simd.get(k), Some(v), "{k}");
        }
        let (ours_mem, theirs_mem) = (super::super::memory::probe(&root), memory());
        assert_eq!(ours_mem.total_bytes, theirs_mem.total_bytes);
        assert_eq!(ours_mem.swap_total_bytes, theirs_mem.swap_total_bytes);
        // Available memory moves between two reads; a tenth apart would be a unit error.
        let (a, b) = (
            *ours_mem.available_bytes.value().unwrap() as f64,
            *theirs_mem.available_bytes.value().unwrap() as f64,
        );
        assert!((a - b).abs() < a / 10.0, "{a} vs {b}");
        let rss = own_rss_bytes().unwrap() as f64;
        let statm = crate::platform::own_rss_bytes().unwrap() as f64;
        assert!((rss - statm).abs() < statm / 4.0, "{rss} vs {statm}");
        assert_eq!(device().arch, super::super::device::probe(&root).arch);
    }

    #[test]
    fn the_native_probe_never_reports_a_zero_size() {
        let m = memory();
        assert!(m.total_bytes.value().is_none_or(|&b| b > 0));
        assert!(m.available_bytes.value().is_none_or(|&b| b > 0));
        let c = cpu();
        assert!(c.logical_cores.value().is_none_or(|&n| n > 0));
        assert_eq!(
            nonzero(0u64, "memory"),
            Reading::unavailable("unreadable: the OS reported no memory")
        );
        assert!(!applies(&SysRoot::at(&std::env::temp_dir()).unwrap()));
    }
}

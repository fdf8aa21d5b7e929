//! Thermal state: zones and trip points, cooling devices, x86 throttle counters, the Raspberry Pi
//! firmware's throttle bits, and one verdict — is this device throttled — with its reasons.

use serde::{Deserialize, Serialize};

use super::cpu::Cpu;
use crate::sysroot::{Reading, SysRoot, excerpt};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Thermal {
    pub zones: Vec<Zone>,
    pub max_temp_c: Reading<f64>,
    pub cooling_devices: Vec<CoolingDevice>,
    /// Summed `thermal_throttle` counters over CPUs; null on non-x86 or when absent.
    pub throttle_counters: Reading<Option<ThrottleCounters>>,
    /// Raspberry Pi firmware `get_throttled`; null on other boards.
    pub rpi_throttled: Reading<Option<RpiThrottled>>,
    /// true, false, or null with `throttled_unavailable` when nothing could tell.
    pub throttled: Reading<bool>,
    pub throttle_reasons: Vec<String>,
}

/// A thermal zone (Documentation/driver-api/thermal/sysfs-api.rst; temperatures in m°C).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Zone {
    pub name: String,
    /// The zone's `type` (`x86_pkg_temp`, `cpu-thermal`, `CPU-therm`…).
    pub kind: Reading<String>,
    pub temp_c: Reading<f64>,
    pub trips: Vec<Trip>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Trip {
    /// `passive` (throttle), `active` (fan), `hot`, `critical` (shutdown).
    pub kind: Reading<String>,
    pub temp_c: Reading<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CoolingDevice {
    pub name: String,
    pub kind: Reading<String>,
    pub cur_state: Reading<u64>,
    pub max_state: Reading<u64>,
}

/// arch/x86/kernel/cpu/mce/therm_throt.c: events since boot where a core or package crossed its
/// thermal limit and the hardware throttled it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ThrottleCounters {
    pub core_events: u64,
    pub package_events: u64,
}

/// Bits of the firmware's throttle word, per the Raspberry Pi documentation of
/// `vcgencmd get_throttled` (bits 0–3 now, bits 16–19 since boot).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RpiThrottled {
    pub raw: String,
    pub under_voltage_now: bool,
    pub freq_capped_now: bool,
    pub throttled_now: bool,
    pub soft_temp_limit_now: bool,
    pub under_voltage_occurred: bool,
    pub freq_capped_occurred: bool,
    pub throttled_occurred: bool,
    pub soft_temp_limit_occurred: bool,
}

impl RpiThrottled {
    pub fn from_word(word: u32) -> Self {
        let bit = |n: u32| word & (1 << n) != 0;
        RpiThrottled {
            raw: format!("{word:#x}"),
            under_voltage_now: bit(0),
            freq_capped_now: bit(1),
            throttled_now: bit(2),
            soft_temp_limit_now: bit(3),
            under_voltage_occurred: bit(16),
            freq_capped_occurred: bit(17),
            throttled_occurred: bit(18),
            soft_temp_limit_occurred: bit(19),
        }
    }
}

/// Plausible range for a sensor; outside it the value is a driver's error code, not a temperature.
const PLAUSIBLE_C: std::ops::RangeInclusive<f64> = -60.0..=200.0;

fn millidegrees(root: &SysRoot, path: &str) -> Reading<f64> {
    root.read_parse::<i64>(path).and_then(|m| {
        let c = m as f64 / 1000.0;
        if PLAUSIBLE_C.contains(&c) {
            Reading::Value(c)
        } else {
            Reading::unavailable(format!(
                "unparsable: {path} holds {m} m°C, not a plausible temperature"
            ))
        }
    })
}

const TZ: &str = "/sys/class/thermal";

/// Thermal zones with their temperatures and trip points.
pub fn zones(root: &SysRoot) -> Vec<Zone> {
    root.list_prefixed(TZ, "thermal_zone")
        .into_iter()
        .map(|z| {
            let d = format!("{TZ}/{z}");
            let mut trips = Vec::new();
            for i in 0.. {
                let t = format!("{d}/trip_point_{i}_temp");
                if !root.exists(&t) {
                    break;
                }
                trips.push(Trip {
                    kind: root.read_str(&format!("{d}/trip_point_{i}_type")),
                    temp_c: millidegrees(root, &t),
                });
            }
            Zone {
                kind: root.read_str(&format!("{d}/type")),
                temp_c: millidegrees(root, &format!("{d}/temp")),
                trips,
                name: z,
            }
        })
        .collect()
}

/// Each zone's temperature alone, without the static type and trip points: what the telemetry
/// sampler reads every interval.
pub fn temperatures(root: &SysRoot) -> Vec<(String, Reading<f64>)> {
    root.list_prefixed(TZ, "thermal_zone")
        .into_iter()
        .map(|z| {
            let t = millidegrees(root, &format!("{TZ}/{z}/temp"));
            (z, t)
        })
        .collect()
}

/// Cooling devices with their current and maximum states.
pub fn cooling_devices(root: &SysRoot) -> Vec<CoolingDevice> {
    root.list_prefixed(TZ, "cooling_device")
        .into_iter()
        .map(|c| {
            let d = format!("{TZ}/{c}");
            CoolingDevice {
                kind: root.read_str(&format!("{d}/type")),
                cur_state: root.read_parse(&format!("{d}/cur_state")),
                max_state: root.read_parse(&format!("{d}/max_state")),
                name: c,
            }
        })
        .collect()
}

pub fn probe(root: &SysRoot, cpu: &Cpu) -> Thermal {
    // macOS and Windows have no /proc: the OS's own figures (native.rs).
    if super::native::applies(root) {
        return super::native::thermal();
    }
    let zones = zones(root);
    let cooling_devices = cooling_devices(root);
    let max_temp_c = if zones.is_empty() {
        Reading::unavailable(format!("missing: {TZ}/thermal_zone*"))
    } else {
        zones
            .iter()
            .filter_map(|z| z.temp_c.value().copied())
            .reduce(f64::max)
            .map_or_else(
                || Reading::unavailable("no thermal zone reported a readable temperature"),
                Reading::Value,
            )
    };

    let throttle_counters = throttle_counters(root);
    let rpi_throttled = rpi_throttled(root);
    let (throttled, throttle_reasons) = verdict(
        &zones,
        &cooling_devices,
        cpu,
        &throttle_counters,
        &rpi_throttled,
    );
    Thermal {
        zones,
        max_temp_c,
        cooling_devices,
        throttle_counters,
        rpi_throttled,
        throttled,
        throttle_reasons,
    }
}

pub fn throttle_counters(root: &SysRoot) -> Reading<Option<ThrottleCounters>> {
    let mut found = false;
    let mut core = 0u64;
    let mut package = 0u64;
    for cpu in root.list_prefixed("/sys/devices/system/cpu", "cpu") {
        let d = format!("/sys/devices/system/cpu/{cpu}/thermal_throttle");
        if !root.is_dir(&d) {
            continue;
        }
        found = true;
        // Each CPU counts its core's events; every CPU of a package repeats the package count.
        if let Some(n) = root
            .read_parse::<u64>(&format!("{d}/core_throttle_count"))
            .into_value()
        {
            core += n;
        }
        if let Some(n) = root
            .read_parse::<u64>(&format!("{d}/package_throttle_count"))
            .into_value()
        {
            package = package.max(n);
        }
    }
    Reading::Value(found.then_some(ThrottleCounters {
        core_events: core,
        package_events: package,
    }))
}

/// The firmware node sits at `/sys/devices/platform/soc/soc:firmware` on a Pi 4 and under a
/// differently named SoC node on a Pi 5, so look two levels down for it.
fn rpi_throttled(root: &SysRoot) -> Reading<Option<RpiThrottled>> {
    const PLATFORM: &str = "/sys/devices/platform";
    for a in root.list(PLATFORM).into_value().unwrap_or_default() {
        let level1 = format!("{PLATFORM}/{a}");
        let mut candidates = vec![level1.clone()];
        candidates.extend(
            root.list(&level1)
                .into_value()
                .unwrap_or_default()
                .into_iter()
                .filter(|n| n.contains("firmware"))
                .map(|n| format!("{level1}/{n}")),
        );
        for dir in candidates {
            let f = format!("{dir}/get_throttled");
            if root.exists(&f) {
                return root.read_str(&f).and_then(|s| {
                    let hex = s.trim_start_matches("0x");
                    match u32::from_str_radix(hex, 16) {
                        Ok(w) => Reading::Value(Some(RpiThrottled::from_word(w))),
                        Err(_) => Reading::unavailable(format!(
                            "unparsable: {f} holds {}, not a hex word",
                            excerpt(&s)
                        )),
                    }
                });
            }
        }
    }
    Reading::Value(None)
}

/// Cooling devices whose activity means the CPU or an accelerator is being slowed down (fans
/// cool without slowing anything, so they are not throttling).
pub fn slows_compute(kind: &str) -> bool {
    let k = kind.to_ascii_lowercase();
    [
        "processor",
        "cpufreq",
        "cpu-cluster",
        "devfreq",
        "powerclamp",
        "gpufreq",
        "thermal-cpu",
    ]
    .iter()
    .any(|p| k.contains(p))
}

fn verdict(
    zones: &[Zone],
    cooling: &[CoolingDevice],
    cpu: &Cpu,
    counters: &Reading<Option<ThrottleCounters>>,
    rpi: &Reading<Option<RpiThrottled>>,
) -> (Reading<bool>, Vec<String>) {
    let mut reasons = Vec::new();
    let mut evidence = 0usize;

    for z in zones {
        let Some(&t) = z.temp_c.value() else { continue };
        evidence += 1;
        for trip in &z.trips {
            if let (Some(kind), Some(&limit)) = (trip.kind.value(), trip.temp_c.value())
                && kind == "passive"
                // x86_pkg_temp and others report 0 for a trip point nobody set.
                && limit > 0.0
                && t >= limit
            {
                reasons.push(format!(
                    "{} at {t:.1} °C, at or above its passive trip point {limit:.1} °C",
                    z.name
                ));
            }
        }
    }
    for c in cooling {
        let (Some(kind), Some(&cur)) = (c.kind.value(), c.cur_state.value()) else {
            continue;
        };
        evidence += 1;
        if cur > 0 && slows_compute(kind) {
            let max = c.max_state.value().map_or("?".to_owned(), u64::to_string);
            reasons.push(format!(
                "cooling device {} ({kind}) active at state {cur}/{max}",
                c.name
            ));
        }
    }
    if let Some(policies) = cpu.policies.value() {
        for p in policies {
            let (Some(&max), Some(&hw)) = (p.max_mhz.value(), p.hw_max_mhz.value()) else {
                continue;
            };
            evidence += 1;
            if max < hw {
                reasons.push(format!(
                    "{}: scaling_max_freq {max:.0} MHz below hardware max {hw:.0} MHz",
                    p.name
                ));
            }
        }
    }
    if let Some(Some(c)) = counters.value() {
        evidence += 1;
        if c.core_events > 0 || c.package_events > 0 {
            reasons.push(format!(
                "thermal_throttle counters: {} core and {} package events since boot",
                c.core_events, c.package_events
            ));
        }
    }
    if let Some(Some(r)) = rpi.value() {
        evidence += 1;
        let bits = [
            (r.throttled_now, "throttled now"),
            (r.freq_capped_now, "ARM frequency capped now"),
            (r.under_voltage_now, "under-voltage now"),
            (r.soft_temp_limit_now, "soft temperature limit active now"),
            (r.throttled_occurred, "throttling has occurred since boot"),
            (
                r.freq_capped_occurred,
                "frequency capping has occurred since boot",
            ),
            (
                r.under_voltage_occurred,
                "under-voltage has occurred since boot",
            ),
            (
                r.soft_temp_limit_occurred,
                "soft temperature limit has occurred since boot",
            ),
        ];
        for (set, what) in bits {
            if set {
                reasons.push(format!("Raspberry Pi firmware ({}): {what}", r.raw));
            }
        }
    }

    let throttled = if !reasons.is_empty() {
        Reading::Value(true)
    } else if evidence > 0 {
        Reading::Value(false)
    } else {
        Reading::unavailable(
            "no readable thermal zone, cooling device, cpufreq policy or throttle counter",
        )
    };
    (throttled, reasons)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpi_word_decodes_now_and_occurred_bits() {
        let r = RpiThrottled::from_word(0x50005);
        assert!(r.under_voltage_now && r.throttled_now);
        assert!(r.under_voltage_occurred && r.throttled_occurred);
        assert!(!r.freq_capped_now && !r.soft_temp_limit_occurred);
        assert_eq!(r.raw, "0x50005");
    }

    #[test]
    fn x86_pkg_temp_zero_trip_is_not_a_throttle() {
        let zone = Zone {
            name: "thermal_zone0".into(),
            kind: Reading::Value("x86_pkg_temp".into()),
            temp_c: Reading::Value(61.0),
            trips: vec![Trip {
                kind: Reading::Value("passive".into()),
                temp_c: Reading::Value(0.0),
            }],
        };
        let cpu = Cpu {
            model_name: Reading::unavailable("x"),
            logical_cores: Reading::unavailable("x"),
            physical_cores: Reading::unavailable("x"),
            allowed_cpus: Reading::unavailable("x"),
            allowed_cores: Reading::unavailable("x"),
            allowed_physical_cores: Reading::unavailable("x"),
            quota_cores: Reading::Value(None),
            policies: Reading::Value(vec![]),
            isa: Reading::unavailable("x"),
            simd: Reading::unavailable("x"),
        };
        let (throttled, reasons) = verdict(
            &[zone],
            &[],
            &cpu,
            &Reading::Value(None),
            &Reading::Value(None),
        );
        assert_eq!(throttled, Reading::Value(false));
        assert!(reasons.is_empty(), "{reasons:?}");
    }

    #[test]
    fn fans_are_not_throttling_but_processor_cooling_is() {
        assert!(!slows_compute("Fan"));
        assert!(!slows_compute("pwm-fan"));
        assert!(slows_compute("Processor"));
        assert!(slows_compute("thermal-cpufreq-0"));
    }
}

//! Power: batteries and mains from `/sys/class/power_supply`, and the energy meters odai can read
//! to measure energy per token — RAPL (powercap), hwmon energy/power channels, INA3221 rails.
//! Units per Documentation/ABI/testing/sysfs-class-power: µV, µA, µW, µWh, µAh.

use serde::{Deserialize, Serialize};

use crate::sysroot::{Reading, SysRoot};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Power {
    pub batteries: Vec<Battery>,
    /// Mains, USB and wireless supplies with their `online` state.
    pub supplies: Vec<Supply>,
    pub on_ac: Reading<bool>,
    pub energy_meters: Vec<EnergyMeter>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Battery {
    pub name: String,
    /// `Charging`, `Discharging`, `Full`, `Not charging`, `Unknown`.
    pub status: Reading<String>,
    pub capacity_pct: Reading<f64>,
    pub energy_wh: Reading<f64>,
    pub energy_full_wh: Reading<f64>,
    /// Power flowing in or out, as a magnitude; `status` says which way.
    pub power_w: Reading<f64>,
    /// Current as the driver reports it, sign included.
    pub current_a: Reading<f64>,
    pub voltage_v: Reading<f64>,
    /// How this driver signs current while discharging: the ABI says negative, many laptop
    /// drivers report positive. Known only while discharging.
    pub current_sign: Reading<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Supply {
    pub name: String,
    pub kind: String,
    pub online: Reading<bool>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EnergyMeter {
    /// `rapl`, `hwmon-energy`, `hwmon-power`, `ina3221`.
    pub kind: String,
    /// Domain or rail: `package-0`, `VDD_IN`, a hwmon label.
    pub label: String,
    /// The file odai reads for this meter.
    pub path: String,
    pub readable: bool,
    /// Cumulative joules (`J`) for energy counters, watts (`W`) for power channels.
    pub unit: String,
    pub reading: Reading<f64>,
}

const PS: &str = "/sys/class/power_supply";

pub fn probe(root: &SysRoot) -> Power {
    // macOS and Windows have no /proc: the OS's own figures (native.rs).
    if super::native::applies(root) {
        return super::native::power();
    }
    let mut batteries = Vec::new();
    let mut supplies = Vec::new();
    for name in root.list_prefixed(PS, "") {
        let d = format!("{PS}/{name}");
        let kind = root.read_str(&format!("{d}/type"));
        match kind.value().map(String::as_str) {
            Some("Battery") => {
                // A "Battery" with scope Device is a peripheral's (mouse, pen), not the device's.
                if root
                    .read_str(&format!("{d}/scope"))
                    .value()
                    .map(String::as_str)
                    == Some("Device")
                {
                    continue;
                }
                batteries.push(battery(root, &d, name));
            }
            Some(k) => supplies.push(Supply {
                name,
                kind: k.to_owned(),
                online: root
                    .read_parse::<u8>(&format!("{d}/online"))
                    .map(|v| v != 0),
            }),
            None => {}
        }
    }
    let on_ac = on_ac(&supplies, &batteries);
    Power {
        batteries,
        supplies,
        on_ac,
        energy_meters: energy_meters(root),
    }
}

fn micro(root: &SysRoot, path: &str) -> Reading<f64> {
    root.read_parse::<i64>(path).map(|v| v as f64 / 1e6)
}

fn battery(root: &SysRoot, d: &str, name: String) -> Battery {
    let f = |attr: &str| format!("{d}/{attr}");
    let status = root.read_str(&f("status"));
    let voltage_v = micro(root, &f("voltage_now"));
    let current_a = micro(root, &f("current_now"));
    // Energy: energy_now (µWh), else charge_now (µAh) × voltage_now (µV).
    let wh_from_charge = |charge: &str| match (micro(root, &f(charge)), &voltage_v) {
        (Reading::Value(ah), Reading::Value(v)) => Reading::Value(ah * v),
        (Reading::Unavailable(r), _) => Reading::Unavailable(r),
        (_, Reading::Unavailable(r)) => Reading::Unavailable(r.clone()),
    };
    // Android gauges often give only charge_counter (µAh), not charge_now.
    let energy_wh = micro(root, &f("energy_now"))
        .or_else(|| wh_from_charge("charge_now"))
        .or_else(|| wh_from_charge("charge_counter"));
    let energy_full_wh = micro(root, &f("energy_full")).or_else(|| wh_from_charge("charge_full"));
    let power_w =
        micro(root, &f("power_now"))
            .map(f64::abs)
            .or_else(|| match (&current_a, &voltage_v) {
                (Reading::Value(a), Reading::Value(v)) => Reading::Value((a * v).abs()),
                (Reading::Unavailable(r), _) | (_, Reading::Unavailable(r)) => {
                    Reading::unavailable(format!("no power_now, and {r}"))
                }
            });
    let capacity_pct = root.read_parse::<i64>(&f("capacity")).and_then(|c| {
        if (0..=100).contains(&c) {
            Reading::Value(c as f64)
        } else {
            Reading::unavailable(format!(
                "unparsable: {d}/capacity holds {c}, not a percentage"
            ))
        }
    });
    let current_sign = match (status.value().map(String::as_str), current_a.value()) {
        (Some("Discharging"), Some(&a)) if a < 0.0 => {
            Reading::Value("negative while discharging".to_owned())
        }
        (Some("Discharging"), Some(&a)) if a > 0.0 => {
            Reading::Value("positive while discharging".to_owned())
        }
        (Some("Discharging"), Some(_)) => {
            Reading::unavailable("current_now reads 0 while discharging")
        }
        (Some("Discharging"), None) => Reading::unavailable(format!("missing: {d}/current_now")),
        _ => Reading::unavailable("not discharging: the driver's sign convention cannot be told"),
    };
    Battery {
        name,
        status,
        capacity_pct,
        energy_wh,
        energy_full_wh,
        power_w,
        current_a,
        voltage_v,
        current_sign,
    }
}

/// On AC when a mains/USB supply is online; failing that, a battery that is charging or full says
/// so and one that is discharging says not.
pub(super) fn on_ac(supplies: &[Supply], batteries: &[Battery]) -> Reading<bool> {
    let known: Vec<bool> = supplies
        .iter()
        .filter_map(|s| s.online.value().copied())
        .collect();
    if !known.is_empty() {
        return Reading::Value(known.iter().any(|&o| o));
    }
    for b in batteries {
        match b.status.value().map(String::as_str) {
            Some("Discharging") => return Reading::Value(false),
            Some("Charging" | "Full") => return Reading::Value(true),
            _ => {}
        }
    }
    match supplies.iter().find_map(|s| s.online.reason()) {
        Some(r) => Reading::unavailable(r),
        None => Reading::unavailable(format!("no mains supply or battery status under {PS}")),
    }
}

fn energy_meters(root: &SysRoot) -> Vec<EnergyMeter> {
    let mut out = Vec::new();
    // RAPL zones and subzones (Documentation/power/powercap/powercap.rst): energy_uj in µJ,
    // root-only since Linux 5.10 (CVE-2020-8694, the PLATYPUS side channel).
    const PC: &str = "/sys/class/powercap";
    for zone in root.list_prefixed(PC, "") {
        let d = format!("{PC}/{zone}");
        let path = format!("{d}/energy_uj");
        if !root.exists(&path) {
            continue;
        }
        let reading = root.read_parse::<u64>(&path).map(|uj| uj as f64 / 1e6);
        let reading = match reading {
            Reading::Unavailable(r) if r.starts_with("permission denied") => Reading::Unavailable(
                format!("{r} (needs root: RAPL is root-only since Linux 5.10)"),
            ),
            other => other,
        };
        out.push(EnergyMeter {
            kind: "rapl".into(),
            label: root
                .read_str(&format!("{d}/name"))
                .into_value()
                .unwrap_or(zone),
            readable: reading.is_value(),
            path,
            unit: "J".into(),
            reading,
        });
    }
    // hwmon channels (Documentation/hwmon/sysfs-interface.rst): energyN_input µJ, powerN_input
    // and powerN_average µW; INA3221 rails (Documentation/hwmon/ina3221.rst) give inN_input mV and
    // currN_input mA per rail, power = V × I.
    const HW: &str = "/sys/class/hwmon";
    for h in root.list_prefixed(HW, "hwmon") {
        let d = format!("{HW}/{h}");
        let chip = root
            .read_str(&format!("{d}/name"))
            .into_value()
            .unwrap_or_else(|| h.clone());
        let files = root.list(&d).into_value().unwrap_or_default();
        if chip == "ina3221" {
            for f in files
                .iter()
                .filter(|f| f.starts_with("curr") && f.ends_with("_input"))
            {
                let n = &f[4..f.len() - 6];
                let label = root
                    .read_str(&format!("{d}/in{n}_label"))
                    .into_value()
                    .unwrap_or_else(|| format!("channel {n}"));
                let ma = root.read_parse::<i64>(&format!("{d}/{f}"));
                let mv = root.read_parse::<i64>(&format!("{d}/in{n}_input"));
                let reading = match (ma, mv) {
                    (Reading::Value(i), Reading::Value(v)) => Reading::Value((i * v) as f64 / 1e6),
                    (Reading::Unavailable(r), _) | (_, Reading::Unavailable(r)) => {
                        Reading::Unavailable(r)
                    }
                };
                out.push(EnergyMeter {
                    kind: "ina3221".into(),
                    label,
                    path: format!("{d}/{f}"),
                    readable: reading.is_value(),
                    unit: "W".into(),
                    reading,
                });
            }
            continue;
        }
        for f in &files {
            let (kind, unit, channel) = if let Some(rest) = f.strip_prefix("energy") {
                ("hwmon-energy", "J", rest.strip_suffix("_input"))
            } else if let Some(rest) = f.strip_prefix("power") {
                let ch = rest
                    .strip_suffix("_input")
                    .or_else(|| rest.strip_suffix("_average"));
                ("hwmon-power", "W", ch)
            } else {
                continue;
            };
            let Some(channel) = channel.filter(|c| c.parse::<u32>().is_ok()) else {
                continue;
            };
            let prefix = if kind == "hwmon-energy" {
                "energy"
            } else {
                "power"
            };
            let label = root
                .read_str(&format!("{d}/{prefix}{channel}_label"))
                .into_value()
                .map_or_else(
                    || format!("{chip} {prefix}{channel}"),
                    |l| format!("{chip} {l}"),
                );
            let path = format!("{d}/{f}");
            let reading = root.read_parse::<u64>(&path).map(|v| v as f64 / 1e6);
            out.push(EnergyMeter {
                kind: kind.into(),
                label,
                readable: reading.is_value(),
                path,
                unit: unit.into(),
                reading,
            });
        }
    }
    out
}

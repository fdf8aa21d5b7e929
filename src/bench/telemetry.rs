//! Live telemetry while a benchmark runs: a sampler thread in the worker reads, every interval,
//! temperatures, CPU frequency, throttle counters, memory pressure, the worker's RSS, the battery
//! and every energy meter — through the same `SysRoot` as `odai probe` — and afterwards turns the
//! samples into energy per token, mean power and battery drain.

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::probe::{cpu, memory, power, thermal};
use crate::sysroot::{Reading, SysRoot};

/// One reading of the device, `t_s` seconds after the run started.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    pub t_s: f64,
    pub max_temp_c: Option<f64>,
    /// Each readable thermal zone's temperature, by zone name.
    pub zone_temps_c: BTreeMap<String, f64>,
    /// Mean current frequency over cpufreq policies.
    pub cpu_mhz: Option<f64>,
    /// Each cpufreq policy's current frequency, by policy name.
    pub policy_mhz: BTreeMap<String, f64>,
    /// Cumulative x86 throttle events (core + package) since boot.
    pub throttle_events: Option<u64>,
    /// Throttle events since the previous sample.
    pub throttle_events_delta: Option<u64>,
    /// Compute-slowing cooling devices (CPU/devfreq, not fans) at a state above 0.
    pub cooling_active: Option<u64>,
    pub psi_some_avg10: Option<f64>,
    pub rss_bytes: Option<u64>,
    /// The worker's resident set split into anonymous and file-backed (mapped weights) bytes,
    /// where the OS gives them (`platform::own_rss_split`).
    #[serde(default)]
    pub rss_anon_bytes: Option<u64>,
    #[serde(default)]
    pub rss_file_bytes: Option<u64>,
    pub battery_name: Option<String>,
    pub battery_status: Option<String>,
    pub battery_capacity_pct: Option<f64>,
    pub battery_energy_wh: Option<f64>,
    pub battery_energy_full_wh: Option<f64>,
    pub battery_power_w: Option<f64>,
    /// Each energy meter's raw reading (J for counters, W for power channels), in
    /// [`Telemetry::meters`] order.
    pub meters: Vec<Option<f64>>,
}

/// An energy meter as the sampler found it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Meter {
    pub kind: String,
    pub label: String,
    pub path: String,
    pub unit: String,
    /// Counter range in J for wrap-around (RAPL `max_energy_range_uj`).
    pub range_j: Option<f64>,
    /// Why the meter could not be read, when it could not.
    pub unreadable: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Telemetry {
    pub interval_s: f64,
    pub meters: Vec<Meter>,
    pub samples: Vec<Sample>,
}

/// Samples `root` every `interval` on its own thread until stopped.
pub struct Sampler {
    stop: mpsc::Sender<()>,
    handle: thread::JoinHandle<Telemetry>,
}

impl Sampler {
    pub fn start(root: SysRoot, interval: Duration, t0: Instant) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = thread::spawn(move || {
            let meters = find_meters(&root);
            let mut samples = Vec::new();
            loop {
                let next = sample(&root, &meters, t0.elapsed().as_secs_f64(), samples.last());
                samples.push(next);
                // Waiting on the channel is the sampling interval; a stop ends it at once.
                match stopped.recv_timeout(interval) {
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    _ => break,
                }
            }
            let last = sample(&root, &meters, t0.elapsed().as_secs_f64(), samples.last());
            samples.push(last);
            Telemetry {
                interval_s: interval.as_secs_f64(),
                meters,
                samples,
            }
        });
        Sampler { stop, handle }
    }

    pub fn finish(self) -> Telemetry {
        let _ = self.stop.send(());
        self.handle.join().unwrap_or_default()
    }
}

/// One sample of `root` outside a run (what the sampler thread does each interval): for
/// measuring the sampler's own cost.
pub fn sample_once(root: &SysRoot) -> Sample {
    sample(root, &find_meters(root), 0.0, None)
}

fn find_meters(root: &SysRoot) -> Vec<Meter> {
    power::probe(root)
        .energy_meters
        .into_iter()
        .map(|m| {
            let range_j = (m.kind == "rapl")
                .then(|| {
                    let dir = m.path.rsplit_once('/').map_or("", |(d, _)| d);
                    root.read_parse::<u64>(&format!("{dir}/max_energy_range_uj"))
                        .into_value()
                        .map(|uj| uj as f64 / 1e6)
                })
                .flatten();
            Meter {
                unreadable: m.reading.reason().map(str::to_owned),
                kind: m.kind,
                label: m.label,
                path: m.path,
                unit: m.unit,
                range_j,
            }
        })
        .collect()
}

fn sample(root: &SysRoot, meters: &[Meter], t_s: f64, previous: Option<&Sample>) -> Sample {
    let zone_temps_c: BTreeMap<String, f64> = thermal::temperatures(root)
        .into_iter()
        .filter_map(|(name, t)| Some((name, t.into_value()?)))
        .collect();
    let max_temp_c = zone_temps_c.values().copied().reduce(f64::max);
    let policy_mhz: BTreeMap<String, f64> = cpu::policies(root)
        .into_value()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| Some((p.name, p.cur_mhz.into_value()?)))
        .collect();
    let cpu_mhz = (!policy_mhz.is_empty())
        .then(|| policy_mhz.values().sum::<f64>() / policy_mhz.len() as f64);
    let throttle_events = match thermal::throttle_counters(root) {
        Reading::Value(Some(c)) => Some(c.core_events + c.package_events),
        _ => None,
    };
    let throttle_events_delta = throttle_events
        .zip(previous.and_then(|p| p.throttle_events))
        .map(|(now, before)| now.saturating_sub(before));
    let cooling = thermal::cooling_devices(root);
    let cooling_active = (!cooling.is_empty()).then(|| {
        cooling
            .iter()
            .filter(|c| {
                c.kind.value().is_some_and(|k| thermal::slows_compute(k))
                    && c.cur_state.value().is_some_and(|&s| s > 0)
            })
            .count() as u64
    });
    let psi_some_avg10 = memory::read_psi(root)
        .into_value()
        .and_then(|m| m.get(&("some", "avg10")).copied());
    let power = power::probe(root);
    let battery = power.batteries.first();
    let rss_split = crate::platform::own_rss_split();
    let meter_values = meters
        .iter()
        .map(|m| {
            power
                .energy_meters
                .iter()
                .find(|e| e.path == m.path)
                .and_then(|e| e.reading.value().copied())
        })
        .collect();
    Sample {
        t_s,
        max_temp_c,
        zone_temps_c,
        cpu_mhz,
        policy_mhz,
        throttle_events,
        throttle_events_delta,
        cooling_active,
        psi_some_avg10,
        rss_bytes: crate::platform::own_rss_bytes(),
        rss_anon_bytes: rss_split.map(|(anon, _)| anon),
        rss_file_bytes: rss_split.map(|(_, file)| file),
        battery_name: battery.map(|b| b.name.clone()),
        battery_status: battery.and_then(|b| b.status.value().cloned()),
        battery_capacity_pct: battery.and_then(|b| b.capacity_pct.value().copied()),
        battery_energy_wh: battery.and_then(|b| b.energy_wh.value().copied()),
        battery_energy_full_wh: battery.and_then(|b| b.energy_full_wh.value().copied()),
        battery_power_w: battery.and_then(|b| b.power_w.value().copied()),
        meters: meter_values,
    }
}

/// Energy over a run, from the best source the device has.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Energy {
    /// `rapl:psys`, `rapl:package-0`, `hwmon:amd_energy Esocket0`, `ina3221:VDD_IN`,
    /// `battery:BAT0`…
    pub energy_source: Reading<String>,
    pub energy_j: Reading<f64>,
    pub mean_power_w: Reading<f64>,
    pub battery_drain_pct_per_hour: Reading<f64>,
    pub battery_drain_mwh: Reading<f64>,
    /// Meters that were present but could not be read, with the reason.
    pub unreadable_meters: Vec<String>,
}

/// Energy in J a counter accumulated over the samples, with wrap-around: a reading below the
/// previous one means the counter passed its range (RAPL `max_energy_range_uj`,
/// Documentation/power/powercap/powercap.rst).
pub fn counter_energy_j(values: &[(f64, f64)], range_j: Option<f64>) -> Option<f64> {
    let mut total = 0.0;
    for w in values.windows(2) {
        let d = w[1].1 - w[0].1;
        total += if d >= 0.0 {
            d
        } else {
            // Without a known range a drop is a counter reset: that interval is lost, not negative.
            range_j.map_or(0.0, |r| d + r)
        };
    }
    (values.len() >= 2).then_some(total)
}

/// Energy in J from instantaneous power readings (W), by the trapezoid rule.
pub fn power_energy_j(values: &[(f64, f64)]) -> Option<f64> {
    (values.len() >= 2).then(|| {
        values
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum()
    })
}

impl Telemetry {
    fn series(&self, i: usize) -> Vec<(f64, f64)> {
        self.samples
            .iter()
            .filter_map(|s| s.meters.get(i).copied().flatten().map(|v| (s.t_s, v)))
            .collect()
    }

    /// Energy, mean power and battery drain over the sampled span.
    pub fn energy(&self) -> Energy {
        let span = match (self.samples.first(), self.samples.last()) {
            (Some(a), Some(b)) if b.t_s > a.t_s => b.t_s - a.t_s,
            _ => 0.0,
        };
        let unreadable_meters = self
            .meters
            .iter()
            .filter_map(|m| {
                m.unreadable
                    .as_ref()
                    .map(|r| format!("{} {}: {r}", m.kind, m.label))
            })
            .collect();
        let (source, joules) = self.best_source();
        let (energy_source, energy_j, mean_power_w) = match (source, joules) {
            (Some(src), Some(j)) if span > 0.0 => (
                Reading::Value(src),
                Reading::Value(j),
                Reading::Value(j / span),
            ),
            _ => {
                let why = if self.meters.is_empty() && !self.has_battery() {
                    "no energy meter: no RAPL, hwmon energy/power, INA3221 or battery on this device"
                        .to_owned()
                } else if span == 0.0 {
                    "the run was too short for two samples".to_owned()
                } else {
                    "no energy meter could be read (see unreadable_meters)".to_owned()
                };
                (
                    Reading::unavailable(why.clone()),
                    Reading::unavailable(why.clone()),
                    Reading::unavailable(why),
                )
            }
        };
        let (battery_drain_pct_per_hour, battery_drain_mwh) = self.battery_drain(span);
        Energy {
            energy_source,
            energy_j,
            mean_power_w,
            battery_drain_pct_per_hour,
            battery_drain_mwh,
            unreadable_meters,
        }
    }

    fn has_battery(&self) -> bool {
        self.samples.iter().any(|s| s.battery_status.is_some())
    }

    /// Whole-platform meters first (RAPL psys, INA3221 board input), then the CPU package,
    /// then other counters and power channels, then the battery while it discharges.
    fn best_source(&self) -> (Option<String>, Option<f64>) {
        let rank = |m: &Meter| -> u8 {
            let l = m.label.to_ascii_lowercase();
            match m.kind.as_str() {
                "rapl" if l == "psys" => 0,
                "ina3221" if l.contains("vdd_in") => 0,
                "rapl" if l.starts_with("package") => 1,
                "hwmon-energy" => 2,
                "ina3221" => 3,
                "hwmon-power" => 4,
                _ => 5,
            }
        };
        let mut order: Vec<usize> = (0..self.meters.len()).collect();
        order.sort_by_key(|&i| rank(&self.meters[i]));
        for i in order {
            let m = &self.meters[i];
            let series = self.series(i);
            let j = if m.unit == "J" {
                counter_energy_j(&series, m.range_j)
            } else {
                power_energy_j(&series)
            };
            if let Some(j) = j {
                let kind = match m.kind.as_str() {
                    "hwmon-energy" | "hwmon-power" => "hwmon",
                    k => k,
                };
                return (Some(format!("{kind}:{}", m.label)), Some(j));
            }
        }
        let discharging: Vec<(f64, f64)> = self
            .samples
            .iter()
            .filter(|s| s.battery_status.as_deref() == Some("Discharging"))
            .filter_map(|s| s.battery_power_w.map(|w| (s.t_s, w)))
            .collect();
        let name = self.samples.iter().find_map(|s| s.battery_name.clone());
        match power_energy_j(&discharging) {
            Some(j) => (
                Some(format!("battery:{}", name.unwrap_or_default())),
                Some(j),
            ),
            None => (None, None),
        }
    }

    /// Drain while discharging, from energy_now where the gauge gives it (finer), else capacity.
    fn battery_drain(&self, span: f64) -> (Reading<f64>, Reading<f64>) {
        let (Some(first), Some(last)) = (self.samples.first(), self.samples.last()) else {
            return (
                Reading::unavailable("no samples"),
                Reading::unavailable("no samples"),
            );
        };
        match last.battery_status.as_deref() {
            None => {
                let r = "no battery";
                return (Reading::unavailable(r), Reading::unavailable(r));
            }
            Some("Discharging") => {}
            Some(_) => {
                let r = "on AC: battery drain not measurable";
                return (Reading::unavailable(r), Reading::unavailable(r));
            }
        }
        let hours = span / 3600.0;
        if hours <= 0.0 {
            let r = "the run was too short for two samples";
            return (Reading::unavailable(r), Reading::unavailable(r));
        }
        let mwh = match (first.battery_energy_wh, last.battery_energy_wh) {
            (Some(a), Some(b)) => Reading::Value((a - b) * 1000.0),
            _ => Reading::unavailable("the battery reports no energy or charge"),
        };
        let pct = match (
            first.battery_energy_wh,
            last.battery_energy_wh,
            last.battery_energy_full_wh,
        ) {
            (Some(a), Some(b), Some(full)) if full > 0.0 => {
                Reading::Value(100.0 * (a - b) / full / hours)
            }
            _ => match (first.battery_capacity_pct, last.battery_capacity_pct) {
                (Some(a), Some(b)) => Reading::Value((a - b) / hours),
                _ => Reading::unavailable("the battery reports neither energy nor capacity"),
            },
        };
        (pct, mwh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rapl_wrap_around_counts_the_range() {
        // A 10 J counter read at 8, 9.5, then 1.5 (wrapped), then 3: 1.5 + 2 + 1.5 J.
        let v = [(0.0, 8.0), (1.0, 9.5), (2.0, 1.5), (3.0, 3.0)];
        assert_eq!(counter_energy_j(&v, Some(10.0)), Some(5.0));
        // Unknown range: the wrapped interval is dropped, never negative.
        assert_eq!(counter_energy_j(&v, None), Some(3.0));
        assert_eq!(counter_energy_j(&v[..1], Some(10.0)), None);
    }

    #[test]
    fn power_is_integrated_by_trapezoids() {
        assert_eq!(
            power_energy_j(&[(0.0, 2.0), (1.0, 4.0), (3.0, 4.0)]),
            Some(11.0)
        );
    }
}

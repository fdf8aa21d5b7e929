//! Sustained runs: decode continuously for a duration, then judge the run per window — tok/s,
//! temperature and CPU frequency over time, stability (slowest window ÷ fastest, 3DMark's
//! stress-test rule), checkpoints relative to the first minute, time to the first throttle
//! event, temperature rise and frequency drop.

use serde::{Deserialize, Serialize};

use super::telemetry::{Sample, Telemetry};
use crate::sysroot::Reading;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Window {
    /// End of the window, seconds since decoding started.
    pub t_s: f64,
    pub decode_tps: f64,
    pub max_temp_c: Option<f64>,
    pub cpu_mhz: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub at_s: f64,
    pub decode_tps: f64,
    /// decode_tps at this point ÷ the mean over the first minute.
    pub relative_to_first_minute: f64,
    pub max_temp_c: Option<f64>,
    pub cpu_mhz: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sustained {
    pub duration_s: f64,
    pub window_s: f64,
    pub tokens: u64,
    /// Times the KV cache was reset because the run reached the cell's context (p + n);
    /// decoding went on from position 0, so every window is decode time.
    pub resets: u64,
    pub windows: Vec<Window>,
    /// Slowest window ÷ fastest window.
    pub stability: Reading<f64>,
    pub checkpoints: Vec<Checkpoint>,
    /// Seconds to the first throttle event or compute cooling device engaging during the run;
    /// null when none happened.
    pub time_to_first_throttle_s: Reading<Option<f64>>,
    pub temp_rise_c: Reading<f64>,
    pub freq_drop_pct: Reading<f64>,
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// Judges a sustained run from the decode times of its tokens (seconds since decoding started)
/// and the telemetry sampled meanwhile.
pub fn analyze(
    token_times_s: &[f64],
    resets: u64,
    duration_s: f64,
    window_s: f64,
    checkpoints_s: &[f64],
    telemetry: &Telemetry,
) -> Sustained {
    let full = (duration_s / window_s).floor() as usize;
    let in_window = |s: &Sample, end: f64| s.t_s > end - window_s && s.t_s <= end;
    let windows: Vec<Window> = (1..=full)
        .map(|k| {
            let end = k as f64 * window_s;
            let n = token_times_s
                .iter()
                .filter(|&&t| t > end - window_s && t <= end)
                .count();
            let samples: Vec<&Sample> = telemetry
                .samples
                .iter()
                .filter(|s| in_window(s, end))
                .collect();
            Window {
                t_s: end,
                decode_tps: n as f64 / window_s,
                max_temp_c: samples.iter().filter_map(|s| s.max_temp_c).reduce(f64::max),
                cpu_mhz: mean(samples.iter().filter_map(|s| s.cpu_mhz)),
            }
        })
        .collect();

    let stability = match (
        windows.iter().map(|w| w.decode_tps).reduce(f64::min),
        windows.iter().map(|w| w.decode_tps).reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) if hi > 0.0 => Reading::Value(lo / hi),
        _ => Reading::unavailable(format!("the run had no full {window_s} s window")),
    };

    let first_minute = mean(
        windows
            .iter()
            .filter(|w| w.t_s <= 60f64.max(window_s))
            .map(|w| w.decode_tps),
    );
    let checkpoints = checkpoints_s
        .iter()
        .filter_map(|&c| {
            let w = windows.iter().rev().find(|w| w.t_s <= c + 1e-9)?;
            let base = first_minute?;
            (c <= duration_s + 1e-9).then(|| Checkpoint {
                at_s: c,
                decode_tps: w.decode_tps,
                relative_to_first_minute: if base > 0.0 { w.decode_tps / base } else { 0.0 },
                max_temp_c: w.max_temp_c,
                cpu_mhz: w.cpu_mhz,
            })
        })
        .collect();

    let samples = &telemetry.samples;
    let watched = samples
        .iter()
        .any(|s| s.throttle_events.is_some() || s.cooling_active.is_some());
    let time_to_first_throttle_s = if !watched {
        Reading::unavailable("no throttle counters or cooling devices to watch")
    } else {
        // A throttle counter moving, or one more compute cooling device engaging, at any point.
        Reading::Value(
            samples
                .windows(2)
                .find(|w| {
                    w[1].throttle_events
                        .zip(w[0].throttle_events)
                        .is_some_and(|(e, b)| e > b)
                        || w[1]
                            .cooling_active
                            .zip(w[0].cooling_active)
                            .is_some_and(|(c, b)| c > b)
                })
                .map(|w| w[1].t_s),
        )
    };

    let (first, last) = (windows.first(), windows.last());
    let temp_rise_c = match (
        first.and_then(|w| w.max_temp_c),
        last.and_then(|w| w.max_temp_c),
    ) {
        (Some(a), Some(b)) => Reading::Value(b - a),
        _ => Reading::unavailable("no thermal zone was readable during the run"),
    };
    let freq_drop_pct = match (first.and_then(|w| w.cpu_mhz), last.and_then(|w| w.cpu_mhz)) {
        (Some(a), Some(b)) if a > 0.0 => Reading::Value(100.0 * (1.0 - b / a)),
        _ => Reading::unavailable("no cpufreq policy was readable during the run"),
    };

    Sustained {
        duration_s,
        window_s,
        tokens: token_times_s.len() as u64,
        resets,
        windows,
        stability,
        checkpoints,
        time_to_first_throttle_s,
        temp_rise_c,
        freq_drop_pct,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, temp: f64, mhz: f64, events: u64) -> Sample {
        Sample {
            t_s,
            max_temp_c: Some(temp),
            zone_temps_c: Default::default(),
            cpu_mhz: Some(mhz),
            policy_mhz: Default::default(),
            throttle_events: Some(events),
            throttle_events_delta: None,
            cooling_active: Some(0),
            psi_some_avg10: None,
            rss_bytes: None,
            rss_anon_bytes: None,
            rss_file_bytes: None,
            battery_name: None,
            battery_status: None,
            battery_capacity_pct: None,
            battery_energy_wh: None,
            battery_energy_full_wh: None,
            battery_power_w: None,
            meters: vec![],
        }
    }

    #[test]
    fn windows_stability_checkpoints_and_throttle_time() {
        // 10 tok/s for 60 s, then 5 tok/s for 60 s; the throttle counter moves at 70 s.
        let mut tokens = Vec::new();
        for i in 1..=600 {
            tokens.push(i as f64 * 0.1);
        }
        for i in 1..=300 {
            tokens.push(60.0 + i as f64 * 0.2);
        }
        let telemetry = Telemetry {
            interval_s: 10.0,
            meters: vec![],
            samples: (0..=12)
                .map(|k| {
                    let t = k as f64 * 10.0;
                    sample(
                        t,
                        50.0 + t / 10.0,
                        if t < 60.0 { 3000.0 } else { 1500.0 },
                        u64::from(t >= 70.0),
                    )
                })
                .collect(),
        };
        let s = analyze(&tokens, 2, 120.0, 10.0, &[60.0, 120.0, 300.0], &telemetry);
        assert_eq!(s.windows.len(), 12);
        assert!((s.windows[0].decode_tps - 10.0).abs() < 1e-9);
        assert!((s.windows[11].decode_tps - 5.0).abs() < 1e-9);
        assert_eq!(s.stability, Reading::Value(0.5));
        // Checkpoints beyond the run are left out.
        assert_eq!(s.checkpoints.len(), 2);
        assert!((s.checkpoints[1].relative_to_first_minute - 0.5).abs() < 1e-9);
        assert_eq!(s.time_to_first_throttle_s, Reading::Value(Some(70.0)));
        assert_eq!(s.temp_rise_c, Reading::Value(12.0 - 1.0));
        assert_eq!(s.freq_drop_pct, Reading::Value(50.0));
        assert_eq!(s.resets, 2);
    }

    #[test]
    fn a_device_without_sensors_says_why() {
        let t = Telemetry::default();
        let s = analyze(&[0.5, 1.0], 0, 1.0, 0.5, &[], &t);
        assert!(s.stability.is_value());
        assert_eq!(
            s.time_to_first_throttle_s,
            Reading::unavailable("no throttle counters or cooling devices to watch")
        );
        assert!(!s.temp_rise_c.is_value());
    }
}

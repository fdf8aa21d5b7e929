//! `odai compare`: two results (directories, or their measurements.csv) cell by cell — per
//! metric the change, whether it is significant (Welch's t-test on the per-repetition samples),
//! and whether it is a regression past the threshold. How a team checks a new quantization,
//! runtime or model version before it ships.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use super::measurements::{METRICS, Row};
use crate::error::Error;

/// Compared metrics: name, the measurements column holding its mean, and whether higher is
/// better.
pub const COMPARED: &[(&str, &str, bool)] = &[
    ("ttft_ms", "ttft_ms_mean", false),
    ("prefill_tps", "prefill_tps_mean", true),
    ("decode_tps", "decode_tps_mean", true),
    ("token_ms_p99", "token_ms_p99", false),
    ("load_ms", "load_ms_mean", false),
    ("peak_rss_mib", "peak_rss_mib", false),
];

/// Two-sided p-values below this are significant.
pub const ALPHA: f64 = 0.05;

/// What a regression verdict rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Welch's t-test on the repetitions, and the threshold.
    Welch,
    /// The threshold alone: one side has fewer than two repetitions (or none recorded, as in a
    /// measurements.csv), so significance cannot be tested. A gate that could never trip without
    /// repetitions would pass any slowdown; this one trips on the size of the change.
    Threshold,
}

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub device: String,
    pub cell_id: String,
    pub model: String,
    /// The cell's thread count (0 where a measurements.csv did not say).
    pub threads: u32,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub metric: &'static str,
    pub base: f64,
    pub new: f64,
    pub change_pct: f64,
    /// Welch's two-sided p-value; null without two or more samples on each side.
    pub p_value: Option<f64>,
    pub significant: Option<bool>,
    pub basis: Basis,
    /// Worse than the threshold and, where the basis is Welch's test, significant.
    pub regression: bool,
    pub worse: bool,
}

/// Mean and sample variance, from the summary `odai bench` already computes.
fn mean_var(v: &[f64]) -> (f64, f64) {
    let s = crate::bench::stats::summarize(v);
    (s.mean, s.stddev * s.stddev)
}

/// Welch's t-test (unequal variances): the two-sided p-value that the means differ; `None` with
/// fewer than two samples on a side.
pub fn welch_p(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    if sa + sb == 0.0 {
        return Some(if ma == mb { 1.0 } else { 0.0 });
    }
    let t = (ma - mb) / (sa + sb).sqrt();
    // Welch–Satterthwaite degrees of freedom.
    let df = (sa + sb).powi(2)
        / (sa.powi(2) / (a.len() as f64 - 1.0) + sb.powi(2) / (b.len() as f64 - 1.0));
    // P(|T| > |t|) for Student's t with df degrees of freedom; the survival function keeps its
    // precision in the far tail, where 1 − cdf would round to 0.
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some((2.0 * dist.sf(t.abs())).min(1.0))
}

pub fn compare(base: &[Row], new: &[Row], threshold_pct: f64) -> Vec<Change> {
    let index: BTreeMap<(&str, &str), &Row> = base
        .iter()
        .filter(|r| r.is_ok())
        .map(|r| ((r.device.as_str(), r.cell_id.as_str()), r))
        .collect();
    let mut out = Vec::new();
    for n in new.iter().filter(|r| r.is_ok()) {
        let Some(b) = index.get(&(n.device.as_str(), n.cell_id.as_str())) else {
            continue;
        };
        for &(metric, column, higher_better) in COMPARED {
            let (Some(bm), Some(nm)) = (b.get(column), n.get(column)) else {
                continue;
            };
            let change_pct = if bm != 0.0 {
                100.0 * (nm - bm) / bm.abs()
            } else {
                0.0
            };
            let worse = if higher_better { nm < bm } else { nm > bm };
            let p = match (b.samples.get(metric), n.samples.get(metric)) {
                (Some(x), Some(y)) => welch_p(x, y),
                _ => None,
            };
            let significant = p.map(|p| p < ALPHA);
            let basis = if p.is_some() {
                Basis::Welch
            } else {
                Basis::Threshold
            };
            let past_threshold = worse && change_pct.abs() > threshold_pct;
            out.push(Change {
                device: n.device.clone(),
                cell_id: n.cell_id.clone(),
                model: n.model.clone(),
                threads: n.threads,
                prompt_tokens: n.prompt_tokens,
                gen_tokens: n.gen_tokens,
                metric,
                base: bm,
                new: nm,
                change_pct,
                p_value: p,
                significant,
                basis,
                regression: past_threshold && significant != Some(false),
                worse,
            });
        }
    }
    out
}

/// Rows back from a measurements.csv (no per-repetition samples: changes there cannot be
/// tested for significance).
pub fn rows_from_csv(path: &Path) -> Result<Vec<Row>, Error> {
    let bad = |problem: String| Error::ConfigFile {
        file: path.to_owned(),
        problem,
    };
    let mut rd = ::csv::Reader::from_path(path).map_err(|e| bad(format!("cannot read: {e}")))?;
    let header = rd.headers().map_err(|e| bad(e.to_string()))?.clone();
    let col = |name: &str| header.iter().position(|h| h == name);
    let need = |name: &str| {
        col(name).ok_or_else(|| bad(format!("no `{name}` column: not an odai measurements.csv")))
    };
    let (device, cell, model, status) = (
        need("device")?,
        need("cell_id")?,
        need("model")?,
        need("status")?,
    );
    let mut rows = Vec::new();
    for (i, rec) in rd.records().enumerate() {
        let rec = rec.map_err(|e| bad(format!("row {}: {e}", i + 2)))?;
        let get = |c: usize| rec.get(c).unwrap_or_default().to_owned();
        let int = |name: &str| {
            col(name)
                .and_then(|c| rec.get(c)?.parse().ok())
                .unwrap_or(0)
        };
        rows.push(Row {
            device: get(device),
            class: None,
            cell_id: get(cell),
            model: get(model),
            quant: None,
            runtime: col("runtime").map(&get).unwrap_or_default(),
            runtime_version: col("runtime_version").map(&get).unwrap_or_default(),
            backend: col("backend").map(&get).unwrap_or_default(),
            threads: int("threads"),
            prompt_tokens: int("prompt_tokens"),
            gen_tokens: int("gen_tokens"),
            cold: false,
            sustained_s: None,
            load: String::new(),
            reps: 0,
            status: get(status),
            reason: None,
            values: METRICS
                .iter()
                .map(|m| col(m).and_then(|c| rec.get(c)?.parse().ok()))
                .collect(),
            missing: BTreeMap::new(),
            token_ms: Vec::new(),
            samples: BTreeMap::new(),
            odai_version: None,
            model_sha256: None,
            gpu_layers: col("gpu_layers").and_then(|c| rec.get(c)?.parse().ok()),
            offload: None,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welch_p_values_match_reference_figures() {
        // t = -2.0740 with 10.21 degrees of freedom; p = 0.064280 by numerically integrating
        // Student's t density (Simpson's rule, 2·10⁶ steps) independently of this code.
        let a = [19.8, 20.4, 19.6, 17.8, 18.5, 18.9, 18.3, 18.9, 19.5, 22.0];
        let b = [28.2, 26.6, 20.1, 23.3, 25.2, 22.1, 17.7, 27.6, 20.6, 13.7];
        let p = welch_p(&a, &b).unwrap();
        assert!((p - 0.064280).abs() < 1e-5, "{p}");
        // Identical samples: no evidence of a difference.
        assert!(welch_p(&a, &a).unwrap() > 0.99);
        assert_eq!(welch_p(&[1.0], &a), None);
    }

    #[test]
    fn welch_p_keeps_precision_in_the_far_tail() {
        // t = -50 on ~18 degrees of freedom: p ≈ 1e-20, which 1 − cdf would round to 0.
        let a: Vec<f64> = (0..10).map(|i| 100.0 + f64::from(i % 3)).collect();
        let b: Vec<f64> = (0..10).map(|i| 150.0 + f64::from(i % 3)).collect();
        let p = welch_p(&a, &b).unwrap();
        assert!(p > 0.0 && p < 1e-15, "{p}");
    }

    fn row(cell: &str, decode: f64, samples: Option<Vec<f64>>) -> Row {
        let mut values = vec![None; METRICS.len()];
        values[METRICS
            .iter()
            .position(|m| *m == "decode_tps_mean")
            .unwrap()] = Some(decode);
        Row {
            device: "d".into(),
            class: None,
            cell_id: cell.into(),
            model: "m".into(),
            quant: None,
            runtime: "odai".into(),
            runtime_version: String::new(),
            backend: String::new(),
            threads: 2,
            prompt_tokens: 64,
            gen_tokens: 32,
            cold: false,
            sustained_s: None,
            load: "none".into(),
            reps: 1,
            status: "ok".into(),
            reason: None,
            values,
            missing: BTreeMap::new(),
            token_ms: Vec::new(),
            samples: samples
                .map(|s| BTreeMap::from([("decode_tps", s)]))
                .unwrap_or_default(),
            odai_version: None,
            model_sha256: None,
            gpu_layers: None,
            offload: None,
        }
    }

    #[test]
    fn regression_compare_without_repetitions_gates_on_the_threshold() {
        // Found in review: without samples nothing was ever significant, so nothing was ever a
        // regression, and a 30 % slower decode passed the gate.
        let c = compare(&[row("a", 100.0, None)], &[row("a", 70.0, None)], 10.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].basis, Basis::Threshold);
        assert!(c[0].regression, "{c:?}");
        // Within the threshold, or better: no regression.
        assert!(!compare(&[row("a", 100.0, None)], &[row("a", 95.0, None)], 10.0)[0].regression);
        assert!(!compare(&[row("a", 100.0, None)], &[row("a", 130.0, None)], 10.0)[0].regression);
        // With repetitions, significance decides: noisy samples whose means differ by 30 %
        // are not a regression, tight ones are.
        let noisy = compare(
            &[row("a", 100.0, Some(vec![40.0, 160.0]))],
            &[row("a", 70.0, Some(vec![20.0, 120.0]))],
            10.0,
        );
        assert_eq!(noisy[0].basis, Basis::Welch);
        assert!(!noisy[0].regression);
        let tight = compare(
            &[row("a", 100.0, Some(vec![99.0, 100.0, 101.0]))],
            &[row("a", 70.0, Some(vec![69.0, 70.0, 71.0]))],
            10.0,
        );
        assert!(tight[0].regression && tight[0].threads == 2, "{tight:?}");
    }
}

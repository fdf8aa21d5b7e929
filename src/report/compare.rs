//! `odai compare`: two results (directories, or their measurements.csv) cell by cell — per
//! metric the change, whether it is significant (Welch's t-test on the per-repetition samples),
//! and whether it is a regression past the threshold. How a team checks a new quantization,
//! runtime or model version before it ships.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

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

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    pub device: String,
    pub cell_id: String,
    pub model: String,
    pub metric: &'static str,
    pub base: f64,
    pub new: f64,
    pub change_pct: f64,
    /// Welch's two-sided p-value; null without two or more samples on each side.
    pub p_value: Option<f64>,
    pub significant: Option<bool>,
    /// Worse than the threshold and significant.
    pub regression: bool,
    pub worse: bool,
}

/// ln Γ(x), Lanczos approximation (g = 7, n = 9; Numerical Recipes §6.1 coefficients).
fn ln_gamma(x: f64) -> f64 {
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + 7.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The continued fraction of the incomplete beta function (modified Lentz; Numerical Recipes
/// §6.4, betacf).
fn beta_cf(a: f64, b: f64, x: f64) -> f64 {
    const TINY: f64 = 1e-300;
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut c = 1.0;
    let mut d = 1.0 - qab * x / qap;
    if d.abs() < TINY {
        d = TINY;
    }
    d = 1.0 / d;
    let mut h = d;
    for m in 1..300 {
        let m = f64::from(m);
        let m2 = 2.0 * m;
        let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        h *= d * c;
        let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1.0 + aa * d;
        if d.abs() < TINY {
            d = TINY;
        }
        c = 1.0 + aa / c;
        if c.abs() < TINY {
            c = TINY;
        }
        d = 1.0 / d;
        let del = d * c;
        h *= del;
        if (del - 1.0).abs() < 1e-12 {
            break;
        }
    }
    h
}

/// The regularized incomplete beta function I_x(a, b).
fn inc_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let front =
        (ln_gamma(a + b) - ln_gamma(a) - ln_gamma(b) + a * x.ln() + b * (1.0 - x).ln()).exp();
    if x < (a + 1.0) / (a + b + 2.0) {
        front * beta_cf(a, b, x) / a
    } else {
        1.0 - front * beta_cf(b, a, 1.0 - x) / b
    }
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
    let df = (sa + sb).powi(2)
        / (sa.powi(2) / (a.len() as f64 - 1.0) + sb.powi(2) / (b.len() as f64 - 1.0));
    // P(|T| > t) for Student's t with df degrees of freedom.
    Some(inc_beta(df / 2.0, 0.5, df / (df + t * t)))
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
            out.push(Change {
                device: n.device.clone(),
                cell_id: n.cell_id.clone(),
                model: n.model.clone(),
                metric,
                base: bm,
                new: nm,
                change_pct,
                p_value: p,
                significant,
                regression: worse && change_pct.abs() > threshold_pct && significant == Some(true),
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
        rows.push(Row {
            device: get(device),
            class: None,
            cell_id: get(cell),
            model: get(model),
            quant: None,
            runtime: col("runtime").map(&get).unwrap_or_default(),
            runtime_version: col("runtime_version").map(&get).unwrap_or_default(),
            backend: col("backend").map(&get).unwrap_or_default(),
            threads: 0,
            prompt_tokens: 0,
            gen_tokens: 0,
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
    fn incomplete_beta_agrees_with_closed_forms() {
        // I_x(1, 1) = x; I_x(a, 1) = x^a.
        assert!((inc_beta(1.0, 1.0, 0.3) - 0.3).abs() < 1e-10);
        assert!((inc_beta(3.0, 1.0, 0.5) - 0.125).abs() < 1e-10);
    }
}

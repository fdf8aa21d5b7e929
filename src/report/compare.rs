//! `odai compare`: two results (directories, or their measurements.csv) cell by cell — per
//! metric the change, whether it is significant (Welch's t-test on the per-repetition samples),
//! and whether it is a regression past the threshold. How a team checks a new quantization,
//! runtime or model version before it ships.
//!
//! The gate's rules (docs/compare.md): cells are matched by `--match-by` fields (device and
//! cell id unless told otherwise); a cell ok in BASE that failed, was skipped or is missing in
//! NEW is a regression; a worse change past the threshold is a regression where Welch's test
//! finds it significant (or where a side has a single repetition and no test is possible), and
//! *inconclusive* where the test has repetitions but cannot tell (too little power); two runs
//! with no cell in common are an error, never a pass. The samples travel in measurements.csv
//! too, so a directory and its CSV give the same verdicts.

use std::collections::BTreeMap;

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

use std::path::Path;

use super::measurements::{METRICS, Row};
use crate::error::Error;

/// A compared metric: its name, the measurements column holding its value, whether higher is
/// better, and whether its change is counted in percentage points (a rate in percent whose
/// baseline is often 0, where a relative change means nothing).
pub struct Metric {
    pub name: &'static str,
    pub column: &'static str,
    pub higher_better: bool,
    pub points: bool,
}

const fn m(name: &'static str, column: &'static str, higher_better: bool) -> Metric {
    Metric {
        name,
        column,
        higher_better,
        points: false,
    }
}

pub const COMPARED: &[Metric] = &[
    m("ttft_ms", "ttft_ms_mean", false),
    m("prefill_tps", "prefill_tps_mean", true),
    m("decode_tps", "decode_tps_mean", true),
    m("token_ms_p99", "token_ms_p99", false),
    m("load_ms", "load_ms_mean", false),
    m("cold_start_ms", "cold_start_ms", false),
    m("peak_rss_mib", "peak_rss_mib", false),
    m("energy_j_per_token", "energy_j_per_token", false),
    m("inference_ms_p50", "inference_ms_p50", false),
    m("inference_ms_p99", "inference_ms_p99", false),
    m("inferences_per_s", "inferences_per_s", true),
    Metric {
        name: "frame_deadline_miss_pct",
        column: "frame_deadline_miss_pct",
        higher_better: false,
        points: true,
    },
    Metric {
        name: "failure_rate_pct",
        column: "failure_rate_pct",
        higher_better: false,
        points: true,
    },
];

/// The metrics whose per-repetition samples a row carries (and measurements.csv writes, as
/// `<metric>_samples`), so that Welch's test reads the same numbers from either form.
pub const SAMPLED: &[&str] = &[
    "ttft_ms",
    "prefill_tps",
    "decode_tps",
    "token_ms_p99",
    "load_ms",
    "peak_rss_mib",
];

/// Two-sided p-values below this are significant.
pub const ALPHA: f64 = 0.05;

/// Fields `--match-by` may name.
pub const MATCH_FIELDS: &[&str] = &[
    "device",
    "class",
    "cell_id",
    "model",
    "quant",
    "runtime",
    "backend",
    "threads",
    "prompt_tokens",
    "gen_tokens",
    "cold",
    "load",
    "sustained_s",
    "gpu_layers",
    "kv_cache",
    "depth",
    "n_batch",
    "n_ubatch",
    "mmap",
];

/// `--match-by`'s default: the same cell of the same matrix on the same device.
pub const DEFAULT_MATCH: &[&str] = &["device", "cell_id"];

/// A row's value of a match field (names checked against [`MATCH_FIELDS`] by the caller).
fn field(r: &Row, f: &str) -> String {
    match f {
        "device" => r.device.clone(),
        "class" => r.class.clone().unwrap_or_default(),
        "cell_id" => r.cell_id.clone(),
        "model" => r.model.clone(),
        "quant" => r.quant.clone().unwrap_or_default(),
        "runtime" => r.runtime.clone(),
        "backend" => r.backend.clone(),
        "threads" => r.threads.to_string(),
        "prompt_tokens" => r.prompt_tokens.to_string(),
        "gen_tokens" => r.gen_tokens.to_string(),
        "cold" => r.cold.to_string(),
        "load" => r.load.clone(),
        "sustained_s" => r.sustained_s.map_or_else(String::new, super::num),
        "gpu_layers" => r.gpu_layers.map_or_else(String::new, |n| n.to_string()),
        "kv_cache" => r.kv_cache.clone().unwrap_or_default(),
        "depth" => r.depth.to_string(),
        "n_batch" => r.n_batch.map_or_else(String::new, |n| n.to_string()),
        "n_ubatch" => r.n_ubatch.map_or_else(String::new, |n| n.to_string()),
        "mmap" => r.mmap.map_or_else(String::new, |m| u8::from(m).to_string()),
        _ => String::new(),
    }
}

/// What a regression verdict rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// Welch's t-test on the repetitions, and the threshold.
    Welch,
    /// The threshold alone: a side has a single repetition (or a measurements.csv from before
    /// samples were written), so there is no variance to test against. A gate that could never
    /// trip without repetitions would pass any slowdown; this one trips on the size of the
    /// change.
    Threshold,
}

/// One metric's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Worse past the threshold, and significant (or untestable: one repetition).
    Regression,
    /// Worse past the threshold, but the repetitions are too few or too noisy for Welch's test
    /// to tell it from noise: more repetitions would decide. Fails the gate under
    /// `--fail-on-inconclusive`.
    Inconclusive,
    /// Worse, within the threshold.
    Worse,
    Better,
    NoChange,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Regression => "REGRESSION",
            Verdict::Inconclusive => "INCONCLUSIVE",
            Verdict::Worse => "worse, within threshold",
            Verdict::Better => "better",
            Verdict::NoChange => "no change",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Change {
    /// The match key (`device=local cell_id=…`).
    pub key: String,
    pub device: String,
    pub cell_id: String,
    pub model: String,
    /// BASE's cell id and model where they differ from NEW's (a `--match-by` A/B).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_cell_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_model: Option<String>,
    /// The cell's thread count (0 where a measurements.csv did not say).
    pub threads: u32,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub metric: &'static str,
    pub base: f64,
    pub new: f64,
    /// The change in percent of BASE, or in percentage points where `change_unit` says so.
    pub change_pct: f64,
    pub change_unit: &'static str,
    /// Repetitions on each side the test used (0: none recorded).
    pub base_n: usize,
    pub new_n: usize,
    /// Welch's two-sided p-value; null without two or more samples on each side.
    pub p_value: Option<f64>,
    pub significant: Option<bool>,
    /// The chance Welch's test would find a change the size of the threshold significant, with
    /// these repetitions and their spread; null without a test.
    pub power: Option<f64>,
    pub basis: Basis,
    pub verdict: Verdict,
    /// `verdict == regression`, kept for scripts written before verdicts.
    pub regression: bool,
    pub worse: bool,
}

/// A cell ok in BASE that NEW failed, skipped or does not have: a regression.
#[derive(Clone, Debug, Serialize)]
pub struct Lost {
    pub key: String,
    pub device: String,
    pub cell_id: String,
    pub model: String,
    /// `failed`, `skipped` or `missing`.
    pub new_status: String,
    pub reason: Option<String>,
}

/// Two results compared.
#[derive(Clone, Debug, Serialize)]
pub struct Comparison {
    pub match_by: Vec<String>,
    /// Match keys present on both sides.
    pub cells_in_common: usize,
    pub changes: Vec<Change>,
    pub lost: Vec<Lost>,
    /// Cells that failed in BASE and are ok in NEW.
    pub fixed: Vec<String>,
    /// Cells in NEW only (not judged: nothing to compare them with).
    pub new_only: Vec<String>,
    /// Cells failed or skipped on both sides.
    pub failed_in_both: Vec<String>,
    /// Metric regressions plus lost cells: the gate trips when this is not 0.
    pub regressions: usize,
    pub inconclusive: usize,
    /// Changes judged on the threshold alone (no repetitions to test).
    pub threshold_only: usize,
}

/// Why two results cannot be compared.
#[derive(Debug, PartialEq)]
pub enum MatchError {
    /// Two rows of one side share a match key.
    Ambiguous {
        new_side: bool,
        key: String,
        cells: Vec<String>,
    },
    /// No match key is on both sides.
    NoCommon { base: usize, new: usize },
}

impl MatchError {
    /// The problem in words, after the file name the caller puts before it.
    pub fn problem(&self, match_by: &[String]) -> String {
        match self {
            MatchError::Ambiguous { key, cells, .. } => format!(
                "{} cells match `{key}` (cell ids {}): add a field that tells them apart to \
                 --match-by (now {}; fields: {})",
                cells.len(),
                cells.join(", "),
                match_by.join(","),
                MATCH_FIELDS.join(", ")
            ),
            MatchError::NoCommon { base, new } => format!(
                "no cell in common with the baseline ({base} cells in BASE, {new} in NEW, matched \
                 by {}): nothing was compared. Two runs of different matrices, models or quants \
                 match by shape: --match-by device,threads,prompt_tokens,gen_tokens",
                match_by.join(",")
            ),
        }
    }
}

/// Mean and sample variance, from the summary `odai bench` already computes.
fn mean_var(v: &[f64]) -> (f64, f64) {
    let s = crate::bench::stats::summarize(v);
    (s.mean, s.stddev * s.stddev)
}

/// Welch's t statistic's standard error and Welch–Satterthwaite degrees of freedom; `None`
/// with fewer than two samples on a side.
fn welch_se_df(a: &[f64], b: &[f64]) -> Option<(f64, f64, f64)> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let df = (sa + sb).powi(2)
        / (sa.powi(2) / (a.len() as f64 - 1.0) + sb.powi(2) / (b.len() as f64 - 1.0));
    Some((mb - ma, (sa + sb).sqrt(), df))
}

/// Welch's t-test (unequal variances): the two-sided p-value that the means differ; `None` with
/// fewer than two samples on a side.
pub fn welch_p(a: &[f64], b: &[f64]) -> Option<f64> {
    let (diff, se, df) = welch_se_df(a, b)?;
    if se == 0.0 {
        return Some(if diff == 0.0 { 1.0 } else { 0.0 });
    }
    // P(|T| > |t|) for Student's t with df degrees of freedom; the survival function keeps its
    // precision in the far tail, where 1 − cdf would round to 0.
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    Some((2.0 * dist.sf((diff / se).abs())).min(1.0))
}

/// The power of Welch's two-sided test at [`ALPHA`] to find a difference of `delta` between
/// the means, given these samples' spread: the usual shifted-central-t approximation of the
/// noncentral t (P(T > t_crit − δ/se) + P(T < −t_crit − δ/se), as G*Power's "post hoc"
/// approximation does). `None` without a test.
pub fn welch_power(a: &[f64], b: &[f64], delta: f64) -> Option<f64> {
    let (_, se, df) = welch_se_df(a, b)?;
    if se == 0.0 {
        return Some(if delta != 0.0 { 1.0 } else { ALPHA });
    }
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let crit = dist.inverse_cdf(1.0 - ALPHA / 2.0);
    let ncp = delta.abs() / se;
    Some((dist.sf(crit - ncp) + dist.cdf(-crit - ncp)).clamp(0.0, 1.0))
}

fn key_of(r: &Row, by: &[String]) -> String {
    by.iter()
        .map(|f| format!("{f}={}", field(r, f)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn index<'a>(
    rows: &'a [Row],
    by: &[String],
    new_side: bool,
) -> Result<BTreeMap<String, &'a Row>, MatchError> {
    let mut out: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for r in rows {
        out.entry(key_of(r, by)).or_default().push(r);
    }
    out.into_iter()
        .map(|(k, v)| {
            if v.len() > 1 {
                Err(MatchError::Ambiguous {
                    new_side,
                    key: k,
                    cells: v.iter().map(|r| r.cell_id.clone()).collect(),
                })
            } else {
                Ok((k, v[0]))
            }
        })
        .collect()
}

/// Compares NEW against BASE, matching rows by the `match_by` fields.
pub fn compare(
    base: &[Row],
    new: &[Row],
    threshold_pct: f64,
    match_by: &[String],
) -> Result<Comparison, MatchError> {
    let b_index = index(base, match_by, false)?;
    let n_index = index(new, match_by, true)?;
    let common = b_index.keys().filter(|k| n_index.contains_key(*k)).count();
    if common == 0 {
        return Err(MatchError::NoCommon {
            base: b_index.len(),
            new: n_index.len(),
        });
    }
    let mut cmp = Comparison {
        match_by: match_by.to_vec(),
        cells_in_common: common,
        changes: Vec::new(),
        lost: Vec::new(),
        fixed: Vec::new(),
        new_only: n_index
            .keys()
            .filter(|k| !b_index.contains_key(*k))
            .cloned()
            .collect(),
        failed_in_both: Vec::new(),
        regressions: 0,
        inconclusive: 0,
        threshold_only: 0,
    };
    for (key, b) in &b_index {
        let n = n_index.get(key);
        match (b.is_ok(), n) {
            (true, None) => cmp.lost.push(lost(key, b, "missing", None)),
            (true, Some(n)) if !n.is_ok() => {
                cmp.lost.push(lost(key, n, &n.status, n.reason.clone()))
            }
            (false, Some(n)) if n.is_ok() => cmp.fixed.push(key.clone()),
            (false, Some(_)) => cmp.failed_in_both.push(key.clone()),
            (false, None) => {}
            (true, Some(n)) => {
                for m in COMPARED {
                    if let Some(c) = change(key, b, n, m, threshold_pct) {
                        cmp.changes.push(c);
                    }
                }
            }
        }
    }
    cmp.regressions = cmp.lost.len() + cmp.changes.iter().filter(|c| c.regression).count();
    cmp.inconclusive = cmp
        .changes
        .iter()
        .filter(|c| c.verdict == Verdict::Inconclusive)
        .count();
    cmp.threshold_only = cmp
        .changes
        .iter()
        .filter(|c| c.basis == Basis::Threshold)
        .count();
    Ok(cmp)
}

fn lost(key: &str, r: &Row, status: &str, reason: Option<String>) -> Lost {
    Lost {
        key: key.to_owned(),
        device: r.device.clone(),
        cell_id: r.cell_id.clone(),
        model: r.model.clone(),
        new_status: status.to_owned(),
        reason,
    }
}

fn change(key: &str, b: &Row, n: &Row, m: &Metric, threshold_pct: f64) -> Option<Change> {
    let (bm, nm) = (b.get(m.column)?, n.get(m.column)?);
    let change_pct = if m.points {
        nm - bm
    } else if bm != 0.0 {
        100.0 * (nm - bm) / bm.abs()
    } else if nm == 0.0 {
        0.0
    } else {
        // From nothing to something: no relative size; past any threshold.
        100.0 * (nm - bm).signum()
    };
    let worse = if m.higher_better { nm < bm } else { nm > bm };
    let samples = |r: &Row| r.samples.get(m.name).cloned().unwrap_or_default();
    let (bs, ns) = (samples(b), samples(n));
    let p = welch_p(&bs, &ns);
    let significant = p.map(|p| p < ALPHA);
    // The threshold as a difference of means: percent of BASE, or points.
    let delta = if m.points {
        threshold_pct
    } else {
        threshold_pct / 100.0 * bm.abs()
    };
    let power = welch_power(&bs, &ns, delta);
    let basis = if p.is_some() {
        Basis::Welch
    } else {
        Basis::Threshold
    };
    let past_threshold = change_pct.abs() > threshold_pct;
    let verdict = if worse && past_threshold {
        match significant {
            Some(false) => Verdict::Inconclusive,
            _ => Verdict::Regression,
        }
    } else if worse {
        Verdict::Worse
    } else if nm != bm {
        Verdict::Better
    } else {
        Verdict::NoChange
    };
    let differs = |x: &str, y: &str| (x != y).then(|| x.to_owned());
    Some(Change {
        key: key.to_owned(),
        device: n.device.clone(),
        cell_id: n.cell_id.clone(),
        model: n.model.clone(),
        base_cell_id: differs(&b.cell_id, &n.cell_id),
        base_model: differs(&b.model, &n.model),
        threads: n.threads,
        prompt_tokens: n.prompt_tokens,
        gen_tokens: n.gen_tokens,
        metric: m.name,
        base: bm,
        new: nm,
        change_pct,
        change_unit: if m.points { "points" } else { "percent" },
        base_n: bs.len(),
        new_n: ns.len(),
        p_value: p,
        significant,
        power,
        basis,
        verdict,
        regression: verdict == Verdict::Regression,
        worse,
    })
}

/// Rows back from a measurements.csv, with the per-repetition samples its `<metric>_samples`
/// columns hold (schema 5); a file from before them has none, and its changes are judged on the
/// threshold alone.
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
            reps: int("reps"),
            status: get(status),
            reason: None,
            values: METRICS
                .iter()
                .map(|m| col(m).and_then(|c| rec.get(c)?.parse().ok()))
                .collect(),
            missing: BTreeMap::new(),
            token_ms: Vec::new(),
            samples: SAMPLED
                .iter()
                .filter_map(|&m| {
                    let text = rec.get(col(&format!("{m}_samples"))?)?;
                    let v: Vec<f64> = text
                        .split(';')
                        .filter_map(|s| s.trim().parse().ok())
                        .collect();
                    (!v.is_empty()).then_some((m, v))
                })
                .collect(),
            odai_version: None,
            model_sha256: None,
            gpu_layers: col("gpu_layers").and_then(|c| rec.get(c)?.parse().ok()),
            depth: col("depth")
                .and_then(|c| rec.get(c)?.parse().ok())
                .unwrap_or(0),
            kv_cache: col("kv_cache")
                .and_then(|c| rec.get(c))
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            n_batch: col("n_batch").and_then(|c| rec.get(c)?.parse().ok()),
            n_ubatch: col("n_ubatch").and_then(|c| rec.get(c)?.parse().ok()),
            mmap: col("use_mmap").and_then(|c| match rec.get(c)? {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            }),
            offload: None,
            warnings: Vec::new(),
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
            kv_cache: None,
            depth: 0,
            n_batch: None,
            n_ubatch: None,
            mmap: None,
            offload: None,
            warnings: Vec::new(),
        }
    }

    fn by() -> Vec<String> {
        DEFAULT_MATCH.iter().map(|s| (*s).to_owned()).collect()
    }

    fn decode(c: &Comparison) -> Vec<&Change> {
        c.changes
            .iter()
            .filter(|c| c.metric == "decode_tps")
            .collect()
    }

    #[test]
    fn regression_compare_without_repetitions_gates_on_the_threshold() {
        // Found in review: without samples nothing was ever significant, so nothing was ever a
        // regression, and a 30 % slower decode passed the gate.
        let cmp = |b: f64, n: f64| {
            compare(&[row("a", b, None)], &[row("a", n, None)], 10.0, &by()).unwrap()
        };
        let c = cmp(100.0, 70.0);
        assert_eq!(c.changes.len(), 1);
        assert_eq!(c.changes[0].basis, Basis::Threshold);
        assert_eq!(c.changes[0].verdict, Verdict::Regression);
        assert!(c.changes[0].regression && c.regressions == 1, "{c:?}");
        // Within the threshold, or better: no regression.
        assert_eq!(cmp(100.0, 95.0).changes[0].verdict, Verdict::Worse);
        assert_eq!(cmp(100.0, 130.0).changes[0].verdict, Verdict::Better);
        assert_eq!(cmp(100.0, 130.0).regressions, 0);
        // With repetitions, significance decides: tight samples whose means differ by 30 % are
        // a regression.
        let tight = compare(
            &[row("a", 100.0, Some(vec![99.0, 100.0, 101.0]))],
            &[row("a", 70.0, Some(vec![69.0, 70.0, 71.0]))],
            10.0,
            &by(),
        )
        .unwrap();
        assert!(
            tight.changes[0].regression && tight.changes[0].threads == 2,
            "{tight:?}"
        );
        assert!(tight.changes[0].power.unwrap() > 0.99);
    }

    #[test]
    fn regression_compare_underpowered_change_is_inconclusive_not_a_pass() {
        // Found in review: two reps a side, decode −30 % but noisy, printed "no significant
        // change" like a pass; the test simply had no power at n = 2.
        let c = compare(
            &[row("a", 100.0, Some(vec![40.0, 160.0]))],
            &[row("a", 70.0, Some(vec![20.0, 120.0]))],
            10.0,
            &by(),
        )
        .unwrap();
        let d = decode(&c)[0];
        assert_eq!(d.basis, Basis::Welch);
        assert_eq!(d.verdict, Verdict::Inconclusive);
        assert!(!d.regression && d.power.unwrap() < 0.2, "{d:?}");
        assert_eq!((c.regressions, c.inconclusive), (0, 1));
    }

    #[test]
    fn regression_compare_counts_a_cell_failed_or_missing_in_new() {
        // Found in review: a cell OOM-killed in the new run was dropped from the comparison
        // ("0 regression(s)", exit 0), as was one that vanished.
        let mut failed = row("a", 0.0, None);
        failed.status = "failed".into();
        failed.reason = Some("worker killed by SIGKILL (out of memory?)".into());
        let c = compare(
            &[row("a", 100.0, None), row("b", 100.0, None)],
            &[failed, row("b", 100.0, None)],
            10.0,
            &by(),
        )
        .unwrap();
        assert_eq!(c.lost.len(), 1);
        assert_eq!(c.lost[0].new_status, "failed");
        assert_eq!(c.regressions, 1);
        let gone = compare(
            &[row("a", 100.0, None), row("b", 100.0, None)],
            &[row("b", 100.0, None)],
            10.0,
            &by(),
        )
        .unwrap();
        assert_eq!(gone.lost[0].new_status, "missing");
        assert_eq!((gone.regressions, gone.cells_in_common), (1, 1));
        // A cell failed in BASE and ok in NEW is a fix, not a change to judge.
        let mut was = row("a", 0.0, None);
        was.status = "failed".into();
        let fixed = compare(&[was], &[row("a", 50.0, None)], 10.0, &by()).unwrap();
        assert_eq!((fixed.fixed.len(), fixed.regressions), (1, 0));
    }

    #[test]
    fn regression_compare_with_no_cell_in_common_is_an_error() {
        // Found in review: two runs with no cell in common compared nothing and exited 0.
        let e = compare(&[row("a", 1.0, None)], &[row("b", 1.0, None)], 5.0, &by()).unwrap_err();
        assert_eq!(e, MatchError::NoCommon { base: 1, new: 1 });
        assert!(
            e.problem(&by())
                .contains("--match-by device,threads,prompt_tokens,gen_tokens")
        );
    }

    #[test]
    fn match_by_pairs_two_quants_of_one_shape_and_refuses_an_ambiguous_key() {
        let mut q4 = row("q4cell", 100.0, None);
        q4.model = "m-q4_0.gguf".into();
        let mut q8 = row("q8cell", 80.0, None);
        q8.model = "m-q8_0.gguf".into();
        let shape: Vec<String> = ["device", "threads", "prompt_tokens", "gen_tokens"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert!(matches!(
            compare(&[q4.clone()], &[q8.clone()], 10.0, &by()),
            Err(MatchError::NoCommon { .. })
        ));
        let c = compare(&[q4.clone()], &[q8.clone()], 10.0, &shape).unwrap();
        let d = decode(&c)[0];
        assert_eq!(d.base_model.as_deref(), Some("m-q4_0.gguf"));
        assert_eq!(d.base_cell_id.as_deref(), Some("q4cell"));
        assert_eq!(d.verdict, Verdict::Regression);
        // Two cells of one side under one key: an error naming both, never a silent pick.
        let mut other = q4.clone();
        other.cell_id = "q4cell-b".into();
        let e = compare(&[q4, other], &[q8], 10.0, &shape).unwrap_err();
        assert!(
            matches!(&e, MatchError::Ambiguous { new_side: false, cells, .. } if cells.len() == 2)
        );
        assert!(e.problem(&shape).starts_with("2 cells match `device=d threads=2 prompt_tokens=64 gen_tokens=32` (cell ids q4cell, q4cell-b)"), "{}", e.problem(&shape));
    }

    #[test]
    fn a_rate_in_percent_changes_in_points_from_zero() {
        // A deadline-miss or failure rate of 0 % in BASE: a relative change is undefined, and
        // 0 → 20 % must still trip the gate.
        let mut b = row("a", 100.0, None);
        let mut n = row("a", 100.0, None);
        let i = METRICS
            .iter()
            .position(|m| *m == "failure_rate_pct")
            .unwrap();
        b.values[i] = Some(0.0);
        n.values[i] = Some(20.0);
        let c = compare(&[b], &[n], 5.0, &by()).unwrap();
        let f = c
            .changes
            .iter()
            .find(|c| c.metric == "failure_rate_pct")
            .unwrap();
        assert_eq!((f.change_pct, f.change_unit), (20.0, "points"));
        assert_eq!(f.verdict, Verdict::Regression);
    }

    #[test]
    fn welch_power_grows_with_repetitions_and_is_about_80_pct_at_2_8_standard_errors() {
        // Large samples (df → ∞): a difference of 2.8 standard errors is found with power
        // Φ(2.8 − 1.96) ≈ 0.80 (the textbook z approximation).
        let a: Vec<f64> = (0..2000)
            .map(|i| if i % 2 == 0 { -1.0 } else { 1.0 })
            .collect();
        let se = (2.0 * 1.0005 / 2000.0f64).sqrt();
        let p = welch_power(&a, &a, 2.8 * se).unwrap();
        assert!((p - 0.80).abs() < 0.01, "{p}");
        let small = welch_power(&a[..4], &a[..4], 1.0).unwrap();
        let more = welch_power(&a[..40], &a[..40], 1.0).unwrap();
        assert!(small < more, "{small} {more}");
        assert_eq!(welch_power(&a[..1], &a, 1.0), None);
    }
}

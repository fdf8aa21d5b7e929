//! Readiness scorecards: per device class × model, each criterion of a workload with its
//! measured value (the worst device of the class), threshold and PASS / FAIL / N/A — never a
//! silent pass — a weighted score, the stated factors, and a verdict (on-device first, hybrid,
//! cloud-only) with the reasons that decided it. Fleet coverage adds up the classes' fleet
//! shares where a model passes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::measurements::{ResultsSet, Row};
use super::workload::{Criterion, Factor, Stated, Workload};
use crate::probe::class::Classes;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    #[serde(rename = "PASS")]
    Pass,
    #[serde(rename = "FAIL")]
    Fail,
    #[serde(rename = "N/A")]
    NotApplicable,
    /// The criterion cannot hold on the class (battery drain on a class without a battery): it
    /// leaves the coverage arithmetic instead of counting as unmeasured.
    #[serde(rename = "does not apply")]
    DoesNotApply,
}

impl Outcome {
    pub fn text(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::NotApplicable => "N/A",
            Outcome::DoesNotApply => "does not apply",
        }
    }
}

/// Lowest first: `--fail-on` fails a verdict at or below its level, and insufficient evidence is
/// below them all — a verdict is never a pass by omission.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Verdict {
    #[serde(rename = "insufficient evidence")]
    InsufficientEvidence,
    #[serde(rename = "cloud-only")]
    CloudOnly,
    #[serde(rename = "hybrid")]
    Hybrid,
    #[serde(rename = "on-device first")]
    OnDeviceFirst,
}

impl Verdict {
    pub fn text(self) -> &'static str {
        match self {
            Verdict::OnDeviceFirst => "on-device first",
            Verdict::Hybrid => "hybrid",
            Verdict::CloudOnly => "cloud-only",
            Verdict::InsufficientEvidence => "insufficient evidence",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct CriterionResult {
    pub criterion: Criterion,
    pub measured: Option<f64>,
    pub unit: &'static str,
    /// `max` or `min`.
    pub op: &'static str,
    pub threshold: f64,
    pub weight: f64,
    pub outcome: Outcome,
    /// Where the value came from (the worst device), or why there is none.
    pub reason: String,
    /// What `odai bench` warned about the cells the value comes from (noisy repetitions, too
    /// few of them, outliers, failed ones), each prefixed by the device: a figure to read with
    /// care, and the verdict's reasons say so.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scorecard {
    pub class: String,
    pub class_label: String,
    pub fleet_share: Option<f64>,
    pub model: String,
    pub devices: Vec<String>,
    pub criteria: Vec<CriterionResult>,
    pub factors: Vec<Stated>,
    /// Passed weight ÷ measured weight, in percent; null when nothing was measured.
    pub score_pct: Option<f64>,
    /// How much the stated factors lean on-device, in percent.
    pub factor_lean_pct: f64,
    pub verdict: Verdict,
    pub reasons: Vec<String>,
    /// Measured weight ÷ the profile's total criteria weight, in percent: how much of what the
    /// profile weighs the verdict rests on.
    pub coverage_pct: f64,
    /// The profile's `min_coverage`, in percent: below it the verdict is insufficient evidence.
    pub min_coverage_pct: f64,
    /// The criteria not measured, and what would measure them.
    pub missing: Vec<Missing>,
    /// Where quality came from: `measured` (an `odai quality` record met a quality criterion),
    /// `stated` (the profile's quality_threshold_met), or `none`.
    pub quality_source: &'static str,
    /// The device's figures beside the cloud baseline's, when the report has one.
    pub cloud: Option<CloudComparison>,
}

/// A criterion with no measurement behind it.
#[derive(Clone, Debug, Serialize)]
pub struct Missing {
    pub criterion: Criterion,
    pub weight: f64,
    /// Why it is not measured, which says the cell (or command) that would measure it.
    pub why: String,
}

/// The cloud path, measured: an endpoint's figures from a results set (`odai report
/// --baseline DIR`, or the endpoint cells of the results set itself).
#[derive(Clone, Debug, Serialize)]
pub struct Baseline {
    /// The results directory the figures come from.
    pub source: String,
    /// The endpoint cell's model (`MODEL@URL`).
    pub endpoint: String,
    pub ttft_ms_p95: Option<f64>,
    pub decode_tps_mean: Option<f64>,
    pub token_ms_p99: Option<f64>,
    /// Repetitions (requests) that failed, in percent.
    pub failure_rate_pct: Option<f64>,
}

/// One class × model on the device beside the cloud baseline: the class's worst device.
#[derive(Clone, Debug, Serialize)]
pub struct CloudComparison {
    pub device_ttft_ms_p95: Option<f64>,
    pub cloud_ttft_ms_p95: Option<f64>,
    pub device_decode_tps: Option<f64>,
    pub cloud_decode_tps: Option<f64>,
    pub cloud_failure_rate_pct: Option<f64>,
}

/// Whether a row measured an endpoint (the cloud path) rather than a device.
pub fn is_endpoint(r: &Row) -> bool {
    r.runtime == "openai" || r.device == crate::matrix::runner::ENDPOINT_DEVICE
}

/// The cloud baseline of `rows`: their endpoint cell closest to the workload's shape.
pub fn baseline(rows: &[Row], w: &Workload, source: &str) -> Option<Baseline> {
    let cloud: Vec<&Row> = rows.iter().filter(|r| is_endpoint(r)).collect();
    let main = main_row(&cloud, w)?;
    Some(Baseline {
        source: source.to_owned(),
        endpoint: main.model.clone(),
        ttft_ms_p95: main.get("ttft_ms_p95"),
        decode_tps_mean: main.get("decode_tps_mean"),
        token_ms_p99: main.get("token_ms_p99"),
        failure_rate_pct: main.get("failure_rate_pct"),
    })
}

/// The device side of the comparison and the reasons that cite both sides.
fn compare_with_cloud(
    devices: &BTreeMap<String, Vec<&Row>>,
    w: &Workload,
    b: &Baseline,
    class: &str,
) -> (CloudComparison, Vec<String>) {
    let mains: Vec<&Row> = devices.values().filter_map(|rs| main_row(rs, w)).collect();
    let worst = |m: &str, max: bool| {
        mains
            .iter()
            .filter_map(|r| r.get(m))
            .reduce(if max { f64::max } else { f64::min })
    };
    let c = CloudComparison {
        device_ttft_ms_p95: worst("ttft_ms_p95", true),
        cloud_ttft_ms_p95: b.ttft_ms_p95,
        device_decode_tps: worst("decode_tps_mean", false),
        cloud_decode_tps: b.decode_tps_mean,
        cloud_failure_rate_pct: b.failure_rate_pct,
    };
    let mut reasons = Vec::new();
    if let (Some(d), Some(k)) = (c.device_ttft_ms_p95, c.cloud_ttft_ms_p95) {
        reasons.push(format!(
            "on {class} {} ms TTFT p95 vs cloud {} ms ({})",
            fmt(d),
            fmt(k),
            if d <= k {
                "device faster"
            } else {
                "cloud faster"
            }
        ));
    }
    if let (Some(d), Some(k)) = (c.device_decode_tps, c.cloud_decode_tps) {
        reasons.push(format!(
            "decode {} tok/s on {class} vs {} tok/s in the cloud",
            fmt(d),
            fmt(k)
        ));
    }
    if let Some(f) = c.cloud_failure_rate_pct.filter(|f| *f > 0.0) {
        reasons.push(format!(
            "the cloud endpoint failed {} % of requests",
            fmt(f)
        ));
    }
    (c, reasons)
}

#[derive(Clone, Debug, Serialize)]
pub struct Coverage {
    pub model: String,
    /// Fleet share of the classes where the verdict is on-device first.
    pub on_device_share: f64,
    /// … on-device first or hybrid.
    pub hybrid_or_better_share: f64,
    /// Fleet share of the classes with results at all.
    pub measured_share: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Scoring {
    pub workload: Workload,
    /// The cloud path the scorecards compare against, when measured.
    pub baseline: Option<Baseline>,
    pub scorecards: Vec<Scorecard>,
    pub coverage: Vec<Coverage>,
}

impl Scoring {
    /// The classes scored, in scorecard order: (id, label).
    pub fn classes(&self) -> Vec<(&str, &str)> {
        let mut classes: Vec<(&str, &str)> = Vec::new();
        for c in &self.scorecards {
            if !classes.iter().any(|(id, _)| *id == c.class) {
                classes.push((&c.class, &c.class_label));
            }
        }
        classes
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// The row that stands for a device running this model in this workload: a successful, warm,
/// unloaded, not-sustained cell of the shape closest to the workload's; among equals the fastest
/// decode (the thread count a deployment would pick).
pub fn main_row<'a>(rows: &[&'a Row], w: &Workload) -> Option<&'a Row> {
    let distance = |r: &Row| {
        r.prompt_tokens.abs_diff(w.prompt_tokens) as f64
            + f64::from(r.gen_tokens.abs_diff(w.gen_tokens)) / 4.0
    };
    rows.iter()
        .filter(|r| r.is_ok() && r.sustained_s.is_none() && r.load == "none")
        .min_by(|a, b| {
            (a.cold, distance(a))
                .partial_cmp(&(b.cold, distance(b)))
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(
                    b.get("decode_tps_mean")
                        .unwrap_or(0.0)
                        .total_cmp(&a.get("decode_tps_mean").unwrap_or(0.0)),
                )
        })
        .copied()
}

/// The tensor cell a tensor workload is judged on, on one device: a paced stream where one
/// ran (the fewest deadline misses, then the smallest duty cycle: the configuration a team would
/// ship), else the burst with the lowest p99; warm before cold.
pub fn main_tensor_row<'a>(rows: &[&'a Row]) -> Option<&'a Row> {
    let key = |r: &Row| {
        (
            r.get("frame_deadline_miss_pct").is_none(),
            r.cold,
            r.get("frame_deadline_miss_pct").unwrap_or(f64::INFINITY),
            r.get("cpu_duty_pct").unwrap_or(f64::INFINITY),
            r.get("inference_ms_p99").unwrap_or(f64::INFINITY),
        )
    };
    rows.iter()
        .filter(|r| r.is_ok() && r.is_tensor())
        .min_by(|a, b| {
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .copied()
}

/// One criterion's value on one device, or why there is none.
fn value_on_device(c: Criterion, rows: &[&Row], w: &Workload) -> Result<f64, String> {
    let main = if w.tensor {
        main_tensor_row(rows)
    } else {
        main_row(rows, w)
    };
    let need_main = || {
        main.ok_or_else(|| {
            if rows.iter().any(|r| r.status == "skipped") && !rows.iter().any(|r| r.is_ok()) {
                "not measured: the model does not fit".to_owned()
            } else {
                "not measured: no successful warm cell of this model".to_owned()
            }
        })
    };
    let metric = |r: &Row, m: &str| {
        r.get(m).ok_or_else(|| {
            r.missing
                .get(m)
                .map_or_else(|| format!("not measured: no {m}"), |why| why.clone())
        })
    };
    match c {
        Criterion::InferenceMsP99 => {
            let r = need_main()?;
            // A stream's frames are the figure a paced feature sees; a burst's otherwise.
            metric(r, "inference_ms_p99")
        }
        Criterion::FrameDeadlineMissPct | Criterion::CpuDutyPct => {
            let r = need_main()?;
            metric(r, c.name()).map_err(|_| {
                "not measured: no paced stream of this model (mode = \"stream\" in [[tensor]])"
                    .to_owned()
            })
        }
        Criterion::KldMean
        | Criterion::Top1AgreementPct
        | Criterion::TaskAccuracyPct
        | Criterion::PplDeltaPct => Err("measured by odai quality, per model × runtime".into()),
        Criterion::TtftMsP95 => metric(need_main()?, "ttft_ms_p95"),
        Criterion::DecodeTpsP10 => metric(need_main()?, "decode_tps_p10"),
        Criterion::TokenMsP99 => metric(need_main()?, "token_ms_p99"),
        Criterion::DeadlineMissPct => {
            let r = need_main()?;
            let deadline = w.token_deadline_ms.unwrap_or(f64::INFINITY);
            if r.token_ms.is_empty() {
                return Err("not measured: no per-token latencies".into());
            }
            let late = r.token_ms.iter().filter(|&&t| t > deadline).count();
            Ok(100.0 * late as f64 / r.token_ms.len() as f64)
        }
        Criterion::MemoryHeadroomFrac => {
            let measured: Vec<f64> = rows
                .iter()
                .filter(|r| r.is_ok())
                .filter_map(|r| r.get("memory_headroom_frac"))
                .collect();
            if let Some(worst) = measured.into_iter().reduce(f64::max) {
                return Ok(worst);
            }
            Err(rows
                .iter()
                .find_map(|r| r.missing.get("memory_headroom_frac").cloned())
                .unwrap_or_else(|| "not measured: no successful cell".into()))
        }
        Criterion::ColdStartMs => rows
            .iter()
            .filter(|r| r.is_ok() && r.cold)
            .filter_map(|r| r.get("cold_start_ms"))
            .reduce(f64::max)
            .ok_or_else(|| {
                "not measured: no cold cell of this model (cold = [true] in the matrix)".into()
            }),
        Criterion::SustainedStability => {
            let longest = rows
                .iter()
                .filter(|r| r.is_ok() && r.sustained_s.is_some())
                .max_by(|a, b| {
                    a.sustained_s
                        .partial_cmp(&b.sustained_s)
                        .unwrap_or(std::cmp::Ordering::Equal)
                });
            match longest {
                None => Err("not measured: no sustained cell of this model (sustained = [...] in the matrix)".into()),
                Some(r) => metric(r, "sustained_stability"),
            }
        }
        Criterion::BatteryDrainPctPerHour | Criterion::EnergyJPerToken => {
            let m = c.name();
            // A sustained run is the better witness of drain; else the main cell.
            let sustained = rows
                .iter()
                .filter(|r| r.is_ok() && r.sustained_s.is_some())
                .find_map(|r| r.get(m));
            match (sustained, main) {
                (Some(v), _) => Ok(v),
                (None, Some(r)) => metric(r, m),
                (None, None) => Err(need_main().err().unwrap_or_default()),
            }
        }
    }
}

/// The bench warnings of the cells a criterion's figure on one device comes from: the main cell
/// for the latency, speed and energy criteria, the cold cells for cold start, the sustained ones
/// for stability. Peak memory and quality do not depend on repetition noise.
fn evidence_warnings(c: Criterion, rows: &[&Row], w: &Workload) -> Vec<String> {
    let from: Vec<&Row> = match c {
        Criterion::MemoryHeadroomFrac => Vec::new(),
        _ if c.is_quality() => Vec::new(),
        Criterion::ColdStartMs => rows
            .iter()
            .filter(|r| r.is_ok() && r.cold)
            .copied()
            .collect(),
        Criterion::SustainedStability => rows
            .iter()
            .filter(|r| r.is_ok() && r.sustained_s.is_some())
            .copied()
            .collect(),
        _ => if w.tensor {
            main_tensor_row(rows)
        } else {
            main_row(rows, w)
        }
        .into_iter()
        .collect(),
    };
    // A warning about one metric counts where the criterion reads that metric (a cold
    // one-token cell's decode noise says nothing of its cold start); one about the cell as a
    // whole (too few repetitions, failed ones, oversubscribed threads) counts everywhere.
    let reads: &[&str] = match c {
        Criterion::TtftMsP95 => &["ttft_ms", "first_ttft_ms", "prefill_tps"],
        Criterion::DecodeTpsP10 | Criterion::SustainedStability => &["decode_tps", "token_ms"],
        Criterion::TokenMsP99 | Criterion::DeadlineMissPct => &["token_ms", "decode_tps"],
        Criterion::ColdStartMs => &["load_ms", "first_ttft_ms", "ttft_ms"],
        Criterion::InferenceMsP99 | Criterion::FrameDeadlineMissPct | Criterion::CpuDutyPct => {
            &["inference_ms", "frame", "cpu_duty"]
        }
        _ => &[],
    };
    let relevant = |w: &str| {
        let head = w.split([':', ' ']).next().unwrap_or_default();
        let names_a_metric = head.contains('_')
            && head
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        !names_a_metric || reads.iter().any(|m| head.starts_with(m))
    };
    let mut out: Vec<String> = Vec::new();
    for x in from.iter().flat_map(|r| r.warnings.iter()) {
        if relevant(x) && !out.contains(x) {
            out.push(x.clone());
        }
    }
    out
}

/// Why `c` cannot hold on the class at all, if it cannot: battery drain where the class is
/// declared without a battery (`battery = false` in the classes file) or, where the class says
/// nothing of batteries, where no device of it has one (their probes, every one read).
fn does_not_apply(
    c: Criterion,
    def: Option<&crate::probe::class::ClassDef>,
    devices: &BTreeMap<String, Vec<&Row>>,
    set: &ResultsSet,
) -> Option<String> {
    if c != Criterion::BatteryDrainPctPerHour {
        return None;
    }
    match def.and_then(|d| d.battery) {
        Some(false) => {
            Some("does not apply: the class is declared without a battery (battery = false)".into())
        }
        Some(true) => None,
        None => {
            let probes: Option<Vec<&crate::probe::Probe>> =
                devices.keys().map(|d| set.probes.get(d)).collect();
            probes
                .filter(|p| !p.is_empty() && p.iter().all(|p| p.power.batteries.is_empty()))
                .map(|p| {
                    format!(
                        "does not apply: no device of the class has a battery ({} probed)",
                        p.len()
                    )
                })
        }
    }
}

/// Whether every cell of the model on the device was skipped because it does not fit.
fn does_not_fit(rows: &[&Row]) -> Option<String> {
    (!rows.is_empty() && rows.iter().all(|r| r.status == "skipped"))
        .then(|| {
            rows.iter()
                .find_map(|r| r.reason.clone().filter(|x| x.starts_with("does not fit")))
        })
        .flatten()
}

/// Scorecards of `rows`' devices; endpoint rows are not a device class: they (or `baseline`,
/// when given) are the cloud path every scorecard is compared with.
pub fn score(
    set: &ResultsSet,
    rows: &[Row],
    w: &Workload,
    classes: &Classes,
    baseline: Option<Baseline>,
) -> Scoring {
    let baseline = baseline.or_else(|| self::baseline(rows, w, &set.dir.display().to_string()));
    // class -> model -> device -> rows
    let mut by: BTreeMap<String, BTreeMap<String, BTreeMap<String, Vec<&Row>>>> = BTreeMap::new();
    // A tensor workload judges tensor cells, a language workload language-model cells.
    for r in rows
        .iter()
        .filter(|r| !is_endpoint(r) && r.is_tensor() == w.tensor)
    {
        let class = r.class.clone().unwrap_or_else(|| "unclassified".into());
        by.entry(class)
            .or_default()
            .entry(r.model.clone())
            .or_default()
            .entry(r.device.clone())
            .or_default()
            .push(r);
    }
    let class_order = |id: &str| {
        classes
            .classes
            .iter()
            .position(|c| c.id == id)
            .unwrap_or(usize::MAX)
    };
    let mut class_ids: Vec<&String> = by.keys().collect();
    class_ids.sort_by_key(|id| (class_order(id), (*id).clone()));
    // Quality that is only stated never weighs like a measurement: a stated "met" leaves the
    // lean (a stated "not met" still decides, in `decide`); a measured quality criterion weighs
    // as the criterion it is.
    let lean = lean_of(w, &[Factor::QualityThresholdMet]);
    let mut scorecards = Vec::new();
    for class in class_ids {
        let def = classes.classes.iter().find(|c| &c.id == class);
        let label = def.map_or_else(
            || {
                set.probes
                    .values()
                    .filter_map(|p| p.class.value())
                    .find(|c| &c.id == class)
                    .map_or_else(|| class.clone(), |c| c.label.clone())
            },
            |d| d.label.clone(),
        );
        for (model, devices) in &by[class] {
            let mut criteria = Vec::new();
            for t in &w.thresholds {
                if let Some(why) = does_not_apply(t.criterion, def, devices, set) {
                    criteria.push(CriterionResult {
                        criterion: t.criterion,
                        measured: None,
                        unit: t.criterion.unit(),
                        op: if t.criterion.is_max() { "max" } else { "min" },
                        threshold: t.limit,
                        weight: t.weight,
                        outcome: Outcome::DoesNotApply,
                        reason: why,
                        warnings: Vec::new(),
                    });
                    continue;
                }
                if t.criterion.is_quality() {
                    criteria.push(quality_criterion(t, model, devices, &set.quality, w));
                    continue;
                }
                let mut worst: Option<(f64, &str)> = None;
                let mut why_not = None;
                let mut fit_fail = None;
                for (device, rs) in devices {
                    if t.criterion == Criterion::MemoryHeadroomFrac
                        && let Some(why) = does_not_fit(rs)
                    {
                        fit_fail = Some(format!("{device}: {why}"));
                        continue;
                    }
                    match value_on_device(t.criterion, rs, w) {
                        Ok(v) => {
                            let worse = worst.is_none_or(|(cur, _)| {
                                if t.criterion.is_max() {
                                    v > cur
                                } else {
                                    v < cur
                                }
                            });
                            if worse {
                                worst = Some((v, device));
                            }
                        }
                        Err(e) => why_not = why_not.or(Some(format!("{device}: {e}"))),
                    }
                }
                let warnings = match (&fit_fail, worst) {
                    (None, Some((_, device))) => {
                        evidence_warnings(t.criterion, &devices[device], w)
                            .into_iter()
                            .map(|x| format!("{device}: {x}"))
                            .collect()
                    }
                    _ => Vec::new(),
                };
                let (measured, outcome, reason) = match (fit_fail, worst) {
                    (Some(why), _) => (None, Outcome::Fail, why),
                    (None, Some((v, device))) => {
                        let pass = if t.criterion.is_max() {
                            v <= t.limit
                        } else {
                            v >= t.limit
                        };
                        (
                            Some(v),
                            if pass { Outcome::Pass } else { Outcome::Fail },
                            if devices.len() > 1 {
                                format!("worst of {} devices: {device}", devices.len())
                            } else {
                                format!("on {device}")
                            },
                        )
                    }
                    (None, None) => (
                        None,
                        Outcome::NotApplicable,
                        why_not.unwrap_or_else(|| "not measured".into()),
                    ),
                };
                criteria.push(CriterionResult {
                    criterion: t.criterion,
                    measured,
                    unit: t.criterion.unit(),
                    op: if t.criterion.is_max() { "max" } else { "min" },
                    threshold: t.limit,
                    weight: t.weight,
                    outcome,
                    reason,
                    warnings,
                });
            }
            let measured_w: f64 = criteria
                .iter()
                .filter(|c| matches!(c.outcome, Outcome::Pass | Outcome::Fail))
                .map(|c| c.weight)
                .sum();
            let passed_w: f64 = criteria
                .iter()
                .filter(|c| c.outcome == Outcome::Pass)
                .map(|c| c.weight)
                .sum();
            // `+ 0.0`: an empty float sum is -0.0, which would print as "-0 %".
            // Not fitting on any device of the class decides, whether or not the profile
            // weighs memory.
            let fit_failure = devices
                .iter()
                .find_map(|(device, rs)| does_not_fit(rs).map(|why| format!("{device}: {why}")));
            let score_pct = (measured_w > 0.0).then(|| 100.0 * passed_w / measured_w + 0.0);
            // What cannot apply to the class is not part of what it could have measured.
            let total_w: f64 = criteria
                .iter()
                .filter(|c| c.outcome != Outcome::DoesNotApply)
                .map(|c| c.weight)
                .sum();
            let coverage_pct = if total_w > 0.0 {
                100.0 * measured_w / total_w + 0.0
            } else {
                100.0
            };
            let missing: Vec<Missing> = criteria
                .iter()
                .filter(|c| c.outcome == Outcome::NotApplicable)
                .map(|c| Missing {
                    criterion: c.criterion,
                    weight: c.weight,
                    why: c.reason.clone(),
                })
                .collect();
            let quality_measured = criteria.iter().any(|c| {
                c.criterion.is_quality() && matches!(c.outcome, Outcome::Pass | Outcome::Fail)
            });
            let stated_quality = w
                .factors
                .iter()
                .any(|f| f.factor == Factor::QualityThresholdMet);
            let quality_source = if quality_measured {
                "measured"
            } else if stated_quality {
                "stated"
            } else {
                "none"
            };
            let (verdict, mut reasons) = decide(
                &criteria,
                w,
                &label,
                score_pct,
                lean,
                fit_failure.as_deref(),
                Evidence {
                    coverage_pct,
                    quality_measured,
                },
            );
            let noisy: Vec<&str> = criteria
                .iter()
                .filter(|c| !c.warnings.is_empty())
                .map(|c| c.criterion.name())
                .collect();
            if !noisy.is_empty() {
                reasons.push(format!(
                    "read with care: {} rest(s) on noisy or under-repeated cells (each criterion \
                     lists its cell's warnings); more repetitions on a quiet device would firm \
                     the verdict up",
                    noisy.join(", ")
                ));
            }
            let cloud = baseline.as_ref().map(|b| {
                let (c, why) = compare_with_cloud(devices, w, b, &label);
                reasons.extend(why);
                c
            });
            scorecards.push(Scorecard {
                class: class.clone(),
                class_label: label.clone(),
                fleet_share: def.and_then(|d| d.fleet_share),
                model: model.clone(),
                devices: devices.keys().cloned().collect(),
                criteria,
                factors: w.factors.clone(),
                score_pct,
                factor_lean_pct: lean,
                verdict,
                reasons,
                coverage_pct,
                min_coverage_pct: 100.0 * w.min_coverage,
                missing,
                quality_source,
                cloud,
            });
        }
    }
    let mut models: Vec<&String> = scorecards.iter().map(|s| &s.model).collect();
    models.sort();
    models.dedup();
    let coverage = models
        .into_iter()
        .map(|m| {
            let share = |pred: &dyn Fn(&Scorecard) -> bool| {
                scorecards
                    .iter()
                    .filter(|s| &s.model == m && pred(s))
                    .filter_map(|s| s.fleet_share)
                    .sum::<f64>()
                    + 0.0
            };
            Coverage {
                model: m.clone(),
                on_device_share: share(&|s| s.verdict == Verdict::OnDeviceFirst),
                hybrid_or_better_share: share(&|s| s.verdict >= Verdict::Hybrid),
                measured_share: share(&|_| true),
            }
        })
        .collect();
    Scoring {
        workload: w.clone(),
        baseline,
        scorecards,
        coverage,
    }
}

/// How much the stated factors lean on-device, in percent, leaving out `except`.
fn lean_of(w: &Workload, except: &[Factor]) -> f64 {
    let stated: Vec<&Stated> = w
        .factors
        .iter()
        .filter(|f| !except.contains(&f.factor))
        .collect();
    let total: f64 = stated.iter().map(|f| f.weight).sum();
    if total > 0.0 {
        100.0 * stated.iter().map(|f| f.lean() * f.weight).sum::<f64>() / total
    } else {
        50.0
    }
}

/// A quality criterion of one class × model: from the newest `odai quality` record of the model
/// on the runtime its cells ran on (quality is the model's and the runtime's, not the device's).
fn quality_criterion(
    t: &super::workload::Threshold,
    model: &str,
    devices: &BTreeMap<String, Vec<&Row>>,
    records: &[crate::quality::QualityRecord],
    w: &Workload,
) -> CriterionResult {
    let rows: Vec<&Row> = devices.values().flatten().copied().collect();
    let main = main_row(&rows, w).or_else(|| rows.iter().find(|r| r.is_ok()).copied());
    // Results written before runtimes were recorded say `unrecorded`: any runtime's record then.
    let runtime = main
        .map(|r| r.runtime.clone())
        .filter(|r| !r.is_empty() && r != "unrecorded");
    let sha = main.and_then(|r| r.model_sha256.clone());
    let file_name = |p: &str| {
        std::path::Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    let same_model = |q: &crate::quality::QualityRecord| match (&sha, &q.model_sha256) {
        (Some(a), Some(b)) => a == b,
        _ => q.model == model || file_name(&q.model).is_some_and(|n| Some(n) == file_name(model)),
    };
    let c = t.criterion;
    let figure = |q: &crate::quality::QualityRecord| match c {
        Criterion::KldMean => q.kld.as_ref().map(|k| k.summary.kld_mean),
        Criterion::Top1AgreementPct => q.kld.as_ref().map(|k| k.summary.top1_agreement_pct),
        Criterion::PplDeltaPct => q.kld.as_ref().map(|k| k.ppl_delta_pct),
        Criterion::TaskAccuracyPct => q.tasks.as_ref().map(|t| t.accuracy_pct),
        _ => None,
    };
    let of_model: Vec<&crate::quality::QualityRecord> = records
        .iter()
        .filter(|q| same_model(q) && !q.interrupted && figure(q).is_some())
        .collect();
    let on_runtime = of_model
        .iter()
        .filter(|q| runtime.as_deref().is_none_or(|r| q.runtime.runtime == r))
        .max_by(|a, b| a.finished_unix_s.total_cmp(&b.finished_unix_s));
    let how = match c {
        Criterion::TaskAccuracyPct => "--tasks FILE",
        _ => "--reference REF.gguf --text FILE",
    };
    let (measured, outcome, reason) = match on_runtime {
        Some(q) => {
            let v = figure(q).expect("filtered on it");
            let pass = if c.is_max() {
                v <= t.limit
            } else {
                v >= t.limit
            };
            let basis = match c {
                Criterion::TaskAccuracyPct => q
                    .tasks
                    .as_ref()
                    .map(|t| format!("{}/{} tasks", t.correct, t.tasks)),
                _ => q
                    .kld
                    .as_ref()
                    .map(|k| format!("{} tokens against {}", k.summary.tokens, k.reference)),
            }
            .unwrap_or_default();
            (
                Some(v),
                if pass { Outcome::Pass } else { Outcome::Fail },
                format!(
                    "odai quality on {} ({}): {basis}",
                    q.runtime.runtime, q.device
                ),
            )
        }
        None => {
            let others: Vec<&str> = of_model
                .iter()
                .map(|q| q.runtime.runtime.as_str())
                .collect();
            let why = if others.is_empty() {
                format!(
                    "not measured: no odai quality record of this model (odai quality --model \
                     {model} {how} --out RESULTS_DIR)"
                )
            } else {
                format!(
                    "not measured on {}: odai quality measured it on {} (run it with --runtime {})",
                    runtime.as_deref().unwrap_or("this runtime"),
                    others.join(", "),
                    runtime.as_deref().unwrap_or("RUNTIME")
                )
            };
            (None, Outcome::NotApplicable, why)
        }
    };
    CriterionResult {
        criterion: c,
        measured,
        unit: c.unit(),
        op: if c.is_max() { "max" } else { "min" },
        threshold: t.limit,
        weight: t.weight,
        outcome,
        reason,
        warnings: Vec::new(),
    }
}

/// The combined score (measured 70 %, stated lean 30 %) if every criterion not measured passed
/// (what does not apply to the class counts on neither side).
fn best_case_combined(criteria: &[CriterionResult], lean: f64) -> f64 {
    let total: f64 = criteria
        .iter()
        .filter(|c| c.outcome != Outcome::DoesNotApply)
        .map(|c| c.weight)
        .sum();
    if total <= 0.0 {
        return 100.0;
    }
    let could_pass: f64 = criteria
        .iter()
        .filter(|c| !matches!(c.outcome, Outcome::Fail | Outcome::DoesNotApply))
        .map(|c| c.weight)
        .sum();
    0.7 * 100.0 * could_pass / total + 0.3 * lean
}

/// What a verdict rests on, besides the criteria.
struct Evidence {
    coverage_pct: f64,
    quality_measured: bool,
}

/// The verdict and the reasons that decided it.
fn decide(
    criteria: &[CriterionResult],
    w: &Workload,
    class: &str,
    score_pct: Option<f64>,
    lean: f64,
    fit_failure: Option<&str>,
    evidence: Evidence,
) -> (Verdict, Vec<String>) {
    let mut reasons = Vec::new();
    let not_measured: Vec<&str> = criteria
        .iter()
        .filter(|c| c.outcome == Outcome::NotApplicable)
        .map(|c| c.criterion.name())
        .collect();
    let fails: Vec<&CriterionResult> = criteria
        .iter()
        .filter(|c| c.outcome == Outcome::Fail)
        .collect();
    for f in &fails {
        if f.measured.is_none() && fit_failure.is_some() {
            // Said once, first, as the memory fit.
            continue;
        }
        reasons.push(match f.measured {
            Some(v) => format!(
                "fails {} on {class}: {} {u} {} {} {u}",
                f.criterion.name(),
                fmt(v),
                if f.op == "max" { ">" } else { "<" },
                fmt(f.threshold),
                u = f.unit,
            ),
            None => format!("fails {} on {class}: {}", f.criterion.name(), f.reason),
        });
    }
    let stated = |f: Factor| w.factors.iter().find(|s| s.factor == f);
    for s in &w.factors {
        if s.factor != Factor::QualityThresholdMet && s.level == Some(super::workload::Level::High)
        {
            reasons.push(format!("{} high", s.factor.words()));
        }
    }
    if let Some(c) = criteria
        .iter()
        .find(|c| c.criterion == Criterion::SustainedStability && c.outcome == Outcome::Pass)
    {
        reasons.push(format!(
            "stable under sustained load ({} slowest/fastest)",
            fmt(c.measured.unwrap_or_default())
        ));
    }
    if !not_measured.is_empty() {
        reasons.push(format!("not measured: {}", not_measured.join(", ")));
    }
    let stated_quality = stated(Factor::QualityThresholdMet).and_then(|s| s.met);
    if evidence.quality_measured {
        let q: Vec<String> = criteria
            .iter()
            .filter(|c| c.criterion.is_quality() && c.measured.is_some())
            .map(|c| {
                format!(
                    "{} {} {} {}",
                    c.criterion.name(),
                    fmt(c.measured.unwrap_or_default()),
                    if c.outcome == Outcome::Pass {
                        "meets"
                    } else {
                        "misses"
                    },
                    fmt(c.threshold)
                )
            })
            .collect();
        reasons.push(format!(
            "quality measured ({}){}",
            q.join(", "),
            if stated_quality.is_some() {
                "; the stated quality_threshold_met is not used"
            } else {
                ""
            }
        ));
    } else if let Some(m) = stated_quality {
        reasons.push(format!(
            "quality stated, not measured (quality_threshold_met = {m}: it does not weigh in the \
             verdict; odai quality --out measures it)"
        ));
    }
    let min_pct = 100.0 * w.min_coverage;
    let verdict = if let Some(why) = fit_failure {
        reasons.insert(0, format!("fails memory fit on {class}: {why}"));
        Verdict::CloudOnly
    } else if !evidence.quality_measured && stated_quality == Some(false) {
        reasons.insert(0, "quality threshold not met (stated)".into());
        Verdict::CloudOnly
    } else if evidence.coverage_pct + 1e-9 < min_pct && best_case_combined(criteria, lean) < 60.0 {
        // Too little measured for a pass, but what failed already decides: even if every
        // missing criterion passed, the combined score stays below hybrid.
        reasons.push(format!(
            "cloud-only whatever the missing criteria show: {:.0} % combined at best ({:.0} % of \
             the weight measured)",
            best_case_combined(criteria, lean),
            evidence.coverage_pct
        ));
        Verdict::CloudOnly
    } else if evidence.coverage_pct + 1e-9 < min_pct {
        reasons.insert(
            0,
            format!(
                "insufficient evidence on {class}: {:.0} % of the profile's weight measured, {:.0} % \
                 needed (min_coverage)",
                evidence.coverage_pct, min_pct
            ),
        );
        for c in criteria
            .iter()
            .filter(|c| c.outcome == Outcome::NotApplicable)
        {
            reasons.push(format!("to measure {}: {}", c.criterion.name(), c.reason));
        }
        Verdict::InsufficientEvidence
    } else if score_pct.is_none() {
        reasons.insert(0, format!("nothing measured on {class}"));
        Verdict::CloudOnly
    } else if fails.is_empty() {
        let n = criteria
            .iter()
            .filter(|c| matches!(c.outcome, Outcome::Pass | Outcome::Fail))
            .count();
        reasons.insert(
            0,
            format!(
                "passes all {n} measured criteria on {class} ({:.0} % of the profile's weight \
                 measured)",
                evidence.coverage_pct
            ),
        );
        Verdict::OnDeviceFirst
    } else {
        // Measurements weigh most; what the team states tips the balance.
        let combined = 0.7 * score_pct.unwrap_or(0.0) + 0.3 * lean;
        reasons.push(format!(
            "score {:.0} % measured, {:.0} % stated lean: {:.0} % combined (hybrid from 60 %)",
            score_pct.unwrap_or(0.0),
            lean,
            combined
        ));
        if combined >= 60.0 {
            Verdict::Hybrid
        } else {
            Verdict::CloudOnly
        }
    };
    (verdict, reasons)
}

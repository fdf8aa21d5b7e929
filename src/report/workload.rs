//! Workload profiles (`profiles/workloads/*.toml`): what a use of a model demands of a device —
//! thresholds on measured criteria, each with a weight — and the factors a team states rather
//! than measures (privacy value, offline need, quality, update complexity, runtime maturity).
//! Validated on load with file:line:column errors.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::Error;

/// The share of a profile's criteria weight a verdict needs measured, when the profile does not
/// say (`min_coverage`). 0.6 rather than 0.5: a verdict must rest on more of what the profile
/// weighs than it leaves out, so a run that measured only half (the quick matrix on a machine
/// without battery or energy meter, no cold or sustained cells) says "insufficient evidence" and
/// which cells would complete it, instead of passing by omission.
pub const DEFAULT_MIN_COVERAGE: f64 = 0.6;

/// The built-in workloads, by id.
pub const BUILT_IN: &[(&str, &str)] = &[
    (
        "chat-assistant",
        include_str!("../../profiles/workloads/chat-assistant.toml"),
    ),
    (
        "typing-assistant",
        include_str!("../../profiles/workloads/typing-assistant.toml"),
    ),
    (
        "document-summarizer",
        include_str!("../../profiles/workloads/document-summarizer.toml"),
    ),
    (
        "voice-command",
        include_str!("../../profiles/workloads/voice-command.toml"),
    ),
    (
        "offline-translation",
        include_str!("../../profiles/workloads/offline-translation.toml"),
    ),
    (
        "wake-word",
        include_str!("../../profiles/workloads/wake-word.toml"),
    ),
    (
        "voice-activity",
        include_str!("../../profiles/workloads/voice-activity.toml"),
    ),
    (
        "image-classifier",
        include_str!("../../profiles/workloads/image-classifier.toml"),
    ),
];

/// A measured criterion: its name in profiles and CSV, whether the threshold is a maximum, its
/// unit, and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Criterion {
    TtftMsP95,
    DecodeTpsP10,
    TokenMsP99,
    DeadlineMissPct,
    MemoryHeadroomFrac,
    ColdStartMs,
    SustainedStability,
    BatteryDrainPctPerHour,
    EnergyJPerToken,
    /// Tensor workloads: a frame's compute latency, 99th percentile (a paced stream's when
    /// measured, else a burst's).
    InferenceMsP99,
    /// Tensor workloads: frames of a paced stream not done before the next was due.
    FrameDeadlineMissPct,
    /// Tensor workloads: CPU time of the duty cycle at the input's rate, % of one core.
    CpuDutyPct,
    /// Quality (`odai quality --reference`): mean per-token KL divergence from the reference,
    /// nats.
    KldMean,
    /// Quality: tokens where the model's top choice is the reference's, %.
    Top1AgreementPct,
    /// Quality (`odai quality --tasks`): tasks answered right, %.
    TaskAccuracyPct,
    /// Quality: perplexity above the reference's, % (negative: below).
    PplDeltaPct,
}

impl Criterion {
    pub const ALL: [Criterion; 16] = [
        Criterion::TtftMsP95,
        Criterion::DecodeTpsP10,
        Criterion::TokenMsP99,
        Criterion::DeadlineMissPct,
        Criterion::MemoryHeadroomFrac,
        Criterion::ColdStartMs,
        Criterion::SustainedStability,
        Criterion::BatteryDrainPctPerHour,
        Criterion::EnergyJPerToken,
        Criterion::InferenceMsP99,
        Criterion::FrameDeadlineMissPct,
        Criterion::CpuDutyPct,
        Criterion::KldMean,
        Criterion::Top1AgreementPct,
        Criterion::TaskAccuracyPct,
        Criterion::PplDeltaPct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Criterion::TtftMsP95 => "ttft_ms_p95",
            Criterion::DecodeTpsP10 => "decode_tps_p10",
            Criterion::TokenMsP99 => "token_ms_p99",
            Criterion::DeadlineMissPct => "deadline_miss_pct",
            Criterion::MemoryHeadroomFrac => "memory_headroom_frac",
            Criterion::ColdStartMs => "cold_start_ms",
            Criterion::SustainedStability => "sustained_stability",
            Criterion::BatteryDrainPctPerHour => "battery_drain_pct_per_hour",
            Criterion::EnergyJPerToken => "energy_j_per_token",
            Criterion::InferenceMsP99 => "inference_ms_p99",
            Criterion::FrameDeadlineMissPct => "frame_deadline_miss_pct",
            Criterion::CpuDutyPct => "cpu_duty_pct",
            Criterion::KldMean => "kld_mean",
            Criterion::Top1AgreementPct => "top1_agreement_pct",
            Criterion::TaskAccuracyPct => "task_accuracy_pct",
            Criterion::PplDeltaPct => "ppl_delta_pct",
        }
    }

    /// A maximum (lower is better) or a minimum (higher is better).
    pub fn is_max(self) -> bool {
        !matches!(
            self,
            Criterion::DecodeTpsP10
                | Criterion::SustainedStability
                | Criterion::Top1AgreementPct
                | Criterion::TaskAccuracyPct
        )
    }

    pub fn unit(self) -> &'static str {
        match self {
            Criterion::TtftMsP95 | Criterion::TokenMsP99 | Criterion::ColdStartMs => "ms",
            Criterion::DecodeTpsP10 => "tok/s",
            Criterion::DeadlineMissPct => "%",
            Criterion::MemoryHeadroomFrac => "of headroom",
            Criterion::SustainedStability => "slowest/fastest",
            Criterion::BatteryDrainPctPerHour => "%/h",
            Criterion::EnergyJPerToken => "J/token",
            Criterion::InferenceMsP99 => "ms",
            Criterion::FrameDeadlineMissPct => "%",
            Criterion::CpuDutyPct => "% of a core",
            Criterion::KldMean => "nats",
            Criterion::Top1AgreementPct | Criterion::TaskAccuracyPct | Criterion::PplDeltaPct => {
                "%"
            }
        }
    }

    /// Measured by `odai quality` (its records in `quality.jsonl`), per model × runtime, not by
    /// a matrix cell.
    pub fn is_quality(self) -> bool {
        matches!(
            self,
            Criterion::KldMean
                | Criterion::Top1AgreementPct
                | Criterion::TaskAccuracyPct
                | Criterion::PplDeltaPct
        )
    }

    /// Whether it judges tensor-model cells (`[[tensor]]`) rather than language-model ones.
    pub fn is_tensor(self) -> bool {
        matches!(
            self,
            Criterion::InferenceMsP99 | Criterion::FrameDeadlineMissPct | Criterion::CpuDutyPct
        )
    }

    /// Criteria that mean the same for both kinds of cell.
    pub fn is_shared(self) -> bool {
        matches!(
            self,
            Criterion::MemoryHeadroomFrac
                | Criterion::ColdStartMs
                | Criterion::BatteryDrainPctPerHour
        )
    }

    fn from_name(s: &str) -> Option<Criterion> {
        Self::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// A stated factor's level.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Low,
    Medium,
    High,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Factor {
    PrivacyValue,
    OfflineNeed,
    QualityThresholdMet,
    UpdateComplexity,
    RuntimeMaturity,
}

impl Factor {
    pub const ALL: [Factor; 5] = [
        Factor::PrivacyValue,
        Factor::OfflineNeed,
        Factor::QualityThresholdMet,
        Factor::UpdateComplexity,
        Factor::RuntimeMaturity,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Factor::PrivacyValue => "privacy_value",
            Factor::OfflineNeed => "offline_need",
            Factor::QualityThresholdMet => "quality_threshold_met",
            Factor::UpdateComplexity => "update_complexity",
            Factor::RuntimeMaturity => "runtime_maturity",
        }
    }

    /// The words of a reason: "privacy value high".
    pub fn words(self) -> &'static str {
        match self {
            Factor::PrivacyValue => "privacy value",
            Factor::OfflineNeed => "offline need",
            Factor::QualityThresholdMet => "quality threshold met",
            Factor::UpdateComplexity => "update complexity",
            Factor::RuntimeMaturity => "runtime maturity",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Threshold {
    pub criterion: Criterion,
    pub limit: f64,
    pub weight: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Stated {
    pub factor: Factor,
    /// `true`/`false` for quality_threshold_met, a level for the others.
    pub level: Option<Level>,
    pub met: Option<bool>,
    pub weight: f64,
}

impl Stated {
    /// How much the factor leans towards running on the device, 0 to 1: privacy and offline
    /// need high, quality met, updates simple and the runtime mature all lean on-device.
    pub fn lean(&self) -> f64 {
        let level = |l: Level| match l {
            Level::Low => 0.0,
            Level::Medium => 0.5,
            Level::High => 1.0,
        };
        match (self.factor, self.level, self.met) {
            (_, _, Some(m)) => f64::from(u8::from(m)),
            (Factor::UpdateComplexity, Some(l), _) => 1.0 - level(l),
            (_, Some(l), _) => level(l),
            _ => 0.5,
        }
    }

    pub fn value_text(&self) -> String {
        match (self.level, self.met) {
            (_, Some(m)) => if m { "yes" } else { "no" }.into(),
            (Some(l), _) => format!("{l:?}").to_lowercase(),
            _ => "-".into(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Workload {
    pub id: String,
    pub label: String,
    pub description: String,
    pub source: String,
    /// A tensor workload (`kind = "tensor"`: wake word, VAD, classifiers) is judged on tensor
    /// cells only, a language one on language-model cells only.
    pub tensor: bool,
    /// The shape of a request: results are read from the cells closest to it (0 for a tensor
    /// workload, which has none).
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub token_deadline_ms: Option<f64>,
    pub thresholds: Vec<Threshold>,
    pub factors: Vec<Stated>,
    /// The least share of the criteria's weight a verdict must rest on (0..=1); below it the
    /// verdict is `insufficient evidence`.
    pub min_coverage: f64,
    /// The longest a whole answer may take at p95 (TTFT + generation), ms: what `odai route
    /// build` solves the generation limit for; `None`: no such budget.
    pub total_latency_ms: Option<f64>,
    /// A results directory measured on an endpoint, the cloud path to compare with (`baseline`
    /// in the profile, relative to the profile's directory; `odai report --baseline` wins).
    pub baseline: Option<std::path::PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    schema_version: Spanned<u32>,
    id: String,
    label: String,
    #[serde(default)]
    description: String,
    /// `language` (default) or `tensor`.
    #[serde(default)]
    kind: Option<Spanned<String>>,
    #[serde(default)]
    prompt_tokens: Option<u32>,
    #[serde(default)]
    gen_tokens: Option<u32>,
    token_deadline_ms: Option<f64>,
    #[serde(default)]
    min_coverage: Option<Spanned<f64>>,
    #[serde(default)]
    total_latency_ms: Option<Spanned<f64>>,
    criteria: BTreeMap<Spanned<String>, Spanned<Limit>>,
    #[serde(default)]
    factors: BTreeMap<Spanned<String>, Spanned<FactorEntry>>,
    #[serde(default)]
    baseline: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Limit {
    max: Option<f64>,
    min: Option<f64>,
    weight: Option<f64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FactorValue {
    Bool(bool),
    Text(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FactorEntry {
    value: FactorValue,
    weight: Option<f64>,
}

fn weight_ok(w: Option<f64>) -> Result<f64, String> {
    match w {
        None => Ok(1.0),
        Some(w) if w.is_finite() && w >= 0.0 => Ok(w),
        Some(w) => Err(format!("weight {w} must be 0 or more")),
    }
}

impl Workload {
    /// A built-in workload by id, or a profile file.
    pub fn resolve(name_or_file: &str) -> Result<Workload, Error> {
        if let Some((id, text)) = BUILT_IN.iter().find(|(id, _)| *id == name_or_file) {
            return Self::parse(
                text,
                Path::new(&format!("profiles/workloads/{id}.toml (built in)")),
            );
        }
        let path = Path::new(name_or_file);
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) => Err(Error::ConfigFile {
                file: path.to_owned(),
                problem: format!(
                    "cannot read the workload profile ({e}); built-in profiles: {}",
                    BUILT_IN
                        .iter()
                        .map(|(id, _)| *id)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Workload, Error> {
        let at = |offset: usize, m: String| Error::config_at(path, text, offset, m);
        let f: File = toml::from_str(text).map_err(|e| {
            at(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_owned(),
            )
        })?;
        if *f.schema_version.get_ref() != 1 {
            return Err(at(
                f.schema_version.span().start,
                format!(
                    "schema_version {} is not supported (this odai reads version 1)",
                    f.schema_version.get_ref()
                ),
            ));
        }
        let tensor = match &f.kind {
            None => false,
            Some(k) if k.get_ref() == "language" => false,
            Some(k) if k.get_ref() == "tensor" => true,
            Some(k) => {
                return Err(at(
                    k.span().start,
                    format!("kind {:?} is not \"language\" or \"tensor\"", k.get_ref()),
                ));
            }
        };
        let (prompt_tokens, gen_tokens) = match (tensor, f.prompt_tokens, f.gen_tokens) {
            (true, None, None) => (0, 0),
            (true, _, _) => {
                return Err(at(
                    0,
                    "a tensor workload has no tokens: drop prompt_tokens and gen_tokens".into(),
                ));
            }
            (false, Some(p), Some(n)) => (p, n),
            (false, _, _) => {
                return Err(at(
                    0,
                    "a language workload needs prompt_tokens and gen_tokens (or kind = \"tensor\")"
                        .into(),
                ));
            }
        };
        let mut thresholds = Vec::new();
        for (name, limit) in &f.criteria {
            let off = name.span().start;
            let Some(c) = Criterion::from_name(name.get_ref()) else {
                return Err(at(
                    off,
                    format!(
                        "unknown criterion {:?} (criteria: {})",
                        name.get_ref(),
                        Criterion::ALL.map(Criterion::name).join(", ")
                    ),
                ));
            };
            if !c.is_shared() && c.is_tensor() != tensor {
                return Err(at(
                    off,
                    format!(
                        "{} judges {} cells; this is a {} workload{}",
                        c.name(),
                        if c.is_tensor() {
                            "tensor-model"
                        } else {
                            "language-model"
                        },
                        if tensor { "tensor" } else { "language" },
                        if tensor {
                            ""
                        } else {
                            " (kind = \"tensor\" for wake word, VAD, classifiers)"
                        }
                    ),
                ));
            }
            let l = limit.get_ref();
            let (want, other) = if c.is_max() {
                (l.max, l.min)
            } else {
                (l.min, l.max)
            };
            let word = if c.is_max() { "max" } else { "min" };
            if other.is_some() || want.is_none() {
                return Err(at(
                    limit.span().start,
                    format!(
                        "{}: give `{word}` ({} is {} better)",
                        c.name(),
                        c.name(),
                        if c.is_max() { "lower" } else { "higher" }
                    ),
                ));
            }
            let limit_value = want.unwrap_or_default();
            if !limit_value.is_finite() || limit_value < 0.0 {
                return Err(at(
                    limit.span().start,
                    format!("{}: {word} must be a number of 0 or more", c.name()),
                ));
            }
            if c == Criterion::DeadlineMissPct && f.token_deadline_ms.is_none() {
                return Err(at(
                    off,
                    "deadline_miss_pct needs token_deadline_ms at the top of the profile".into(),
                ));
            }
            thresholds.push(Threshold {
                criterion: c,
                limit: limit_value,
                weight: weight_ok(l.weight)
                    .map_err(|m| at(limit.span().start, format!("{}: {m}", c.name())))?,
            });
        }
        thresholds.sort_by_key(|t| t.criterion);
        if thresholds.is_empty() {
            return Err(Error::ConfigFile {
                file: path.to_owned(),
                problem: "[criteria] is empty: set at least one threshold".into(),
            });
        }
        let mut factors = Vec::new();
        for (name, entry) in &f.factors {
            let off = name.span().start;
            let Some(factor) = Factor::ALL.into_iter().find(|x| x.name() == name.get_ref()) else {
                return Err(at(
                    off,
                    format!(
                        "unknown factor {:?} (factors: {})",
                        name.get_ref(),
                        Factor::ALL.map(Factor::name).join(", ")
                    ),
                ));
            };
            let e = entry.get_ref();
            let bad = |m: &str| at(entry.span().start, format!("{}: {m}", factor.name()));
            let (level, met) = match (&e.value, factor) {
                (FactorValue::Bool(b), Factor::QualityThresholdMet) => (None, Some(*b)),
                (_, Factor::QualityThresholdMet) => {
                    return Err(bad("value must be true or false"));
                }
                (FactorValue::Text(t), _) => (
                    Some(match t.as_str() {
                        "low" => Level::Low,
                        "medium" => Level::Medium,
                        "high" => Level::High,
                        _ => return Err(bad("value must be \"low\", \"medium\" or \"high\"")),
                    }),
                    None,
                ),
                (FactorValue::Bool(_), _) => {
                    return Err(bad("value must be \"low\", \"medium\" or \"high\""));
                }
            };
            factors.push(Stated {
                factor,
                level,
                met,
                weight: weight_ok(e.weight).map_err(|m| bad(&m))?,
            });
        }
        factors.sort_by_key(|s| Factor::ALL.iter().position(|x| *x == s.factor));
        let min_coverage = match &f.min_coverage {
            None => DEFAULT_MIN_COVERAGE,
            Some(m) if (0.0..=1.0).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                return Err(at(
                    m.span().start,
                    format!(
                        "min_coverage {} must be a share from 0 to 1 (0.6: most of the weight)",
                        m.get_ref()
                    ),
                ));
            }
        };
        let total_latency_ms = match &f.total_latency_ms {
            None => None,
            Some(t) if tensor => {
                return Err(at(
                    t.span().start,
                    "total_latency_ms is a language workload's budget (TTFT + generation)".into(),
                ));
            }
            Some(t) if t.get_ref().is_finite() && *t.get_ref() > 0.0 => Some(*t.get_ref()),
            Some(t) => {
                return Err(at(
                    t.span().start,
                    format!(
                        "total_latency_ms {} must be a positive number of ms",
                        t.get_ref()
                    ),
                ));
            }
        };
        Ok(Workload {
            min_coverage,
            total_latency_ms,
            id: f.id,
            label: f.label,
            description: f.description,
            source: path.display().to_string(),
            tensor,
            prompt_tokens,
            gen_tokens,
            token_deadline_ms: f.token_deadline_ms,
            thresholds,
            factors,
            baseline: f.baseline.map(|b| {
                path.parent()
                    .filter(|d| !d.as_os_str().is_empty())
                    .map_or_else(|| std::path::PathBuf::from(&b), |d| d.join(&b))
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_workload_is_valid() {
        for (id, _) in BUILT_IN {
            let w = Workload::resolve(id).unwrap();
            assert_eq!(w.id, *id);
            assert!(!w.thresholds.is_empty());
            // A language workload measures quality (kld_mean) instead of stating it; a tensor
            // one, which odai quality cannot measure, states it (and it does not weigh).
            let measures_quality = w.thresholds.iter().any(|t| t.criterion.is_quality());
            assert_eq!(measures_quality, !w.tensor, "{id}");
            assert_eq!(
                w.factors.len(),
                if measures_quality { 4 } else { 5 },
                "{id} states every factor it does not measure"
            );
        }
    }

    const BASE: &str = "schema_version = 1\nid = \"w\"\nlabel = \"W\"\nprompt_tokens = 8\n\
                        gen_tokens = 8\n\n[criteria]\nttft_ms_p95 = { max = 100 }\n";

    fn err(text: &str) -> String {
        Workload::parse(text, Path::new("w.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn tensor_workloads_judge_tensor_criteria_only() {
        for id in ["wake-word", "voice-activity", "image-classifier"] {
            let w = Workload::resolve(id).unwrap();
            assert!(w.tensor, "{id}");
            assert_eq!((w.prompt_tokens, w.gen_tokens), (0, 0));
            assert!(
                w.thresholds
                    .iter()
                    .any(|t| t.criterion == Criterion::FrameDeadlineMissPct)
            );
        }
        assert!(!Workload::resolve("chat-assistant").unwrap().tensor);
        let head = "schema_version = 1\nid = \"x\"\nlabel = \"X\"\n";
        let e = err(&format!(
            "{head}kind = \"tensor\"\n[criteria]\nttft_ms_p95 = {{ max = 1 }}\n"
        ));
        assert!(
            e.contains("ttft_ms_p95 judges language-model cells; this is a tensor workload"),
            "{e}"
        );
        let e = err(&format!(
            "{head}prompt_tokens = 1\ngen_tokens = 1\n[criteria]\ncpu_duty_pct = {{ max = 1 }}\n"
        ));
        assert!(
            e.contains("cpu_duty_pct judges tensor-model cells; this is a language workload"),
            "{e}"
        );
        let e = err(&format!(
            "{head}kind = \"tensor\"\nprompt_tokens = 1\n[criteria]\ncpu_duty_pct = {{ max = 1 }}\n"
        ));
        assert!(e.contains("a tensor workload has no tokens"), "{e}");
        let e = err(&format!(
            "{head}kind = \"audio\"\n[criteria]\ncpu_duty_pct = {{ max = 1 }}\n"
        ));
        assert!(e.contains("kind \"audio\" is not"), "{e}");
        // Shared criteria are fine in either kind.
        assert!(
            Workload::parse(
                &format!(
                    "{head}kind = \"tensor\"\n[criteria]\nmemory_headroom_frac = {{ max = 0.1 }}\n"
                ),
                Path::new("w.toml")
            )
            .is_ok()
        );
    }

    #[test]
    fn mistakes_name_the_line_and_the_fix() {
        assert_eq!(
            err(&format!("{BASE}tokens_per_joule = {{ min = 3 }}\n")),
            "w.toml:9:1: unknown criterion \"tokens_per_joule\" (criteria: ttft_ms_p95, \
             decode_tps_p10, token_ms_p99, deadline_miss_pct, memory_headroom_frac, \
             cold_start_ms, sustained_stability, battery_drain_pct_per_hour, energy_j_per_token, \
             inference_ms_p99, frame_deadline_miss_pct, cpu_duty_pct, kld_mean, top1_agreement_pct, task_accuracy_pct, ppl_delta_pct)"
        );
        assert_eq!(
            err(&format!("{BASE}decode_tps_p10 = {{ max = 3 }}\n")),
            "w.toml:9:18: decode_tps_p10: give `min` (decode_tps_p10 is higher better)"
        );
        assert_eq!(
            err(&format!("{BASE}deadline_miss_pct = {{ max = 3 }}\n")),
            "w.toml:9:1: deadline_miss_pct needs token_deadline_ms at the top of the profile"
        );
        assert_eq!(
            err(&format!(
                "{BASE}\n[factors]\nprivacy_value = {{ value = \"very\" }}\n"
            )),
            "w.toml:11:17: privacy_value: value must be \"low\", \"medium\" or \"high\""
        );
        assert!(
            err(&BASE.replace("label", "lable")).starts_with("w.toml:3:1: unknown field `lable`")
        );
    }

    #[test]
    fn factors_lean_on_device_or_away() {
        let w = Workload::resolve("voice-command").unwrap();
        let get = |f| w.factors.iter().find(|s| s.factor == f).unwrap();
        assert_eq!(get(Factor::OfflineNeed).lean(), 1.0);
        assert_eq!(
            get(Factor::UpdateComplexity).lean(),
            1.0,
            "low complexity leans on-device"
        );
        // It measures quality (kld_mean) instead of stating it.
        assert!(
            w.factors
                .iter()
                .all(|s| s.factor != Factor::QualityThresholdMet)
        );
        let wake = Workload::resolve("wake-word").unwrap();
        let stated = wake
            .factors
            .iter()
            .find(|s| s.factor == Factor::QualityThresholdMet)
            .unwrap();
        assert_eq!(stated.value_text(), "yes");
    }
}

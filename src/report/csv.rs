//! The two CSV files of a readiness review (docs/measurements-csv.md, docs/scorecard-csv.md):
//! `measurements.csv`, one row per device × cell with every metric, and `scorecard.csv`, one
//! row per class × model × criterion. Column order is part of the schema (golden-file tested).

use super::measurements::METRICS;
use super::{Exporter, Report, num};

pub struct Csv;

/// A CSV writer for files people open in spreadsheets: a text cell that starts with `=`, `+`,
/// `-`, `@`, a tab or a carriage return — and is not a number — gets a leading `'`, so a device
/// name or a server's error text cannot act as a formula (OWASP, "CSV Injection"); control
/// characters are written as escapes ([`crate::units::printable`]). Every CSV odai writes goes
/// through it.
pub struct SafeCsv(::csv::Writer<Vec<u8>>);

impl SafeCsv {
    #[allow(clippy::new_without_default)]
    pub fn new() -> SafeCsv {
        SafeCsv(::csv::Writer::from_writer(Vec::new()))
    }

    pub fn write_record<I, S>(&mut self, fields: I) -> ::csv::Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.0.write_record(
            fields
                .into_iter()
                .map(|f| safe_cell(f.as_ref()).into_owned()),
        )
    }

    pub fn into_inner(self) -> anyhow::Result<Vec<u8>> {
        self.0
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write CSV: {}", e.error()))
    }
}

/// One cell as [`SafeCsv`] writes it.
fn safe_cell(text: &str) -> std::borrow::Cow<'_, str> {
    let text = crate::units::printable(text);
    match text.chars().next() {
        // A lone sign is no formula (and is how some tools write "none").
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
            if text.len() > 1 && text.trim().parse::<f64>().is_err() =>
        {
            std::borrow::Cow::Owned(format!("'{text}"))
        }
        _ => text,
    }
}

/// measurements.csv columns before the metrics.
pub const MEASUREMENT_KEYS: &[&str] = &[
    "device",
    "class",
    "cell_id",
    "model",
    "quant",
    "runtime",
    "runtime_version",
    "backend",
    "threads",
    "prompt_tokens",
    "gen_tokens",
    "cold",
    "sustained_s",
    "load",
    "reps",
    "status",
    "reason",
];

/// Where a llama.cpp cell's layers ran (schema 4): layers asked on a GPU, layers that ran on
/// one, and the split per device (`0/31 on GPU (fell back to the CPU)` when none did).
pub const OFFLOAD_COLUMNS: &[&str] = &["gpu_layers", "gpu_layers_on_gpu", "offload"];

/// Per-repetition samples of the metrics `odai compare` tests (schema 5), `;`-separated, so a
/// measurements.csv gives the same verdicts as the directory it came from.
pub fn sample_columns() -> Vec<String> {
    super::compare::SAMPLED
        .iter()
        .map(|m| format!("{m}_samples"))
        .collect()
}

/// The last columns of both files: where and when the file was made, from which odai build (the
/// same on every row, so a row copied into a spreadsheet keeps it).
pub const PROVENANCE_COLUMNS: &[&str] = &["generated_by_host", "generated_utc", "git_commit"];

fn provenance_fields() -> [String; 3] {
    let p = crate::provenance::Provenance::now();
    [p.host, p.generated_utc, p.git_commit]
}

pub const SCORECARD_COLUMNS: &[&str] = &[
    "workload",
    "class",
    "class_label",
    "fleet_share",
    "model",
    "criterion",
    "measured",
    "unit",
    "op",
    "threshold",
    "weight",
    "result",
    "reason",
    "score_pct",
    "coverage_pct",
    "verdict",
    "warnings",
];

fn opt(v: Option<f64>) -> String {
    v.map_or_else(String::new, num)
}

pub fn measurements(r: &Report) -> anyhow::Result<Vec<u8>> {
    let mut w = SafeCsv::new();
    let samples = sample_columns();
    let header: Vec<&str> = MEASUREMENT_KEYS
        .iter()
        .chain(METRICS)
        .chain(&["odai_version", "model_sha256"])
        .chain(OFFLOAD_COLUMNS)
        .copied()
        .chain(samples.iter().map(String::as_str))
        .chain(["kv_cache", "depth", "n_batch", "n_ubatch", "use_mmap"])
        .chain(PROVENANCE_COLUMNS.iter().copied())
        .collect();
    w.write_record(&header)?;
    let made = provenance_fields();
    for row in &r.rows {
        let mut rec = vec![
            row.device.clone(),
            row.class.clone().unwrap_or_default(),
            row.cell_id.clone(),
            row.model.clone(),
            row.quant.clone().unwrap_or_default(),
            row.runtime.clone(),
            row.runtime_version.clone(),
            row.backend.clone(),
            row.threads.to_string(),
            row.prompt_tokens.to_string(),
            row.gen_tokens.to_string(),
            row.cold.to_string(),
            opt(row.sustained_s),
            row.load.clone(),
            row.reps.to_string(),
            row.status.clone(),
            row.reason.clone().unwrap_or_default(),
        ];
        rec.extend(row.values.iter().map(|v| opt(*v)));
        rec.push(row.odai_version.clone().unwrap_or_default());
        rec.push(row.model_sha256.clone().unwrap_or_default());
        rec.push(row.gpu_layers.map_or_else(String::new, |n| n.to_string()));
        rec.push(
            row.offload
                .as_ref()
                .map_or_else(String::new, |o| o.on_gpu.to_string()),
        );
        rec.push(row.offload.as_ref().map_or_else(String::new, |o| o.label()));
        for m in super::compare::SAMPLED {
            rec.push(row.samples.get(m).map_or_else(String::new, |v| {
                v.iter().map(|x| num(*x)).collect::<Vec<_>>().join(";")
            }));
        }
        rec.push(row.kv_cache.clone().unwrap_or_default());
        rec.push(row.depth.to_string());
        let n = |v: Option<u32>| v.map_or_else(String::new, |n| n.to_string());
        rec.push(n(row.n_batch));
        rec.push(n(row.n_ubatch));
        rec.push(
            row.mmap
                .map_or_else(String::new, |m| u8::from(m).to_string()),
        );
        rec.extend(made.iter().cloned());
        w.write_record(&rec)?;
    }
    w.into_inner()
}

pub fn scorecard(r: &Report) -> anyhow::Result<Vec<u8>> {
    let mut w = SafeCsv::new();
    w.write_record(SCORECARD_COLUMNS.iter().chain(PROVENANCE_COLUMNS))?;
    let made = provenance_fields();
    for s in &r.scoring.scorecards {
        for c in &s.criteria {
            let fields = [
                r.scoring.workload.id.clone(),
                s.class.clone(),
                s.class_label.clone(),
                opt(s.fleet_share),
                s.model.clone(),
                c.criterion.name().to_owned(),
                opt(c.measured),
                c.unit.to_owned(),
                c.op.to_owned(),
                num(c.threshold),
                num(c.weight),
                c.outcome.text().to_owned(),
                c.reason.clone(),
                opt(s.score_pct),
                num(s.coverage_pct),
                s.verdict.text().to_owned(),
                c.warnings.join(" | "),
            ];
            w.write_record(fields.iter().chain(&made))?;
        }
    }
    w.into_inner()
}

impl Exporter for Csv {
    fn files(&self, r: &Report) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
        Ok(vec![
            ("measurements.csv", measurements(r)?),
            ("scorecard.csv", scorecard(r)?),
        ])
    }
}

#[cfg(test)]
mod safe_tests {
    use super::safe_cell;

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        assert_eq!(
            safe_cell("=HYPERLINK(\"http://x\")"),
            "'=HYPERLINK(\"http://x\")"
        );
        assert_eq!(safe_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(safe_cell("+1 day"), "'+1 day");
        assert_eq!(safe_cell("-1.5"), "-1.5");
        assert_eq!(safe_cell("-"), "-");
        assert_eq!(safe_cell("phone"), "phone");
        assert_eq!(safe_cell("a\u{1b}[2J"), "a\\u{1b}[2J");
    }
}

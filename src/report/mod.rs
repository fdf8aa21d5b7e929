//! Reports: a results directory (and a workload profile) in, readiness out — measurements,
//! scorecards with verdicts and fleet coverage, rendered by one [`Exporter`] per format
//! (`csv`, `markdown`, `html`, `json`). A report is a pure function of its inputs; `compare`
//! sets two results against each other.

pub mod charts;
pub mod compare;
pub mod csv;
pub mod html;
pub mod json;
pub mod markdown;
pub mod measurements;
pub mod routing;
pub mod scorecard;
pub mod workload;

use measurements::{ResultsSet, Row};
use scorecard::Scoring;

/// Everything a report shows.
pub struct Report {
    pub set: ResultsSet,
    pub rows: Vec<Row>,
    pub scoring: Scoring,
}

impl Report {
    /// `baseline`: a results set measured on an endpoint (`--baseline DIR`); without it, the
    /// endpoint cells of `set` itself are the cloud baseline, if it has any.
    pub fn new(
        set: ResultsSet,
        workload: &workload::Workload,
        classes: &crate::probe::class::Classes,
        baseline: Option<&ResultsSet>,
    ) -> Report {
        let rows = measurements::rows(&set);
        let baseline = baseline.and_then(|b| {
            scorecard::baseline(
                &measurements::rows(b),
                workload,
                &b.dir.display().to_string(),
            )
        });
        let scoring = scorecard::score(&set, &rows, workload, classes, baseline);
        Report { set, rows, scoring }
    }
}

/// One output format: the files it writes (name, bytes).
pub trait Exporter {
    fn files(&self, report: &Report) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>>;
}

/// A figure as people read it in the HTML, Markdown and text tables: three significant digits
/// ("53.1", "81.4", "1697", "0.0812"), no trailing zeros. CSV and JSON keep full precision.
pub fn human(v: f64) -> String {
    if !v.is_finite() {
        return v.to_string();
    }
    if v == 0.0 {
        return "0".into();
    }
    let decimals = (2 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        &s
    };
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// A figure with its unit, as people read it: a fraction of the memory headroom in percent
/// ("9.4 % of headroom", not "0.0939 of headroom").
pub fn human_unit(v: f64, unit: &str) -> String {
    if unit == "of headroom" {
        format!("{} % of headroom", human(v * 100.0))
    } else {
        format!("{} {unit}", human(v))
    }
}

/// Numbers in CSV and compare's tables: up to four decimals, no trailing zeros, so files diff
/// cleanly.
pub fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

#[cfg(test)]
mod tests {
    #[test]
    fn figures_read_at_three_significant_digits() {
        use super::{human, human_unit};
        assert_eq!(human(53.1011), "53.1");
        assert_eq!(human(81.4), "81.4");
        assert_eq!(human(1696.9976), "1697");
        assert_eq!(human(0.0078), "0.0078");
        assert_eq!(human(3.7574), "3.76");
        assert_eq!(human(1500.0), "1500");
        assert_eq!(human(0.5), "0.5");
        assert_eq!(human(0.0), "0");
        assert_eq!(human(-0.00001), "-0.00001");
        assert_eq!(human_unit(0.0078, "of headroom"), "0.78 % of headroom");
        assert_eq!(human_unit(53.1011, "ms"), "53.1 ms");
    }
}

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

/// Numbers in CSV and Markdown: up to four decimals, no trailing zeros, so files diff cleanly.
pub fn num(v: f64) -> String {
    let s = format!("{v:.4}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" { "0".into() } else { s.to_owned() }
}

//! `report.json`: everything the other formats show, for tools — the workload, every
//! measurement row, every scorecard with its criteria and reasons, fleet coverage, and what was
//! left out of the results.

use super::{Exporter, Report};

pub struct Json;

/// Bump on an incompatible change to report.json.
pub const SCHEMA_VERSION: u32 = 1;

pub fn document(r: &Report) -> serde_json::Value {
    serde_json::json!({
        "schema_version": SCHEMA_VERSION,
        "provenance": crate::provenance::Provenance::now(),
        "odai_version": env!("CARGO_PKG_VERSION"),
        "results_dir": r.set.dir.display().to_string(),
        "matrix_file": r.set.manifest.as_ref().map(|m| m.matrix_file.clone()),
        "warnings": r.set.warnings,
        "workload": r.scoring.workload,
        "baseline": r.scoring.baseline,
        "scorecards": r.scoring.scorecards,
        "coverage": r.scoring.coverage,
        "measurements": r.rows,
    })
}

impl Exporter for Json {
    fn files(&self, r: &Report) -> anyhow::Result<Vec<(&'static str, Vec<u8>)>> {
        let mut text = serde_json::to_vec_pretty(&document(r))?;
        text.push(b'\n');
        Ok(vec![("report.json", text)])
    }
}

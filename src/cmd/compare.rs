//! `odai compare BASE NEW`: the changes between two results, their significance, and an exit
//! code of 1 when a significant regression exceeds the threshold.

use std::path::{Path, PathBuf};

use crate::cli::{CompareArgs, Format};
use crate::exit;
use crate::report::compare::{self, Change};
use crate::report::measurements::{self, ResultsSet, Row};
use crate::report::num;

pub struct Config {
    pub base: PathBuf,
    pub new: PathBuf,
    pub threshold_pct: f64,
    pub format: Format,
}

impl Config {
    pub fn new(a: &CompareArgs) -> Config {
        Config {
            base: a.base.clone(),
            new: a.new.clone(),
            threshold_pct: a.threshold,
            format: a.format,
        }
    }
}

/// Rows from a results directory, or from a measurements.csv.
fn load(path: &Path) -> anyhow::Result<Vec<Row>> {
    if path.is_file() {
        return Ok(compare::rows_from_csv(path)?);
    }
    let set = ResultsSet::load(path)?;
    for w in &set.warnings {
        anstream::eprintln!("odai: warning: {w}");
    }
    Ok(measurements::rows(&set))
}

fn line(c: &Change) -> String {
    format!(
        "{:<10} {:<34} {:<13} {:>10} {:>10} {:>+8.1}%  {:<9} {}",
        c.device,
        c.model,
        c.metric,
        num(c.base),
        num(c.new),
        c.change_pct,
        c.p_value.map_or("n/a".into(), |p| format!("p={p:.3}")),
        if c.regression {
            "REGRESSION"
        } else if c.significant == Some(true) {
            if c.worse { "worse" } else { "better" }
        } else if c.significant.is_none() {
            "significance unknown (no per-rep samples)"
        } else {
            "no significant change"
        }
    )
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let base = load(&cfg.base)?;
    let new = load(&cfg.new)?;
    let changes = compare::compare(&base, &new, cfg.threshold_pct);
    let regressions = changes.iter().filter(|c| c.regression).count();
    let text = match cfg.format {
        Format::Json => super::json_text(&serde_json::json!({
            "base": cfg.base.display().to_string(),
            "new": cfg.new.display().to_string(),
            "threshold_pct": cfg.threshold_pct,
            "alpha": compare::ALPHA,
            "regressions": regressions,
            "changes": changes,
        }))?,
        Format::Text => {
            let mut t = format!(
                "{:<10} {:<34} {:<13} {:>10} {:>10} {:>9}  {:<9} verdict\n",
                "device", "model", "metric", "base", "new", "change", "Welch"
            );
            for c in &changes {
                t.push_str(&line(c));
                t.push('\n');
            }
            t.push_str(&format!(
                "\n{} cell metrics compared; {regressions} significant regression(s) worse than {}% (p < {})\n",
                changes.len(),
                num(cfg.threshold_pct),
                compare::ALPHA
            ));
            if changes.is_empty() {
                t.push_str("no cell appears in both (cells match by device and cell id)\n");
            }
            t
        }
    };
    super::print(&text)?;
    Ok(if regressions > 0 {
        exit::FAILURE
    } else {
        exit::SUCCESS
    })
}

//! `odai compare BASE NEW`: the changes between two results, their significance, and an exit
//! code of [`exit::GATE`] when a regression exceeds the threshold.

use std::path::{Path, PathBuf};

use crate::cli::{CompareArgs, Format};
use crate::exit;
use crate::report::compare::{self, Basis, Change};
use crate::report::measurements::{self, ResultsSet, Row};
use crate::report::{human, num};

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
        "{:<10} {:<16} {:<28} {:>3} {:<13} {:>10} {:>10} {:>+8.1}%  {:<9} {}",
        c.device,
        c.cell_id,
        c.model,
        if c.threads == 0 {
            "?".to_owned()
        } else {
            c.threads.to_string()
        },
        c.metric,
        human(c.base),
        human(c.new),
        c.change_pct,
        c.p_value.map_or("n/a".into(), |p| format!("p={p:.3}")),
        match (c.regression, c.basis, c.significant) {
            (true, Basis::Welch, _) => "REGRESSION",
            (true, Basis::Threshold, _) => "REGRESSION (threshold only: no repetitions)",
            (false, _, Some(true)) if c.worse => "worse",
            (false, _, Some(true)) => "better",
            (false, Basis::Threshold, _) if c.worse => "worse, within threshold",
            (false, Basis::Threshold, _) if c.change_pct != 0.0 => "better",
            (false, Basis::Threshold, _) => "no change",
            _ => "no significant change",
        }
    )
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let base = load(&cfg.base)?;
    let new = load(&cfg.new)?;
    let changes = compare::compare(&base, &new, cfg.threshold_pct);
    let regressions = changes.iter().filter(|c| c.regression).count();
    let threshold_only = changes
        .iter()
        .filter(|c| c.basis == Basis::Threshold)
        .count();
    let text = match cfg.format {
        Format::Json => super::document(&serde_json::json!({
            "base": cfg.base.display().to_string(),
            "new": cfg.new.display().to_string(),
            "threshold_pct": cfg.threshold_pct,
            "alpha": compare::ALPHA,
            "regressions": regressions,
            "threshold_only": threshold_only,
            "changes": changes,
        }))?,
        Format::Text => {
            let mut t = format!(
                "{:<10} {:<16} {:<28} {:>3} {:<13} {:>10} {:>10} {:>9}  {:<9} verdict\n",
                "device", "cell", "model", "thr", "metric", "base", "new", "change", "Welch"
            );
            for c in &changes {
                t.push_str(&line(c));
                t.push('\n');
            }
            t.push_str(&format!(
                "\n{} cell metrics compared; {regressions} regression(s) worse than {}% (significant at p < {} where repetitions allow a test)\n",
                changes.len(),
                num(cfg.threshold_pct),
                compare::ALPHA
            ));
            if threshold_only > 0 {
                t.push_str(&format!(
                    "{threshold_only} of them without repetitions on both sides (a measurements.csv, or one repetition): gated on the threshold alone\n"
                ));
            }
            if changes.is_empty() {
                t.push_str("no cell appears in both (cells match by device and cell id)\n");
            }
            t
        }
    };
    super::print(&text)?;
    Ok(if regressions > 0 {
        exit::GATE
    } else {
        exit::SUCCESS
    })
}

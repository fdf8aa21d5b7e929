//! `odai compare BASE NEW`: the changes between two results, their significance, and an exit
//! code of [`exit::GATE`] when a regression exceeds the threshold, a cell is lost, or (under
//! `--fail-on-inconclusive`) a change cannot be told from noise.

use std::path::{Path, PathBuf};

use crate::cli::{CompareArgs, CompareFormat};
use crate::error::Error;
use crate::exit;
use crate::report::compare::{self, Basis, Change, Comparison, Verdict};
use crate::report::measurements::{self, ResultsSet, Row};
use crate::report::{human, num};

pub struct Config {
    pub base: PathBuf,
    pub new: PathBuf,
    pub threshold_pct: f64,
    pub match_by: Vec<String>,
    pub fail_on_inconclusive: bool,
    pub format: CompareFormat,
}

impl Config {
    pub fn new(a: &CompareArgs) -> Config {
        let mut match_by: Vec<String> = Vec::new();
        for f in &a.match_by {
            if !match_by.contains(f) {
                match_by.push(f.clone());
            }
        }
        Config {
            base: a.base.clone(),
            new: a.new.clone(),
            threshold_pct: a.threshold,
            match_by,
            fail_on_inconclusive: a.fail_on_inconclusive,
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

fn threads(c: &Change) -> String {
    if c.threads == 0 {
        "?".to_owned()
    } else {
        c.threads.to_string()
    }
}

fn change_text(c: &Change) -> String {
    if c.change_unit == "points" {
        format!("{:+.1} pts", c.change_pct)
    } else {
        format!("{:+.1}%", c.change_pct)
    }
}

fn verdict_text(c: &Change) -> &'static str {
    match (c.verdict, c.basis) {
        (Verdict::Regression, Basis::Threshold) => "REGRESSION (threshold only: no repetitions)",
        (Verdict::Inconclusive, _) => "INCONCLUSIVE (too few or too noisy repetitions)",
        (v, _) => v.text(),
    }
}

fn cell_label(c: &Change) -> String {
    match &c.base_cell_id {
        Some(b) => format!("{b}→{}", c.cell_id),
        None => c.cell_id.clone(),
    }
}

fn model_label(c: &Change) -> String {
    match &c.base_model {
        Some(b) => format!("{b} → {}", c.model),
        None => c.model.clone(),
    }
}

/// The verdict in a word and the exit code it maps to.
fn gate(cmp: &Comparison, cfg: &Config) -> (&'static str, i32) {
    if cmp.regressions > 0 {
        ("FAIL", exit::GATE)
    } else if cmp.inconclusive > 0 && cfg.fail_on_inconclusive {
        ("FAIL (inconclusive)", exit::GATE)
    } else if cmp.inconclusive > 0 {
        ("PASS, with inconclusive changes", exit::SUCCESS)
    } else {
        ("PASS", exit::SUCCESS)
    }
}

fn summary(cmp: &Comparison, cfg: &Config) -> String {
    let metric_regressions = cmp.regressions - cmp.lost.len();
    let mut t = format!(
        "{} cell metrics compared over {} cell(s) in common (matched by {}); {} regression(s): \
         {metric_regressions} metric(s) worse than {}% (significant at p < {} where repetitions \
         allow a test), {} cell(s) ok in BASE and failed or missing in NEW; {} inconclusive\n",
        cmp.changes.len(),
        cmp.cells_in_common,
        cmp.match_by.join(","),
        cmp.regressions,
        num(cfg.threshold_pct),
        compare::ALPHA,
        cmp.lost.len(),
        cmp.inconclusive,
    );
    if cmp.threshold_only > 0 {
        t.push_str(&format!(
            "{} of them without repetitions on both sides (one repetition, or a measurements.csv \
             from before samples were written): gated on the threshold alone\n",
            cmp.threshold_only
        ));
    }
    if cmp.inconclusive > 0 {
        t.push_str(&format!(
            "{} change(s) past the threshold that Welch's test cannot tell from noise: rerun with \
             more repetitions (reps in the matrix){}\n",
            cmp.inconclusive,
            if cfg.fail_on_inconclusive {
                "; --fail-on-inconclusive makes them fail the gate"
            } else {
                ", or pass --fail-on-inconclusive to fail on them"
            }
        ));
    }
    if !cmp.fixed.is_empty() {
        t.push_str(&format!(
            "{} cell(s) failed in BASE and ok in NEW\n",
            cmp.fixed.len()
        ));
    }
    if !cmp.new_only.is_empty() {
        t.push_str(&format!(
            "{} cell(s) only in NEW, not judged\n",
            cmp.new_only.len()
        ));
    }
    if !cmp.failed_in_both.is_empty() {
        t.push_str(&format!(
            "{} cell(s) failed or skipped in both\n",
            cmp.failed_in_both.len()
        ));
    }
    t
}

fn text(cmp: &Comparison, cfg: &Config) -> String {
    let mut t = format!(
        "{:<10} {:<16} {:<28} {:>3} {:<23} {:>10} {:>10} {:>10}  {:<9} {:<6} verdict\n",
        "device", "cell", "model", "thr", "metric", "base", "new", "change", "Welch", "power"
    );
    for c in &cmp.changes {
        t.push_str(&format!(
            "{:<10} {:<16} {:<28} {:>3} {:<23} {:>10} {:>10} {:>10}  {:<9} {:<6} {}\n",
            c.device,
            cell_label(c),
            model_label(c),
            threads(c),
            c.metric,
            human(c.base),
            human(c.new),
            change_text(c),
            c.p_value.map_or("n/a".into(), |p| format!("p={p:.3}")),
            c.power
                .map_or("n/a".into(), |p| format!("{:.0}%", p * 100.0)),
            verdict_text(c)
        ));
    }
    if !cmp.lost.is_empty() {
        t.push_str("\nok in BASE, not ok in NEW (each a regression):\n");
        for l in &cmp.lost {
            t.push_str(&format!(
                "{:<10} {:<16} {:<28} {}{}\n",
                l.device,
                l.cell_id,
                l.model,
                l.new_status,
                l.reason
                    .as_deref()
                    .map_or(String::new(), |r| format!(": {r}"))
            ));
        }
    }
    t.push('\n');
    t.push_str(&summary(cmp, cfg));
    t.push_str(&format!("verdict: {}\n", gate(cmp, cfg).0));
    t
}

/// Markdown for a pull-request comment: the verdict first, what failed, the rest folded.
fn markdown(cmp: &Comparison, cfg: &Config) -> String {
    let esc = |s: &str| s.replace('|', "\\|");
    let mut t = format!(
        "### odai compare: **{}**\n\n`{}` → `{}` · threshold {}% · matched by {} · {} cell(s) in \
         common\n\n",
        gate(cmp, cfg).0,
        esc(&cfg.base.display().to_string()),
        esc(&cfg.new.display().to_string()),
        num(cfg.threshold_pct),
        cmp.match_by.join(", "),
        cmp.cells_in_common
    );
    t.push_str(&format!(
        "| regressions | lost cells | inconclusive | compared metrics |\n|---:|---:|---:|---:|\n| \
         {} | {} | {} | {} |\n\n",
        cmp.regressions,
        cmp.lost.len(),
        cmp.inconclusive,
        cmp.changes.len()
    ));
    let table = |t: &mut String, title: &str, rows: &[&Change]| {
        if rows.is_empty() {
            return;
        }
        if !title.is_empty() {
            t.push_str(title);
            t.push_str("\n\n");
        }
        t.push_str(
            "| device | cell | model | metric | base | new | change | Welch p | power | verdict \
             |\n|---|---|---|---|---:|---:|---:|---:|---:|---|\n",
        );
        for c in rows {
            t.push_str(&format!(
                "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                esc(&c.device),
                esc(&cell_label(c)),
                esc(&model_label(c)),
                c.metric,
                human(c.base),
                human(c.new),
                change_text(c),
                c.p_value.map_or("n/a".into(), |p| format!("{p:.3}")),
                c.power
                    .map_or("n/a".into(), |p| format!("{:.0}%", p * 100.0)),
                verdict_text(c)
            ));
        }
        t.push('\n');
    };
    let pick =
        |v: Verdict| -> Vec<&Change> { cmp.changes.iter().filter(|c| c.verdict == v).collect() };
    table(&mut t, "#### Regressions", &pick(Verdict::Regression));
    if !cmp.lost.is_empty() {
        t.push_str(
            "#### Cells ok in BASE, not ok in NEW\n\n| device | cell | model | in NEW |\n|---|---|---|---|\n",
        );
        for l in &cmp.lost {
            t.push_str(&format!(
                "| {} | `{}` | {} | {}{} |\n",
                esc(&l.device),
                esc(&l.cell_id),
                esc(&l.model),
                l.new_status,
                l.reason
                    .as_deref()
                    .map_or(String::new(), |r| format!(": {}", esc(r)))
            ));
        }
        t.push('\n');
    }
    table(
        &mut t,
        "#### Inconclusive (more repetitions would decide)",
        &pick(Verdict::Inconclusive),
    );
    t.push_str(&format!(
        "<details><summary>All {} compared metrics</summary>\n\n",
        cmp.changes.len()
    ));
    table(&mut t, "", &cmp.changes.iter().collect::<Vec<_>>());
    t.push_str("</details>\n\n");
    t.push_str(&summary(cmp, cfg).replace('\n', "  \n"));
    t
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let base = load(&cfg.base)?;
    let new = load(&cfg.new)?;
    let cmp = compare::compare(&base, &new, cfg.threshold_pct, &cfg.match_by).map_err(|e| {
        let file = match &e {
            compare::MatchError::Ambiguous {
                new_side: false, ..
            } => cfg.base.clone(),
            _ => cfg.new.clone(),
        };
        Error::ConfigFile {
            file,
            problem: e.problem(&cfg.match_by),
        }
    })?;
    let (verdict, code) = gate(&cmp, cfg);
    let out = match cfg.format {
        CompareFormat::Json => super::document(&serde_json::json!({
            "schema_version": 2,
            "base": cfg.base.display().to_string(),
            "new": cfg.new.display().to_string(),
            "threshold_pct": cfg.threshold_pct,
            "alpha": compare::ALPHA,
            "fail_on_inconclusive": cfg.fail_on_inconclusive,
            "verdict": verdict,
            "exit_code": code,
            "match_by": cmp.match_by,
            "cells_in_common": cmp.cells_in_common,
            "regressions": cmp.regressions,
            "inconclusive": cmp.inconclusive,
            "threshold_only": cmp.threshold_only,
            "lost": cmp.lost,
            "fixed": cmp.fixed,
            "new_only": cmp.new_only,
            "failed_in_both": cmp.failed_in_both,
            "changes": cmp.changes,
        }))?,
        CompareFormat::Text => text(&cmp, cfg),
        CompareFormat::Markdown => markdown(&cmp, cfg),
    };
    super::print(&out)?;
    Ok(code)
}

//! `odai report`: a results directory and a workload profile in; scorecards, verdicts, fleet
//! coverage and the report files out; an exit code a release gate can use (`--fail-on`).

use std::path::PathBuf;

use crate::cli::{FailOn, ReportArgs, ReportFormat};
use crate::exit;
use crate::matrix::results::write_atomic;
use crate::probe::class::{self, Classes};
use crate::report::scorecard::Verdict;
use crate::report::workload::Workload;
use crate::report::{self, Exporter, Report, measurements::ResultsSet};

pub struct Config {
    pub results: PathBuf,
    pub workload: Workload,
    pub classes: Classes,
    pub out: PathBuf,
    pub formats: Vec<ReportFormat>,
    pub fail_on: Option<FailOn>,
    /// A results set measured on an endpoint: the cloud baseline.
    pub baseline: Option<PathBuf>,
    /// Read from this database (`--db`), results finished since the time given (`--since`),
    /// instead of the directory `results`.
    pub db: Option<(PathBuf, Option<f64>)>,
}

impl Config {
    pub fn new(a: &ReportArgs) -> anyhow::Result<Config> {
        let (results, out) = match (&a.results, &a.db) {
            (Some(dir), _) => (dir.clone(), dir.join("report")),
            (None, Some(db)) => (db.clone(), PathBuf::from("odai-report")),
            (None, None) => unreachable!("clap requires RESULTS_DIR or --db"),
        };
        Ok(Config {
            results,
            workload: Workload::resolve(&a.profile)?,
            classes: class::load(a.classes.as_ref())?,
            out: a.out.clone().unwrap_or(out),
            formats: a.format.clone(),
            fail_on: a.fail_on,
            baseline: a.baseline.clone(),
            db: a.db.clone().map(|d| (d, a.since)),
        })
    }
}

/// Builds the report and writes the files asked for into `out`; returns the report and the
/// paths written.
pub fn write(cfg: &Config) -> anyhow::Result<(Report, Vec<PathBuf>)> {
    let set = match &cfg.db {
        None => ResultsSet::load(&cfg.results)?,
        Some((db, since)) => from_db(db, *since)?,
    };
    for w in &set.warnings {
        anstream::eprintln!("odai: warning: {w}");
    }
    let baseline = match cfg.baseline.as_ref().or(cfg.workload.baseline.as_ref()) {
        None => None,
        Some(dir) => {
            let b = ResultsSet::load(dir)?;
            let rows = report::measurements::rows(&b);
            if !rows
                .iter()
                .any(|r| report::scorecard::is_endpoint(r) && r.is_ok())
            {
                return Err(crate::error::Error::ConfigFile {
                    file: dir.clone(),
                    problem: "--baseline: holds no successful endpoint results (runtime openai); \
                              measure the cloud path with a matrix that lists \
                              { endpoint = \"URL\", model = \"NAME\" } under models"
                        .into(),
                }
                .into());
            }
            Some(b)
        }
    };
    let r = Report::new(set, &cfg.workload, &cfg.classes, baseline.as_ref());
    if r.scoring.scorecards.is_empty() {
        // Nothing of the workload's kind: every verdict would be vacuous, so none is given.
        let (kind, other, hint) = if cfg.workload.tensor {
            (
                "tensor",
                "language-model",
                "measure a [[tensor]] entry of the matrix, or pick a language workload: \
                 --profile chat-assistant",
            )
        } else {
            (
                "language-model",
                "tensor",
                "measure a [matrix] of GGUF models, or pick a tensor workload: --profile wake-word",
            )
        };
        return Err(crate::error::Error::ConfigFile {
            file: cfg.results.clone(),
            problem: format!(
                "holds no {kind} cells of a device for the {} profile to judge (a {kind} \
                 workload; {other} and endpoint cells are not its evidence): {hint}",
                cfg.workload.id
            ),
        }
        .into());
    }
    std::fs::create_dir_all(&cfg.out).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the report directory {}: {e}",
            cfg.out.display()
        )
    })?;
    let mut written = Vec::new();
    for f in &cfg.formats {
        let exporter: &dyn Exporter = match f {
            ReportFormat::Csv => &report::csv::Csv,
            ReportFormat::Md => &report::markdown::Markdown,
            ReportFormat::Html => &report::html::Html,
            ReportFormat::Json => &report::json::Json,
        };
        for (name, bytes) in exporter.files(&r)? {
            write_atomic(&cfg.out, name, &bytes)?;
            written.push(cfg.out.join(name));
        }
    }
    Ok((r, written))
}

#[cfg(feature = "db")]
fn from_db(db: &std::path::Path, since: Option<f64>) -> anyhow::Result<ResultsSet> {
    // Opening creates a missing file: a report on a mistyped path would read an empty, new
    // database. Reading never creates.
    if !db.is_file() {
        return Err(crate::error::Error::ConfigFile {
            file: db.to_owned(),
            problem: "--db: no such database (odai db import DIR --db FILE or odai matrix run \
                      --db FILE writes one)"
                .into(),
        }
        .into());
    }
    crate::db::Db::open(db)?.results_set(since)
}

#[cfg(not(feature = "db"))]
fn from_db(_: &std::path::Path, _: Option<f64>) -> anyhow::Result<ResultsSet> {
    Err(super::db::not_built("--db"))
}

/// The gate: [`exit::GATE`] when any verdict is at or below the level.
pub fn gate(r: &Report, fail_on: Option<FailOn>) -> i32 {
    let Some(level) = fail_on else {
        return exit::SUCCESS;
    };
    let floor = match level {
        FailOn::Fail => Verdict::CloudOnly,
        FailOn::Hybrid => Verdict::Hybrid,
    };
    let low: Vec<String> = r
        .scoring
        .scorecards
        .iter()
        .filter(|s| s.verdict <= floor)
        .map(|s| format!("{} on {}: {}", s.model, s.class_label, s.verdict.text()))
        .collect();
    if low.is_empty() {
        exit::SUCCESS
    } else {
        anstream::eprintln!(
            "odai: gate failed (--fail-on {}): {}",
            match level {
                FailOn::Fail => "fail",
                FailOn::Hybrid => "hybrid",
            },
            low.join("; ")
        );
        exit::GATE
    }
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let (r, written) = write(cfg)?;
    let text = format!(
        "{} ({}), results {}\n\n{}\n",
        r.scoring.workload.label,
        r.scoring.workload.id,
        cfg.results.display(),
        report::markdown::verdict_matrix(&r)
    );
    super::print(&text)?;
    // Status, not data: `odai report DIR > verdict.md` holds the verdicts alone.
    for p in &written {
        anstream::eprintln!("wrote {}", p.display());
    }
    Ok(gate(&r, cfg.fail_on))
}

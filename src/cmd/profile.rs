//! `odai profile`: this device in one command — the probe, the built-in quick matrix
//! (matrices/quick.toml, synthetic models, cells that do not fit the headroom skipped) run into a
//! results directory, and a table of what it measured.

use std::path::PathBuf;

use crate::cli::{Format, ProfileArgs, ReportFormat};
use crate::matrix::results::{Status, Store};
use crate::matrix::runner::{self, Options};
use crate::matrix::spec::Matrix;
use crate::probe;
use crate::sysroot::SysRoot;
use crate::units;

/// The quick matrix, built in so `odai profile` needs no file beside the binary.
pub const QUICK: &str = include_str!("../../matrices/quick.toml");

pub struct Config {
    pub root: SysRoot,
    pub matrix: Option<PathBuf>,
    /// The GPU compute check's limit per adapter; `None` with --no-gpu-check.
    pub gpu_check: Option<std::time::Duration>,
    /// Check software rasterisers too (`--gpu-check-software`).
    pub gpu_check_software: bool,
    pub opts: Options,
    pub format: Format,
    pub report: super::report::Config,
}

/// `2026-11-24T10:27:35Z` → `20261124T102735Z`: sortable, and safe in a directory name.
fn utc_stamp(unix_s: u64) -> String {
    crate::units::utc_rfc3339(unix_s).replace(['-', ':'], "")
}

impl Config {
    pub fn new(root: SysRoot, a: &ProfileArgs) -> anyhow::Result<Self> {
        let out = a.out.clone().unwrap_or_else(|| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            PathBuf::from("odai-results").join(format!("profile-{}", utc_stamp(now)))
        });
        Ok(Config {
            root,
            matrix: a.matrix.clone(),
            gpu_check: (!a.no_gpu_check).then_some(crate::probe::gpu_check::ADAPTER_LIMIT),
            gpu_check_software: a.gpu_check_software,
            report: super::report::Config {
                results: out.clone(),
                workload: crate::report::workload::Workload::resolve(&a.workload)?,
                classes: crate::probe::class::load(a.classes.as_ref())?,
                out: out.join("report"),
                formats: vec![
                    ReportFormat::Csv,
                    ReportFormat::Md,
                    ReportFormat::Html,
                    ReportFormat::Json,
                ],
                fail_on: None,
                baseline: None,
                db: None,
            },
            // The devices' own probes (probe-local.json, which the scorecard classifies by)
            // check the GPUs too, so a class rule on GPU bandwidth can hold.
            opts: runner::Options {
                gpu_check: !a.no_gpu_check,
                ..super::matrix::run_options(&a.run, out, false, None)
            },
            format: a.run.format,
        })
    }
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let matrix = match &cfg.matrix {
        Some(f) => Matrix::load(f)?,
        None => Matrix::parse(
            QUICK,
            std::path::Path::new("matrices/quick.toml (built in)"),
        )?,
    };
    // A mistaken --out fails before the probe's seconds of GPU checks, not after.
    runner::refuse_earlier_results(&cfg.opts)?;
    // The full probe, GPUs included and checked, for the reader; each cell's worker probes
    // quickly for itself.
    let device = probe::run(
        &cfg.root,
        &probe::Options {
            gpu: probe::gpu::Enumerate::WithTimeout(std::time::Duration::from_secs(10)),
            gpu_check: cfg.gpu_check,
            gpu_check_software: cfg.gpu_check_software,
            ..probe::Options::quick()
        },
    );
    if cfg.format == Format::Text {
        super::print(&probe::text::render(&device))?;
        super::print(&format!(
            "\nRunning {} ({} cells) on this device; results in {}\n",
            matrix.file.display(),
            matrix.cells.len(),
            cfg.opts.out.display()
        ))?;
    }
    let devices = super::matrix::devices(None, &cfg.root)?;
    let opts = runner::Options {
        known_probe: Some((runner::LOCAL.to_owned(), device.clone())),
        ..cfg.opts.clone()
    };
    let summary = runner::run(&matrix, &devices, &opts)?;
    let records = Store::records(&cfg.opts.out);
    // The scorecard, once there is something to score (an interrupted run may have nothing).
    let report = if records.is_empty() {
        None
    } else {
        Some(super::report::write(&cfg.report)?)
    };
    if cfg.format == Format::Json {
        super::print(&super::document(&serde_json::json!({
            "results_dir": cfg.opts.out.display().to_string(),
            "probe": device,
            "cells": records,
            "interrupted": summary.interrupted,
            "devices": summary.devices,
            "scorecards": report.as_ref().map(|(r, _)| &r.scoring.scorecards),
            "report_files": report.as_ref().map(|(_, files)| files),
        }))?)?;
        return Ok(super::matrix::exit_code(&summary));
    }
    let mut t = format!(
        "\n{:<32} {:<10} {:>3} {:>5} {:>4} {:>10} {:>12} {:>12} {:>10}  {}\n",
        "model",
        "runtime",
        "thr",
        "p",
        "n",
        "TTFT ms",
        "prefill t/s",
        "decode t/s",
        "peak RSS",
        "status"
    );
    for r in &records {
        let get = |k: &str| {
            r.report
                .as_ref()
                .and_then(|rep| rep.summary.get(k))
                .map_or("-".to_owned(), |s| format!("{:.1}", s.mean))
        };
        let rss = r
            .report
            .as_ref()
            .and_then(|rep| rep.summary.get("peak_rss_bytes"))
            .map_or("-".to_owned(), |s| units::bytes(s.mean as u64));
        let status = match (&r.status, &r.reason) {
            (Status::Ok, _) => "ok".to_owned(),
            (s, Some(why)) => format!("{}: {why}", format!("{s:?}").to_lowercase()),
            (s, None) => format!("{s:?}").to_lowercase(),
        };
        // The runtime that ran, else the one the cell asked for.
        let runtime = r.report.as_ref().map_or_else(
            || r.cell.runtime.name().to_owned(),
            |rep| rep.provenance.ran.runtime.clone(),
        );
        t.push_str(&format!(
            "{:<32} {:<10} {:>3} {:>5} {:>4} {:>10} {:>12} {:>12} {:>10}  {status}\n",
            r.cell.model.label(),
            runtime,
            r.report.as_ref().map_or_else(
                || r.cell.threads_label(),
                |rep| rep.provenance.threads.to_string()
            ),
            r.cell.prompt_tokens,
            r.cell.gen_tokens,
            get("ttft_ms"),
            get("prefill_tps"),
            get("decode_tps"),
            rss,
        ));
    }
    if let Some((r, files)) = &report {
        t.push_str(&format!(
            "\nReadiness for {} on this device ({}):\n",
            r.scoring.workload.label, r.scoring.workload.id
        ));
        for s in &r.scoring.scorecards {
            t.push_str(&format!(
                "  {:<32} {:<16} {}\n",
                s.model,
                s.verdict.text(),
                s.score_pct
                    .map_or("not measured".into(), |p| format!("score {p:.0} %"))
            ));
            for why in &s.reasons {
                t.push_str(&format!("      {why}\n"));
            }
        }
        if let Some(html) = files.iter().find(|f| f.ends_with("report.html")) {
            t.push_str(&format!("\nReport: {}\n", html.display()));
        }
    }
    super::print(&t)?;
    super::matrix::report_summary(
        &matrix.file.display().to_string(),
        &summary,
        &cfg.opts.out,
        Format::Text,
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_built_in_quick_matrix_is_valid() {
        let m = crate::matrix::spec::Matrix::parse(super::QUICK, std::path::Path::new("quick"))
            .unwrap();
        // Per model a warm cell at the workload's shape and a cold one-token cell.
        assert_eq!(m.cells.len(), 6);
        for c in &m.cells {
            assert_eq!(c.gen_tokens, if c.cold { 1 } else { 64 }, "{c:?}");
        }
    }

    #[test]
    fn utc_stamps_are_civil_dates() {
        assert_eq!(super::utc_stamp(0), "19700101T000000Z");
        // 2026-11-24T10:27:35Z
        assert_eq!(super::utc_stamp(1_795_516_055), "20261124T102735Z");
        // A leap day.
        assert_eq!(super::utc_stamp(951_782_400), "20000229T000000Z");
    }
}

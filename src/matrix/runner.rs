//! Runs a matrix's cells on this device, one at a time (benchmarks must not overlap on a
//! device), recording each as it finishes; `--resume` skips what is already recorded.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::plan;
use super::results::{Manifest, Record, Status, Store, now_unix_s};
use super::spec::{Cell, Matrix, ModelRef};
use crate::bench::cell::{self, Cooldown, Source};
use crate::bench::load::Load;
use crate::engine::{fingerprint, synth};
use crate::error::Error;
use crate::probe;
use crate::protocol::SustainedSpec;
use crate::sysroot::{Reading, SysRoot};

/// The local device's name in results.
pub const LOCAL: &str = "local";

/// What a run did.
pub struct Summary {
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub already: usize,
}

fn say(line: &str) {
    // One line per cell: plain text, fine on a terminal and in a CI log alike.
    if std::io::stderr().is_terminal() || std::env::var_os("ODAI_PROGRESS").is_some() {
        eprintln!("{line}");
    }
}

fn bench_config(root: &SysRoot, cell: &Cell) -> Result<cell::Config, String> {
    let source = match &cell.model {
        ModelRef::Synthetic { preset, quant } => {
            let (p, q) = synth::parse_spec(&format!("{preset}:{quant}"), "models")
                .map_err(|e| e.to_string())?;
            Source::Synthetic(p, q)
        }
        ModelRef::File { path, sha256 } => {
            if let Some(want) = sha256 {
                let cache = synth::cache_dir().join("sha256.tsv");
                let got = fingerprint::sha256_cached(path, &cache).map_err(|e| format!("{e:#}"))?;
                if &got != want {
                    return Err(format!(
                        "{}: sha256 is {got}, the matrix pins {want}",
                        path.display()
                    ));
                }
            }
            Source::File(path.clone())
        }
    };
    Ok(cell::Config {
        root: root.clone(),
        source,
        threads: Some(cell.threads),
        prompt_tokens: cell.prompt_tokens,
        gen_tokens: cell.gen_tokens,
        reps: cell.reps,
        warmup: cell.warmup,
        cold: cell.cold,
        token_deadline_ms: None,
        force: false,
        seed: 42,
        sustained: cell.sustained_s.map(|d| SustainedSpec {
            duration_s: d,
            window_s: 10f64.min(d),
            checkpoints_s: vec![300.0, 600.0, 900.0],
        }),
        sample_interval_s: Some(1.0),
        load: Load::parse(&cell.load).map_err(|e| e.to_string())?,
        cooldown: Cooldown::None,
        idle_baseline: None,
    })
}

/// Runs `matrix` on this device into `out`.
pub fn run_local(
    matrix: &Matrix,
    root: &SysRoot,
    out: &Path,
    resume: bool,
) -> anyhow::Result<Summary> {
    let text = std::fs::read(&matrix.file)
        .with_context(|| format!("cannot read {}", matrix.file.display()))?;
    let matrix_sha256: String = Sha256::digest(&text)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let manifest_path = out.join("manifest.json");
    let has_results = Store::results_path(out)
        .metadata()
        .is_ok_and(|m| m.len() > 0);
    if has_results && !resume {
        return Err(Error::ConfigFile {
            file: out.to_owned(),
            problem:
                "already holds results: pass --resume to continue that run, or choose another --out"
                    .into(),
        }
        .into());
    }
    let mut manifest = Manifest {
        odai_version: env!("CARGO_PKG_VERSION").into(),
        matrix_file: matrix.file.display().to_string(),
        matrix_sha256: matrix_sha256.clone(),
        devices: vec![LOCAL.into()],
        started_unix_s: now_unix_s(),
        finished_unix_s: None,
    };
    if resume && let Ok(old) = std::fs::read(&manifest_path) {
        let old: Manifest = serde_json::from_slice(&old)
            .with_context(|| format!("{} is not an odai manifest", manifest_path.display()))?;
        if old.matrix_sha256 != matrix_sha256 {
            return Err(Error::ConfigFile {
                file: out.to_owned(),
                problem: format!(
                    "holds results of another matrix ({}); resume with that matrix, or choose another --out",
                    old.matrix_file
                ),
            }
            .into());
        }
        manifest.started_unix_s = old.started_unix_s;
    }
    let mut store = Store::open(out)?;
    store.write_file("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;

    let device = probe::run(root, &probe::Options::quick());
    store.write_file(
        &format!("probe-{LOCAL}.json"),
        crate::cmd::json_text(&device)?.as_bytes(),
    )?;
    let planned = plan::plan(matrix, &device, Reading::unavailable("not needed to run"));
    let done = Store::done(out, LOCAL);
    let mut summary = Summary {
        ok: 0,
        failed: 0,
        skipped: 0,
        already: 0,
    };
    let total = planned.cells.len();
    for (i, pc) in planned.cells.iter().enumerate() {
        let cell = &pc.cell;
        let tag = format!(
            "[{}/{total}] {LOCAL} {} {} threads={} p={} n={}",
            i + 1,
            cell.id,
            cell.model.label(),
            cell.threads,
            cell.prompt_tokens,
            cell.gen_tokens
        );
        if done.contains(&cell.id) {
            summary.already += 1;
            say(&format!("{tag}: already recorded"));
            continue;
        }
        let (status, reason, report) = match &pc.skip {
            Some(why) => (Status::Skipped, Some(why.clone()), None),
            None => match bench_config(root, cell)
                .map_err(anyhow::Error::msg)
                .and_then(|c| cell::run(&c))
            {
                Ok(r) => (Status::Ok, None, Some(r)),
                Err(e) => (Status::Failed, Some(format!("{e:#}")), None),
            },
        };
        match status {
            Status::Ok => summary.ok += 1,
            Status::Failed => summary.failed += 1,
            Status::Skipped => summary.skipped += 1,
        }
        say(&format!(
            "{tag}: {}",
            match (&status, &report, &reason) {
                (Status::Ok, Some(r), _) => format!(
                    "ok, decode {:.1} tok/s",
                    r.summary.get("decode_tps").map_or(0.0, |s| s.mean)
                ),
                (_, _, Some(why)) => format!("{}: {why}", format!("{status:?}").to_lowercase()),
                _ => format!("{status:?}").to_lowercase(),
            }
        ));
        store.append(&Record {
            device: LOCAL.into(),
            cell_id: cell.id.clone(),
            cell: cell.clone(),
            status,
            reason,
            report,
            finished_unix_s: now_unix_s(),
        })?;
    }
    manifest.finished_unix_s = Some(now_unix_s());
    store.write_file("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(summary)
}

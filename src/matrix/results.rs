//! A matrix run's results directory: `results.jsonl` (one record per finished cell, flushed and
//! fsync'd as it lands, so a crash on cell 37 leaves 36 on disk), `manifest.json` (what ran, by
//! which odai, when) and each device's probe. Append-only: a report is a pure function of it.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::spec::Cell;
use crate::bench::cell::Report;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
}

/// One finished cell on one device.
#[derive(Serialize, Deserialize)]
pub struct Record {
    pub device: String,
    pub cell_id: String,
    pub cell: Cell,
    pub status: Status,
    /// Why it failed or was skipped.
    pub reason: Option<String>,
    pub report: Option<Report>,
    /// A tensor cell's figures (`[[tensor]]` in the matrix); absent for language-model cells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<crate::bench::tensor::TensorResult>,
    pub finished_unix_s: f64,
}

#[derive(Serialize, Deserialize)]
pub struct Manifest {
    pub odai_version: String,
    pub matrix_file: String,
    /// sha256 of the matrix file's text: `--resume` refuses a directory of another matrix.
    pub matrix_sha256: String,
    /// The farm inventory the run used; null on this device alone.
    #[serde(default)]
    pub farm_file: Option<String>,
    pub devices: Vec<String>,
    pub started_unix_s: f64,
    pub finished_unix_s: Option<f64>,
    /// Stopped by Ctrl-C: `--resume` continues it.
    #[serde(default)]
    pub interrupted: bool,
}

pub use crate::units::now_unix_s;

/// An exclusive lock on a results directory for the life of a run (`.odai-lock` in it, holding
/// the owner's pid): two `matrix run`s into one `--out` would interleave records and race on
/// `--resume`'s rewrite. The kernel drops the lock when the process ends, however it ends, so a
/// crash never leaves a stale lock behind.
pub struct DirLock {
    _file: File,
}

impl DirLock {
    pub const NAME: &'static str = ".odai-lock";

    pub fn acquire(dir: &Path) -> anyhow::Result<DirLock> {
        std::fs::create_dir_all(dir).with_context(|| {
            format!(
                "cannot create the results directory {} (choose a writable --out)",
                dir.display()
            )
        })?;
        let path = dir.join(Self::NAME);
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| {
                format!(
                    "cannot write in the results directory {} (choose a writable --out)",
                    dir.display()
                )
            })?;
        match file.try_lock() {
            Ok(()) => {
                // Who holds it, for the message another run prints; best effort (a full disk
                // must not stop a run that only appends to an existing results file).
                let _ = file
                    .set_len(0)
                    .and_then(|()| writeln!(file, "{}", std::process::id()));
                Ok(DirLock { _file: file })
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                let owner = owner.trim();
                Err(crate::error::Error::ConfigFile {
                    file: dir.to_owned(),
                    problem: format!(
                        "is in use by another odai run{}: wait for it to finish, or choose another --out",
                        if owner.is_empty() {
                            String::new()
                        } else {
                            format!(" (pid {owner})")
                        }
                    ),
                }
                .into())
            }
            Err(std::fs::TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock {}", path.display()))
            }
        }
    }
}

pub struct Store {
    pub dir: PathBuf,
    results: File,
}

impl Store {
    pub fn results_path(dir: &Path) -> PathBuf {
        dir.join("results.jsonl")
    }

    /// Opens (creating) `dir/results.jsonl` for appending. A last line torn by a crash is
    /// closed with a newline first, so the next record starts on a line of its own.
    pub fn open(dir: &Path) -> anyhow::Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the results directory {}", dir.display()))?;
        let path = Self::results_path(dir);
        let mut results = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let len = results.metadata()?.len();
        if len > 0 {
            let mut last = [0u8; 1];
            results.seek(SeekFrom::Start(len - 1))?;
            results.read_exact(&mut last)?;
            if last[0] != b'\n' {
                results.write_all(b"\n")?;
            }
        }
        Ok(Store {
            dir: dir.to_owned(),
            results,
        })
    }

    /// Every readable record; a torn or garbled line is left out, not fatal.
    pub fn records(dir: &Path) -> Vec<Record> {
        Self::records_in(&Self::results_path(dir))
    }

    /// Every readable record of a JSON Lines file of them (`results.jsonl`, `failures.jsonl`).
    pub fn records_in(path: &Path) -> Vec<Record> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let v = serde_json::from_str(l).ok()?;
                crate::sysroot::from_contract_json(v).ok()
            })
            .collect()
    }

    /// Cells already finished (ok or skipped), by device: `--resume` does not run them again.
    /// A failed cell is run again.
    pub fn done(dir: &Path) -> HashMap<String, HashSet<String>> {
        let mut done: HashMap<String, HashSet<String>> = HashMap::new();
        for r in Self::records(dir) {
            if r.status != Status::Failed {
                done.entry(r.device).or_default().insert(r.cell_id);
            }
        }
        done
    }

    /// Before a resumed run retries failed cells: their records move to `failures.jsonl` (the
    /// history of what went wrong) and `results.jsonl` is rewritten without them (and without a
    /// line torn by a crash), so it never holds two records of one cell. Returns how many moved.
    pub fn retire_failures(dir: &Path) -> anyhow::Result<usize> {
        let path = Self::results_path(dir);
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(0);
        };
        let (mut keep, mut failed) = (String::new(), String::new());
        let mut dropped = 0;
        for line in text.lines() {
            match serde_json::from_str(line).and_then(crate::sysroot::from_contract_json::<Record>)
            {
                Ok(r) if r.status == Status::Failed => {
                    failed.push_str(line);
                    failed.push('\n');
                }
                Ok(_) => {
                    keep.push_str(line);
                    keep.push('\n');
                }
                Err(_) => dropped += 1,
            }
        }
        if failed.is_empty() && dropped == 0 {
            return Ok(0);
        }
        let history = dir.join("failures.jsonl");
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .with_context(|| format!("cannot open {}", history.display()))?;
        f.write_all(failed.as_bytes())
            .and_then(|()| f.sync_data())
            .with_context(|| format!("cannot write {} (disk full?)", history.display()))?;
        write_atomic(dir, "results.jsonl", keep.as_bytes())?;
        Ok(failed.lines().count())
    }

    /// Appends one record and makes it durable before returning.
    pub fn append(&mut self, record: &Record) -> anyhow::Result<()> {
        // In the JSON contract (docs/results.md): unavailable readings are null plus a
        // `<key>_unavailable` reason, as in every other odai document.
        let mut line = crate::sysroot::to_contract_json(record)
            .and_then(|v| serde_json::to_vec(&v))
            .context("cannot serialize a result")?;
        line.push(b'\n');
        let path = Self::results_path(&self.dir);
        let before = self.results.metadata().map(|m| m.len());
        let written = self
            .results
            .write_all(&line)
            .and_then(|()| self.results.sync_data());
        if written.is_err()
            && let Ok(len) = before
        {
            // A write cut short by a full disk leaves part of a line: take it back, so the file
            // holds whole records only (a later `--resume` would also drop it, as a torn line).
            let _ = self.results.set_len(len);
        }
        written.with_context(|| {
            format!(
                "cannot write a result to {} (disk full? free space, then run again with --resume)",
                path.display()
            )
        })
    }

    /// Writes `name` in the directory atomically (temporary file, fsync, rename).
    pub fn write_file(&self, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
        write_atomic(&self.dir, name, bytes)
    }
}

/// Writes `dir/name` atomically (temporary file, fsync, rename).
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> anyhow::Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = File::create(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {} (disk full?)", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

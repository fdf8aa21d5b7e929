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
    /// The run's own id, drawn when it starts (kept by `--resume`): what the results database
    /// files its rows under. Absent in directories older odai wrote (the database then derives
    /// one from the matrix and the start second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
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

/// Where `--resume` moves the lines of `results.jsonl` that are no record.
pub const REJECTED: &str = "results.rejected.jsonl";

/// A results file read line by line as bytes, each line decoded on its own: one garbled byte
/// costs its line, not the file, and memory holds one line at a time beside the records.
pub struct Loaded {
    pub records: Vec<Record>,
    /// Each record's line (1-based), in step with `records`.
    pub lines: Vec<usize>,
    pub rejected: Vec<Rejected>,
}

/// A line that is no readable record.
pub struct Rejected {
    /// 1-based.
    pub line: usize,
    pub why: String,
    /// A JSON object with a device and a cell id that is still no record this odai reads: a
    /// newer odai's, not damage.
    pub foreign: bool,
}

impl Loaded {
    pub fn read(path: &Path) -> std::io::Result<Loaded> {
        use std::io::BufRead;
        let file = File::open(path)?;
        let mut loaded = Loaded {
            records: Vec::new(),
            lines: Vec::new(),
            rejected: Vec::new(),
        };
        for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
            let bytes = line?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let reject = |why: String, foreign: bool| Rejected {
                line: i + 1,
                why,
                foreign,
            };
            let value: serde_json::Value = match std::str::from_utf8(&bytes) {
                Err(e) => {
                    loaded
                        .rejected
                        .push(reject(format!("not UTF-8: {e}"), false));
                    continue;
                }
                Ok(text) => match serde_json::from_str(text) {
                    Ok(v) => v,
                    Err(e) => {
                        loaded
                            .rejected
                            .push(reject(format!("not JSON (torn by a crash?): {e}"), false));
                        continue;
                    }
                },
            };
            let foreign = value.get("device").is_some_and(|d| d.is_string())
                && value.get("cell_id").is_some_and(|c| c.is_string());
            match crate::sysroot::from_contract_json::<Record>(value) {
                Ok(r) => {
                    loaded.records.push(r);
                    loaded.lines.push(i + 1);
                }
                Err(e) => loaded
                    .rejected
                    .push(reject(format!("not a record: {e}"), foreign)),
            }
        }
        Ok(loaded)
    }
}

pub struct Store {
    pub dir: PathBuf,
    results: File,
}

/// A new run's id: 16 hex digits of sha256 over the clock's nanoseconds, the process id and the
/// matrix — two runs of one matrix started in the same second get two ids.
pub fn new_run_id(matrix_sha256: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = format!("{nanos} {} {matrix_sha256}", std::process::id());
    crate::engine::fingerprint::sha256_hex(seed.as_bytes())[..16].to_owned()
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
        Loaded::read(path).map(|l| l.records).unwrap_or_default()
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
    /// history of what went wrong) and `results.jsonl` is rewritten without them, so it never
    /// holds two records of one cell; lines that are no record (torn by a crash, a garbled byte)
    /// move to `results.rejected.jsonl`, kept byte for byte. A line that is a record this odai
    /// cannot read (a newer odai's) stops the resume: its cell would run twice. Returns how many
    /// failed records and rejected lines moved.
    pub fn retire_failures(dir: &Path) -> anyhow::Result<(usize, usize)> {
        let path = Self::results_path(dir);
        let loaded = match Loaded::read(&path) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot read {} to resume from it", path.display()));
            }
        };
        if let Some(r) = loaded.rejected.iter().find(|r| r.foreign) {
            return Err(crate::error::Error::ConfigFile {
                file: path.clone(),
                problem: format!(
                    "line {} is a record this odai cannot read ({}): resume with the odai that \
                     wrote it, or choose another --out",
                    r.line, r.why
                ),
            }
            .into());
        }
        let failed: Vec<&Record> = loaded
            .records
            .iter()
            .filter(|r| r.status == Status::Failed)
            .collect();
        if failed.is_empty() && loaded.rejected.is_empty() {
            return Ok((0, 0));
        }
        let append = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
            let p = dir.join(name);
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)
                .with_context(|| format!("cannot open {}", p.display()))?;
            f.write_all(bytes)
                .and_then(|()| f.sync_data())
                .with_context(|| format!("cannot write {} (disk full?)", p.display()))
        };
        // Every line moves byte for byte (a record is never rewritten, so nothing an older odai
        // wrote is lost in a round trip): a second pass sorts them by their line numbers.
        let failed_lines: HashSet<usize> = loaded
            .records
            .iter()
            .zip(&loaded.lines)
            .filter(|(r, _)| r.status == Status::Failed)
            .map(|(_, &n)| n)
            .collect();
        let rejected_lines: HashSet<usize> = loaded.rejected.iter().map(|r| r.line).collect();
        let (mut keep, mut history, mut rejected) = (Vec::new(), Vec::new(), Vec::new());
        let file = File::open(&path).with_context(|| format!("cannot read {}", path.display()))?;
        for (i, line) in std::io::BufRead::split(std::io::BufReader::new(file), b'\n').enumerate() {
            let mut bytes = line.with_context(|| format!("cannot read {}", path.display()))?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            bytes.push(b'\n');
            let to = if failed_lines.contains(&(i + 1)) {
                &mut history
            } else if rejected_lines.contains(&(i + 1)) {
                &mut rejected
            } else {
                &mut keep
            };
            to.extend_from_slice(&bytes);
        }
        append("failures.jsonl", &history)?;
        append(REJECTED, &rejected)?;
        write_atomic(dir, "results.jsonl", &keep)?;
        Ok((failed.len(), loaded.rejected.len()))
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

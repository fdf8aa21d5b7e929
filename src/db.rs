//! The results database: every run's records in one SQLite file (docs/db.md), for readiness
//! reviews that look across releases — `odai db import DIR…`, `odai matrix run --db` as it goes,
//! `odai bench -o sql` (llama-bench's `-o sql`), and `odai report --db … --since …` reading it
//! back.
//!
//! One table per record kind (`runs`, `cells`, `reps`, `failures`, `quality`, `probes`) with typed
//! columns to query, and each record's JSON beside them (`record_json`), so a report rebuilt from
//! the database is the report of the files. Rows are keyed by what identifies them (a run, a
//! device, a cell id…): importing the same directory twice changes nothing. The rows are built
//! once as data ([`Row`]) and either executed (rusqlite, SQLite compiled in: no system library)
//! or written as SQL text (`-o sql`), so both paths hold the same columns.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rusqlite::types::Value;

use crate::bench::cell::Report;
use crate::matrix::results::{Manifest, Record, Status};
use crate::protocol::RepResult;
use crate::quality::QualityRecord;

/// Bump on an incompatible change to the tables; an older odai refuses a newer database.
pub const SCHEMA_VERSION: u32 = 1;

/// The tables, as created. Column order is the documented order (docs/db.md).
const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, source TEXT NOT NULL, matrix_file TEXT, matrix_sha256 TEXT,
        farm_file TEXT, odai_version TEXT, started_unix_s REAL, finished_unix_s REAL,
        interrupted INTEGER)",
    "CREATE TABLE IF NOT EXISTS cells (
        run_id TEXT NOT NULL, device TEXT NOT NULL, cell_id TEXT NOT NULL, status TEXT NOT NULL,
        reason TEXT, model TEXT NOT NULL, runtime TEXT NOT NULL, threads INTEGER,
        prompt_tokens INTEGER, gen_tokens INTEGER, cold INTEGER, sustained_s REAL, load TEXT,
        reps INTEGER, warmup INTEGER, finished_unix_s REAL NOT NULL, host TEXT,
        device_class TEXT, model_sha256 TEXT, runtime_ran TEXT, runtime_version TEXT,
        backend TEXT, odai_version TEXT, git_commit TEXT, load_ms_mean REAL,
        ttft_ms_mean REAL, prefill_tps_mean REAL, decode_tps_mean REAL, pg_tps_mean REAL,
        token_ms_p99_mean REAL, peak_rss_bytes_max INTEGER, record_json TEXT NOT NULL,
        PRIMARY KEY (run_id, device, cell_id))",
    "CREATE TABLE IF NOT EXISTS reps (
        run_id TEXT NOT NULL, device TEXT NOT NULL, cell_id TEXT NOT NULL, phase TEXT NOT NULL,
        rep INTEGER NOT NULL, load_ms REAL, first_ttft_ms REAL, ttft_ms REAL, prefill_tps REAL,
        decode_tps REAL, token_ms_p50 REAL, token_ms_p90 REAL, token_ms_p95 REAL,
        token_ms_p99 REAL, token_ms_p999 REAL, token_ms_max REAL, deadline_miss_pct REAL,
        peak_rss_bytes INTEGER, peak_rss_anon_bytes INTEGER, peak_rss_file_bytes INTEGER,
        cpu_user_s REAL, cpu_system_s REAL, threads INTEGER, runtime TEXT,
        runtime_version TEXT, backend TEXT,
        PRIMARY KEY (run_id, device, cell_id, phase, rep))",
    "CREATE TABLE IF NOT EXISTS failures (
        run_id TEXT NOT NULL, device TEXT NOT NULL, cell_id TEXT NOT NULL,
        finished_unix_s REAL NOT NULL, reason TEXT, record_json TEXT NOT NULL,
        PRIMARY KEY (run_id, device, cell_id, finished_unix_s))",
    "CREATE TABLE IF NOT EXISTS quality (
        run_id TEXT NOT NULL, device TEXT NOT NULL, model TEXT NOT NULL, runtime TEXT NOT NULL,
        threads INTEGER, finished_unix_s REAL NOT NULL, perplexity REAL, kld_mean REAL,
        top1_agreement_pct REAL, task_accuracy_pct REAL, shadow_agreement_pct REAL,
        record_json TEXT NOT NULL,
        PRIMARY KEY (run_id, device, model, runtime, finished_unix_s))",
    "CREATE TABLE IF NOT EXISTS probes (
        run_id TEXT NOT NULL, device TEXT NOT NULL, class TEXT, probe_json TEXT NOT NULL,
        PRIMARY KEY (run_id, device))",
];

/// One row of one table, as column names and values: executed or written as SQL alike.
pub struct Row {
    pub table: &'static str,
    pub cols: Vec<(&'static str, Value)>,
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn opt_text(s: Option<impl Into<String>>) -> Value {
    s.map_or(Value::Null, |s| Value::Text(s.into()))
}

fn real(v: Option<f64>) -> Value {
    v.filter(|x| x.is_finite()).map_or(Value::Null, Value::Real)
}

fn int(v: Option<u64>) -> Value {
    v.and_then(|x| i64::try_from(x).ok())
        .map_or(Value::Null, Value::Integer)
}

fn json(v: &impl serde::Serialize) -> anyhow::Result<Value> {
    let v = crate::sysroot::to_contract_json(v).context("cannot serialize a record")?;
    Ok(Value::Text(serde_json::to_string(&v)?))
}

/// A run's identity: its matrix and when it started (a results directory holds one run), or the
/// bench run's host and start.
pub fn run_id(manifest: Option<&Manifest>, dir: &Path) -> String {
    match manifest {
        Some(Manifest {
            run_id: Some(id), ..
        }) => id.clone(),
        Some(m) => format!(
            "{}-{}",
            &m.matrix_sha256[..m.matrix_sha256.len().min(16)],
            m.started_unix_s as u64
        ),
        None => format!(
            "dir-{}",
            &crate::engine::fingerprint::sha256_hex(dir.display().to_string().as_bytes())[..16]
        ),
    }
}

/// The `runs` row of a results directory.
pub fn run_row(run_id: &str, source: &str, m: Option<&Manifest>) -> Row {
    Row {
        table: "runs",
        cols: vec![
            ("run_id", text(run_id)),
            ("source", text(source)),
            ("matrix_file", opt_text(m.map(|m| m.matrix_file.clone()))),
            (
                "matrix_sha256",
                opt_text(m.map(|m| m.matrix_sha256.clone())),
            ),
            ("farm_file", opt_text(m.and_then(|m| m.farm_file.clone()))),
            ("odai_version", opt_text(m.map(|m| m.odai_version.clone()))),
            ("started_unix_s", real(m.map(|m| m.started_unix_s))),
            ("finished_unix_s", real(m.and_then(|m| m.finished_unix_s))),
            ("interrupted", int(m.map(|m| u64::from(m.interrupted)))),
        ],
    }
}

/// A finished cell's rows: the cell, and each repetition (warm-ups apart). A failed record of a
/// retried cell (`failures.jsonl`) goes to `failures` instead.
pub fn record_rows(run_id: &str, r: &Record, retired: bool) -> anyhow::Result<Vec<Row>> {
    if retired {
        return Ok(vec![Row {
            table: "failures",
            cols: vec![
                ("run_id", text(run_id)),
                ("device", text(&r.device)),
                ("cell_id", text(&r.cell_id)),
                ("finished_unix_s", Value::Real(r.finished_unix_s)),
                ("reason", opt_text(r.reason.clone())),
                ("record_json", json(r)?),
            ],
        }]);
    }
    let c = &r.cell;
    let rep = r.report.as_ref();
    let p = rep.map(|x| &x.provenance);
    let mean = |m: &str| real(rep.and_then(|x| x.summary.get(m)).map(|s| s.mean));
    let status = match r.status {
        Status::Ok => "ok",
        Status::Failed => "failed",
        Status::Skipped => "skipped",
    };
    let mut rows = vec![Row {
        table: "cells",
        cols: vec![
            ("run_id", text(run_id)),
            ("device", text(&r.device)),
            ("cell_id", text(&r.cell_id)),
            ("status", text(status)),
            ("reason", opt_text(r.reason.clone())),
            ("model", text(c.model.label())),
            ("runtime", text(c.runtime.name())),
            ("threads", int(Some(u64::from(c.threads)))),
            ("prompt_tokens", int(Some(u64::from(c.prompt_tokens)))),
            ("gen_tokens", int(Some(u64::from(c.gen_tokens)))),
            ("cold", int(Some(u64::from(c.cold)))),
            ("sustained_s", real(c.sustained_s)),
            ("load", text(&c.load)),
            ("reps", int(Some(u64::from(c.reps)))),
            ("warmup", int(Some(u64::from(c.warmup)))),
            ("finished_unix_s", Value::Real(r.finished_unix_s)),
            (
                "host",
                opt_text(p.and_then(|p| p.device.hostname.value().cloned())),
            ),
            (
                "device_class",
                opt_text(p.and_then(|p| p.device.class.value().cloned())),
            ),
            (
                "model_sha256",
                opt_text(p.and_then(|p| p.model_sha256.clone())),
            ),
            ("runtime_ran", opt_text(p.map(|p| p.ran.runtime.clone()))),
            (
                "runtime_version",
                opt_text(p.map(|p| p.ran.runtime_version.clone())),
            ),
            ("backend", opt_text(p.map(|p| p.ran.backend.clone()))),
            ("odai_version", opt_text(p.map(|p| p.odai_version.clone()))),
            (
                "git_commit",
                opt_text(p.map(|p| p.git_commit.clone()).filter(|c| !c.is_empty())),
            ),
            ("load_ms_mean", mean("load_ms")),
            ("ttft_ms_mean", mean("ttft_ms")),
            ("prefill_tps_mean", mean("prefill_tps")),
            ("decode_tps_mean", mean("decode_tps")),
            ("pg_tps_mean", mean("pg_tps")),
            ("token_ms_p99_mean", mean("token_ms_p99")),
            (
                "peak_rss_bytes_max",
                int(rep
                    .and_then(|x| x.summary.get("peak_rss_bytes"))
                    .map(|s| s.max as u64)),
            ),
            ("record_json", json(r)?),
        ],
    }];
    if let Some(report) = rep {
        let phases = [("warmup", &report.warmup_reps), ("measured", &report.reps)];
        for (phase, reps) in phases {
            for (i, x) in reps.iter().enumerate() {
                rows.push(rep_row(run_id, r, phase, i + 1, x));
            }
        }
    }
    Ok(rows)
}

fn rep_row(run_id: &str, r: &Record, phase: &str, n: usize, x: &RepResult) -> Row {
    Row {
        table: "reps",
        cols: vec![
            ("run_id", text(run_id)),
            ("device", text(&r.device)),
            ("cell_id", text(&r.cell_id)),
            ("phase", text(phase)),
            ("rep", int(Some(n as u64))),
            ("load_ms", real(Some(x.load_ms))),
            ("first_ttft_ms", real(x.first_ttft_ms)),
            ("ttft_ms", real(x.ttft_ms)),
            ("prefill_tps", real(x.prefill_tps)),
            ("decode_tps", real(x.decode_tps)),
            ("token_ms_p50", real(x.token_ms_p50)),
            ("token_ms_p90", real(x.token_ms_p90)),
            ("token_ms_p95", real(x.token_ms_p95)),
            ("token_ms_p99", real(x.token_ms_p99)),
            ("token_ms_p999", real(x.token_ms_p999)),
            ("token_ms_max", real(x.token_ms_max)),
            ("deadline_miss_pct", real(x.deadline_miss_pct)),
            ("peak_rss_bytes", int(x.peak_rss_bytes)),
            ("peak_rss_anon_bytes", int(x.peak_rss_anon_bytes)),
            ("peak_rss_file_bytes", int(x.peak_rss_file_bytes)),
            ("cpu_user_s", real(x.cpu_user_s)),
            ("cpu_system_s", real(x.cpu_system_s)),
            ("threads", int(Some(u64::from(x.threads)))),
            ("runtime", text(&x.ran.runtime)),
            ("runtime_version", text(&x.ran.runtime_version)),
            ("backend", text(&x.ran.backend)),
        ],
    }
}

/// A quality record's row.
pub fn quality_row(run_id: &str, q: &QualityRecord) -> anyhow::Result<Row> {
    Ok(Row {
        table: "quality",
        cols: vec![
            ("run_id", text(run_id)),
            ("device", text(&q.device)),
            ("model", text(&q.model)),
            ("runtime", text(&q.runtime.runtime)),
            ("threads", int(Some(u64::from(q.threads)))),
            ("finished_unix_s", Value::Real(q.finished_unix_s)),
            ("perplexity", real(q.perplexity.as_ref().map(|p| p.ppl))),
            ("kld_mean", real(q.kld.as_ref().map(|k| k.summary.kld_mean))),
            (
                "top1_agreement_pct",
                real(q.kld.as_ref().map(|k| k.summary.top1_agreement_pct)),
            ),
            (
                "task_accuracy_pct",
                real(q.tasks.as_ref().map(|t| t.accuracy_pct)),
            ),
            (
                "shadow_agreement_pct",
                real(q.shadow.as_ref().and_then(|s| s.agreement_pct)),
            ),
            ("record_json", json(q)?),
        ],
    })
}

/// `odai bench`'s cells (each with when it finished) as records of one run on this host
/// (`-o sql`).
pub fn bench_records(done: &[(&crate::matrix::spec::Cell, &Report, f64)]) -> Vec<Record> {
    done.iter()
        .map(|(c, r, finished_unix_s)| Record {
            device: crate::matrix::runner::LOCAL.into(),
            cell_id: c.id.clone(),
            cell: (*c).clone(),
            status: Status::Ok,
            reason: None,
            report: Some((*r).clone()),
            tensor: None,
            finished_unix_s: *finished_unix_s,
        })
        .collect()
}

/// A SQL literal (SQLite's syntax: '' doubles a quote; REAL written to round-trip).
fn literal(v: &Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => format!("{f:?}"),
        Value::Text(s) => format!("'{}'", s.replace('\'', "''")),
        Value::Blob(b) => format!(
            "X'{}'",
            b.iter().map(|x| format!("{x:02X}")).collect::<String>()
        ),
    }
}

/// `rows` as a SQL script SQLite runs as it is (`sqlite3 odai.sqlite < bench.sql`): the tables
/// created if missing, then each row inserted or replaced, in one transaction.
pub fn sql_script(rows: &[Row]) -> String {
    let mut s = String::from("BEGIN;\n");
    for t in TABLES {
        s.push_str(t);
        s.push_str(";\n");
    }
    s.push_str(&format!(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');\n"
    ));
    for r in rows {
        let names: Vec<&str> = r.cols.iter().map(|(n, _)| *n).collect();
        let values: Vec<String> = r.cols.iter().map(|(_, v)| literal(v)).collect();
        s.push_str(&format!(
            "INSERT OR REPLACE INTO {} ({}) VALUES ({});\n",
            r.table,
            names.join(", "),
            values.join(", ")
        ));
    }
    s.push_str("COMMIT;\n");
    s
}

/// An open results database.
pub struct Db {
    conn: rusqlite::Connection,
    pub path: PathBuf,
}

/// What an import added.
#[derive(Debug, Default, serde::Serialize)]
pub struct Imported {
    pub run_id: String,
    pub cells: usize,
    pub failures: usize,
    pub quality: usize,
    pub probes: usize,
    /// What was left out and why (lines of results.jsonl that are no record, a missing probe):
    /// the command prints them.
    pub warnings: Vec<String>,
}

impl Db {
    /// Opens (creating) the database at `path` and its tables; a database written by a newer
    /// odai is refused.
    pub fn open(path: &Path) -> anyhow::Result<Db> {
        let bad = |problem: String| crate::error::Error::ConfigFile {
            file: path.to_owned(),
            problem,
        };
        let conn = rusqlite::Connection::open(path)
            .map_err(|e| bad(format!("cannot open the database: {e}")))?;
        // Several writers (a matrix run, an import) wait for each other instead of failing.
        conn.busy_timeout(WAIT)?;
        // Write-ahead logging: readers (a dashboard, `report --db`) never block a run's writes,
        // and a crash mid-write leaves the last committed state (sqlite.org/wal.html). A file
        // system without shared memory keeps the rollback journal: that mode is reported, not
        // an error.
        let _ = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0));
        for t in TABLES {
            conn.execute(t, [])
                .map_err(|e| bad(format!("not an odai results database: {e}")))?;
        }
        let found: Option<String> = conn
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .ok();
        match found.as_deref().map(str::parse::<u32>) {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(Ok(v)) if v <= SCHEMA_VERSION => {}
            Some(_) => {
                return Err(bad(format!(
                    "schema_version {} is newer than this odai reads ({SCHEMA_VERSION}): use a \
                     newer odai",
                    found.unwrap_or_default()
                ))
                .into());
            }
        }
        Ok(Db {
            conn,
            path: path.to_owned(),
        })
    }

    /// Inserts (or replaces: the keys make it idempotent) `rows` in one transaction.
    pub fn write(&mut self, rows: &[Row]) -> anyhow::Result<()> {
        let tx = self.conn.transaction()?;
        for r in rows {
            let names: Vec<&str> = r.cols.iter().map(|(n, _)| *n).collect();
            let marks: Vec<String> = (1..=names.len()).map(|i| format!("?{i}")).collect();
            let sql = format!(
                "INSERT OR REPLACE INTO {} ({}) VALUES ({})",
                r.table,
                names.join(", "),
                marks.join(", ")
            );
            let values: Vec<&Value> = r.cols.iter().map(|(_, v)| v).collect();
            tx.execute(&sql, rusqlite::params_from_iter(values))
                .with_context(|| format!("cannot write to {}", self.path.display()))?;
        }
        tx.commit()
            .with_context(|| format!("cannot write to {} (disk full?)", self.path.display()))
    }

    /// Imports a results directory: its run, cells with their repetitions, retired failures,
    /// quality records and probes. Importing it again replaces the same rows.
    pub fn import_dir(&mut self, dir: &Path) -> anyhow::Result<Imported> {
        let set = crate::report::measurements::ResultsSet::load(dir)?;
        let id = run_id(set.manifest.as_ref(), dir);
        let mut rows = vec![run_row(
            &id,
            &dir.display().to_string(),
            set.manifest.as_ref(),
        )];
        let mut n = Imported {
            run_id: id.clone(),
            warnings: set.warnings.clone(),
            ..Default::default()
        };
        for r in &set.records {
            rows.extend(record_rows(&id, r, false)?);
            n.cells += 1;
        }
        for r in crate::matrix::results::Store::records_in(&dir.join("failures.jsonl")) {
            rows.extend(record_rows(&id, &r, true)?);
            n.failures += 1;
        }
        for q in &set.quality {
            rows.push(quality_row(&id, q)?);
            n.quality += 1;
        }
        for (device, probe) in &set.probes {
            rows.push(Row {
                table: "probes",
                cols: vec![
                    ("run_id", text(&id)),
                    ("device", text(device)),
                    ("class", opt_text(probe.class.value().map(|c| c.id.clone()))),
                    ("probe_json", json(probe)?),
                ],
            });
            n.probes += 1;
        }
        self.write(&rows)?;
        Ok(n)
    }

    /// The newest record of each device × cell finished at or after `since` (Unix seconds), the
    /// quality records and each device's newest probe: what `odai report --db` scores.
    pub fn results_set(
        &self,
        since: Option<f64>,
    ) -> anyhow::Result<crate::report::measurements::ResultsSet> {
        let since = since.unwrap_or(f64::NEG_INFINITY);
        let mut warnings = Vec::new();
        let read = |sql: &str| -> anyhow::Result<Vec<String>> {
            let mut st = self.conn.prepare(sql)?;
            let rows = st.query_map([since], |r| r.get::<_, String>(0))?;
            Ok(rows.collect::<Result<_, _>>()?)
        };
        let mut records = Vec::new();
        // The newest of each device × cell (a cell measured again in a later run replaces it).
        for text in read(
            "SELECT record_json FROM cells c WHERE finished_unix_s >= ?1 AND finished_unix_s = \
             (SELECT MAX(finished_unix_s) FROM cells d WHERE d.device = c.device AND \
             d.cell_id = c.cell_id AND d.finished_unix_s >= ?1) ORDER BY finished_unix_s",
        )? {
            match serde_json::from_str(&text).and_then(crate::sysroot::from_contract_json::<Record>)
            {
                Ok(r) => records.push(r),
                Err(e) => warnings.push(format!("an unreadable cell row left out: {e}")),
            }
        }
        let mut quality = Vec::new();
        for text in read(
            "SELECT record_json FROM quality WHERE finished_unix_s >= ?1 ORDER BY finished_unix_s",
        )? {
            match serde_json::from_str::<QualityRecord>(&text) {
                Ok(q) => quality.push(q),
                Err(e) => warnings.push(format!("an unreadable quality row left out: {e}")),
            }
        }
        let mut probes = std::collections::BTreeMap::new();
        let mut st = self
            .conn
            .prepare("SELECT device, probe_json FROM probes ORDER BY rowid")?;
        let rows = st.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        for row in rows {
            let (device, text) = row?;
            if let Some(p) = serde_json::from_str(&text)
                .ok()
                .and_then(|v| crate::sysroot::from_contract_json::<crate::probe::Probe>(v).ok())
            {
                probes.insert(device, p);
            }
        }
        if records.is_empty() {
            return Err(crate::error::Error::ConfigFile {
                file: self.path.clone(),
                problem: "holds no results in that window (odai db import DIR adds a results \
                          directory; --since picks the window)"
                    .into(),
            }
            .into());
        }
        Ok(crate::report::measurements::ResultsSet {
            dir: self.path.clone(),
            manifest: None,
            records,
            probes,
            quality,
            warnings,
        })
    }
}

/// How long a write waits for another writer (a run, an import, a dashboard's long read in
/// rollback mode) to let go of the database.
const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long a run that the database already refused waits per record: a database locked for
/// an hour would otherwise cost every cell the whole [`WAIT`]. The records it misses are
/// written at the next write it takes, or at the run's end with the whole wait.
const BEHIND_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A matrix run writing into a database as each result lands (`odai matrix run --db`).
pub struct RunWriter {
    db: std::sync::Mutex<Db>,
    run_id: String,
    /// Records of this run the database refused (locked past its wait, away) and does not
    /// hold yet: results.jsonl has them, and they are written again from it.
    missed: std::sync::atomic::AtomicUsize,
}

/// What writing one record came to.
#[derive(Debug, PartialEq)]
pub enum Took {
    Written,
    /// Written, and with it every record of the directory: the database, behind since a write
    /// it refused, holds all of them again.
    CaughtUp(usize),
}

impl RunWriter {
    /// Opens the database and records the run (again, on `--resume`: the same run id).
    pub fn open(path: &Path, out: &Path, manifest: &Manifest) -> anyhow::Result<RunWriter> {
        let mut db = Db::open(path)?;
        let run_id = run_id(Some(manifest), out);
        db.write(&[run_row(&run_id, &out.display().to_string(), Some(manifest))])?;
        Ok(RunWriter {
            db: std::sync::Mutex::new(db),
            run_id,
            missed: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    /// Records this run's database refused and does not hold yet.
    pub fn missed(&self) -> usize {
        self.missed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes every record of a results directory (`--resume`): a cell the database missed
    /// while it was locked or away lands now. Idempotent: the keys replace what is there.
    pub fn catch_up(&self, records: &[Record]) -> anyhow::Result<usize> {
        let mut rows = Vec::new();
        for r in records {
            rows.extend(record_rows(&self.run_id, r, false)?);
        }
        self.db
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .write(&rows)?;
        Ok(records.len())
    }

    /// Writes one finished cell's rows; when the database had refused earlier ones, then every
    /// record `all` reads from the directory too. A refusal counts in [`RunWriter::missed`].
    pub fn record(&self, r: &Record, all: &dyn Fn() -> Vec<Record>) -> anyhow::Result<Took> {
        use std::sync::atomic::Ordering::SeqCst;
        let rows = record_rows(&self.run_id, r, false)?;
        let mut db = self.db.lock().unwrap_or_else(|p| p.into_inner());
        let behind = self.missed() > 0;
        db.conn
            .busy_timeout(if behind { BEHIND_WAIT } else { WAIT })?;
        let wrote = db.write(&rows);
        db.conn.busy_timeout(WAIT)?;
        if let Err(e) = wrote {
            self.missed.fetch_add(1, SeqCst);
            return Err(e);
        }
        if !behind {
            return Ok(Took::Written);
        }
        drop(db);
        // A catch-up it refuses leaves it behind, to be tried again at the next record.
        Ok(match self.catch_up(&all()) {
            Ok(n) => {
                self.missed.store(0, SeqCst);
                Took::CaughtUp(n)
            }
            Err(_) => Took::Written,
        })
    }

    /// At the run's end: every record `all` reads from the directory, with the whole wait,
    /// when the database refused some of this run's; `None` when it missed none.
    pub fn finish(&self, all: &dyn Fn() -> Vec<Record>) -> anyhow::Result<Option<usize>> {
        if self.missed() == 0 {
            return Ok(None);
        }
        let n = self.catch_up(&all())?;
        self.missed.store(0, std::sync::atomic::Ordering::SeqCst);
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_two_runs_of_one_matrix_in_one_second_are_two_runs() {
        // Found in review: the run id was the matrix hash and the start second, so two
        // `matrix run --db same.db` started in one second became one run with their rows mixed.
        let manifest = |id: Option<String>| Manifest {
            run_id: id,
            odai_version: "0".into(),
            matrix_file: "m.toml".into(),
            matrix_sha256: "ab".repeat(32),
            farm_file: None,
            devices: vec!["local".into()],
            started_unix_s: 1_700_000_000.0,
            finished_unix_s: None,
            interrupted: false,
        };
        let (a, b) = (
            crate::matrix::results::new_run_id(&"ab".repeat(32)),
            crate::matrix::results::new_run_id(&"ab".repeat(32)),
        );
        assert_ne!(a, b);
        let dir = Path::new("/r");
        assert_eq!(run_id(Some(&manifest(Some(a.clone()))), dir), a);
        assert_ne!(
            run_id(Some(&manifest(Some(a))), dir),
            run_id(Some(&manifest(Some(b))), dir)
        );
        // A directory an older odai wrote keeps the id it was imported under.
        assert_eq!(
            run_id(Some(&manifest(None)), dir),
            format!("{}-1700000000", "ab".repeat(8))
        );
    }

    #[test]
    fn literals_quote_as_sqlite_reads_them() {
        assert_eq!(literal(&Value::Text("it's".into())), "'it''s'");
        assert_eq!(literal(&Value::Null), "NULL");
        assert_eq!(literal(&Value::Real(0.1)), "0.1");
        assert_eq!(literal(&Value::Integer(-3)), "-3");
    }

    #[test]
    fn a_script_runs_in_sqlite_and_replaying_it_changes_nothing() {
        let rows = vec![Row {
            table: "runs",
            cols: vec![("run_id", text("r1")), ("source", text("odai bench 'x'"))],
        }];
        let script = sql_script(&rows);
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&script).unwrap();
        conn.execute_batch(&script).unwrap();
        let (n, source): (i64, String) = conn
            .query_row("SELECT COUNT(*), source FROM runs", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, source.as_str()), (1, "odai bench 'x'"));
    }

    #[test]
    fn a_database_of_a_newer_odai_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("odai.sqlite");
        drop(Db::open(&path).unwrap());
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        drop(conn);
        let e = Db::open(&path).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "{}: schema_version 99 is newer than this odai reads (1): use a newer odai",
                path.display()
            )
        );
    }
}

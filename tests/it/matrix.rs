//! `odai matrix plan`: the shipped matrices parse, and a plan tells what runs on a device and
//! what is skipped, before anything runs.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;

use common::{cache, fixture, odai, records};
use serde_json::Value;

fn plan(args: &[&str], root: Option<&std::path::Path>) -> (i32, Value, String) {
    let mut cmd = odai();
    cmd.args(["matrix", "plan", "--format", "json"]).args(args);
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    let out = cmd.output().unwrap();
    // Without --farm the plan covers this device alone: devices[0].
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    let v = v["devices"][0].clone();
    (
        out.status.code().unwrap_or(-1),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_matrices_plan_on_a_captured_device() {
    let root = fixture("container-cgroup-v2");
    for (file, cells) in [
        ("matrices/quick.toml", 6),
        ("matrices/sustained.toml", 2),
        // Per model 3 threads x 2 cold x 2 loads = 12; the exclusions leave 2 and 8 threads warm
        // and unloaded only, and all four combinations at 4 threads: 6. Seven models: 42.
        ("matrices/readiness.toml", 42),
    ] {
        let path = common::repo().join(file);
        let (code, v, err) = plan(&[path.to_str().unwrap()], Some(&root));
        assert_eq!(code, 0, "{file}: {err}");
        assert_eq!(v["cells"].as_array().unwrap().len(), cells, "{file}");
    }
}

#[test]
fn a_plan_says_what_does_not_fit_and_what_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:smollm2-135m:q8_0\", \"synthetic:llama-3.1-8b:q4_0\", \"missing.gguf\"]\n\
         threads = [1]\nprompt_tokens = [16]\ngen_tokens = [8]\nreps = 1\n",
    )
    .unwrap();
    // The pod's cgroup leaves 2.8 GiB of headroom.
    let (code, v, _) = plan(
        &[m.to_str().unwrap()],
        Some(&fixture("container-cgroup-v2")),
    );
    assert_eq!(code, 0);
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells[0]["skip"], Value::Null);
    // The estimate is the runtime's that would hold it (odai's engine where its kernels run,
    // 4.5 GiB; candle elsewhere, 6.2 GiB): tests/it/memory.rs holds it to the measured peak.
    let skip = cells[1]["skip"].as_str().unwrap();
    assert!(
        skip.starts_with("does not fit: needs ") && skip.ends_with(" GiB, headroom 2.8 GiB"),
        "{skip}"
    );
    assert_eq!(cells[2]["skip"], "missing.gguf: no such file");
    assert_eq!(
        (v["runs"].as_u64(), v["skipped"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(
        v["min_seconds_unavailable"],
        "not measured: --root points at a captured device tree"
    );
    // On this machine the bandwidth is measured, so the lower bound is a number.
    let (code, v, _) = plan(&[m.to_str().unwrap()], None);
    assert_eq!(code, 0);
    assert!(v["min_seconds"].as_f64().unwrap() >= 0.0);
    assert!(v["bandwidth_gb_s"].as_f64().unwrap() > 0.0);
}

#[test]
fn a_malformed_matrix_names_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("bad.toml");
    fs::write(&m, "[matrix]\nmodels = [\"synthetic:smollm2-135m:q8_0\"]\nthreads = [1]\nprompt_tokens = [16]\ngen_tokens = [8]\nreps = 1\nrepz = 2\n").unwrap();
    odai()
        .args(["matrix", "plan"])
        .arg(&m)
        .assert()
        .code(3)
        .stderr(format!(
            "odai: error: {}:7:1: unknown field `repz`, expected one of `models`, `threads`, \
             `prompt_tokens`, `gen_tokens`, `reps`, `warmup`, `cold`, `sustained`, `load`, `runtimes`, \
             `gpu_layers`, `depth`, `kv_cache`, `batch`, `ubatch`, `mmap`\n",
            m.display()
        ));
}

const TINY: &str = "[matrix]\nmodels = [\"synthetic:smollm2-135m:q8_0\", \"synthetic:llama-3.1-8b:q4_0\"]\n\
                    threads = [1, 2]\nprompt_tokens = [8]\ngen_tokens = [4]\nreps = 1\nwarmup = 0\n";

#[cfg(feature = "db")]
#[test]
fn regression_resume_catches_the_database_up_with_the_directory() {
    // Found in review: a database that missed a cell (locked past its wait, which also aborted
    // the whole matrix) kept 11 of 12 cells for good after --resume; its journal was a rollback
    // journal. Now a write the database refuses costs a warning, --resume writes every record
    // the directory has, and the database logs ahead (WAL).
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(&m, TINY).unwrap();
    let out = dir.path().join("out");
    let db = dir.path().join("late.sqlite");
    let run = |extra: &[&std::ffi::OsStr]| {
        odai()
            .env("ODAI_CACHE_DIR", cache())
            .args(["matrix", "run"])
            .arg(&m)
            .arg("--out")
            .arg(&out)
            .arg("--root")
            .arg(fixture("container-cgroup-v2"))
            .args(extra)
            .output()
            .unwrap()
    };
    // Every cell recorded, none in a database yet.
    let first = run(&[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let resumed = run(&["--resume".as_ref(), "--db".as_ref(), db.as_os_str()]);
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let conn = rusqlite::Connection::open(&db).unwrap();
    let cells: i64 = conn
        .query_row("SELECT COUNT(*) FROM cells", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cells, 4, "the database has every record of the directory");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[cfg(feature = "db")]
#[test]
fn regression_a_database_locked_past_its_wait_mid_run_ends_with_every_record() {
    // Found in review: a database locked for more than its 30 s wait aborted the whole matrix.
    // Then it cost a warning and the database kept 5 of 6 cells until a --resume. Now the run
    // goes on, says so once, and writes what the database missed as soon as it takes writes
    // again (or at the end, with the whole wait).
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [1]\n\
         prompt_tokens = [8, 12, 16, 20, 24, 28]\ngen_tokens = [4]\nreps = 1\nwarmup = 0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let db = dir.path().join("locked.sqlite");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("odai"))
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(&m)
        .arg("--out")
        .arg(&out)
        .arg("--db")
        .arg(&db)
        .arg("--root")
        .arg(fixture("container-cgroup-v2"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Once the run has recorded itself in the database (before its first cell), another
    // writer holds the database for 33 s: past the run's 30 s wait.
    let conn = rusqlite::Connection::open(&db).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .unwrap();
    let opened = std::time::Instant::now();
    while conn
        .query_row("SELECT COUNT(*) FROM runs", [], |r| r.get::<_, i64>(0))
        .unwrap_or(0)
        == 0
    {
        assert!(
            opened.elapsed().as_secs() < 120,
            "the run never opened the database"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let before: i64 = conn
        .query_row("SELECT COUNT(*) FROM cells", [], |r| r.get(0))
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(33));
    conn.execute_batch("COMMIT").unwrap();
    let run = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{err}");
    assert!(
        before < 6,
        "every cell was written before the lock: nothing was tested"
    );
    assert_eq!(
        err.matches("odai: warning: the database did not take ")
            .count(),
        1,
        "one warning, however many records it missed: {err}"
    );
    let cells: i64 = conn
        .query_row("SELECT COUNT(*) FROM cells", [], |r| r.get(0))
        .unwrap();
    assert_eq!(cells, 6, "the database has every record of the run: {err}");
}

#[test]
fn a_run_records_every_cell_and_resume_never_repeats_one() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(&m, TINY).unwrap();
    let out = dir.path().join("out");
    let root = fixture("container-cgroup-v2");
    let run = |resume: bool| {
        let mut c = odai();
        c.env("ODAI_CACHE_DIR", cache())
            .args(["matrix", "run"])
            .arg(&m)
            .arg("--out")
            .arg(&out)
            .arg("--root")
            .arg(&root);
        if resume {
            c.arg("--resume");
        }
        // Each result also goes into the database as it lands (where odai has it built in).
        if cfg!(feature = "db") {
            c.arg("--db").arg(dir.path().join("odai.sqlite"));
        }
        c.output().unwrap()
    };
    #[cfg(feature = "db")]
    let db_cells = || -> i64 {
        rusqlite::Connection::open(dir.path().join("odai.sqlite"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM cells", [], |r| r.get(0))
            .unwrap()
    };
    let first = run(false);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 4);
    #[cfg(feature = "db")]
    assert_eq!(db_cells(), 4);
    let ok: Vec<&Value> = recs.iter().filter(|r| r["status"] == "ok").collect();
    assert_eq!(ok.len(), 2);
    assert!(
        ok[0]["report"]["summary"]["decode_tps"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    // The 8B shape does not fit the pod's 2.8 GiB: recorded as skipped, with the reason.
    let skipped: Vec<&Value> = recs.iter().filter(|r| r["status"] == "skipped").collect();
    assert_eq!(skipped.len(), 2);
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("does not fit: needs ") && reason.ends_with(" GiB, headroom 2.8 GiB"),
        "{reason}"
    );
    // Records follow the JSON contract: unavailable readings as null + `<key>_unavailable`,
    // never the internal marker (the fixture tree has no energy meter).
    let text = fs::read_to_string(out.join("results.jsonl")).unwrap();
    assert!(!text.contains("$unavailable"), "{text}");
    assert!(ok[0]["report"]["energy_source"].is_null());
    assert!(ok[0]["report"]["energy_source_unavailable"].is_string());
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["matrix_sha256"].as_str().unwrap().len(), 64);
    assert!(manifest["finished_unix_s"].is_number());
    let probe: Value =
        serde_json::from_slice(&fs::read(out.join("probe-local.json")).unwrap()).unwrap();
    assert_eq!(probe["device"]["hostname"], "infer-7d9f8-abcde");

    let again = run(false);
    assert_eq!(again.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!(
            "odai: error: {}: already holds results: pass --resume to continue that run, or choose another --out\n",
            out.display()
        )
    );
    let resumed = run(true);
    assert!(resumed.status.success());
    assert!(
        String::from_utf8_lossy(&resumed.stdout)
            .contains("0 ok, 0 failed, 0 skipped, 4 already recorded")
    );
    assert_eq!(records(&out).len(), 4, "resume duplicated a record");
    #[cfg(feature = "db")]
    assert_eq!(db_cells(), 4, "resume duplicated a database row");
}

#[test]
fn killing_the_coordinator_loses_nothing_and_resume_finishes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:smollm2-135m:q8_0\"]\nthreads = [1, 2]\n\
         prompt_tokens = [8, 16, 24]\ngen_tokens = [4]\nreps = 1\nwarmup = 0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let bin = assert_cmd::cargo::cargo_bin("odai");
    let mut child = std::process::Command::new(&bin)
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(&m)
        .arg("--out")
        .arg(&out)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the first cell is on disk.
    let started = std::time::Instant::now();
    while records(&out).is_empty() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let before = records(&out).len();
    assert!(before >= 1);
    // A crash can also tear the last line; resume must cope with that too.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(out.join("results.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"device\":\"local\",\"cell_id\":\"torn").unwrap();
    drop(f);
    let resumed = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(&m)
        .arg("--out")
        .arg(&out)
        .arg("--resume")
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let recs = records(&out);
    let mut ids: Vec<&str> = recs
        .iter()
        .map(|r| r["cell_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6, "every cell exactly once");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "a cell was recorded twice");
    assert!(recs.iter().all(|r| r["status"] == "ok"));
}

/// `odai matrix run M --out OUT` on the pod's captured tree.
fn run_on_pod(m: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    odai()
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(m)
        .arg("--out")
        .arg(out)
        .arg("--root")
        .arg(fixture("container-cgroup-v2"))
        .output()
        .unwrap()
}

#[test]
fn regression_two_runs_cannot_share_one_out() {
    // Found in review: two `matrix run`s could write into one --out at once. The directory's
    // lock is held here, as a running odai holds it; a second run must refuse, touching nothing.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(&m, TINY).unwrap();
    let out = dir.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let lock = fs::File::create(out.join(".odai-lock")).unwrap();
    lock.lock().unwrap();
    std::io::Write::write_all(&mut &lock, b"4242\n").unwrap();
    let second = run_on_pod(&m, &out);
    assert_eq!(second.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&second.stderr),
        format!(
            "odai: error: {}: is in use by another odai run (pid 4242): wait for it to finish, or choose another --out\n",
            out.display()
        )
    );
    assert!(!out.join("results.jsonl").exists());
    assert!(!out.join("manifest.json").exists());
    // Once the holder is gone, the run goes ahead.
    drop(lock);
    let third = run_on_pod(&m, &out);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(records(&out).len(), 4);
}

#[test]
fn auto_threads_run_each_devices_default_and_record_what_ran() {
    // threads = ["auto"]: the pod's fixture allows CPUs 0-3 (4 physical cores) under a 2-CPU
    // quota, so its default is 2 threads; that is what runs and what the results say.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [\"auto\"]\n\
         prompt_tokens = [8]\ngen_tokens = [4]\nreps = 1\nwarmup = 0\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = run_on_pod(&m, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["cell"]["threads"], 0, "the cell says auto");
    assert_eq!(recs[0]["report"]["provenance"]["threads"], 2, "what ran");
    let report = dir.path().join("report");
    let csv = odai()
        .args(["report"])
        .arg(&out)
        .arg("--out")
        .arg(&report)
        .args(["--format", "csv"])
        .output()
        .unwrap();
    assert!(csv.status.success());
    let text = fs::read_to_string(report.join("measurements.csv")).unwrap();
    let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "threads").unwrap();
    let row: Vec<&str> = text.lines().nth(1).unwrap().split(',').collect();
    assert_eq!(row[col], "2");
}

#[test]
fn regression_a_matrix_naming_a_missing_model_exits_3_before_anything_runs() {
    // Found in review: a matrix naming a model file that is not there ran, recorded its cells
    // "skipped", and exited 0 ("2 skipped"): a typo in CI passed.
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("m.toml");
    fs::write(
        &m,
        "[matrix]\nmodels = [\"synthetic:toy:q8_0\", \"no-such-model.gguf\"]\nthreads = [1]\n\
         prompt_tokens = [4]\ngen_tokens = [2]\nreps = 1\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = odai()
        .current_dir(dir.path())
        .args(["matrix", "run"])
        .arg(&m)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "odai: error: {}: models: no-such-model.gguf: no such file (fix the path: model paths are read from the directory odai runs in; \
             nothing was run)\n",
            m.display()
        )
    );
    assert!(!out_dir.join("results.jsonl").exists(), "a cell ran");
    // A file that is not a model is refused the same way.
    fs::write(dir.path().join("no-such-model.gguf"), b"not a gguf").unwrap();
    let out = odai()
        .current_dir(dir.path())
        .args(["matrix", "run"])
        .arg(&m)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "odai: error: {}: models: no-such-model.gguf: ",
            m.display()
        )),
        "{err}"
    );
}

//! `odai report` and `odai compare` on a fixed results directory (three device classes, a model
//! that does not fit one, cold and sustained cells): golden CSV and Markdown, the HTML report in
//! a real headless Chromium, release gates, broken inputs, and significance in `compare`.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{copy_tree, odai};
use serde_json::Value;

fn results() -> PathBuf {
    common::fixture("results/three-classes")
}

fn report(dir: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    odai()
        .arg("report")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

fn text(out: &Path, file: &str) -> String {
    fs::read_to_string(out.join(file)).unwrap()
}

/// The fixture's results imported into a database report the same verdicts as the directory;
/// importing again changes nothing, and --since picks the window.
#[cfg(feature = "db")]
#[test]
fn a_database_of_imported_runs_reports_as_the_directory_does() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("odai.sqlite");
    let import = || {
        let out = odai()
            .args(["db", "import"])
            .arg(results())
            .arg("--db")
            .arg(&db)
            .output()
            .unwrap();
        common::ok(&out)
    };
    let said = import();
    assert!(
        said.contains(": 12 cells, 0 retired failures, 0 quality records, 3 probes\n"),
        "{said}"
    );
    assert_eq!(import(), said, "a second import is the same run");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let count = |sql: &str| -> i64 { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(count("SELECT COUNT(*) FROM runs"), 1);
    assert_eq!(count("SELECT COUNT(*) FROM cells"), 12);
    assert_eq!(count("SELECT COUNT(*) FROM probes"), 3);
    assert!(count("SELECT COUNT(*) FROM reps WHERE phase = 'measured'") > 0);

    let verdicts = |out: &std::process::Output| -> Vec<String> {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(str::to_owned)
            .collect()
    };
    let from_dir = report(&results(), &dir.path().join("a"), &["--format", "json"]);
    let from_db = odai()
        .args(["report", "--db"])
        .arg(&db)
        .args(["--since", "2020-01-01", "--format", "json", "--out"])
        .arg(dir.path().join("b"))
        .output()
        .unwrap();
    assert_eq!(verdicts(&from_db), verdicts(&from_dir));
    assert!(!verdicts(&from_db).is_empty());
    let late = odai()
        .args(["report", "--db"])
        .arg(&db)
        .args(["--since", "2100-01-01", "--out"])
        .arg(dir.path().join("c"))
        .output()
        .unwrap();
    assert_eq!(late.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&late.stderr),
        format!(
            "odai: error: {}: holds no results in that window (odai db import DIR adds a results \
             directory; --since picks the window)\n",
            db.display()
        )
    );
}

#[test]
fn golden_csv_and_markdown() {
    let out = tempfile::tempdir().unwrap();
    let run = report(&results(), out.path(), &[]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The column order is the schema (docs/measurements-csv.md, docs/scorecard-csv.md).
    let m = text(out.path(), "measurements.csv");
    assert_eq!(
        m.lines().next().unwrap(),
        "device,class,cell_id,model,quant,runtime,runtime_version,backend,threads,prompt_tokens,gen_tokens,cold,sustained_s,load,\
         reps,status,reason,load_ms_mean,cold_start_ms,ttft_ms_mean,ttft_ms_p95,prefill_tps_mean,\
         decode_tps_mean,decode_tps_p10,token_ms_p50,token_ms_p90,token_ms_p99,peak_rss_mib,\
         headroom_mib,memory_headroom_frac,roofline_pct,mean_power_w,energy_j_per_token,\
         battery_drain_pct_per_hour,sustained_decode_tps,sustained_stability,failure_rate_pct,\
         inference_ms_p50,inference_ms_p99,inferences_per_s,frame_deadline_miss_pct,\
         frame_latency_ms_p99,cpu_duty_pct,energy_j_per_inference,odai_version,\
         model_sha256,gpu_layers,gpu_layers_on_gpu,offload,ttft_ms_samples,prefill_tps_samples,\
         decode_tps_samples,token_ms_p99_samples,load_ms_samples,peak_rss_mib_samples,\
         kv_cache,depth,n_batch,n_ubatch,use_mmap,generated_by_host,generated_utc,git_commit"
    );
    let s = text(out.path(), "scorecard.csv");
    assert_eq!(
        s.lines().next().unwrap(),
        "workload,class,class_label,fleet_share,model,criterion,measured,unit,op,threshold,weight,\
         result,reason,score_pct,coverage_pct,verdict,warnings,generated_by_host,generated_utc,git_commit"
    );
    // The provenance columns (host, time, commit) differ from run to run: the snapshots hold
    // the rest of each row.
    let without_provenance = |csv: &str| -> String {
        csv.lines()
            .map(|l| {
                let fields: Vec<&str> = l.rsplitn(4, ',').collect();
                assert_eq!(fields.len(), 4, "{l}");
                format!("{}\n", fields[3])
            })
            .collect()
    };
    let (m, s) = (without_provenance(&m), without_provenance(&s));
    insta::assert_snapshot!("measurements_csv", m);
    insta::assert_snapshot!("scorecard_csv", s);
    let md = text(out.path(), "report.md").replace(&results().display().to_string(), "[results]");
    // Where and when the report was made is the one line that differs from run to run.
    let made = md.lines().nth(6).unwrap().to_owned();
    assert!(
        made.starts_with("_generated on ") && made.contains(" by odai "),
        "{md}"
    );
    let md = md.replace(
        &made,
        "_generated on [host] at [time] by odai [version] (commit [commit])._",
    );
    insta::assert_snapshot!("report_md", md);
    let stdout = String::from_utf8(run.stdout)
        .unwrap()
        .replace(&results().display().to_string(), "[results]")
        .replace(&out.path().display().to_string(), "[out]");
    insta::assert_snapshot!("report_stdout", stdout);
    // JSON: everything, scorecards with their verdicts and reasons.
    let j: Value = serde_json::from_str(&text(out.path(), "report.json")).unwrap();
    assert_eq!(j["schema_version"], 1);
    assert_eq!(j["workload"]["id"], "chat-assistant");
    let cards = j["scorecards"].as_array().unwrap();
    let phone_3b = cards
        .iter()
        .find(|c| c["class"] == "midrange-phone" && c["model"] == "synthetic:llama-3.2-3b:q4_0")
        .unwrap();
    assert_eq!(phone_3b["verdict"], "cloud-only");
    assert_eq!(
        phone_3b["reasons"][0],
        "fails memory fit on Midrange phone: phone: does not fit: needs 3.2 GiB, headroom 3.0 GiB"
    );
}

#[test]
fn nothing_passes_silently() {
    let out = tempfile::tempdir().unwrap();
    assert!(
        report(&results(), out.path(), &["--format", "csv"])
            .status
            .success()
    );
    let s = text(out.path(), "scorecard.csv");
    let mut rd = csv::Reader::from_reader(s.as_bytes());
    for row in rd.records() {
        let row = row.unwrap();
        let (measured, result, reason) = (&row[6], &row[11], &row[12]);
        match result {
            "PASS" | "FAIL" if measured.is_empty() => {
                assert!(reason.contains("does not fit"), "{row:?}")
            }
            "PASS" | "FAIL" => {}
            "N/A" => assert!(!reason.is_empty(), "an N/A says why: {row:?}"),
            "does not apply" => assert!(reason.starts_with("does not apply: "), "{row:?}"),
            other => panic!("result {other:?}"),
        }
    }
    // Only the files asked for.
    assert!(!out.path().join("report.html").exists());
}

#[test]
fn fail_on_gates_a_release() {
    let out = tempfile::tempdir().unwrap();
    let gate = report(
        &results(),
        out.path(),
        &["--format", "json", "--fail-on", "hybrid"],
    );
    assert_eq!(gate.status.code(), Some(5));
    let err = String::from_utf8_lossy(&gate.stderr);
    assert!(
        err.contains("\nodai: gate failed (--fail-on hybrid): synthetic:llama-3.2-3b:q4_0 on Midrange phone: cloud-only"),
        "{err}"
    );
    // A workload every measurement meets: on-device first everywhere the model fits.
    let lenient = out.path().join("lenient.toml");
    fs::write(
        &lenient,
        "schema_version = 1\nid = \"batch\"\nlabel = \"Overnight batch\"\nprompt_tokens = 32\n\
         gen_tokens = 16\n\n[criteria]\nttft_ms_p95 = { max = 600000 }\ndecode_tps_p10 = { min = 0.1 }\n",
    )
    .unwrap();
    let lenient_run = report(
        &results(),
        out.path(),
        &[
            "--format",
            "json",
            "--profile",
            lenient.to_str().unwrap(),
            "--fail-on",
            "hybrid",
        ],
    );
    // Everything passes but the model that does not fit the phone: no profile makes that
    // on-device.
    assert_eq!(lenient_run.status.code(), Some(5));
    assert_eq!(
        String::from_utf8_lossy(&lenient_run.stderr),
        format!(
            "wrote {}\nodai: gate failed (--fail-on hybrid): synthetic:llama-3.2-3b:q4_0 on \
             Midrange phone: cloud-only\n",
            out.path().join("report.json").display()
        )
    );
    let j: Value = serde_json::from_str(&text(out.path(), "report.json")).unwrap();
    let phone_3b = j["scorecards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "midrange-phone" && c["model"] == "synthetic:llama-3.2-3b:q4_0")
        .unwrap()
        .clone();
    assert_eq!(
        phone_3b["reasons"][0],
        "fails memory fit on Midrange phone: phone: does not fit: needs 3.2 GiB, headroom 3.0 GiB"
    );
}

#[test]
fn broken_inputs_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    fs::create_dir(&empty).unwrap();
    odai()
        .arg("report")
        .arg(&empty)
        .assert()
        .code(3)
        .stderr(format!(
            "odai: error: {}: holds no results.jsonl: not an odai results directory (odai matrix \
             run --out DIR or odai profile --out DIR writes one)\n",
            empty.display()
        ));
    // A torn last line is reported, and the rest still used.
    let torn = dir.path().join("torn");
    copy_tree(&results(), &torn);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(torn.join("results.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"{\"device\":\"phone\",\"cell_id\":\"tor").unwrap();
    let out = dir.path().join("out");
    let run = report(&torn, &out, &["--format", "csv"]);
    assert!(run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.starts_with(&format!(
            "odai: warning: {}:13: unreadable line left out (not JSON (torn by a crash?)",
            torn.join("results.jsonl").display()
        )),
        "{err}"
    );
    assert_eq!(text(&out, "measurements.csv").lines().count(), 13);
    // A profile with an unknown criterion names the file, line and column.
    let profile = dir.path().join("bad.toml");
    fs::write(
        &profile,
        "schema_version = 1\nid = \"x\"\nlabel = \"X\"\nprompt_tokens = 8\ngen_tokens = 8\n\n\
         [criteria]\nvibes_per_second = { min = 3 }\n",
    )
    .unwrap();
    let bad = odai()
        .arg("report")
        .arg(results())
        .arg("--profile")
        .arg(&profile)
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(3));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.starts_with(&format!(
            "odai: error: {}:8:1: unknown criterion \"vibes_per_second\" (criteria: ttft_ms_p95,",
            profile.display()
        )),
        "{err}"
    );
}

/// Headless Chromium (Debian's `chromium`, installed by scripts/test.sh).
fn chromium() -> &'static str {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return c;
        }
    }
    panic!("no chromium on PATH: install Debian's chromium (scripts/test.sh does)");
}

/// Loads `page` headless; returns the DOM after scripts ran and what the browser logged.
fn browse(page: &Path, extra: &[&str]) -> (String, String) {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn console_lines(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("CONSOLE")).collect()
}

#[test]
fn the_html_report_renders_in_a_real_browser_with_its_charts() {
    let out = tempfile::tempdir().unwrap();
    assert!(
        report(&results(), out.path(), &["--format", "html"])
            .status
            .success()
    );
    let page = out.path().join("report.html");
    let html = text(out.path(), "report.html");
    // Self-contained: nothing fetched from anywhere.
    for needle in ["src=\"http", "href=\"http", "@import", "url(http", "<link "] {
        assert!(!html.contains(needle), "report.html references {needle}");
    }
    // The harness sees console errors: a page with a broken script is caught.
    let broken = out.path().join("broken.html");
    fs::write(
        &broken,
        "<html><body><script>notDefined();</script></body></html>",
    )
    .unwrap();
    let (_, log) = browse(&broken, &["--dump-dom"]);
    assert!(
        console_lines(&log).iter().any(|l| l.contains("notDefined")),
        "the console check is blind: {log}"
    );

    let (dom, log) = browse(&page, &["--dump-dom"]);
    assert!(console_lines(&log).is_empty(), "console: {log}");
    assert!(dom.contains("<table id=\"verdicts\">"), "{dom}");
    let svgs = dom.matches("<svg").count();
    // TTFT and decode by class, a latency histogram per device × model, sustained per device.
    assert!(svgs >= 2 + 5 + 3, "{svgs} charts");
    assert!(dom.contains("Sustained decode and temperature"));
    assert!(dom.contains("✖ cloud-only") && dom.contains("◐ hybrid"));

    // A screenshot, kept as a test artifact.
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    fs::create_dir_all(&artifacts).unwrap();
    let shot = artifacts.join("report.png");
    let _ = fs::remove_file(&shot);
    browse(
        &page,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1200,3000",
            "--hide-scrollbars",
        ],
    );
    let png = fs::read(&shot).expect("a screenshot");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 20_000, "a blank page? {} bytes", png.len());
}

#[test]
fn compare_flags_a_significant_regression() {
    let dir = tempfile::tempdir().unwrap();
    // Same results: nothing significant, exit 0.
    let same = odai()
        .arg("compare")
        .arg(results())
        .arg(results())
        .output()
        .unwrap();
    assert!(same.status.success());
    assert!(String::from_utf8_lossy(&same.stdout).contains("; 0 regression(s)"));
    // A baseline with six repetitions per cell (each recorded one three times: the fixture has
    // two, too few for a t-test to find anything), and a "new" run decoding 30 % slower.
    let rewrite = |to: &Path, factor: f64| {
        copy_tree(&results(), to);
        let text = fs::read_to_string(to.join("results.jsonl")).unwrap();
        let mut lines = Vec::new();
        for l in text.lines() {
            let mut v: Value = serde_json::from_str(l).unwrap();
            if let Some(reps) = v["report"]["reps"].as_array_mut() {
                let mut more = Vec::new();
                for r in reps.iter() {
                    for _ in 0..3 {
                        let mut r = r.clone();
                        let d = r["decode_tps"].as_f64().unwrap();
                        r["decode_tps"] = Value::from(d * factor);
                        more.push(r);
                    }
                }
                *reps = more;
            }
            lines.push(serde_json::to_string(&v).unwrap());
        }
        fs::write(to.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
    };
    let (base, slower) = (dir.path().join("base"), dir.path().join("slower"));
    rewrite(&base, 1.0);
    rewrite(&slower, 0.7);
    let cmp = odai()
        .arg("compare")
        .arg(&base)
        .arg(&slower)
        .args(["--threshold", "10%", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(cmp.status.code(), Some(5));
    let v: Value = serde_json::from_slice(&cmp.stdout).unwrap();
    let decode: Vec<&Value> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metric"] == "decode_tps")
        .collect();
    assert!(!decode.is_empty());
    for c in &decode {
        assert!(
            (c["change_pct"].as_f64().unwrap() + 30.0).abs() < 1e-6,
            "{c}"
        );
        assert_eq!(c["worse"], true);
        // A regression exactly where Welch's test finds the drop significant: the fixture's
        // repetitions were measured on a busy machine, and some cells are too noisy for -30 %
        // to stand out.
        let p = c["p_value"].as_f64().unwrap();
        assert_eq!(c["regression"], p < 0.05, "{c}");
    }
    let flagged = decode.iter().filter(|c| c["regression"] == true).count();
    assert!(flagged >= 1, "no cell clear enough to flag");
    assert_eq!(v["regressions"].as_u64().unwrap() as usize, flagged);
    // Nothing else changed.
    assert!(
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["metric"] != "decode_tps")
            .all(|c| c["change_pct"] == 0.0)
    );
}

#[test]
fn regression_compare_of_two_csvs_trips_the_gate() {
    // Found in review: two measurements.csv where decode is 30 % slower reported "0 significant
    // regression(s)" and exited 0 — with no repetitions nothing was significant, so the gate
    // could never trip. Now the threshold alone decides, and the output says so.
    let dir = tempfile::tempdir().unwrap();
    let (base, slower) = (dir.path().join("base"), dir.path().join("slower"));
    copy_tree(&results(), &base);
    copy_tree(&results(), &slower);
    let text = fs::read_to_string(slower.join("results.jsonl")).unwrap();
    let mut lines = Vec::new();
    for l in text.lines() {
        let mut v: Value = serde_json::from_str(l).unwrap();
        if let Some(reps) = v["report"]["reps"].as_array_mut() {
            for r in reps {
                let d = r["decode_tps"].as_f64().unwrap();
                r["decode_tps"] = Value::from(d * 0.7);
            }
        }
        lines.push(serde_json::to_string(&v).unwrap());
    }
    fs::write(slower.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    assert!(report(&base, &a, &["--format", "csv"]).status.success());
    assert!(report(&slower, &b, &["--format", "csv"]).status.success());
    // Files from before measurements.csv carried samples (schema 4): no repetitions to test.
    for d in [&a, &b] {
        strip_sample_columns(&d.join("measurements.csv"));
    }
    let run = |fmt: &str| {
        odai()
            .arg("compare")
            .arg(a.join("measurements.csv"))
            .arg(b.join("measurements.csv"))
            .args(["--threshold", "10%", "--format", fmt])
            .output()
            .unwrap()
    };
    let text_run = run("text");
    assert_eq!(text_run.status.code(), Some(5), "the gate trips");
    let out = String::from_utf8_lossy(&text_run.stdout);
    assert!(
        out.contains("REGRESSION (threshold only: no repetitions)"),
        "{out}"
    );
    assert!(out.contains("gated on the threshold alone"), "{out}");
    let v: Value = serde_json::from_slice(&run("json").stdout).unwrap();
    let decode: Vec<&Value> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["metric"] == "decode_tps")
        .collect();
    assert!(!decode.is_empty());
    assert!(decode.iter().all(|c| c["regression"] == true
        && c["basis"] == "threshold"
        && c["threads"].as_u64().unwrap() > 0));
    assert_eq!(v["regressions"].as_u64().unwrap() as usize, decode.len());
    // The same files: no change, exit 0.
    let same = odai()
        .arg("compare")
        .arg(a.join("measurements.csv"))
        .arg(a.join("measurements.csv"))
        .output()
        .unwrap();
    assert_eq!(same.status.code(), Some(0));
}

/// Drops the `*_samples` columns of a measurements.csv, as schema 4 wrote it.
fn strip_sample_columns(path: &Path) {
    let mut rd = csv::Reader::from_path(path).unwrap();
    let header = rd.headers().unwrap().clone();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].ends_with("_samples"))
        .collect();
    assert!(keep.len() < header.len(), "no sample columns to strip");
    let mut w = csv::Writer::from_path(path.with_extension("tmp")).unwrap();
    w.write_record(keep.iter().map(|&i| &header[i])).unwrap();
    for rec in rd.records() {
        let rec = rec.unwrap();
        w.write_record(keep.iter().map(|&i| &rec[i])).unwrap();
    }
    w.flush().unwrap();
    drop(w);
    fs::rename(path.with_extension("tmp"), path).unwrap();
}

/// A copy of the fixture at `to` with every record passed through `edit`.
fn edited(to: &Path, edit: impl Fn(&mut Value)) {
    copy_tree(&results(), to);
    let text = fs::read_to_string(to.join("results.jsonl")).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            edit(&mut v);
            serde_json::to_string(&v).unwrap()
        })
        .collect();
    fs::write(to.join("results.jsonl"), lines.join("\n") + "\n").unwrap();
}

fn compare_json(base: &Path, new: &Path, extra: &[&str]) -> (Option<i32>, Value) {
    let out = odai()
        .arg("compare")
        .arg(base)
        .arg(new)
        .args(["--format", "json"])
        .args(extra)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code(), v)
}

/// Each change's (match key, metric) → verdict.
fn verdicts(v: &Value) -> std::collections::BTreeMap<(String, String), String> {
    v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                (
                    c["key"].as_str().unwrap().to_owned(),
                    c["metric"].as_str().unwrap().to_owned(),
                ),
                c["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn regression_compare_directory_and_its_csv_give_the_same_verdicts() {
    // Found in review: two runs at 2 reps with decode −59 % and token p99 +1043 % were "no
    // significant change" as directories but 6 regressions as measurements.csv — the same data,
    // opposite verdicts. The CSV now carries the repetitions, and an untestable change past the
    // threshold is inconclusive in both.
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = (dir.path().join("base"), dir.path().join("new"));
    copy_tree(&results(), &base);
    edited(&new, |v| {
        if let Some(reps) = v["report"]["reps"].as_array_mut() {
            for r in reps {
                let d = r["decode_tps"].as_f64().unwrap();
                r["decode_tps"] = Value::from(d * 0.41);
                let p99 = r["token_ms_p99"].as_f64().unwrap();
                r["token_ms_p99"] = Value::from(p99 * 11.43);
                if let Some(t) = r["token_ms"].as_array_mut() {
                    for x in t {
                        *x = Value::from(x.as_f64().unwrap() * 11.43);
                    }
                }
            }
        }
    });
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    assert!(report(&base, &a, &["--format", "csv"]).status.success());
    assert!(report(&new, &b, &["--format", "csv"]).status.success());
    let (dir_code, dirs) = compare_json(&base, &new, &[]);
    let (csv_code, csvs) = compare_json(
        &a.join("measurements.csv"),
        &b.join("measurements.csv"),
        &[],
    );
    assert_eq!(verdicts(&dirs), verdicts(&csvs));
    assert_eq!(dir_code, csv_code);
    for k in ["regressions", "inconclusive", "threshold_only", "verdict"] {
        assert_eq!(dirs[k], csvs[k], "{k}");
    }
    // Every slower decode is judged: a regression where the test can tell, inconclusive where
    // two repetitions cannot — never "no significant change".
    let decode: Vec<String> = verdicts(&dirs)
        .into_iter()
        .filter(|((_, m), _)| m == "decode_tps")
        .map(|(_, v)| v)
        .collect();
    assert!(!decode.is_empty());
    assert!(
        decode
            .iter()
            .all(|v| v == "regression" || v == "inconclusive"),
        "{decode:?}"
    );
    assert!(dirs["inconclusive"].as_u64().unwrap() > 0, "{dirs}");
    // Under --fail-on-inconclusive they fail the gate.
    let (code, v) = compare_json(&base, &new, &["--fail-on-inconclusive"]);
    assert_eq!(code, Some(5));
    assert_eq!(v["verdict"], "FAIL");
}

#[test]
fn regression_compare_inconclusive_alone_passes_unless_asked_to_fail() {
    // Two repetitions a side, decode 30 % slower in one cell with the spread kept: Welch's test
    // cannot tell, so the gate says so, counts it, and fails only under --fail-on-inconclusive.
    let dir = tempfile::tempdir().unwrap();
    let (base, new) = (dir.path().join("base"), dir.path().join("new"));
    copy_tree(&results(), &base);
    edited(&new, |v| {
        if v["device"] == "pi5" && v["cell_id"] == "21e23b18229109e0" {
            for r in v["report"]["reps"].as_array_mut().unwrap() {
                let d = r["decode_tps"].as_f64().unwrap();
                r["decode_tps"] = Value::from(d * 0.7);
            }
        }
    });
    let (code, v) = compare_json(&base, &new, &["--threshold", "10%"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["verdict"], "PASS, with inconclusive changes");
    assert_eq!(
        (v["regressions"].as_u64(), v["inconclusive"].as_u64()),
        (Some(0), Some(1))
    );
    let text = common::ok(
        &odai()
            .arg("compare")
            .arg(&base)
            .arg(&new)
            .args(["--threshold", "10%"])
            .output()
            .unwrap(),
    );
    assert!(
        text.contains("INCONCLUSIVE (too few or too noisy repetitions)"),
        "{text}"
    );
    assert!(
        text.contains("pass --fail-on-inconclusive to fail on them"),
        "{text}"
    );
    let (code, v) = compare_json(
        &base,
        &new,
        &["--threshold", "10%", "--fail-on-inconclusive"],
    );
    assert_eq!(code, Some(5));
    assert_eq!(v["verdict"], "FAIL (inconclusive)");
}

#[test]
fn regression_compare_counts_a_cell_failed_or_missing_in_new() {
    // Found in review: a cell OOM-killed in the new run, and one that vanished from it, were
    // ignored: "18 cell metrics compared; 0 regression(s)", exit 0.
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new");
    edited(&new, |v| {
        if v["device"] == "laptop" && v["cell_id"] == "6aa9675b3f49c8e6" {
            v["status"] = "failed".into();
            v["reason"] = "worker killed by SIGKILL (out of memory?)".into();
            v["report"] = Value::Null;
        }
    });
    let text = fs::read_to_string(new.join("results.jsonl")).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !(l.contains("\"device\":\"pi5\"") && l.contains("d1700a9549d39ea7")))
        .collect();
    fs::write(new.join("results.jsonl"), kept.join("\n") + "\n").unwrap();
    let (code, v) = compare_json(&results(), &new, &[]);
    assert_eq!(code, Some(5), "{v}");
    assert_eq!(v["regressions"], 2);
    let lost: Vec<(String, String)> = v["lost"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["key"].as_str().unwrap().to_owned(),
                l["new_status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lost,
        [
            (
                "device=laptop cell_id=6aa9675b3f49c8e6".to_owned(),
                "failed".to_owned()
            ),
            (
                "device=pi5 cell_id=d1700a9549d39ea7".to_owned(),
                "missing".to_owned()
            ),
        ]
    );
    let out = odai()
        .arg("compare")
        .arg(results())
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("ok in BASE, not ok in NEW (each a regression):"),
        "{text}"
    );
    assert!(
        text.contains("failed: worker killed by SIGKILL (out of memory?)"),
        "{text}"
    );
    assert!(text.contains("verdict: FAIL"), "{text}");
}

#[test]
fn regression_compare_of_runs_with_no_cell_in_common_is_an_error() {
    // Found in review: `compare results/q4_0 results/q4_k` (the README's own example) compared
    // nothing and exited 0.
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("q4_k");
    edited(&new, |v| {
        let id = format!("{}x", v["cell_id"].as_str().unwrap());
        v["cell_id"] = id.into();
    });
    let out = odai()
        .arg("compare")
        .arg(results())
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "odai: error: {}: no cell in common with the baseline (12 cells in BASE, 12 in NEW, \
             matched by device,cell_id): nothing was compared. Two runs of different matrices, \
             models or quants match by shape: --match-by device,threads,prompt_tokens,gen_tokens\n",
            new.display()
        )
    );
    assert!(out.stdout.is_empty());
    // Matched by shape they compare (the fixture has two models at one shape on a device: an
    // ambiguous key is an error naming the cells, so add the model's own field).
    let (code, v) = compare_json(
        &results(),
        &new,
        &[
            "--match-by",
            "device,threads,prompt_tokens,gen_tokens,cold,sustained_s,model",
        ],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["cells_in_common"], 12);
}

#[test]
fn compare_markdown_is_a_pull_request_comment() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new");
    edited(&new, |v| {
        if v["device"] == "laptop" && v["cell_id"] == "6aa9675b3f49c8e6" {
            v["status"] = "failed".into();
            v["reason"] = "worker killed by SIGKILL (out of memory?)".into();
            v["report"] = Value::Null;
        }
    });
    let out = odai()
        .arg("compare")
        .arg(results())
        .arg(&new)
        .args(["--format", "md"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5));
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(md.starts_with("### odai compare: **FAIL**\n"), "{md}");
    assert!(
        md.contains("| regressions | lost cells | inconclusive | compared metrics |"),
        "{md}"
    );
    assert!(md.contains("#### Cells ok in BASE, not ok in NEW"), "{md}");
    assert!(md.contains("| laptop | `6aa9675b3f49c8e6` | synthetic:llama-3.2-3b:q4_0 | failed: worker killed by SIGKILL (out of memory?) |"), "{md}");
    assert!(md.contains("<details><summary>All "), "{md}");
}

#[test]
fn regression_compare_rows_name_the_cell_and_threads() {
    // Found in review: text rows had no cell id or thread count, so two cells of one model on
    // one device printed identically.
    let run = odai()
        .arg("compare")
        .arg(results())
        .arg(results())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&run.stdout);
    let rows: Vec<&str> = out.lines().skip(1).take_while(|l| !l.is_empty()).collect();
    assert!(rows.len() > 1);
    let mut seen = std::collections::BTreeSet::new();
    for r in &rows {
        assert!(seen.insert(*r), "two rows print the same: {r}");
    }
    assert!(
        rows[0].contains("21e23b18229109e0") || rows.iter().any(|r| r.contains("21e23b18229109e0"))
    );
}

#[test]
fn regression_compare_io_failure_is_not_a_tripped_gate() {
    // A missing input is "the check broke" (3), never the gate's 5.
    let run = odai()
        .arg("compare")
        .arg("/nonexistent/base")
        .arg(results())
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&run.stderr),
        "odai: error: /nonexistent/base: no such results directory (name a directory `odai matrix \
         run --out` or `odai profile --out` wrote, or its measurements.csv)\n"
    );
}

/// The scorecard of `class` × `model` in a report.json.
fn scorecard<'a>(report: &'a Value, class: &str, model: &str) -> &'a Value {
    report["scorecards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == class && c["model"] == model)
        .unwrap_or_else(|| panic!("no scorecard for {model} on {class}"))
}

/// One criterion of a scorecard.
fn criterion<'a>(card: &'a Value, name: &str) -> &'a Value {
    card["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion"] == name)
        .unwrap_or_else(|| panic!("no {name} criterion: {card}"))
}

/// A quality record as `odai quality --out` writes it, for a model of the fixture.
fn quality_line(model: &str, runtime: &str, kld_mean: f64, accuracy: f64, finished: f64) -> String {
    serde_json::json!({
        "schema_version": 1, "odai_version": "0.1.0", "device": "local", "model": model,
        "model_sha256": null,
        "runtime": {"runtime": runtime, "runtime_version": "x", "backend": "cpu"},
        "threads": 2, "perplexity": null,
        "kld": {"reference": "ref-q8_0.gguf", "reference_sha256": null,
                "reference_runtime": {"runtime": runtime, "runtime_version": "x", "backend": "cpu"},
                "reference_ppl": 10.0, "reference_ppl_stderr": 0.1, "ppl_delta_pct": 3.0,
                "tokens": 5000, "kld_mean": kld_mean, "kld_mean_stderr": 0.001,
                "kld_median": 0.01, "kld_p99": 0.4, "kld_max": 2.0, "top1_agreement_pct": 93.0},
        "tasks": {"tasks_sha256": "ab", "tasks": 40, "correct": (accuracy * 0.4) as u64,
                  "accuracy_pct": accuracy, "ci95_low_pct": 60.0, "ci95_high_pct": 90.0,
                  "by_check": {}, "latency_ms_p50": 10.0, "latency_ms_p95": 20.0, "items": []},
        "shadow": null, "interrupted": false, "finished_unix_s": finished
    })
    .to_string()
}

#[test]
fn measured_quality_criteria_win_over_the_stated_factor_per_model_and_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    copy_tree(&results(), &set);
    let model = "synthetic:smollm2-135m:q8_0";
    // An older record that fails, the newest that passes, and a newer one on another runtime
    // (the fixture's cells predate recorded runtimes: any runtime's record counts, the newest
    // wins — so the candle one is written first here).
    let lines = [
        quality_line(model, "candle", 9.0, 1.0, 50.0),
        quality_line(model, "odai", 0.5, 50.0, 100.0),
        quality_line(model, "odai", 0.02, 80.0, 200.0),
    ];
    fs::write(set.join("quality.jsonl"), lines.join("\n") + "\n").unwrap();
    let profile = dir.path().join("q.toml");
    fs::write(
        &profile,
        "schema_version = 1\nid = \"q\"\nlabel = \"Quality\"\nprompt_tokens = 32\ngen_tokens = 16\n\n\
         [criteria]\nttft_ms_p95 = { max = 600000 }\nkld_mean = { max = 0.05 }\n\
         task_accuracy_pct = { min = 75 }\n\n[factors]\nquality_threshold_met = { value = false }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = report(
        &set,
        &out,
        &["--format", "json", "--profile", profile.to_str().unwrap()],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let j: Value = serde_json::from_str(&text(&out, "report.json")).unwrap();
    let cards = j["scorecards"].as_array().unwrap();
    let small: Vec<&Value> = cards.iter().filter(|c| c["model"] == model).collect();
    assert!(!small.is_empty());
    for c in &small {
        let kld = c["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["criterion"] == "kld_mean")
            .unwrap();
        assert_eq!(
            kld["measured"], 0.02,
            "the newest record on the cells' runtime: {kld}"
        );
        assert_eq!(kld["outcome"], "PASS");
        assert_eq!(
            kld["reason"],
            "odai quality on odai (local): 5000 tokens against ref-q8_0.gguf"
        );
        assert_eq!(c["quality_source"], "measured");
        // The stated "quality not met" would make it cloud-only; the measurement decides.
        assert_eq!(c["verdict"], "on-device first", "{c}");
        assert!(
            c["reasons"].as_array().unwrap().iter().any(|r| r == "quality measured (kld_mean 0.020 meets 0.050, task_accuracy_pct 80.0 meets 75.0); the stated quality_threshold_met is not used"),
            "{}", c["reasons"]
        );
    }
    // The model with no record: N/A with the command that measures it, the stated factor used.
    let big = cards
        .iter()
        .find(|c| c["model"] == "synthetic:llama-3.2-3b:q4_0" && c["class"] == "laptop")
        .unwrap();
    let kld = big["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["criterion"] == "kld_mean")
        .unwrap();
    assert_eq!(kld["outcome"], "N/A");
    assert_eq!(
        kld["reason"],
        "not measured: no odai quality record of this model (odai quality --model \
         synthetic:llama-3.2-3b:q4_0 --reference REF.gguf --text FILE --out RESULTS_DIR)"
    );
    assert_eq!(big["quality_source"], "stated");
    assert_eq!(big["verdict"], "cloud-only");
}

#[test]
fn regression_a_verdict_on_half_the_weight_is_insufficient_evidence_not_a_pass() {
    // Before: on-device first (100 %) with cold start, sustained stability, battery and energy
    // never measured. Now the coverage is stated and below min_coverage the verdict says so.
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("half.toml");
    fs::write(
        &profile,
        "schema_version = 1\nid = \"half\"\nlabel = \"Half\"\nprompt_tokens = 32\ngen_tokens = 16\n\
         min_coverage = 0.75\n\n[criteria]\nttft_ms_p95 = { max = 600000 }\n\
         decode_tps_p10 = { min = 0.1 }\nkld_mean = { max = 0.1, weight = 2 }\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = report(
        &results(),
        &out,
        &[
            "--format",
            "json",
            "--profile",
            profile.to_str().unwrap(),
            "--fail-on",
            "fail",
        ],
    );
    assert_eq!(
        run.status.code(),
        Some(5),
        "insufficient evidence fails the gate"
    );
    let j: Value = serde_json::from_str(&text(&out, "report.json")).unwrap();
    let laptop = j["scorecards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "laptop" && c["model"] == "synthetic:smollm2-135m:q8_0")
        .unwrap();
    assert_eq!(laptop["verdict"], "insufficient evidence", "{laptop}");
    assert_eq!(laptop["coverage_pct"], 50.0);
    assert_eq!(laptop["min_coverage_pct"], 75.0);
    assert_eq!(laptop["missing"][0]["criterion"], "kld_mean");
    assert_eq!(
        laptop["reasons"][0],
        "insufficient evidence on Laptop: 50 % of the profile's weight measured, 75 % needed \
         (min_coverage)"
    );
    assert!(
        laptop["reasons"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .starts_with("to measure kld_mean: not measured: no odai quality record")),
        "{}",
        laptop["reasons"]
    );
}

#[test]
fn regression_a_tensor_profile_over_results_without_tensor_cells_is_an_error() {
    // Found in review: `--profile wake-word` over language-model results "passed" with no
    // scorecard at all, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let out = odai()
        .arg("report")
        .arg(results())
        .args(["--profile", "wake-word", "--fail-on", "fail", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "odai: error: {}: holds no tensor cells of a device for the wake-word profile to \
             judge (a tensor workload; language-model and endpoint cells are not its evidence): \
             measure a [[tensor]] entry of the matrix, or pick a language workload: --profile \
             chat-assistant\n",
            results().display()
        )
    );
    assert!(out.stdout.is_empty());
}

#[cfg(feature = "db")]
#[test]
fn regression_report_db_on_a_missing_file_is_an_error_not_a_new_database() {
    // Found in review: a mistyped --db created an empty database and reported on it.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("typo.sqlite");
    let out = odai().arg("report").arg("--db").arg(&db).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "odai: error: {}: --db: no such database (odai db import DIR --db FILE or odai \
             matrix run --db FILE writes one)\n",
            db.display()
        )
    );
    assert!(!db.exists(), "a database was created");
}

#[test]
fn regression_report_stdout_is_the_verdicts_alone() {
    // Found in review: `odai report DIR > verdict.md` held "wrote …" status lines between the
    // verdicts; status belongs on stderr.
    let dir = tempfile::tempdir().unwrap();
    let out = report(&results(), dir.path(), &["--format", "md"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("wrote "), "{stdout}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("wrote {}\n", dir.path().join("report.md").display())
    );
}

#[test]
fn regression_battery_drain_does_not_apply_where_the_class_has_no_battery() {
    // Found in review: battery drain counted as unmeasured against classes without a battery
    // (desktops, VMs, boards), dragging their coverage under min_coverage so the verdict could
    // never be reached. It does not apply there, and leaves the coverage arithmetic.
    let out = tempfile::tempdir().unwrap();
    assert!(
        report(&results(), out.path(), &["--format", "json"])
            .status
            .success()
    );
    let j: Value = serde_json::from_str(&text(out.path(), "report.json")).unwrap();
    let pi = scorecard(&j, "single-board-computer", "synthetic:smollm2-135m:q8_0");
    let battery = criterion(pi, "battery_drain_pct_per_hour");
    assert_eq!(battery["outcome"], "does not apply", "{battery}");
    assert_eq!(
        battery["reason"],
        "does not apply: no device of the class has a battery (1 probed)"
    );
    // 10 of the 12 weights that can apply are measured (battery's 1 of 13 does not apply; it
    // counted against the class before).
    assert!(
        (pi["coverage_pct"].as_f64().unwrap() - 100.0 * 10.0 / 12.0).abs() < 1e-6,
        "{pi}"
    );
    assert!(
        !pi["missing"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["criterion"] == "battery_drain_pct_per_hour")
    );
    // A class declared with a battery keeps the criterion: the laptop's is unmeasured.
    let laptop = j["scorecards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["class"] == "laptop")
        .unwrap();
    assert!(
        laptop["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["criterion"] == "battery_drain_pct_per_hour"
                && c["outcome"] != "does not apply")
    );
}

#[test]
fn regression_noise_reaches_every_form_of_the_verdict() {
    // Found in review: a cell whose decode varied 85 % between repetitions carried that warning
    // in results.jsonl, but the scorecard showed nothing, so a FAIL built on it looked as solid
    // as a PASS.
    let out = tempfile::tempdir().unwrap();
    assert!(report(&results(), out.path(), &[]).status.success());
    let j: Value = serde_json::from_str(&text(out.path(), "report.json")).unwrap();
    let pi = scorecard(&j, "single-board-computer", "synthetic:smollm2-135m:q8_0");
    let decode = criterion(pi, "decode_tps_p10");
    let w: Vec<&str> = decode["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(
        w,
        [
            "pi5: only 2 repetition(s): too few for a confidence interval to mean much (use \
             --reps 5 or more)",
            "pi5: decode_tps varies by 85 % between repetitions: the machine is noisy (other \
             load, thermal throttling); compare with care"
        ]
    );
    assert!(
        pi["reasons"].as_array().unwrap().iter().any(|r| r
            .as_str()
            .unwrap()
            .starts_with("read with care: ttft_ms_p95, decode_tps_p10")),
        "{pi}"
    );
    // A warning about a metric the criterion does not read stays out: the cold cell's decode
    // noise is not its cold start's.
    let cold = criterion(pi, "cold_start_ms");
    assert_eq!(
        cold["warnings"],
        serde_json::json!([
            "pi5: only 2 repetition(s): too few for a confidence interval to mean much (use \
             --reps 5 or more)"
        ])
    );
    // Peak memory does not depend on repetition noise.
    let mem = criterion(pi, "memory_headroom_frac");
    assert_eq!(mem["warnings"], serde_json::json!([]));
    // CSV: the warnings column; Markdown and HTML: ⚠ noisy beside the figure.
    let csv = text(out.path(), "scorecard.csv");
    let mut rd = csv::Reader::from_reader(csv.as_bytes());
    let header = rd.headers().unwrap().clone();
    let col = header.iter().position(|h| h == "warnings").unwrap();
    let row = rd
        .records()
        .map(|r| r.unwrap())
        .find(|r| {
            &r[1] == "single-board-computer"
                && &r[4] == "synthetic:smollm2-135m:q8_0"
                && &r[5] == "decode_tps_p10"
        })
        .unwrap();
    assert!(
        row[col].contains("pi5: decode_tps varies by 85 %"),
        "{row:?}"
    );
    let md = text(out.path(), "report.md");
    assert!(md.contains("⚠ noisy: pi5: only 2 repetition(s)"), "{md}");
    let html = text(out.path(), "report.html");
    assert!(html.contains("<span class=\"noisy\">⚠ noisy: pi5: only 2 repetition(s)"));
}

#[test]
fn regression_measured_quality_is_shown_and_stated_quality_does_not_weigh() {
    // Found in review: after `odai quality --out DIR` the report still said "quality stated,
    // not measured" — no built-in profile had a quality criterion, and each asserted
    // quality_threshold_met = true, which weighed in the verdict like a measurement.
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("r");
    copy_tree(&results(), &res);
    fs::write(
        res.join("quality.jsonl"),
        quality_line("synthetic:smollm2-135m:q8_0", "unrecorded", 0.03, 80.0, 1.0) + "\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    assert!(report(&res, &out, &[]).status.success());
    let md = text(&out, "report.md");
    assert!(md.contains("## Quality (odai quality)"), "{md}");
    assert!(
        md.contains("| synthetic:smollm2-135m:q8_0 | unrecorded | local | — | +3.00 % | 0.03 | 0.4 | 93.0 % | 80.0 % (32/40) |"),
        "{md}"
    );
    let j: Value = serde_json::from_str(&text(&out, "report.json")).unwrap();
    for s in j["scorecards"].as_array().unwrap() {
        let kld = s["criteria"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["criterion"] == "kld_mean")
            .expect("chat-assistant judges quality");
        if s["model"] == "synthetic:smollm2-135m:q8_0" {
            assert_eq!(kld["outcome"], "PASS", "{s}");
            assert_eq!(s["quality_source"], "measured");
        } else {
            assert_eq!(kld["outcome"], "N/A", "{s}");
            assert_eq!(
                s["quality_source"], "none",
                "nothing stated in the built-in profile"
            );
        }
    }
    // A profile that only states quality: said, and it does not tip the verdict.
    let stated = dir.path().join("stated.toml");
    fs::write(
        &stated,
        "schema_version = 1\nid = \"stated\"\nlabel = \"Stated\"\ndescription = \"d\"\n\
         prompt_tokens = 32\ngen_tokens = 16\n\n[criteria]\nttft_ms_p95 = { max = 1500 }\n\n\
         [factors]\nquality_threshold_met = { value = true, weight = 2 }\n",
    )
    .unwrap();
    let out2 = dir.path().join("out2");
    assert!(
        report(&results(), &out2, &["--profile", stated.to_str().unwrap()])
            .status
            .success()
    );
    let j: Value = serde_json::from_str(&text(&out2, "report.json")).unwrap();
    for s in j["scorecards"].as_array().unwrap() {
        assert_eq!(s["quality_source"], "stated");
        assert!(
            s["reasons"].as_array().unwrap().iter().any(|r| r
                .as_str()
                .unwrap()
                .starts_with("quality stated, not measured (quality_threshold_met = true: it does not weigh in the verdict")),
            "{s}"
        );
        // No other factor stated: nothing leans.
        assert_eq!(s["factor_lean_pct"], 50.0, "{s}");
    }
}

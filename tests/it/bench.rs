//! `odai bench` end to end on a small synthetic model: the JSON contract, CSV rows, memory fit
//! against the probe's headroom (through --root), and bad flags.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;
use std::path::Path;

use common::{cache, odai, ok};
use serde_json::Value;

fn bench(args: &[&str]) -> std::process::Output {
    odai()
        .env("ODAI_CACHE_DIR", cache())
        .args([
            "bench",
            "--synthetic",
            "smollm2-135m:q8_0",
            "-p",
            "8",
            "-n",
            "4",
            "--threads",
            "1",
        ])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn json_has_a_summary_per_metric_and_every_rep() {
    let out = bench(&[
        "--reps",
        "2",
        "--warmup",
        "0",
        "--token-deadline-ms",
        "10000",
        "--cold",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for metric in [
        "load_ms",
        "first_ttft_ms",
        "ttft_ms",
        "prefill_tps",
        "decode_tps",
        "token_ms_p50",
        "token_ms_p90",
        "token_ms_p99",
        "deadline_miss_pct",
        "peak_rss_bytes",
    ] {
        let s = &v["summary"][metric];
        for k in [
            "mean",
            "median",
            "stddev",
            "min",
            "max",
            "cov_pct",
            "ci95_low",
            "ci95_high",
        ] {
            assert!(s[k].is_number(), "summary.{metric}.{k}");
        }
        assert!(s["min"].as_f64() <= s["max"].as_f64());
    }
    // A 10 s deadline is never missed.
    assert_eq!(v["summary"]["deadline_miss_pct"]["max"], 0.0);
    let reps = v["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 2);
    assert_eq!(reps[0]["token_ms"].as_array().unwrap().len(), 4);
    assert_eq!(reps[0]["threads"], 1);
    assert_eq!(reps[0]["cold"], true);
    assert_eq!(v["provenance"]["cold"], true);
    assert!(reps[0]["peak_rss_bytes"].as_u64().unwrap() > 100 << 20);
    let p = &v["provenance"];
    assert_eq!(p["synthetic"], "smollm2-135m:q8_0");
    assert_eq!(p["architecture"], "llama");
    assert_eq!(p["quant"], "Q8_0");
    assert_eq!(p["prompt_tokens"], 8);
    assert_eq!(p["model_sha256"].as_str().unwrap().len(), 64);
    assert!(p["device"]["logical_cores"].as_u64().unwrap() >= 1);
    assert!(v["roofline"]["roofline_tps"].as_f64().unwrap() > 0.0);
    assert!(v["roofline"]["triad_gb_s"].as_f64().unwrap() > 0.0);
    // Two repetitions: the summary says not to trust it too far.
    assert!(
        v["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().starts_with("only 2 repetition(s)"))
    );
}

#[test]
fn csv_has_one_row_per_rep_and_out_writes_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.csv");
    let out = bench(&[
        "--reps",
        "2",
        "--warmup",
        "0",
        "--format",
        "csv",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[0].starts_with("rep,model_file,model_sha256,architecture,quant,threads,"));
    assert!(lines[1].starts_with("1,smollm2-135m-q8_0-v2.gguf,"));
    // The text summary still goes to the terminal, with where, when and by which build.
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("decode_tps"));
    assert!(
        text.contains("\n  measured on ") && text.contains(" by odai "),
        "{text}"
    );
}

#[test]
fn a_model_bigger_than_headroom_is_refused_before_loading() {
    // A captured tree whose MemAvailable is 50 MiB: the probe's headroom decides.
    let root = tempfile::tempdir().unwrap();
    fs::create_dir_all(root.path().join("proc")).unwrap();
    fs::write(
        root.path().join("proc/meminfo"),
        "MemTotal: 1000000 kB\nMemAvailable: 51200 kB\n",
    )
    .unwrap();
    let out = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args([
            "bench",
            "--synthetic",
            "smollm2-135m:q8_0",
            "-p",
            "8",
            "-n",
            "4",
            "--root",
        ])
        .arg(root.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("odai: error: ")
            && err.contains("smollm2-135m-q8_0-v2.gguf: does not fit: needs "),
        "{err}"
    );
    assert!(
        err.ends_with(", headroom 50.0 MiB (use --force to run anyway)\n"),
        "{err}"
    );
}

#[test]
fn zero_threads_and_reps_and_an_empty_cell_are_usage_errors() {
    for (flag, value) in [("--threads", "0"), ("--reps", "0")] {
        let out = odai()
            .args(["bench", "--synthetic", "smollm2-135m:q8_0", flag, value])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains("0 is not in 1.."), "{flag}: {err}");
    }
    // -p 0 alone is decode only and -n 0 alone prefill only; both at once measure nothing.
    let out = odai()
        .args([
            "bench",
            "--synthetic",
            "smollm2-135m:q8_0",
            "-p",
            "0",
            "-n",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "odai: error: -p/-n: prompt_tokens 0 with gen_tokens 0 measures nothing: give one of \
         them 1 or more (-p 0 alone is decode only, -n 0 alone is prefill only)\n"
    );
}

/// The `test` column of a `-o md` table without cache-type columns (`pp8`, `tg4 @ d8`…).
fn md_tests(md: &str) -> Vec<&str> {
    md.lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.split(" | ").nth(7).unwrap())
        .collect()
}

/// A quick bench of the small synthetic model: one thread, one measured rep, no sampler, `args`
/// added.
fn quick(args: &[&str]) -> std::process::Output {
    odai()
        .env("ODAI_CACHE_DIR", cache())
        .args(["bench", "--synthetic", "smollm2-135m:q8_0", "-t", "1"])
        .args(["-r", "1", "--sample-interval", "off"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn decode_only_and_prefill_only_cells_measure_their_phase_alone() {
    // -p 0,8 × -n 4,0 without (0, 0): decode only, both, prefill only; a report per line.
    let text = ok(&quick(&[
        "-p", "0,8", "-n", "4,0", "--warmup", "0", "-o", "jsonl",
    ]));
    let reports: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let shape: Vec<(u64, u64)> = reports
        .iter()
        .map(|r| {
            let p = &r["provenance"];
            (
                p["prompt_tokens"].as_u64().unwrap(),
                p["gen_tokens"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(shape, [(0, 4), (8, 4), (8, 0)]);
    let rep = |i: usize| &reports[i]["reps"][0];
    // Decode only: no prefill figures, but every decode one.
    assert!(rep(0)["ttft_ms"].is_null() && rep(0)["prefill_tps"].is_null());
    assert!(rep(0)["decode_tps"].as_f64().unwrap() > 0.0);
    assert_eq!(rep(0)["token_ms"].as_array().unwrap().len(), 4);
    assert!(reports[0]["summary"]["ttft_ms"].is_null());
    // Prefill only: the reverse, and no made-up zero for decode.
    assert!(rep(2)["prefill_tps"].as_f64().unwrap() > 0.0);
    assert!(rep(2)["decode_tps"].is_null() && rep(2)["token_ms_p99"].is_null());
    assert!(reports[2]["summary"]["decode_tps"].is_null());
    // Both: llama-bench's pp+tg figure too, and the latency tail.
    let both = rep(1);
    for k in ["token_ms_p95", "token_ms_p999", "token_ms_max"] {
        assert!(both[k].as_f64().unwrap() > 0.0, "{k}");
    }
    assert!(both["token_ms_max"].as_f64() >= both["token_ms_p999"].as_f64());
    assert!(reports[1]["summary"]["pg_tps"]["mean"].as_f64().unwrap() > 0.0);
    // CPU time split and the resident set's anonymous and file-backed parts.
    assert!(both["cpu_user_s"].as_f64().unwrap() > 0.0);
    assert!(both["cpu_system_s"].as_f64().unwrap() >= 0.0);
    assert!(both["peak_rss_anon_bytes"].as_u64().unwrap() > 0);
    assert!(both["peak_rss_file_bytes"].as_u64().unwrap() > 0);
    // Provenance: when, and from which commit.
    let p = &reports[1]["provenance"];
    assert!(p["started_utc"].as_str().unwrap().ends_with('Z'));
    assert!(!p["git_commit"].as_str().unwrap().is_empty());
}

#[test]
fn lists_run_every_cell_and_export_several_formats_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let f = |name: &str| dir.path().join(name).display().to_string();
    let out = quick(&[
        "-p",
        "8",
        "-n",
        "4",
        "-pg",
        "8,2",
        "--warmup",
        "1",
        "-o",
        "md",
        "--export-json",
        &f("r.json"),
        "--export-csv",
        &f("r.csv"),
        "--export-md",
        &f("r.md"),
        "--export-jsonl",
        &f("r.jsonl"),
    ]);
    let md = ok(&out);
    // llama-bench's table: prefill, decode after the prompt, and the -pg cell's pp+tg.
    let tests = md_tests(&md);
    // Then, as llama-bench does, the build it measured (with where and when).
    assert!(md.contains("\nbuild: odai "), "{md}");
    assert_eq!(
        tests,
        ["pp8", "tg4 @ d8", "pp8", "tg2 @ d8", "pp8+tg2"],
        "{md}"
    );
    assert!(
        md.starts_with(
            "| model | size | params | runtime | backend | ngl | threads | test | t/s |"
        )
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("r.md")).unwrap(),
        md
    );
    // JSON: an array of the two cells' reports, the warm-up reported apart.
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    let cells = json.as_array().unwrap();
    assert_eq!(cells.len(), 2);
    assert_eq!(cells[0]["warmup_reps"].as_array().unwrap().len(), 1);
    assert!(
        cells[0]["warmup_summary"]["load_ms"]["mean"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert_eq!(cells[0]["reps"].as_array().unwrap().len(), 1);
    // CSV: a row per measured repetition of each cell, one header, full precision.
    let csv = std::fs::read_to_string(dir.path().join("r.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.lines().next().unwrap().ends_with(
        ",cell_id,hostname,started_utc,git_commit,gpu_layers,gpu_layers_on_gpu,offload,type_k,type_v,\
         n_batch,n_ubatch,use_mmap"
    ));
    let jsonl = std::fs::read_to_string(dir.path().join("r.jsonl")).unwrap();
    assert_eq!(jsonl.lines().count(), 2);
}

#[test]
fn bench_cells_are_the_matrix_cells_of_the_same_axes() {
    // The same cell ids as a matrix file of these axes would give (one expansion for both).
    let out = quick(&["-p", "8", "-n", "4", "--warmup", "0", "-o", "csv"]);
    let csv = ok(&out);
    let id = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(32)
        .unwrap()
        .to_owned();
    let m = odai::matrix::spec::Matrix::parse(
        "[matrix]\nmodels = [\"synthetic:smollm2-135m:q8_0\"]\nthreads = [1]\n\
         prompt_tokens = [8]\ngen_tokens = [4]\nreps = 1\nwarmup = 0\n",
        Path::new("m.toml"),
    )
    .unwrap();
    assert_eq!(m.cells[0].id, id);
}

#[cfg(feature = "db")]
#[test]
fn sql_output_loads_into_sqlite_as_the_database_tables() {
    let out = quick(&["-p", "8", "-n", "4", "--warmup", "0", "-o", "sql"]);
    let sql = ok(&out);
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    conn.execute_batch(&sql).unwrap();
    let (model, decode): (String, f64) = conn
        .query_row("SELECT model, decode_tps_mean FROM cells", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(model, "synthetic:smollm2-135m:q8_0");
    assert!(decode > 0.0);
    let reps: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM reps WHERE phase = 'measured'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reps, 1);
}

#[test]
fn context_overflow_and_bad_model_are_clear() {
    let out = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args([
            "bench",
            "--synthetic",
            "smollm2-135m:q8_0",
            "-p",
            "9000",
            "-n",
            "4",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "odai: error: -p/-n: 9000 prompt + 4 generated tokens exceed the model's context length 8192\n"
    );
    let dir = tempfile::tempdir().unwrap();
    odai()
        .args(["bench", "--model"])
        .arg(dir.path())
        .assert()
        .code(3)
        .stderr(format!(
            "odai: error: {}: is a directory, not a GGUF file (pass the .gguf file inside it)\n",
            dir.path().display()
        ));
}

#[test]
fn worker_greets_then_refuses_a_spec_of_another_protocol() {
    let spec = r#"{"request":"rep","protocol":99,"model":"m.gguf","prompt_tokens":1,"gen_tokens":1,"seed":1,"cold":false,"token_deadline_ms":null}"#;
    let out = odai()
        .arg("worker")
        .write_stdin(format!("{spec}\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["event"], "hello");
    assert_eq!(lines[0]["protocol"], odai::protocol::PROTOCOL_VERSION);
    assert_eq!(lines[1]["event"], "error");
    assert_eq!(
        lines[1]["message"],
        format!(
            "the coordinator speaks protocol 99 but this worker speaks {}: run the same odai \
             version on both sides (odai farm deploy)",
            odai::protocol::PROTOCOL_VERSION
        )
    );
    let out = odai()
        .arg("worker")
        .write_stdin("garbage\n")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().nth(1).unwrap().contains("unreadable request"),
        "{text}"
    );
}

/// `odai contend` processes still alive with this exact memory size.
fn contenders(mem_bytes: &str) -> usize {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(" contend ") && c.contains(mem_bytes))
        .count()
}

#[test]
fn background_load_is_recorded_and_ends_with_the_run() {
    let out = bench(&[
        "--reps",
        "1",
        "--warmup",
        "0",
        "--load",
        "cpu:1,mem:33554431",
        "--cooldown",
        "100ms",
        "--format",
        "json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["provenance"]["load"], "cpu:1,mem:32.0 MiB");
    assert_eq!(v["provenance"]["cooldown"], "0.1 s");
    assert_eq!(
        contenders("33554431"),
        0,
        "the contention process outlived the run"
    );
    // On a device without energy meters, idle power says why it is missing.
    let out = bench(&["--reps", "1", "--warmup", "0", "--format", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["idle_power_w_unavailable"],
        "not measured: pass --idle-baseline DURATION"
    );
}

#[test]
fn bad_load_is_a_usage_error() {
    odai()
        .args(["bench", "--synthetic", "smollm2-135m:q8_0", "--load", "gpu:1"])
        .assert()
        .code(2)
        .stderr("odai: error: --load: \"gpu:1\" is not a load (use none, cpu:N, mem:SIZE or cpu:N,mem:SIZE)\n");
}

#[test]
fn unknown_headroom_runs_with_a_warning_not_a_guess() {
    let hostile = common::repo().join("tests/fixtures/hostile");
    let out = bench(&[
        "--reps",
        "1",
        "--warmup",
        "0",
        "--format",
        "json",
        "--root",
        hostile.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .starts_with("memory fit not checked: the device's headroom is unavailable (unparsable: /proc/meminfo")),
        "{}",
        v["warnings"]
    );
    assert_eq!(v["provenance"]["device"]["headroom_bytes"], Value::Null);
}

/// `odai` with its CPU affinity narrowed to CPU 0 before exec, as `taskset -c 0` does.
#[cfg(target_os = "linux")]
fn on_cpu_0(args: &[&str]) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_odai"));
    cmd.env_remove("ODAI_ROOT")
        .env("ODAI_CACHE_DIR", cache())
        .args(args);
    // SAFETY: sched_setaffinity on the child between fork and exec touches no shared state.
    unsafe {
        cmd.pre_exec(|| {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(0, &mut set);
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.output().unwrap()
}

// sched_setaffinity(2) is Linux's.
#[cfg(target_os = "linux")]
#[test]
fn regression_threads_follow_cpu_affinity() {
    // Found in review: under `taskset -c 0` odai reported every CPU and ran one thread per CPU
    // of the machine on the one it was allowed.
    let probe = on_cpu_0(&["probe", "--no-gpu", "--format", "json"]);
    assert!(probe.status.success());
    let p: Value = serde_json::from_slice(&probe.stdout).unwrap();
    assert_eq!(p["cpu"]["allowed_cpus"], "0");
    assert_eq!(p["cpu"]["allowed_cores"], 1);
    assert_eq!(p["cpu"]["allowed_physical_cores"], 1);
    let text = on_cpu_0(&["probe", "--no-gpu"]);
    assert!(
        String::from_utf8_lossy(&text.stdout)
            .contains("default threads   1 (1 physical core(s) the process may use)"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    let run = |extra: &[&str]| {
        let mut args = vec![
            "bench",
            "--synthetic",
            "smollm2-135m:q8_0",
            "-p",
            "8",
            "-n",
            "4",
            "--reps",
            "1",
            "--warmup",
            "0",
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        let out = on_cpu_0(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // The default: one thread on the one allowed CPU.
    let v = run(&[]);
    assert_eq!(v["provenance"]["threads"], 1);
    assert_eq!(v["reps"][0]["threads"], 1);
    // Asking for more is honoured, with a warning that says what the figures then mean.
    let v = run(&["--threads", "2"]);
    assert_eq!(v["reps"][0]["threads"], 2);
    assert!(
        v["warnings"].as_array().unwrap().iter().any(|w| w
            == "--threads 2 on 1 allowed CPU(s) (0): threads share CPUs, so the figures include time-slicing"),
        "{}",
        v["warnings"]
    );
}

#[test]
fn regression_exports_and_endpoints_are_checked_before_the_first_cell() {
    // Found in review: an export into a missing directory failed only after the benchmark had
    // run ("cannot write /nonexistent/dir/.r.json.tmp"), and a mistyped --endpoint failed every
    // repetition instead of the command line.
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dir/r.json");
    let out = odai()
        .args([
            "bench",
            "--synthetic",
            "toy:q8_0",
            "-p",
            "4",
            "-n",
            "2",
            "-r",
            "1",
        ])
        .arg("--export-json")
        .arg(&missing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "odai: error: {}: cannot export there: {} is not a directory (create it, or name \
             another file; nothing was run)\n",
            missing.display(),
            dir.path().join("no-such-dir").display()
        )
    );
    assert!(out.stdout.is_empty(), "nothing measured");
    // A directory named as the file.
    let out = odai()
        .args([
            "bench",
            "--synthetic",
            "toy:q8_0",
            "-p",
            "4",
            "-n",
            "2",
            "-r",
            "1",
        ])
        .arg("--export-csv")
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .ends_with(": is a directory: name a file to export to\n")
    );
    let out = odai()
        .args([
            "bench",
            "--endpoint",
            "htp:/bad",
            "-m",
            "x",
            "-p",
            "2",
            "-n",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "odai: error: --endpoint \"htp:/bad\": not an http:// or https:// URL (example: \
         http://127.0.0.1:8080/v1)\n"
    );
}

#[test]
fn regression_a_model_with_nan_weights_is_benchmarked_with_a_warning() {
    // Found in review: NaN weights benchmarked without a word. The toy model's last 64 KiB of
    // weights (its last layer's feed-forward and output norm) overwritten with 0xFF: NaN as f32,
    // as f16 and as every Q8_0 block's scale.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("nan.gguf");
    ok(&odai()
        .args([
            "model", "synth", "--preset", "toy", "--quant", "q8_0", "--output",
        ])
        .arg(&model)
        .output()
        .unwrap());
    let mut bytes = fs::read(&model).unwrap();
    let n = bytes.len();
    bytes[n - 65536..].fill(0xFF);
    fs::write(&model, bytes).unwrap();
    let out = odai()
        .args(["bench", "--model"])
        .arg(&model)
        .args([
            "-p", "8", "-n", "4", "-t", "1", "-r", "1", "--format", "json",
        ])
        .args(["--sample-interval", "off"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_str(&ok(&out)).unwrap();
    let warnings: Vec<&str> = v["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        warnings.contains(
            &"the model's logits were NaN or infinite in 6 of 6 forward passes: its weights hold \
              NaN or overflow (a damaged or mis-converted file?), so these figures time \
              arithmetic on NaN, not a working model (odai quality scores its output)"
        ),
        "{warnings:?}"
    );
}

/// `-ctk`/`-ctv` (llama-bench's flags) are an axis: a cell per type pair, each recording the
/// types the engine held, the table gaining llama-bench's `type_k`/`type_v` columns, and the
/// memory estimate sizing the cache in them. A runtime without a cache to type is refused.
#[test]
fn kv_cache_types_are_an_axis_recorded_per_cell() {
    let out = quick(&[
        "-p", "8", "-n", "4", "--warmup", "0", "-ctk", "f16,q8_0", "-ctv", "q4_0", "-o", "json",
    ]);
    let cells: Vec<Value> = serde_json::from_str(&ok(&out)).unwrap();
    let types: Vec<(&str, &str)> = cells
        .iter()
        .map(|c| {
            let p = &c["provenance"];
            (p["type_k"].as_str().unwrap(), p["type_v"].as_str().unwrap())
        })
        .collect();
    assert_eq!(types, [("f16", "q4_0"), ("q8_0", "q4_0")]);
    // SmolLM2-135M's shape: 30 layers × 3 KV heads, 64-dim heads: a q8_0 key is 68 bytes, a
    // q4_0 value 36, an f16 key 128; the cache is sized at 256 positions (its first allocation).
    let kv = |c: &Value| c["memory_needs"]["kv_cache_bytes"].as_u64().unwrap();
    assert_eq!(kv(&cells[0]), 256 * 30 * 3 * (128 + 36));
    assert_eq!(kv(&cells[1]), 256 * 30 * 3 * (68 + 36));
    assert_eq!(cells[1]["memory_needs"]["kv_cache"], "q8_0/q4_0");
    let md = ok(&quick(&[
        "-p", "8", "-n", "2", "--warmup", "0", "-ctk", "q8_0", "-o", "md",
    ]));
    assert!(
        md.starts_with(
            "| model | size | params | runtime | backend | ngl | threads | type_k | type_v | test |"
        ),
        "{md}"
    );
    assert!(md.contains("| q8_0 | f16 | pp8 |"), "{md}");
    let out = quick(&["-p", "8", "-n", "2", "--runtime", "candle", "-ctk", "q8_0"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "odai: error: --cache-type-k/--cache-type-v: none of the runtimes asked for has a KV cache \
         to type: odai's engine, auto and llama.cpp do (candle's is f32 only; an endpoint's is the \
         server's own)\n"
    );
}

/// llama-bench's `-b`, `-ub` and `-mmp`: each combination a cell that records what the runtime
/// ran with (llama-bench's `n_batch`, `n_ubatch`, `use_mmap`), the table gaining their columns,
/// and the memory estimate sizing the working memory by the micro-batch and the file as read.
/// candle, which cannot map a file, is refused `--mmap`.
#[test]
fn batch_micro_batch_and_mapping_are_an_axis_recorded_per_cell() {
    let out = quick(&[
        "-p", "40", "-n", "2", "--warmup", "0", "-b", "32", "-ub", "8,16", "-mmp", "0", "-o",
        "json",
    ]);
    let cells: Vec<Value> = serde_json::from_str(&ok(&out)).unwrap();
    let ran: Vec<(u64, u64, bool)> = cells
        .iter()
        .map(|c| {
            let p = &c["provenance"];
            (
                p["n_batch"].as_u64().unwrap(),
                p["n_ubatch"].as_u64().unwrap(),
                p["use_mmap"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(ran, [(32, 8, false), (32, 16, false)]);
    let needs = |c: &Value, k: &str| c["memory_needs"][k].clone();
    assert_eq!(needs(&cells[0], "mmap"), false);
    // The activations of 8 positions a pass against 16: SmolLM2-135M's 576-wide residual and
    // 1,536-wide FFN, f32 (runtime::memory's `activations`).
    let working = |c: &Value| needs(c, "working_bytes").as_u64().unwrap();
    assert_eq!(
        working(&cells[1]) - working(&cells[0]),
        4 * 8 * (4 * 576 + 3 * 1536)
    );
    for c in &cells {
        assert!(c["summary"]["prefill_tps"]["mean"].as_f64().unwrap() > 0.0);
    }
    let md = ok(&quick(&[
        "-p", "8", "-n", "2", "--warmup", "0", "-ub", "4", "--mmap", "0", "-o", "md",
    ]));
    assert!(
        md.starts_with(
            "| model | size | params | runtime | backend | ngl | threads | n_batch | n_ubatch | \
             mmap | test |"
        ),
        "{md}"
    );
    assert!(md.contains("| 2048 | 4 | 0 | pp8 |"), "{md}");
    let out = quick(&["-p", "8", "-n", "2", "--runtime", "candle", "--mmap", "1"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "odai: error: --mmap: none of the runtimes asked for can map the model file: odai's \
         engine, auto and llama.cpp can (candle always reads it; an endpoint's model is the \
         server's)\n"
    );
}

/// llama-bench's `-d`: each depth a cell whose prompt is prefilled after that many tokens
/// already in the context (`pp8 @ d16`) and whose decode follows it (`tg4 @ d24`); the memory
/// estimate sizes the whole context.
#[test]
fn depth_measures_the_prompt_and_the_decode_after_tokens_already_held() {
    let out = quick(&[
        "-p", "8", "-n", "4", "--warmup", "0", "-d", "0,16", "-o", "json",
    ]);
    let cells: Vec<Value> = serde_json::from_str(&ok(&out)).unwrap();
    let depths: Vec<u64> = cells
        .iter()
        .map(|c| c["provenance"]["depth"].as_u64().unwrap())
        .collect();
    assert_eq!(depths, [0, 16]);
    assert_eq!(cells[1]["memory_needs"]["context"], 16 + 8 + 4);
    for c in &cells {
        assert!(c["summary"]["prefill_tps"]["mean"].as_f64().unwrap() > 0.0);
        assert!(c["summary"]["decode_tps"]["mean"].as_f64().unwrap() > 0.0);
    }
    let md = ok(&quick(&[
        "-p", "8", "-n", "4", "--warmup", "0", "-d", "16", "-o", "md",
    ]));
    let tests = md_tests(&md);
    assert_eq!(tests, ["pp8 @ d16", "tg4 @ d24"], "{md}");
    // Decode at a depth alone: no prompt, the decode right after the depth.
    let md = ok(&quick(&[
        "-p", "0", "-n", "4", "--warmup", "0", "-d", "16", "-o", "md",
    ]));
    assert!(md.contains("| tg4 @ d16 |"), "{md}");
}

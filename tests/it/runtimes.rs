//! Runtimes through the binary: the `openai` runtime against llama.cpp's real llama-server (and a
//! real HTTP server for the faults llama-server cannot stage), llama.cpp linked in (feature
//! `llama-cpp`), and what a binary without it says.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;
use crate::common::servers;

use std::fs;

use common::{odai, test_model};
use serde_json::Value;
use servers::{Answer, FaultServer, LlamaServer, free_port, llama_server_bin};

const KEY_ENV: &str = "ODAI_TEST_API_KEY";

/// `odai bench` against an endpoint, the sampler off; callers add reps, format, environment.
fn bench_cmd(url: &str, model: &str, p: &str, n: &str) -> assert_cmd::Command {
    let mut c = odai();
    c.args([
        "bench",
        "--endpoint",
        url,
        "--model",
        model,
        "-p",
        p,
        "-n",
        n,
    ])
    .args(["--sample-interval", "off"]);
    c
}

fn bench_endpoint(url: &str, extra: &[&str]) -> std::process::Output {
    bench_cmd(url, "smollm2", "32", "8")
        .args(extra)
        .output()
        .unwrap()
}

/// llama-server on the test model (and the directory holding its log), or `None` where it is
/// not built and not required.
fn llama_server(api_key: Option<&str>) -> Option<(tempfile::TempDir, LlamaServer)> {
    let bin = llama_server_bin()?;
    let dir = tempfile::tempdir().unwrap();
    let server = LlamaServer::start(&bin, &test_model(), dir.path(), api_key);
    Some((dir, server))
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn an_endpoint_is_measured_through_llama_server_and_no_text_is_kept() {
    let Some((_dir, server)) = llama_server(Some("s3cret")) else {
        return;
    };
    let out = bench_cmd(&server.url(), "smollm2", "64", "16")
        .env(KEY_ENV, "s3cret")
        .args(["--reps", "3", "--warmup", "1"])
        .args(["--api-key-env", KEY_ENV, "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains("s3cret"), "the API key is never written");
    let v: Value = serde_json::from_str(&text).unwrap();
    let p = &v["provenance"];
    assert_eq!(p["runtime"], "openai");
    assert_eq!(p["runtime_requested"], "openai");
    assert_eq!(p["backend"], "http");
    assert_eq!(p["endpoint"], server.url());
    assert_eq!(p["model_file"], "smollm2");
    assert!(p["model_sha256"].is_null() && p["quant"].is_null());
    assert!(v["roofline"].is_null() && v["memory_needs"].is_null());
    let reps = v["reps"].as_array().unwrap();
    assert_eq!(reps.len(), 3);
    for r in reps {
        let e = &r["endpoint"];
        assert!(e["connect_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(
            r["load_ms"], e["connect_ms"],
            "load_ms is the connection set-up"
        );
        assert!(r["ttft_ms"].as_f64().unwrap() > 0.0);
        assert!(r["decode_tps"].as_f64().unwrap() > 0.0);
        assert!(
            r["peak_rss_bytes"].is_null(),
            "the model's memory is not here"
        );
        // The warm-up taught odai the endpoint's tokens per word: measured reps land near 64.
        let prompt = e["usage_prompt_tokens"].as_u64().unwrap();
        assert!((48..=80).contains(&prompt), "prompt tokens {prompt}");
        assert!(e["usage_completion_tokens"].as_u64().unwrap() >= 2);
        // llama-server reports its own timings; odai records them beside its own clock.
        let t = &e["server_timings"];
        // Regression: every rep sent the same prompt, so llama-server answered from its prompt
        // cache (TTFT 18 ms for 64 tokens) and the cloud looked 15x faster than it prefills.
        // Each request now has its own prompt: the server evaluates (nearly) all of it.
        let evaluated = t["prompt_n"].as_u64().unwrap();
        assert!(
            evaluated * 2 >= prompt,
            "server evaluated {evaluated} of {prompt} prompt tokens"
        );
        assert!(t["predicted_ms"].as_f64().unwrap() > 0.0);
        assert_eq!(
            r["token_ms"].as_array().unwrap().len() as u64 + 1,
            e["chunks"].as_u64().unwrap()
        );
    }
    assert_eq!(v["failed_reps"].as_array().unwrap().len(), 0);
    // Prompt and completion text never reach results.
    for word in ["\"content\"", "\"messages\"", "\"text\""] {
        assert!(!text.contains(word), "{word} in results");
    }
}

#[test]
fn a_wrong_api_key_fails_every_rep_with_one_line() {
    let Some((_dir, server)) = llama_server(Some("s3cret")) else {
        return;
    };
    let out = bench_cmd(&server.url(), "smollm2", "16", "4")
        .env(KEY_ENV, "wrong")
        .args(["--reps", "2", "--warmup", "0", "--api-key-env", KEY_ENV])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "odai: error: smollm2 at {}: every repetition failed (2 of 2); the last: HTTP 401 \
             Unauthorized: Invalid API Key (check the key in --api-key-env)\n",
            server.url()
        )
    );
}

#[test]
fn an_unset_api_key_variable_is_named() {
    let out = odai()
        .env_remove("ODAI_TEST_UNSET_KEY")
        .args([
            "bench",
            "--endpoint",
            "http://127.0.0.1:9/v1",
            "--model",
            "m",
        ])
        .args(["-p", "16", "-n", "4", "--reps", "1", "--warmup", "0"])
        .args(["--api-key-env", "ODAI_TEST_UNSET_KEY"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with(
            "the last: --api-key-env ODAI_TEST_UNSET_KEY: the environment variable \
             ODAI_TEST_UNSET_KEY is not set (export it with the API key)\n"
        ),
        "{}",
        stderr(&out)
    );
}

/// Each fault, one line: what failed and why, and the exit status a script can test.
#[test]
fn endpoint_faults_are_one_clear_line_each() {
    let cases: Vec<(Answer, &str)> = vec![
        (
            Answer::Status(500, "Internal Server Error", r#"{"error":{"message":"boom"}}"#.into()),
            "HTTP 500 Internal Server Error: boom",
        ),
        (
            Answer::Status(429, "Too Many Requests", r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#.into()),
            "HTTP 429 Too Many Requests: Rate limit reached (rate limited)",
        ),
        (
            Answer::Status(
                404,
                "Not Found",
                r#"{"error":{"message":"The model `smollm2` does not exist","type":"invalid_request_error","code":"model_not_found"}}"#.into(),
            ),
            "HTTP 404 Not Found: The model `smollm2` does not exist (check --model and the endpoint's path, e.g. .../v1)",
        ),
        (
            Answer::Stream("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\ndata: {not json\n\n".into()),
            "malformed event stream: a data line is not JSON (key must be a string at line 1 column 2): \"{not json\"",
        ),
        (
            Answer::Stream("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n<html>oops</html>\n".into()),
            "malformed event stream: a line that is not a server-sent event: \"<html>oops</html>\"",
        ),
        (
            Answer::Stream("data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n".into()),
            "the connection closed mid-stream after 1 content chunk(s), before data: [DONE]",
        ),
        (Answer::Stall, "the endpoint sent nothing for 1s while waiting for the response (stalled; the limit is --request-timeout)"),
    ];
    for (answer, reason) in cases {
        let server = FaultServer::start(answer);
        let out = bench_endpoint(
            &server.url(),
            &["--reps", "2", "--warmup", "0", "--request-timeout", "1s"],
        );
        assert_eq!(out.status.code(), Some(1), "{reason}");
        assert_eq!(
            stderr(&out),
            format!(
                "odai: error: smollm2 at {}: every repetition failed (2 of 2); the last: {reason}\n",
                server.url()
            )
        );
    }
    let port = free_port();
    let out = bench_endpoint(
        &format!("http://127.0.0.1:{port}/v1"),
        &["--reps", "1", "--warmup", "0"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "odai: error: smollm2 at http://127.0.0.1:{port}/v1: every repetition failed (1 of 1); \
             the last: cannot connect to 127.0.0.1:{port}: Connection refused (os error 111)\n"
        )
    );
}

/// A matrix with endpoint cells: llama-server killed in the middle of one cell's stream. The cell
/// before it stays recorded, the killed one is recorded failed with the reason, the next one
/// (the server is gone: connection refused) too, and the run ends with every cell on disk.
#[test]
fn regression_hostile_endpoints_end_within_their_limits_in_one_line() {
    // Found in review: an endless event stream grew odai to 3.6 GB in 40 s and never stopped
    // (-n 8 asked); a server sending a header line every 2 s never timed out under
    // --request-timeout 5s (the timeout was per read). Each now ends at its bound: content
    // chunks at twice the tokens asked and 16, the head within --request-timeout, a stream
    // that never finishes at --request-timeout per token asked (and two more), a line at 1 MiB.
    let cases: Vec<(Answer, &str)> = vec![
        (
            Answer::Endless,
            "the endpoint streamed more than 18 content chunks for max_tokens 1: it does not stop \
             at max_tokens",
        ),
        (
            Answer::SlowHead,
            "the response head did not arrive whole within 1s (the limit is --request-timeout)",
        ),
        (
            Answer::Trickle,
            "the request ran past its limit of 3s (the cell's deadline, or --request-timeout per \
             token asked)",
        ),
        (
            Answer::HugeLine(8 << 20),
            "reading the stream after 0 chunk(s): a line longer than 1 MiB",
        ),
    ];
    for (answer, reason) in cases {
        let server = FaultServer::start(answer);
        // A regression fails here instead of hanging the suite.
        let out = bench_cmd(&server.url(), "smollm2", "32", "1")
            .args(["--reps", "1", "--warmup", "0", "--request-timeout", "1s"])
            .timeout(std::time::Duration::from_secs(120))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{reason}");
        assert_eq!(
            stderr(&out),
            format!(
                "odai: error: smollm2 at {}: every repetition failed (1 of 1); the last: {reason}\n",
                server.url()
            )
        );
    }
}

#[test]
fn regression_an_endpoint_echoing_the_api_key_never_shows_it() {
    // Found in review: an endpoint that echoes the Authorization header put the API key on
    // stderr (and into every file a failed cell's reason reaches).
    let server = FaultServer::start(Answer::EchoAuth);
    let out = bench_cmd(&server.url(), "smollm2", "32", "8")
        .env("ODAI_TEST_SECRET_KEY", "sk-test-0123456789abcdef")
        .args([
            "--reps",
            "1",
            "--warmup",
            "0",
            "--api-key-env",
            "ODAI_TEST_SECRET_KEY",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "odai: error: smollm2 at {}: every repetition failed (1 of 1); the last: HTTP 401 \
             Unauthorized: Invalid credentials: Bearer [API key redacted] (check the key in \
             --api-key-env)\n",
            server.url()
        )
    );
}

#[test]
fn regression_server_text_is_no_formula_and_no_escape_sequence() {
    // Found in review: device- and server-supplied text reached measurements.csv with spreadsheet
    // formula prefixes (=HYPERLINK(…)) and the operator's terminal with raw escape sequences.
    // A server whose system_fingerprint (recorded as the runtime version) is both.
    let hostile =
        "=HYPERLINK(\\\"http://evil.example\\\",\\\"ok\\\")\\u001b]0;pwned\\u0007\\u001b[2J";
    let mut events: Vec<String> = (0..4)
        .map(|i| {
            format!(
                "data: {{\"choices\":[{{\"delta\":{{\"content\":\"t{i}\"}}}}],\
                 \"system_fingerprint\":\"{hostile}\"}}\n\n"
            )
        })
        .collect();
    events.push("data: [DONE]\n\n".into());
    let server = FaultServer::start(Answer::Chunked(events));
    let run = bench_cmd(&server.url(), "smollm2", "16", "4")
        .args(["--reps", "1", "--warmup", "0", "--format", "csv"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let csv = String::from_utf8(run.stdout.clone()).unwrap();
    assert!(
        csv.contains(",\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"ok\"\")\\u{1b}]0;pwned\\u{7}\\u{1b}[2J\","),
        "{csv}"
    );
    for (what, bytes) in [("the CSV", csv.as_bytes()), ("stderr", &run.stderr[..])] {
        assert!(!bytes.contains(&0x1b), "a raw ESC in {what}");
    }
}

#[test]
fn regression_an_endpoint_cell_ends_at_the_cell_timeout() {
    // Found in review: in `matrix run` an endpoint cell whose server kept the connection busy
    // ignored --cell-timeout (and SIGTERM and SIGINT) for ten minutes while holding the
    // results lock. Its requests now share the cell's deadline.
    let server = FaultServer::start(Answer::Trickle);
    let dir = tempfile::tempdir().unwrap();
    let matrix = dir.path().join("m.toml");
    fs::write(
        &matrix,
        format!(
            "[matrix]\nmodels = [{{ endpoint = \"{}\", model = \"smollm2\" }}]\nthreads = [1]\n\
             prompt_tokens = [16]\ngen_tokens = [64]\nreps = 2\nwarmup = 0\n",
            server.url()
        ),
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = odai()
        .args(["matrix", "run"])
        .arg(&matrix)
        .arg("--out")
        .arg(&out_dir)
        .args(["--sample-interval", "off", "--cell-timeout", "2s"])
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let recs: Vec<Value> = fs::read_to_string(out_dir.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["status"], "failed");
    let reason = recs[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("the request ran past its limit of 2s")
            || reason.contains("ran past the cell's deadline of 2s"),
        "{reason}"
    );
}

#[test]
fn a_server_killed_mid_stream_fails_that_cell_and_the_matrix_goes_on() {
    let Some((dir, mut server)) = llama_server(None) else {
        return;
    };
    // A second endpoint after the killed one: the run must go on to it.
    let busy = FaultServer::start(Answer::Status(
        429,
        "Too Many Requests",
        r#"{"error":{"message":"slow down"}}"#.into(),
    ));
    let matrix = dir.path().join("m.toml");
    fs::write(
        &matrix,
        format!(
            "[matrix]\nmodels = [{{ endpoint = \"{url}\", model = \"smollm2\" }}, \
             {{ endpoint = \"{after}\", model = \"smollm2\" }}]\nthreads = [1]\n\
             prompt_tokens = [16]\ngen_tokens = [8, 3000]\nreps = 1\nwarmup = 0\n",
            url = server.url(),
            after = busy.url(),
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let mut run = std::process::Command::new(assert_cmd::cargo::cargo_bin("odai"))
        .args(["matrix", "run"])
        .arg(&matrix)
        .arg("--out")
        .arg(&out)
        .args(["--sample-interval", "off"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The second request is the 3000-token one: kill the server once it has started on it.
    let t = std::time::Instant::now();
    while server.tasks_started() < 2 {
        assert!(
            t.elapsed().as_secs() < 60,
            "the second request never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let status = run.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    let recs: Vec<Value> = fs::read_to_string(out.join("results.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 4, "every cell recorded");
    let cell = |url: &str, n: u64| {
        recs.iter()
            .find(|r| {
                let m = &r["cell"]["model"];
                r["cell"]["gen_tokens"] == n && m["kind"] == "endpoint" && m["url"] == url
            })
            .unwrap()
    };
    let first = cell(&server.url(), 8);
    assert_eq!(first["status"], "ok");
    assert_eq!(first["device"], "endpoint");
    assert_eq!(first["cell"]["runtime"], "openai");
    let killed = cell(&server.url(), 3000);
    assert_eq!(killed["status"], "failed");
    let why = killed["reason"].as_str().unwrap();
    assert!(
        why.starts_with("smollm2 at ")
            && why.contains(": every repetition failed (1 of 1); the last: ")
            && why.contains("the connection closed mid-stream after"),
        "{why}"
    );
    for n in [8, 3000] {
        let after = cell(&busy.url(), n);
        assert_eq!(after["status"], "failed");
        assert!(
            after["reason"]
                .as_str()
                .unwrap()
                .ends_with("the last: HTTP 429 Too Many Requests: slow down (rate limited)"),
            "{after}"
        );
    }
}

#[cfg(not(feature = "llama-cpp"))]
#[test]
fn a_binary_without_llama_cpp_says_how_to_build_it_in() {
    odai()
        .args([
            "generate",
            "--runtime",
            "llama.cpp",
            "--model",
            "m.gguf",
            "--prompt",
            "x",
        ])
        .assert()
        .code(2)
        .stderr(
            "odai: error: --runtime llama.cpp: this odai was built without llama.cpp; build it in \
             with `cargo install --path . --features llama-cpp` (needs cmake and libclang: \
             apt-get install cmake libclang-dev)\n",
        );
}

#[test]
fn an_unknown_runtime_lists_the_choices() {
    let out = odai()
        .args([
            "bench",
            "--runtime",
            "tensorrt",
            "--synthetic",
            "smollm2-135m:q8_0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "unknown runtime \"tensorrt\": choose one of auto, odai, candle, llama.cpp, openai"
        ),
        "{}",
        stderr(&out)
    );
}

/// `auto` runs odai's engine where it can and says why where it cannot: an F16 synthetic file
/// (a tensor type odai's kernels do not multiply) goes to candle, and the row's backend names the
/// reason; the same file on `--runtime odai` is refused with it.
#[test]
fn auto_says_why_a_file_went_to_candle() {
    let out = odai()
        .args([
            "bench",
            "--synthetic",
            "toy:f16",
            "-p",
            "4",
            "-n",
            "2",
            "--reps",
            "1",
            "--warmup",
            "0",
            "--format",
            "json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["provenance"];
    assert_eq!(p["runtime"], "candle");
    let backend = p["backend"].as_str().unwrap();
    assert!(
        backend.ends_with("(odai's engine cannot run it: token_embd.weight is F16)"),
        "{backend}"
    );
    let out = odai()
        .args([
            "bench",
            "--synthetic",
            "toy:f16",
            "--runtime",
            "odai",
            "-p",
            "4",
            "-n",
            "2",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "odai's engine cannot run it: token_embd.weight is F16 (--runtime candle or auto runs it on candle)"
        ),
        "{}",
        stderr(&out)
    );
}

/// Hybrid evidence: a device's results and an endpoint's, measured apart; the report sets each
/// class's figures beside the cloud's and cites both in the verdict's reasons.
#[test]
fn a_report_sets_each_class_beside_the_measured_cloud_baseline() {
    let Some((dir, server)) = llama_server(None) else {
        return;
    };
    let shape = "threads = [2]\nprompt_tokens = [32]\ngen_tokens = [8]\nreps = 2\nwarmup = 0\n";
    let local = dir.path().join("local.toml");
    fs::write(
        &local,
        format!(
            "[matrix]\nmodels = [{:?}]\n{shape}",
            test_model().display().to_string()
        ),
    )
    .unwrap();
    let cloud = dir.path().join("cloud.toml");
    fs::write(
        &cloud,
        format!(
            "[matrix]\nmodels = [{{ endpoint = \"{}\", model = \"smollm2\" }}]\n{shape}",
            server.url()
        ),
    )
    .unwrap();
    for (m, out) in [(&local, "device"), (&cloud, "cloud")] {
        let run = odai()
            .args(["matrix", "run"])
            .arg(m)
            .arg("--out")
            .arg(dir.path().join(out))
            .args(["--sample-interval", "off"])
            .output()
            .unwrap();
        assert!(run.status.success(), "{}", stderr(&run));
    }
    // A baseline without endpoint results is refused, naming the directory.
    let refused = odai()
        .arg("report")
        .arg(dir.path().join("device"))
        .arg("--baseline")
        .arg(dir.path().join("device"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(3));
    assert!(stderr(&refused).contains("--baseline: holds no successful endpoint results"));
    let report = dir.path().join("report");
    let run = odai()
        .arg("report")
        .arg(dir.path().join("device"))
        .arg("--baseline")
        .arg(dir.path().join("cloud"))
        .arg("--out")
        .arg(&report)
        .args(["--format", "json,md,csv"])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let v: Value =
        serde_json::from_str(&fs::read_to_string(report.join("report.json")).unwrap()).unwrap();
    let b = &v["baseline"];
    assert_eq!(b["endpoint"], format!("smollm2@{}", server.url()));
    assert!(b["ttft_ms_p95"].as_f64().unwrap() > 0.0, "{b}");
    let card = &v["scorecards"][0];
    assert!(card["cloud"]["device_ttft_ms_p95"].as_f64().unwrap() > 0.0);
    assert_eq!(card["cloud"]["cloud_ttft_ms_p95"], b["ttft_ms_p95"]);
    let reasons: Vec<&str> = card["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("ms TTFT p95 vs cloud") && r.contains(" ms (")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("tok/s in the cloud")),
        "{reasons:?}"
    );
    let md = fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("## Cloud baseline"), "{md}");
    // The device's own rows say which runtime ran them.
    let csv = fs::read_to_string(report.join("measurements.csv")).unwrap();
    let row = csv.lines().nth(1).unwrap();
    assert!(row.contains(",odai,0.1.0,cpu "), "{row}");
}

/// llama.cpp linked in, measured like every runtime: threads honoured, real peak memory, and a
/// row that asked for GPU layers on a CPU-only build says every layer ran on the CPU.
#[cfg(feature = "llama-cpp")]
#[test]
fn linked_llama_cpp_is_benchmarked_like_every_runtime() {
    let out = odai()
        .args(["bench", "--runtime", "llama.cpp", "--model"])
        .arg(test_model())
        .args([
            "-p",
            "32",
            "-n",
            "8",
            "--reps",
            "2",
            "--warmup",
            "0",
            "--threads",
            "1",
        ])
        .args([
            "--gpu-layers",
            "99",
            "--format",
            "json",
            "--sample-interval",
            "off",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = &v["provenance"];
    assert_eq!(p["runtime"], "llama.cpp");
    assert_eq!(p["runtime_requested"], "llama.cpp");
    assert_eq!(p["threads"], 1);
    assert_eq!(p["gpu_layers"], 99);
    for r in v["reps"].as_array().unwrap() {
        assert_eq!(r["threads"], 1);
        assert!(r["peak_rss_bytes"].as_u64().unwrap() > 50 << 20);
        assert!(r["decode_tps"].as_f64().unwrap() > 0.0);
        assert_eq!(r["token_ms"].as_array().unwrap().len(), 8);
        let o = &r["offload"];
        assert_eq!(
            (o["requested"].as_u64(), o["on_gpu"].as_u64()),
            (Some(99), Some(0)),
            "{o}"
        );
        // llama.cpp's own assignment, layer by layer: SmolLM2's 30 repeating layers and the
        // output layer, all on the CPU device; the weights in its mapped CPU buffer.
        assert_eq!(o["layers"], 31, "{o}");
        let split = o["split"].as_array().unwrap();
        assert_eq!(split.len(), 1, "{o}");
        assert_eq!(
            (&split[0]["cpu"], &split[0]["layers"]),
            (&Value::Bool(true), &Value::from(31))
        );
        let weights = o["weights"].as_array().unwrap();
        assert!(
            weights
                .iter()
                .any(|w| w["buffer"] == "CPU_Mapped" && w["bytes"].as_u64().unwrap() > 50 << 20),
            "{o}"
        );
    }
    let warnings = v["warnings"].to_string();
    assert!(
        warnings.contains("asked for 99 GPU layers, but every layer ran on the CPU"),
        "{warnings}"
    );
    // The rows say it too: the table's backend, llama-bench's -ngl spelling, the CSV's split.
    let md = odai()
        .args(["bench", "--runtime", "llama.cpp", "--model"])
        .arg(test_model())
        .args([
            "-p", "8", "-n", "2", "-r", "1", "--warmup", "0", "-t", "1", "-ngl", "0,99",
        ])
        .args(["--sample-interval", "off", "-o", "md"])
        .output()
        .unwrap();
    let md = common::ok(&md);
    let rows: Vec<&str> = md.lines().filter(|l| l.contains("| llama.cpp |")).collect();
    assert_eq!(rows.len(), 4, "{md}");
    assert!(
        rows[0].contains(" | 0 | 1 | pp8 |") && !rows[0].contains("fell back"),
        "{md}"
    );
    assert!(
        rows[2].contains("(asked 99 GPU layers: fell back to the CPU) | 99 | 1 | pp8 |"),
        "{md}"
    );
}

/// A whole OpenAI-style stream over HTTPS, chunked as servers send it: tokens, usage, [DONE].
fn openai_stream(tokens: usize) -> Vec<String> {
    let mut events: Vec<String> = (0..tokens)
        .map(|i| format!("data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i}\"}}}}],\"system_fingerprint\":\"fp_test\"}}\n\n"))
        .collect();
    events.push(
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":5}}\n\n"
            .into(),
    );
    events.push("data: [DONE]\n\n".into());
    events
}

#[test]
fn https_endpoints_are_measured_with_a_trusted_ca_and_refused_without() {
    let server = FaultServer::start_tls(Answer::Chunked(openai_stream(5)));
    let ca = common::fixture("tls/ca.pem");
    let out = bench_cmd(&server.url(), "m", "40", "5")
        .env("SSL_CERT_FILE", &ca)
        .args(["--reps", "2", "--warmup", "0", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["provenance"]["backend"], "https");
    assert_eq!(v["provenance"]["runtime_version"], "fp_test");
    for r in v["reps"].as_array().unwrap() {
        assert_eq!(r["endpoint"]["chunks"], 5);
        assert_eq!(r["endpoint"]["usage_prompt_tokens"], 40);
        assert_eq!(r["token_ms"].as_array().unwrap().len(), 4);
        assert!(r["endpoint"]["connect_ms"].as_f64().unwrap() > 0.0);
        assert!(r["endpoint"]["server_timings"].is_null());
    }
    let out = bench_cmd(&server.url(), "m", "40", "5")
        .env_remove("SSL_CERT_FILE")
        .args(["--reps", "1", "--warmup", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "odai: error: m at {}: every repetition failed (1 of 1); the last: TLS handshake with \
             127.0.0.1:{}: invalid peer certificate: UnknownIssuer\n",
            server.url(),
            server.port
        )
    );
}

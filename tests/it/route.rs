//! `odai route build` and `odai route explain` on a real prompt-length sweep (a matrix run of a
//! synthetic model at three prompt lengths on this machine), the HTML report's TTFT curve, and
//! the errors.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;

use common::{cache, odai, records};
use serde_json::Value;

const SWEEP: &str = "[matrix]\nmodels = [\"synthetic:smollm2-135m:q8_0\"]\nthreads = [2]\n\
                     prompt_tokens = [16, 64, 128]\ngen_tokens = [8]\nreps = 2\nwarmup = 0\n";

/// A budget every cell meets, so the rule's limits come from the measured range, not the noise.
const LENIENT: &str = "schema_version = 1\nid = \"lenient\"\nlabel = \"Lenient\"\n\
                       prompt_tokens = 64\ngen_tokens = 8\ntotal_latency_ms = 600000\n\n\
                       [criteria]\nttft_ms_p95 = { max = 600000 }\n";

#[test]
fn rules_come_from_the_sweep_cells_and_explain_says_which_fired() {
    let dir = tempfile::tempdir().unwrap();
    let m = dir.path().join("sweep.toml");
    fs::write(&m, SWEEP).unwrap();
    let out = dir.path().join("out");
    let run = odai()
        .env("ODAI_CACHE_DIR", cache())
        .args(["matrix", "run"])
        .arg(&m)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 3);
    let profile = dir.path().join("lenient.toml");
    fs::write(&profile, LENIENT).unwrap();
    let rules = dir.path().join("routing.json");
    let built = odai()
        .args(["route", "build"])
        .arg(&out)
        .arg("--profile")
        .arg(&profile)
        .arg("--output")
        .arg(&rules)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let text = String::from_utf8_lossy(&built.stdout);
    assert!(
        text.starts_with("1 rule(s) for lenient (TTFT p95 budget 600000 ms, total 600000 ms)"),
        "{text}"
    );
    let r: Value = serde_json::from_str(&fs::read_to_string(&rules).unwrap()).unwrap();
    assert_eq!(r["schema_version"], 1);
    assert_eq!(r["otherwise"], "cloud");
    let rule = &r["rules"][0];
    let class = rule["class"].as_str().unwrap().to_owned();
    assert_eq!(rule["model"], "synthetic:smollm2-135m:q8_0");
    assert_eq!(rule["runtime"], "odai");
    // Every point is a cell of the results, and the limit stops at the longest prompt measured.
    let points = rule["evidence"]["ttft_fit"]["points"].as_array().unwrap();
    assert_eq!(
        points
            .iter()
            .map(|p| p["prompt_tokens"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![16, 64, 128]
    );
    for p in points {
        let cell = recs
            .iter()
            .find(|c| c["cell_id"] == p["cell_id"])
            .expect("a real cell");
        assert_eq!(cell["cell"]["prompt_tokens"], p["prompt_tokens"]);
    }
    assert_eq!(rule["local_if"]["prompt_tokens_max"], 128);
    assert!(
        rule["evidence"]["notes"][0]
            .as_str()
            .unwrap()
            .contains("capped at the longest prompt measured (128)")
    );
    // The budget allows far more than the 8 tokens generated: the limit stops at what was
    // measured, and says so.
    assert_eq!(rule["local_if"]["gen_tokens_max"], 8);
    assert!(
        rule["evidence"]["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n
                .as_str()
                .unwrap()
                .contains("capped at the longest generation measured (8)")),
        "{rule}"
    );
    let peak = rule["local_if"]["headroom_bytes_min"].as_u64().unwrap();
    assert!(peak > 0);

    let explain_on = |class: &str, p: &str, extra: &[&str]| {
        let o = odai()
            .args(["route", "explain"])
            .arg(&rules)
            .args(["--class", class, "--prompt-tokens", p])
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let explain = |p: &str, extra: &[&str]| explain_on(&class, p, extra);
    let local = explain("100", &["--headroom", "64GiB"]);
    assert!(local.starts_with(&format!(
        "local: synthetic:smollm2-135m:q8_0 on odai (100 prompt tokens, 8 to generate, class {class})\n  rule 1 (synthetic:smollm2-135m:q8_0 on odai): fires — prompt_tokens 100 ≤ 128"
    )), "{local}");
    let long = explain("900", &[]);
    assert!(
        long.starts_with("cloud: no rule fires (900 prompt tokens"),
        "{long}"
    );
    assert!(long.contains("prompt_tokens 900 > 128"), "{long}");
    let tight = explain("100", &["--headroom", "1MiB", "--format", "json"]);
    let d: Value = serde_json::from_str(&tight).unwrap();
    assert_eq!(d["route"], "cloud");
    assert!(
        d["checks"][0]
            .as_str()
            .unwrap()
            .contains("free memory 1.0 MiB < "),
        "{d}"
    );
    let other = explain_on("no-such-class", "100", &[]);
    assert!(
        other.contains(&format!(
            "no rule for class \"no-such-class\" (rules cover: {class})"
        )),
        "{other}"
    );

    // The report draws the sweep: TTFT against prompt length with the budget line.
    let html = odai()
        .args(["report", "--format", "html", "--profile"])
        .arg(&profile)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        html.status.success(),
        "{}",
        String::from_utf8_lossy(&html.stderr)
    );
    let page = fs::read_to_string(out.join("report/report.html")).unwrap();
    assert!(
        page.contains("TTFT p95 against prompt length"),
        "the curve is drawn"
    );
    assert!(page.contains("TTFT budget 600000 ms (dashed)"));

    // Quality is per model × runtime: these cells ran on odai, so a record measured on candle
    // is not theirs, and the scorecard says where to measure instead of borrowing it.
    let record = serde_json::json!({
        "schema_version": 1, "odai_version": "0.1.0", "device": "local",
        "model": "synthetic:smollm2-135m:q8_0", "model_sha256": null,
        "runtime": {"runtime": "candle", "runtime_version": "0.11.1", "backend": "cpu"},
        "threads": 2, "perplexity": null, "kld": null, "shadow": null,
        "tasks": {"tasks_sha256": "ab", "tasks": 10, "correct": 9, "accuracy_pct": 90.0,
                  "ci95_low_pct": 60.0, "ci95_high_pct": 98.0, "by_check": {},
                  "latency_ms_p50": 1.0, "latency_ms_p95": 2.0, "items": []},
        "interrupted": false, "finished_unix_s": 1.0
    });
    fs::write(out.join("quality.jsonl"), format!("{record}\n")).unwrap();
    let q = dir.path().join("q.toml");
    fs::write(&q, format!("{LENIENT}task_accuracy_pct = {{ min = 80 }}\n")).unwrap();
    let rep = odai()
        .args(["report", "--format", "json", "--profile"])
        .arg(&q)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        rep.status.success(),
        "{}",
        String::from_utf8_lossy(&rep.stderr)
    );
    let j: Value =
        serde_json::from_str(&fs::read_to_string(out.join("report/report.json")).unwrap()).unwrap();
    let acc = j["scorecards"][0]["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["criterion"] == "task_accuracy_pct")
        .unwrap()
        .clone();
    assert_eq!(acc["outcome"], "N/A");
    assert_eq!(
        acc["reason"],
        "not measured on odai: odai quality measured it on candle (run it with --runtime odai)"
    );
}

#[test]
fn no_sweep_no_rule_and_broken_inputs_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("routing.json");
    // The fixture measured one prompt length per class: nothing to fit, said per combination.
    let built = odai()
        .args(["route", "build"])
        .arg(common::fixture("results/three-classes"))
        .arg("--output")
        .arg(&rules)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let r: Value = serde_json::from_slice(&built.stdout).unwrap();
    assert_eq!(r["rules"].as_array().unwrap().len(), 0);
    let why = r["not_written"].as_array().unwrap();
    assert!(!why.is_empty());
    assert!(
        why.iter().all(|n| n["why"]
            .as_str()
            .unwrap()
            .starts_with("1 prompt length(s) measured (32): a fit needs cells at 3 or more")),
        "{why:?}"
    );

    let tensor = odai()
        .args(["route", "build"])
        .arg(common::fixture("results/three-classes"))
        .args(["--profile", "wake-word", "--output"])
        .arg(&rules)
        .output()
        .unwrap();
    assert_eq!(tensor.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&tensor.stderr),
        "odai: error: profiles/workloads/wake-word.toml (built in): wake-word is a tensor \
         workload: routing rules solve a language workload's TTFT and latency budgets\n"
    );
    let junk = dir.path().join("junk.json");
    fs::write(&junk, "{\"rules\": 3}").unwrap();
    let o = odai()
        .args(["route", "explain"])
        .arg(&junk)
        .args(["--class", "laptop", "--prompt-tokens", "10"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with(&format!(
            "odai: error: {}: not a routing file (",
            junk.display()
        )) && err
            .trim_end()
            .ends_with("odai route build --output FILE writes one"),
        "{err}"
    );
}

//! The command line as a shell user meets it: completion scripts, `-v` logging, and the
//! spellings people bring from llama-bench and hyperfine.

// The shared helpers (tests/it/common) copy symlinked fixture trees, which is Unix code.
#![cfg(unix)]

use crate::common;

use common::{fixture, odai, ok};

fn run(args: &[&str]) -> std::process::Output {
    odai().args(args).output().unwrap()
}

#[test]
fn completion_scripts_know_every_command_and_flag() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8(out.stdout).unwrap();
        for word in ["bench", "matrix", "report", "export-json", "db"] {
            assert!(script.contains(word), "{shell}: {word}");
        }
    }
    let out = run(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid value 'tcsh'"));
}

#[test]
fn verbose_logs_to_stderr_and_quiet_stays_quiet() {
    let root = fixture("raspberry-pi-5");
    let root = root.to_str().unwrap();
    let quiet = run(&["probe", "--no-gpu", "--root", root]);
    assert!(quiet.status.success());
    assert_eq!(String::from_utf8_lossy(&quiet.stderr), "");
    let loud = run(&["-v", "probe", "--no-gpu", "--root", root]);
    assert!(loud.status.success());
    let err = String::from_utf8_lossy(&loud.stderr);
    assert!(
        err.contains("INFO") && err.contains("log level info"),
        "{err}"
    );
    // The same stdout either way: logging never mixes into the output.
    assert_eq!(loud.stdout, quiet.stdout);
}

#[test]
fn help_teaches_llama_bench_names_beside_odais() {
    let out = run(&["bench", "--help"]);
    let help = String::from_utf8(out.stdout).unwrap();
    for line in [
        "pp512        (-p 512)        -p 512 -n 0",
        "tg128 @ d512 (-d 512)        -p 512 -n 128",
        "--export-json <FILE>",
        "-o, --format <FORMAT>",
        "-r, --reps <REPS>",
    ] {
        assert!(help.contains(line), "{line}\n{help}");
    }
}

#[test]
fn every_json_document_has_a_schema_version_and_its_provenance() {
    let root = fixture("raspberry-pi-5");
    let out = odai()
        .args([
            "matrix",
            "plan",
            "matrices/quick.toml",
            "--format",
            "json",
            "--root",
        ])
        .arg(&root)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    // schema_version first, then where the document came from.
    let keys: Vec<&String> = v.as_object().unwrap().keys().take(2).collect();
    assert_eq!(keys, ["schema_version", "provenance"]);
    assert_eq!(v["schema_version"], 1);
    let p = &v["provenance"];
    assert!(p["generated_utc"].as_str().unwrap().ends_with('Z'));
    assert_eq!(p["odai_version"], env!("CARGO_PKG_VERSION"));
    assert!(!p["host"].as_str().unwrap().is_empty());
    assert!(!p["git_commit"].as_str().unwrap().is_empty());
    // Models are tagged by a documented `kind`, not serde's {"Synthetic": …}.
    let model = &v["devices"][0]["cells"][0]["model"];
    assert_eq!(model["kind"], "synthetic", "{v}");
}

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

#[test]
fn regression_usage_errors_are_one_odai_line() {
    // Found in review: clap's usage errors were five lines in clap's style ("error: …", a tip,
    // "Usage: …", "For more information…") where every other error is `odai: error: …`.
    let out = run(&["compare", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "odai: error: unexpected argument '--no-such-flag' found (tip: to pass '--no-such-flag' \
         as a value, use '-- --no-such-flag'; usage: odai compare [OPTIONS] <BASE> <NEW>; see \
         --help)\n"
    );
    let out = run(&["compare", "a", "b", "--threshold", "lots"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(
            "odai: error: invalid value 'lots' for '--threshold <PERCENT>': \"lots\" is not a \
             percentage (examples: 5%, 2.5)"
        ),
        "{err}"
    );
    // --help is not an error: clap's text, on stdout, exit 0.
    let help = run(&["compare", "--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(help.stderr.is_empty());
}

#[test]
fn regression_version_names_the_commit_target_and_features() {
    // Found in review: `odai --version` said "odai 0.1.0" and nothing a bug report needs.
    let out = run(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    let v = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = v.lines().collect();
    assert_eq!(lines[0], concat!("odai ", env!("CARGO_PKG_VERSION")), "{v}");
    assert!(lines[1].starts_with("commit "), "{v}");
    assert!(
        lines[2].starts_with("target ") && lines[2].contains(std::env::consts::ARCH),
        "{v}"
    );
    assert!(lines[3].starts_with("features "), "{v}");
    if cfg!(feature = "db") {
        assert!(lines[3].contains("db"), "{v}");
    }
    if cfg!(feature = "llama-cpp") {
        assert!(lines[3].contains("llama-cpp"), "{v}");
    }
    // -V: the first line alone (what `farm deploy` compares).
    let short = run(&["-V"]);
    assert_eq!(
        String::from_utf8_lossy(&short.stdout),
        format!("{}\n", lines[0])
    );
}

#[test]
fn regression_top_level_help_lists_every_exit_code() {
    // Found in review: the help listed 0–4 and 130, not 5 (a tripped gate).
    let out = run(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for code in [
        "0 success",
        "1 failure",
        "2 usage error",
        "3 bad input",
        "4 model does not fit",
        "5 a release gate tripped",
        "130 interrupted",
    ] {
        assert!(help.contains(code), "{code}: {help}");
    }
}

#[test]
fn regression_flags_mean_one_thing_in_every_command() {
    // Found in review: -o was a format in bench and a file in route build and model synth; the
    // workload was --workload in profile and --profile elsewhere; a request timeout was
    // --request-timeout in bench and --timeout in quality; --model and --gen-tokens had -m and
    // -n in some commands only.
    use clap::CommandFactory;
    fn walk(cmd: &clap::Command, path: String, seen: &mut Vec<String>) {
        for a in cmd.get_arguments() {
            let long = a.get_long().unwrap_or_default();
            let short = a.get_short();
            let at = format!("{path} --{long}");
            if short == Some('o') {
                assert_eq!(long, "format", "{at}: -o is the output format everywhere");
            }
            if long == "format" {
                assert_eq!(short, Some('o'), "{at}: --format has -o");
            }
            for (l, s) in [("model", 'm'), ("gen-tokens", 'n'), ("prompt-tokens", 'p')] {
                if long == l {
                    assert_eq!(short, Some(s), "{at}: --{l} has -{s}");
                }
            }
            assert!(
                !["workload", "timeout"].contains(&long),
                "{at}: the workload is --profile, a request timeout --request-timeout"
            );
            seen.push(at);
        }
        for sub in cmd.get_subcommands() {
            walk(sub, format!("{path} {}", sub.get_name()), seen);
        }
    }
    let mut seen = Vec::new();
    walk(&odai::cli::Cli::command(), "odai".into(), &mut seen);
    assert!(
        seen.iter().any(|a| a == "odai profile --profile"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|a| a == "odai quality --request-timeout"));
    // The older spellings still work, with a warning where the meaning of -o moved.
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("toy.gguf");
    let out = odai()
        .args(["model", "synth", "--preset", "toy", "--quant", "q8_0", "-o"])
        .arg(&gguf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(gguf.exists());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "odai: warning: `-o {0}` is the older spelling: -o is the output format in every \
             odai command; write --output {0}\n",
            gguf.display()
        )
    );
    // -o is the format in compare and report too.
    let fixture = common::fixture("results/three-classes");
    let cmp = odai()
        .arg("compare")
        .arg(&fixture)
        .arg(&fixture)
        .args(["-o", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&cmp.stdout).unwrap();
    assert_eq!(v["verdict"], "PASS");
}

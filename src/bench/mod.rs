//! One benchmark cell: repetitions run in fresh worker processes, their measurements collected,
//! summarized and checked. Each repetition goes through the worker protocol (`crate::client`).

pub mod cell;
pub mod load;
pub mod stats;
pub mod sustained;
pub mod telemetry;
pub mod tensor;
pub mod worker;

use std::path::Path;
use std::process::Command;

use crate::client;
use crate::protocol::{self, CellSpec, Event, RepResult, Request};

/// `exe worker`, dying with the thread that starts it: a cell worker stopped by its coordinator
/// leaves no benchmark running on the device.
fn worker_command(exe: &Path) -> Command {
    let mut cmd = Command::new(exe);
    cmd.arg("worker");
    crate::platform::die_with_parent(&mut cmd);
    cmd
}

/// Runs one repetition in a fresh `odai worker` child of the binary at `exe`.
pub fn run_rep(exe: &Path, spec: &CellSpec, threads: Option<u32>) -> Result<RepResult, String> {
    let mut cmd = worker_command(exe);
    if let Some(t) = threads {
        // candle sizes its thread pool from RAYON_NUM_THREADS, once per process.
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    let oom_kills = || crate::probe::memory::oom_kills(&crate::sysroot::SysRoot::live());
    match client::call(
        cmd,
        &Request::Rep(Box::new(spec.clone())),
        &client::Options {
            oom_kills: &oom_kills,
            ..client::Options::default()
        },
    ) {
        Ok(Event::Result(r)) => Ok(*r),
        Ok(_) => Err(format!(
            "the worker answered a repetition with something else (protocol {})",
            protocol::PROTOCOL_VERSION
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs a tensor-model benchmark in a fresh `odai worker` child of the binary at `exe`.
pub fn run_tensor(
    exe: &Path,
    spec: &tensor::TensorBenchSpec,
) -> Result<tensor::TensorResult, String> {
    let cmd = worker_command(exe);
    match client::call(
        cmd,
        &Request::Tensor(Box::new(spec.clone())),
        &client::Options::default(),
    ) {
        Ok(Event::Tensor(r)) => Ok(*r),
        Ok(_) => Err(format!(
            "the worker answered a tensor benchmark with something else (protocol {})",
            protocol::PROTOCOL_VERSION
        )),
        Err(e) => Err(e.to_string()),
    }
}

// The stand-in workers are shell scripts.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn spec() -> CellSpec {
        CellSpec {
            protocol: protocol::PROTOCOL_VERSION,
            model: "m.gguf".into(),
            prompt_tokens: 1,
            gen_tokens: 1,
            depth: 0,
            seed: 1,
            cold: false,
            token_deadline_ms: None,
            root: None,
            sample_interval_s: None,
            sustained: None,
            runtime: Default::default(),
            gpu_layers: None,
            kv_types: None,
            batching: Default::default(),
            endpoint: None,
        }
    }

    /// A stand-in worker: a shell script that behaves as `body` says.
    fn fake_worker(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("worker.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A worker's greeting in this odai's protocol.
    fn hello() -> String {
        format!(
            r#"echo '{{"event":"hello","protocol":{},"odai_version":"0.1.0"}}'"#,
            protocol::PROTOCOL_VERSION
        )
    }

    #[test]
    fn regression_a_sigkill_is_called_out_of_memory_only_when_the_kernel_says_so() {
        // Found in review: every SIGKILL was labelled "likely out of memory". A `kill -9` is
        // not the OOM killer: where the kernel's count can be read, it says so.
        let dir = tempfile::tempdir().unwrap();
        let w = fake_worker(dir.path(), &format!("{}\nkill -9 $$", hello()));
        let readable = crate::probe::memory::oom_kills(&crate::sysroot::SysRoot::live()).is_some();
        assert_eq!(
            run_rep(&w, &spec(), None).unwrap_err(),
            if readable {
                "the worker was killed by SIGKILL, not by the OOM killer (the kernel counted no \
                 OOM kill)"
            } else {
                "the worker was killed by SIGKILL (out of memory? the kernel's count of OOM \
                 kills cannot be read from here)"
            }
        );
    }

    #[test]
    fn a_worker_that_dies_says_its_exit_code_and_last_words() {
        let dir = tempfile::tempdir().unwrap();
        let w = fake_worker(
            dir.path(),
            &format!("{}\necho 'first' >&2\necho 'boom' >&2\nexit 3", hello()),
        );
        assert_eq!(
            run_rep(&w, &spec(), None).unwrap_err(),
            "the worker exited with 3 without a result: boom"
        );
    }

    #[test]
    fn a_failed_workers_whole_stderr_is_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let w = fake_worker(
            dir.path(),
            &format!("{}\necho 'loading' >&2\necho 'boom' >&2\nexit 3", hello()),
        );
        let kept = std::cell::RefCell::new(String::new());
        let keep = |err: &str| kept.borrow_mut().push_str(err);
        let failed = client::call(
            worker_command(&w),
            &Request::Rep(Box::new(spec())),
            &client::Options {
                on_failed_stderr: &keep,
                ..client::Options::default()
            },
        );
        assert!(failed.is_err());
        assert_eq!(kept.borrow().as_str(), "loading\nboom\n");
    }

    #[test]
    fn a_worker_of_another_protocol_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let newer = protocol::PROTOCOL_VERSION + 1;
        let w = fake_worker(
            dir.path(),
            &format!(
                r#"echo '{{"event":"hello","protocol":{newer},"odai_version":"9.0.0"}}'; sleep 30"#
            ),
        );
        let e = run_rep(&w, &spec(), None).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "the worker speaks protocol {newer} (odai 9.0.0) but this odai"
            )),
            "{e}"
        );
    }

    #[test]
    fn garbage_on_stdout_is_outside_the_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let w = fake_worker(dir.path(), "echo 'Segmentation fault'");
        let e = run_rep(&w, &spec(), None).unwrap_err();
        assert_eq!(
            e,
            format!(
                "the worker said something outside protocol {}: \"Segmentation fault\"",
                protocol::PROTOCOL_VERSION
            )
        );
    }
}

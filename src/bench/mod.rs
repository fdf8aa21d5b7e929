//! One benchmark cell: repetitions run in fresh worker processes, their measurements collected,
//! summarized and checked. The coordinator side of the worker protocol lives here.

pub mod cell;
pub mod load;
pub mod stats;
pub mod sustained;
pub mod telemetry;
pub mod worker;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::protocol::{self, CellSpec, Event, RepResult};

/// Spawns `cmd`, retrying a few times on ETXTBSY: an executable just written (a deployed odai)
/// can be briefly "busy" while another thread's fork still holds the writer's descriptor.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                let backoff = std::time::Duration::from_millis(20 * attempt);
                std::thread::sleep(backoff);
            }
            other => return other,
        }
    }
}

/// Runs one repetition in a fresh `odai worker` child of the binary at `exe`.
pub fn run_rep(exe: &Path, spec: &CellSpec, threads: Option<u32>) -> Result<RepResult, String> {
    let mut cmd = Command::new(exe);
    cmd.arg("worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = threads {
        // candle sizes its thread pool from RAYON_NUM_THREADS, once per process.
        cmd.env("RAYON_NUM_THREADS", t.to_string());
    }
    let mut child = spawn_retrying(&mut cmd)
        .map_err(|e| format!("cannot start the worker {}: {e}", exe.display()))?;
    let line = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A worker that died at once shows up below with its exit status.
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
    }
    // Drain stderr beside stdout: a worker that fills one pipe while odai waits on the other
    // would otherwise block both.
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = e.read_to_string(&mut text);
            text
        })
    });
    let stdout = child.stdout.take().expect("piped stdout");
    let mut outcome: Option<Result<RepResult, String>> = None;
    let mut greeted = false;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<Event>(&line) {
            Ok(Event::Hello {
                protocol,
                odai_version,
            }) => {
                if let Err(e) = protocol::check_hello(protocol, &odai_version) {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(e);
                }
                greeted = true;
            }
            Ok(Event::Result(r)) if greeted => outcome = Some(Ok(*r)),
            Ok(Event::Error { message }) => outcome = Some(Err(message)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the worker said something outside protocol {}: {}",
                    protocol::PROTOCOL_VERSION,
                    crate::sysroot::excerpt(&line)
                ));
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| format!("cannot wait for the worker: {e}"))?;
    if let Some(o) = outcome {
        return o;
    }
    let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(match status.signal() {
        Some(libc::SIGKILL) => "the worker was killed by SIGKILL (likely out of memory)".to_owned(),
        Some(sig) => format!("the worker died from signal {sig}"),
        None => format!(
            "the worker exited with {} without a result{}",
            status.code().unwrap_or(-1),
            if last.is_empty() {
                String::new()
            } else {
                format!(": {last}")
            }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn spec() -> CellSpec {
        CellSpec {
            protocol: protocol::PROTOCOL_VERSION,
            model: "m.gguf".into(),
            prompt_tokens: 1,
            gen_tokens: 1,
            seed: 1,
            cold: false,
            token_deadline_ms: None,
            root: None,
            sample_interval_s: None,
            sustained: None,
        }
    }

    /// A stand-in worker: a shell script that behaves as `body` says.
    fn fake_worker(dir: &Path, body: &str) -> std::path::PathBuf {
        let p = dir.join("worker.sh");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    const HELLO: &str = r#"echo '{"event":"hello","protocol":1,"odai_version":"0.1.0"}'"#;

    #[test]
    fn a_worker_killed_by_sigkill_is_reported_as_likely_out_of_memory() {
        let dir = tempfile::tempdir().unwrap();
        let w = fake_worker(dir.path(), &format!("{HELLO}\nkill -9 $$"));
        assert_eq!(
            run_rep(&w, &spec(), None).unwrap_err(),
            "the worker was killed by SIGKILL (likely out of memory)"
        );
    }

    #[test]
    fn a_worker_that_dies_says_its_exit_code_and_last_words() {
        let dir = tempfile::tempdir().unwrap();
        let w = fake_worker(
            dir.path(),
            &format!("{HELLO}\necho 'first' >&2\necho 'boom' >&2\nexit 3"),
        );
        assert_eq!(
            run_rep(&w, &spec(), None).unwrap_err(),
            "the worker exited with 3 without a result: boom"
        );
    }

    #[test]
    fn a_worker_of_another_protocol_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let w = fake_worker(
            dir.path(),
            r#"echo '{"event":"hello","protocol":2,"odai_version":"9.0.0"}'; sleep 30"#,
        );
        let e = run_rep(&w, &spec(), None).unwrap_err();
        assert!(
            e.starts_with("the worker speaks protocol 2 (odai 9.0.0) but this odai"),
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
            "the worker said something outside protocol 1: \"Segmentation fault\""
        );
    }
}

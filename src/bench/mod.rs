//! One benchmark cell: repetitions run in fresh worker processes, their measurements collected,
//! summarized and checked. The coordinator side of the worker protocol lives here.

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
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start the worker {}: {e}", exe.display()))?;
    let line = serde_json::to_string(spec).map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        // A worker that died at once shows up below with its exit status.
        let _ = stdin.write_all(format!("{line}\n").as_bytes());
    }
    let mut stderr = child.stderr.take();
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
    let mut err = String::new();
    if let Some(s) = stderr.as_mut() {
        let _ = s.read_to_string(&mut err);
    }
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

//! `odai worker` (hidden): the device side of the versioned protocol — one [`Request`] JSON line
//! in (a repetition, a matrix cell, a probe), [`Event`] JSON lines out. Local, SSH and ADB
//! coordinators all start it the same way.

use std::io::{BufRead, Read, Write};

use crate::bench::{cell, worker};
use crate::exit;
use crate::matrix::runner;
use crate::probe::{self, bandwidth};
use crate::protocol::{self, Event, Request};
use crate::sysroot::SysRoot;

fn say(event: &Event) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, event)?;
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(())
}

fn say_progress(message: &str) {
    let _ = say(&Event::Progress {
        message: message.to_owned(),
    });
}

/// A coordinator that goes away (killed, Ctrl-C, an SSH connection dropped) closes this
/// worker's stdin: the worker then exits at once rather than run on unobserved. Its repetition
/// children die with it (PR_SET_PDEATHSIG, set when they are spawned).
fn exit_when_the_coordinator_goes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin().lock();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        // Without destructors or exit handlers, which the benchmark thread may still be using.
        crate::platform::exit_now(exit::INTERRUPTED);
    });
}

pub fn execute(root: &SysRoot) -> anyhow::Result<i32> {
    say(&Event::Hello {
        protocol: protocol::PROTOCOL_VERSION,
        odai_version: env!("CARGO_PKG_VERSION").to_owned(),
        // The live kernel's, whatever tree --root names: it is what kills.
        oom_kills: probe::memory::oom_kills_system(&SysRoot::live()),
    })?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    // The version first, from any JSON object: a request of another version may have another
    // shape, and deserves "another version", not "unreadable".
    let version = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|v| v.get("protocol").and_then(serde_json::Value::as_u64));
    let request = match version {
        Some(v) if v != u64::from(protocol::PROTOCOL_VERSION) => Err(format!(
            "the coordinator speaks protocol {v} but this worker speaks {}: run the same odai \
             version on both sides (odai farm deploy)",
            protocol::PROTOCOL_VERSION
        )),
        _ => serde_json::from_str::<Request>(&line).map_err(|e| format!("unreadable request: {e}")),
    };
    let answer = request.and_then(|r| match r {
        Request::Rep(spec) => worker::run(&spec).map(|r| Event::Result(Box::new(r))),
        Request::Tensor(spec) => {
            crate::bench::tensor::run(&spec).map(|r| Event::Tensor(Box::new(r)))
        }
        Request::Cell(req) if req.cell.tensor.is_some() => {
            exit_when_the_coordinator_goes();
            // In a fresh child, as `odai bench` runs it: the load is cold to the runtime and the
            // peak memory the cell's alone.
            runner::tensor_spec(root, &req.cell, req.sample_interval_s).and_then(|spec| {
                let exe =
                    std::env::current_exe().map_err(|e| format!("odai's own executable: {e}"))?;
                crate::bench::run_tensor(&exe, &spec).map(|r| Event::Tensor(Box::new(r)))
            })
        }
        Request::Cell(req) => {
            exit_when_the_coordinator_goes();
            cell::set_progress_sink(say_progress);
            runner::bench_config(root, &req.cell, req.sample_interval_s)
                .and_then(|c| cell::run(&c).map_err(|e| format!("{e:#}")))
                .map(|r| Event::Report(Box::new(r)))
        }
        Request::Probe {
            bandwidth,
            gpu_check,
            ..
        } => {
            let mut p = probe::run(
                root,
                &if gpu_check {
                    probe::Options {
                        gpu: probe::gpu::Enumerate::WithTimeout(std::time::Duration::from_secs(10)),
                        gpu_check: Some(probe::gpu_check::ADAPTER_LIMIT),
                        ..probe::Options::quick()
                    }
                } else {
                    probe::Options::quick()
                },
            );
            if bandwidth && !root.is_live() {
                p.bandwidth = crate::sysroot::Reading::unavailable(
                    "not measured: the device reads a captured tree (ODAI_ROOT)",
                );
            } else if bandwidth {
                let threads = p.cpu.usable_cores();
                p.bandwidth = crate::sysroot::Reading::Value(bandwidth::measure_cached(
                    root,
                    threads,
                    3,
                    &crate::engine::synth::cache_dir().join("bandwidth.jsonl"),
                ));
            }
            Ok(Event::Probe(Box::new(p)))
        }
    });
    match answer {
        Ok(event) => say(&event)?,
        Err(message) => {
            say(&Event::Error { message })?;
            return Ok(exit::FAILURE);
        }
    }
    Ok(exit::SUCCESS)
}

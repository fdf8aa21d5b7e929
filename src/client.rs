//! The coordinator's side of the worker protocol, for every transport: start the command that
//! runs `odai worker` (a local child, `ssh … odai worker`, `adb shell …`), send one request,
//! read events until the answer, with a deadline and Ctrl-C, and say what went wrong in terms a
//! runner can act on: retry (transport), give up on the device (incompatible), or record the
//! cell as failed (worker, timeout).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::protocol::{self, Event, Request};

#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// The device could not be reached or the connection dropped: worth retrying.
    Transport(String),
    /// odai is missing there, or speaks another protocol: retrying will not help.
    Incompatible(String),
    /// The worker ran and failed (an error it reported, a crash, a kill).
    Worker(String),
    /// The deadline passed; the worker was stopped.
    TimedOut(Duration),
    /// Ctrl-C: the worker was stopped.
    Interrupted,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(m) | Failure::Incompatible(m) | Failure::Worker(m) => f.write_str(m),
            Failure::TimedOut(d) => write!(
                f,
                "timed out after {} (raise --cell-timeout for long cells)",
                crate::units::duration(*d)
            ),
            Failure::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// How to run one call.
pub struct Options<'a> {
    pub deadline: Option<Duration>,
    /// Stop the worker when Ctrl-C was pressed (see [`crate::interrupt`]).
    pub interruptible: bool,
    /// Whether an exit status and the last stderr line mean the transport failed rather than
    /// the worker (ssh's 255, adb's 0 without an answer).
    pub transport_exit: &'a dyn Fn(&ExitStatus, &str) -> bool,
    pub on_progress: &'a dyn Fn(&str),
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            deadline: None,
            interruptible: false,
            transport_exit: &|_, _| false,
            on_progress: &|_| {},
        }
    }
}

/// Spawns `cmd`, retrying a few times on ETXTBSY: an executable just written (a deployed odai)
/// can be briefly "busy" while another thread's fork still holds the writer's descriptor.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                let backoff = Duration::from_millis(20 * attempt);
                std::thread::sleep(backoff);
            }
            other => return other,
        }
    }
}

/// How often a wait looks at the deadline, Ctrl-C, or whether the worker has exited.
const POLL: Duration = Duration::from_millis(100);

/// How long a run waits for its own Ctrl-C after a worker died of one.
const SIGNAL_GRACE: Duration = Duration::from_secs(2);
/// How often that wait polls the flag.
const SIGNAL_POLL: Duration = Duration::from_millis(10);

/// How long a worker that has answered may take to exit before it is stopped.
const EXIT_GRACE: Duration = Duration::from_secs(5);

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends `request` to the worker `cmd` starts and returns its answer: `result`, `report` or
/// `probe` (never `hello`, `progress` or `error`, which become the failures above).
pub fn call(mut cmd: Command, request: &Request, opts: &Options) -> Result<Event, Failure> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying(&mut cmd)
        .map_err(|e| Failure::Incompatible(format!("cannot start the worker {program}: {e}")))?;
    let line = serde_json::to_string(request).map_err(|e| Failure::Worker(e.to_string()))?;
    // Held open until the answer: a worker running a cell exits when its stdin closes.
    let mut stdin = child.stdin.take();
    if let Some(s) = stdin.as_mut() {
        // A worker that died at once shows up below with its exit status.
        let _ = s.write_all(format!("{line}\n").as_bytes());
        let _ = s.flush();
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
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let started = Instant::now();
    let mut answer: Option<Result<Event, Failure>> = None;
    let mut greeted = false;
    loop {
        if opts.interruptible && crate::interrupt::requested() {
            stop(&mut child);
            return Err(Failure::Interrupted);
        }
        if let Some(d) = opts.deadline
            && started.elapsed() > d
        {
            stop(&mut child);
            return Err(Failure::TimedOut(d));
        }
        let line = match rx.recv_timeout(POLL) {
            Ok(l) => l,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        match serde_json::from_str::<Event>(&line) {
            Ok(Event::Hello {
                protocol,
                odai_version,
            }) => {
                if let Err(e) = protocol::check_hello(protocol, &odai_version) {
                    stop(&mut child);
                    return Err(Failure::Incompatible(e));
                }
                greeted = true;
            }
            Ok(Event::Progress { message }) if greeted => (opts.on_progress)(&message),
            Ok(Event::Error { message }) if greeted => answer = Some(Err(Failure::Worker(message))),
            Ok(e @ (Event::Result(_) | Event::Report(_) | Event::Probe(_))) if greeted => {
                answer = Some(Ok(e));
                // The answer is the last line: a worker that lingers after it is not waited
                // on past a grace period.
                break;
            }
            _ => {
                stop(&mut child);
                return Err(Failure::Worker(format!(
                    "the worker said something outside protocol {}: {}",
                    protocol::PROTOCOL_VERSION,
                    crate::sysroot::excerpt(&line)
                )));
            }
        }
    }
    drop(stdin);
    if let Some(Ok(a)) = answer {
        let grace = Instant::now() + EXIT_GRACE;
        while matches!(child.try_wait(), Ok(None)) && Instant::now() < grace {
            std::thread::sleep(POLL);
        }
        stop(&mut child);
        return Ok(a);
    }
    let status = child
        .wait()
        .map_err(|e| Failure::Worker(format!("cannot wait for the worker: {e}")))?;
    if let Some(a) = answer {
        return a;
    }
    // Ctrl-C on a terminal reaches the workers too (one process group): a worker that died of
    // it did not fail, it was interrupted. The worker may see the signal before this process
    // does, so a worker ended by SIGINT or SIGTERM waits a moment for our own.
    let stopped_by = match status.signal() {
        Some(s @ (libc::SIGINT | libc::SIGTERM)) => Some(s),
        _ => None,
    };
    if opts.interruptible {
        let until = Instant::now()
            + if stopped_by.is_some() {
                SIGNAL_GRACE
            } else {
                Duration::ZERO
            };
        loop {
            if crate::interrupt::requested() {
                return Err(Failure::Interrupted);
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::sleep(SIGNAL_POLL);
        }
    }
    let err = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned();
    let said = |what: String| {
        if last.is_empty() {
            what
        } else {
            format!("{what}: {last}")
        }
    };
    if !greeted {
        return Err(match status.code() {
            Some(126 | 127) => Failure::Incompatible(said(format!(
                "odai could not be started there (exit {}; `odai farm deploy` installs it)",
                status.code().unwrap_or(0)
            ))),
            _ if status.signal() == Some(libc::SIGKILL) => {
                Failure::Worker("the worker was killed (likely out of memory)".into())
            }
            _ => Failure::Transport(said(format!(
                "{program} ended ({}) before odai answered",
                describe(&status)
            ))),
        });
    }
    Err(match status.signal() {
        Some(libc::SIGKILL) => {
            Failure::Worker("the worker was killed (likely out of memory)".into())
        }
        Some(sig) if stopped_by.is_some() => {
            Failure::Worker(format!("the worker was stopped by signal {sig}"))
        }
        Some(sig) => Failure::Worker(format!("the worker died from signal {sig}")),
        None if (opts.transport_exit)(&status, &last) => Failure::Transport(said(format!(
            "the connection was lost ({program} {})",
            describe(&status)
        ))),
        None => Failure::Worker(said(format!(
            "the worker exited with {} without a result",
            status.code().unwrap_or(-1)
        ))),
    })
}

fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}

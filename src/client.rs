//! The coordinator's side of the worker protocol, for every transport: start the command that
//! runs `odai worker` (a local child, `ssh … odai worker`, `adb shell …`), send one request,
//! read events until the answer, with a deadline and Ctrl-C, and say what went wrong in terms a
//! runner can act on: retry (transport), give up on the device (incompatible), or record the
//! cell as failed (worker, timeout).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::platform::{self, signal_of};
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
            // Their text comes from the device (a worker's words, its stderr): never raw
            // control characters on a terminal or in a report.
            Failure::Transport(m) | Failure::Incompatible(m) | Failure::Worker(m) => {
                f.write_str(&crate::units::printable(m))
            }
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
    /// The kernel's count of OOM kills where the worker runs, when odai can read it (a local
    /// worker: [`crate::probe::memory::oom_kills`]): what tells a SIGKILL from the OOM killer
    /// apart from any other.
    pub oom_kills: &'a dyn Fn() -> Option<u64>,
    /// For a worker on another machine (SSH, ADB), instead: the count before is the one its
    /// hello carries, and this asks the device for the count after (a fresh worker's hello),
    /// once, only when the worker died by SIGKILL.
    pub device_oom_kills: Option<&'a dyn Fn() -> Option<u64>>,
    /// Given the worker's stderr (its last 64 KiB) when the worker ran and failed, for the
    /// runner to keep beside the results (`DIR/logs/`): the one-line reason is its last line.
    pub on_failed_stderr: &'a dyn Fn(&str),
}

impl Default for Options<'_> {
    fn default() -> Self {
        Options {
            deadline: None,
            interruptible: false,
            transport_exit: &|_, _| false,
            on_progress: &|_| {},
            oom_kills: &|| None,
            device_oom_kills: None,
            on_failed_stderr: &|_| {},
        }
    }
}

/// Spawns `cmd`, retrying a few times on ETXTBSY: an executable just written (a deployed odai)
/// can be briefly "busy" while another thread's fork still holds the writer's descriptor.
fn spawn_retrying(cmd: &mut Command) -> std::io::Result<Child> {
    let mut attempt = 0;
    loop {
        match cmd.spawn() {
            Err(e) if crate::platform::is_text_busy(&e) && attempt < 5 => {
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

/// The longest line a worker may send: a report of a 15-minute sustained run with telemetry is a
/// few MiB; a line past this is a flood (or not odai), and reading it on would let a device
/// exhaust the coordinator's memory.
pub const MAX_WORKER_LINE: usize = 64 << 20;
/// How much of a worker's stderr is kept: its last words are at the end.
const STDERR_TAIL: usize = 64 << 10;

/// What the stdout reader hands the waiting loop.
enum Line {
    Text(String),
    TooLong,
}

/// Lines read ahead of the waiting loop. The channel is bounded so that a worker flooding
/// progress lines is slowed by its own pipe (the reader waits for room) instead of growing the
/// coordinator (an unbounded channel reached 0.2–0.75 GB per device): at most this many lines
/// and the one being read are held, each at most [`MAX_WORKER_LINE`].
const LINES_AHEAD: usize = 4;

/// Reads `stdout` line by line into `tx`, never holding more than [`MAX_WORKER_LINE`] bytes.
fn read_lines(stdout: impl Read, tx: &mpsc::SyncSender<Line>) {
    let mut r = BufReader::new(stdout);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match (&mut r)
            .take(MAX_WORKER_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) | Err(_) => return,
            Ok(n) if n > MAX_WORKER_LINE => {
                let _ = tx.send(Line::TooLong);
                return;
            }
            Ok(_) => {
                while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    buf.pop();
                }
                let text = String::from_utf8_lossy(&buf).into_owned();
                if tx.send(Line::Text(text)).is_err() {
                    return;
                }
            }
        }
    }
}

/// A worker's stderr as it is read: its last [`STDERR_TAIL`] bytes so far, and whether it has
/// ended. Shared with the waiting loop, which takes what there is once the worker has exited: a
/// process the worker started may hold the pipe open long after (see [`EXIT_DRAIN`]).
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    ended: bool,
}

/// A [`Tail`] and the signal that it has ended.
type SharedTail = (std::sync::Mutex<Tail>, std::sync::Condvar);

/// Reads `stderr` to its end into `tail`, keeping the last [`STDERR_TAIL`] bytes.
fn read_tail(mut stderr: impl Read, (tail, ended): &SharedTail) {
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stderr.read(&mut chunk) {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
        if n == 0 {
            t.ended = true;
            ended.notify_all();
            return;
        }
        t.bytes.extend_from_slice(&chunk[..n]);
        if t.bytes.len() > STDERR_TAIL {
            let cut = t.bytes.len() - STDERR_TAIL;
            t.bytes.drain(..cut);
        }
    }
}

/// The stderr read so far: all of it once it has ended, or after [`EXIT_DRAIN`] without an end.
fn stderr_text((tail, ended): &SharedTail) -> String {
    let t = tail.lock().unwrap_or_else(|p| p.into_inner());
    let (t, _) = ended
        .wait_timeout_while(t, EXIT_DRAIN, |t| !t.ended)
        .unwrap_or_else(|p| p.into_inner());
    String::from_utf8_lossy(&t.bytes).into_owned()
}

/// How long a worker that has answered may take to exit before it is stopped.
const EXIT_GRACE: Duration = Duration::from_secs(5);

/// How long the pipes of a worker that has exited are read on while they keep quiet: what it
/// wrote before exiting is in the pipe and arrives at once, but a process it started in the
/// background (a wrapper's `server &`) inherits the pipes and may hold them open for hours.
/// Found in review: such a worker cost the whole cell timeout; now it costs this.
const EXIT_DRAIN: Duration = Duration::from_secs(1);

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
    let mut oom_before = match opts.device_oom_kills {
        None => (opts.oom_kills)(),
        Some(_) => None,
    };
    let oom_after = |before: Option<u64>| match opts.device_oom_kills {
        // No count before, nothing to compare: the device is not asked.
        Some(ask) => before.and_then(|_| ask()),
        None => (opts.oom_kills)(),
    };
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
    let tail: std::sync::Arc<SharedTail> = std::sync::Arc::default();
    if let Some(e) = child.stderr.take() {
        let tail = tail.clone();
        std::thread::spawn(move || read_tail(e, &tail));
    } else {
        tail.0.lock().unwrap_or_else(|p| p.into_inner()).ended = true;
    }
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::sync_channel::<Line>(LINES_AHEAD);
    std::thread::spawn(move || read_lines(stdout, &tx));
    let started = Instant::now();
    let mut answer: Option<Result<Event, Failure>> = None;
    let mut greeted = false;
    // Since when the worker has been seen exited, or a line last arrived after that.
    let mut quiet_since_exit: Option<Instant> = None;
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
            Ok(Line::Text(l)) => l,
            Ok(Line::TooLong) => {
                stop(&mut child);
                return Err(Failure::Worker(format!(
                    "the worker sent a line longer than {} MiB (a flood, not protocol {}); it was stopped",
                    MAX_WORKER_LINE >> 20,
                    protocol::PROTOCOL_VERSION
                )));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if quiet_since_exit.is_none() && matches!(child.try_wait(), Ok(Some(_))) {
                    quiet_since_exit = Some(Instant::now());
                }
                // Exited, and its stdout quiet since: whoever holds the pipe now is not the
                // worker.
                if quiet_since_exit.is_some_and(|t| t.elapsed() >= EXIT_DRAIN) {
                    break;
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        if let Some(t) = quiet_since_exit.as_mut() {
            *t = Instant::now();
        }
        match serde_json::from_str::<Event>(&line) {
            Ok(Event::Hello {
                protocol,
                odai_version,
                oom_kills,
            }) => {
                if let Err(e) = protocol::check_hello(protocol, &odai_version) {
                    stop(&mut child);
                    return Err(Failure::Incompatible(e));
                }
                greeted = true;
                if opts.device_oom_kills.is_some() {
                    oom_before = oom_kills;
                }
            }
            Ok(Event::Progress { message }) if greeted => {
                (opts.on_progress)(&crate::units::printable(&message));
            }
            Ok(Event::Error { message }) if greeted => answer = Some(Err(worker_failure(message))),
            Ok(e @ (Event::Result(_) | Event::Report(_) | Event::Probe(_) | Event::Tensor(_)))
                if greeted =>
            {
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
    // The worker has exited: its stderr is complete, unless a process it left holds the pipe.
    let err = stderr_text(&tail);
    if let Some(a) = answer {
        if a.is_err() && !err.trim().is_empty() {
            (opts.on_failed_stderr)(&err);
        }
        return a;
    }
    // Ctrl-C on a terminal reaches the workers too (one process group): a worker that died of
    // it did not fail, it was interrupted. The worker may see the signal before this process
    // does, so a worker ended by SIGINT or SIGTERM waits a moment for our own.
    let stopped_by = match signal_of(&status) {
        Some(s @ (platform::SIGINT | platform::SIGTERM)) => Some(s),
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
    if !err.trim().is_empty() {
        log::debug!("{program}: the worker's stderr:\n{err}");
        (opts.on_failed_stderr)(&err);
    }
    if !greeted {
        return Err(match status.code() {
            Some(126 | 127) => Failure::Incompatible(said(format!(
                "odai could not be started there (exit {}; `odai farm deploy` installs it)",
                status.code().unwrap_or(0)
            ))),
            _ if signal_of(&status) == Some(platform::SIGKILL) => {
                Failure::Worker(killed(oom_before, oom_after(oom_before)))
            }
            _ => Failure::Transport(said(format!(
                "{program} ended ({}) before odai answered",
                describe(&status)
            ))),
        });
    }
    Err(match signal_of(&status) {
        _ if killed_code(&status) => Failure::Worker(killed(oom_before, oom_after(oom_before))),
        Some(platform::SIGKILL) => Failure::Worker(killed(oom_before, oom_after(oom_before))),
        Some(platform::SIGABRT) if last.contains("memory allocation of") => {
            worker_failure(last.clone())
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

/// The count of OOM kills in the hello of a worker `cmd` starts only to greet: its stdin is
/// closed at once, so it exits after the hello. `None` when it says none, or says nothing
/// within `deadline`.
pub fn greeting_oom_kills(mut cmd: Command, deadline: Duration) -> Option<u64> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = spawn_retrying(&mut cmd).ok()?;
    let stdout = child.stdout.take()?;
    let (tx, rx) = mpsc::sync_channel::<Line>(LINES_AHEAD);
    std::thread::spawn(move || read_lines(stdout, &tx));
    let hello = rx.recv_timeout(deadline);
    stop(&mut child);
    match serde_json::from_str::<Event>(match &hello {
        Ok(Line::Text(l)) => l,
        _ => return None,
    }) {
        Ok(Event::Hello { oom_kills, .. }) => oom_kills,
        _ => None,
    }
}

/// A worker's failure in the words a reader acts on: running out of memory is said first, however
/// it surfaced — ENOMEM from mmap or mprotect ("os error 12"), or Rust's allocator giving up
/// ("memory allocation of N bytes failed", then an abort).
fn worker_failure(message: String) -> Failure {
    let oom = message.contains("(os error 12)") || message.contains("memory allocation of");
    Failure::Worker(if oom && !message.starts_with("out of memory") {
        format!("out of memory: {message}")
    } else {
        message
    })
}

/// A death by SIGKILL in words: the OOM killer's only when the kernel's count of OOM kills rose
/// meanwhile; otherwise what is known (`kill -9`, an operator, a watchdog also send it).
fn killed(before: Option<u64>, after: Option<u64>) -> String {
    match (before, after) {
        (Some(b), Some(a)) if a > b => {
            "the worker was killed by the kernel's OOM killer (out of memory)".into()
        }
        (Some(_), Some(_)) => "the worker was killed by SIGKILL, not by the OOM killer (the \
                               kernel counted no OOM kill)"
            .into(),
        _ => "the worker was killed by SIGKILL (out of memory? the kernel's count of OOM kills \
              cannot be read from here)"
            .into(),
    }
}

/// Whether an exit code is a shell's report of a death by SIGKILL (128 + 9): a worker behind
/// `sh -c` or a remote shell that could not `exec` it.
fn killed_code(status: &ExitStatus) -> bool {
    status.code() == Some(128 + platform::SIGKILL)
}

fn describe(status: &ExitStatus) -> String {
    match (status.code(), signal_of(status)) {
        (Some(c), _) => format!("exit {c}"),
        (_, Some(s)) => format!("signal {s}"),
        _ => "unknown status".into(),
    }
}

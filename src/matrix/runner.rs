//! Runs a matrix on a set of devices: all devices at once, each device's cells one at a time
//! (benchmarks must not overlap on a device), every finished cell appended to `results.jsonl`
//! and fsync'd as it lands. A transport failure is retried with backoff, then the device is
//! marked offline and the others carry on; Ctrl-C stops cleanly; `--resume` runs only what is
//! not yet recorded.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::plan;
use super::progress::Progress;
use super::results::{Manifest, Record, Status, Store, now_unix_s};
use super::spec::{Cell, Matrix, ModelRef};
use crate::bench::cell::{self, Cooldown, Report, Source};
use crate::bench::load::Load;
use crate::client::{self, Failure};
use crate::engine::{fingerprint, synth};
use crate::error::Error;
use crate::farm::Transport;
use crate::probe::Probe;
use crate::protocol::{self, CellRequest, Event, Request, SustainedSpec};
use crate::sysroot::{Reading, SysRoot};

/// The device's name when a matrix runs on this machine without a farm.
pub const LOCAL: &str = "local";

/// The cell on the device it runs on: what its worker gives `cell::run`.
/// A tensor cell as its device runs it: the device's own default threads for `auto`, its own
/// tree for telemetry, its own libraries (ORT_DYLIB_PATH, ODAI_TFLITE_LIB there).
pub fn tensor_spec(
    root: &SysRoot,
    cell: &Cell,
    sample_interval_s: Option<f64>,
) -> Result<crate::bench::tensor::TensorBenchSpec, String> {
    let (ModelRef::Tensor { models }, Some(run)) = (&cell.model, &cell.tensor) else {
        return Err("not a tensor cell".into());
    };
    let threads = if cell.threads > 0 {
        cell.threads
    } else {
        crate::probe::cpu::probe(root).default_threads().0
    };
    Ok(crate::bench::tensor::TensorBenchSpec {
        protocol: protocol::PROTOCOL_VERSION,
        stages: models
            .iter()
            .map(|m| crate::bench::tensor::StageSpec {
                model: m.clone(),
                runtime: crate::runtime::tensor_runtime_for(m).unwrap_or(cell.runtime),
            })
            .collect(),
        mode: run.mode.clone(),
        threads: Some(threads),
        provider: run.provider.clone(),
        libraries: Vec::new(),
        inputs: run.inputs.clone(),
        shapes: run.shapes.clone(),
        seed: 42,
        cold: cell.cold,
        root: (!root.is_live()).then(|| root.base().to_owned()),
        sample_interval_s,
    })
}

pub fn bench_config(
    root: &SysRoot,
    cell: &Cell,
    sample_interval_s: Option<f64>,
) -> Result<cell::Config, String> {
    let source = match &cell.model {
        ModelRef::Synthetic { preset, quant } => {
            let (p, q) = synth::parse_spec(&format!("{preset}:{quant}"), "models")
                .map_err(|e| e.to_string())?;
            Source::Synthetic(p, q)
        }
        ModelRef::File { path, sha256 } => {
            if let Some(want) = sha256 {
                let cache = synth::cache_dir().join("sha256.tsv");
                let got = fingerprint::sha256_cached(path, &cache).map_err(|e| format!("{e:#}"))?;
                if &got != want {
                    return Err(format!(
                        "{}: sha256 is {got}, the matrix pins {want}",
                        path.display()
                    ));
                }
            }
            Source::File(path.clone())
        }
        ModelRef::Tensor { .. } => {
            return Err("a tensor cell runs through tensor_spec, not bench_config".into());
        }
        ModelRef::Endpoint {
            url,
            model,
            api_key_env,
        } => Source::Endpoint(crate::protocol::EndpointSpec {
            url: url.clone(),
            model: model.clone(),
            api_key_env: api_key_env.clone(),
            timeout_s: ENDPOINT_REQUEST_TIMEOUT.as_secs_f64(),
            deadline_s: None,
        }),
    };
    Ok(cell::Config {
        root: root.clone(),
        source,
        threads: (cell.threads > 0).then_some(cell.threads),
        prompt_tokens: cell.prompt_tokens,
        gen_tokens: cell.gen_tokens,
        reps: cell.reps,
        warmup: cell.warmup,
        cold: cell.cold,
        token_deadline_ms: None,
        force: false,
        seed: 42,
        sustained: cell.sustained_s.map(|d| SustainedSpec {
            duration_s: d,
            window_s: 10f64.min(d),
            checkpoints_s: vec![300.0, 600.0, 900.0],
        }),
        sample_interval_s,
        load: Load::parse(&cell.load).map_err(|e| e.to_string())?,
        cooldown: Cooldown::None,
        idle_baseline: None,
        runtime: cell.runtime,
        gpu_layers: cell.gpu_layers,
        kv_types: cell.kv_types,
        batching: cell.batching,
        depth: cell.depth,
        deadline: None,
    })
}

/// The device name of endpoint cells in results: the coordinator runs them itself, after the
/// devices' cells (so a local server and local benchmarks do not compete for this machine).
/// Reserved in farm files.
pub const ENDPOINT_DEVICE: &str = crate::farm::inventory::ENDPOINT_DEVICE;

/// An endpoint request of a matrix cell that sends nothing for this long fails.
const ENDPOINT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How a run behaves.
#[derive(Clone)]
pub struct Options {
    pub out: PathBuf,
    pub resume: bool,
    /// A cell running longer is stopped and recorded as failed; `None`: 30 minutes plus the
    /// cell's sustained time.
    pub cell_timeout: Option<Duration>,
    /// A probe answered later than this is a failed attempt.
    pub probe_timeout: Duration,
    /// Attempts after the first when the transport fails.
    pub retries: u32,
    /// The first wait before a retry; it doubles each time.
    pub backoff: Duration,
    pub sample_interval_s: Option<f64>,
    /// Written to the manifest.
    pub farm_file: Option<String>,
    /// Also write each result into this SQLite database (`--db`).
    pub db: Option<PathBuf>,
    /// Each device's probe runs the GPU compute check (`--gpu-check`).
    pub gpu_check: bool,
    /// A probe already taken of this device (`profile` probes the local device for its reader
    /// first): used instead of asking the device again, so its GPU checks run once.
    pub known_probe: Option<(String, Probe)>,
}

/// What a run did, per device and in all.
#[derive(Default, Serialize)]
pub struct DeviceSummary {
    pub device: String,
    pub ok: usize,
    pub failed: usize,
    pub skipped: usize,
    pub already: usize,
    /// Why the device stopped taking cells; null when it finished.
    pub offline: Option<String>,
    /// The matrix's device selectors left it out.
    pub not_selected: bool,
}

#[derive(Serialize)]
pub struct Summary {
    pub devices: Vec<DeviceSummary>,
    pub interrupted: bool,
}

impl Summary {
    pub fn total(&self, f: impl Fn(&DeviceSummary) -> usize) -> usize {
        self.devices.iter().map(f).sum()
    }
}

/// A retry's backoff waits in steps this long, looking at Ctrl-C between them.
const BACKOFF_STEP: Duration = Duration::from_millis(50);

/// Probes are quick; a device that takes longer than this to answer one is not answering.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(120);

fn cell_deadline(opts: &Options, cell: &Cell) -> Duration {
    opts.cell_timeout.unwrap_or_else(|| {
        let stream = match cell.tensor.as_ref().map(|t| &t.mode) {
            Some(crate::bench::tensor::Mode::Stream { duration_s, .. }) => *duration_s,
            Some(crate::bench::tensor::Mode::Burst {
                duration_s: Some(d),
                ..
            }) => *d,
            _ => 0.0,
        };
        let sustained =
            cell.sustained_s.unwrap_or(0.0) * f64::from(cell.reps + cell.warmup) + stream;
        Duration::from_secs(1800) + Duration::from_secs_f64(sustained)
    })
}

/// How long a device may take to greet a worker started only to read its count of OOM kills.
const GREETING_DEADLINE: Duration = Duration::from_secs(30);

/// One request to a device, retried with doubling backoff while the transport fails.
/// Returns the answer, or the failure and how many attempts were made.
fn call_retrying(
    t: &dyn Transport,
    request: &Request,
    deadline: Duration,
    opts: &Options,
    on_progress: &dyn Fn(&str),
    on_retry: &dyn Fn(u32, &Failure, Duration),
    on_failed_stderr: &dyn Fn(u32, &str),
) -> Result<Event, (Failure, u32)> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let transport_exit = |s: &std::process::ExitStatus, last: &str| t.transport_failed(s, last);
        // The real kernel's count (not a --root fixture's), for a worker on this machine only.
        let oom_kills = || {
            t.is_local()
                .then(|| crate::probe::memory::oom_kills(&SysRoot::live()))
                .flatten()
        };
        // Elsewhere, the device's own count: its worker's hello, and a fresh one's after a
        // SIGKILL.
        let device_oom_kills =
            || client::greeting_oom_kills(t.odai(&["worker"]), GREETING_DEADLINE);
        let outcome = client::call(
            t.odai(&["worker"]),
            request,
            &client::Options {
                deadline: Some(deadline),
                interruptible: true,
                transport_exit: &transport_exit,
                on_progress,
                oom_kills: &oom_kills,
                device_oom_kills: (!t.is_local()).then_some(&device_oom_kills as _),
                on_failed_stderr: &|err| on_failed_stderr(attempt, err),
            },
        );
        match outcome {
            Err(f @ Failure::Transport(_)) if attempt <= opts.retries => {
                let wait = opts.backoff * 2u32.saturating_pow(attempt - 1);
                on_retry(attempt, &f, wait);
                // Backoff, in short steps so Ctrl-C is not kept waiting.
                let until = std::time::Instant::now() + wait;
                while std::time::Instant::now() < until {
                    if crate::interrupt::requested() {
                        return Err((Failure::Interrupted, attempt));
                    }
                    std::thread::sleep(BACKOFF_STEP);
                }
            }
            Ok(e) => return Ok(e),
            Err(f) => return Err((f, attempt)),
        }
    }
}

/// The device's probe through its transport; with `bandwidth`, its STREAM triad too.
pub fn probe_device(
    t: &dyn Transport,
    opts: &Options,
    bandwidth: bool,
) -> Result<Probe, (Failure, u32)> {
    let req = Request::Probe {
        protocol: protocol::PROTOCOL_VERSION,
        bandwidth,
        gpu_check: opts.gpu_check,
    };
    let no_log = |_: u32, _: &str| {};
    match call_retrying(
        t,
        &req,
        opts.probe_timeout,
        opts,
        &|_| {},
        &|_, _, _| {},
        &no_log,
    )? {
        Event::Probe(p) => Ok(*p),
        _ => Err((
            Failure::Worker("the worker answered a probe with something else".into()),
            1,
        )),
    }
}

struct Shared<'a> {
    matrix: &'a Matrix,
    opts: &'a Options,
    store: Mutex<Store>,
    /// `--db`: the results database each record also goes to, after results.jsonl.
    db: Option<DbWriter>,
    done: HashMap<String, HashSet<String>>,
    progress: Progress,
}

#[cfg(feature = "db")]
type DbWriter = crate::db::RunWriter;

#[cfg(feature = "db")]
fn open_db(opts: &Options, manifest: &Manifest) -> anyhow::Result<Option<DbWriter>> {
    opts.db
        .as_ref()
        .map(|path| crate::db::RunWriter::open(path, &opts.out, manifest))
        .transpose()
}

/// No database in a build without the `db` feature: a value of this type cannot exist.
#[cfg(not(feature = "db"))]
enum DbWriter {}

#[cfg(feature = "db")]
use crate::db::Took;

/// What writing one record came to (never, without a database built in).
#[cfg(not(feature = "db"))]
#[allow(dead_code)]
enum Took {
    Written,
    CaughtUp(usize),
}

#[cfg(not(feature = "db"))]
impl DbWriter {
    fn record(&self, _: &Record, _: &dyn Fn() -> Vec<Record>) -> anyhow::Result<Took> {
        match *self {}
    }
    fn catch_up(&self, _: &[Record]) -> anyhow::Result<usize> {
        match *self {}
    }
    fn missed(&self) -> usize {
        match *self {}
    }
    fn finish(&self, _: &dyn Fn() -> Vec<Record>) -> anyhow::Result<Option<usize>> {
        match *self {}
    }
}

#[cfg(not(feature = "db"))]
fn open_db(opts: &Options, _: &Manifest) -> anyhow::Result<Option<DbWriter>> {
    match opts.db {
        Some(_) => Err(crate::cmd::db::not_built("--db")),
        None => Ok(None),
    }
}

impl Shared<'_> {
    fn record(
        &self,
        device: &str,
        cell: &Cell,
        status: Status,
        reason: Option<String>,
        report: Option<Report>,
    ) -> anyhow::Result<()> {
        self.record_with(device, cell, status, reason, report, None)
    }

    fn record_with(
        &self,
        device: &str,
        cell: &Cell,
        status: Status,
        reason: Option<String>,
        report: Option<Report>,
        tensor: Option<crate::bench::tensor::TensorResult>,
    ) -> anyhow::Result<()> {
        let record = Record {
            device: device.to_owned(),
            cell_id: cell.id.clone(),
            cell: cell.clone(),
            status,
            reason,
            report,
            tensor,
            finished_unix_s: now_unix_s(),
        };
        self.store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .append(&record)?;
        // results.jsonl holds the record: a database that cannot take it now (locked past its
        // wait, gone) costs one warning, not the matrix; what it missed is written at the next
        // write it takes, at the end of the run, or by `--resume`.
        if let Some(db) = &self.db {
            let all = || Store::records(&self.opts.out);
            match db.record(&record, &all) {
                Ok(Took::Written) => {}
                Ok(Took::CaughtUp(n)) => self.progress.note(
                    device,
                    &format!(
                        "odai: the database takes writes again: it holds all {n} record(s) of \
                         results.jsonl"
                    ),
                ),
                // The first refusal is told; the ones after it, until it takes writes again,
                // are counted.
                Err(e) if db.missed() == 1 => self.progress.note(
                    device,
                    &format!(
                        "odai: warning: the database did not take {device} {}: {e:#}; the run \
                         goes on, results.jsonl has every record, and odai writes what the \
                         database missed once it takes writes again",
                        cell.id
                    ),
                ),
                Err(_) => {}
            }
        }
        Ok(())
    }
}

fn label(cell: &Cell) -> String {
    if let Some(how) = cell.tensor_label() {
        return format!(
            "{} {} runtime={} threads={} {how}",
            cell.id,
            cell.model.label(),
            cell.runtime,
            cell.threads_label()
        );
    }
    format!(
        "{} {} runtime={} threads={} p={} n={}",
        cell.id,
        cell.model.label(),
        cell.runtime,
        cell.threads_label(),
        cell.prompt_tokens,
        cell.gen_tokens
    )
}

fn offline_reason(f: &Failure, attempts: u32) -> String {
    match f {
        Failure::Incompatible(m) => format!("device offline: {m}"),
        _ => format!(
            "device offline after {attempts} attempt{}: {f}",
            if attempts == 1 { "" } else { "s" }
        ),
    }
}

/// One device's share of the run, on its own thread.
fn run_device(s: &Shared, t: &dyn Transport, tags: &[String]) -> anyhow::Result<DeviceSummary> {
    let name = t.name();
    let mut sum = DeviceSummary {
        device: name.to_owned(),
        ..Default::default()
    };
    let empty = HashSet::new();
    let done = s.done.get(name).unwrap_or(&empty);
    let total = s
        .matrix
        .cells
        .iter()
        .filter(|c| !c.model.is_endpoint())
        .count();
    let mut finished = 0;
    let mut tick = |s: &Shared, line: String| {
        finished += 1;
        s.progress
            .finished(name, &format!("[{name} {finished}/{total}] {line}"));
    };
    let known = s
        .opts
        .known_probe
        .as_ref()
        .filter(|(device, _)| device == name)
        .map(|(_, p)| p.clone());
    let probe = match known.map_or_else(|| probe_device(t, s.opts, false), Ok) {
        Ok(p) => p,
        Err((Failure::Interrupted, _)) => return Ok(sum),
        Err((f, attempts)) => {
            // Without a probe nothing can be planned: every cell not yet recorded fails.
            let why = offline_reason(&f, attempts);
            s.progress.note(name, &format!("{name}: {why}"));
            for cell in s
                .matrix
                .cells
                .iter()
                .filter(|c| !c.model.is_endpoint() && !done.contains(&c.id))
            {
                s.record(name, cell, Status::Failed, Some(why.clone()), None)?;
                sum.failed += 1;
                tick(s, format!("{}: failed: {why}", label(cell)));
            }
            sum.already = s
                .matrix
                .cells
                .iter()
                .filter(|c| !c.model.is_endpoint() && done.contains(&c.id))
                .count();
            s.progress.device_done(name, "offline");
            sum.offline = Some(why);
            return Ok(sum);
        }
    };
    s.store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .write_file(
            &format!("probe-{name}.json"),
            crate::cmd::json_text(&probe)?.as_bytes(),
        )?;
    let class = probe.class.value().map(|c| c.id.clone());
    if !s.matrix.devices.select(tags, class.as_deref()) {
        s.progress.note(
            name,
            &format!(
                "{name}: not selected by the matrix's [devices] (class {}, tags [{}])",
                class.as_deref().unwrap_or("unclassified"),
                tags.join(", ")
            ),
        );
        s.progress.device_done(name, "not selected");
        sum.not_selected = true;
        return Ok(sum);
    }
    let planned = plan::plan(s.matrix, &probe, Reading::unavailable("not needed to run"));
    let mut offline: Option<String> = None;
    for pc in &planned.cells {
        let cell = &pc.cell;
        if crate::interrupt::requested() {
            break;
        }
        if done.contains(&cell.id) {
            sum.already += 1;
            tick(s, format!("{}: already recorded", label(cell)));
            continue;
        }
        let mut tensor = None;
        let (status, reason, report) = if let Some(why) = &offline {
            (Status::Failed, Some(why.clone()), None)
        } else if let Some(why) = &pc.skip {
            (Status::Skipped, Some(why.clone()), None)
        } else {
            let what = label(cell);
            s.progress.started(name, &what);
            let req = Request::Cell(Box::new(CellRequest {
                protocol: protocol::PROTOCOL_VERSION,
                cell: cell.clone(),
                sample_interval_s: s.opts.sample_interval_s,
            }));
            let short = format!(
                "{} t={} p={} n={}",
                cell.model.label(),
                cell.threads_label(),
                cell.prompt_tokens,
                cell.gen_tokens
            );
            let said = |m: &str| {
                s.progress
                    .worker_says(name, &short, m.trim_start_matches("odai: "))
            };
            let retry = |n: u32, f: &Failure, wait: Duration| {
                s.progress.note(
                    name,
                    &format!(
                        "{name}: attempt {n} failed ({f}); retrying in {}",
                        crate::units::duration(wait)
                    ),
                )
            };
            // A failed worker's whole stderr, beside the results: the reason is its last line.
            let kept = std::cell::RefCell::new(None);
            let keep = |attempt: u32, err: &str| {
                let file = s
                    .opts
                    .out
                    .join("logs")
                    .join(format!("{name}-{}-attempt{attempt}.stderr", cell.id));
                let written = std::fs::create_dir_all(file.parent().expect("a parent"))
                    .and_then(|()| std::fs::write(&file, err));
                match written {
                    Ok(()) => *kept.borrow_mut() = Some(file),
                    Err(e) => {
                        log::warn!("cannot keep the worker's stderr in {}: {e}", file.display())
                    }
                }
            };
            let outcome = call_retrying(
                t,
                &req,
                cell_deadline(s.opts, cell),
                s.opts,
                &said,
                &retry,
                &keep,
            );
            let with_log = |why: String| match kept.borrow().as_ref() {
                Some(f) => format!("{why} (the worker's stderr: {})", f.display()),
                None => why,
            };
            match outcome {
                Ok(Event::Report(r)) => match super::plausible::check(&r, cell) {
                    None => (Status::Ok, None, Some(*r)),
                    Some(why) => (
                        Status::Failed,
                        Some(format!("the device's figures cannot be right: {why}")),
                        None,
                    ),
                },
                Ok(Event::Tensor(t)) if cell.tensor.is_some() => {
                    tensor = Some(*t);
                    (Status::Ok, None, None)
                }
                Ok(_) => (
                    Status::Failed,
                    Some("the worker answered a cell with something else".into()),
                    None,
                ),
                // Not finished, so not recorded: --resume runs it again.
                Err((Failure::Interrupted, _)) => break,
                Err((f @ (Failure::Transport(_) | Failure::Incompatible(_)), n)) => {
                    let why = with_log(offline_reason(&f, n));
                    s.progress.note(name, &format!("{name}: {why}"));
                    offline = Some(why.clone());
                    (Status::Failed, Some(why), None)
                }
                Err((f, _)) => (Status::Failed, Some(with_log(f.to_string())), None),
            }
        };
        match status {
            Status::Ok => sum.ok += 1,
            Status::Failed => sum.failed += 1,
            Status::Skipped => sum.skipped += 1,
        }
        let how = match (&status, &report, &reason) {
            (Status::Ok, Some(r), _) => {
                match (r.summary.get("decode_tps"), r.summary.get("prefill_tps")) {
                    (Some(d), _) => format!("ok, decode {:.1} tok/s", d.mean),
                    (None, Some(p)) => format!("ok, prefill {:.1} tok/s", p.mean),
                    (None, None) => "ok".into(),
                }
            }
            (Status::Ok, None, _) if tensor.is_some() => {
                let t = tensor.as_ref().unwrap();
                match &t.stream {
                    Some(st) => format!(
                        "ok, {:.3} % deadline misses, p99 {:.2} ms, CPU {:.1} %",
                        st.deadline_miss_pct, st.latency_ms_p99, st.cpu_duty_pct
                    ),
                    None => format!(
                        "ok, p99 {:.3} ms, {:.0} inferences/s",
                        t.latency_ms_p99, t.inferences_per_s
                    ),
                }
            }
            (Status::Skipped, _, Some(why)) => format!("skipped: {why}"),
            (_, _, Some(why)) => format!("failed: {why}"),
            _ => "failed".into(),
        };
        s.record_with(name, cell, status, reason, report, tensor)?;
        tick(s, format!("{}: {how}", label(cell)));
    }
    s.progress.device_done(
        name,
        if offline.is_some() {
            "offline"
        } else if crate::interrupt::requested() {
            "interrupted"
        } else {
            "done"
        },
    );
    sum.offline = offline;
    Ok(sum)
}

/// The matrix's endpoint cells, run here by the coordinator (no worker on a device) after every
/// device finished; recorded as the device [`ENDPOINT_DEVICE`]. A cell whose every request
/// failed is recorded failed with the reason; the others carry their failed repetitions.
fn run_endpoints(s: &Shared) -> anyhow::Result<Option<DeviceSummary>> {
    let cells: Vec<&Cell> = s
        .matrix
        .cells
        .iter()
        .filter(|c| c.model.is_endpoint())
        .collect();
    if cells.is_empty() {
        return Ok(None);
    }
    let name = ENDPOINT_DEVICE;
    let mut sum = DeviceSummary {
        device: name.to_owned(),
        ..Default::default()
    };
    let empty = HashSet::new();
    let done = s.done.get(name).unwrap_or(&empty);
    let total = cells.len();
    let root = SysRoot::live();
    for (i, c) in cells.iter().enumerate() {
        if crate::interrupt::requested() {
            break;
        }
        let line = |what: String| format!("[{name} {}/{total}] {} : {what}", i + 1, label(c));
        if done.contains(&c.id) {
            sum.already += 1;
            s.progress.finished(name, &line("already recorded".into()));
            continue;
        }
        s.progress.started(name, &label(c));
        let outcome = bench_config(&root, c, s.opts.sample_interval_s).and_then(|mut cfg| {
            // The coordinator runs these itself: the cell's deadline bounds its requests.
            cfg.deadline = Some(cell_deadline(s.opts, c));
            cell::run(&cfg).map_err(|e| format!("{e:#}"))
        });
        match outcome {
            Err(_) if crate::interrupt::requested() => break,
            Ok(r) => {
                let how = format!(
                    "ok, TTFT {:.0} ms, decode {:.1} tok/s, {} failed rep(s)",
                    r.summary.get("ttft_ms").map_or(0.0, |s| s.mean),
                    r.summary.get("decode_tps").map_or(0.0, |s| s.mean),
                    r.failed_reps.len()
                );
                s.record(name, c, Status::Ok, None, Some(r))?;
                sum.ok += 1;
                s.progress.finished(name, &line(how));
            }
            Err(why) => {
                s.record(name, c, Status::Failed, Some(why.clone()), None)?;
                sum.failed += 1;
                s.progress.finished(name, &line(format!("failed: {why}")));
            }
        }
    }
    s.progress.device_done(
        name,
        if crate::interrupt::requested() {
            "interrupted"
        } else {
            "done"
        },
    );
    Ok(Some(sum))
}

/// A device of the run: how to reach it and its farm tags.
pub struct Device {
    pub transport: Box<dyn Transport>,
    pub tags: Vec<String>,
}

/// A run into a directory that already holds results stops here unless it resumes: before
/// anything slow (`profile` calls it before its probe too).
pub fn refuse_earlier_results(opts: &Options) -> Result<(), Error> {
    let out = &opts.out;
    let has_results = Store::results_path(out)
        .metadata()
        .is_ok_and(|m| m.len() > 0);
    if has_results && !opts.resume {
        return Err(Error::ConfigFile {
            file: out.to_owned(),
            problem:
                "already holds results: pass --resume to continue that run, or choose another --out"
                    .into(),
        });
    }
    Ok(())
}

/// Runs `matrix` on `devices` into `opts.out`.
pub fn run(matrix: &Matrix, devices: &[Device], opts: &Options) -> anyhow::Result<Summary> {
    let out = &opts.out;
    // Before anything is read or written there: a second run into this --out stops here.
    let _lock = super::results::DirLock::acquire(out)?;
    let manifest_path = out.join("manifest.json");
    refuse_earlier_results(opts)?;
    let names: Vec<String> = devices
        .iter()
        .map(|d| d.transport.name().to_owned())
        .collect();
    let mut manifest = Manifest {
        run_id: Some(super::results::new_run_id(&matrix.sha256)),
        odai_version: env!("CARGO_PKG_VERSION").into(),
        matrix_file: matrix.file.display().to_string(),
        matrix_sha256: matrix.sha256.clone(),
        farm_file: opts.farm_file.clone(),
        devices: names
            .iter()
            .cloned()
            .chain(
                matrix
                    .cells
                    .iter()
                    .any(|c| c.model.is_endpoint())
                    .then(|| ENDPOINT_DEVICE.to_owned()),
            )
            .collect(),
        started_unix_s: now_unix_s(),
        finished_unix_s: None,
        interrupted: false,
    };
    if opts.resume
        && let Ok(old) = std::fs::read(&manifest_path)
    {
        let old: Manifest = serde_json::from_slice(&old).map_err(|e| Error::ConfigFile {
            file: manifest_path.clone(),
            problem: format!("is not an odai manifest ({e})"),
        })?;
        if old.matrix_sha256 != matrix.sha256 {
            return Err(Error::ConfigFile {
                file: out.to_owned(),
                problem: format!(
                    "holds results of another matrix ({}); resume with that matrix, or choose another --out",
                    old.matrix_file
                ),
            }
            .into());
        }
        manifest.started_unix_s = old.started_unix_s;
        // The same run goes on: its rows stay under its id (an older odai's run keeps the id
        // derived from it).
        manifest.run_id = old.run_id;
    }
    if opts.resume {
        std::fs::create_dir_all(out).ok();
        if !manifest_path.exists()
            && Store::results_path(out)
                .metadata()
                .is_ok_and(|m| m.len() > 0)
        {
            return Err(Error::ConfigFile {
                file: manifest_path.clone(),
                problem: "is missing beside results.jsonl: nothing says which matrix those \
                          results are of; restore it, or choose another --out"
                    .into(),
            }
            .into());
        }
        let (_, rejected) = Store::retire_failures(out)?;
        if rejected > 0 {
            anstream::eprintln!(
                "odai: warning: {rejected} line(s) of {} were no readable record (torn or \
                 garbled): moved to {}; their cells run again",
                Store::results_path(out).display(),
                out.join(super::results::REJECTED).display()
            );
        }
    }
    let store = Store::open(out)?;
    store.write_file("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
    let db = open_db(opts, &manifest)?;
    if opts.resume
        && let Some(db) = &db
    {
        // What the database missed before (locked, away, an older odai without --db) lands
        // now: it ends with every record the directory has.
        db.catch_up(&Store::records(out))?;
    }
    let done = Store::done(out);
    let endpoint_cells = matrix
        .cells
        .iter()
        .filter(|c| c.model.is_endpoint())
        .count();
    let mut sizes: Vec<(String, usize)> = names
        .iter()
        .map(|n| (n.clone(), matrix.cells.len() - endpoint_cells))
        .collect();
    if endpoint_cells > 0 {
        sizes.push((ENDPOINT_DEVICE.to_owned(), endpoint_cells));
    }
    let shared = Shared {
        matrix,
        opts,
        store: Mutex::new(store),
        db,
        done,
        progress: Progress::new(&sizes),
    };
    crate::interrupt::install();
    let results: Vec<anyhow::Result<DeviceSummary>> = std::thread::scope(|scope| {
        let handles: Vec<_> = devices
            .iter()
            .map(|d| {
                let shared = &shared;
                std::thread::Builder::new()
                    .name(format!("device {}", d.transport.name()))
                    // Small stacks: a farm of hundreds of devices is hundreds of threads.
                    .stack_size(256 << 10)
                    .spawn_scoped(scope, move || {
                        run_device(shared, d.transport.as_ref(), &d.tags)
                    })
                    .expect("a device thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a device thread panicked")))
            })
            .collect()
    });
    let endpoints = run_endpoints(&shared);
    shared.progress.finish();
    if let Some(db) = &shared.db {
        let missed = db.missed();
        match db.finish(&|| Store::records(out)) {
            Ok(None) => {}
            Ok(Some(n)) => anstream::eprintln!(
                "odai: the database took the {missed} record(s) it had refused: it holds all {n} \
                 of results.jsonl"
            ),
            Err(e) => anstream::eprintln!(
                "odai: warning: the database still misses {missed} record(s) of this run: {e:#}; \
                 run again with --resume --db (or odai db import {}) to put them there",
                out.display()
            ),
        }
    }
    let mut summaries = Vec::new();
    for r in results {
        summaries.push(r?);
    }
    summaries.extend(endpoints?);
    let interrupted = crate::interrupt::requested();
    manifest.interrupted = interrupted;
    manifest.finished_unix_s = (!interrupted).then(now_unix_s);
    shared
        .store
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .write_file("manifest.json", &serde_json::to_vec_pretty(&manifest)?)?;
    Ok(Summary {
        devices: summaries,
        interrupted,
    })
}

//! `odai matrix plan` and `odai matrix run`: a matrix on this device or on every device of a
//! farm — the plan before anything runs, then the run into a results directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cli::{Format, MatrixPlanArgs, MatrixRunArgs, RunArgs};
use crate::exit;
use crate::farm::{self, inventory::DeviceEntry, inventory::Farm};
use crate::matrix::runner::{self, Device, Summary};
use crate::matrix::{plan, spec::Matrix};
use crate::probe::{self, bandwidth};
use crate::sysroot::{Reading, SysRoot};
use crate::units;

/// The devices a run or plan covers: the farm's, or this machine alone as `local`.
pub fn devices(farm: Option<&Path>, root: &SysRoot) -> anyhow::Result<Vec<Device>> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("cannot find odai's own executable for workers: {e}"))?;
    let local_root = (!root.is_live()).then(|| root.base().to_owned());
    let entries = match farm {
        Some(f) => Farm::load(f)?.devices,
        None => vec![DeviceEntry::local(runner::LOCAL)],
    };
    Ok(entries
        .iter()
        .map(|d| Device {
            transport: farm::transport(d, &exe, local_root.as_deref()),
            tags: d.tags.clone(),
        })
        .collect())
}

pub struct PlanConfig {
    pub root: SysRoot,
    pub file: PathBuf,
    pub farm: Option<PathBuf>,
    pub format: Format,
}

impl PlanConfig {
    pub fn new(root: SysRoot, a: &MatrixPlanArgs) -> Self {
        PlanConfig {
            root,
            file: a.file.clone(),
            farm: a.farm.clone(),
            format: a.format,
        }
    }
}

pub fn plan(cfg: &PlanConfig) -> anyhow::Result<i32> {
    let matrix = Matrix::load(&cfg.file)?;
    let mut plans = Vec::new();
    let mut trouble = Vec::new();
    match &cfg.farm {
        None => {
            let device = probe::run(&cfg.root, &probe::Options::quick());
            let bw = if cfg.root.is_live() {
                Reading::Value(
                    bandwidth::measure(&cfg.root, device.cpu.usable_cores(), 3).triad_gb_s,
                )
            } else {
                Reading::unavailable("not measured: --root points at a captured device tree")
            };
            plans.push(plan::plan(&matrix, &device, bw));
        }
        Some(f) => {
            let devices = devices(Some(f), &cfg.root)?;
            let opts = probe_options();
            let probes: Vec<_> = std::thread::scope(|s| {
                let hs: Vec<_> = devices
                    .iter()
                    .map(|d| s.spawn(|| runner::probe_device(d.transport.as_ref(), &opts, true)))
                    .collect();
                hs.into_iter()
                    .map(|h| h.join().expect("a probe thread"))
                    .collect()
            });
            for (d, p) in devices.iter().zip(probes) {
                let name = d.transport.name();
                match p {
                    Err((f, _)) => trouble.push(format!("{name}: unreachable: {f}")),
                    Ok(p) => {
                        let class = p.class.value().map(|c| c.id.clone());
                        if !matrix.devices.select(&d.tags, class.as_deref()) {
                            trouble.push(format!(
                                "{name}: not selected by the matrix's [devices] (class {})",
                                class.as_deref().unwrap_or("unclassified")
                            ));
                            continue;
                        }
                        let bw = p.bandwidth.clone().map(|b| b.triad_gb_s);
                        let mut dp = plan::plan(&matrix, &p, bw);
                        dp.device = name.to_owned();
                        plans.push(dp);
                    }
                }
            }
        }
    }
    let endpoint_cells: Vec<String> = matrix
        .cells
        .iter()
        .filter(|c| c.model.is_endpoint())
        .map(|c| {
            format!(
                "{} {} p={} n={} reps={}",
                c.id,
                c.model.label(),
                c.prompt_tokens,
                c.gen_tokens,
                c.reps
            )
        })
        .collect();
    let text = match cfg.format {
        Format::Json => super::document(&serde_json::json!({
            "matrix": matrix.file.display().to_string(),
            "devices": plans,
            "endpoint_cells": endpoint_cells,
            "not_planned": trouble,
        }))?,
        Format::Text => {
            let mut s = String::new();
            for p in &plans {
                s.push_str(&render(&matrix, p));
                s.push('\n');
            }
            if !endpoint_cells.is_empty() {
                s.push_str(&format!(
                    "{} endpoint cell(s), run from this machine after the devices' cells (device `{}`):\n",
                    endpoint_cells.len(),
                    runner::ENDPOINT_DEVICE
                ));
                for c in &endpoint_cells {
                    s.push_str(&format!("  {c}\n"));
                }
                s.push('\n');
            }
            for t in &trouble {
                s.push_str(&format!("{t}\n"));
            }
            s
        }
    };
    super::print(&text)?;
    Ok(if trouble.iter().any(|t| t.contains("unreachable")) {
        exit::FAILURE
    } else {
        exit::SUCCESS
    })
}

/// Planning probes each device once, with one quick retry.
pub fn probe_options() -> runner::Options {
    runner::Options {
        out: PathBuf::new(),
        resume: false,
        cell_timeout: None,
        probe_timeout: runner::PROBE_TIMEOUT,
        retries: 1,
        backoff: Duration::from_secs(1),
        sample_interval_s: None,
        farm_file: None,
        db: None,
        gpu_check: false,
        known_probe: None,
    }
}

fn render(m: &Matrix, p: &plan::DevicePlan) -> String {
    let mut s = format!(
        "{}: {} cells on {} ({}), headroom {}\n\n",
        m.file.display(),
        p.cells.len(),
        p.device,
        p.class.value().map_or("unclassified", String::as_str),
        p.headroom_bytes
            .value()
            .map_or("unknown".into(), |h| units::bytes(*h)),
    );
    s.push_str(&format!(
        "  {:<16} {:<32} {:>3} {:>6} {:>5} {:>5} {:>9} {:<10} {:>10}  {}\n",
        "cell", "model", "thr", "p", "n", "cold", "sustained", "load", "needs", "plan"
    ));
    for c in &p.cells {
        let cell = &c.cell;
        s.push_str(&format!(
            "  {:<16} {:<32} {:>3} {:>6} {:>5} {:>5} {:>9} {:<10} {:>10}  {}\n",
            cell.id,
            cell.model.label(),
            cell.threads_label(),
            // A tensor cell has no tokens: its mode stands where a sustained run's length does.
            if cell.tensor.is_some() {
                "-".to_string()
            } else {
                cell.prompt_tokens.to_string()
            },
            if cell.tensor.is_some() {
                "-".to_string()
            } else {
                cell.gen_tokens.to_string()
            },
            if cell.cold { "yes" } else { "no" },
            cell.tensor_label().unwrap_or_else(|| {
                cell.sustained_s.map_or("-".into(), |d| format!("{d:.0} s"))
            }),
            cell.load,
            c.needs_bytes
                .value()
                .map_or("?".into(), |b| units::bytes(*b)),
            c.skip
                .as_deref()
                .map_or("run".to_owned(), |w| format!("skip: {w}")),
        ));
    }
    let time = match (&p.min_seconds, &p.estimate_seconds, &p.bandwidth_gb_s) {
        (Reading::Value(t), Reading::Value(e), Reading::Value(b)) => format!(
            "about {e:.0} s (each repetition's start, load, prompt and tokens priced at the \
             {b:.1} GB/s measured memory bandwidth), at least {t:.0} s (decode alone)"
        ),
        (Reading::Unavailable(r), _, _)
        | (_, Reading::Unavailable(r), _)
        | (_, _, Reading::Unavailable(r)) => format!("time unknown: {r}"),
    };
    s.push_str(&format!(
        "\n  {} to run, {} skipped; {time}\n",
        p.runs, p.skipped
    ));
    s
}

pub struct RunConfig {
    pub root: SysRoot,
    pub file: PathBuf,
    pub farm: Option<PathBuf>,
    pub opts: runner::Options,
    pub format: Format,
}

/// The runner's options from the shared run flags.
pub fn run_options(
    a: &RunArgs,
    out: PathBuf,
    resume: bool,
    farm: Option<&Path>,
) -> runner::Options {
    runner::Options {
        out,
        resume,
        cell_timeout: a.cell_timeout,
        probe_timeout: a.probe_timeout,
        retries: a.retries,
        backoff: a.retry_backoff,
        sample_interval_s: a.sample_interval.0.map(|d| d.as_secs_f64()),
        farm_file: farm.map(|f| f.display().to_string()),
        db: None,
        gpu_check: false,
        known_probe: None,
    }
}

impl RunConfig {
    pub fn new(root: SysRoot, a: &MatrixRunArgs) -> Self {
        let stem = a
            .file
            .file_stem()
            .map_or_else(|| "matrix".into(), |s| s.to_string_lossy().into_owned());
        let out = a
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from("odai-results").join(stem));
        RunConfig {
            root,
            file: a.file.clone(),
            farm: a.farm.clone(),
            opts: runner::Options {
                db: a.db.clone(),
                gpu_check: a.gpu_check,
                ..run_options(&a.run, out, a.resume, a.farm.as_deref())
            },
            format: a.run.format,
        }
    }
}

pub fn run(cfg: &RunConfig) -> anyhow::Result<i32> {
    let matrix = Matrix::load(&cfg.file)?;
    let devices = devices(cfg.farm.as_deref(), &cfg.root)?;
    let has_local = match cfg.farm.as_deref() {
        Some(f) => Farm::load(f)?
            .devices
            .iter()
            .any(|d| d.transport == crate::farm::inventory::Transport::Local),
        None => true,
    };
    if has_local {
        crate::matrix::plan::check_local_models(&matrix)?;
    }
    let s = runner::run(&matrix, &devices, &cfg.opts)?;
    report_summary(
        &cfg.file.display().to_string(),
        &s,
        &cfg.opts.out,
        cfg.format,
    )
}

/// Prints what a run did and returns its exit code: 130 when interrupted, 1 when a cell failed.
pub fn report_summary(what: &str, s: &Summary, out: &Path, format: Format) -> anyhow::Result<i32> {
    let text = match format {
        Format::Json => super::document(&serde_json::json!({
            "matrix": what,
            "results": out.join("results.jsonl").display().to_string(),
            "interrupted": s.interrupted,
            "devices": s.devices,
        }))?,
        Format::Text => {
            let mut t = format!(
                "{what}: {} ok, {} failed, {} skipped, {} already recorded; results in {}\n",
                s.total(|d| d.ok),
                s.total(|d| d.failed),
                s.total(|d| d.skipped),
                s.total(|d| d.already),
                out.join("results.jsonl").display()
            );
            if s.devices.len() > 1 || s.devices.iter().any(|d| d.offline.is_some()) {
                for d in &s.devices {
                    let state = match (&d.offline, d.not_selected) {
                        (Some(why), _) => why.clone(),
                        (None, true) => "not selected by the matrix".into(),
                        (None, false) => "done".into(),
                    };
                    t.push_str(&format!(
                        "  {:<16} {:>3} ok {:>3} failed {:>3} skipped {:>3} already  {state}\n",
                        d.device, d.ok, d.failed, d.skipped, d.already
                    ));
                }
            }
            if s.interrupted {
                t.push_str(&format!(
                    "interrupted: finished cells are in {}; run the same command with --resume to continue\n",
                    out.display()
                ));
            }
            t
        }
    };
    super::print(&text)?;
    Ok(exit_code(s))
}

/// 130 when interrupted, 1 when a cell failed, else 0.
pub fn exit_code(s: &Summary) -> i32 {
    if s.interrupted {
        exit::INTERRUPTED
    } else if s.total(|d| d.failed) > 0 {
        exit::FAILURE
    } else {
        exit::SUCCESS
    }
}

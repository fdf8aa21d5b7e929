//! `odai matrix plan`: a matrix's cells on this device, what is skipped and why, and a lower
//! bound on the run's time — before anything runs.

use std::path::PathBuf;

use crate::cli::{Format, MatrixPlanArgs, MatrixRunArgs};
use crate::exit;
use crate::matrix::{plan, runner, spec::Matrix};
use crate::probe::{self, bandwidth};
use crate::sysroot::{Reading, SysRoot};
use crate::units;

pub struct PlanConfig {
    pub root: SysRoot,
    pub file: PathBuf,
    pub format: Format,
}

impl PlanConfig {
    pub fn new(root: SysRoot, a: &MatrixPlanArgs) -> Self {
        PlanConfig {
            root,
            file: a.file.clone(),
            format: a.format,
        }
    }
}

pub fn plan(cfg: &PlanConfig) -> anyhow::Result<i32> {
    let matrix = Matrix::load(&cfg.file)?;
    let device = probe::run(&cfg.root, &probe::Options::quick());
    let bw = if cfg.root.is_live() {
        let threads = device.cpu.logical_cores.value().copied().unwrap_or(1);
        Reading::Value(bandwidth::measure(&cfg.root, threads, 3).triad_gb_s)
    } else {
        Reading::unavailable("not measured: --root points at a captured device tree")
    };
    let p = plan::plan(&matrix, &device, bw);
    let text = match cfg.format {
        Format::Json => super::json_text(&p)?,
        Format::Text => render(&matrix, &p),
    };
    super::print(&text)?;
    Ok(exit::SUCCESS)
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
            cell.threads,
            cell.prompt_tokens,
            cell.gen_tokens,
            if cell.cold { "yes" } else { "no" },
            cell.sustained_s.map_or("-".into(), |d| format!("{d:.0} s")),
            cell.load,
            c.needs_bytes
                .value()
                .map_or("?".into(), |b| units::bytes(*b)),
            c.skip
                .as_deref()
                .map_or("run".to_owned(), |w| format!("skip: {w}")),
        ));
    }
    let time = match (&p.min_seconds, &p.bandwidth_gb_s) {
        (Reading::Value(t), Reading::Value(b)) => format!(
            "at least {t:.0} s (decode at the {b:.1} GB/s measured memory bandwidth plus \
             sustained durations; loading, prefill and warm-up come on top)"
        ),
        (Reading::Unavailable(r), _) | (_, Reading::Unavailable(r)) => {
            format!("time unknown: {r}")
        }
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
    pub out: PathBuf,
    pub resume: bool,
}

impl RunConfig {
    pub fn new(root: SysRoot, a: &MatrixRunArgs) -> Self {
        let stem = a
            .file
            .file_stem()
            .map_or_else(|| "matrix".into(), |s| s.to_string_lossy().into_owned());
        RunConfig {
            root,
            file: a.file.clone(),
            out: a
                .out
                .clone()
                .unwrap_or_else(|| PathBuf::from("odai-results").join(stem)),
            resume: a.resume,
        }
    }
}

pub fn run(cfg: &RunConfig) -> anyhow::Result<i32> {
    let matrix = Matrix::load(&cfg.file)?;
    let s = runner::run_local(&matrix, &cfg.root, &cfg.out, cfg.resume)?;
    super::print(&format!(
        "{}: {} ok, {} failed, {} skipped, {} already recorded; results in {}\n",
        cfg.file.display(),
        s.ok,
        s.failed,
        s.skipped,
        s.already,
        cfg.out.join("results.jsonl").display()
    ))?;
    Ok(if s.failed > 0 {
        exit::FAILURE
    } else {
        exit::SUCCESS
    })
}

//! `odai bench`: expands the flags' comma lists into cells through the matrix spec (the same
//! cells, with the same ids, as a matrix file of those axes), runs each on this device
//! (`bench::cell::run`), and renders the reports as text, llama-bench's Markdown table, CSV,
//! JSON or JSON Lines — on stdout and in any number of `--export-FORMAT FILE`s, rewritten after
//! every cell so a crash or Ctrl-C loses no finished cell.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::bench::cell::{self, Cooldown, METRICS, Report, Source};
use crate::bench::sustained::Sustained;
use crate::cli::{BenchArgs, BenchFormat};
use crate::engine::synth;
use crate::error::Error;
use crate::exit;
use crate::matrix::progress::Progress;
use crate::matrix::spec::{Cell, LmAxes, ModelRef};
use crate::protocol::SustainedSpec;
use crate::runtime::RuntimeKind;
use crate::sysroot::{Reading, SysRoot};
use crate::units;

/// One cell of a bench run: the matrix cell and the typed config that runs it.
pub struct BenchCell {
    pub cell: Cell,
    pub config: cell::Config,
    /// Asked for with `--pg`: its prompt-plus-generation figure gets a row of its own.
    pub pg: bool,
}

pub struct Config {
    pub cells: Vec<BenchCell>,
    /// What stdout gets.
    pub format: BenchFormat,
    /// `--export-FORMAT FILE` and `--out FILE`.
    pub exports: Vec<(BenchFormat, PathBuf)>,
}

/// A usage error of `flag` (exit 2): a value that parses but cannot be used.
pub fn invalid(flag: &str, problem: String) -> anyhow::Error {
    Error::Invalid {
        flag: flag.into(),
        problem,
    }
    .into()
}

/// Checks, before the first cell, that each export can be written where it is named: a
/// benchmark that ran for minutes and then could not write its file is a lost result. The
/// directory must exist and take a new file; an existing export must be a file (nothing is
/// created or truncated here).
pub fn check_exports(exports: &[(BenchFormat, PathBuf)]) -> anyhow::Result<()> {
    for (_, file) in exports {
        let bad = |problem: String| -> anyhow::Error {
            Error::ConfigFile {
                file: file.clone(),
                problem,
            }
            .into()
        };
        if file.is_dir() {
            return Err(bad("is a directory: name a file to export to".into()));
        }
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(bad(format!(
                "cannot export there: {} is not a directory (create it, or name another file; \
                 nothing was run)",
                dir.display()
            )));
        }
        // The export is written as a temporary file renamed into place: the directory must
        // take a new file. A probe file shows it without touching the export.
        let probe = dir.join(format!(".odai-export-check-{}", std::process::id()));
        match std::fs::File::create(&probe) {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                return Err(bad(format!(
                    "cannot export there: {} does not take a new file ({e}; nothing was run)",
                    dir.display()
                )));
            }
        }
    }
    Ok(())
}

/// The files `--export-FORMAT FILE` (and `--out FILE`, in `--format`) name, in the order given.
pub fn exports(a: &BenchArgs) -> Vec<(BenchFormat, PathBuf)> {
    let mut out: Vec<(BenchFormat, PathBuf)> = Vec::new();
    for (format, files) in [
        (BenchFormat::Text, &a.export_text),
        (BenchFormat::Md, &a.export_markdown),
        (BenchFormat::Csv, &a.export_csv),
        (BenchFormat::Json, &a.export_json),
        (BenchFormat::Jsonl, &a.export_jsonl),
        (BenchFormat::Sql, &a.export_sql),
    ] {
        out.extend(files.iter().map(|f| (format, f.clone())));
    }
    if let Some(f) = &a.out {
        out.push((a.format, f.clone()));
    }
    out
}

/// Writes an export whole (the results store's temporary file, fsync, rename), so a reader or a
/// crash never sees half a file.
pub fn write_export(file: &Path, text: &str) -> anyhow::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = file
        .file_name()
        .with_context(|| format!("{}: an export needs a file name", file.display()))?;
    crate::matrix::results::write_atomic(dir, &name.to_string_lossy(), text.as_bytes())
}

impl Config {
    pub fn new(root: SysRoot, a: &BenchArgs) -> anyhow::Result<Self> {
        if let Some(url) = &a.endpoint {
            // Before anything runs: a mistyped URL is one usage error, not a run of failed
            // repetitions.
            crate::runtime::openai::Url::parse(url).map_err(|p| {
                let flag = format!("--endpoint {url:?}");
                let problem = p
                    .strip_prefix(&format!("{flag}: "))
                    .unwrap_or(&p)
                    .to_owned();
                invalid(&flag, problem)
            })?;
        }
        check_exports(&exports(a))?;
        let runtimes = runtimes(a)?;
        let models: Vec<ModelRef> = match (&a.endpoint, a.synthetic.is_empty()) {
            (Some(url), _) => a
                .model
                .iter()
                .map(|m| ModelRef::Endpoint {
                    url: url.clone(),
                    model: m.display().to_string(),
                    api_key_env: a.api_key_env.clone(),
                })
                .collect(),
            (None, true) => a
                .model
                .iter()
                .map(|m| ModelRef::File {
                    path: m.clone(),
                    sha256: None,
                })
                .collect(),
            (None, false) => a
                .synthetic
                .iter()
                .map(|s| {
                    let (p, q) = synth::parse_spec(s, "--synthetic")?;
                    Ok(ModelRef::Synthetic {
                        preset: p.name.into(),
                        quant: q.name().into(),
                    })
                })
                .collect::<anyhow::Result<_>>()?,
        };
        if let Some(d) = a.token_deadline_ms
            && !(d.is_finite() && d > 0.0)
        {
            return Err(invalid(
                "--token-deadline-ms",
                format!("{d} is not a positive number of milliseconds"),
            ));
        }
        let sustained = a.sustained.map(|d| SustainedSpec {
            duration_s: d.as_secs_f64(),
            window_s: a.window.as_secs_f64(),
            checkpoints_s: a.checkpoints.iter().map(|c| c.as_secs_f64()).collect(),
        });
        if let Some(s) = &sustained
            && s.window_s > s.duration_s
        {
            return Err(invalid(
                "--window",
                format!(
                    "a {} s window does not fit a {} s sustained run",
                    s.window_s, s.duration_s
                ),
            ));
        }
        let cooldown = match (a.cooldown, a.cooldown_to) {
            (Some(d), _) => Cooldown::For(d),
            (None, Some(c)) if c.is_finite() && c >= 0.0 => Cooldown::ToWithin(c),
            (None, Some(c)) => {
                return Err(invalid(
                    "--cooldown-to",
                    format!("{c} is not a temperature difference in °C"),
                ));
            }
            (None, None) => Cooldown::None,
        };
        let load = crate::bench::load::Load::parse(&a.load)?;
        let long = sustained.is_some();
        let axes = LmAxes {
            models,
            gpu_layers: gpu_layers_axis(a, &runtimes)?,
            kv_types: kv_axis(a, &runtimes)?,
            batching: batching_axis(a, &runtimes)?,
            depth: a.depth.clone(),
            runtimes,
            threads: if a.threads.is_empty() {
                vec![0]
            } else {
                a.threads.clone()
            },
            prompt_tokens: a.prompt_tokens.clone(),
            gen_tokens: a.gen_tokens.clone(),
            cold: vec![a.cold],
            sustained: vec![sustained.as_ref().map(|s| s.duration_s)],
            loads: vec![load.label()],
            reps: a.reps.unwrap_or(if long { 1 } else { 5 }),
            warmup: Some(a.warmup.unwrap_or(if long { 0 } else { 1 })),
        };
        let expand = |axes: &LmAxes| axes.expand().map_err(|m| invalid("-p/-n", m));
        let mut cells: Vec<(Cell, bool)> = expand(&axes)?.into_iter().map(|c| (c, false)).collect();
        for &(p, n) in &a.pg {
            let pair = LmAxes {
                prompt_tokens: vec![p],
                gen_tokens: vec![n],
                ..axes.clone()
            };
            for c in expand(&pair)? {
                match cells.iter_mut().find(|(have, _)| have.id == c.id) {
                    Some((_, pg)) => *pg = true,
                    None => cells.push((c, true)),
                }
            }
        }
        let sample_interval_s = a.sample_interval.0.map(|d| d.as_secs_f64());
        let mut out = Vec::with_capacity(cells.len());
        for (c, pg) in cells {
            let mut config = crate::matrix::runner::bench_config(&root, &c, sample_interval_s)
                .map_err(|m| anyhow::anyhow!(m))?;
            // What a matrix cell leaves at its defaults, bench's flags set.
            if let Source::Endpoint(e) = &mut config.source {
                e.timeout_s = a.request_timeout.as_secs_f64();
            }
            config.sustained = sustained.clone();
            config.token_deadline_ms = a.token_deadline_ms;
            config.force = a.force;
            config.seed = a.seed;
            config.cooldown = cooldown;
            config.idle_baseline = a.idle_baseline;
            out.push(BenchCell {
                cell: c,
                config,
                pg,
            });
        }
        Ok(Config {
            cells: out,
            format: if a.out.is_some() {
                BenchFormat::Text
            } else {
                a.format
            },
            exports: exports(a),
        })
    }
}

/// `--gpu-layers`' list as an axis of the llama.cpp runtime's cells (llama-bench's `-ngl 0,99`).
fn gpu_layers_axis(a: &BenchArgs, runtimes: &[RuntimeKind]) -> anyhow::Result<Vec<Option<u32>>> {
    if a.gpu_layers.is_empty() {
        return Ok(vec![None]);
    }
    if !runtimes.contains(&RuntimeKind::LlamaCpp) {
        return Err(invalid(
            "--gpu-layers",
            "only the llama.cpp runtime offloads layers to a GPU: add --runtime llama.cpp (odai \
             built with --features llama-cpp-vulkan, llama-cpp-cuda or llama-cpp-metal)"
                .into(),
        ));
    }
    Ok(a.gpu_layers.iter().copied().map(Some).collect())
}

/// `--cache-type-k` × `--cache-type-v` as an axis of the cells whose runtime types its KV cache
/// (llama-bench's `-ctk q8_0,f16 -ctv f16`); a side not given is f16.
fn kv_axis(
    a: &BenchArgs,
    runtimes: &[RuntimeKind],
) -> anyhow::Result<Vec<Option<crate::engine::kv::KvTypes>>> {
    use crate::engine::kv::{KvType, KvTypes};
    if a.cache_type_k.is_empty() && a.cache_type_v.is_empty() {
        return Ok(vec![None]);
    }
    if !runtimes.iter().any(|r| r.types_kv_cache()) {
        return Err(invalid(
            "--cache-type-k/--cache-type-v",
            "none of the runtimes asked for has a KV cache to type: odai's engine, auto and \
             llama.cpp do (candle's is f32 only; an endpoint's is the server's own)"
                .into(),
        ));
    }
    let side = |v: &[KvType]| {
        if v.is_empty() {
            vec![KvType::default()]
        } else {
            v.to_vec()
        }
    };
    let (ks, vs) = (side(&a.cache_type_k), side(&a.cache_type_v));
    Ok(ks
        .iter()
        .flat_map(|&k| vs.iter().map(move |&v| Some(KvTypes { k, v })))
        .collect())
}

/// `--batch-size` × `--ubatch-size` × `--mmap` as an axis of the cells whose runtime has them
/// (llama-bench's `-b 512,2048 -ub 128 -mmp 0,1`).
fn batching_axis(
    a: &BenchArgs,
    runtimes: &[RuntimeKind],
) -> anyhow::Result<Vec<crate::runtime::batching::Batching>> {
    let sizes = !a.batch_size.is_empty() || !a.ubatch_size.is_empty();
    if sizes && !runtimes.iter().any(|r| r.batches()) {
        return Err(invalid(
            "--batch-size/--ubatch-size",
            "none of the runtimes asked for takes a prompt batch here: odai's engine, auto, candle \
             and llama.cpp do (an endpoint's is the server's)"
                .into(),
        ));
    }
    if !a.mmap.is_empty() && !runtimes.iter().any(|r| r.maps_weights()) {
        return Err(invalid(
            "--mmap",
            "none of the runtimes asked for can map the model file: odai's engine, auto and \
             llama.cpp can (candle always reads it; an endpoint's model is the server's)"
                .into(),
        ));
    }
    Ok(crate::runtime::batching::Batching::product(
        &a.batch_size,
        &a.ubatch_size,
        &a.mmap,
    ))
}

/// `--runtime`'s list as the cells run it: `auto` is ODAI_ENGINE's choice; an endpoint runs on
/// `openai` alone.
fn runtimes(a: &BenchArgs) -> anyhow::Result<Vec<RuntimeKind>> {
    let mut out = Vec::new();
    for &r in &a.runtime {
        let runtime = match (r, &a.endpoint) {
            (RuntimeKind::Auto | RuntimeKind::Openai, Some(_)) => RuntimeKind::Openai,
            (RuntimeKind::Openai, None) => {
                return Err(invalid(
                    "--runtime openai",
                    "give the endpoint: --endpoint URL --model NAME".into(),
                ));
            }
            (other, Some(_)) => {
                return Err(invalid(
                    "--endpoint",
                    format!("an endpoint runs on the openai runtime, not {other} (drop --runtime)"),
                ));
            }
            (RuntimeKind::Auto, None) => RuntimeKind::from_env(),
            (other, None) => other,
        };
        runtime.available()?;
        if !out.contains(&runtime) {
            out.push(runtime);
        }
    }
    Ok(out)
}

/// Runs every cell in order. With one cell its failure is the command's; with several a failed
/// cell is said on stderr and the others run, and the first failure is the exit status at the
/// end (the finished cells are on stdout and in the exports).
pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let steps: u32 = cfg
        .cells
        .iter()
        .map(|c| c.config.reps + c.config.warmup)
        .sum();
    let bar = BAR.get_or_init(|| Progress::steps(BAR_NAME, steps as usize));
    cell::set_progress_sink(|msg| {
        if let Some(b) = BAR.get() {
            b.say(BAR_NAME, msg.trim_start_matches("odai: "));
        }
    });
    cell::set_rep_done_sink(|| {
        if let Some(b) = BAR.get() {
            b.step(BAR_NAME);
        }
    });
    let print = |text: &str| bar.suspend(|| super::print(text));
    let result = run_cells(cfg, &print);
    bar.finish();
    result
}

/// `odai bench`'s progress bar (the matrix's helper, one bar over every repetition): a static
/// because the cell reports progress through plain function pointers.
static BAR: std::sync::OnceLock<Progress> = std::sync::OnceLock::new();
const BAR_NAME: &str = "bench";

fn run_cells(cfg: &Config, print: &dyn Fn(&str) -> anyhow::Result<()>) -> anyhow::Result<i32> {
    let total = cfg.cells.len();
    let mut done: Vec<Done> = Vec::with_capacity(total);
    let mut failures: Vec<anyhow::Error> = Vec::new();
    for (i, bc) in cfg.cells.iter().enumerate() {
        if crate::interrupt::requested() {
            break;
        }
        if total > 1 {
            cell::progress(&format!(
                "odai: cell {}/{total}: {}",
                i + 1,
                cell_label(&bc.cell)
            ));
        }
        let report = match cell::run(&bc.config) {
            Ok(r) => r,
            Err(e) if total == 1 => return Err(e),
            Err(e) => {
                let line = format!("odai: cell {} failed: {e:#}", cell_label(&bc.cell));
                BAR.get().map_or_else(
                    || anstream::eprintln!("{line}"),
                    |b| b.suspend(|| anstream::eprintln!("{line}")),
                );
                failures.push(e);
                continue;
            }
        };
        // Streaming formats print each cell as it ends.
        match cfg.format {
            BenchFormat::Text => print(&render_text(&report))?,
            BenchFormat::Jsonl => print(&super::json_line(&report)?)?,
            _ => {}
        }
        done.push(Done {
            cell: bc,
            report,
            finished_unix_s: crate::units::now_unix_s(),
        });
        for (format, file) in &cfg.exports {
            write_export(file, &render(*format, &done)?)?;
        }
    }
    match cfg.format {
        BenchFormat::Text if done.len() > 1 => print(&format!("\n{}", table_text(&done)))?,
        BenchFormat::Text | BenchFormat::Jsonl => {}
        other => print(&render(other, &done)?)?,
    }
    if crate::interrupt::requested() && done.len() < total {
        anyhow::bail!(
            "interrupted after {} of {total} cells (the finished ones are printed and exported)",
            done.len()
        );
    }
    match failures.into_iter().next() {
        None => Ok(exit::SUCCESS),
        Some(first) => Err(first.context(format!(
            "{} of {total} cells failed; the first",
            total - done.len()
        ))),
    }
}

/// A finished cell: what ran, its report, and when it ended.
struct Done<'a> {
    cell: &'a BenchCell,
    report: Report,
    /// For the results database's rows (`-o sql`), which a build without `db` does not write.
    #[cfg_attr(not(feature = "db"), allow(dead_code))]
    finished_unix_s: f64,
}

/// How a cell is named in progress and failure lines.
fn cell_label(c: &Cell) -> String {
    let depth = if c.depth > 0 {
        format!(" d={}", c.depth)
    } else {
        String::new()
    };
    let kv = c
        .kv_types
        .map_or_else(String::new, |t| format!(" kv={}", t.label()));
    let batching = c.batching.label();
    format!(
        "{} on {}, {} threads, p={} n={}{depth}{kv}{batching}",
        c.model.label(),
        c.runtime,
        c.threads_label(),
        c.prompt_tokens,
        c.gen_tokens
    )
}

/// The finished cells in `format`.
fn render(format: BenchFormat, done: &[Done]) -> anyhow::Result<String> {
    Ok(match format {
        BenchFormat::Text => {
            let mut s: String = done.iter().map(|d| render_text(&d.report)).collect();
            if done.len() > 1 {
                s.push('\n');
                s.push_str(&table_text(done));
            }
            s
        }
        BenchFormat::Md => table_md(done),
        BenchFormat::Csv => render_csv(done)?,
        BenchFormat::Json if done.len() == 1 => super::json_text(&done[0].report)?,
        BenchFormat::Json => {
            let all: Vec<&Report> = done.iter().map(|d| &d.report).collect();
            super::json_text(&all)?
        }
        BenchFormat::Jsonl => done
            .iter()
            .map(|d| super::json_line(&d.report))
            .collect::<anyhow::Result<String>>()?,
        BenchFormat::Sql => sql(done)?,
    })
}

/// The run as SQL for the results database (llama-bench's `-o sql`): one run of this host, its
/// cells and repetitions, in the tables `odai db import` writes.
#[cfg(feature = "db")]
fn sql(done: &[Done]) -> anyhow::Result<String> {
    use crate::db;
    let Some(first) = done.first().map(|d| &d.report) else {
        return Ok(String::new());
    };
    let p = &first.provenance;
    let host = p.device.hostname.value().map_or("unknown", String::as_str);
    let run_id = format!("bench-{host}-{}", p.started_utc);
    let cells: Vec<(&Cell, &Report, f64)> = done
        .iter()
        .map(|d| (&d.cell.cell, &d.report, d.finished_unix_s))
        .collect();
    let mut rows = vec![db::run_row(&run_id, "odai bench", None)];
    for r in db::bench_records(&cells) {
        rows.extend(db::record_rows(&run_id, &r, false)?);
    }
    Ok(db::sql_script(&rows))
}

#[cfg(not(feature = "db"))]
fn sql(_: &[Done]) -> anyhow::Result<String> {
    Err(super::db::not_built("-o sql"))
}

/// llama-bench's columns, one row per test a cell measured: `ppP` (prefill), `tgN` or
/// `tgN @ dP` (decode after a P-token prompt), and `ppP+tgN` for `--pg` cells.
fn table_rows(done: &[Done]) -> Vec<Vec<String>> {
    let shown = Shown::of(done);
    let mut rows = Vec::new();
    for Done {
        cell: bc,
        report: r,
        ..
    } in done
    {
        let p = &r.provenance;
        let rate = |metric: &str| {
            r.summary
                .get(metric)
                .map(|s| format!("{:.2} ± {:.2}", s.mean, s.stddev))
        };
        let mut tests: Vec<(String, Option<String>, String)> = Vec::new();
        let ttft = r
            .summary
            .get("ttft_ms")
            .map_or_else(String::new, |s| format!("{:.1}", s.mean));
        // llama-bench's names: a test at a depth ends ` @ dD`; decode runs at the depth plus
        // the prompt.
        let at = |d: u32| {
            if d > 0 {
                format!(" @ d{d}")
            } else {
                String::new()
            }
        };
        if p.prompt_tokens > 0 {
            tests.push((
                format!("pp{}{}", p.prompt_tokens, at(p.depth)),
                rate("prefill_tps"),
                ttft.clone(),
            ));
        }
        if p.gen_tokens > 0 {
            tests.push((
                format!("tg{}{}", p.gen_tokens, at(p.depth + p.prompt_tokens)),
                rate("decode_tps"),
                String::new(),
            ));
        }
        if bc.pg {
            tests.push((
                format!("pp{}+tg{}{}", p.prompt_tokens, p.gen_tokens, at(p.depth)),
                rate("pg_tps"),
                String::new(),
            ));
        }
        // A row that asked for the GPU and measured the CPU says so where the backend is read.
        let backend = match r.reps.first().and_then(|x| x.offload.as_ref()) {
            Some(o) if o.fell_back() => format!(
                "{} (asked {} GPU layers: fell back to the CPU)",
                p.ran.backend, o.requested
            ),
            _ => p.ran.backend.clone(),
        };
        let ngl = bc
            .cell
            .gpu_layers
            .map_or_else(|| "-".into(), |n| n.to_string());
        // The types the runtime held, as llama-bench prints them.
        let kv =
            |t: Option<crate::engine::kv::KvType>| t.map_or_else(|| "-".into(), |t| t.to_string());
        let (type_k, type_v) = (kv(p.type_k), kv(p.type_v));
        let num = |n: Option<u32>| n.map_or_else(|| "-".into(), |n| n.to_string());
        let mut optional = Vec::new();
        if shown.batch {
            optional.extend([num(p.n_batch), num(p.n_ubatch)]);
        }
        if shown.kv {
            optional.extend([type_k, type_v]);
        }
        if shown.mmap {
            optional.push(
                p.use_mmap
                    .map_or_else(|| "-".into(), |m| u8::from(m).to_string()),
            );
        }
        for (test, tps, ttft) in tests {
            let mut row = vec![
                p.model_file.clone(),
                p.model_bytes.map_or_else(|| "-".into(), units::bytes),
                p.parameters
                    .map_or_else(|| "-".into(), |n| format!("{:.2} B", n as f64 / 1e9)),
                p.ran.runtime.clone(),
                backend.clone(),
                ngl.clone(),
                p.threads.to_string(),
                test,
                tps.unwrap_or_else(|| "-".into()),
                ttft,
            ];
            row.splice(7..7, optional.iter().cloned());
            rows.push(row);
        }
    }
    rows
}

const TABLE_HEADER: [&str; 10] = [
    "model", "size", "params", "runtime", "backend", "ngl", "threads", "test", "t/s", "ttft ms",
];

/// Which of llama-bench's optional columns the table has (after `threads`, in its order:
/// `n_batch` and `n_ubatch`, `type_k` and `type_v`, `mmap`): as llama-bench, only those some
/// cell asked for.
struct Shown {
    batch: bool,
    kv: bool,
    mmap: bool,
}

impl Shown {
    fn of(done: &[Done]) -> Shown {
        let any = |f: &dyn Fn(&Cell) -> bool| done.iter().any(|d| f(&d.cell.cell));
        Shown {
            batch: any(&|c| c.batching.batch.is_some() || c.batching.ubatch.is_some()),
            kv: any(&|c| c.kv_types.is_some()),
            mmap: any(&|c| c.batching.mmap.is_some()),
        }
    }
}

/// The table's columns: [`TABLE_HEADER`], with the optional ones [`Shown`] picks.
fn table_header(done: &[Done]) -> Vec<&'static str> {
    let shown = Shown::of(done);
    let mut optional = Vec::new();
    if shown.batch {
        optional.extend(["n_batch", "n_ubatch"]);
    }
    if shown.kv {
        optional.extend(["type_k", "type_v"]);
    }
    if shown.mmap {
        optional.push("mmap");
    }
    let mut h = TABLE_HEADER.to_vec();
    h.splice(7..7, optional);
    h
}

/// Figures are right-aligned, names left, as llama-bench aligns them.
fn right_aligned(column: &str) -> bool {
    matches!(
        column,
        "size" | "params" | "ngl" | "threads" | "n_batch" | "n_ubatch" | "t/s" | "ttft ms"
    )
}

/// llama-bench's `-o md` table (its column names, odai's runtime and TTFT added).
fn table_md(done: &[Done]) -> String {
    let rows = table_rows(done);
    let header = table_header(done);
    let mut s = format!("| {} |\n", header.join(" | "));
    let align: Vec<&str> = header
        .iter()
        .map(|h| if right_aligned(h) { "---:" } else { "---" })
        .collect();
    s.push_str(&format!("| {} |\n", align.join(" | ")));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    // llama-bench ends its table with the build it measured; odai with where and when too.
    if let Some(Done { report: r, .. }) = done.first() {
        let p = &r.provenance;
        s.push_str(&format!(
            "\nbuild: odai {} (commit {}) on {}, {}\n",
            p.odai_version,
            &p.git_commit[..p.git_commit.len().min(12)],
            p.device
                .hostname
                .value()
                .map_or("unknown host", String::as_str),
            p.started_utc
        ));
    }
    s
}

/// The same table aligned for a terminal, after a run of several cells.
fn table_text(done: &[Done]) -> String {
    let rows = table_rows(done);
    let header = table_header(done);
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from(" ");
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            let pad = w - c.chars().count();
            if right_aligned(header[i]) {
                l.push_str(&format!(" {}{c}", " ".repeat(pad)));
            } else {
                l.push_str(&format!(" {c}{}", " ".repeat(pad)));
            }
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut s = line(header.clone());
    for r in &rows {
        s.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    s
}

fn render_text(r: &Report) -> String {
    let p = &r.provenance;
    let what = match (&p.endpoint, &p.architecture, &p.quant) {
        (Some(url), _, _) => format!("{} at {url}", p.model_file),
        (None, arch, quant) => format!(
            "{} ({} {}, {:.1} M params, {})",
            p.model_file,
            arch.as_deref().unwrap_or("?"),
            quant.as_deref().unwrap_or("?"),
            p.parameters.unwrap_or(0) as f64 / 1e6,
            p.model_bytes.map_or_else(|| "?".into(), units::bytes),
        ),
    };
    let mut s = format!(
        "{what} on {} {} ({}), {} threads, p={} n={}, {} reps + {} warmup, {} load, background load {}\n  \
         measured on {} at {} by odai {} (commit {})\n\n",
        p.ran.runtime,
        p.ran.runtime_version,
        p.ran.backend,
        p.threads,
        p.prompt_tokens,
        p.gen_tokens,
        p.reps,
        p.warmup,
        if p.cold { "cold" } else { "warm" },
        p.load,
        p.device
            .hostname
            .value()
            .map_or("an unnamed host", String::as_str),
        p.started_utc,
        p.odai_version,
        &p.git_commit[..p.git_commit.len().min(12)],
    );
    s.push_str(&format!(
        "  {:<18} {:>12} {:>12} {:>12} {:>12} {:>12} {:>7}\n",
        "metric", "mean", "± ci95", "median", "min", "max", "cov %"
    ));
    for (name, sm) in METRICS
        .iter()
        .filter_map(|(n, _, _)| r.summary.get(*n).map(|s| (n, s)))
    {
        let f = |v: f64| {
            if name.ends_with("_bytes") {
                units::bytes(v as u64)
            } else {
                crate::report::human(v)
            }
        };
        s.push_str(&format!(
            "  {:<18} {:>12} {:>12} {:>12} {:>12} {:>12} {:>7.1}\n",
            name,
            f(sm.mean),
            f(sm.ci95_high - sm.mean),
            f(sm.median),
            f(sm.min),
            f(sm.max),
            sm.cov_pct
        ));
    }
    if !r.warmup_reps.is_empty() {
        // TF Lite's "Warmup (avg)": what the first run after a load costs, apart from the summary.
        let w = |m: &str, unit: &str| {
            r.warmup_summary
                .get(m)
                .map(|s| format!("{m} {:.1}{unit}", s.mean))
        };
        let parts: Vec<String> = [
            w("load_ms", " ms"),
            w("ttft_ms", " ms"),
            w("decode_tps", " tok/s"),
        ]
        .into_iter()
        .flatten()
        .collect();
        s.push_str(&format!(
            "  warmup (mean of {}): {}\n",
            r.warmup_reps.len(),
            parts.join(", ")
        ));
    }
    if let Some(rf) = &r.roofline {
        s.push_str(&format!(
            "\n  roofline: {:.1} GB/s triad ÷ {} per token = {:.0} tok/s; decode runs at {:.0} % of it\n",
            rf.triad_gb_s,
            units::bytes(rf.bytes_per_token),
            rf.roofline_tps,
            rf.roofline_pct
        ));
    }
    if let Some(m) = &r.memory_needs {
        s.push_str(&format!(
            "  memory: {}\n",
            crate::runtime::memory::describe(m)
        ));
    }
    if let Some(peak) = r.reps.iter().filter_map(|x| x.peak_rss_bytes).max() {
        // The parts are the largest of the telemetry samples and a reading at the end, each on
        // its own: a lower bound on each part's peak, and their peaks need not coincide (a load
        // holds mapped pages and their repacked copies at once, briefly).
        let anon = r.reps.iter().filter_map(|x| x.peak_rss_anon_bytes).max();
        let file = r.reps.iter().filter_map(|x| x.peak_rss_file_bytes).max();
        s.push_str(&format!(
            "  measured: peak resident {}{}\n",
            units::bytes(peak),
            match (anon, file) {
                (Some(a), Some(f)) => format!(
                    " (sampled: anonymous {} — KV cache, copies, buffers — and file-backed {} — \
                     the mapped model; the peak can exceed their sum while a load repacks)",
                    units::bytes(a),
                    units::bytes(f)
                ),
                _ => String::new(),
            }
        ));
    }
    if let Some(o) = r.reps.first().and_then(|x| x.offload.as_ref()) {
        let weights: Vec<String> = o
            .weights
            .iter()
            .map(|w| format!("{} {}", w.buffer, units::bytes(w.bytes)))
            .collect();
        s.push_str(&format!(
            "  offload: {} (asked for {}); devices: {}{}\n",
            o.label(),
            o.requested,
            o.devices.join(", "),
            if weights.is_empty() {
                String::new()
            } else {
                format!("; weights: {}", weights.join(", "))
            }
        ));
    }
    if let Some(e) = r.reps.first().and_then(|x| x.endpoint.as_ref()) {
        s.push_str(&format!(
            "\n  endpoint: connection set-up {:.1} ms (load_ms), {} prompt tokens by its usage, {} content chunks\n",
            e.connect_ms,
            e.usage_prompt_tokens
                .map_or_else(|| "unreported".into(), |n| n.to_string()),
            e.chunks
        ));
    }
    if !r.failed_reps.is_empty() {
        s.push_str(&format!(
            "  failed repetitions: {} of {}\n",
            r.failed_reps.len(),
            r.provenance.reps
        ));
    }
    let show = |v: &Reading<f64>, unit: &str| match v {
        Reading::Value(x) => format!("{x:.3} {unit}"),
        Reading::Unavailable(why) => format!("unavailable: {why}"),
    };
    match &r.energy_source {
        Reading::Value(src) => s.push_str(&format!(
            "  energy ({src}): mean power {}, {} per token\n",
            show(&r.mean_power_w, "W"),
            show(&r.energy_j_per_token, "J"),
        )),
        Reading::Unavailable(why) => s.push_str(&format!("  energy: unavailable: {why}\n")),
    }
    if let (Reading::Value(idle), Reading::Value(marginal)) = (&r.idle_power_w, &r.marginal_power_w)
    {
        s.push_str(&format!(
            "  idle power {idle:.3} W, so the model costs {marginal:.3} W on top\n"
        ));
    }
    s.push_str(&format!(
        "  battery drain: {}\n",
        show(&r.battery_drain_pct_per_hour, "%/h")
    ));
    if let Some(sus) = &r.sustained {
        s.push_str(&render_sustained(sus));
    }
    for w in &r.warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
    s
}

fn render_sustained(sus: &Sustained) -> String {
    let opt = |v: Option<f64>, unit: &str| v.map_or("-".to_owned(), |x| format!("{x:.1}{unit}"));
    let mut s = format!(
        "\n  sustained {:.0} s: {} tokens, {} context resets, {:.0} s windows\n",
        sus.duration_s, sus.tokens, sus.resets, sus.window_s
    );
    s.push_str(&format!(
        "  {:>8} {:>10} {:>10} {:>10}\n",
        "t_s", "decode_tps", "max_temp", "cpu_mhz"
    ));
    for w in &sus.windows {
        s.push_str(&format!(
            "  {:>8.1} {:>10.2} {:>10} {:>10}\n",
            w.t_s,
            w.decode_tps,
            opt(w.max_temp_c, " °C"),
            opt(w.cpu_mhz, "")
        ));
    }
    let reading = |r: &Reading<f64>, unit: &str| match r {
        Reading::Value(v) => format!("{v:.2}{unit}"),
        Reading::Unavailable(why) => format!("unavailable: {why}"),
    };
    s.push_str(&format!(
        "  stability (slowest ÷ fastest window): {}\n",
        reading(&sus.stability, "")
    ));
    for c in &sus.checkpoints {
        s.push_str(&format!(
            "  at {:.0} s: {:.2} tok/s = {:.0} % of the first minute, {}, {} MHz\n",
            c.at_s,
            c.decode_tps,
            100.0 * c.relative_to_first_minute,
            opt(c.max_temp_c, " °C"),
            opt(c.cpu_mhz, "")
        ));
    }
    s.push_str(&format!(
        "  first throttle event: {}; temperature rise {}; CPU frequency drop {}\n",
        match &sus.time_to_first_throttle_s {
            Reading::Value(Some(t)) => format!("after {t:.1} s"),
            Reading::Value(None) => "none".to_owned(),
            Reading::Unavailable(why) => format!("unavailable: {why}"),
        },
        reading(&sus.temp_rise_c, " °C"),
        reading(&sus.freq_drop_pct, " %"),
    ));
    s
}

/// One row per repetition of every cell, provenance in every row, so a spreadsheet needs nothing
/// else; for a single sustained cell, one row per window (the time series, ready for plots).
fn render_csv(done: &[Done]) -> anyhow::Result<String> {
    let mut w = crate::report::csv::SafeCsv::new();
    if let [Done { report: r, .. }] = done
        && let Some(sus) = &r.sustained
    {
        let p = &r.provenance;
        w.write_record([
            "t_s",
            "decode_tps",
            "max_temp_c",
            "cpu_mhz",
            "model_file",
            "threads",
        ])?;
        let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x:.3}"));
        for win in &sus.windows {
            w.write_record([
                format!("{:.3}", win.t_s),
                format!("{:.3}", win.decode_tps),
                opt(win.max_temp_c),
                opt(win.cpu_mhz),
                p.model_file.clone(),
                p.threads.to_string(),
            ])?;
        }
        return Ok(String::from_utf8(w.into_inner()?)?);
    }
    w.write_record(CSV_HEADER)?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    let opt_u = |v: Option<u64>| v.map_or(String::new(), |x| x.to_string());
    for Done {
        cell: bc,
        report: r,
        ..
    } in done
    {
        let p = &r.provenance;
        for (i, rep) in r.reps.iter().enumerate() {
            w.write_record([
                (i + 1).to_string(),
                p.model_file.clone(),
                p.model_sha256.clone().unwrap_or_default(),
                p.architecture.clone().unwrap_or_default(),
                p.quant.clone().unwrap_or_default(),
                rep.threads.to_string(),
                p.prompt_tokens.to_string(),
                p.gen_tokens.to_string(),
                rep.cold.to_string(),
                rep.ran.runtime.clone(),
                rep.ran.runtime_version.clone(),
                rep.ran.backend.clone(),
                rep.load_ms.to_string(),
                opt(rep.first_ttft_ms),
                opt(rep.ttft_ms),
                opt(rep.prefill_tps),
                opt(rep.decode_tps),
                opt(rep.token_ms_p50),
                opt(rep.token_ms_p90),
                opt(rep.token_ms_p99),
                opt(rep.deadline_miss_pct),
                opt_u(rep.peak_rss_bytes),
                opt(r.roofline.as_ref().map(|rf| rf.roofline_tps)),
                p.odai_version.clone(),
                opt(rep.token_ms_p95),
                opt(rep.token_ms_p999),
                opt(rep.token_ms_max),
                opt(cell::pg_tps(rep)),
                opt(rep.cpu_user_s),
                opt(rep.cpu_system_s),
                opt_u(rep.peak_rss_anon_bytes),
                opt_u(rep.peak_rss_file_bytes),
                bc.cell.id.clone(),
                p.device.hostname.value().cloned().unwrap_or_default(),
                p.started_utc.clone(),
                p.git_commit.clone(),
                opt_u(bc.cell.gpu_layers.map(u64::from)),
                opt_u(rep.offload.as_ref().map(|o| u64::from(o.on_gpu))),
                rep.offload.as_ref().map_or_else(String::new, |o| o.label()),
                p.type_k.map_or_else(String::new, |t| t.to_string()),
                p.type_v.map_or_else(String::new, |t| t.to_string()),
                opt_u(rep.batching.and_then(|b| b.batch).map(u64::from)),
                opt_u(rep.batching.and_then(|b| b.ubatch).map(u64::from)),
                opt_u(rep.batching.and_then(|b| b.mmap).map(u64::from)),
            ])?;
        }
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// The CSV columns (docs/bench-csv.md); new ones are appended, never inserted.
const CSV_HEADER: [&str; 44] = [
    "rep",
    "model_file",
    "model_sha256",
    "architecture",
    "quant",
    "threads",
    "prompt_tokens",
    "gen_tokens",
    "cold",
    "runtime",
    "runtime_version",
    "backend",
    "load_ms",
    "first_ttft_ms",
    "ttft_ms",
    "prefill_tps",
    "decode_tps",
    "token_ms_p50",
    "token_ms_p90",
    "token_ms_p99",
    "deadline_miss_pct",
    "peak_rss_bytes",
    "roofline_tps",
    "odai_version",
    "token_ms_p95",
    "token_ms_p999",
    "token_ms_max",
    "pg_tps",
    "cpu_user_s",
    "cpu_system_s",
    "peak_rss_anon_bytes",
    "peak_rss_file_bytes",
    "cell_id",
    "hostname",
    "started_utc",
    "git_commit",
    "gpu_layers",
    "gpu_layers_on_gpu",
    "offload",
    "type_k",
    "type_v",
    "n_batch",
    "n_ubatch",
    "use_mmap",
];

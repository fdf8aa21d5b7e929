//! odai: tells a team, with measured evidence, whether an AI model is ready to ship on a device.
//!
//! The pipeline (see DESIGN.md): `probe` describes a device → a cell spec (model, runtime,
//! threads, p, n…) goes to a worker → the worker opens the model through a `runtime` (odai's
//! engine, candle, linked llama.cpp; an OpenAI-compatible endpoint runs from the coordinator) and
//! samples telemetry → the matrix runner stores results → `report` scores them, beside the
//! measured cloud path when there is one. Built so far: `probe` (every device read through
//! [`SysRoot`]), the engine (`engine`: odai's own llama pass, candle, synthetic models),
//! `runtime`, one benchmark cell with its worker protocol (`bench`, `protocol`) including
//! sustained runs, telemetry and energy, matrices and farms, reports.

pub mod bench;
pub mod cli;
pub mod client;
pub mod cmd;
#[cfg(feature = "db")]
pub mod db;
pub mod engine;
pub mod error;
pub mod exit;
pub mod farm;
#[doc(hidden)]
pub mod fuzzing;
pub mod interrupt;
pub mod matrix;
pub mod platform;
pub mod probe;
pub mod protocol;
pub mod provenance;
pub mod quality;
pub mod report;
pub use odai_engine::rng;
pub mod runtime;
pub mod sysroot;
pub mod units;

pub use sysroot::{Reading, SysRoot};

/// The git commit this odai was built from (build.rs; `unknown` outside a git checkout), in
/// every export's provenance.
pub const GIT_COMMIT: &str = env!("ODAI_GIT_COMMIT");

/// `odai --version`: the version, then the commit, target and cargo features it was built with
/// (`-V` prints the first line alone; `farm deploy` compares that line).
pub const LONG_VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    "\ncommit ",
    env!("ODAI_GIT_COMMIT"),
    "\ntarget ",
    env!("ODAI_TARGET"),
    "\nfeatures ",
    env!("ODAI_FEATURES"),
    "\nruntimes odai, candle, openai",
    ", onnxruntime and tflite (loaded at run time)"
);

use clap::Parser;

use cli::{Cli, ColorChoice, Command};

/// Runs the command line and returns the process exit code (see [`exit`]).
pub fn run() -> i32 {
    headless_gpu_env();
    let cli = match Cli::try_parse_from(older_spellings(std::env::args_os())) {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            anstream::eprintln!("odai: error: {}", usage_error(&e.to_string()));
            return exit::USAGE;
        }
        Err(e) => {
            // --help and --version: clap's own text, on stdout.
            let _ = e.print();
            return exit::SUCCESS;
        }
    };
    match cli.color {
        ColorChoice::Always => anstream::ColorChoice::Always.write_global(),
        ColorChoice::Never => anstream::ColorChoice::Never.write_global(),
        ColorChoice::Auto => {}
    }
    init_logging(cli.verbose);
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::Write::flush(&mut std::io::stdout());
            // Errors can carry a device's or a server's words.
            let text = format!("{e:#}");
            anstream::eprintln!("odai: error: {}", units::printable(&text));
            exit::code_for(&e)
        }
    }
}

fn dispatch(cli: &Cli) -> anyhow::Result<i32> {
    let root = match &cli.root {
        Some(dir) => SysRoot::at(dir)?,
        None => SysRoot::live(),
    };
    match &cli.command {
        Command::Probe(args) => cmd::probe::execute(&cmd::probe::Config::new(root, args)),
        Command::Generate(args) => cmd::generate::execute(&cmd::generate::Config::new(args)?),
        Command::Model(cli::ModelCommand::Inspect(args)) => {
            cmd::model::inspect(&cmd::model::InspectConfig::new(args))
        }
        Command::Bench(args) if cmd::bench_tensor::wanted(args) => {
            cmd::bench_tensor::execute(&cmd::bench_tensor::Config::new(root, args)?)
        }
        Command::Bench(args) => cmd::bench::execute(&cmd::bench::Config::new(root, args)?),
        Command::Matrix(cli::MatrixCommand::Plan(args)) => {
            cmd::matrix::plan(&cmd::matrix::PlanConfig::new(root, args))
        }
        Command::Matrix(cli::MatrixCommand::Run(args)) => {
            cmd::matrix::run(&cmd::matrix::RunConfig::new(root, args))
        }
        Command::Worker => cmd::worker::execute(&root),
        Command::Completions(args) => cmd::completions::execute(args.shell),
        Command::Db(cli::DbCommand::Import(args)) => cmd::db::import(args),
        Command::Farm(cli::FarmCommand::Check(args)) => {
            cmd::farm::check(&cmd::farm::CheckConfig::new(root, args))
        }
        Command::Farm(cli::FarmCommand::Deploy(args)) => {
            cmd::farm::deploy(&cmd::farm::DeployConfig::new(root, args)?)
        }
        Command::Report(args) => cmd::report::execute(&cmd::report::Config::new(args)?),
        Command::Compare(args) => cmd::compare::execute(&cmd::compare::Config::new(args)),
        Command::Quality(args) => cmd::quality::execute(&cmd::quality::Config::new(args)?),
        Command::Route(cli::RouteCommand::Build(args)) => {
            cmd::route::build(&cmd::route::BuildConfig::new(args))
        }
        Command::Route(cli::RouteCommand::Explain(args)) => {
            cmd::route::explain(&cmd::route::ExplainConfig::new(args))
        }
        Command::Profile(args) => cmd::profile::execute(&cmd::profile::Config::new(root, args)?),
        Command::Contend { cpu, mem } => bench::load::contend(*cpu, *mem),
        Command::Model(cli::ModelCommand::Synth(args)) => {
            cmd::model::synth(&cmd::model::SynthConfig::new(args)?)
        }
        Command::Model(cli::ModelCommand::Tokenize(args)) => {
            cmd::model::tokenize(&cmd::model::TokenizeConfig::new(args)?)
        }
    }
}

/// The environment variable that carries `-v`'s level to workers (they are started without the
/// flag; a local worker inherits the environment).
pub const LOG_ENV: &str = "ODAI_LOG";

/// Logging to stderr at `-v`'s level: off without it (odai's output stays as documented), else
/// info, debug, trace for every crate. RUST_LOG, where set, decides instead; a worker reads the
/// level its coordinator set in ODAI_LOG.
fn init_logging(verbose: u8) {
    let filter = match (std::env::var("RUST_LOG"), verbose) {
        (Ok(f), _) => Some(f),
        (Err(_), 0) => std::env::var(LOG_ENV).ok(),
        (Err(_), 1) => Some("info".into()),
        (Err(_), 2) => Some("debug".into()),
        (Err(_), _) => Some("trace".into()),
    };
    let Some(filter) = filter.filter(|f| !f.is_empty()) else {
        return;
    };
    if std::env::var_os(LOG_ENV).is_none() {
        // SAFETY: called from `run` before odai starts any thread (as headless_gpu_env).
        unsafe { std::env::set_var(LOG_ENV, &filter) };
    }
    let _ = env_logger::Builder::new()
        .parse_filters(&filter)
        .format_target(true)
        .try_init();
    log::info!(
        "odai {} ({}, commit {}), log level {filter}",
        env!("CARGO_PKG_VERSION"),
        env!("ODAI_TARGET"),
        GIT_COMMIT
    );
}

/// llama-bench's two-letter short flags `-pg P,N` and `-ngl N,...` as clap takes them (`--pg`,
/// `--gpu-layers`): clap's short flags are one letter, and people who benchmark type them from
/// habit.
/// clap's usage error (`error: …`, a blank line, tips, `Usage: …`, "For more information…") as
/// odai's one line: what is wrong, then the tip and the usage in brackets.
fn usage_error(clap_text: &str) -> String {
    let mut lines = clap_text.lines().map(str::trim).filter(|l| !l.is_empty());
    let what = lines
        .next()
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .unwrap_or("bad command line");
    let mut extra: Vec<String> = Vec::new();
    for l in lines {
        if l.starts_with("tip: ") {
            extra.push(l.to_owned());
        } else if let Some(usage) = l.strip_prefix("Usage: ") {
            extra.push(format!("usage: {usage}"));
        }
    }
    extra.push("see --help".into());
    format!("{what} ({})", extra.join("; "))
}

/// Spellings odai accepts from elsewhere or from before, rewritten to odai's own before clap
/// parses them:
/// - llama-bench's `-pg`, `-ngl`, `-ctk` and `-ctv` (`odai bench` takes llama-bench's flags);
/// - `-o FILE` in `route build` and `model synth`, from before `-o` meant the output format in
///   every command: rewritten to `--output FILE`, with a warning saying so. A value that is a
///   format name (`-o json`) is the format, as everywhere.
fn older_spellings(args: impl Iterator<Item = std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let args: Vec<std::ffi::OsString> = args.collect();
    let words: Vec<&str> = args.iter().map(|a| a.to_str().unwrap_or("")).collect();
    let file_o = words
        .windows(2)
        .any(|w| w == ["route", "build"] || w == ["model", "synth"]);
    let mut out = Vec::with_capacity(args.len());
    for (i, a) in args.iter().enumerate() {
        match words[i] {
            "-pg" => out.push("--pg".into()),
            "-ngl" => out.push("--gpu-layers".into()),
            "-ctk" => out.push("--cache-type-k".into()),
            "-ctv" => out.push("--cache-type-v".into()),
            "-ub" => out.push("--ubatch-size".into()),
            "-mmp" => out.push("--mmap".into()),
            "-o" if file_o
                && words
                    .get(i + 1)
                    .is_some_and(|v| !v.is_empty() && !["text", "json"].contains(v)) =>
            {
                anstream::eprintln!(
                    "odai: warning: `-o {}` is the older spelling: -o is the output format in \
                     every odai command; write --output {}",
                    words[i + 1],
                    words[i + 1]
                );
                out.push("--output".into());
            }
            _ => out.push(a.clone()),
        }
    }
    out
}

/// GPU enumeration is headless: Mesa's Vulkan device-select layer otherwise connects to Wayland to
/// learn the default display device and prints "XDG_RUNTIME_DIR is invalid" on every probe of a
/// server or CI machine. The layer only reorders devices for presentation, which odai never does.
/// A user's own setting wins.
fn headless_gpu_env() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // SAFETY: called first thing in `run`, before odai starts any thread, so nothing can read
        // the environment concurrently.
        unsafe { std::env::set_var("NODEVICE_SELECT", "1") };
    }
}

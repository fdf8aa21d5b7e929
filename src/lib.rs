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
pub mod quality;
pub mod report;
pub mod rng;
pub mod runtime;
pub mod sysroot;
pub mod units;

pub use sysroot::{Reading, SysRoot};

use clap::Parser;

use cli::{Cli, ColorChoice, Command};

/// Runs the command line and returns the process exit code (see [`exit`]).
pub fn run() -> i32 {
    headless_gpu_env();
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::SUCCESS
            };
        }
    };
    match cli.color {
        ColorChoice::Always => anstream::ColorChoice::Always.write_global(),
        ColorChoice::Never => anstream::ColorChoice::Never.write_global(),
        ColorChoice::Auto => {}
    }
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let _ = std::io::Write::flush(&mut std::io::stdout());
            anstream::eprintln!("odai: error: {e:#}");
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
        Command::Bench(args) => cmd::bench::execute(
            &bench::cell::Config::new(root, args)?,
            args.format,
            args.out.as_deref(),
        ),
        Command::Matrix(cli::MatrixCommand::Plan(args)) => {
            cmd::matrix::plan(&cmd::matrix::PlanConfig::new(root, args))
        }
        Command::Matrix(cli::MatrixCommand::Run(args)) => {
            cmd::matrix::run(&cmd::matrix::RunConfig::new(root, args))
        }
        Command::Worker => cmd::worker::execute(&root),
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
    }
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

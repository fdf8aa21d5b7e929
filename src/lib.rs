//! odai: tells a team, with measured evidence, whether an AI model is ready to ship on a device.
//!
//! The pipeline (see DESIGN.md): `probe` describes a device → a cell spec goes to a worker → the
//! worker runs the engine and samples telemetry → the matrix runner stores results → `report`
//! scores them. This crate has the probe so far; every device read goes through [`SysRoot`].

pub mod cli;
pub mod cmd;
pub mod error;
pub mod exit;
pub mod probe;
pub mod sysroot;
pub mod units;

pub use sysroot::{Reading, SysRoot};

use clap::Parser;

use cli::{Cli, ColorChoice, Command};

/// Runs the command line and returns the process exit code (see [`exit`]).
pub fn run() -> i32 {
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
        Command::Probe(args) => cmd::probe::execute(&cmd::probe::Config::new(root, args)?),
    }
}

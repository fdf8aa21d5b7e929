//! The command line, as clap derive types — and nothing else. Each subcommand's typed config is
//! built from these in `src/cmd/<name>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "odai",
    version,
    about = "Is this AI model ready to ship on this device? Measured evidence, not guesses.",
    long_about = "odai probes a device (CPU, SIMD, memory headroom, GPUs, NPUs, thermal, power), \
benchmarks real local inference, runs benchmark matrices across a device farm, and scores \
on-device readiness.\n\nEvery reading is a value or \"unavailable: reason\" - never a made-up zero.",
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 3 bad input (missing or malformed \
file or directory).\nColour follows --color, NO_COLOR and whether output is a terminal."
)]
pub struct Cli {
    /// Read /proc, /sys and /dev under DIR instead of the live device (a captured device tree)
    #[arg(long, global = true, env = "ODAI_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// When to use colour in text output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe what this device can give a local model: CPU, SIMD, memory headroom, GPUs, NPUs,
    /// thermal state, power and energy meters, and its device class
    #[command(
        after_help = "Examples:\n  odai probe\n  odai probe --format json --no-gpu | jq .memory.headroom_bytes\n  odai probe --root tests/fixtures/raspberry-pi-5   # a captured device tree"
    )]
    Probe(ProbeArgs),
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Output format: a readable summary, or the stable JSON document (docs/probe-json.md)
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Skip GPU adapter enumeration (loading Vulkan/GL drivers is the slow part of a probe)
    #[arg(long)]
    pub no_gpu: bool,

    /// Give up on GPU enumeration after this many seconds (a broken driver can hang)
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = positive_seconds)]
    pub gpu_timeout: std::time::Duration,

    /// Device classes file (default: the built-in profiles/device-classes.toml)
    #[arg(long, env = "ODAI_CLASSES", value_name = "FILE")]
    pub classes: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn positive_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} must be a positive number of seconds"))
}

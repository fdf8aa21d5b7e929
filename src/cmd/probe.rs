//! `odai probe`: builds the probe's typed config from the command line and prints the result.

use std::path::PathBuf;

use anyhow::Context;

use crate::cli::{Format, ProbeArgs};
use crate::exit;
use crate::probe::{self, class, gpu};
use crate::sysroot::{SysRoot, to_contract_json};

pub struct Config {
    pub root: SysRoot,
    pub format: Format,
    pub gpu: gpu::Enumerate,
    pub classes: Option<PathBuf>,
}

impl Config {
    pub fn new(root: SysRoot, args: &ProbeArgs) -> Self {
        Config {
            root,
            format: args.format,
            gpu: if args.no_gpu {
                gpu::Enumerate::Skip
            } else {
                gpu::Enumerate::WithTimeout(args.gpu_timeout)
            },
            classes: args.classes.clone(),
        }
    }
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let classes = class::load(cfg.classes.as_ref())?;
    let result = probe::run(
        &cfg.root,
        &probe::Options {
            gpu: cfg.gpu,
            classes,
        },
    );
    let text = match cfg.format {
        Format::Text => probe::text::render(&result),
        Format::Json => {
            let v = to_contract_json(&result).context("cannot serialize the probe")?;
            let mut s = serde_json::to_string_pretty(&v).context("cannot serialize the probe")?;
            s.push('\n');
            s
        }
    };
    super::print(&text)?;
    Ok(exit::SUCCESS)
}

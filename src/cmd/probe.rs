//! `odai probe`: builds the probe's typed config from the command line and prints the result.

use std::path::PathBuf;

use crate::cli::{Format, ProbeArgs};
use crate::exit;
use crate::probe::{self, class, gpu};
use crate::sysroot::SysRoot;

pub struct Config {
    pub root: SysRoot,
    pub format: Format,
    pub gpu: gpu::Enumerate,
    pub gpu_check: Option<std::time::Duration>,
    pub classes: Option<PathBuf>,
    pub bandwidth: bool,
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
            gpu_check: args.gpu_check.then_some(args.gpu_check_timeout),
            classes: args.classes.clone(),
            bandwidth: args.bandwidth,
        }
    }
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    let classes = class::load(cfg.classes.as_ref())?;
    let result = probe::run(
        &cfg.root,
        &probe::Options {
            gpu: cfg.gpu,
            gpu_check: cfg.gpu_check,
            // Asked for explicitly: every adapter, software rasterisers included.
            gpu_check_software: true,
            classes,
            bandwidth: cfg.bandwidth,
        },
    );
    let text = match cfg.format {
        Format::Text => probe::text::render(&result),
        Format::Json => super::json_text(&result)?,
    };
    super::print(&text)?;
    Ok(exit::SUCCESS)
}

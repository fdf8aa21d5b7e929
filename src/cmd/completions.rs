//! `odai completions SHELL`: the shell's completion script, generated from the command line's
//! own definition (clap_complete), so it never drifts from the flags.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit;

pub fn execute(shell: clap_complete::Shell) -> anyhow::Result<i32> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "odai", &mut script);
    super::print(&String::from_utf8_lossy(&script))?;
    Ok(exit::SUCCESS)
}

//! `cargo xtask man [DIR]`: writes odai's man pages — `odai.1` and `odai-<sub>.1` for every
//! subcommand, nested ones as `odai-matrix-run.1` — into DIR (default `target/man`), from the
//! same clap definition as `--help` (clap_mangen), so they never drift from the flags.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::CommandFactory;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("man") => {
            let dir = args.get(1).map_or_else(
                || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/man"),
                PathBuf::from,
            );
            let written = man(&dir)?;
            eprintln!("xtask: {written} man pages in {}", dir.display());
            Ok(())
        }
        _ => {
            eprintln!("usage: cargo xtask man [DIR]   (default DIR: target/man)");
            std::process::exit(2)
        }
    }
}

/// Every page into `dir`, created if missing; how many were written.
fn man(dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = 0;
    write_pages(&odai::cli::Cli::command(), "odai", dir, &mut written)?;
    Ok(written)
}

/// `cmd`'s page as `name.1`, then each visible subcommand's as `name-sub.1`.
fn write_pages(
    cmd: &clap::Command,
    name: &str,
    dir: &Path,
    written: &mut usize,
) -> anyhow::Result<()> {
    let cmd = cmd
        .clone()
        .name(name.to_owned())
        .bin_name(name.replace('-', " "));
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut page)
        .context("cannot render a man page")?;
    let file = dir.join(format!("{name}.1"));
    std::fs::write(&file, page).with_context(|| format!("cannot write {}", file.display()))?;
    *written += 1;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, written)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What test.sh's man stage checked, run with the workspace's tests (no second build of
    /// odai for the xtask alone): a page per command, nested ones included, each naming its
    /// command and its flags.
    #[test]
    fn every_visible_command_gets_a_page_naming_its_flags() {
        let dir = std::env::temp_dir().join(format!("odai-xtask-man-{}", std::process::id()));
        let written = man(&dir).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let probe = std::fs::read_to_string(dir.join("odai-probe.1"));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(names.len(), written);
        assert!(written >= 20, "{names:?}");
        for page in ["odai.1", "odai-probe.1", "odai-matrix-run.1"] {
            assert!(names.iter().any(|n| n == page), "{page} missing: {names:?}");
        }
        let probe = probe.unwrap();
        assert!(probe.contains(".TH odai-probe 1"), "{probe}");
        assert!(probe.contains(r"\fBodai probe\fR"), "{probe}");
        assert!(probe.contains(r"\-\-gpu\-check"), "{probe}");
    }
}

//! The device farm: the inventory (`farm.toml`), the quoting of everything that crosses a remote
//! shell, and the transports that start `odai worker` on a device — this machine, an SSH host,
//! an Android device over ADB — behind one [`Transport`] trait.

pub mod adb;
pub mod inventory;
pub mod local;
pub mod quote;
pub mod ssh;

use std::path::Path;
use std::process::{Command, ExitStatus};

use inventory::DeviceEntry;

/// How odai reaches a device. Every method builds a command; nothing runs until the caller
/// spawns it, so tests can check the exact argv.
pub trait Transport: Send + Sync {
    /// The device's name in the farm.
    fn name(&self) -> &str;
    /// Where it is, for tables and errors: `ssh lab@10.0.0.5:2222`, `adb ABC123`, `local`.
    fn target(&self) -> String;
    /// Runs odai on the device with `args`, the device's `env` set.
    fn odai(&self, args: &[&str]) -> Command;
    /// Runs a POSIX shell command line on the device (already quoted by the caller).
    fn shell(&self, line: &str) -> Command;
    /// Copies a local file to `remote` on the device (the command reads the file itself).
    fn push(&self, local: &Path, remote: &str) -> std::io::Result<Command>;
    /// Where odai lives on the device.
    fn odai_path(&self) -> String;
    /// Whether a command that greeted and then ended without an answer, with this exit status
    /// and this last line on stderr, lost its connection rather than failed in the program.
    fn transport_failed(&self, _status: &ExitStatus, _last_stderr: &str) -> bool {
        false
    }
    /// This machine itself: nothing to deploy.
    fn is_local(&self) -> bool {
        false
    }
}

/// The transport for a farm device. `local_exe` is this odai (a local device runs it);
/// `local_root` is this odai's `--root`, given to local workers without an `ODAI_ROOT` of their
/// own.
pub fn transport(
    d: &DeviceEntry,
    local_exe: &Path,
    local_root: Option<&Path>,
) -> Box<dyn Transport> {
    match d.transport {
        inventory::Transport::Local => Box::new(local::Local::new(d, local_exe, local_root)),
        inventory::Transport::Ssh => Box::new(ssh::Ssh::new(d)),
        inventory::Transport::Adb => Box::new(adb::Adb::new(d)),
    }
}

/// `exec env K=V … odai ARGS`, quoted for the remote shell; `exec` so the worker is the
/// process the connection waits on, and a signal that ends it is reported as such (adbd
/// reports it as 128 + the signal).
pub(crate) fn remote_line(d: &DeviceEntry, odai: &str, args: &[&str]) -> String {
    format!("exec {}", env_line(d, odai, args))
}

/// `[env K=V …] odai ARGS`, quoted for a POSIX shell.
pub(crate) fn env_line(d: &DeviceEntry, odai: &str, args: &[&str]) -> String {
    let argv = std::iter::once(odai).chain(args.iter().copied());
    let line = quote::command_line(d.env.iter().map(|(k, v)| (k.as_str(), v.as_str())), argv);
    if d.env.is_empty() {
        line
    } else {
        format!("env {line}")
    }
}

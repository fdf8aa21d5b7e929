//! The ADB transport: `adb -s SERIAL shell` runs the worker on an Android device (odai pushed to
//! `/data/local/tmp`, the one place a shell user may execute from); `adb push` deploys it. adb
//! joins its arguments into one line for the device's shell, so odai hands it one line quoted
//! in full. `ODAI_ADB` names another adb binary.

use std::path::Path;
use std::process::{Command, ExitStatus};

use super::inventory::DeviceEntry;
use super::{Transport, remote_line};

pub const DEFAULT_ODAI: &str = "/data/local/tmp/odai";

pub struct Adb {
    entry: DeviceEntry,
}

impl Adb {
    pub fn new(d: &DeviceEntry) -> Adb {
        Adb { entry: d.clone() }
    }

    fn adb(&self) -> Command {
        let program = std::env::var_os("ODAI_ADB").unwrap_or_else(|| "adb".into());
        let mut c = Command::new(program);
        c.arg("-s")
            .arg(self.entry.serial.as_deref().unwrap_or_default());
        c
    }
}

impl Transport for Adb {
    fn name(&self) -> &str {
        &self.entry.name
    }

    fn target(&self) -> String {
        format!("adb {}", self.entry.serial.as_deref().unwrap_or_default())
    }

    fn odai(&self, args: &[&str]) -> Command {
        self.shell(&remote_line(&self.entry, &self.odai_path(), args))
    }

    fn shell(&self, line: &str) -> Command {
        let mut c = self.adb();
        c.arg("shell").arg(line);
        c
    }

    fn push(&self, local: &Path, remote: &str) -> std::io::Result<Command> {
        let mut c = self.adb();
        c.arg("push").arg(local).arg(remote);
        Ok(c)
    }

    /// adb's shell-protocol client returns the remote exit code from the exit packet; when the
    /// link drops (cable, adbd restart, device reboot) before one arrives it returns 0
    /// (`read_and_dump` in AOSP's adb/client/commandline.cpp), and a worker that greeted never
    /// exits 0 without an answer. adb's own failures exit 1 with its "error: …" / "adb: …" on
    /// stderr, where odai's say "odai: …".
    fn transport_failed(&self, status: &ExitStatus, last_stderr: &str) -> bool {
        match status.code() {
            Some(0) => true,
            Some(1) => last_stderr.starts_with("error: ") || last_stderr.starts_with("adb: "),
            _ => false,
        }
    }

    fn odai_path(&self) -> String {
        self.entry
            .odai
            .clone()
            .unwrap_or_else(|| DEFAULT_ODAI.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::inventory::Farm;

    #[test]
    fn a_link_lost_is_told_apart_from_a_worker_failure() {
        let farm = Farm::parse(
            "[[device]]\nname = \"p\"\ntransport = \"adb\"\nserial = \"S\"\n",
            Path::new("farm.toml"),
        )
        .unwrap();
        let t = Adb::new(&farm.devices[0]);
        let exit = crate::platform::exited_with;
        assert!(t.transport_failed(&exit(0), ""));
        assert!(t.transport_failed(&exit(1), "error: device offline"));
        assert!(t.transport_failed(&exit(1), "adb: device 'S' not found"));
        assert!(!t.transport_failed(&exit(1), "odai: error: cannot load the model"));
        assert!(!t.transport_failed(&exit(3), ""));
    }

    #[test]
    fn the_worker_runs_through_adb_shell_as_one_quoted_line() {
        let farm = Farm::parse(
            "[[device]]\nname = \"pixel\"\ntransport = \"adb\"\nserial = \"ABC123\"\n\
             env = { ODAI_ROOT = \"/data/local/tmp/$(x)\" }\n",
            Path::new("farm.toml"),
        )
        .unwrap();
        let t = Adb::new(&farm.devices[0]);
        let c = t.odai(&["worker"]);
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args,
            [
                "-s",
                "ABC123",
                "shell",
                "exec env ODAI_ROOT='/data/local/tmp/$(x)' /data/local/tmp/odai worker"
            ]
        );
        let push: Vec<String> = t
            .push(Path::new("odai"), "/data/local/tmp/odai.deploying")
            .unwrap()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            push,
            [
                "-s",
                "ABC123",
                "push",
                "odai",
                "/data/local/tmp/odai.deploying"
            ]
        );
    }
}

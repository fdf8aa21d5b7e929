//! The SSH transport: the system OpenSSH client, non-interactive (`BatchMode=yes`: a missing key
//! or an unknown host fails at once instead of prompting) and checking host keys against the
//! user's known_hosts (or the `ssh_config` given) — odai never turns host-key checking off.

use std::path::Path;
use std::process::{Command, ExitStatus};

use super::inventory::DeviceEntry;
use super::{Transport, env_line};

/// Where odai is installed when the farm names no path: relative to the login directory, which
/// is where ssh commands start.
pub const DEFAULT_ODAI: &str = ".local/bin/odai";

pub struct Ssh {
    entry: DeviceEntry,
}

impl Ssh {
    pub fn new(d: &DeviceEntry) -> Ssh {
        Ssh { entry: d.clone() }
    }

    fn options(&self, c: &mut Command) {
        let d = &self.entry;
        if let Some(f) = &d.ssh_config {
            c.arg("-F").arg(f);
        }
        c.args([
            "-o",
            "BatchMode=yes",
            // A dead link is noticed in about 15 s, not at the TCP timeout.
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "ConnectTimeout=10",
        ]);
        if let Some(i) = &d.identity_file {
            c.arg("-i").arg(i).args(["-o", "IdentitiesOnly=yes"]);
        }
        if let Some(p) = d.port {
            c.arg("-p").arg(p.to_string());
        }
        if let Some(u) = &d.user {
            c.arg("-o").arg(format!("User={u}"));
        }
    }

    fn host(&self) -> &str {
        self.entry.host.as_deref().unwrap_or_default()
    }
}

impl Transport for Ssh {
    fn name(&self) -> &str {
        &self.entry.name
    }

    fn target(&self) -> String {
        let d = &self.entry;
        format!(
            "ssh {}{}{}",
            d.user.as_ref().map_or(String::new(), |u| format!("{u}@")),
            self.host(),
            d.port.map_or(String::new(), |p| format!(":{p}"))
        )
    }

    /// The worker under a POSIX `sh` that waits for it and exits as it did: OpenSSH's client
    /// ignores the server's exit-signal message and exits 255 for a remote command a signal
    /// ended — the code of a lost connection, which is retried. Found in review: a worker
    /// the OOM killer ended on the device was "device offline after 4 attempts". Through the
    /// shell it is exit 128 + the signal (137 for SIGKILL), as a shell reports it.
    fn odai(&self, args: &[&str]) -> Command {
        let line = env_line(&self.entry, &self.odai_path(), args);
        self.shell(&format!(
            "exec sh -c {}",
            super::quote::sh_quote(&format!("{line}; exit $?"))
        ))
    }

    fn shell(&self, line: &str) -> Command {
        let mut c = Command::new("ssh");
        // -T: no terminal, so the worker's JSON lines pass through untouched.
        c.arg("-T");
        self.options(&mut c);
        // `--` ends the options: a host can never be read as one.
        c.arg("--").arg(self.host()).arg(line);
        c
    }

    /// Streams the file through `cat` on the device rather than scp: OpenSSH 9's scp needs the
    /// server's sftp subsystem, which small devices' sshd (dropbear, busybox images) often lack;
    /// `cat` is everywhere.
    fn push(&self, local: &Path, remote: &str) -> std::io::Result<Command> {
        let file = std::fs::File::open(local)?;
        let mut c = self.shell(&format!("cat > {}", super::quote::sh_quote(remote)));
        c.stdin(file);
        Ok(c)
    }

    fn odai_path(&self) -> String {
        self.entry
            .odai
            .clone()
            .unwrap_or_else(|| DEFAULT_ODAI.into())
    }

    /// ssh exits 255 when it, not the remote command, failed (ssh(1), EXIT STATUS).
    fn transport_failed(&self, status: &ExitStatus, _last_stderr: &str) -> bool {
        status.code() == Some(255)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::farm::inventory::Farm;

    fn argv(c: &Command) -> Vec<String> {
        std::iter::once(c.get_program())
            .chain(c.get_args())
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_worker_runs_through_batch_mode_ssh_with_every_part_quoted() {
        let farm = Farm::parse(
            "[[device]]\nname = \"jetson\"\ntransport = \"ssh\"\nhost = \"10.0.0.5\"\nport = 2222\n\
             user = \"lab\"\nidentity_file = \"/keys/lab\"\nssh_config = \"/etc/odai/ssh_config\"\n\
             odai = \"/opt/odai dir/odai\"\nenv = { ODAI_ROOT = \"/srv/a b\" }\n",
            Path::new("farm.toml"),
        )
        .unwrap();
        let t = Ssh::new(&farm.devices[0]);
        assert_eq!(
            argv(&t.odai(&["worker"])),
            [
                "ssh",
                "-T",
                "-F",
                "/etc/odai/ssh_config",
                "-o",
                "BatchMode=yes",
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "ServerAliveCountMax=3",
                "-o",
                "ConnectTimeout=10",
                "-i",
                "/keys/lab",
                "-o",
                "IdentitiesOnly=yes",
                "-p",
                "2222",
                "-o",
                "User=lab",
                "--",
                "10.0.0.5",
                r"exec sh -c 'env ODAI_ROOT='\''/srv/a b'\'' '\''/opt/odai dir/odai'\'' worker; exit $?'",
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("odai");
        std::fs::write(&bin, "binary").unwrap();
        let push = argv(&t.push(&bin, ".local/bin/it's").unwrap());
        assert_eq!(push[0], "ssh");
        assert_eq!(push.last().unwrap(), r"cat > '.local/bin/it'\''s'");
        assert_eq!(t.target(), "ssh lab@10.0.0.5:2222");
        // Never a host-key override.
        assert!(
            !argv(&t.odai(&["worker"]))
                .iter()
                .any(|a| a.contains("StrictHostKeyChecking"))
        );
    }
}

//! A real OpenSSH server for farm tests: `sshd` on 127.0.0.1 at a free high port, with a
//! throw-away host key, a throw-away user key in its authorized_keys, and an ssh_config whose
//! known_hosts holds exactly that host key — host-key checking stays on, as odai requires.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("a command of the ssh test harness");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SSHD: &str = "/usr/sbin/sshd";

impl Sshd {
    pub fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: install openssh-server (scripts/test.sh does)"
        );
        // sshd run as root wants its privilege-separation directory.
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            fs::create_dir_all("/run/sshd").unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for key in ["host_key", "id_ed25519"] {
            run(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "odai-test", "-f"])
                .arg(d.join(key)));
        }
        fs::copy(d.join("id_ed25519.pub"), d.join("authorized_keys")).unwrap();
        let port = free_port();
        let host_pub = fs::read_to_string(d.join("host_key.pub")).unwrap();
        let mut parts = host_pub.split_whitespace();
        let (kind, key) = (parts.next().unwrap(), parts.next().unwrap());
        fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {kind} {key}\n"),
        )
        .unwrap();
        fs::write(
            d.join("ssh_config"),
            format!(
                "Host *\n  UserKnownHostsFile {kh}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  LogLevel ERROR\n",
                kh = d.join("known_hosts").display()
            ),
        )
        .unwrap();
        fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {dir}/host_key\n\
                 AuthorizedKeysFile {dir}/authorized_keys\nPidFile {dir}/sshd.pid\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                 PermitRootLogin prohibit-password\nLogLevel ERROR\n",
                dir = d.display()
            ),
        )
        .unwrap();
        let mut s = Sshd {
            dir,
            port,
            child: None,
        };
        s.restart();
        s
    }

    /// (Re)starts the server on the same port with the same keys.
    pub fn restart(&mut self) {
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(self.dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sshd starts");
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "sshd did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the listener: new connections are refused (sessions already open run on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn identity(&self) -> PathBuf {
        self.dir.path().join("id_ed25519")
    }

    pub fn ssh_config(&self) -> PathBuf {
        self.dir.path().join("ssh_config")
    }

    /// A farm.toml `[[device]]` entry reaching this server as the current user.
    pub fn device(&self, name: &str, odai: &Path, env: &[(&str, &str)]) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| whoami());
        let env: Vec<String> = env
            .iter()
            .map(|(k, v)| format!("{k} = {}", toml_str(v)))
            .collect();
        format!(
            "[[device]]\nname = \"{name}\"\ntransport = \"ssh\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             user = {user}\nidentity_file = {id}\nssh_config = {cfg}\nodai = {odai}\n\
             tags = [\"ssh\"]\nenv = {{ {env} }}\n\n",
            port = self.port,
            user = toml_str(&user),
            id = toml_str(&self.identity().display().to_string()),
            cfg = toml_str(&self.ssh_config().display().to_string()),
            odai = toml_str(&odai.display().to_string()),
            env = env.join(", "),
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A TOML basic string.
pub fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

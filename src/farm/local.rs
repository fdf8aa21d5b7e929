//! The local transport: this machine, running this odai binary as the worker. Several "local"
//! devices with different `ODAI_ROOT` trees simulate a farm on one machine.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Transport;
use super::inventory::DeviceEntry;

pub struct Local {
    name: String,
    exe: PathBuf,
    env: Vec<(String, String)>,
}

impl Local {
    pub fn new(d: &DeviceEntry, exe: &Path, root: Option<&Path>) -> Local {
        let mut env: Vec<(String, String)> =
            d.env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(r) = root
            && !d.env.contains_key("ODAI_ROOT")
        {
            env.push(("ODAI_ROOT".into(), r.display().to_string()));
        }
        Local {
            name: d.name.clone(),
            exe: d
                .odai
                .as_ref()
                .map_or_else(|| exe.to_owned(), PathBuf::from),
            env,
        }
    }
}

impl Transport for Local {
    fn name(&self) -> &str {
        &self.name
    }

    fn target(&self) -> String {
        "local".into()
    }

    fn odai(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.exe);
        c.args(args);
        c.envs(self.env.iter().map(|(k, v)| (k, v)));
        c
    }

    fn shell(&self, line: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(line);
        c
    }

    fn push(&self, local: &Path, remote: &str) -> std::io::Result<Command> {
        let mut c = Command::new("cp");
        c.arg("--").arg(local).arg(remote);
        Ok(c)
    }

    fn odai_path(&self) -> String {
        self.exe.display().to_string()
    }

    fn is_local(&self) -> bool {
        true
    }
}

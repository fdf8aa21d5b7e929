//! `farm.toml`: the devices a matrix runs on — `[[device]]` entries with a name, a transport
//! (`local`, `ssh`, `adb`) and that transport's settings, the remote odai binary, tags, and
//! environment for the remote worker — validated with file:line:column errors.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::Error;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Local,
    Ssh,
    Adb,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FarmFile {
    #[serde(rename = "device", default)]
    devices: Vec<Spanned<DeviceEntry>>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    pub name: String,
    pub transport: Transport,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub identity_file: Option<PathBuf>,
    /// An OpenSSH config file, passed as `-F`.
    pub ssh_config: Option<PathBuf>,
    pub serial: Option<String>,
    /// Path of odai on the device (default: this odai for local, `~/.local/bin/odai` over SSH,
    /// `/data/local/tmp/odai` over ADB).
    pub odai: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Environment for the remote worker, e.g. `ODAI_ROOT`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

impl DeviceEntry {
    /// This machine, under `name`: what a matrix runs on without a farm.
    pub fn local(name: &str) -> DeviceEntry {
        DeviceEntry {
            name: name.to_owned(),
            transport: Transport::Local,
            host: None,
            port: None,
            user: None,
            identity_file: None,
            ssh_config: None,
            serial: None,
            odai: None,
            tags: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

/// The device name results give a matrix's endpoint cells (the coordinator runs them): no farm
/// device may take it.
pub const ENDPOINT_DEVICE: &str = "endpoint";

#[derive(Clone, Debug)]
pub struct Farm {
    pub file: PathBuf,
    pub devices: Vec<DeviceEntry>,
}

impl Farm {
    pub fn load(path: &Path) -> Result<Farm, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            file: path.to_owned(),
            problem: format!("cannot read the farm inventory: {e}"),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Farm, Error> {
        let at = |offset: usize, m: String| Error::config_at(file, text, offset, m);
        let raw: FarmFile = toml::from_str(text).map_err(|e| {
            at(
                e.span().map_or(0, |s| s.start),
                e.message().trim().to_owned(),
            )
        })?;
        if raw.devices.is_empty() {
            return Err(Error::ConfigFile {
                file: file.to_owned(),
                problem: "no [[device]] entries: list at least one device".into(),
            });
        }
        let mut names = BTreeSet::new();
        for d in &raw.devices {
            let off = d.span().start;
            let d = d.get_ref();
            let name_ok = !d.name.is_empty()
                && d.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !name_ok {
                return Err(at(
                    off,
                    format!(
                        "device name {:?} must be letters, digits, '-', '_' or '.'",
                        d.name
                    ),
                ));
            }
            if d.name == ENDPOINT_DEVICE {
                return Err(at(
                    off,
                    format!(
                        "device name {:?} is reserved: results record a matrix's endpoint cells \
                         under it; rename the device",
                        d.name
                    ),
                ));
            }
            if !names.insert(d.name.clone()) {
                return Err(at(off, format!("device {:?} is listed twice", d.name)));
            }
            let who = format!("device {:?} ({:?})", d.name, d.transport);
            let needs = |field: &str, present: bool| {
                (!present).then(|| at(off, format!("{who} needs {field}")))
            };
            let forbids = |field: &str, present: bool| {
                present.then(|| at(off, format!("{who} does not use {field}")))
            };
            let ssh_fields = [
                ("host", d.host.is_some()),
                ("port", d.port.is_some()),
                ("user", d.user.is_some()),
                ("identity_file", d.identity_file.is_some()),
                ("ssh_config", d.ssh_config.is_some()),
            ];
            // odai passes these to ssh as arguments of their own; a strict character set keeps
            // an option (`-oProxyCommand=…`) or a shell word out whatever ssh does with them.
            // Empty, an option, or a character outside letters, digits and `extra`.
            let odd = |v: &&str, extra: &str| {
                v.is_empty()
                    || v.starts_with('-')
                    || !v
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || extra.contains(c))
            };
            if let Some(h) = d.host.as_deref().filter(|h| odd(h, ".-:[]%_")) {
                return Err(at(
                    off,
                    format!(
                        "{who}: host {h:?} is not a host name (letters, digits, '.', '-', '_', \
                         or an IP address)"
                    ),
                ));
            }
            if let Some(u) = d.user.as_deref().filter(|u| odd(u, "._-")) {
                return Err(at(
                    off,
                    format!(
                        "{who}: user {u:?} is not a user name (letters, digits, '.', '_', '-')"
                    ),
                ));
            }
            let problem = match d.transport {
                Transport::Ssh => needs("host", d.host.is_some())
                    .or_else(|| forbids("serial", d.serial.is_some())),
                Transport::Adb => needs("serial", d.serial.is_some())
                    .or_else(|| ssh_fields.iter().find_map(|(f, p)| forbids(f, *p))),
                Transport::Local => forbids("serial", d.serial.is_some())
                    .or_else(|| ssh_fields.iter().find_map(|(f, p)| forbids(f, *p))),
            };
            if let Some(e) = problem {
                return Err(e);
            }
            if let Some(k) = d.env.keys().find(|k| {
                k.is_empty()
                    || k.starts_with(|c: char| c.is_ascii_digit())
                    || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            }) {
                return Err(at(
                    off,
                    format!("{who}: env name {k:?} is not a valid variable name"),
                ));
            }
        }
        Ok(Farm {
            file: file.to_owned(),
            devices: raw.devices.into_iter().map(Spanned::into_inner).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Farm, String> {
        Farm::parse(text, Path::new("farm.toml")).map_err(|e| e.to_string())
    }

    const FARM: &str = r#"[[device]]
name = "laptop"
transport = "local"

[[device]]
name = "jetson"
transport = "ssh"
host = "10.0.0.5"
port = 2222
user = "lab"
tags = ["edge"]
env = { ODAI_ROOT = "/srv/tree" }

[[device]]
name = "pixel"
transport = "adb"
serial = "ABC123"
odai = "/data/local/tmp/odai"
"#;

    #[test]
    fn regression_reserved_names_and_odd_users_and_hosts_are_refused() {
        // Found in review: a device named `endpoint` vanished from the scorecards (its results
        // mixed with the endpoint cells'), and user/host were not checked by odai (only a
        // patched OpenSSH stopped an injected option).
        let with = |extra: &str| {
            parse(&format!(
                "[[device]]\nname = \"a\"\ntransport = \"ssh\"\nhost = \"h\"\n{extra}"
            ))
        };
        assert!(
            parse("[[device]]\nname = \"endpoint\"\ntransport = \"local\"\n")
                .unwrap_err()
                .contains("device name \"endpoint\" is reserved")
        );
        assert!(
            with("user = \"-oProxyCommand=x\"")
                .unwrap_err()
                .contains("is not a user name")
        );
        assert!(
            with("user = \"lab user\"")
                .unwrap_err()
                .contains("is not a user name")
        );
        assert!(
            parse("[[device]]\nname = \"a\"\ntransport = \"ssh\"\nhost = \"h;touch x\"\n")
                .unwrap_err()
                .contains("is not a host name")
        );
        assert!(with("user = \"ci_lab-1.x\"").is_ok());
        for host in [
            "10.0.0.5",
            "[fe80::1%eth0]",
            "fe80::1",
            "jetson-2.lab.example",
        ] {
            assert!(
                parse(&format!(
                    "[[device]]\nname = \"a\"\ntransport = \"ssh\"\nhost = \"{host}\"\n"
                ))
                .is_ok(),
                "{host}"
            );
        }
    }

    #[test]
    fn a_farm_of_three_transports_parses() {
        let f = parse(FARM).unwrap();
        assert_eq!(f.devices.len(), 3);
        assert_eq!(f.devices[1].transport, Transport::Ssh);
        assert_eq!(f.devices[1].env["ODAI_ROOT"], "/srv/tree");
        assert_eq!(f.devices[2].odai.as_deref(), Some("/data/local/tmp/odai"));
    }

    #[test]
    fn mistakes_name_the_line_and_what_to_do() {
        let e = parse(&FARM.replace("host = \"10.0.0.5\"\n", "")).unwrap_err();
        assert_eq!(e, "farm.toml:5:1: device \"jetson\" (Ssh) needs host");
        let e = parse(&FARM.replace("serial = \"ABC123\"", "serial = \"ABC123\"\nhost = \"x\""))
            .unwrap_err();
        assert_eq!(
            e,
            "farm.toml:14:1: device \"pixel\" (Adb) does not use host"
        );
        let e = parse(&FARM.replace("name = \"pixel\"", "name = \"jetson\"")).unwrap_err();
        assert_eq!(e, "farm.toml:14:1: device \"jetson\" is listed twice");
        let e = parse(&FARM.replace("transport = \"adb\"", "transport = \"telnet\"")).unwrap_err();
        assert!(
            e.starts_with("farm.toml:16:13: unknown variant `telnet`"),
            "{e}"
        );
        let e = parse(&FARM.replace("ODAI_ROOT", "\"1BAD\"")).unwrap_err();
        assert!(
            e.ends_with("env name \"1BAD\" is not a valid variable name"),
            "{e}"
        );
    }
}

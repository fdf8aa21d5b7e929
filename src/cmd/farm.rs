//! `odai farm check` and `odai farm deploy`: every device of a farm reached through its
//! transport, in parallel — is it there, which odai does it run, what is it; and putting the
//! right odai binary on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

use serde::Serialize;

use super::matrix::devices;
use crate::cli::{FarmCheckArgs, FarmDeployArgs, Format};
use crate::error::Error;
use crate::exit;
use crate::farm::{Transport, quote::sh_quote};
use crate::matrix::runner::{self, Device};
use crate::sysroot::SysRoot;
use crate::units;

pub struct CheckConfig {
    pub root: SysRoot,
    pub farm: PathBuf,
    pub format: Format,
}

impl CheckConfig {
    pub fn new(root: SysRoot, a: &FarmCheckArgs) -> Self {
        CheckConfig {
            root,
            farm: a.farm.clone(),
            format: a.format,
        }
    }
}

#[derive(Serialize)]
struct CheckRow {
    device: String,
    transport: String,
    /// `ok`, or what is wrong.
    status: String,
    odai_version: Option<String>,
    class: Option<String>,
    cpu: Option<String>,
    logical_cores: Option<u32>,
    memory_total_bytes: Option<u64>,
    headroom_bytes: Option<u64>,
}

/// Runs `cmd` (with nothing on stdin) and returns its trimmed stdout, or the last line it wrote
/// to stderr.
fn output(mut cmd: Command) -> Result<String, String> {
    cmd.stdin(std::process::Stdio::null());
    output_with_stdin(cmd)
}

/// [`output`] for a command whose stdin is already set (a push streaming a file).
fn output_with_stdin(mut cmd: Command) -> Result<String, String> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    Err(format!(
        "{program} failed ({}): {}",
        out.status,
        last.trim()
    ))
}

fn check_one(d: &Device, opts: &runner::Options) -> CheckRow {
    let t = d.transport.as_ref();
    let mut row = CheckRow {
        device: t.name().to_owned(),
        transport: t.target(),
        status: "ok".into(),
        odai_version: None,
        class: None,
        cpu: None,
        logical_cores: None,
        memory_total_bytes: None,
        headroom_bytes: None,
    };
    // `--version`'s first line (later lines: commit, target, features).
    row.odai_version = output(t.odai(&["--version"])).ok().map(|v| {
        v.lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("odai ")
            .to_owned()
    });
    match runner::probe_device(t, opts, false) {
        Err((f, _)) => row.status = f.to_string(),
        Ok(p) => {
            row.class = p.class.value().map(|c| c.id.clone());
            row.cpu = p.cpu.model_name.value().cloned();
            row.logical_cores = p.cpu.logical_cores.value().copied();
            row.memory_total_bytes = p.memory.total_bytes.value().copied();
            row.headroom_bytes = p.memory.headroom_bytes.value().copied();
        }
    }
    row
}

fn parallel<T: Send>(devices: &[Device], f: impl Fn(&Device) -> T + Sync) -> Vec<T> {
    std::thread::scope(|s| {
        let hs: Vec<_> = devices.iter().map(|d| s.spawn(|| f(d))).collect();
        hs.into_iter()
            .map(|h| h.join().expect("a device thread"))
            .collect()
    })
}

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut s: String = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}  "))
            .collect();
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    out
}

pub fn check(cfg: &CheckConfig) -> anyhow::Result<i32> {
    let devices = devices(Some(&cfg.farm), &cfg.root)?;
    let mut opts = super::matrix::probe_options();
    opts.retries = 0;
    let rows = parallel(&devices, |d| check_one(d, &opts));
    let text = match cfg.format {
        Format::Json => super::document(&serde_json::json!({ "devices": rows }))?,
        Format::Text => {
            let dash = || "-".to_owned();
            table(
                &[
                    "DEVICE",
                    "TRANSPORT",
                    "ODAI",
                    "CLASS",
                    "CPU",
                    "CORES",
                    "MEMORY",
                    "HEADROOM",
                    "STATUS",
                ],
                &rows
                    .iter()
                    .map(|r| {
                        vec![
                            r.device.clone(),
                            r.transport.clone(),
                            r.odai_version.clone().unwrap_or_else(dash),
                            r.class.clone().unwrap_or_else(dash),
                            r.cpu.clone().unwrap_or_else(dash),
                            r.logical_cores.map_or_else(dash, |c| c.to_string()),
                            r.memory_total_bytes.map_or_else(dash, units::bytes),
                            r.headroom_bytes.map_or_else(dash, units::bytes),
                            r.status.clone(),
                        ]
                    })
                    .collect::<Vec<_>>(),
            )
        }
    };
    super::print(&text)?;
    Ok(if rows.iter().all(|r| r.status == "ok") {
        exit::SUCCESS
    } else {
        exit::FAILURE
    })
}

pub struct DeployConfig {
    pub root: SysRoot,
    pub farm: PathBuf,
    /// Binaries by target triple.
    pub binaries: BTreeMap<String, PathBuf>,
    pub format: Format,
}

/// The target triple this odai was built for, as rustc names it (recorded by build.rs).
pub fn host_triple() -> String {
    env!("ODAI_TARGET").to_owned()
}

/// What a device is: `uname -sm`, then the dynamic loaders it has (a glibc system has
/// `ld-linux*`, a musl one `ld-musl-*`; Android has neither under /lib). POSIX sh only: it runs
/// on busybox boards, Android's toybox and macOS alike.
pub const DEVICE_KIND_COMMAND: &str =
    "uname -sm; for f in /lib/ld-* /lib64/ld-*; do [ -e \"$f\" ] && echo \"$f\"; done; true";

/// The triples whose binaries run on a device, best first, from [`DEVICE_KIND_COMMAND`]'s output.
/// A static musl binary runs on every Linux of its architecture (Android included, whose kernel
/// is Linux's and which it needs nothing from), so it is every Linux device's fallback; a glibc
/// binary only where glibc's loader is.
pub fn device_triples(kind: &str, android: bool) -> Result<Vec<String>, String> {
    let mut lines = kind.lines();
    let uname_sm = lines.next().unwrap_or("");
    let loaders: Vec<&str> = lines.map(str::trim).collect();
    let mut it = uname_sm.split_whitespace();
    let (Some(os), Some(machine)) = (it.next(), it.next()) else {
        return Err(format!(
            "cannot read the architecture from `uname -sm`: {uname_sm:?}"
        ));
    };
    if os == "Darwin" {
        return match machine {
            "arm64" => Ok(vec!["aarch64-apple-darwin".into()]),
            "x86_64" => Ok(vec!["x86_64-apple-darwin".into()]),
            m => Err(format!(
                "macOS on {m} is not supported (arm64 and x86_64 are)"
            )),
        };
    }
    if os != "Linux" {
        return Err(format!(
            "{os} devices are not supported (Linux, Android and macOS are)"
        ));
    }
    let arch = match machine {
        "arm64" | "aarch64" => "aarch64",
        "armv7l" | "armv8l" => "armv7",
        "i686" | "i386" => "i686",
        m => m,
    };
    let (gnu, musl, android_triple) = match arch {
        "armv7" => (
            "armv7-unknown-linux-gnueabihf".to_owned(),
            "armv7-unknown-linux-musleabihf".to_owned(),
            "armv7-linux-androideabi".to_owned(),
        ),
        a => (
            format!("{a}-unknown-linux-gnu"),
            format!("{a}-unknown-linux-musl"),
            format!("{a}-linux-android"),
        ),
    };
    let has_glibc = loaders.iter().any(|l| l.contains("/ld-linux"));
    Ok(if android {
        vec![android_triple, musl]
    } else if has_glibc {
        vec![gnu, musl]
    } else {
        vec![musl]
    })
}

impl DeployConfig {
    pub fn new(root: SysRoot, a: &FarmDeployArgs) -> Result<Self, Error> {
        let mut binaries = BTreeMap::new();
        if let Ok(me) = std::env::current_exe() {
            binaries.insert(host_triple(), me);
        }
        for b in &a.binary {
            let Some((triple, path)) = b
                .split_once('=')
                .filter(|(t, p)| !t.is_empty() && !p.is_empty())
            else {
                return Err(Error::Invalid {
                    flag: "--binary".into(),
                    problem: format!(
                        "{b:?} is not TRIPLE=PATH (e.g. aarch64-linux-android=odai-android)"
                    ),
                });
            };
            let path = PathBuf::from(path);
            if !path.is_file() {
                return Err(Error::ConfigFile {
                    file: path,
                    problem: format!("no such file (given with --binary for {triple})"),
                });
            }
            binaries.insert(triple.to_owned(), path);
        }
        // `--binaries DIR`: what scripts/build-device-binaries.sh writes, odai-TRIPLE per target.
        // --binary names win over the directory's.
        if let Some(dir) = &a.binaries {
            let entries = std::fs::read_dir(dir).map_err(|e| Error::ConfigFile {
                file: dir.clone(),
                problem: format!("cannot list --binaries: {e}"),
            })?;
            let mut found = 0;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(triple) = name.strip_prefix("odai-").filter(|t| t.contains('-')) {
                    found += 1;
                    let explicit = a
                        .binary
                        .iter()
                        .any(|b| b.starts_with(&format!("{triple}=")));
                    if !explicit {
                        binaries.insert(triple.to_owned(), e.path());
                    }
                }
            }
            if found == 0 {
                return Err(Error::ConfigFile {
                    file: dir.clone(),
                    problem: "no odai-TRIPLE binaries here (scripts/build-device-binaries.sh \
                              writes them)"
                        .into(),
                });
            }
        }
        Ok(DeployConfig {
            root,
            farm: a.farm.clone(),
            binaries,
            format: a.format,
        })
    }
}

#[derive(Serialize)]
struct DeployRow {
    device: String,
    transport: String,
    triple: Option<String>,
    path: String,
    /// `deployed`, `local`, or what went wrong.
    status: String,
}

/// The copy at `tmp` on the device is `binary` byte for byte — its size and sha256 as the
/// device's own tools read them (coreutils', busybox's or toybox's `sha256sum`, macOS's
/// `shasum`) — before it replaces anything: `--version` alone passes a binary cut short or with
/// a flipped byte. A copy that differs is removed.
fn verify_copy(t: &dyn Transport, binary: &std::path::Path, tmp: &str) -> Result<(), String> {
    let size = std::fs::metadata(binary)
        .map_err(|e| format!("cannot read {}: {e}", binary.display()))?
        .len();
    let sha = crate::engine::fingerprint::sha256_file(binary).map_err(|e| format!("{e:#}"))?;
    let q = sh_quote(tmp);
    let said = output(t.shell(&format!(
        "wc -c < {q}; {{ sha256sum {q} 2>/dev/null || shasum -a 256 {q}; }} | cut -d' ' -f1"
    )))?;
    let mut lines = said.lines().map(str::trim);
    let got_size: Option<u64> = lines.next().and_then(|l| l.parse().ok());
    let got_sha = lines.next().filter(|l| l.len() == 64);
    let Some(got_sha) = got_sha else {
        return Err(
            "copied, but the copy cannot be verified: neither sha256sum nor shasum on the device"
                .into(),
        );
    };
    if got_size != Some(size) || got_sha != sha {
        let _ = output(t.shell(&format!("rm -f {q}")));
        return Err(format!(
            "the copy on the device is {} bytes (sha256 {got_sha}), not the {size} bytes (sha256 \
             {sha}) sent: the transfer was cut or altered; nothing was replaced, deploy again",
            got_size.map_or_else(|| "?".to_owned(), |n| n.to_string())
        ));
    }
    Ok(())
}

fn deploy_one(t: &dyn Transport, cfg: &DeployConfig) -> DeployRow {
    let mut row = DeployRow {
        device: t.name().to_owned(),
        transport: t.target(),
        triple: None,
        path: t.odai_path(),
        status: "deployed".into(),
    };
    if t.is_local() {
        row.triple = Some(host_triple());
        row.status = "local: runs this odai, nothing to copy".into();
        return row;
    }
    let result = (|| -> Result<(), String> {
        let android = t.target().starts_with("adb ");
        let triples = device_triples(&output(t.shell(DEVICE_KIND_COMMAND))?, android)?;
        row.triple = Some(triples[0].clone());
        let (triple, binary) = triples
            .iter()
            .find_map(|t| cfg.binaries.get(t).map(|b| (t, b)))
            .ok_or_else(|| {
                format!(
                    "no odai binary for {}: build one (scripts/build-device-binaries.sh) and pass \
                     --binaries DIR or --binary {}=PATH",
                    triples.join(" or "),
                    triples.last().expect("at least one triple"),
                )
            })?;
        row.triple = Some(triple.clone());
        let path = t.odai_path();
        let tmp = format!("{path}.deploying");
        if let Some((dir, _)) = path.rsplit_once('/').filter(|(d, _)| !d.is_empty()) {
            output(t.shell(&format!("mkdir -p {}", sh_quote(dir))))?;
        }
        let push = t
            .push(binary, &tmp)
            .map_err(|e| format!("cannot read {}: {e}", binary.display()))?;
        output_with_stdin(push)?;
        verify_copy(t, binary, &tmp)?;
        // Replaced in one rename: a worker starting meanwhile runs the old or the new binary,
        // never half of one.
        output(t.shell(&format!(
            "chmod 755 {tmp} && mv -f {tmp} {path}",
            tmp = sh_quote(&tmp),
            path = sh_quote(&path)
        )))?;
        let version = output(t.odai(&["--version"]))?;
        let version = version.lines().next().unwrap_or_default().to_owned();
        let want = format!("odai {}", env!("CARGO_PKG_VERSION"));
        if version != want {
            return Err(format!("copied, but it says {version:?}, not {want:?}"));
        }
        Ok(())
    })();
    if let Err(e) = result {
        row.status = e;
    }
    row
}

pub fn deploy(cfg: &DeployConfig) -> anyhow::Result<i32> {
    let devices = devices(Some(&cfg.farm), &cfg.root)?;
    let rows = parallel(&devices, |d| deploy_one(d.transport.as_ref(), cfg));
    let text = match cfg.format {
        Format::Json => super::document(&serde_json::json!({ "devices": rows }))?,
        Format::Text => table(
            &["DEVICE", "TRANSPORT", "TRIPLE", "PATH", "STATUS"],
            &rows
                .iter()
                .map(|r| {
                    vec![
                        r.device.clone(),
                        r.transport.clone(),
                        r.triple.clone().unwrap_or_else(|| "-".into()),
                        r.path.clone(),
                        r.status.clone(),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
    };
    super::print(&text)?;
    Ok(
        if rows
            .iter()
            .all(|r| r.status == "deployed" || r.status.starts_with("local"))
        {
            exit::SUCCESS
        } else {
            exit::FAILURE
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn triples_come_from_uname_and_the_loaders_present() {
        let t = |kind: &str, android: bool| device_triples(kind, android).unwrap();
        assert_eq!(
            t("Linux aarch64\n", true),
            ["aarch64-linux-android", "aarch64-unknown-linux-musl"]
        );
        assert_eq!(
            t("Linux x86_64\n/lib64/ld-linux-x86-64.so.2\n", false),
            ["x86_64-unknown-linux-gnu", "x86_64-unknown-linux-musl"]
        );
        // Raspberry Pi OS 32-bit: glibc's armhf loader.
        assert_eq!(
            t("Linux armv7l\n/lib/ld-linux-armhf.so.3\n", false),
            [
                "armv7-unknown-linux-gnueabihf",
                "armv7-unknown-linux-musleabihf"
            ]
        );
        // Alpine or a busybox board: musl's loader, or none at all; only static musl runs.
        assert_eq!(
            t("Linux aarch64\n/lib/ld-musl-aarch64.so.1\n", false),
            ["aarch64-unknown-linux-musl"]
        );
        assert_eq!(t("Linux armv7l", false), ["armv7-unknown-linux-musleabihf"]);
        assert_eq!(t("Darwin arm64\n", false), ["aarch64-apple-darwin"]);
        assert_eq!(
            device_triples("FreeBSD amd64\n", false).unwrap_err(),
            "FreeBSD devices are not supported (Linux, Android and macOS are)"
        );
        assert_eq!(
            device_triples("\n", false).unwrap_err(),
            "cannot read the architecture from `uname -sm`: \"\""
        );
    }

    #[test]
    fn binaries_come_from_a_directory_and_named_ones_win() {
        let dir = tempfile::tempdir().unwrap();
        let put = |name: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, name).unwrap();
            p
        };
        let musl = put("odai-aarch64-unknown-linux-musl");
        put("odai-x86_64-unknown-linux-musl");
        put("README");
        let mine = put("mine");
        let args = |binary: Vec<String>, binaries: Option<&Path>| FarmDeployArgs {
            farm: "farm.toml".into(),
            binary,
            binaries: binaries.map(Path::to_owned),
            format: Format::Text,
        };
        let c = DeployConfig::new(SysRoot::live(), &args(vec![], Some(dir.path()))).unwrap();
        assert_eq!(c.binaries["aarch64-unknown-linux-musl"], musl);
        assert!(c.binaries.contains_key("x86_64-unknown-linux-musl"));
        assert!(!c.binaries.keys().any(|k| k == "README" || k.is_empty()));
        let named = format!("x86_64-unknown-linux-musl={}", mine.display());
        let c = DeployConfig::new(SysRoot::live(), &args(vec![named], Some(dir.path()))).unwrap();
        assert_eq!(c.binaries["x86_64-unknown-linux-musl"], mine);

        let empty = tempfile::tempdir().unwrap();
        let Err(e) = DeployConfig::new(SysRoot::live(), &args(vec![], Some(empty.path()))) else {
            panic!("an empty --binaries directory was taken");
        };
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no odai-TRIPLE binaries here (scripts/build-device-binaries.sh writes them)",
                empty.path().display()
            )
        );
    }

    #[cfg(unix)]
    #[test]
    fn the_device_kind_command_runs_in_a_posix_shell() {
        let out = std::process::Command::new("sh")
            .args(["-c", DEVICE_KIND_COMMAND])
            .output()
            .unwrap();
        assert!(out.status.success());
        let kind = String::from_utf8(out.stdout).unwrap();
        let mine = device_triples(&kind, cfg!(target_os = "android")).unwrap();
        assert!(mine.contains(&host_triple()), "{mine:?} for {kind:?}");
    }
}

//! Memory: totals from `/proc/meminfo`, the process's own cgroup limit (v2 and v1, nested limits
//! walked to the root), the headroom a model can really use, and memory pressure (PSI).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sysroot::{Reading, SysRoot, excerpt};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Memory {
    pub total_bytes: Reading<u64>,
    pub available_bytes: Reading<u64>,
    /// What a model can allocate before the kernel or the cgroup says no: the smaller of
    /// MemAvailable and (cgroup limit − cgroup usage), over every ancestor that sets a limit.
    pub headroom_bytes: Reading<u64>,
    /// `meminfo` or `cgroup`: which bound decided `headroom_bytes`.
    pub headroom_source: Reading<String>,
    /// `v1` or `v2`; null when no memory controller applies to this process.
    pub cgroup_version: Reading<Option<String>>,
    /// The cgroup whose limit binds (the tightest ancestor), or the process's own.
    pub cgroup_path: Reading<Option<String>>,
    /// null when no ancestor sets a limit ("max", or v1's "unlimited" sentinel).
    pub cgroup_limit_bytes: Reading<Option<u64>>,
    pub cgroup_usage_bytes: Reading<Option<u64>>,
    pub swap_total_bytes: Reading<u64>,
    pub swap_free_bytes: Reading<u64>,
    /// Share of time (%) some task stalled on memory over 10 s / 60 s
    /// (Documentation/accounting/psi.rst); `full` = all non-idle tasks stalled.
    pub psi_some_avg10: Reading<f64>,
    pub psi_some_avg60: Reading<f64>,
    pub psi_full_avg10: Reading<f64>,
    pub psi_full_avg60: Reading<f64>,
}

/// Values at or above this are v1's "no limit" sentinel (PAGE_COUNTER_MAX × page size, which is
/// 0x7FFFFFFFFFFFF000 with 4 KiB pages and a little less with 16/64 KiB pages).
const V1_UNLIMITED: u64 = 1 << 62;

pub fn probe(root: &SysRoot) -> Memory {
    // macOS and Windows have no /proc: the OS's own figures (native.rs).
    if super::native::applies(root) {
        return super::native::memory();
    }
    let meminfo = read_meminfo(root);
    let field = |k: &str| -> Reading<u64> {
        match &meminfo {
            Reading::Value(m) => m.get(k).copied().map_or_else(
                || Reading::unavailable(format!("missing: {k} in /proc/meminfo")),
                Reading::Value,
            ),
            Reading::Unavailable(r) => Reading::Unavailable(r.clone()),
        }
    };
    let total = field("MemTotal");
    let available = field("MemAvailable");
    let cg = cgroup_memory(root);

    let (headroom, source) = match (&available, &cg) {
        (Reading::Value(a), Reading::Value(Some(c))) if c.headroom < *a => {
            (Reading::Value(c.headroom), Reading::Value("cgroup".into()))
        }
        (Reading::Value(a), _) => (Reading::Value(*a), Reading::Value("meminfo".into())),
        (Reading::Unavailable(_), Reading::Value(Some(c))) if c.limit.is_some() => {
            (Reading::Value(c.headroom), Reading::Value("cgroup".into()))
        }
        (Reading::Unavailable(r), _) => (
            Reading::Unavailable(r.clone()),
            Reading::Unavailable(r.clone()),
        ),
    };

    let psi = read_psi(root);
    let psi_field = |line: &str, key: &str| -> Reading<f64> {
        match &psi {
            Reading::Value(m) => m.get(&(line, key)).copied().map_or_else(
                || {
                    Reading::unavailable(format!(
                        "unparsable: /proc/pressure/memory has no {line} {key}"
                    ))
                },
                Reading::Value,
            ),
            Reading::Unavailable(r) => Reading::Unavailable(r.clone()),
        }
    };

    let cg_field = |f: fn(&CgroupMemory) -> Option<u64>| match &cg {
        Reading::Value(Some(c)) => Reading::Value(f(c)),
        Reading::Value(None) => Reading::Value(None),
        Reading::Unavailable(r) => Reading::Unavailable(r.clone()),
    };

    Memory {
        total_bytes: total,
        available_bytes: available,
        headroom_bytes: headroom,
        headroom_source: source,
        cgroup_version: cg_field_str(&cg, |c| c.version.to_owned()),
        cgroup_path: cg_field_str(&cg, |c| c.path.clone()),
        cgroup_limit_bytes: cg_field(|c| c.limit),
        cgroup_usage_bytes: cg_field(|c| c.usage),
        swap_total_bytes: field("SwapTotal"),
        swap_free_bytes: field("SwapFree"),
        psi_some_avg10: psi_field("some", "avg10"),
        psi_some_avg60: psi_field("some", "avg60"),
        psi_full_avg10: psi_field("full", "avg10"),
        psi_full_avg60: psi_field("full", "avg60"),
    }
}

fn cg_field_str(
    cg: &Reading<Option<CgroupMemory>>,
    f: fn(&CgroupMemory) -> String,
) -> Reading<Option<String>> {
    match cg {
        Reading::Value(c) => Reading::Value(c.as_ref().map(f)),
        Reading::Unavailable(r) => Reading::Unavailable(r.clone()),
    }
}

/// `/proc/meminfo` in bytes. Its "kB" means KiB (Documentation/filesystems/proc.rst).
fn read_meminfo(root: &SysRoot) -> Reading<BTreeMap<String, u64>> {
    root.read_raw("/proc/meminfo").and_then(|text| {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let mut parts = v.split_whitespace();
            let (Some(num), unit) = (parts.next(), parts.next()) else {
                continue;
            };
            let Ok(n) = num.parse::<u64>() else {
                continue;
            };
            let bytes = match unit {
                Some("kB") => n.checked_mul(1024),
                None => Some(n),
                Some(_) => None,
            };
            if let Some(b) = bytes {
                out.insert(k.trim().to_owned(), b);
            }
        }
        if out.is_empty() {
            Reading::unavailable(format!(
                "unparsable: /proc/meminfo holds {}",
                excerpt(&text)
            ))
        } else {
            Reading::Value(out)
        }
    })
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` lines, keyed by (line, field).
pub fn read_psi(root: &SysRoot) -> Reading<BTreeMap<(&'static str, &'static str), f64>> {
    root.read_raw("/proc/pressure/memory").map(|text| {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let kind = match words.next() {
                Some("some") => "some",
                Some("full") => "full",
                _ => continue,
            };
            for w in words {
                let Some((k, v)) = w.split_once('=') else {
                    continue;
                };
                let key = match k {
                    "avg10" => "avg10",
                    "avg60" => "avg60",
                    _ => continue,
                };
                if let Ok(v) = v.parse::<f64>()
                    && (0.0..=100.0).contains(&v)
                {
                    out.insert((kind, key), v);
                }
            }
        }
        out
    })
}

/// The lines of `/proc/self/cgroup` (cgroups(7)): `ID:CONTROLLERS:PATH`; v2 is `0::PATH`.
#[derive(Debug, Default)]
pub struct CgroupMembership {
    entries: Vec<(String, Vec<String>, String)>,
}

impl CgroupMembership {
    /// The v1 hierarchy path for `controller`, if it is mounted as v1.
    pub fn v1_path(&self, controller: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(id, ctrls, _)| id != "0" && ctrls.iter().any(|c| c == controller))
            .map(|(_, _, p)| p.as_str())
    }

    pub fn v2_path(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|(id, ctrls, _)| id == "0" && ctrls.is_empty())
            .map(|(_, _, p)| p.as_str())
    }
}

pub fn read_proc_cgroup(root: &SysRoot) -> Reading<CgroupMembership> {
    root.read_raw("/proc/self/cgroup").and_then(|text| {
        let entries: Vec<_> = text
            .lines()
            .filter_map(|l| {
                let mut it = l.splitn(3, ':');
                let (id, ctrls, path) = (it.next()?, it.next()?, it.next()?);
                if !path.starts_with('/') {
                    return None;
                }
                let ctrls = ctrls
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                Some((id.to_owned(), ctrls, path.to_owned()))
            })
            .collect();
        if entries.is_empty() {
            Reading::unavailable(format!(
                "unparsable: /proc/self/cgroup holds {}",
                excerpt(&text)
            ))
        } else {
            Reading::Value(CgroupMembership { entries })
        }
    })
}

/// How many processes the kernel's OOM killer has killed in this process's memory cgroup (and
/// below it): `oom_kill` of cgroup v2's `memory.events` or of v1's `memory.oom_control`
/// (Documentation/admin-guide/cgroup-v2.rst; v1 since Linux 4.13). `None` where neither can be
/// read. A worker odai starts here lives in the same cgroup, so the count rising while it died
/// by SIGKILL is the kernel saying it was out of memory.
pub fn oom_kills(root: &SysRoot) -> Option<u64> {
    let member = read_proc_cgroup(root).into_value()?;
    let file = if let Some(path) = member.v1_path("memory") {
        let mount = v1_mount(root, "memory");
        format!("{}/memory.oom_control", ancestors(root, &mount, path)[0])
    } else {
        let path = member.v2_path()?;
        format!(
            "{}/memory.events",
            ancestors(root, "/sys/fs/cgroup", path)[0]
        )
    };
    root.read_raw(&file).into_value()?.lines().find_map(|l| {
        l.strip_prefix("oom_kill ")
            .and_then(|n| n.trim().parse().ok())
    })
}

/// How many processes the kernel's OOM killer has killed since boot, system-wide: `oom_kill` of
/// /proc/vmstat (Linux 4.13, mm/oom_kill.c counts it beside the cgroup's count). What a remote
/// worker reports in its hello: a worker started over SSH or ADB lives in a session's cgroup
/// that the next session does not share, so only the system's count can be read before and
/// after. `None` where it cannot be read.
pub fn oom_kills_system(root: &SysRoot) -> Option<u64> {
    root.read_raw("/proc/vmstat")
        .into_value()?
        .lines()
        .find_map(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse().ok())
        })
}

/// Where the v1 hierarchy of `controller` is mounted: `/sys/fs/cgroup/<controller>`, or a
/// co-mounted directory such as `/sys/fs/cgroup/cpu,cpuacct`.
pub fn v1_mount(root: &SysRoot, controller: &str) -> String {
    let plain = format!("/sys/fs/cgroup/{controller}");
    if root.is_dir(&plain) {
        return plain;
    }
    // Android mounts its v1 memory controller at /dev/memcg (system/core/rootdir/init.rc).
    if controller == "memory" && root.is_dir("/dev/memcg") {
        return "/dev/memcg".to_owned();
    }
    root.list("/sys/fs/cgroup")
        .into_value()
        .unwrap_or_default()
        .into_iter()
        .find(|n| n.split(',').any(|c| c == controller))
        .map_or(plain, |n| format!("/sys/fs/cgroup/{n}"))
}

/// The cgroup directory of `path` under `mount` and each ancestor up to the mount, deepest first.
/// In a container without a cgroup namespace the path names the host's hierarchy and is absent
/// here; the container sees its own cgroup at the mount point, so that is where the walk starts.
pub fn ancestors(root: &SysRoot, mount: &str, path: &str) -> Vec<String> {
    let trimmed = path.trim_matches('/');
    let leaf = if trimmed.is_empty() {
        mount.to_owned()
    } else {
        format!("{mount}/{trimmed}")
    };
    if !root.is_dir(&leaf) {
        return vec![mount.to_owned()];
    }
    let mut out = vec![leaf.clone()];
    let mut cur = leaf;
    while cur.len() > mount.len() {
        match cur.rfind('/') {
            Some(i) if i >= mount.len() => {
                cur.truncate(i);
                out.push(cur.clone());
            }
            _ => break,
        }
    }
    out
}

#[derive(Debug, Clone)]
struct CgroupMemory {
    version: &'static str,
    path: String,
    limit: Option<u64>,
    usage: Option<u64>,
    /// The smallest (limit − usage) over limited ancestors; `u64::MAX` when none is limited.
    headroom: u64,
}

/// The binding memory limit of this process's cgroup and its ancestors.
/// v2: `memory.max` ("max" = none) and `memory.current` (Documentation/admin-guide/cgroup-v2.rst);
/// v1: `memory.limit_in_bytes` and `memory.usage_in_bytes`
/// (Documentation/admin-guide/cgroup-v1/memory.rst).
fn cgroup_memory(root: &SysRoot) -> Reading<Option<CgroupMemory>> {
    let groups = match read_proc_cgroup(root) {
        Reading::Value(g) => g,
        Reading::Unavailable(r) => return Reading::Unavailable(r),
    };
    let (version, mount, path, limit_file, usage_file) = if let Some(p) = groups.v1_path("memory") {
        (
            "v1",
            v1_mount(root, "memory"),
            p,
            "memory.limit_in_bytes",
            "memory.usage_in_bytes",
        )
    } else if let Some(p) = groups.v2_path() {
        let controllers = root
            .read_str("/sys/fs/cgroup/cgroup.controllers")
            .into_value()
            .unwrap_or_default();
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Reading::Value(None);
        }
        (
            "v2",
            "/sys/fs/cgroup".to_owned(),
            p,
            "memory.max",
            "memory.current",
        )
    } else {
        return Reading::Value(None);
    };

    let dirs = ancestors(root, &mount, path);
    let own = dirs.first().cloned().unwrap_or_else(|| mount.clone());
    let mut best = CgroupMemory {
        version,
        path: own.clone(),
        limit: None,
        usage: root
            .read_parse::<u64>(&format!("{own}/{usage_file}"))
            .into_value(),
        headroom: u64::MAX,
    };
    for dir in &dirs {
        let limit = match root.read_str(&format!("{dir}/{limit_file}")).into_value() {
            Some(s) if s == "max" => None,
            Some(s) => s.parse::<u64>().ok().filter(|&l| l < V1_UNLIMITED),
            None => None,
        };
        let Some(limit) = limit else { continue };
        let usage = root
            .read_parse::<u64>(&format!("{dir}/{usage_file}"))
            .into_value()
            .unwrap_or(0);
        let headroom = limit.saturating_sub(usage);
        if headroom < best.headroom {
            best = CgroupMemory {
                version,
                path: dir.clone(),
                limit: Some(limit),
                usage: Some(usage),
                headroom,
            };
        }
    }
    Reading::Value(Some(best))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(files: &[(&str, &str)]) -> (tempfile::TempDir, SysRoot) {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path.trim_start_matches('/'));
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        let root = SysRoot::at(dir.path()).unwrap();
        (dir, root)
    }

    #[test]
    fn the_systems_oom_kill_count_is_read_from_vmstat() {
        // Lines around it as in a 6.1 kernel's /proc/vmstat.
        let (_d, root) = tree(&[(
            "/proc/vmstat",
            "pgmajfault 4211\npgrefill 0\noom_kill 29\nnuma_pte_updates 0\n",
        )]);
        assert_eq!(oom_kills_system(&root), Some(29));
        let (_d, root) = tree(&[("/proc/vmstat", "pgmajfault 4211\n")]);
        assert_eq!(oom_kills_system(&root), None, "before Linux 4.13");
    }

    #[test]
    fn android_memcg_under_dev_is_found() {
        let (_d, root) = tree(&[
            (
                "/proc/meminfo",
                "MemTotal: 4000000 kB\nMemAvailable: 2000000 kB\n",
            ),
            ("/proc/self/cgroup", "4:memory:/apps/uid_10234\n"),
            (
                "/dev/memcg/apps/uid_10234/memory.limit_in_bytes",
                "1073741824\n",
            ),
            (
                "/dev/memcg/apps/uid_10234/memory.usage_in_bytes",
                "536870912\n",
            ),
        ]);
        let m = probe(&root);
        assert_eq!(m.cgroup_version, Reading::Value(Some("v1".into())));
        assert_eq!(m.cgroup_limit_bytes, Reading::Value(Some(1 << 30)));
        assert_eq!(m.headroom_bytes, Reading::Value(1 << 29));
    }

    #[test]
    fn container_without_cgroup_namespace_reads_its_mount_root() {
        // /proc/self/cgroup names the host's path, which the container cannot see; its own
        // cgroup is the mount point.
        let (_d, root) = tree(&[
            (
                "/proc/meminfo",
                "MemTotal: 8000000 kB\nMemAvailable: 6000000 kB\n",
            ),
            ("/proc/self/cgroup", "0::/docker/0123abcd\n"),
            ("/sys/fs/cgroup/cgroup.controllers", "cpu memory pids\n"),
            ("/sys/fs/cgroup/memory.max", "2147483648\n"),
            ("/sys/fs/cgroup/memory.current", "1073741824\n"),
        ]);
        let m = probe(&root);
        assert_eq!(m.cgroup_path, Reading::Value(Some("/sys/fs/cgroup".into())));
        assert_eq!(m.headroom_bytes, Reading::Value(1 << 30));
        assert_eq!(m.headroom_source, Reading::Value("cgroup".into()));
    }
}

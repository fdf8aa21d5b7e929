//! CPU: model, physical and logical cores, per-policy frequencies, the SIMD features that decide
//! inference speed, and the process's cgroup CPU quota.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::sysroot::{Reading, SysRoot, excerpt, parse_cpu_list};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cpu {
    pub model_name: Reading<String>,
    pub logical_cores: Reading<u32>,
    pub physical_cores: Reading<u32>,
    /// The online CPUs this process may run on, as a kernel CPU list ("0-3,6"): its affinity mask
    /// (`taskset`, Android's cpusets, a container's `--cpuset-cpus` all narrow it).
    #[serde(default = "not_recorded")]
    pub allowed_cpus: Reading<String>,
    /// How many CPUs `allowed_cpus` names.
    #[serde(default = "not_recorded")]
    pub allowed_cores: Reading<u32>,
    /// Physical cores with at least one allowed CPU (SMT siblings count once).
    #[serde(default = "not_recorded")]
    pub allowed_physical_cores: Reading<u32>,
    /// CPUs this process may use per its cgroup quota (`cpu.max` / `cpu.cfs_quota_us`); null when
    /// no quota is set.
    pub quota_cores: Reading<Option<f64>>,
    pub policies: Reading<Vec<FreqPolicy>>,
    /// `x86` or `arm`: which feature list `simd` holds.
    pub isa: Reading<String>,
    /// Each inference-relevant feature of the ISA, present or not.
    pub simd: Reading<BTreeMap<String, bool>>,
}

/// For probes written before a field existed (results directories from older odai versions).
fn not_recorded<T>() -> Reading<T> {
    Reading::unavailable("not recorded: the probe predates this reading")
}

impl Cpu {
    /// CPUs the process may run on: the allowed ones where known, else the online ones.
    pub fn usable_cores(&self) -> u32 {
        self.allowed_cores
            .value()
            .or(self.logical_cores.value())
            .copied()
            .unwrap_or(1)
            .max(1)
    }

    /// odai's default thread count, and where it came from: one thread per physical core the
    /// process may run on, no more than the cgroup quota allows (rounded up).
    ///
    /// Why physical cores: SMT siblings share one core's vector units and load ports, so a second
    /// thread per core adds little to compute-bound prefill and contends in memory-bound decode,
    /// while odai's spinning thread team makes oversubscription costly; it is also llama.cpp's
    /// and llama-bench's default (`cpu_get_num_math`), so the two compare like for like. On
    /// big.LITTLE phones (no SMT) it is every allowed core.
    pub fn default_threads(&self) -> (u32, String) {
        let (mut n, mut why) = if let Some(&p) = self.allowed_physical_cores.value() {
            (p, format!("{p} physical core(s) the process may use"))
        } else if let Some(&a) = self.allowed_cores.value() {
            (a, format!("{a} allowed CPU(s)"))
        } else if let Some(&p) = self.physical_cores.value() {
            (p, format!("{p} physical core(s)"))
        } else {
            let l = self.logical_cores.value().copied().unwrap_or(1);
            (l, format!("{l} logical CPU(s)"))
        };
        if let Some(Some(q)) = self.quota_cores.value() {
            let cap = (q.ceil() as u32).max(1);
            if cap < n {
                n = cap;
                why = format!("the cgroup quota of {q} CPU(s)");
            }
        }
        (n.max(1), why)
    }
}

/// One cpufreq policy (a group of CPUs sharing a clock), frequencies in MHz.
/// Source: Documentation/admin-guide/pm/cpufreq.rst — the files hold kHz.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct FreqPolicy {
    pub name: String,
    pub cpus: Reading<String>,
    pub governor: Reading<String>,
    pub cur_mhz: Reading<f64>,
    /// `scaling_max_freq`: the ceiling the kernel currently allows.
    pub max_mhz: Reading<f64>,
    /// `cpuinfo_max_freq`: the hardware's own ceiling.
    pub hw_max_mhz: Reading<f64>,
}

/// x86 flags in `/proc/cpuinfo` that matter for inference kernels, as odai names them.
const X86_FEATURES: &[(&str, &[&str])] = &[
    ("avx2", &["avx2"]),
    ("fma", &["fma"]),
    ("f16c", &["f16c"]),
    ("avx512f", &["avx512f"]),
    ("avx512_vnni", &["avx512_vnni"]),
    ("avx512_bf16", &["avx512_bf16"]),
    ("avx_vnni", &["avx_vnni"]),
    ("amx", &["amx_tile"]),
];

/// arm64 hwcaps in `/proc/cpuinfo` "Features" (Documentation/arch/arm64/elf_hwcaps.rst); 32-bit
/// kernels say `neon` where arm64 says `asimd`.
const ARM_FEATURES: &[(&str, &[&str])] = &[
    ("neon", &["asimd", "neon"]),
    ("fp16", &["asimdhp"]),
    ("dotprod", &["asimddp"]),
    ("i8mm", &["i8mm"]),
    ("bf16", &["bf16"]),
    ("sve", &["sve"]),
    ("sve2", &["sve2"]),
];

pub fn probe(root: &SysRoot) -> Cpu {
    // macOS and Windows have no /proc: the OS's own figures (native.rs).
    if super::native::applies(root) {
        return super::native::cpu();
    }
    let cpuinfo = root.read_raw("/proc/cpuinfo");
    let blocks = cpuinfo
        .value()
        .map(|t| processor_blocks(t))
        .unwrap_or_default();
    let first = blocks.first().cloned().unwrap_or_default();

    let (isa, simd) = match &cpuinfo {
        Reading::Unavailable(r) => (
            Reading::Unavailable(r.clone()),
            Reading::Unavailable(r.clone()),
        ),
        Reading::Value(_) => simd_features(&first),
    };

    let allowed = allowed_cpus(root);
    Cpu {
        model_name: model_name(&cpuinfo, &blocks),
        logical_cores: logical_cores(root, &blocks),
        physical_cores: physical_cores(root, &blocks),
        allowed_cpus: allowed.clone().map(|l| format_cpu_list(&l)),
        allowed_cores: allowed.clone().map(|l| l.len() as u32),
        allowed_physical_cores: allowed.and_then(|l| allowed_physical(root, &l)),
        quota_cores: quota_cores(root),
        policies: policies(root),
        isa,
        simd,
    }
}

/// The `key: value` fields of the first processor block of `/proc/cpuinfo`.
pub fn first_block(cpuinfo: &str) -> BTreeMap<String, String> {
    processor_blocks(cpuinfo)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// `/proc/cpuinfo` as one map per blank-line-separated block.
fn processor_blocks(cpuinfo: &str) -> Vec<BTreeMap<String, String>> {
    cpuinfo
        .split("\n\n")
        .map(|block| {
            block
                .lines()
                .filter_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    Some((k.trim().to_owned(), v.trim().to_owned()))
                })
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|m| !m.is_empty())
        .collect()
}

fn model_name(cpuinfo: &Reading<String>, blocks: &[BTreeMap<String, String>]) -> Reading<String> {
    if let Reading::Unavailable(r) = cpuinfo {
        return Reading::Unavailable(r.clone());
    }
    if let Some(name) = blocks.iter().find_map(|b| b.get("model name")) {
        return Reading::Value(name.clone());
    }
    // arm64 cpuinfo has no model name: describe the cores by MIDR implementer/part instead,
    // grouping big.LITTLE clusters ("4x Cortex-A76 + 4x Cortex-A55").
    let mut counts: Vec<(String, u32)> = Vec::new();
    for b in blocks.iter().filter(|b| b.contains_key("processor")) {
        let Some(part) = b.get("CPU part") else {
            continue;
        };
        let name = arm_core_name(b.get("CPU implementer").map_or("", String::as_str), part);
        match counts.iter_mut().find(|(n, _)| *n == name) {
            Some((_, c)) => *c += 1,
            None => counts.push((name, 1)),
        }
    }
    if counts.is_empty() {
        if let Some(hw) = blocks.iter().find_map(|b| b.get("Hardware")) {
            return Reading::Value(hw.clone());
        }
        return Reading::unavailable("unparsable: /proc/cpuinfo has no model name or CPU part");
    }
    Reading::Value(
        counts
            .iter()
            .map(|(n, c)| format!("{c}x {n}"))
            .collect::<Vec<_>>()
            .join(" + "),
    )
}

/// Core names for MIDR implementer/part numbers, from Arm's and vendors' technical reference
/// manuals (the MIDR_EL1 "PartNum" field); unknown parts are named by their numbers.
fn arm_core_name(implementer: &str, part: &str) -> String {
    let name = match (implementer, part) {
        ("0x41", "0xd03") => "Cortex-A53",
        ("0x41", "0xd04") => "Cortex-A35",
        ("0x41", "0xd05") => "Cortex-A55",
        ("0x41", "0xd07") => "Cortex-A57",
        ("0x41", "0xd08") => "Cortex-A72",
        ("0x41", "0xd09") => "Cortex-A73",
        ("0x41", "0xd0a") => "Cortex-A75",
        ("0x41", "0xd0b") => "Cortex-A76",
        ("0x41", "0xd0c") => "Neoverse-N1",
        ("0x41", "0xd0d") => "Cortex-A77",
        ("0x41", "0xd40") => "Neoverse-V1",
        ("0x41", "0xd41") => "Cortex-A78",
        ("0x41", "0xd42") => "Cortex-A78AE",
        ("0x41", "0xd44") => "Cortex-X1",
        ("0x41", "0xd46") => "Cortex-A510",
        ("0x41", "0xd47") => "Cortex-A710",
        ("0x41", "0xd48") => "Cortex-X2",
        ("0x41", "0xd49") => "Neoverse-N2",
        ("0x41", "0xd4d") => "Cortex-A715",
        ("0x41", "0xd4e") => "Cortex-X3",
        ("0x41", "0xd4f") => "Neoverse-V2",
        ("0x41", "0xd80") => "Cortex-A520",
        ("0x41", "0xd81") => "Cortex-A720",
        ("0x41", "0xd82") => "Cortex-X4",
        _ => return format!("implementer {implementer} part {part}"),
    };
    name.to_owned()
}

/// Online CPUs from `/sys/devices/system/cpu/online`, else the processor blocks of cpuinfo.
fn logical_cores(root: &SysRoot, blocks: &[BTreeMap<String, String>]) -> Reading<u32> {
    const ONLINE: &str = "/sys/devices/system/cpu/online";
    root.read_str(ONLINE)
        .and_then(|s| match parse_cpu_list(&s) {
            Some(l) if !l.is_empty() => Reading::Value(l.len() as u32),
            _ => Reading::unavailable(format!(
                "unparsable: {ONLINE} holds {}, not a CPU list",
                excerpt(&s)
            )),
        })
        .or_else(|| {
            let n = blocks
                .iter()
                .filter(|b| b.contains_key("processor"))
                .count();
            if n > 0 {
                Reading::Value(n as u32)
            } else {
                Reading::unavailable(format!("missing: {ONLINE} and /proc/cpuinfo processors"))
            }
        })
}

/// The online CPUs this process may run on. The affinity mask comes from `Cpus_allowed_list` in
/// `/proc/self/status` (proc(5)); the kernel keeps it inside the cgroup's cpuset, so it already
/// reflects `taskset`, `sched_setaffinity`, Docker's `--cpuset-cpus` and Android's cpusets.
/// Without it (a captured tree from a tool that did not save it), the cgroup's effective cpuset
/// (v2 `cpuset.cpus.effective`, v1 `cpuset.effective_cpus`; Documentation/admin-guide/cgroup-v2.rst).
fn allowed_cpus(root: &SysRoot) -> Reading<Vec<u32>> {
    const STATUS: &str = "/proc/self/status";
    let from_status = root.read_str(STATUS).and_then(|s| {
        let Some(line) = s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")) else {
            return Reading::unavailable(format!("unparsable: {STATUS} has no Cpus_allowed_list"));
        };
        match parse_cpu_list(line) {
            Some(l) if !l.is_empty() => Reading::Value(l),
            _ => Reading::unavailable(format!(
                "unparsable: {STATUS} Cpus_allowed_list holds {}, not a CPU list",
                excerpt(line.trim())
            )),
        }
    });
    let allowed = match from_status {
        Reading::Value(l) => Reading::Value(l),
        // A status file that is there but unreadable says more than the fallback's "missing".
        Reading::Unavailable(why) => match cpuset_cpus(root) {
            Reading::Unavailable(_) if !why.starts_with("missing") => Reading::Unavailable(why),
            other => other,
        },
    };
    let Reading::Value(mut list) = allowed else {
        return allowed;
    };
    // The mask may name CPUs that are offline (hotplug, Android's core control): they run nothing.
    if let Some(online) = root
        .read_str("/sys/devices/system/cpu/online")
        .into_value()
        .and_then(|s| parse_cpu_list(&s))
        .filter(|o| !o.is_empty())
    {
        list.retain(|c| online.contains(c));
    }
    if list.is_empty() {
        return Reading::unavailable("unparsable: no allowed CPU is online");
    }
    Reading::Value(list)
}

/// The effective cpuset of the process's cgroup, the innermost that says.
fn cpuset_cpus(root: &SysRoot) -> Reading<Vec<u32>> {
    let groups = match super::memory::read_proc_cgroup(root) {
        Reading::Value(g) => g,
        Reading::Unavailable(r) => return Reading::Unavailable(r),
    };
    let candidates: Vec<String> = if let Some(path) = groups.v1_path("cpuset") {
        let mount = super::memory::v1_mount(root, "cpuset");
        super::memory::ancestors(root, &mount, path)
            .into_iter()
            .flat_map(|d| {
                [
                    format!("{d}/cpuset.effective_cpus"),
                    format!("{d}/cpuset.cpus"),
                ]
            })
            .collect()
    } else if let Some(path) = groups.v2_path() {
        super::memory::ancestors(root, "/sys/fs/cgroup", path)
            .into_iter()
            .map(|d| format!("{d}/cpuset.cpus.effective"))
            .collect()
    } else {
        Vec::new()
    };
    // ancestors() runs from the innermost group outwards.
    for file in &candidates {
        if let Some(l) = root
            .read_str(file)
            .into_value()
            .and_then(|s| parse_cpu_list(&s))
            .filter(|l| !l.is_empty())
        {
            return Reading::Value(l);
        }
    }
    Reading::unavailable("missing: /proc/self/status Cpus_allowed_list and the cgroup's cpuset")
}

/// A CPU list in the kernel's compact form: `[0, 1, 2, 3, 6]` → "0-3,6".
pub fn format_cpu_list(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// Physical cores among `allowed`: distinct SMT sibling sets containing an allowed CPU.
fn allowed_physical(root: &SysRoot, allowed: &[u32]) -> Reading<u32> {
    let mut sets = BTreeSet::new();
    for &cpu in allowed {
        let topo = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        match root
            .read_str(&format!("{topo}/core_cpus_list"))
            .or_else(|| root.read_str(&format!("{topo}/thread_siblings_list")))
            .into_value()
            .and_then(|s| parse_cpu_list(&s))
        {
            Some(list) => {
                sets.insert(list);
            }
            None => {
                return Reading::unavailable(format!(
                    "missing: {topo}/core_cpus_list (SMT siblings unknown)"
                ));
            }
        }
    }
    Reading::Value(sets.len() as u32)
}

/// Physical cores: distinct SMT sibling sets (`core_cpus_list`, older kernels
/// `thread_siblings_list`; Documentation/admin-guide/cputopology.rst) — right on x86 and on Arm
/// big.LITTLE alike. Falls back to cpuinfo's `physical id`/`core id` pairs.
fn physical_cores(root: &SysRoot, blocks: &[BTreeMap<String, String>]) -> Reading<u32> {
    let cpus: Vec<String> = root
        .list_prefixed("/sys/devices/system/cpu", "cpu")
        .into_iter()
        .filter(|n| n[3..].parse::<u32>().is_ok())
        .collect();
    let mut sets = BTreeSet::new();
    for cpu in &cpus {
        let topo = format!("/sys/devices/system/cpu/{cpu}/topology");
        if let Some(list) = root
            .read_str(&format!("{topo}/core_cpus_list"))
            .or_else(|| root.read_str(&format!("{topo}/thread_siblings_list")))
            .into_value()
            .and_then(|s| parse_cpu_list(&s))
        {
            sets.insert(list);
        }
    }
    if !sets.is_empty() {
        return Reading::Value(sets.len() as u32);
    }
    let pairs: BTreeSet<(String, String)> = blocks
        .iter()
        .filter_map(|b| Some((b.get("physical id")?.clone(), b.get("core id")?.clone())))
        .collect();
    if !pairs.is_empty() {
        return Reading::Value(pairs.len() as u32);
    }
    Reading::unavailable("missing: /sys/devices/system/cpu/cpu*/topology and cpuinfo core ids")
}

/// The process's CPU quota in cores: cgroup v2 `cpu.max` ("max 100000" or "QUOTA PERIOD"), v1
/// `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = none). Documentation/admin-guide/cgroup-v2.rst.
fn quota_cores(root: &SysRoot) -> Reading<Option<f64>> {
    let groups = match super::memory::read_proc_cgroup(root) {
        Reading::Value(g) => g,
        Reading::Unavailable(r) => return Reading::Unavailable(r),
    };
    let mut tightest: Option<f64> = None;
    let mut consider = |q: f64| tightest = Some(tightest.map_or(q, |t: f64| t.min(q)));
    if let Some(path) = groups.v1_path("cpu") {
        for dir in super::memory::ancestors(root, &super::memory::v1_mount(root, "cpu"), path) {
            let quota = root.read_parse::<i64>(&format!("{dir}/cpu.cfs_quota_us"));
            let period = root.read_parse::<i64>(&format!("{dir}/cpu.cfs_period_us"));
            if let (Reading::Value(q), Reading::Value(p)) = (quota, period)
                && q > 0
                && p > 0
            {
                consider(q as f64 / p as f64);
            }
        }
    } else if let Some(path) = groups.v2_path() {
        for dir in super::memory::ancestors(root, "/sys/fs/cgroup", path) {
            if let Some(s) = root.read_str(&format!("{dir}/cpu.max")).into_value() {
                let mut it = s.split_whitespace();
                if let (Some(Ok(q)), Some(Ok(p))) = (
                    it.next().map(str::parse::<f64>),
                    it.next().map(str::parse::<f64>),
                ) && p > 0.0
                {
                    consider(q / p);
                }
            }
        }
    }
    Reading::Value(tightest.map(|q| (q * 100.0).round() / 100.0))
}

pub fn policies(root: &SysRoot) -> Reading<Vec<FreqPolicy>> {
    const DIR: &str = "/sys/devices/system/cpu/cpufreq";
    if !root.is_dir(DIR) {
        return Reading::unavailable(format!(
            "missing: {DIR} (no cpufreq driver: a VM, or frequency fixed by firmware)"
        ));
    }
    let khz_to_mhz = |path: String| root.read_parse::<u64>(&path).map(|khz| khz as f64 / 1000.0);
    let list = root
        .list_prefixed(DIR, "policy")
        .into_iter()
        .map(|p| {
            let d = format!("{DIR}/{p}");
            FreqPolicy {
                cpus: root.read_str(&format!("{d}/related_cpus")),
                governor: root.read_str(&format!("{d}/scaling_governor")),
                cur_mhz: khz_to_mhz(format!("{d}/scaling_cur_freq")),
                max_mhz: khz_to_mhz(format!("{d}/scaling_max_freq")),
                hw_max_mhz: khz_to_mhz(format!("{d}/cpuinfo_max_freq")),
                name: p,
            }
        })
        .collect();
    Reading::Value(list)
}

fn simd_features(
    first: &BTreeMap<String, String>,
) -> (Reading<String>, Reading<BTreeMap<String, bool>>) {
    let (isa, table, line) = if let Some(flags) = first.get("flags") {
        ("x86", X86_FEATURES, flags)
    } else if let Some(features) = first.get("Features") {
        ("arm", ARM_FEATURES, features)
    } else {
        let r = "unparsable: /proc/cpuinfo has neither flags nor Features";
        return (Reading::unavailable(r), Reading::unavailable(r));
    };
    let present: BTreeSet<&str> = line.split_whitespace().collect();
    let map = table
        .iter()
        .map(|(name, aliases)| {
            (
                (*name).to_owned(),
                aliases.iter().any(|a| present.contains(a)),
            )
        })
        .collect();
    (Reading::Value(isa.to_owned()), Reading::Value(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_little_cores_are_grouped_by_part() {
        let info = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n\
                    processor\t: 1\nCPU implementer\t: 0x41\nCPU part\t: 0xd05\n\n\
                    processor\t: 2\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n";
        let blocks = processor_blocks(info);
        assert_eq!(
            model_name(&Reading::Value(info.into()), &blocks),
            Reading::Value("2x Cortex-A55 + 1x Cortex-A76".into())
        );
    }

    #[test]
    fn cpu_lists_print_compactly() {
        assert_eq!(format_cpu_list(&[0, 1, 2, 3, 6]), "0-3,6");
        assert_eq!(format_cpu_list(&[5]), "5");
        assert_eq!(format_cpu_list(&[3, 1, 2, 8, 9]), "1-3,8-9");
    }

    fn cpu_with(allowed_phys: Reading<u32>, allowed: Reading<u32>, quota: Option<f64>) -> Cpu {
        Cpu {
            model_name: Reading::unavailable("x"),
            logical_cores: Reading::Value(16),
            physical_cores: Reading::Value(8),
            allowed_cpus: Reading::unavailable("x"),
            allowed_cores: allowed,
            allowed_physical_cores: allowed_phys,
            quota_cores: Reading::Value(quota),
            policies: Reading::unavailable("x"),
            isa: Reading::unavailable("x"),
            simd: Reading::unavailable("x"),
        }
    }

    #[test]
    fn default_threads_follow_affinity_physical_cores_and_quota() {
        // Found in review: under `taskset -c 0` odai ran 2 threads on 1 allowed CPU.
        let one = cpu_with(Reading::Value(1), Reading::Value(1), None);
        assert_eq!(one.default_threads().0, 1);
        assert_eq!(one.usable_cores(), 1);
        // SMT: 8 allowed CPUs on 4 cores → 4 threads.
        let smt = cpu_with(Reading::Value(4), Reading::Value(8), None);
        assert_eq!(
            smt.default_threads(),
            (4, "4 physical core(s) the process may use".into())
        );
        assert_eq!(smt.usable_cores(), 8);
        // A 2.5-CPU quota caps at 3.
        let quota = cpu_with(Reading::Value(4), Reading::Value(8), Some(2.5));
        assert_eq!(
            quota.default_threads(),
            (3, "the cgroup quota of 2.5 CPU(s)".into())
        );
        // Nothing known about affinity: the machine's physical cores.
        let unknown = cpu_with(Reading::unavailable("x"), Reading::unavailable("x"), None);
        assert_eq!(unknown.default_threads().0, 8);
        assert_eq!(unknown.usable_cores(), 16);
    }

    #[test]
    fn arm_hwcaps_map_to_inference_features() {
        let b = processor_blocks("processor: 0\nFeatures: fp asimd asimddp i8mm\n");
        let (isa, simd) = simd_features(&b[0]);
        assert_eq!(isa, Reading::Value("arm".into()));
        let simd = simd.into_value().unwrap();
        assert!(simd["neon"] && simd["dotprod"] && simd["i8mm"]);
        assert!(!simd["sve"]);
    }
}

//! The human-readable `odai probe` summary: one section per probe, one line per reading, and
//! "unavailable: reason" where a reading has no value. Styles are stripped by anstream when
//! NO_COLOR is set or stdout is not a terminal.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};

use super::Probe;
use crate::sysroot::Reading;
use crate::units;

const HEAD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const WARN: Style = AnsiColor::Yellow.on_default().bold();

struct Out(String);

impl Out {
    fn section(&mut self, title: &str) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
        let _ = writeln!(self.0, "{HEAD}{title}{HEAD:#}");
    }

    fn line(&mut self, key: &str, value: impl AsRef<str>) {
        let _ = writeln!(self.0, "  {key:<17} {}", value.as_ref());
    }

    fn reading<T>(&mut self, key: &str, r: &Reading<T>, show: impl Fn(&T) -> String) {
        match r {
            Reading::Value(v) => self.line(key, show(v)),
            Reading::Unavailable(why) => self.line(key, format!("{DIM}unavailable: {why}{DIM:#}")),
        }
    }
}

/// A text reading, or "?" in a compact line where the full reason would drown the line.
fn q(r: &Reading<String>) -> &str {
    r.value().map_or("?", String::as_str)
}

#[allow(clippy::ptr_arg)] // used as `Fn(&T)` with T = String
fn s(v: &String) -> String {
    v.to_owned()
}

/// One adapter's passed check: the figures, "?" where one was not measured.
fn check_line(c: &crate::probe::gpu_check::GpuCheck) -> String {
    let f = |r: &Reading<f64>, unit: &str| {
        r.value()
            .map_or("?".to_owned(), |v| crate::report::human_unit(*v, unit))
    };
    format!(
        "passed in {:.1} s: copy {}, triad {}, matmul f32 {}, f16 {}, dispatch p50 {}, largest buffer {}",
        c.seconds,
        f(&c.copy_gb_s, "GB/s"),
        f(&c.triad_gb_s, "GB/s"),
        f(&c.matmul_f32_gflop_s, "GFLOP/s"),
        if c.matmul_f16_gflop_s.is_value() {
            f(&c.matmul_f16_gflop_s, "GFLOP/s")
        } else {
            "n/a".to_owned()
        },
        f(&c.dispatch_p50_us, "µs"),
        c.largest_buffer_bytes
            .value()
            .map_or("?".to_owned(), |b| units::bytes(*b)),
    )
}

pub fn render(p: &Probe) -> String {
    let mut o = Out(String::new());

    o.section(if p.captured {
        "Device (captured tree)"
    } else {
        "Device"
    });
    o.reading("hostname", &p.device.hostname, s);
    o.reading("os", &p.device.os, s);
    o.reading("kernel", &p.device.kernel, s);
    o.reading("arch", &p.device.arch, s);
    o.reading("board", &p.device.board, s);
    o.reading("soc", &p.device.soc, s);
    o.reading("class", &p.class, |c| {
        format!("{} ({}): {}", c.id, c.label, c.reasons.join(", "))
    });

    o.section("CPU");
    o.reading("model", &p.cpu.model_name, s);
    o.reading("logical cores", &p.cpu.logical_cores, u32::to_string);
    o.reading("physical cores", &p.cpu.physical_cores, u32::to_string);
    o.reading("allowed CPUs", &p.cpu.allowed_cpus, |l| {
        let n = p.cpu.allowed_cores.value().copied().unwrap_or(0);
        match p.cpu.allowed_physical_cores.value() {
            Some(ph) => format!("{l} ({n} CPUs on {ph} physical cores)"),
            None => format!("{l} ({n} CPUs)"),
        }
    });
    o.reading("cgroup quota", &p.cpu.quota_cores, |q| match q {
        Some(c) => format!("{c} CPUs"),
        None => "none".into(),
    });
    let (threads, why) = p.cpu.default_threads();
    o.line("default threads", format!("{threads} ({why})"));
    match &p.cpu.simd {
        Reading::Value(map) => {
            let isa = p.cpu.isa.value().map_or("", String::as_str);
            let have: Vec<&str> = map
                .iter()
                .filter(|(_, v)| **v)
                .map(|(k, _)| k.as_str())
                .collect();
            let lack: Vec<&str> = map
                .iter()
                .filter(|(_, v)| !**v)
                .map(|(k, _)| k.as_str())
                .collect();
            let mut line = if have.is_empty() {
                "none".to_owned()
            } else {
                have.join(" ")
            };
            if !lack.is_empty() {
                let _ = write!(line, "  {DIM}(not: {}){DIM:#}", lack.join(" "));
            }
            o.line(&format!("simd ({isa})"), line);
        }
        r => o.reading("simd", r, |_| String::new()),
    }
    match &p.cpu.policies {
        Reading::Value(list) if list.is_empty() => o.line("frequency", "no cpufreq policies"),
        Reading::Value(list) => {
            // Per-CPU policies (intel_pstate, amd-pstate) repeat the same line dozens of times:
            // fold runs of consecutive policies that agree on everything but the current clock.
            let mhz = |r: &Reading<f64>| r.value().map_or("?".into(), |v| format!("{v:.0}"));
            let key = |p: &super::cpu::FreqPolicy| {
                (
                    mhz(&p.max_mhz),
                    mhz(&p.hw_max_mhz),
                    p.governor.value().cloned(),
                )
            };
            let mut i = 0;
            while i < list.len() {
                let mut j = i + 1;
                while j < list.len() && key(&list[j]) == key(&list[i]) {
                    j += 1;
                }
                let run = &list[i..j];
                let name = if run.len() == 1 {
                    run[0].name.clone()
                } else {
                    format!(
                        "{}..{}",
                        run[0].name,
                        run[run.len() - 1].name.trim_start_matches("policy")
                    )
                };
                let cpus: Vec<&str> = run.iter().map(|p| q(&p.cpus)).collect();
                let curs: Vec<f64> = run
                    .iter()
                    .filter_map(|p| p.cur_mhz.value().copied())
                    .collect();
                let cur = match (
                    curs.iter().copied().reduce(f64::min),
                    curs.iter().copied().reduce(f64::max),
                ) {
                    (Some(lo), Some(hi)) if (hi - lo).abs() >= 0.5 => format!("{lo:.0}-{hi:.0}"),
                    (Some(lo), _) => format!("{lo:.0}"),
                    _ => "?".into(),
                };
                let (max, hw, gov) = key(&run[0]);
                o.line(
                    &name,
                    format!(
                        "cpus {}  cur {cur} MHz  max {max} / hw {hw} MHz  {}",
                        cpus.join(" "),
                        gov.as_deref().unwrap_or("?"),
                    ),
                );
                i = j;
            }
        }
        r => o.reading("frequency", r, |_| String::new()),
    }

    o.section("Memory");
    let m = &p.memory;
    let b = |v: &u64| units::bytes(*v);
    o.reading("total", &m.total_bytes, b);
    o.reading("available", &m.available_bytes, b);
    o.reading("headroom", &m.headroom_bytes, |h| {
        format!("{} (bound by {})", units::bytes(*h), q(&m.headroom_source))
    });
    o.reading("cgroup", &m.cgroup_version, |v| match v {
        None => "no memory controller".into(),
        Some(v) => {
            let limit = match m.cgroup_limit_bytes.value() {
                Some(Some(l)) => format!("limit {}", units::bytes(*l)),
                _ => "no limit".into(),
            };
            let usage = match m.cgroup_usage_bytes.value() {
                Some(Some(u)) => format!(", usage {}", units::bytes(*u)),
                _ => String::new(),
            };
            let path = m.cgroup_path.value().cloned().flatten().unwrap_or_default();
            format!("{v} {path}: {limit}{usage}")
        }
    });
    o.reading("swap", &m.swap_total_bytes, b);
    o.reading("bandwidth", &p.bandwidth, |b| {
        format!(
            "{:.1} GB/s STREAM triad ({} threads, {} arrays)",
            b.triad_gb_s,
            b.threads,
            units::bytes(b.array_bytes)
        )
    });
    o.reading("pressure", &m.psi_some_avg10, |v| {
        let avg60 = m
            .psi_some_avg60
            .value()
            .map_or("?".into(), |x| format!("{x:.2}"));
        format!("some avg10 {v:.2}% avg60 {avg60}%")
    });

    o.section("GPUs");
    match &p.gpus {
        Reading::Value(list) if list.is_empty() => o.line("adapters", "none found"),
        Reading::Value(list) => {
            for (i, a) in list.iter().enumerate() {
                o.line(
                    &format!("adapter {i}"),
                    format!(
                        "{} [{}, {}] driver {} {}, max buffer {}",
                        a.name,
                        a.backend,
                        a.device_type,
                        a.driver,
                        a.driver_info,
                        units::bytes(a.max_buffer_size_bytes)
                    ),
                );
                match &a.check {
                    Reading::Value(c) if c.passed() => o.line("  check", check_line(c)),
                    Reading::Value(c) => o.line(
                        "  check",
                        format!(
                            "{WARN}FAILED{WARN:#}: {}",
                            c.error.as_deref().unwrap_or("no reason given")
                        ),
                    ),
                    // "not run" is the default: said once below, not per adapter.
                    Reading::Unavailable(why) if why.starts_with("not run") => {}
                    r => o.reading("  check", r, |_| String::new()),
                }
            }
        }
        r => o.reading("adapters", r, |_| String::new()),
    }
    if p.drm_cards.is_empty() {
        o.line("drm cards", "none");
    }
    for c in &p.drm_cards {
        o.line(
            &c.name,
            format!(
                "driver {}  pci {}:{}",
                c.driver,
                q(&c.pci_vendor),
                q(&c.pci_device)
            ),
        );
    }

    o.section("NPUs");
    if p.npus.is_empty() {
        o.line("npus", "none found");
    }
    for n in &p.npus {
        let pci = match (n.pci_vendor.value(), n.pci_device.value()) {
            (Some(Some(v)), Some(Some(d))) => format!("  pci {v}:{d}"),
            _ => String::new(),
        };
        o.line(
            &n.node,
            format!("{} (driver {}){pci}", n.description, n.driver),
        );
    }

    o.section("Thermal");
    let t = &p.thermal;
    match &t.throttled {
        Reading::Value(true) => {
            o.line("throttled", format!("{WARN}yes{WARN:#}"));
            for r in &t.throttle_reasons {
                o.line("", format!("- {r}"));
            }
        }
        Reading::Value(false) => o.line("throttled", "no"),
        r => o.reading("throttled", r, |_| String::new()),
    }
    o.reading("max temp", &t.max_temp_c, |c| format!("{c:.1} °C"));
    match &t.throttle_counters {
        Reading::Value(Some(c)) => o.line(
            "throttle events",
            format!(
                "{} core, {} package since boot",
                c.core_events, c.package_events
            ),
        ),
        Reading::Value(None) => {}
        r => o.reading("throttle events", r, |_| String::new()),
    }
    match &t.rpi_throttled {
        Reading::Value(Some(r)) => o.line("rpi firmware", format!("get_throttled {}", r.raw)),
        Reading::Value(None) => {}
        r => o.reading("rpi firmware", r, |_| String::new()),
    }
    for z in &t.zones {
        o.line(
            &z.name,
            format!(
                "{}: {}",
                q(&z.kind),
                match &z.temp_c {
                    Reading::Value(c) => format!("{c:.1} °C"),
                    Reading::Unavailable(r) => format!("unavailable: {r}"),
                }
            ),
        );
    }
    for c in &t.cooling_devices {
        o.line(
            &c.name,
            format!(
                "{} state {}/{}",
                q(&c.kind),
                c.cur_state.value().map_or("?".into(), u64::to_string),
                c.max_state.value().map_or("?".into(), u64::to_string)
            ),
        );
    }

    o.section("Power");
    o.reading("on AC", &p.power.on_ac, |v| {
        if *v { "yes" } else { "no" }.to_owned()
    });
    if p.power.batteries.is_empty() {
        o.line("batteries", "none");
    }
    for bat in &p.power.batteries {
        let cap = bat
            .capacity_pct
            .value()
            .map_or("?".into(), |c| format!("{c:.0}%"));
        let wh = bat
            .energy_wh
            .value()
            .map_or("?".into(), |e| format!("{e:.1} Wh"));
        let w = match &bat.power_w {
            Reading::Value(w) => format!("{w:.2} W"),
            Reading::Unavailable(r) => format!("power unavailable: {r}"),
        };
        o.line(&bat.name, format!("{} {cap}, {wh}, {w}", q(&bat.status)));
    }
    if p.power.energy_meters.is_empty() {
        o.line("energy meters", "none");
    }
    for e in &p.power.energy_meters {
        let v = match &e.reading {
            Reading::Value(v) => format!("{v:.3} {}", e.unit),
            Reading::Unavailable(r) => format!("{DIM}unavailable: {r}{DIM:#}"),
        };
        o.line(&e.kind, format!("{}: {v}", e.label));
    }
    o.0
}

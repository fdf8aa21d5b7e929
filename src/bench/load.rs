//! Background contention during a run (`--load cpu:N,mem:SIZE`): N busy threads and SIZE of
//! memory allocated, touched and re-touched — what a device's other apps (a camera pipeline, app
//! switching) do to a model. It runs in a child process (`odai contend`, hidden) that ends with
//! the run whatever happens: killed when the guard drops, and by the kernel if odai dies first
//! (PR_SET_PDEATHSIG).

use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::error::Error;
use crate::units;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Load {
    pub cpu_threads: u32,
    pub mem_bytes: u64,
}

impl Load {
    /// `none`, `cpu:N`, `mem:SIZE` or `cpu:N,mem:SIZE` (SIZE like 512M, 2G, 1GiB).
    pub fn parse(s: &str) -> Result<Load, Error> {
        let invalid = |problem: String| Error::Invalid {
            flag: "--load".into(),
            problem,
        };
        let mut load = Load::default();
        if s.trim().eq_ignore_ascii_case("none") {
            return Ok(load);
        }
        for part in s.split(',') {
            match part.trim().split_once(':') {
                Some(("cpu", n)) => {
                    load.cpu_threads =
                        n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                            invalid(format!("cpu:{n}: give a number of busy threads"))
                        })?
                }
                Some(("mem", size)) => {
                    load.mem_bytes = parse_size(size).filter(|&b| b > 0).ok_or_else(|| {
                        invalid(format!("mem:{size}: give a size like 512M or 2G"))
                    })?
                }
                _ => {
                    return Err(invalid(format!(
                        "{part:?} is not a load (use none, cpu:N, mem:SIZE or cpu:N,mem:SIZE)"
                    )));
                }
            }
        }
        Ok(load)
    }

    pub fn is_none(&self) -> bool {
        *self == Load::default()
    }

    /// The condition as results record it: `none`, `cpu:2`, `cpu:2,mem:512.0 MiB`.
    pub fn label(&self) -> String {
        let mut parts = Vec::new();
        if self.cpu_threads > 0 {
            parts.push(format!("cpu:{}", self.cpu_threads));
        }
        if self.mem_bytes > 0 {
            parts.push(format!("mem:{}", units::bytes(self.mem_bytes)));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(",")
        }
    }
}

/// `512M`, `2G`, `1GiB`, `100MB`, or plain bytes; binary multiples.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1u64,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return None,
    };
    Some((n * mult as f64) as u64)
}

/// The contention process; killed and reaped when dropped.
pub struct Contention(Option<Child>);

impl Contention {
    pub fn start(exe: &Path, load: Load) -> Result<Contention, String> {
        if load.is_none() {
            return Ok(Contention(None));
        }
        let child = Command::new(exe)
            .args(["contend", "--cpu", &load.cpu_threads.to_string()])
            .args(["--mem", &load.mem_bytes.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the background load: {e}"))?;
        Ok(Contention(Some(child)))
    }
}

impl Drop for Contention {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The body of `odai contend`: runs until killed.
pub fn contend(cpu_threads: u32, mem_bytes: u64) -> ! {
    crate::platform::die_with_parent_self();
    for _ in 0..cpu_threads {
        std::thread::spawn(|| {
            let mut x = 1u64;
            loop {
                for _ in 0..1_000_000 {
                    x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                }
                std::hint::black_box(x);
            }
        });
    }
    // Touch every page, then keep re-touching them: resident, and competing for bandwidth.
    let mut mem = vec![0u8; mem_bytes as usize];
    let page = 4096;
    let mut round = 0u8;
    loop {
        if mem.is_empty() {
            // Nothing to touch: the busy threads are the load.
            std::thread::park();
            continue;
        }
        round = round.wrapping_add(1);
        for i in (0..mem.len()).step_by(page) {
            mem[i] = round;
        }
        std::hint::black_box(&mem);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_parse_and_label() {
        assert!(Load::parse("none").unwrap().is_none());
        let l = Load::parse("cpu:2,mem:512M").unwrap();
        assert_eq!(
            l,
            Load {
                cpu_threads: 2,
                mem_bytes: 512 << 20
            }
        );
        assert_eq!(l.label(), "cpu:2,mem:512.0 MiB");
        assert_eq!(Load::parse("mem:1GiB").unwrap().mem_bytes, 1 << 30);
        assert_eq!(
            Load::parse("gpu:1").unwrap_err().to_string(),
            "--load: \"gpu:1\" is not a load (use none, cpu:N, mem:SIZE or cpu:N,mem:SIZE)"
        );
        assert!(Load::parse("cpu:0").is_err());
    }
}

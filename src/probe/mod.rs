//! `odai probe`: what a device can give a local model, read in a fixed order — device, CPU,
//! memory, GPUs, NPUs, thermal, power — then the device class. Every reading goes through a
//! [`SysRoot`], so a captured tree reports exactly as the device it came from.

pub mod bandwidth;
pub mod class;
pub mod cpu;
pub mod device;
pub mod gpu;
pub mod gpu_check;
pub mod memory;
pub mod native;
pub mod npu;
pub mod power;
pub mod text;
pub mod thermal;

use serde::{Deserialize, Serialize};

use crate::sysroot::{Reading, SysRoot};

/// Version of the probe JSON contract (docs/probe-json.md). Bump on any breaking change.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything `odai probe` reports; serialized through [`crate::sysroot::to_contract_json`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    pub schema_version: u32,
    pub odai_version: String,
    /// True when read from a captured tree (`--root`), false on the live device.
    pub captured: bool,
    pub device: device::Device,
    pub cpu: cpu::Cpu,
    pub memory: memory::Memory,
    pub gpus: Reading<Vec<gpu::GpuAdapter>>,
    pub drm_cards: Vec<gpu::DrmCard>,
    pub npus: Vec<npu::Npu>,
    pub thermal: thermal::Thermal,
    pub power: power::Power,
    pub class: Reading<class::Class>,
    /// STREAM triad bandwidth; measured only with `--bandwidth`, on the live device.
    pub bandwidth: Reading<bandwidth::Bandwidth>,
}

pub struct Options {
    pub gpu: gpu::Enumerate,
    /// `--gpu-check`: run the compute check on each adapter, each within this time.
    pub gpu_check: Option<std::time::Duration>,
    /// Check software rasterisers too (`--gpu-check-software`; `probe --gpu-check` always does).
    pub gpu_check_software: bool,
    pub classes: class::Classes,
    pub bandwidth: bool,
}

impl Options {
    /// What benchmarks and plans need of a device: no GPU drivers loaded, built-in classes, no
    /// bandwidth run — fast, and nothing that disturbs a measurement.
    pub fn quick() -> Self {
        Options {
            gpu: gpu::Enumerate::Skip,
            gpu_check: None,
            gpu_check_software: true,
            classes: class::Classes::embedded(),
            bandwidth: false,
        }
    }
}

pub fn run(root: &SysRoot, opts: &Options) -> Probe {
    let device = device::probe(root);
    let cpu = cpu::probe(root);
    let memory = memory::probe(root);
    // Each adapter's check allocates at most a share of the headroom (an integrated GPU's
    // buffers are the device's RAM).
    let check = opts.gpu_check.map(|limit| gpu::CheckOptions {
        limit,
        software: opts.gpu_check_software,
        memory_budget: memory
            .headroom_bytes
            .value()
            .map(|&h| (h as f64 * gpu_check::MEMORY_SHARE) as u64),
    });
    let gpus = gpu::adapters(root, opts.gpu, check);
    let drm_cards = gpu::drm_cards(root);
    let npus = npu::probe(root);
    let thermal = thermal::probe(root, &cpu);
    let power = power::probe(root);
    let facts = class::Facts {
        os_family: device.os_family.clone(),
        arch: device.arch.value().cloned(),
        ram_bytes: memory.total_bytes.value().copied(),
        cores: cpu.logical_cores.value().copied(),
        npu: !npus.is_empty(),
        battery: !power.batteries.is_empty(),
        board: device.board.value().cloned(),
        gpus: class::gpu_facts(&gpus),
    };
    let class = opts.classes.classify(&facts);
    let bandwidth = if !opts.bandwidth {
        Reading::unavailable("not measured: pass --bandwidth")
    } else if !root.is_live() {
        Reading::unavailable("not measured: --root points at a captured device tree")
    } else {
        Reading::Value(bandwidth::measure(root, cpu.usable_cores(), 5))
    };
    Probe {
        schema_version: SCHEMA_VERSION,
        odai_version: env!("CARGO_PKG_VERSION").to_owned(),
        captured: !root.is_live(),
        device,
        cpu,
        memory,
        gpus,
        drm_cards,
        npus,
        thermal,
        power,
        class,
        bandwidth,
    }
}

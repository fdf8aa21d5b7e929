//! GPUs: wgpu adapters enumerated headless (the paths an on-device app can really use: Vulkan,
//! GL/EGL, Metal, DX12), bounded by a timeout, each optionally checked with compute shaders
//! (probe::gpu_check), and the DRM cards the kernel exposes.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::gpu_check::{self, GpuCheck};
use crate::sysroot::{Reading, SysRoot};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GpuAdapter {
    pub name: String,
    /// `vulkan`, `gl`, `metal`, `dx12`.
    pub backend: String,
    /// `integrated_gpu`, `discrete_gpu`, `virtual_gpu`, `cpu` (a software rasteriser such as
    /// llvmpipe or lavapipe), `other`.
    pub device_type: String,
    pub vendor_id: String,
    pub device_id: String,
    pub driver: String,
    pub driver_info: String,
    pub max_buffer_size_bytes: u64,
    /// `probe --gpu-check`: what compute on this adapter did, or why it was not run.
    #[serde(default = "not_checked")]
    pub check: Reading<GpuCheck>,
}

fn not_checked() -> Reading<GpuCheck> {
    Reading::unavailable("not run: pass --gpu-check")
}

impl GpuAdapter {
    /// A software rasteriser (llvmpipe, lavapipe, SwiftShader, WARP): the CPU behind a GPU API.
    pub fn is_software(&self) -> bool {
        self.device_type == "cpu"
    }

    /// This adapter's check, when it ran and passed.
    pub fn passed_check(&self) -> Option<&GpuCheck> {
        self.check.value().filter(|c| c.passed())
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DrmCard {
    pub name: String,
    pub driver: Reading<String>,
    pub pci_vendor: Reading<String>,
    pub pci_device: Reading<String>,
}

/// How (or whether) to enumerate adapters.
#[derive(Clone, Copy, Debug)]
pub enum Enumerate {
    Skip,
    WithTimeout(Duration),
}

/// What the enumeration thread reports: the list first, then each adapter's check.
enum Found {
    List(Vec<GpuAdapter>),
    Check(usize, Box<GpuCheck>),
    Skipped(usize, String),
}

/// How the compute check runs.
#[derive(Clone, Copy, Debug)]
pub struct CheckOptions {
    /// The time one adapter's check may take.
    pub limit: Duration,
    /// Check software rasterisers too. `odai profile` leaves them out unless asked: llvmpipe
    /// and kin are the CPU behind a GPU API, and their check spends tens of seconds measuring
    /// the CPU the benchmark measures anyway.
    pub software: bool,
    /// The most one check may allocate (a share of the memory headroom); `None`: no bound.
    pub memory_budget: Option<u64>,
}

/// The adapters, each checked with compute shaders when `check` says how.
pub fn adapters(
    root: &SysRoot,
    how: Enumerate,
    check: Option<CheckOptions>,
) -> Reading<Vec<GpuAdapter>> {
    let timeout = match how {
        Enumerate::Skip => return Reading::unavailable("skipped: --no-gpu"),
        Enumerate::WithTimeout(t) => t,
    };
    if !root.is_live() {
        // Drivers describe the machine odai runs on, not the captured tree.
        return Reading::unavailable("not enumerated: --root points at a captured device tree");
    }
    let (tx, rx) = mpsc::channel();
    // A broken driver can hang inside its loader or a shader; the thread is abandoned on timeout
    // and dies with the process.
    let spawned = thread::Builder::new()
        .name("odai-gpu-enumerate".into())
        .spawn(move || {
            let (list, handles) = enumerate();
            let software: Vec<bool> = list.iter().map(GpuAdapter::is_software).collect();
            if tx.send(Found::List(list)).is_err() {
                return;
            }
            let Some(opts) = check else {
                return;
            };
            for (i, a) in handles.iter().enumerate() {
                if software[i] && !opts.software {
                    let why = "skipped: a software rasteriser (the CPU behind a GPU API); \
                               --gpu-check-software checks it"
                        .to_owned();
                    if tx.send(Found::Skipped(i, why)).is_err() {
                        return;
                    }
                    continue;
                }
                let started = std::time::Instant::now();
                let c = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    gpu_check::run(a, opts.memory_budget)
                }))
                .unwrap_or_else(|p| {
                    let msg = p
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| p.downcast_ref::<&str>().copied())
                        .unwrap_or("no message");
                    GpuCheck::failed(
                        gpu_check::Limits::of(&a.limits()),
                        format!("wgpu panicked: {}", gpu_check::one_line(msg)),
                        started.elapsed().as_secs_f64(),
                    )
                });
                if tx.send(Found::Check(i, Box::new(c))).is_err() {
                    return;
                }
            }
        });
    let spawned = match spawned {
        Ok(handle) => handle,
        Err(e) => {
            return Reading::unavailable(format!("not enumerated: cannot start a thread ({e})"));
        }
    };
    let mut list = match rx.recv_timeout(timeout) {
        Ok(Found::List(list)) => list,
        Ok(Found::Check(..) | Found::Skipped(..)) => unreachable!("the list is sent first"),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            crate::exit::DRIVER_THREAD_ABANDONED.store(true, std::sync::atomic::Ordering::SeqCst);
            return Reading::unavailable(format!(
                "timed out after {:.1} s enumerating GPU adapters (a hung driver?)",
                timeout.as_secs_f64()
            ));
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            return Reading::unavailable("GPU enumeration panicked inside the driver stack");
        }
    };
    if let Some(CheckOptions { limit, .. }) = check {
        for i in 0..list.len() {
            match rx.recv_timeout(limit) {
                Ok(Found::Check(j, c)) => list[j].check = Reading::Value(*c),
                Ok(Found::Skipped(j, why)) => list[j].check = Reading::Unavailable(why),
                Ok(Found::List(_)) => unreachable!("the list is sent once"),
                Err(e) => {
                    let why = match e {
                        mpsc::RecvTimeoutError::Timeout => {
                            crate::exit::DRIVER_THREAD_ABANDONED
                                .store(true, std::sync::atomic::Ordering::SeqCst);
                            format!(
                                "timed out after {} s checking adapter {i} (a hung driver?)",
                                limit.as_secs_f64()
                            )
                        }
                        mpsc::RecvTimeoutError::Disconnected => {
                            "the GPU check ended inside the driver stack".to_owned()
                        }
                    };
                    for a in &mut list[i..] {
                        a.check = Reading::unavailable(why.clone());
                    }
                    break;
                }
            }
        }
    }
    // The thread drops its adapters, devices and instance after its last message, and then its
    // thread-local destructors run (libglvnd's and Mesa's EGL thread state among them). Wait until
    // the thread has ended, destructors included, before going on: a process that exits while a
    // driver is still being torn down on another thread races the driver's exit handlers
    // (regressions: Mesa's GL driver crashed with SIGSEGV after a failed check, in a few runs out
    // of ten, while this waited only for the channel to close; then glibc aborted with
    // "malloc_consolidate(): invalid chunk size" in CI under load, because the channel closes
    // *before* those destructors run — the race wgpu's CI met on GL, gfx-rs/wgpu#4285).
    if !crate::exit::DRIVER_THREAD_ABANDONED.load(std::sync::atomic::Ordering::SeqCst)
        && !ended(spawned, check.map_or(timeout, |c| c.limit))
    {
        crate::exit::DRIVER_THREAD_ABANDONED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    Reading::Value(list)
}

/// Whether `thread` ended within `limit`. `JoinHandle::join` has no timeout and
/// `is_finished` turns true before the thread's thread-local destructors have run, so a
/// second thread joins it (pthread_join returns once the thread has terminated) and reports.
fn ended(thread: thread::JoinHandle<()>, limit: Duration) -> bool {
    let (tx, rx) = mpsc::channel();
    let joiner = thread::Builder::new()
        .name("odai-gpu-join".into())
        .spawn(move || {
            let _ = thread.join();
            let _ = tx.send(());
        });
    joiner.is_ok() && rx.recv_timeout(limit).is_ok()
}

fn enumerate() -> (Vec<GpuAdapter>, Vec<wgpu::Adapter>) {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN
            | wgpu::Backends::GL
            | wgpu::Backends::METAL
            | wgpu::Backends::DX12,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    let list = adapters
        .iter()
        .map(|a| {
            let info = a.get_info();
            GpuAdapter {
                name: info.name,
                backend: info.backend.to_str().to_owned(),
                device_type: device_type_name(info.device_type).to_owned(),
                vendor_id: format!("{:#06x}", info.vendor),
                device_id: format!("{:#06x}", info.device),
                driver: info.driver,
                driver_info: info.driver_info,
                max_buffer_size_bytes: a.limits().max_buffer_size,
                check: not_checked(),
            }
        })
        .collect();
    (list, adapters)
}

fn device_type_name(t: wgpu::DeviceType) -> &'static str {
    match t {
        wgpu::DeviceType::IntegratedGpu => "integrated_gpu",
        wgpu::DeviceType::DiscreteGpu => "discrete_gpu",
        wgpu::DeviceType::VirtualGpu => "virtual_gpu",
        wgpu::DeviceType::Cpu => "cpu",
        wgpu::DeviceType::Other => "other",
    }
}

/// `/sys/class/drm/cardN` (connectors such as `card0-HDMI-A-1` are skipped), with the driver bound
/// to the device and its PCI ids (Documentation/ABI/testing/sysfs-bus-pci).
pub fn drm_cards(root: &SysRoot) -> Vec<DrmCard> {
    root.list_prefixed("/sys/class/drm", "card")
        .into_iter()
        .filter(|n| n[4..].parse::<u32>().is_ok())
        .map(|n| {
            let dev = format!("/sys/class/drm/{n}/device");
            DrmCard {
                driver: root.read_link_name(&format!("{dev}/driver")),
                pci_vendor: root.read_str(&format!("{dev}/vendor")),
                pci_device: root.read_str(&format!("{dev}/device")),
                name: n,
            }
        })
        .collect()
}

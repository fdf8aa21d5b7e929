//! GPUs: wgpu adapters enumerated headless (the paths an on-device app can really use: Vulkan,
//! GL/EGL, Metal, DX12), bounded by a timeout, and the DRM cards the kernel exposes.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

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

pub fn adapters(root: &SysRoot, how: Enumerate) -> Reading<Vec<GpuAdapter>> {
    let timeout = match how {
        Enumerate::Skip => return Reading::unavailable("skipped: --no-gpu"),
        Enumerate::WithTimeout(t) => t,
    };
    if !root.is_live() {
        // Drivers describe the machine odai runs on, not the captured tree.
        return Reading::unavailable("not enumerated: --root points at a captured device tree");
    }
    let (tx, rx) = mpsc::channel();
    // A broken driver can hang inside its loader; the thread is abandoned on timeout and dies
    // with the process.
    let spawned = thread::Builder::new()
        .name("odai-gpu-enumerate".into())
        .spawn(move || {
            let _ = tx.send(enumerate());
        });
    if let Err(e) = spawned {
        return Reading::unavailable(format!("not enumerated: cannot start a thread ({e})"));
    }
    match rx.recv_timeout(timeout) {
        Ok(list) => Reading::Value(list),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            crate::exit::DRIVER_THREAD_ABANDONED.store(true, std::sync::atomic::Ordering::SeqCst);
            Reading::unavailable(format!(
                "timed out after {:.1} s enumerating GPU adapters (a hung driver?)",
                timeout.as_secs_f64()
            ))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Reading::unavailable("GPU enumeration panicked inside the driver stack")
        }
    }
}

fn enumerate() -> Vec<GpuAdapter> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: wgpu::Backends::VULKAN
            | wgpu::Backends::GL
            | wgpu::Backends::METAL
            | wgpu::Backends::DX12,
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters
        .into_iter()
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
            }
        })
        .collect()
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

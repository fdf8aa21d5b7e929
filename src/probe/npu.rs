//! NPUs: devices of the kernel's compute-accelerator class (`/sys/class/accel`,
//! Documentation/accel/introduction.rst) and vendor nodes that live outside it (Qualcomm Hexagon
//! FastRPC, Google Coral, Hailo, Rockchip RKNPU).

use serde::{Deserialize, Serialize};

use crate::sysroot::{Reading, SysRoot};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Npu {
    /// Device node an application opens (`/dev/accel/accel0`, `/dev/fastrpc-cdsp`), or the sysfs
    /// directory when the NPU has no node of its own (rknpu's devfreq).
    pub node: String,
    /// Kernel driver (`intel_vpu`, `amdxdna`, `qaic`, `fastrpc`, `apex`, `hailo`, `rknpu`…).
    pub driver: Reading<String>,
    /// What the driver is, for people: "Intel NPU", "AMD XDNA NPU"…
    pub description: String,
    pub pci_vendor: Reading<Option<String>>,
    pub pci_device: Reading<Option<String>>,
}

/// Human names for accel drivers in mainline Linux (drivers/accel/*) and vendor trees.
fn describe(driver: &str) -> &'static str {
    match driver {
        "intel_vpu" => "Intel NPU",
        "amdxdna" => "AMD XDNA NPU",
        "qaic" => "Qualcomm Cloud AI accelerator",
        "habanalabs" => "Intel Gaudi (Habana) accelerator",
        "ethosu" => "Arm Ethos-U NPU",
        "rocket" => "Rockchip NPU (rocket)",
        "rknpu" => "Rockchip NPU (rknpu)",
        "fastrpc" => "Qualcomm Hexagon DSP/NPU (FastRPC)",
        "apex" => "Google Coral Edge TPU",
        "hailo" => "Hailo AI accelerator",
        _ => "compute accelerator",
    }
}

pub fn probe(root: &SysRoot) -> Vec<Npu> {
    let mut out = Vec::new();
    for name in root.list_prefixed("/sys/class/accel", "accel") {
        let dev = format!("/sys/class/accel/{name}/device");
        let driver = root.read_link_name(&format!("{dev}/driver"));
        let pci = |attr: &str| -> Reading<Option<String>> {
            // Platform (non-PCI) devices have no vendor/device attributes: not an error.
            let p = format!("{dev}/{attr}");
            if root.exists(&p) {
                root.read_str(&p).map(Some)
            } else {
                Reading::Value(None)
            }
        };
        out.push(Npu {
            node: format!("/dev/accel/{name}"),
            description: driver
                .value()
                .map_or("compute accelerator", |d| describe(d))
                .to_owned(),
            pci_vendor: pci("vendor"),
            pci_device: pci("device"),
            driver,
        });
    }
    let dev_nodes = root.list("/dev").into_value().unwrap_or_default();
    // FastRPC exposes one node per DSP; only the compute DSP (cdsp, cdsp1…) runs inference — adsp
    // is audio, sdsp sensors, and the -secure nodes are for trusted apps.
    let driver_of = |n: &str| {
        if n.starts_with("fastrpc-cdsp") && !n.contains("secure") {
            Some("fastrpc")
        } else if n.starts_with("apex_") {
            Some("apex")
        } else if n.starts_with("hailo") {
            Some("hailo")
        } else {
            None
        }
    };
    for node in &dev_nodes {
        if let Some(driver) = driver_of(node) {
            out.push(vendor_node(format!("/dev/{node}"), driver));
        }
    }
    // Rockchip's vendor rknpu driver shows up as a devfreq device named after the NPU block.
    for d in root.list_prefixed("/sys/class/devfreq", "") {
        if d.ends_with(".npu") || d.contains("rknpu") {
            out.push(vendor_node(format!("/sys/class/devfreq/{d}"), "rknpu"));
        }
    }
    out
}

fn vendor_node(node: String, driver: &str) -> Npu {
    Npu {
        node,
        driver: Reading::Value(driver.to_owned()),
        description: describe(driver).to_owned(),
        pci_vendor: Reading::Value(None),
        pci_device: Reading::Value(None),
    }
}

//! The device itself: hostname, OS, kernel, architecture, board/SoC model, Android or not.

use std::collections::BTreeMap;
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::sysroot::{Reading, SysRoot};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub hostname: Reading<String>,
    /// `linux` or `android`.
    pub os_family: String,
    pub os: Reading<String>,
    pub kernel: Reading<String>,
    pub arch: Reading<String>,
    pub board: Reading<String>,
    pub soc: Reading<String>,
}

pub fn probe(root: &SysRoot) -> Device {
    // macOS and Windows have no /proc: the OS's own figures (native.rs).
    if super::native::applies(root) {
        return super::native::device();
    }
    let android = AndroidProps::read(root);
    let os_family = if android.is_some() {
        "android"
    } else {
        "linux"
    };
    let os = match &android {
        Some(p) => p.get("ro.build.version.release").map_or_else(
            || Reading::unavailable("missing: ro.build.version.release"),
            |v| Reading::Value(format!("Android {v}")),
        ),
        None => os_release(root),
    };
    let board = android
        .as_ref()
        .and_then(|p| {
            let model = p.get("ro.product.model")?;
            Some(match p.get("ro.product.manufacturer") {
                Some(m) if !model.to_lowercase().starts_with(&m.to_lowercase()) => {
                    format!("{m} {model}")
                }
                _ => model.to_owned(),
            })
        })
        .map(Reading::Value)
        .unwrap_or_else(|| board_model(root));
    let soc = android
        .as_ref()
        .and_then(|p| {
            p.get("ro.soc.model")
                .or_else(|| p.get("ro.board.platform"))
                .map(|m| match p.get("ro.soc.manufacturer") {
                    Some(v) => format!("{v} {m}"),
                    None => m.to_owned(),
                })
        })
        .map(Reading::Value)
        .unwrap_or_else(|| device_tree_soc(root));

    Device {
        hostname: root.read_str("/proc/sys/kernel/hostname"),
        os_family: os_family.to_owned(),
        os,
        kernel: root.read_str("/proc/sys/kernel/osrelease"),
        arch: arch(root),
        board,
        soc,
    }
}

/// `PRETTY_NAME` from os-release(5).
fn os_release(root: &SysRoot) -> Reading<String> {
    root.read_raw("/etc/os-release")
        .or_else(|| root.read_raw("/usr/lib/os-release"))
        .and_then(|text| {
            let fields = key_values(&text, '=');
            match fields.get("PRETTY_NAME").or_else(|| fields.get("NAME")) {
                Some(v) => Reading::Value(v.clone()),
                None => Reading::unavailable("unparsable: /etc/os-release has no PRETTY_NAME"),
            }
        })
}

/// Machine architecture as uname(2) names it. `/proc/sys/kernel/arch` (Linux ≥ 5.19) works for
/// captured trees too; older kernels fall back to uname on the live device or to `/proc/cpuinfo`.
fn arch(root: &SysRoot) -> Reading<String> {
    let normalise = |a: String| match a.as_str() {
        "arm64" => "aarch64".to_owned(),
        "amd64" => "x86_64".to_owned(),
        _ => a,
    };
    root.read_str("/proc/sys/kernel/arch")
        .or_else(|| {
            if root.is_live() {
                crate::platform::kernel_machine()
            } else {
                Reading::unavailable("missing: /proc/sys/kernel/arch")
            }
        })
        .or_else(|| {
            root.read_raw("/proc/cpuinfo").and_then(|info| {
                let fields = super::cpu::first_block(&info);
                if fields.contains_key("flags") && fields.contains_key("vendor_id") {
                    Reading::Value("x86_64".to_owned())
                } else if fields.contains_key("CPU implementer") {
                    Reading::Value("aarch64".to_owned())
                } else {
                    Reading::unavailable("unparsable: /proc/cpuinfo names no known architecture")
                }
            })
        })
        .map(normalise)
}

/// Board model: the device tree's `model` (Arm boards), else DMI vendor + product (PCs).
fn board_model(root: &SysRoot) -> Reading<String> {
    root.read_str("/proc/device-tree/model")
        .or_else(|| root.read_str("/sys/firmware/devicetree/base/model"))
        .or_else(|| {
            let vendor = root.read_str("/sys/class/dmi/id/sys_vendor").into_value();
            let product = root.read_str("/sys/class/dmi/id/product_name");
            product.map(|p| match vendor {
                Some(v) if !p.starts_with(&v) => format!("{v} {p}"),
                _ => p,
            })
        })
        .or_else(|| Reading::unavailable("missing: /proc/device-tree/model and /sys/class/dmi/id"))
}

/// SoC from the device tree's `compatible` list: its last entry names the SoC (`brcm,bcm2712`).
fn device_tree_soc(root: &SysRoot) -> Reading<String> {
    root.read_raw("/proc/device-tree/compatible").and_then(|c| {
        match c.split('\0').rfind(|s| !s.is_empty()) {
            Some(s) => Reading::Value(s.to_owned()),
            None => Reading::unavailable("unparsable: /proc/device-tree/compatible is empty"),
        }
    })
}

/// Android system properties: `getprop` on the live device, or the `build.prop` files of a captured
/// tree. `None` when the device is not Android.
struct AndroidProps(BTreeMap<String, String>);

impl AndroidProps {
    fn read(root: &SysRoot) -> Option<Self> {
        let mut props = BTreeMap::new();
        for file in [
            "/system/build.prop",
            "/vendor/build.prop",
            "/odm/etc/build.prop",
        ] {
            if let Some(text) = root.read_raw(file).into_value() {
                props.extend(key_values(&text, '='));
            }
        }
        // Only Android has getprop; spawning it elsewhere would just walk PATH in vain.
        if root.is_live() && root.exists("/system/bin/getprop") {
            props.extend(getprop());
        }
        (!props.is_empty()).then_some(AndroidProps(props))
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// `getprop` prints `[key]: [value]` lines; absent on anything but Android.
fn getprop() -> BTreeMap<String, String> {
    let Ok(out) = Command::new("getprop").output() else {
        return BTreeMap::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once("]: [")?;
            Some((
                k.trim_start_matches('[').to_owned(),
                v.trim_end_matches(']').to_owned(),
            ))
        })
        .collect()
}

/// `KEY=value` lines (os-release(5), build.prop), with optional shell quoting and `#` comments.
fn key_values(text: &str, sep: char) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once(sep)?;
            let v = v.trim().trim_matches('"').trim_matches('\'');
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_values_lose_their_quotes() {
        let kv = key_values("NAME=\"Debian GNU/Linux\"\n# c\nID=debian\n", '=');
        assert_eq!(kv["NAME"], "Debian GNU/Linux");
        assert_eq!(kv["ID"], "debian");
    }
}

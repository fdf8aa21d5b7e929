//! Device classes: the rules in `profiles/device-classes.toml` (embedded in the binary, or a
//! user's file), validated on load with file:line errors, and the class a probed device falls in.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::Error;
use crate::sysroot::Reading;

/// The classes shipped with odai.
pub const EMBEDDED: &str = include_str!("../../profiles/device-classes.toml");
const EMBEDDED_NAME: &str = "profiles/device-classes.toml (built in)";

const KNOWN_OS: &[&str] = &["linux", "android", "macos", "windows"];
const KNOWN_ARCH: &[&str] = &["x86_64", "aarch64", "arm", "riscv64", "x86"];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassFile {
    schema_version: Spanned<u32>,
    #[serde(rename = "class", default)]
    classes: Vec<Spanned<ClassDef>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassDef {
    pub id: String,
    pub label: String,
    #[serde(default)]
    pub description: String,
    pub os: Option<Vec<String>>,
    pub arch: Option<Vec<String>>,
    pub min_ram_gib: Option<f64>,
    pub max_ram_gib: Option<f64>,
    pub min_cores: Option<u32>,
    pub max_cores: Option<u32>,
    pub npu: Option<bool>,
    pub battery: Option<bool>,
    pub board_contains: Option<Vec<String>>,
    /// The best triad bandwidth `probe --gpu-check` measured on a hardware adapter whose check
    /// passed, GB/s. Software rasterisers and failing adapters never count as a GPU path.
    pub min_gpu_bandwidth_gbs: Option<f64>,
    /// This class's share of the fleet a model ships to (0–1), for reports' fleet coverage.
    pub fleet_share: Option<f64>,
}

impl ClassDef {
    fn has_rules(&self) -> bool {
        self.os.is_some()
            || self.arch.is_some()
            || self.min_ram_gib.is_some()
            || self.max_ram_gib.is_some()
            || self.min_cores.is_some()
            || self.max_cores.is_some()
            || self.npu.is_some()
            || self.battery.is_some()
            || self.board_contains.is_some()
            || self.min_gpu_bandwidth_gbs.is_some()
    }
}

/// A validated set of classes and the file they came from.
#[derive(Clone, Debug)]
pub struct Classes {
    pub source: String,
    pub classes: Vec<ClassDef>,
}

/// The facts about a device that class rules look at.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub os_family: String,
    pub arch: Option<String>,
    pub ram_bytes: Option<u64>,
    pub cores: Option<u32>,
    pub npu: bool,
    pub battery: bool,
    pub board: Option<String>,
    /// What `--gpu-check` found per adapter; `None` when it did not run.
    pub gpus: Option<Vec<GpuFact>>,
}

/// One adapter as a class rule sees it.
#[derive(Clone, Debug)]
pub struct GpuFact {
    pub name: String,
    pub backend: String,
    pub software: bool,
    pub passed: bool,
    pub triad_gb_s: Option<f64>,
}

/// The class facts of the probed adapters: `None` unless the GPU check ran (a rule on GPU
/// bandwidth cannot be judged without it), `Some([])` when there is no adapter at all.
pub fn gpu_facts(gpus: &Reading<Vec<crate::probe::gpu::GpuAdapter>>) -> Option<Vec<GpuFact>> {
    let list = gpus.value()?;
    if !list.is_empty() && list.iter().all(|a| !a.check.is_value()) {
        return None;
    }
    Some(
        list.iter()
            .map(|a| GpuFact {
                name: a.name.clone(),
                backend: a.backend.clone(),
                software: a.is_software(),
                passed: a.passed_check().is_some(),
                triad_gb_s: a.passed_check().and_then(|c| c.triad_gb_s.value().copied()),
            })
            .collect(),
    )
}

/// The class a device fell into, and why.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Class {
    pub id: String,
    pub label: String,
    pub reasons: Vec<String>,
    /// The classes file that decided it.
    pub source: String,
}

impl Classes {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, Path::new(EMBEDDED_NAME))
            .expect("the built-in device classes are validated by a unit test")
    }

    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            file: path.to_owned(),
            problem: format!("cannot read device classes: {e}"),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, Error> {
        let at = |offset: usize, message: String| Error::config_at(path, text, offset, message);
        let file: ClassFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(offset, e.message().trim().to_owned())
        })?;
        if *file.schema_version.get_ref() != 1 {
            return Err(at(
                file.schema_version.span().start,
                format!(
                    "schema_version {} is not supported (this odai reads version 1)",
                    file.schema_version.get_ref()
                ),
            ));
        }
        if file.classes.is_empty() {
            return Err(Error::ConfigFile {
                file: path.to_owned(),
                problem: "no [[class]] tables: define at least one device class".into(),
            });
        }
        let mut seen = BTreeSet::new();
        let n = file.classes.len();
        for (i, c) in file.classes.iter().enumerate() {
            let off = c.span().start;
            let c = c.get_ref();
            let id_ok = !c.id.is_empty()
                && c.id
                    .chars()
                    .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
            if !id_ok {
                return Err(at(
                    off,
                    format!(
                        "class id {:?} must be lowercase letters, digits and '-'",
                        c.id
                    ),
                ));
            }
            if !seen.insert(c.id.clone()) {
                return Err(at(off, format!("class id {:?} is defined twice", c.id)));
            }
            let bad_list = |field: &str, values: &Option<Vec<String>>, known: &[&str]| {
                values
                    .iter()
                    .flatten()
                    .find(|v| !known.contains(&v.as_str()))
                    .map(|v| {
                        at(
                            off,
                            format!(
                                "class {:?}: {field} {v:?} is not one of {}",
                                c.id,
                                known.join(", ")
                            ),
                        )
                    })
            };
            if let Some(e) = bad_list("os", &c.os, KNOWN_OS) {
                return Err(e);
            }
            if let Some(e) = bad_list("arch", &c.arch, KNOWN_ARCH) {
                return Err(e);
            }
            if let Some(list) = &c.board_contains
                && (list.is_empty() || list.iter().any(|s| s.trim().is_empty()))
            {
                return Err(at(
                    off,
                    format!("class {:?}: board_contains needs non-empty strings", c.id),
                ));
            }
            for (name, v) in [
                ("min_ram_gib", c.min_ram_gib),
                ("max_ram_gib", c.max_ram_gib),
                ("min_gpu_bandwidth_gbs", c.min_gpu_bandwidth_gbs),
            ] {
                if let Some(v) = v
                    && !(v.is_finite() && v > 0.0)
                {
                    return Err(at(off, format!("class {:?}: {name} must be above 0", c.id)));
                }
            }
            if let Some(s) = c.fleet_share
                && !(s.is_finite() && (0.0..=1.0).contains(&s))
            {
                return Err(at(
                    off,
                    format!("class {:?}: fleet_share {s} must be between 0 and 1", c.id),
                ));
            }
            if let (Some(lo), Some(hi)) = (c.min_ram_gib, c.max_ram_gib)
                && lo > hi
            {
                return Err(at(
                    off,
                    format!(
                        "class {:?}: min_ram_gib {lo} is above max_ram_gib {hi}",
                        c.id
                    ),
                ));
            }
            if let (Some(lo), Some(hi)) = (c.min_cores, c.max_cores)
                && lo > hi
            {
                return Err(at(
                    off,
                    format!("class {:?}: min_cores {lo} is above max_cores {hi}", c.id),
                ));
            }
            if !c.has_rules() && i + 1 < n {
                return Err(at(
                    off,
                    format!(
                        "class {:?} has no rules, so it matches every device and the classes after it never would: move it last",
                        c.id
                    ),
                ));
            }
        }
        Ok(Classes {
            source: path.display().to_string(),
            classes: file.classes.into_iter().map(Spanned::into_inner).collect(),
        })
    }

    /// The first class whose rules all hold for `facts`.
    pub fn classify(&self, facts: &Facts) -> Reading<Class> {
        for def in &self.classes {
            if let Some(reasons) = matches(def, facts) {
                return Reading::Value(Class {
                    id: def.id.clone(),
                    label: def.label.clone(),
                    reasons,
                    source: self.source.clone(),
                });
            }
        }
        Reading::unavailable(format!(
            "no class in {} matched (add a catch-all class with no rules last)",
            self.source
        ))
    }
}

const GIB: f64 = (1u64 << 30) as f64;

/// The reasons every rule of `def` holds, or `None` when one does not (or cannot be judged).
fn matches(def: &ClassDef, f: &Facts) -> Option<Vec<String>> {
    let mut why = Vec::new();
    if let Some(os) = &def.os {
        os.contains(&f.os_family).then_some(())?;
        why.push(format!("OS is {}", f.os_family));
    }
    if let Some(arch) = &def.arch {
        let a = f.arch.as_ref()?;
        arch.contains(a).then_some(())?;
        why.push(format!("architecture is {a}"));
    }
    if def.min_ram_gib.is_some() || def.max_ram_gib.is_some() {
        let gib = f.ram_bytes? as f64 / GIB;
        if let Some(lo) = def.min_ram_gib {
            (gib >= lo).then_some(())?;
            why.push(format!("RAM {gib:.1} GiB >= {lo} GiB"));
        }
        if let Some(hi) = def.max_ram_gib {
            (gib <= hi).then_some(())?;
            why.push(format!("RAM {gib:.1} GiB <= {hi} GiB"));
        }
    }
    if def.min_cores.is_some() || def.max_cores.is_some() {
        let cores = f.cores?;
        if let Some(lo) = def.min_cores {
            (cores >= lo).then_some(())?;
            why.push(format!("{cores} cores >= {lo}"));
        }
        if let Some(hi) = def.max_cores {
            (cores <= hi).then_some(())?;
            why.push(format!("{cores} cores <= {hi}"));
        }
    }
    if let Some(want) = def.npu {
        (f.npu == want).then_some(())?;
        why.push(if want { "has an NPU" } else { "no NPU" }.to_owned());
    }
    if let Some(want) = def.battery {
        (f.battery == want).then_some(())?;
        why.push(if want { "has a battery" } else { "no battery" }.to_owned());
    }
    if let Some(needles) = &def.board_contains {
        let board = f.board.as_ref()?.to_lowercase();
        let hit = needles.iter().find(|n| board.contains(&n.to_lowercase()))?;
        why.push(format!("board matches {hit:?}"));
    }
    if let Some(min) = def.min_gpu_bandwidth_gbs {
        let (gpu, gbs) = f
            .gpus
            .as_ref()?
            .iter()
            .filter(|g| g.passed && !g.software)
            .filter_map(|g| Some((g, g.triad_gb_s?)))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        (gbs >= min).then_some(())?;
        why.push(format!(
            "GPU {} ({}) triad {gbs:.1} GB/s >= {min} GB/s",
            gpu.name, gpu.backend
        ));
    }
    if why.is_empty() {
        why.push("catch-all class (no rules)".to_owned());
    }
    Some(why)
}

/// Where the classes come from: `--classes FILE` / ODAI_CLASSES, or the built-in file.
pub fn load(path: Option<&PathBuf>) -> Result<Classes, Error> {
    match path {
        Some(p) => Classes::load(p),
        None => Ok(Classes::embedded()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Classes::parse(text, Path::new("c.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn built_in_classes_are_valid() {
        let c = Classes::parse(EMBEDDED, Path::new("x")).unwrap();
        assert!(c.classes.len() >= 7);
    }

    #[test]
    fn unknown_keys_are_named_with_their_line() {
        let e = err("schema_version = 1\n[[class]]\nid = \"a\"\nlabel = \"A\"\nram = 3\n");
        assert!(e.starts_with("c.toml:5:1: unknown field `ram`"), "{e}");
    }

    #[test]
    fn a_catch_all_before_other_classes_is_rejected() {
        let e = err(
            "schema_version = 1\n[[class]]\nid = \"any\"\nlabel = \"Any\"\n[[class]]\nid = \"b\"\nlabel = \"B\"\nnpu = true\n",
        );
        assert!(e.contains("class \"any\" has no rules"), "{e}");
        // The span of an array-of-tables entry starts at its `[[class]]` header.
        assert!(e.starts_with("c.toml:2:1: "), "{e}");
    }

    #[test]
    fn inverted_bounds_and_unknown_os_are_rejected() {
        let base = "schema_version = 1\n[[class]]\nid = \"a\"\nlabel = \"A\"\n";
        assert!(err(&format!("{base}min_ram_gib = 8.0\nmax_ram_gib = 4.0\n")).contains("is above"));
        assert!(err(&format!("{base}os = [\"ios\"]\n")).contains("os \"ios\" is not one of"));
    }

    #[test]
    fn first_matching_class_wins_with_reasons() {
        let c = Classes::embedded();
        let phone = Facts {
            os_family: "android".into(),
            ram_bytes: Some(3 << 30),
            ..Facts::default()
        };
        let class = c.classify(&phone).into_value().unwrap();
        assert_eq!(class.id, "low-end-phone");
        assert_eq!(class.reasons, ["OS is android", "RAM 3.0 GiB <= 4.5 GiB"]);
    }

    fn gpu(name: &str, software: bool, passed: bool, gbs: f64) -> GpuFact {
        GpuFact {
            name: name.into(),
            backend: "vulkan".into(),
            software,
            passed,
            triad_gb_s: passed.then_some(gbs),
        }
    }

    #[test]
    fn gpu_bandwidth_counts_only_hardware_adapters_whose_check_passed() {
        let c = Classes::parse(
            "schema_version = 1\n[[class]]\nid = \"gpu-box\"\nlabel = \"GPU box\"\nmin_gpu_bandwidth_gbs = 100.0\n[[class]]\nid = \"any\"\nlabel = \"Any\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let class = |gpus: Option<Vec<GpuFact>>| {
            c.classify(&Facts {
                gpus,
                ..Facts::default()
            })
            .into_value()
            .unwrap()
        };
        // Not checked: the rule cannot be judged, so the class does not match.
        assert_eq!(class(None).id, "any");
        assert_eq!(class(Some(vec![])).id, "any");
        // A software rasteriser and a failing adapter are not GPU paths, however fast.
        assert_eq!(
            class(Some(vec![gpu("llvmpipe", true, true, 500.0)])).id,
            "any"
        );
        assert_eq!(
            class(Some(vec![gpu("Broken", false, false, 0.0)])).id,
            "any"
        );
        assert_eq!(
            class(Some(vec![gpu("Slow iGPU", false, true, 40.0)])).id,
            "any"
        );
        let hit = class(Some(vec![
            gpu("llvmpipe", true, true, 900.0),
            gpu("Slow iGPU", false, true, 40.0),
            gpu("NVIDIA H100", false, true, 2500.0),
        ]));
        assert_eq!(hit.id, "gpu-box");
        assert_eq!(
            hit.reasons,
            ["GPU NVIDIA H100 (vulkan) triad 2500.0 GB/s >= 100 GB/s"]
        );
    }

    #[test]
    fn gpu_bandwidth_bound_must_be_positive() {
        let e = err(
            "schema_version = 1\n[[class]]\nid = \"a\"\nlabel = \"A\"\nmin_gpu_bandwidth_gbs = 0.0\n",
        );
        assert_eq!(
            e,
            "c.toml:2:1: class \"a\": min_gpu_bandwidth_gbs must be above 0"
        );
    }
}

//! Entry points for the cargo-fuzz targets in `fuzz/`: each hands arbitrary bytes to one parser
//! that reads input from outside odai — a model file, a TOML file a user wrote, a results
//! directory another machine produced, a worker's protocol lines, a device's `/proc` and `/sys`,
//! an endpoint's HTTP response. A parser may refuse its input with an error; it must never
//! panic, hang or allocate without bound. Not an API: the targets are its only users, and every
//! crash they find becomes a unit test beside the parser (`regression_fuzz_*`).

use std::path::Path;

/// A GGUF file: header, metadata and tensor table (odai's reader), then what odai derives from
/// them before loading a single weight (model facts, the architecture spec), and what candle
/// reads of a file odai's reader accepted (its header, the tokenizer built from it).
pub fn gguf(bytes: &[u8]) {
    let path = Path::new("fuzz.gguf");
    let Ok(g) = crate::engine::gguf::Gguf::parse(path, bytes) else {
        return;
    };
    let _ = g.architecture();
    let _ = crate::engine::gguf::ModelInfo::from_gguf(&g);
    let _ = crate::engine::arch::Spec::read(&g);
    if let Ok(content) = crate::engine::candle_read(path, &mut std::io::Cursor::new(bytes)) {
        let _ = crate::engine::text::tokenizer_from(&g, &content);
    }
}

/// The TOML files a user writes: a matrix, device classes, a workload profile, a farm inventory.
pub fn toml_files(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let _ = crate::matrix::spec::Matrix::parse(text, Path::new("fuzz.toml"));
    let _ = crate::probe::class::Classes::parse(text, Path::new("fuzz.toml"));
    let _ = crate::report::workload::Workload::parse(text, Path::new("fuzz.toml"));
    let _ = crate::farm::inventory::Farm::parse(text, Path::new("fuzz.toml"));
}

/// A results directory's files: results.jsonl lines, the manifest, a device's probe.
pub fn results(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
            let _ = crate::sysroot::from_contract_json::<crate::matrix::results::Record>(v);
        }
    }
    let _ = serde_json::from_slice::<crate::matrix::results::Manifest>(bytes);
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(bytes) {
        let _ = crate::sysroot::from_contract_json::<crate::probe::Probe>(v);
    }
    // The whole directory read back, as `odai report` and `compare` read it.
    RESULTS_DIR.with(|dir| {
        if std::fs::write(dir.path().join("results.jsonl"), bytes).is_ok()
            && let Ok(set) = crate::report::measurements::ResultsSet::load(dir.path())
        {
            let _ = crate::report::measurements::rows(&set);
        }
    });
}

thread_local! {
    static RESULTS_DIR: tempfile_dir::Dir = tempfile_dir::Dir::new("results");
    static PROBE_ROOT: tempfile_dir::Dir = tempfile_dir::Dir::new("probe");
}

/// The worker protocol, both directions: events a worker sends, requests a coordinator sends.
pub fn protocol(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        if let Ok(crate::protocol::Event::Hello {
            protocol,
            odai_version,
            ..
        }) = serde_json::from_str::<crate::protocol::Event>(line)
        {
            let _ = crate::protocol::check_hello(protocol, &odai_version);
        }
        let _ = serde_json::from_str::<crate::protocol::Request>(line);
    }
}

/// The files the probe reads, given the input's contents: the input is cut at 0xFF bytes (never
/// in UTF-8 text) into the files of [`PROBE_FILES`], in order, and the probe runs on that tree.
pub fn probe_tree(bytes: &[u8]) {
    PROBE_ROOT.with(|dir| {
        let base = dir.path();
        for (i, part) in bytes.split(|b| *b == 0xFF).enumerate() {
            let Some(rel) = PROBE_FILES.get(i) else {
                break;
            };
            let path = base.join(rel);
            if let Some(parent) = path.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::write(&path, part);
        }
        if let Ok(root) = crate::sysroot::SysRoot::at(base) {
            let p = crate::probe::run(&root, &crate::probe::Options::quick());
            let _ = crate::probe::text::render(&p);
            let _ = p.cpu.default_threads();
        }
    });
}

/// The files `probe_tree` writes, in input order: those whose contents parsers interpret.
pub const PROBE_FILES: &[&str] = &[
    "proc/cpuinfo",
    "proc/meminfo",
    "proc/self/cgroup",
    "proc/self/status",
    "proc/self/mountinfo",
    "proc/pressure/memory",
    "sys/devices/system/cpu/online",
    "sys/devices/system/cpu/cpu0/topology/core_cpus_list",
    "sys/fs/cgroup/memory.max",
    "sys/fs/cgroup/memory.current",
    "sys/fs/cgroup/cpu.max",
    "sys/fs/cgroup/cpuset.cpus.effective",
    "sys/class/thermal/thermal_zone0/type",
    "sys/class/thermal/thermal_zone0/temp",
    "sys/class/power_supply/BAT0/uevent",
    "sys/class/power_supply/BAT0/current_now",
    "sys/devices/system/cpu/cpufreq/policy0/scaling_cur_freq",
    "sys/class/powercap/intel-rapl:0/energy_uj",
    "etc/os-release",
    "proc/device-tree/compatible",
];

/// An endpoint's whole HTTP response to a streaming chat/completions request.
/// Also through the time-sliced connection on a loopback socket, in pieces.
pub fn sse(bytes: &[u8]) {
    let _ = crate::runtime::openai::fuzz_response(bytes);
    let _ = crate::runtime::openai::fuzz_connection(bytes);
}

/// A scratch directory per fuzzing thread, removed when the thread ends. (Not the `tempfile`
/// crate: it is a dev-dependency, and this module is in the library.)
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(what: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "odai-fuzz-{what}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&p);
            let _ = std::fs::create_dir_all(&p);
            Dir(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A tensor model file (.onnx protobuf, .tflite flatbuffer) as `odai model inspect` reads it:
/// both readers on the same bytes, and the TF Lite input-shape reader the runtime uses at load.
pub fn tensor_file(bytes: &[u8]) {
    let _ = crate::runtime::inspect::onnx(bytes);
    let _ = crate::runtime::inspect::tflite(bytes);
    let _ = crate::runtime::inspect::tflite_input_shapes(bytes);
    let _ = crate::runtime::tensor::parse_npy(bytes);
}

#[cfg(test)]
mod tests {
    /// Each entry point takes empty, text and binary input without panicking (the fuzz targets
    /// run them on far more; this keeps them compiling and sane in the ordinary test run).
    #[test]
    fn entry_points_survive_simple_inputs() {
        let inputs: [&[u8]; 4] = [
            b"",
            b"GGUF\x03\x00\x00\x00",
            b"[matrix]\nmodels=[1]\n",
            &[0xFF; 40],
        ];
        for i in inputs {
            super::gguf(i);
            super::toml_files(i);
            super::results(i);
            super::protocol(i);
            super::probe_tree(i);
            super::sse(i);
            super::tensor_file(i);
        }
    }
}

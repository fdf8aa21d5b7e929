//! llama.cpp linked in (the crate `llama-cpp-2`, feature `llama-cpp`): the runtime most on-device
//! LLM apps ship. CPU kernels are built with GGML_NATIVE off at the SIMD level `.cargo/config.toml`
//! sets (README: "llama.cpp's build"); GPU backends come with the features `llama-cpp-vulkan`,
//! `llama-cpp-cuda` and `llama-cpp-metal`, and `--gpu-layers` offloads layers to them.
//!
//! Timing is the cell's: this file only loads, prefills and decodes. llama.cpp's own `timings()`
//! are not used (they need perf counters on, and would measure llama.cpp by its own clock).

use std::ffi::{CStr, c_char, c_void};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::{KvCacheType, LlamaContextParams};

use crate::engine::kv::{KvType, KvTypes};
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

use super::batching::Batching;
use super::{BufferBytes, DeviceLayers, LoadOptions, Offload, Runtime, RuntimeInfo, Vocab};
use crate::error::Error;

/// llama.cpp's backend is process-wide and may be initialized once.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // SAFETY: the callback is a plain function that only copies the text it is given.
            unsafe { llama_cpp_sys_2::llama_log_set(Some(log_line), std::ptr::null_mut()) };
            LlamaBackend::init().map_err(|e| format!("llama.cpp backend: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// What llama.cpp's log said while a model loaded: kept off the terminal (a worker's stderr is
/// its error channel) but read for where the layers and weights went (src/llama-model.cpp,
/// `load_tensors`):
///
/// ```text
/// load_tensors: layer   0 assigned to device Vulkan0, is_swa = 0      (debug level)
/// load_tensors: offloaded 31/31 layers to GPU
/// load_tensors:      Vulkan0 model buffer size =    82.97 MiB
/// ```
#[derive(Default)]
struct LoadLog {
    /// Layers per device name, in the order llama.cpp first assigned one.
    layers: Vec<(String, u32)>,
    offloaded: Option<(u32, u32)>,
    buffers: Vec<(String, u64)>,
}

static LOAD_LOG: Mutex<Option<LoadLog>> = Mutex::new(None);

unsafe extern "C" fn log_line(
    _level: llama_cpp_sys_2::ggml_log_level,
    text: *const c_char,
    _: *mut c_void,
) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string valid for the call.
    let line = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let mut guard = LOAD_LOG.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(log) = guard.as_mut() {
        log.read(&line);
    }
}

impl LoadLog {
    fn read(&mut self, line: &str) {
        if let Some(dev) = parse_assigned(line) {
            match self.layers.iter_mut().find(|(d, _)| d == dev) {
                Some((_, n)) => *n += 1,
                None => self.layers.push((dev.to_owned(), 1)),
            }
        } else if let Some(split) = parse_offloaded(line) {
            self.offloaded = Some(split);
        } else if let Some(buf) = parse_buffer(line) {
            self.buffers.push(buf);
        }
    }
}

/// `load_tensors: layer  12 assigned to device Vulkan0, is_swa = 0` → `Vulkan0`.
fn parse_assigned(line: &str) -> Option<&str> {
    let rest = line.split("assigned to device ").nth(1)?;
    Some(rest.split(',').next()?.trim())
}

/// `offloaded 12/31 layers to GPU` → (12, 31).
fn parse_offloaded(line: &str) -> Option<(u32, u32)> {
    let rest = line.split("offloaded ").nth(1)?;
    let (frac, _) = rest.split_once(" layers")?;
    let (a, b) = frac.split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// `load_tensors:   CPU_Mapped model buffer size =    63.78 MiB` → (`CPU_Mapped`, bytes).
fn parse_buffer(line: &str) -> Option<(String, u64)> {
    let (head, size) = line.split_once(" model buffer size =")?;
    let name = head.rsplit(':').next()?.trim();
    let mib: f64 = size.trim().strip_suffix("MiB")?.trim().parse().ok()?;
    Some((name.to_owned(), (mib * 1048576.0).round() as u64))
}

fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        return "unknown".into();
    }
    // SAFETY: ggml returns static NUL-terminated strings.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The llama.cpp build: the binding crate's version and ggml's version and commit.
pub fn version() -> String {
    // SAFETY: plain getters of static strings.
    let (v, c) = unsafe {
        (
            llama_cpp_sys_2::ggml_version(),
            llama_cpp_sys_2::ggml_commit(),
        )
    };
    format!("llama-cpp-2 0.1.160, ggml {} ({})", cstr(v), cstr(c))
}

/// The CPU features llama.cpp's kernels were built with, from `llama_print_system_info`
/// (`CPU : SSE3 = 1 | AVX = 1 | AVX2 = 1 | …`): the enabled ones, lower-case.
fn cpu_features() -> String {
    // SAFETY: returns a static NUL-terminated string.
    let info = cstr(unsafe { llama_cpp_sys_2::llama_print_system_info() });
    let on: Vec<String> = info
        .split('|')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim().trim_start_matches("CPU :").trim();
            (v.trim() == "1").then(|| k.to_ascii_lowercase())
        })
        .collect();
    if on.is_empty() {
        "baseline".into()
    } else {
        on.join("+")
    }
}

/// The backends this llama.cpp was built with besides the CPU's (`Vulkan`, `CUDA`, `Metal`),
/// registered whether or not they found a device.
fn gpu_backends() -> Vec<String> {
    // SAFETY: ggml's registry getters; names are static NUL-terminated strings.
    unsafe {
        (0..llama_cpp_sys_2::ggml_backend_reg_count())
            .map(|i| {
                cstr(llama_cpp_sys_2::ggml_backend_reg_name(
                    llama_cpp_sys_2::ggml_backend_reg_get(i),
                ))
            })
            .filter(|n| n != "CPU")
            .collect()
    }
}

pub struct LlamaCpp {
    // Field order is drop order: the context and batch borrow the model, so they go first.
    ctx: LlamaContext<'static>,
    batch: LlamaBatch<'static>,
    model: Box<LlamaModel>,
    batch_cap: usize,
    pos: i32,
    /// Forward passes whose logits held NaN or +∞.
    non_finite: u64,
    threads: u32,
    offload: Option<Offload>,
    backend_desc: String,
    kv_types: KvTypes,
    batching: Batching,
}

/// llama.cpp's name for a KV cache type (`-ctk`/`-ctv` take the same names).
fn ggml_kv_type(t: KvType) -> KvCacheType {
    match t {
        KvType::F32 => KvCacheType::F32,
        KvType::F16 => KvCacheType::F16,
        KvType::Q8_0 => KvCacheType::Q8_0,
        KvType::Q4_0 => KvCacheType::Q4_0,
    }
}

impl LlamaCpp {
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<LlamaCpp, Error> {
        let bad = |problem: String| Error::Model {
            file: path.to_owned(),
            problem,
        };
        let backend = backend().map_err(bad)?;
        if !path.is_file() {
            return Err(bad("no such file".into()));
        }
        let threads = opts
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        let gpu_asked = opts.gpu_layers.is_some_and(|n| n > 0);
        let asked = opts.batching.resolved();
        // Mapped unless asked otherwise (llama.cpp's default; `--mmap 0` reads the file into
        // its buffers).
        let mut params = LlamaModelParams::default().with_use_mmap(asked.mmap);
        // llama.cpp's default puts every layer it can on a GPU it finds; odai offloads only what
        // --gpu-layers asks for, so a CPU figure is a CPU figure.
        params = params.with_n_gpu_layers(opts.gpu_layers.unwrap_or(0));
        if !gpu_asked {
            // No GPU device at all (an empty, NUL-terminated device list): with none asked,
            // llama.cpp would still create the GPU's context and buffers beside the CPU's.
            params = params
                .with_devices(&[])
                .map_err(|e| bad(format!("llama.cpp: {e}")))?;
        }
        *LOAD_LOG.lock().unwrap_or_else(|p| p.into_inner()) = Some(LoadLog::default());
        let loaded = LlamaModel::load_from_file(backend, path, &params);
        let log = LOAD_LOG
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default();
        let model = loaded.map_err(|e| bad(format!("llama.cpp cannot load it: {e}")))?;
        let model = Box::new(model);
        let n_ctx = opts.context.max(8);
        // f16 unless asked: llama.cpp's own default. A quantized V cache needs flash attention,
        // which llama.cpp's automatic policy turns on where the backend has it (else the context
        // fails, and says so).
        let kv_types = opts.kv_types.unwrap_or_default();
        let cparams = LlamaContextParams::default()
            // Op offload runs a CPU layer's big matrix multiplies on the GPU (llama.cpp's default
            // beside offloaded layers): kept with --gpu-layers, off for a CPU figure.
            .with_op_offload(gpu_asked)
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(asked.batch)
            .with_n_ubatch(asked.ubatch)
            .with_n_threads(threads as i32)
            .with_n_threads_batch(threads as i32)
            .with_type_k(ggml_kv_type(kv_types.k))
            .with_type_v(ggml_kv_type(kv_types.v));
        // SAFETY: the context borrows the boxed model, whose heap address is stable; `LlamaCpp`
        // drops the context (its first field) before the model (its last), so the borrow never
        // outlives the model.
        let model_ref: &'static LlamaModel = unsafe { &*(&*model as *const LlamaModel) };
        let ctx = model_ref.new_context(backend, cparams).map_err(|e| {
            bad(format!(
                "llama.cpp cannot create a context of {n_ctx} tokens: {e}"
            ))
        })?;
        // What llama.cpp made of the ask: it holds the batch to the context's length.
        let batching = Batching {
            batch: Some(ctx.n_batch()),
            ubatch: Some(ctx.n_ubatch()),
            mmap: Some(asked.mmap),
        };
        let batch_cap = ctx.n_batch().max(1) as usize;
        let found = llama_cpp_2::list_llama_ggml_backend_devices();
        let label = |d: &llama_cpp_2::LlamaBackendDevice| {
            if d.description.is_empty() || d.description == d.name {
                d.name.clone()
            } else {
                format!("{} ({})", d.name, d.description)
            }
        };
        let devices: Vec<String> = found.iter().map(label).collect();
        let is_cpu = |name: &str| {
            found
                .iter()
                .find(|d| d.name == name)
                .map_or(name == "CPU", |d| {
                    matches!(d.device_type, llama_cpp_2::LlamaBackendDeviceType::Cpu)
                })
        };
        let split: Vec<DeviceLayers> = log
            .layers
            .iter()
            .map(|(name, n)| DeviceLayers {
                device: found
                    .iter()
                    .find(|d| &d.name == name)
                    .map_or_else(|| name.clone(), label),
                cpu: is_cpu(name),
                layers: *n,
            })
            .collect();
        let layers = model.n_layer() + 1;
        let has_gpu_device = found.iter().any(|d| !is_cpu(&d.name));
        // The split as llama.cpp assigned it, layer by layer; else its summary line; else, with
        // no GPU device at all, nothing could be offloaded. Otherwise it is left out, not guessed.
        let on_gpu = if split.is_empty() {
            log.offloaded
                .map(|(n, _)| n)
                .or_else(|| (!has_gpu_device || !gpu_asked).then_some(0))
        } else {
            Some(split.iter().filter(|d| !d.cpu).map(|d| d.layers).sum())
        };
        let fallback = (gpu_asked && on_gpu == Some(0)).then(|| {
            if gpu_backends().is_empty() {
                "this llama.cpp has no GPU backend: build odai with --features llama-cpp-vulkan, \
                 llama-cpp-cuda or llama-cpp-metal"
                    .to_owned()
            } else if !has_gpu_device {
                format!(
                    "llama.cpp's GPU backend found no GPU device{}",
                    if cfg!(feature = "llama-cpp-vulkan") {
                        " (its Vulkan backend leaves out software devices such as lavapipe \
                         unless GGML_VK_VISIBLE_DEVICES names them)"
                    } else {
                        ""
                    }
                )
            } else {
                "llama.cpp kept every layer on the CPU".to_owned()
            }
        });
        let offload = opts
            .gpu_layers
            .zip(on_gpu)
            .map(|(requested, on_gpu)| Offload {
                requested,
                on_gpu,
                layers,
                devices: devices.clone(),
                split,
                weights: log
                    .buffers
                    .iter()
                    .map(|(buffer, bytes)| BufferBytes {
                        buffer: buffer.clone(),
                        bytes: *bytes,
                    })
                    .collect(),
                fallback,
            });
        // The GPU devices layers went to (all of them when only the summary line told).
        let gpus: Vec<String> = match &offload {
            Some(o) if o.on_gpu > 0 && !o.split.is_empty() => o
                .split
                .iter()
                .filter(|d| !d.cpu)
                .map(|d| d.device.clone())
                .collect(),
            Some(o) if o.on_gpu > 0 => found
                .iter()
                .filter(|d| !is_cpu(&d.name))
                .map(label)
                .collect(),
            _ => Vec::new(),
        };
        let backend_desc = if gpus.is_empty() {
            format!("cpu {}", cpu_features())
        } else {
            format!("gpu {} + cpu {}", gpus.join(", "), cpu_features())
        };
        Ok(LlamaCpp {
            ctx,
            batch: LlamaBatch::new(batch_cap, 1),
            model,
            batch_cap,
            pos: 0,
            non_finite: 0,
            threads,
            offload,
            backend_desc,
            kv_types,
            batching,
        })
    }

    /// Runs `tokens` from the current position; the greedy pick from the last one's logits.
    fn run(&mut self, tokens: &[u32]) -> Result<u32, String> {
        let mut last = 0u32;
        for piece in tokens.chunks(self.batch_cap) {
            self.batch.clear();
            for (i, &t) in piece.iter().enumerate() {
                let is_last = i + 1 == piece.len();
                self.batch
                    .add(LlamaToken(t as i32), self.pos + i as i32, &[0], is_last)
                    .map_err(|e| e.to_string())?;
            }
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| format!("llama.cpp decode: {e}"))?;
            self.pos += piece.len() as i32;
            let logits = self.ctx.get_logits_ith(self.batch.n_tokens() - 1);
            last = super::greedy(logits, &mut self.non_finite);
        }
        Ok(last)
    }
}

impl Runtime for LlamaCpp {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            runtime: "llama.cpp".into(),
            runtime_version: version(),
            backend: self.backend_desc.clone(),
        }
    }

    fn vocab(&self) -> Vocab {
        let bos = self.model.vocab().bos().0;
        Vocab {
            size: self.model.n_vocab().max(0) as u64,
            bos: (bos >= 0).then_some(bos as u64),
            context_length: Some(u64::from(self.model.n_ctx_train())),
        }
    }

    fn kv_types(&self) -> Option<KvTypes> {
        Some(self.kv_types)
    }

    fn batching(&self) -> Option<Batching> {
        Some(self.batching)
    }

    fn threads(&self) -> u32 {
        self.threads
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<u32, String> {
        self.ctx.clear_kv_cache();
        self.pos = 0;
        self.run(tokens)
    }

    fn decode(&mut self, token: u32) -> Result<u32, String> {
        self.run(&[token])
    }

    fn extend(&mut self, tokens: &[u32]) -> Result<u32, String> {
        self.run(tokens)
    }

    fn truncate(&mut self, pos: usize) -> Result<(), String> {
        let p0 = u32::try_from(pos).map_err(|e| e.to_string())?;
        // llama_memory_seq_rm of sequence 0 from `pos` to the end.
        let removed = self
            .ctx
            .clear_kv_cache_seq(Some(0), Some(p0), None)
            .map_err(|e| e.to_string())?;
        if !removed {
            return Err("llama.cpp could not remove the positions".into());
        }
        self.pos = pos as i32;
        Ok(())
    }

    fn logits(&mut self, tokens: &[u32], from: usize) -> Result<Vec<f32>, String> {
        if from >= tokens.len() {
            return Err(format!(
                "no logits asked for: row {from} of {}",
                tokens.len()
            ));
        }
        self.ctx.clear_kv_cache();
        self.pos = 0;
        let vocab = self.model.n_vocab().max(0) as usize;
        let mut out = Vec::with_capacity((tokens.len() - from) * vocab);
        for (c, piece) in tokens.chunks(self.batch_cap).enumerate() {
            let start = c * self.batch_cap;
            self.batch.clear();
            for (i, &t) in piece.iter().enumerate() {
                // Logits only where they are scored: llama.cpp's output buffer is sized by them.
                self.batch
                    .add(
                        LlamaToken(t as i32),
                        self.pos + i as i32,
                        &[0],
                        start + i >= from,
                    )
                    .map_err(|e| e.to_string())?;
            }
            self.ctx
                .decode(&mut self.batch)
                .map_err(|e| format!("llama.cpp decode: {e}"))?;
            self.pos += piece.len() as i32;
            for i in (0..piece.len()).filter(|i| start + i >= from) {
                out.extend_from_slice(self.ctx.get_logits_ith(i as i32));
            }
        }
        Ok(out)
    }

    fn non_finite_steps(&self) -> u64 {
        self.non_finite
    }

    fn offload(&self) -> Option<Offload> {
        self.offload.clone()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_layer_assignment_and_weight_buffers_are_read_from_llama_cpp_s_log() {
        let mut log = super::LoadLog::default();
        for line in [
            "load_tensors: layer   0 assigned to device CPU, is_swa = 0\n",
            "load_tensors: layer   1 assigned to device Vulkan0, is_swa = 0\n",
            "load_tensors: layer   2 assigned to device Vulkan0, is_swa = 1\n",
            "load_tensors: offloaded 2/3 layers to GPU\n",
            "load_tensors:   CPU_Mapped model buffer size =    63.78 MiB\n",
            "load_tensors:      Vulkan0 model buffer size =     1.50 MiB\n",
            "llama_context: n_ctx = 512\n",
        ] {
            log.read(line);
        }
        assert_eq!(log.layers, [("CPU".into(), 1), ("Vulkan0".into(), 2)]);
        assert_eq!(log.offloaded, Some((2, 3)));
        assert_eq!(
            log.buffers,
            [
                ("CPU_Mapped".into(), 66_878_177),
                ("Vulkan0".into(), 1_572_864)
            ]
        );
    }

    #[test]
    fn the_offload_split_is_read_from_llama_cpp_s_log_line() {
        assert_eq!(
            super::parse_offloaded("load_tensors: offloaded 12/31 layers to GPU\n"),
            Some((12, 31))
        );
        assert_eq!(
            super::parse_offloaded("load_tensors: CPU_Mapped model buffer"),
            None
        );
    }
}

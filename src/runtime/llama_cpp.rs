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
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::token::LlamaToken;

use super::{LoadOptions, Offload, Runtime, RuntimeInfo, Vocab};
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

/// llama.cpp's log, kept off the terminal (a worker's stderr is its error channel) but read for
/// the one line that says where layers went: `load_tensors: offloaded 31/31 layers to GPU`.
static OFFLOADED: Mutex<Option<(u32, u32)>> = Mutex::new(None);

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
    if let Some(split) = parse_offloaded(&line) {
        *OFFLOADED.lock().unwrap_or_else(|p| p.into_inner()) = Some(split);
    }
}

/// `offloaded 12/31 layers to GPU` → (12, 31).
fn parse_offloaded(line: &str) -> Option<(u32, u32)> {
    let rest = line.split("offloaded ").nth(1)?;
    let (frac, _) = rest.split_once(" layers")?;
    let (a, b) = frac.split_once('/')?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
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

pub struct LlamaCpp {
    // Field order is drop order: the context and batch borrow the model, so they go first.
    ctx: LlamaContext<'static>,
    batch: LlamaBatch<'static>,
    model: Box<LlamaModel>,
    batch_cap: usize,
    pos: i32,
    threads: u32,
    offload: Option<Offload>,
    backend_desc: String,
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
        *OFFLOADED.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut params = LlamaModelParams::default();
        // llama.cpp's default puts every layer it can on a GPU it finds; odai offloads only what
        // --gpu-layers asks for, so a CPU figure is a CPU figure.
        params = params.with_n_gpu_layers(opts.gpu_layers.unwrap_or(0));
        let model = LlamaModel::load_from_file(backend, path, &params)
            .map_err(|e| bad(format!("llama.cpp cannot load it: {e}")))?;
        let model = Box::new(model);
        let batch_cap = opts.batch.max(1) as usize;
        let n_ctx = opts.context.max(8);
        let cparams = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(n_ctx))
            .with_n_batch(batch_cap as u32)
            .with_n_ubatch(batch_cap as u32)
            .with_n_threads(threads as i32)
            .with_n_threads_batch(threads as i32);
        // SAFETY: the context borrows the boxed model, whose heap address is stable; `LlamaCpp`
        // drops the context (its first field) before the model (its last), so the borrow never
        // outlives the model.
        let model_ref: &'static LlamaModel = unsafe { &*(&*model as *const LlamaModel) };
        let ctx = model_ref.new_context(backend, cparams).map_err(|e| {
            bad(format!(
                "llama.cpp cannot create a context of {n_ctx} tokens: {e}"
            ))
        })?;
        let devices: Vec<String> = llama_cpp_2::list_llama_ggml_backend_devices()
            .into_iter()
            .map(|d| {
                if d.description.is_empty() || d.description == d.name {
                    d.name
                } else {
                    format!("{} ({})", d.name, d.description)
                }
            })
            .collect();
        let layers = model.n_layer();
        // The split as llama.cpp's log said it. Without that line it is known only when there
        // is no GPU device at all (then nothing can be offloaded); otherwise it is left out
        // rather than guessed.
        let has_gpu = devices.iter().any(|d| !d.starts_with("CPU"));
        let logged = *OFFLOADED.lock().unwrap_or_else(|p| p.into_inner());
        let split = logged.or((!has_gpu).then_some((0, layers + 1)));
        let offload = opts
            .gpu_layers
            .zip(split)
            .map(|(requested, (on_gpu, total))| Offload {
                requested,
                on_gpu,
                layers: total,
                devices: devices.clone(),
            });
        let gpu = offload.as_ref().is_some_and(|o| o.on_gpu > 0);
        let backend_desc = if gpu {
            format!(
                "gpu {} + cpu {}",
                devices
                    .iter()
                    .filter(|d| !d.starts_with("CPU"))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
                cpu_features()
            )
        } else {
            format!("cpu {}", cpu_features())
        };
        Ok(LlamaCpp {
            ctx,
            batch: LlamaBatch::new(batch_cap, 1),
            model,
            batch_cap,
            pos: 0,
            threads,
            offload,
            backend_desc,
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
            last = crate::engine::argmax(logits);
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

    fn offload(&self) -> Option<Offload> {
        self.offload.clone()
    }
}

#[cfg(test)]
mod tests {
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

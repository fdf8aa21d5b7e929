//! Runtimes: what runs a model. A team ships a runtime, not a model file, and the same model runs
//! very differently on odai's own engine, candle, llama.cpp or a hosted endpoint, so the runtime is
//! an axis of every cell and a column of every result.
//!
//! A runtime only loads, prefills, decodes and says what it is ([`Runtime`]); timing, statistics,
//! telemetry and memory accounting are the cell's (`bench::worker`), shared by every runtime, so
//! two runtimes' figures are measured the same way. An endpoint ([`openai`]) runs whole requests
//! instead of token steps: it reports arrival times, and the same shared code turns them into a
//! repetition's figures.

pub mod batching;
pub mod candle;
pub mod inspect;
#[cfg(feature = "llama-cpp")]
pub mod llama_cpp;
pub mod memory;
pub mod odai;
pub mod onnxruntime;
pub mod openai;
pub mod tensor;
pub mod tflite;

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Which runtime a cell runs on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RuntimeKind {
    /// odai's engine where it runs the model (llama on x86-64 AVX2), else candle: the choice odai
    /// made before runtimes were an axis.
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "odai")]
    Odai,
    #[serde(rename = "candle")]
    Candle,
    #[serde(rename = "llama.cpp")]
    LlamaCpp,
    /// Any OpenAI-compatible HTTP endpoint (llama-server, ollama, vLLM, a hosted API).
    #[serde(rename = "openai")]
    Openai,
    /// ONNX Runtime, for `.onnx` tensor models (wake word, VAD, classifiers).
    #[serde(rename = "onnxruntime")]
    Onnxruntime,
    /// TensorFlow Lite, for `.tflite` tensor models.
    #[serde(rename = "tflite")]
    Tflite,
}

/// Every name `--runtime` and matrix files accept, in the order `--help` lists them.
pub const NAMES: &[&str] = &[
    "auto",
    "odai",
    "candle",
    "llama.cpp",
    "openai",
    "onnxruntime",
    "tflite",
];

impl RuntimeKind {
    pub fn name(self) -> &'static str {
        match self {
            RuntimeKind::Auto => "auto",
            RuntimeKind::Odai => "odai",
            RuntimeKind::Candle => "candle",
            RuntimeKind::LlamaCpp => "llama.cpp",
            RuntimeKind::Openai => "openai",
            RuntimeKind::Onnxruntime => "onnxruntime",
            RuntimeKind::Tflite => "tflite",
        }
    }

    /// Whether its cells can ask for KV cache types (`-ctk`/`-ctv`, `kv_cache`): odai's engine
    /// (and `auto`, which picks it where it runs the model) and llama.cpp. candle's cache is
    /// f32 only; endpoints and tensor runtimes hold none here.
    pub fn types_kv_cache(self) -> bool {
        matches!(
            self,
            RuntimeKind::Auto | RuntimeKind::Odai | RuntimeKind::LlamaCpp
        )
    }

    /// Whether its cells can ask for a prompt batch and micro-batch (`-b`/`-ub`, `batch`,
    /// `ubatch`): every runtime that runs a language model in this process. An endpoint's are
    /// the server's; tensor runtimes take no prompt.
    pub fn batches(self) -> bool {
        matches!(
            self,
            RuntimeKind::Auto | RuntimeKind::Odai | RuntimeKind::Candle | RuntimeKind::LlamaCpp
        )
    }

    /// Whether its cells can choose between mapping the weights and reading them (`--mmap`,
    /// `mmap`): odai's engine (and `auto`) and llama.cpp. candle always reads them.
    pub fn maps_weights(self) -> bool {
        self.types_kv_cache()
    }

    /// Parses a runtime name; `llama-cpp` and `llamacpp` are accepted for `llama.cpp`.
    pub fn parse(s: &str) -> Result<RuntimeKind, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(RuntimeKind::Auto),
            "odai" => Ok(RuntimeKind::Odai),
            "candle" => Ok(RuntimeKind::Candle),
            "llama.cpp" | "llama-cpp" | "llamacpp" => Ok(RuntimeKind::LlamaCpp),
            "openai" => Ok(RuntimeKind::Openai),
            "onnxruntime" | "onnx" | "ort" => Ok(RuntimeKind::Onnxruntime),
            "tflite" | "tensorflow-lite" | "litert" => Ok(RuntimeKind::Tflite),
            other => Err(format!(
                "unknown runtime {other:?}: choose one of {}",
                NAMES.join(", ")
            )),
        }
    }

    /// The runtime `ODAI_ENGINE` asks for (the older name of `--runtime`): `candle` or `odai`.
    pub fn from_env() -> RuntimeKind {
        match std::env::var(crate::engine::ENGINE_ENV) {
            Ok(v) if v.eq_ignore_ascii_case("candle") => RuntimeKind::Candle,
            Ok(v) if v.eq_ignore_ascii_case("odai") => RuntimeKind::Odai,
            _ => RuntimeKind::Auto,
        }
    }

    /// Whether this binary can run it: llama.cpp only with the `llama-cpp` feature.
    pub fn available(self) -> Result<(), Error> {
        if self == RuntimeKind::LlamaCpp && !cfg!(feature = "llama-cpp") {
            return Err(Error::Invalid {
                flag: "--runtime llama.cpp".into(),
                problem: NOT_BUILT_IN.into(),
            });
        }
        Ok(())
    }
}

/// What a binary built without the `llama-cpp` feature says when asked for llama.cpp.
pub const NOT_BUILT_IN: &str = "this odai was built without llama.cpp; build it in with \
`cargo install --path . --features llama-cpp` (needs cmake and libclang: apt-get install cmake libclang-dev)";

impl std::fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What ran a repetition, as every result row records it (flattened into reps and provenance:
/// `runtime`, `runtime_version`, `backend`). Results written before runtimes were recorded read
/// back as `unrecorded`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    /// `odai`, `candle`, `llama.cpp` or `openai` (never `auto`: the runtime that actually ran).
    #[serde(default = "unrecorded")]
    pub runtime: String,
    /// The runtime's own version: odai's, candle's crate version, llama.cpp's build, or what the
    /// endpoint's server says it is.
    #[serde(default = "unrecorded")]
    pub runtime_version: String,
    /// How it ran: the kernels' SIMD path, the compute backend and device, or the endpoint.
    #[serde(default = "unrecorded")]
    pub backend: String,
}

fn unrecorded() -> String {
    "unrecorded".into()
}

impl Default for RuntimeInfo {
    fn default() -> Self {
        RuntimeInfo {
            runtime: unrecorded(),
            runtime_version: unrecorded(),
            backend: unrecorded(),
        }
    }
}

/// What a runtime knows of the model it loaded.
#[derive(Clone, Debug, PartialEq)]
pub struct Vocab {
    pub size: u64,
    pub bos: Option<u64>,
    pub context_length: Option<u64>,
}

/// How to load a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Threads for the kernels (the process's pool is sized from it too); `None`: the runtime's
    /// default.
    pub threads: Option<u32>,
    /// Tokens of context the run needs (prompt + generated).
    pub context: u32,
    /// Layers to offload to a GPU (llama.cpp); `None`: none.
    pub gpu_layers: Option<u32>,
    /// The runtime's shared library (ONNX Runtime, TF Lite: `--runtime-lib`); `None`: the
    /// runtime's environment variable, else the loader's search path.
    pub library: Option<std::path::PathBuf>,
    /// ONNX Runtime's execution provider or TF Lite's delegate (`--provider`); `None`: the
    /// runtime's default (`cpu`, `default`).
    pub provider: Option<String>,
    /// Idle pool threads sleep instead of spinning (ONNX Runtime's intra-op spinning off): for
    /// paced runs, where spinning would burn the idle time between frames.
    pub no_spin: bool,
    /// The KV cache's key and value types (`-ctk`/`-ctv`); `None`: the runtime's default (f16
    /// on odai's engine and llama.cpp; candle's, f32, is its only one).
    pub kv_types: Option<crate::engine::kv::KvTypes>,
    /// Prompt batch, micro-batch and mapping (`-b`, `-ub`, `--mmap`); each `None`: the
    /// runtime's default ([`batching`]).
    pub batching: batching::Batching,
    /// Input shapes set before the first allocation (`--shape`), by input name (TF Lite sizes
    /// its tensors once, at load).
    pub shapes: Vec<(String, Vec<usize>)>,
}

/// A runtime with a model loaded, run token by token (greedy). Positions are the runtime's own:
/// `prefill` starts a sequence at position 0, each `decode` appends one token.
pub trait Runtime {
    fn info(&self) -> RuntimeInfo;
    /// The vocabulary; a tensor model has none (size 0, which `bench` never uses for it).
    fn vocab(&self) -> Vocab {
        Vocab {
            size: 0,
            bos: None,
            context_length: None,
        }
    }
    /// Threads its kernels run on.
    fn threads(&self) -> u32;
    /// Forgets the sequence (KV cache) and runs `tokens` from position 0; returns the greedy next
    /// token.
    fn prefill(&mut self, _tokens: &[u32]) -> Result<u32, String> {
        Err(NOT_A_TOKEN_MODEL.into())
    }
    /// Runs one token at the next position; returns the greedy next token.
    fn decode(&mut self, _token: u32) -> Result<u32, String> {
        Err(NOT_A_TOKEN_MODEL.into())
    }
    /// Runs `tokens` at the next positions, keeping what the sequence holds (a prompt at a
    /// depth: llama-bench's `ppP @ dD`); returns the greedy next token.
    fn extend(&mut self, _tokens: &[u32]) -> Result<u32, String> {
        Err(format!(
            "{} cannot add a prompt to a sequence it holds (depth needs odai, candle or llama.cpp)",
            self.info().runtime
        ))
    }
    /// Forgets the sequence's positions from `pos` on, so the next token goes there (a prompt
    /// measured again at the same depth without filling the depth again). `Err` where the
    /// runtime cannot: the caller fills the depth again instead.
    fn truncate(&mut self, _pos: usize) -> Result<(), String> {
        Err(format!(
            "{} cannot shorten its sequence",
            self.info().runtime
        ))
    }
    /// Forgets the sequence and runs `tokens` from position 0; returns the logits of positions
    /// `from..tokens.len()` (each one's distribution over the token after it), `vocab().size`
    /// floats each, row-major: what perplexity and KL divergence score (`odai quality`).
    fn logits(&mut self, _tokens: &[u32], _from: usize) -> Result<Vec<f32>, String> {
        Err(format!(
            "{} gives no logits: perplexity and KL divergence need odai, candle or llama.cpp",
            self.info().runtime
        ))
    }
    /// Layers the runtime put on a GPU and where, when it can offload (llama.cpp).
    fn offload(&self) -> Option<Offload> {
        None
    }
    /// The KV cache's element types, where the runtime holds one in this process (odai,
    /// candle, llama.cpp); `None` for an endpoint or a tensor model.
    fn kv_types(&self) -> Option<crate::engine::kv::KvTypes> {
        None
    }
    /// The batch, micro-batch and mapping it runs with (every field set), where it runs a
    /// language model in this process; `None` for an endpoint or a tensor model.
    fn batching(&self) -> Option<batching::Batching> {
        None
    }
    /// Forward passes so far whose logits held NaN or +∞ (see [`greedy`]).
    fn non_finite_steps(&self) -> u64 {
        0
    }
    /// A tensor model's inputs and outputs (ONNX Runtime, TF Lite); `None` for a language model.
    fn signature(&self) -> Option<&tensor::Signature> {
        None
    }
    /// Runs one inference of a tensor model on `inputs` (in the signature's order); returns the
    /// outputs in theirs.
    fn infer(&mut self, _inputs: &[tensor::Tensor]) -> Result<Vec<tensor::Tensor>, String> {
        Err("this runtime runs language models token by token, not tensor models".into())
    }
}

/// The greedy pick from `logits`, counting in `bad` a forward pass whose logits hold NaN or +∞:
/// the sign of weights that hold NaN or overflow (a damaged or mis-converted file), whose run
/// still takes time but whose pick means nothing. −∞ is not counted: it is a masked token. The
/// scan is one pass over the vocabulary, against a forward pass over every weight.
pub(crate) fn greedy(logits: &[f32], bad: &mut u64) -> u32 {
    if logits.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
        *bad += 1;
    }
    crate::engine::argmax(logits)
}

/// What a tensor runtime says when asked to prefill or decode.
pub const NOT_A_TOKEN_MODEL: &str = "a tensor model (ONNX, TF Lite) has no tokens to prefill or decode: benchmark it with --mode burst or stream";

/// Whether `path` is a tensor model file by its extension (`.onnx`, `.tflite`), and the runtime
/// that runs it.
pub fn tensor_runtime_for(path: &Path) -> Option<RuntimeKind> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "onnx" | "ort" => Some(RuntimeKind::Onnxruntime),
        "tflite" => Some(RuntimeKind::Tflite),
        _ => None,
    }
}

/// Where a runtime's layers ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offload {
    /// Layers asked for with `--gpu-layers`.
    pub requested: u32,
    /// Layers on a GPU device.
    pub on_gpu: u32,
    /// Offloadable layers: the repeating layers and the output layer (llama.cpp keeps the input
    /// layer, the token embeddings, on the CPU).
    pub layers: u32,
    /// The devices the runtime saw (`CPU`, `Vulkan0 (llvmpipe)`, `CUDA0 (NVIDIA H200)`…).
    pub devices: Vec<String>,
    /// Layers per device as the runtime assigned them, in its order.
    #[serde(default)]
    pub split: Vec<DeviceLayers>,
    /// Model weights per buffer as the runtime allocated them (`Vulkan0`, `CPU_Mapped`…).
    #[serde(default)]
    pub weights: Vec<BufferBytes>,
    /// Why no layer ran on a GPU though some were asked: no GPU backend built in, or none of
    /// its devices usable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
}

impl Offload {
    /// Asked for GPU layers and got none: the run measured the CPU.
    pub fn fell_back(&self) -> bool {
        self.requested > 0 && self.on_gpu == 0
    }

    /// `31/31 on Vulkan0 (llvmpipe …)`, `0/31 on GPU (fell back to the CPU)`: the split in a
    /// table cell.
    pub fn label(&self) -> String {
        if self.fell_back() {
            return format!("0/{} on GPU (fell back to the CPU)", self.layers);
        }
        let gpu: Vec<String> = self
            .split
            .iter()
            .filter(|d| !d.cpu)
            .map(|d| format!("{} {}", d.layers, d.device))
            .collect();
        if gpu.is_empty() {
            format!("{}/{} on GPU", self.on_gpu, self.layers)
        } else {
            format!("{}/{} on GPU: {}", self.on_gpu, self.layers, gpu.join(", "))
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceLayers {
    pub device: String,
    /// The host CPU rather than a GPU.
    pub cpu: bool,
    pub layers: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BufferBytes {
    pub buffer: String,
    pub bytes: u64,
}

/// Loads `path` on the runtime `kind` (local runtimes only: an endpoint has no file).
#[cfg_attr(not(feature = "llama-cpp"), allow(unused_variables))]
pub fn load(kind: RuntimeKind, path: &Path, opts: &LoadOptions) -> Result<Box<dyn Runtime>, Error> {
    kind.available()?;
    match kind {
        RuntimeKind::Auto if tensor_runtime_for(path).is_some() => {
            load(tensor_runtime_for(path).unwrap(), path, opts)
        }
        RuntimeKind::Onnxruntime => Ok(Box::new(onnxruntime::OrtRuntime::load(path, opts)?)),
        RuntimeKind::Tflite => Ok(Box::new(tflite::TfliteRuntime::load(path, opts)?)),
        RuntimeKind::Auto => match odai::EngineRuntime::load_own(path, &opts.batching)? {
            Ok(m) => Ok(Box::new(m.with_kv_types(path, opts.kv_types)?)),
            Err(why) => Ok(Box::new(
                candle::load_because(path, why, &opts.batching)?
                    .with_kv_types(path, opts.kv_types)?,
            )),
        },
        RuntimeKind::Odai => match odai::EngineRuntime::load_own(path, &opts.batching)? {
            Ok(m) => Ok(Box::new(m.with_kv_types(path, opts.kv_types)?)),
            Err(why) => Err(Error::Model {
                file: path.to_owned(),
                problem: format!(
                    "odai's engine cannot run it: {why} (--runtime candle or auto runs it on candle)"
                ),
            }),
        },
        RuntimeKind::Candle => Ok(Box::new(
            candle::load(path, &opts.batching)?.with_kv_types(path, opts.kv_types)?,
        )),
        #[cfg(feature = "llama-cpp")]
        RuntimeKind::LlamaCpp => Ok(Box::new(llama_cpp::LlamaCpp::load(path, opts)?)),
        #[cfg(not(feature = "llama-cpp"))]
        RuntimeKind::LlamaCpp => unreachable!("available() refused it"),
        RuntimeKind::Openai => Err(Error::Invalid {
            flag: "--runtime openai".into(),
            problem: "an endpoint has no model file: give --endpoint URL and --model NAME".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_names_round_trip_and_unknown_ones_say_the_choices() {
        for n in NAMES {
            let k = RuntimeKind::parse(n).unwrap();
            assert_eq!(k.name(), *n);
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{n}\""),
                "serialized as written"
            );
        }
        assert_eq!(
            RuntimeKind::parse("llama-cpp").unwrap(),
            RuntimeKind::LlamaCpp
        );
        assert_eq!(
            RuntimeKind::parse("tensorrt").unwrap_err(),
            "unknown runtime \"tensorrt\": choose one of auto, odai, candle, llama.cpp, openai, \
             onnxruntime, tflite"
        );
    }

    /// A prompt at a depth (`-d`) continues the sequence: after `prefill(lead)`, `extend(prompt)`
    /// picks what one prefill of both picks, and so does the same prompt again after
    /// `truncate(lead)` — the steady measurement, which must not see the first one's positions.
    #[test]
    fn a_prompt_at_a_depth_continues_the_sequence_and_truncate_forgets_it() {
        use crate::engine::synth;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        let (p, q) = synth::parse_spec("smollm2-135m:q8_0", "m").unwrap();
        synth::write(p, q, &path).unwrap();
        let opts = LoadOptions {
            context: 96,
            threads: Some(1),
            ..Default::default()
        };
        let lead: Vec<u32> = (1..40).collect();
        let prompt: Vec<u32> = (100..110).collect();
        let whole = [lead.clone(), prompt.clone()].concat();
        let mut kinds = vec![RuntimeKind::Odai];
        if cfg!(feature = "llama-cpp") {
            kinds.push(RuntimeKind::LlamaCpp);
        }
        for kind in kinds {
            let mut rt = load(kind, &path, &opts).unwrap();
            let want = rt.prefill(&whole).unwrap();
            rt.prefill(&lead).unwrap();
            let other: Vec<u32> = (200..210).collect();
            rt.extend(&other).unwrap();
            rt.truncate(lead.len()).unwrap();
            if kind == RuntimeKind::Odai {
                // odai's engine computes each row alone: the same figures, whatever the split.
                assert_eq!(rt.extend(&prompt).unwrap(), want, "{kind}");
            } else {
                rt.extend(&prompt).unwrap();
            }
            assert!(rt.truncate(500).is_err() || kind == RuntimeKind::LlamaCpp);
        }
        // candle's cache only grows: the caller fills the depth again.
        let mut c = load(RuntimeKind::Candle, &path, &opts).unwrap();
        c.prefill(&lead).unwrap();
        assert_eq!(c.extend(&prompt).unwrap(), {
            let mut again = load(RuntimeKind::Candle, &path, &opts).unwrap();
            again.prefill(&whole).unwrap()
        });
        assert!(c.truncate(lead.len()).is_err());
    }

    #[cfg(not(feature = "llama-cpp"))]
    #[test]
    fn a_binary_without_llama_cpp_says_how_to_get_it() {
        assert_eq!(
            RuntimeKind::LlamaCpp.available().unwrap_err().to_string(),
            format!("--runtime llama.cpp: {NOT_BUILT_IN}")
        );
    }
}

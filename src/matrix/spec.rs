//! Matrix files (`matrices/*.toml`): the axes of a benchmark plan, `exclude` rules and device
//! selectors, validated with file:line:column errors, and expanded into cells — the cartesian
//! product minus exclusions, each with a stable id so a resumed run never repeats one.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::bench::load::Load;
use crate::engine::kv::KvTypes;
use crate::engine::synth;
use crate::error::Error;
use crate::runtime::RuntimeKind;
use crate::runtime::batching::Batching;
use crate::units;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    /// Language-model cells; optional when the file has `[[tensor]]` entries.
    #[serde(default)]
    matrix: Option<Spanned<Axes>>,
    /// Tensor-model cells (wake word, VAD, classifiers): one entry per model or pipeline.
    #[serde(default)]
    tensor: Vec<Spanned<TensorEntry>>,
    #[serde(default)]
    exclude: Vec<Spanned<Exclude>>,
    #[serde(default)]
    devices: Option<Selectors>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Axes {
    models: Spanned<Vec<Spanned<ModelEntry>>>,
    threads: Spanned<Vec<Threads>>,
    prompt_tokens: Spanned<Vec<u32>>,
    gen_tokens: Spanned<Vec<u32>>,
    reps: Spanned<u32>,
    #[serde(default)]
    warmup: Option<u32>,
    #[serde(default)]
    cold: Option<Vec<bool>>,
    #[serde(default)]
    sustained: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    load: Option<Spanned<Vec<String>>>,
    /// Runtimes each file or synthetic model runs on (`auto` when absent); an endpoint model
    /// runs on `openai` only.
    #[serde(default)]
    runtimes: Option<Spanned<Vec<String>>>,
    /// Layers llama.cpp offloads to a GPU (`-ngl`): an axis of the llama.cpp runtime's cells;
    /// other runtimes' cells do not multiply by it.
    #[serde(default)]
    gpu_layers: Option<Spanned<Vec<u32>>>,
    /// Tokens already in the context before the prompt (llama-bench's `-d`): each depth a cell.
    #[serde(default)]
    depth: Option<Spanned<Vec<u32>>>,
    /// KV cache types (llama-bench's `-ctk`/`-ctv`): `f16`, `q8_0`, or `K/V` such as
    /// `q8_0/f16`; an axis of the cells whose runtime holds a KV cache it can type (odai's
    /// engine, `auto`, llama.cpp).
    #[serde(default)]
    kv_cache: Option<Spanned<Vec<String>>>,
    /// Prompt tokens per call into the runtime (llama-bench's `-b`): an axis of the cells whose
    /// runtime runs the model in this process (odai, auto, candle, llama.cpp).
    #[serde(default)]
    batch: Option<Spanned<Vec<u32>>>,
    /// Positions per pass through the layers (llama-bench's `-ub`), as `batch`.
    #[serde(default)]
    ubatch: Option<Spanned<Vec<u32>>>,
    /// Weights mapped (`true`) or read into memory (`false`; llama-bench's `-mmp`): an axis of
    /// odai's engine's, auto's and llama.cpp's cells.
    #[serde(default)]
    mmap: Option<Spanned<Vec<bool>>>,
}

/// A `[[tensor]]` entry: a tensor model (or a pipeline of them) and how to drive it, run on each
/// thread count and provider listed.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TensorEntry {
    models: Vec<String>,
    /// The workload profile this entry is meant for (`wake-word`, `voice-activity`…): kept in
    /// results, for reports to name.
    #[serde(default)]
    workload: Option<String>,
    /// `burst` or `stream`.
    mode: String,
    #[serde(default)]
    rate: Option<f64>,
    #[serde(default)]
    frame: Option<u64>,
    #[serde(default)]
    sample_rate: Option<u64>,
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    iterations: Option<u64>,
    #[serde(default)]
    warmup: Option<u32>,
    threads: Vec<Threads>,
    #[serde(default)]
    providers: Option<Vec<String>>,
    #[serde(default)]
    shapes: std::collections::BTreeMap<String, Vec<usize>>,
    #[serde(default)]
    inputs: std::collections::BTreeMap<String, toml::Value>,
    #[serde(default)]
    cold: Option<Vec<bool>>,
}

/// How a tensor cell drives its model: the part of a `[[tensor]]` entry that is not an axis.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TensorRun {
    pub workload: Option<String>,
    pub mode: crate::bench::tensor::Mode,
    /// ONNX Runtime's execution provider / TF Lite's delegate; `None`: the runtime's default.
    pub provider: Option<String>,
    pub shapes: Vec<(String, Vec<usize>)>,
    pub inputs: Vec<(String, crate::runtime::tensor::InputSource)>,
}

/// A thread count, or `"auto"`: each device's own default (one per physical core it may use).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Threads {
    Count(u32),
    Word(String),
}

/// A model reference: a GGUF path or `synthetic:PRESET:QUANT`, optionally pinned by sha256.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ModelEntry {
    Plain(String),
    /// A model behind an OpenAI-compatible endpoint: the cloud baseline, run from the
    /// coordinator.
    Endpoint {
        endpoint: String,
        model: String,
        #[serde(default)]
        api_key_env: Option<String>,
    },
    Pinned {
        model: String,
        sha256: String,
    },
}

/// A cell matching every key given here is left out.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Exclude {
    model: Option<String>,
    threads: Option<u32>,
    prompt_tokens: Option<u32>,
    gen_tokens: Option<u32>,
    cold: Option<bool>,
    sustained: Option<String>,
    load: Option<String>,
    runtime: Option<String>,
}

/// Which devices of a farm run the matrix: by class id or tag (any match); all when empty.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Selectors {
    #[serde(default)]
    pub classes: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// A cell's model. In JSON (results, plans) it is an object tagged by `kind`: `file`,
/// `synthetic`, `endpoint` or `tensor` (docs/results.md); records written before that tag, in
/// serde's `{"Synthetic": {…}}` form, still read.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[serde(remote = "Self")]
pub enum ModelRef {
    File {
        path: PathBuf,
        sha256: Option<String>,
    },
    Synthetic {
        preset: String,
        quant: String,
    },
    /// A model an OpenAI-compatible endpoint serves; the key is only named, never held.
    Endpoint {
        url: String,
        model: String,
        api_key_env: Option<String>,
    },
    /// A tensor model (.onnx, .tflite), or a pipeline of them run in order per frame.
    Tensor {
        models: Vec<PathBuf>,
    },
}

impl Serialize for ModelRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ModelRef::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for ModelRef {
    /// The tagged form; records written before `kind` hold serde's external tagging
    /// (`{"Synthetic": {"preset": …}}`), which is rewritten into it first.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut v = serde_json::Value::deserialize(d)?;
        if let Some(obj) = v.as_object()
            && obj.len() == 1
            && !obj.contains_key("kind")
            && let Some((variant, serde_json::Value::Object(fields))) = obj.iter().next()
        {
            let kind = match variant.as_str() {
                "File" => "file",
                "Synthetic" => "synthetic",
                "Endpoint" => "endpoint",
                "Tensor" => "tensor",
                other => return Err(serde::de::Error::unknown_variant(other, &["kind"])),
            };
            let mut tagged = fields.clone();
            tagged.insert("kind".into(), kind.into());
            v = serde_json::Value::Object(tagged);
        }
        ModelRef::deserialize(v).map_err(serde::de::Error::custom)
    }
}

impl ModelRef {
    /// As written in matrix files and results: a path, `synthetic:PRESET:QUANT`, or
    /// `MODEL@URL` for an endpoint.
    pub fn label(&self) -> String {
        match self {
            ModelRef::File { path, .. } => path.display().to_string(),
            ModelRef::Synthetic { preset, quant } => format!("synthetic:{preset}:{quant}"),
            ModelRef::Endpoint { url, model, .. } => format!("{model}@{url}"),
            ModelRef::Tensor { models } => models
                .iter()
                .map(|m| m.display().to_string())
                .collect::<Vec<_>>()
                .join(" → "),
        }
    }

    pub fn is_endpoint(&self) -> bool {
        matches!(self, ModelRef::Endpoint { .. })
    }
}

/// One benchmark cell: what `odai bench` would run once on one device.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cell {
    /// Stable across runs of the same matrix: what `--resume` matches on.
    pub id: String,
    pub model: ModelRef,
    /// Threads; 0 = `auto`, each device's default ([`crate::probe::cpu::Cpu::default_threads`]).
    pub threads: u32,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub cold: bool,
    pub sustained_s: Option<f64>,
    pub load: String,
    pub reps: u32,
    pub warmup: u32,
    /// The runtime; `auto` in results written before runtimes were an axis.
    #[serde(default)]
    pub runtime: RuntimeKind,
    /// Layers asked on a GPU (`gpu_layers`, llama.cpp's `-ngl`); null: none asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_layers: Option<u32>,
    /// KV cache types asked (`kv_cache`, `-ctk`/`-ctv`); null: the runtime's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv_types: Option<KvTypes>,
    /// Tokens already in the context before the prompt (`depth`, llama-bench's `-d`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub depth: u32,
    /// Prompt batch, micro-batch and mapping asked (`batch`, `ubatch`, `mmap`); each null:
    /// the runtime's default.
    #[serde(default, skip_serializing_if = "Batching::is_default")]
    pub batching: Batching,
    /// How a tensor cell runs (`[[tensor]]`); null for a language-model cell, whose
    /// `prompt_tokens`/`gen_tokens` a tensor cell leaves at 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<TensorRun>,
}

impl Cell {
    /// How a tensor cell is driven, short: `stream 31.25/s 10m`, `burst 1000`; None for a
    /// language-model cell.
    pub fn tensor_label(&self) -> Option<String> {
        use crate::bench::tensor::Mode;
        let t = self.tensor.as_ref()?;
        let mut s = match &t.mode {
            Mode::Stream {
                rate_hz,
                duration_s,
                ..
            } => format!(
                "stream {rate_hz}/s {}",
                units::duration(std::time::Duration::from_secs_f64(*duration_s))
            ),
            Mode::Burst {
                iterations: Some(n),
                ..
            } => format!("burst {n}"),
            Mode::Burst { duration_s, .. } => format!(
                "burst {}",
                units::duration(std::time::Duration::from_secs_f64(
                    duration_s.unwrap_or(0.0)
                ))
            ),
        };
        if let Some(p) = &t.provider {
            s.push_str(&format!(" {p}"));
        }
        Some(s)
    }

    /// The thread count as a matrix names it: a number, or `auto`.
    pub fn threads_label(&self) -> String {
        if self.threads == 0 {
            "auto".into()
        } else {
            self.threads.to_string()
        }
    }
}

/// A validated matrix.
#[derive(Clone, Debug)]
pub struct Matrix {
    pub file: PathBuf,
    pub cells: Vec<Cell>,
    pub devices: Selectors,
    /// sha256 of the matrix text: a results directory belongs to exactly one matrix.
    pub sha256: String,
}

impl Selectors {
    /// Whether a device with these tags, probed as `class`, runs the matrix.
    pub fn select(&self, tags: &[String], class: Option<&str>) -> bool {
        (self.classes.is_empty() && self.tags.is_empty())
            || class.is_some_and(|c| self.classes.iter().any(|s| s == c))
            || tags.iter().any(|t| self.tags.contains(t))
    }
}

/// The most cells one matrix may expand to (README, "Matrix files"): far beyond a lab's day of runs (a
/// cell takes seconds to minutes), and a bound on the plan's memory (a cell is a few hundred
/// bytes) against a short file that names 10⁹.
pub const MAX_CELLS: usize = 100_000;

/// Refuses a product of `axes` that would take the matrix past [`MAX_CELLS`], counted before
/// anything is built; `before`: the cells the matrix's earlier tables and entries expanded to.
fn check_cell_count(axes: &[(&str, usize)], before: usize) -> Result<(), String> {
    let product = axes
        .iter()
        .try_fold(1usize, |n, (_, k)| n.checked_mul(*k))
        .unwrap_or(usize::MAX);
    let total = product.saturating_add(before);
    if total <= MAX_CELLS {
        return Ok(());
    }
    let mut shown: Vec<String> = axes
        .iter()
        .filter(|(_, k)| *k > 1)
        .map(|(name, k)| format!("{name} {k}"))
        .collect();
    if shown.is_empty() {
        shown.push("1".into());
    }
    let count = |n: usize| {
        if n == usize::MAX {
            "more than 2^64".to_owned()
        } else {
            n.to_string()
        }
    };
    let what = if before == 0 {
        format!(
            "the matrix expands to {} cells ({})",
            count(total),
            shown.join(" × ")
        )
    } else {
        format!(
            "the matrix expands to {} cells ({} before this entry, {} in it: {})",
            count(total),
            before,
            count(product),
            shown.join(" × ")
        )
    };
    Err(format!(
        "{what}: more than the {MAX_CELLS} one matrix may hold; split it into several"
    ))
}

/// The axes of language-model cells, validated one by one: what a `[matrix]` table and
/// `odai bench`'s comma lists (`-m a,b -t 1,2 -p 0,512`) both expand, so a bench run and a
/// matrix of the same values are the same cells with the same ids.
#[derive(Clone, Debug)]
pub struct LmAxes {
    pub models: Vec<ModelRef>,
    /// Runtimes of each local model; an endpoint model runs on `openai` only.
    pub runtimes: Vec<RuntimeKind>,
    /// GPU layers of the llama.cpp runtime's cells (`[None]`: none asked); the other runtimes'
    /// cells do not multiply by it.
    pub gpu_layers: Vec<Option<u32>>,
    /// KV cache types of the cells whose runtime types its cache (`[None]`: the default).
    pub kv_types: Vec<Option<KvTypes>>,
    /// Tokens already in the context before the prompt (`[0]`: none).
    pub depth: Vec<u32>,
    /// Prompt batch, micro-batch and mapping of the cells whose runtime has them (`[default]`
    /// or empty: none asked); a runtime without a knob does not multiply by it.
    pub batching: Vec<Batching>,
    /// Thread counts; 0 is `auto`.
    pub threads: Vec<u32>,
    /// 0: no prefill is measured (llama-bench's `tg` alone).
    pub prompt_tokens: Vec<u32>,
    /// 0: no decode is measured (llama-bench's `pp` alone).
    pub gen_tokens: Vec<u32>,
    pub cold: Vec<bool>,
    pub sustained: Vec<Option<f64>>,
    pub loads: Vec<String>,
    pub reps: u32,
    /// Default: 1, or 0 for a sustained cell.
    pub warmup: Option<u32>,
}

impl LmAxes {
    /// The cartesian product, in the order of the axes (model, runtime, GPU layers, threads,
    /// prompt, gen, cold, sustained, load), each cell with its stable id. A prompt of 0 with a generation of
    /// 0 measures nothing and is left out of the product (`-p 0,512 -n 0,128` is decode only,
    /// prefill only and both), refused when nothing else is left; a sustained run without
    /// decoding and an endpoint asked for an empty prompt or answer are refused with what to
    /// change.
    pub fn expand(&self) -> Result<Vec<Cell>, String> {
        // Counted before anything is built: a short file can name 10⁹ cells.
        let axes = [
            ("models", self.models.len()),
            ("runtimes", self.runtimes.len().max(1)),
            ("gpu_layers", self.gpu_layers.len().max(1)),
            ("kv_cache", self.kv_types.len().max(1)),
            ("depth", self.depth.len().max(1)),
            ("batch, ubatch and mmap", self.batching.len().max(1)),
            ("threads", self.threads.len()),
            ("prompt_tokens", self.prompt_tokens.len()),
            ("gen_tokens", self.gen_tokens.len()),
            ("cold", self.cold.len()),
            ("sustained", self.sustained.len()),
            ("load", self.loads.len()),
        ];
        check_cell_count(&axes, 0)?;
        let mut cells = Vec::new();
        let mut empty = false;
        for model in &self.models {
            // An endpoint runs on its own runtime, once; a local model on each listed one.
            let model_runtimes = if model.is_endpoint() {
                vec![RuntimeKind::Openai]
            } else {
                self.runtimes.clone()
            };
            for &runtime in &model_runtimes {
                // Only llama.cpp offloads layers: another runtime's cell is one cell, not one
                // per GPU-layer count.
                let ngl_axis = if runtime == RuntimeKind::LlamaCpp {
                    self.gpu_layers.clone()
                } else {
                    vec![None]
                };
                // Likewise the cache types, for runtimes without a cache to type.
                let kv_axis = if runtime.types_kv_cache() && !self.kv_types.is_empty() {
                    self.kv_types.clone()
                } else {
                    vec![None]
                };
                // And the batch, micro-batch and mapping, for runtimes without them.
                let mut batching_axis: Vec<Batching> = Vec::new();
                for b in self
                    .batching
                    .iter()
                    .chain(self.batching.is_empty().then_some(&Batching::default()))
                {
                    let own = Batching {
                        batch: b.batch.filter(|_| runtime.batches()),
                        ubatch: b.ubatch.filter(|_| runtime.batches()),
                        mmap: b.mmap.filter(|_| runtime.maps_weights()),
                    };
                    if !batching_axis.contains(&own) {
                        batching_axis.push(own);
                    }
                }
                let variants: Vec<(Option<u32>, Option<KvTypes>, Batching)> = ngl_axis
                    .iter()
                    .flat_map(|&n| kv_axis.iter().map(move |&k| (n, k)))
                    .flat_map(|(n, k)| batching_axis.iter().map(move |&b| (n, k, b)))
                    .collect();
                let depths: &[u32] = if self.depth.is_empty() {
                    &[0]
                } else {
                    &self.depth
                };
                for &(gpu_layers, kv_types, batching) in &variants {
                    for &threads in &self.threads {
                        for &p in &self.prompt_tokens {
                            for &n in &self.gen_tokens {
                                if p == 0 && n == 0 {
                                    empty = true;
                                    continue;
                                }
                                check_tokens(model, p, n)?;
                                for &depth in depths {
                                    if depth > 0 && model.is_endpoint() {
                                        return Err(format!(
                                            "{}: depth {depth}: an endpoint's prompt cannot be split into \
                                         context already held and the prompt measured: leave the \
                                         endpoint at depth 0",
                                            model.label()
                                        ));
                                    }
                                    for &cold in &self.cold {
                                        for &sus in &self.sustained {
                                            if sus.is_some() && depth > 0 {
                                                return Err(format!(
                                                    "depth {depth}: a sustained cell decodes from \
                                                 position 0 after each reset, so it has no fixed \
                                                 depth (give it depth 0)"
                                                ));
                                            }
                                            if sus.is_some() && n == 0 {
                                                return Err(
                                                    "a sustained cell decodes: gen_tokens 0 \
                                                    measures nothing there (exclude it, or give \
                                                    gen_tokens of 1 or more)"
                                                        .into(),
                                                );
                                            }
                                            for load in &self.loads {
                                                let mut cell = Cell {
                                                    id: String::new(),
                                                    model: model.clone(),
                                                    threads,
                                                    prompt_tokens: p,
                                                    gen_tokens: n,
                                                    cold,
                                                    sustained_s: sus,
                                                    load: load.clone(),
                                                    reps: self.reps,
                                                    warmup: self.warmup.unwrap_or(
                                                        if sus.is_some() { 0 } else { 1 },
                                                    ),
                                                    runtime,
                                                    gpu_layers,
                                                    kv_types,
                                                    depth,
                                                    batching,
                                                    tensor: None,
                                                };
                                                cell.id = cell_id(&cell);
                                                cells.push(cell);
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if cells.is_empty() && empty {
            return Err(
                "prompt_tokens 0 with gen_tokens 0 measures nothing: give one of them 1 \
                        or more (-p 0 alone is decode only, -n 0 alone is prefill only)"
                    .into(),
            );
        }
        Ok(cells)
    }
}

/// Whether a cell's prompt and generation lengths can be measured on its model.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn check_tokens(model: &ModelRef, p: u32, n: u32) -> Result<(), String> {
    if model.is_endpoint() && (p == 0 || n == 0) {
        return Err(format!(
            "{}: an endpoint answers a whole request: prompt_tokens and gen_tokens must be 1 or \
             more there",
            model.label()
        ));
    }
    Ok(())
}

fn at(file: &Path, text: &str, offset: usize, message: String) -> Error {
    Error::config_at(file, text, offset, message)
}

impl Matrix {
    pub fn load(path: &Path) -> Result<Matrix, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::ConfigFile {
            file: path.to_owned(),
            problem: format!("cannot read the matrix: {e}"),
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Matrix, Error> {
        let raw: MatrixFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            at(file, text, offset, e.message().trim().to_owned())
        })?;
        let err = |offset: usize, m: String| at(file, text, offset, m);
        if raw.matrix.is_none() && raw.tensor.is_empty() {
            return Err(err(
                0,
                "a matrix needs a [matrix] table (language models) or [[tensor]] entries (tensor \
                 models)"
                    .into(),
            ));
        }
        let mut cells = Vec::new();
        if let Some(matrix) = &raw.matrix {
            let axes = matrix.get_ref();

            let mut models = Vec::new();
            for entry in axes.models.get_ref() {
                let off = entry.span().start;
                let (reference, sha256) = match entry.get_ref() {
                    ModelEntry::Plain(m) => (m.as_str(), None),
                    ModelEntry::Pinned { model, sha256 } => (model.as_str(), Some(sha256.clone())),
                    ModelEntry::Endpoint { model, .. } => (model.as_str(), None),
                };
                if let Some(h) = &sha256
                    && !(h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
                {
                    return Err(err(off, format!("sha256 {h:?} is not 64 hex digits")));
                }
                if let ModelEntry::Endpoint {
                    endpoint,
                    model,
                    api_key_env,
                } = entry.get_ref()
                {
                    crate::runtime::openai::Url::parse(endpoint).map_err(|m| err(off, m))?;
                    if model.trim().is_empty() {
                        return Err(err(
                            off,
                            "an endpoint entry needs the model name it serves".into(),
                        ));
                    }
                    models.push(ModelRef::Endpoint {
                        url: endpoint.clone(),
                        model: model.clone(),
                        api_key_env: api_key_env.clone(),
                    });
                    continue;
                }
                models.push(parse_model(reference, sha256).map_err(|m| err(off, m))?);
            }
            let non_empty = |name: &str, span: std::ops::Range<usize>, len: usize| {
                if len == 0 {
                    Err(err(
                        span.start,
                        format!("{name} is empty: give at least one value"),
                    ))
                } else {
                    Ok(())
                }
            };
            non_empty("models", axes.models.span(), models.len())?;
            non_empty("threads", axes.threads.span(), axes.threads.get_ref().len())?;
            let mut threads_axis = Vec::new();
            for t in axes.threads.get_ref() {
                threads_axis.push(match t {
                    Threads::Count(0) => {
                        return Err(err(
                            axes.threads.span().start,
                            "threads must be 1 or more (or \"auto\")".into(),
                        ));
                    }
                    Threads::Count(n) => *n,
                    Threads::Word(w) if w == "auto" => 0,
                    Threads::Word(w) => {
                        return Err(err(
                            axes.threads.span().start,
                            format!(
                                "threads: {w:?} is not a thread count (a number, or \"auto\": one per \
                                 physical core each device may use)"
                            ),
                        ));
                    }
                });
            }
            for (name, v) in [
                ("prompt_tokens", &axes.prompt_tokens),
                ("gen_tokens", &axes.gen_tokens),
            ] {
                non_empty(name, v.span(), v.get_ref().len())?;
            }
            if *axes.reps.get_ref() == 0 {
                return Err(err(axes.reps.span().start, "reps must be 1 or more".into()));
            }
            let sustained: Vec<Option<f64>> = match &axes.sustained {
                None => vec![None],
                Some(list) => {
                    non_empty("sustained", list.span(), list.get_ref().len())?;
                    list.get_ref()
                        .iter()
                        .map(|d| {
                            // "none": the matrix's ordinary, not sustained, cells beside sustained ones.
                            if d == "none" {
                                return Ok(None);
                            }
                            units::parse_duration(d)
                                .map(|d| Some(d.as_secs_f64()))
                                .map_err(|m| err(list.span().start, format!("sustained: {m}")))
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            let loads: Vec<String> = match &axes.load {
                None => vec!["none".into()],
                Some(list) => {
                    non_empty("load", list.span(), list.get_ref().len())?;
                    list.get_ref()
                        .iter()
                        .map(|l| {
                            Load::parse(l)
                                .map(|l| l.label())
                                .map_err(|e| err(list.span().start, e.to_string()))
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            let runtimes: Vec<RuntimeKind> = match &axes.runtimes {
                None => vec![RuntimeKind::Auto],
                Some(list) => {
                    non_empty("runtimes", list.span(), list.get_ref().len())?;
                    list.get_ref()
                        .iter()
                        .map(|r| match RuntimeKind::parse(r) {
                            Ok(RuntimeKind::Openai) => Err(err(
                                list.span().start,
                                "runtimes: openai runs endpoint models: list them under models as \
                                 { endpoint = \"URL\", model = \"NAME\" }"
                                    .into(),
                            )),
                            Ok(k @ (RuntimeKind::Onnxruntime | RuntimeKind::Tflite)) => Err(err(
                                list.span().start,
                                format!(
                                    "runtimes: {k} runs tensor models (.onnx, .tflite): list \
                                     them in [[tensor]] entries (models, mode, threads)"
                                ),
                            )),
                            Ok(k) => Ok(k),
                            Err(m) => Err(err(list.span().start, format!("runtimes: {m}"))),
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            let gpu_layers: Vec<Option<u32>> = match &axes.gpu_layers {
                None => vec![None],
                Some(list) => {
                    non_empty("gpu_layers", list.span(), list.get_ref().len())?;
                    if !runtimes.contains(&RuntimeKind::LlamaCpp) {
                        return Err(err(
                            list.span().start,
                            "gpu_layers: only the llama.cpp runtime offloads layers to a GPU: add \
                             runtimes = [\"llama.cpp\"] (odai built with --features \
                             llama-cpp-vulkan, llama-cpp-cuda or llama-cpp-metal)"
                                .into(),
                        ));
                    }
                    list.get_ref().iter().copied().map(Some).collect()
                }
            };
            let kv_types: Vec<Option<KvTypes>> = match &axes.kv_cache {
                None => vec![None],
                Some(list) => {
                    non_empty("kv_cache", list.span(), list.get_ref().len())?;
                    if !runtimes.iter().any(|r| r.types_kv_cache()) {
                        return Err(err(
                            list.span().start,
                            "kv_cache: none of this matrix's runtimes has a KV cache to type: \
                             add odai, auto or llama.cpp to runtimes"
                                .into(),
                        ));
                    }
                    list.get_ref()
                        .iter()
                        .map(|s| {
                            KvTypes::parse(s)
                                .map(Some)
                                .map_err(|m| err(list.span().start, format!("kv_cache: {m}")))
                        })
                        .collect::<Result<_, _>>()?
                }
            };
            let sizes = |name: &str, list: &Option<Spanned<Vec<u32>>>| -> Result<Vec<u32>, Error> {
                let Some(list) = list else {
                    return Ok(Vec::new());
                };
                non_empty(name, list.span(), list.get_ref().len())?;
                if !runtimes.iter().any(|r| r.batches()) {
                    return Err(err(
                        list.span().start,
                        format!(
                            "{name}: none of this matrix's runtimes takes a prompt batch here: add \
                             odai, auto, candle or llama.cpp to runtimes (an endpoint's is the \
                             server's)"
                        ),
                    ));
                }
                if list.get_ref().contains(&0) {
                    return Err(err(
                        list.span().start,
                        format!("{name}: 0 positions runs nothing: give 1 or more"),
                    ));
                }
                Ok(list.get_ref().clone())
            };
            let batch = sizes("batch", &axes.batch)?;
            let ubatch = sizes("ubatch", &axes.ubatch)?;
            let mmap = match &axes.mmap {
                None => Vec::new(),
                Some(list) => {
                    non_empty("mmap", list.span(), list.get_ref().len())?;
                    if !runtimes.iter().any(|r| r.maps_weights()) {
                        return Err(err(
                            list.span().start,
                            "mmap: none of this matrix's runtimes can map the model file: add \
                             odai, auto or llama.cpp to runtimes (candle always reads it)"
                                .into(),
                        ));
                    }
                    list.get_ref().clone()
                }
            };
            let colds = axes.cold.clone().unwrap_or_else(|| vec![false]);
            if colds.is_empty() {
                return Err(err(
                    matrix.span().start,
                    "cold is empty: give [false], [true] or both".into(),
                ));
            }

            let lm = LmAxes {
                models,
                runtimes,
                gpu_layers,
                kv_types,
                batching: Batching::product(&batch, &ubatch, &mmap),
                depth: match &axes.depth {
                    None => vec![0],
                    Some(list) => {
                        non_empty("depth", list.span(), list.get_ref().len())?;
                        list.get_ref().clone()
                    }
                },
                threads: threads_axis,
                prompt_tokens: axes.prompt_tokens.get_ref().clone(),
                gen_tokens: axes.gen_tokens.get_ref().clone(),
                cold: colds,
                sustained,
                loads,
                reps: *axes.reps.get_ref(),
                warmup: axes.warmup,
            };
            cells.extend(lm.expand().map_err(|m| err(matrix.span().start, m))?);
        }
        for entry in &raw.tensor {
            let e = entry.get_ref();
            let axes = [
                ("threads", e.threads.len()),
                ("providers", e.providers.as_ref().map_or(1, Vec::len)),
                ("cold", e.cold.as_ref().map_or(1, Vec::len)),
            ];
            check_cell_count(&axes, cells.len()).map_err(|m| err(entry.span().start, m))?;
            cells.extend(tensor_cells(e).map_err(|m| err(entry.span().start, m))?);
        }
        for ex in &raw.exclude {
            let e = ex.get_ref();
            if let Some(s) = &e.sustained {
                units::parse_duration(s)
                    .map_err(|m| err(ex.span().start, format!("exclude: {m}")))?;
            }
            if let Some(r) = &e.runtime {
                RuntimeKind::parse(r).map_err(|m| err(ex.span().start, format!("exclude: {m}")))?;
            }
        }
        cells.retain(|c| !raw.exclude.iter().any(|e| excluded(c, e.get_ref())));
        for c in &mut cells {
            c.id = cell_id(c);
        }
        Ok(Matrix {
            file: file.to_owned(),
            cells,
            devices: raw.devices.unwrap_or_default(),
            sha256: crate::engine::fingerprint::sha256_hex(text.as_bytes()),
        })
    }
}

/// The cells of one `[[tensor]]` entry: each thread count × provider × cold.
fn tensor_cells(e: &TensorEntry) -> Result<Vec<Cell>, String> {
    use crate::bench::tensor::Mode;
    use crate::runtime::tensor::InputSource;
    if e.models.is_empty() {
        return Err(
            "tensor: models is empty: give a model, or a pipeline's models in order".into(),
        );
    }
    let mut runtimes = Vec::new();
    for m in &e.models {
        runtimes.push(
            crate::runtime::tensor_runtime_for(Path::new(m)).ok_or_else(|| {
                format!("tensor: {m:?} is not a tensor model by its name (.onnx, .tflite)")
            })?,
        );
    }
    let duration = |d: &Option<String>| {
        d.as_deref()
            .map(|d| {
                units::parse_duration(d)
                    .map(|d| d.as_secs_f64())
                    .map_err(|m| format!("tensor: {m}"))
            })
            .transpose()
    };
    let mode = match e.mode.as_str() {
        "burst" => Mode::Burst {
            warmup: e.warmup.unwrap_or(10),
            iterations: match (e.iterations, &e.duration) {
                (Some(n), _) => Some(n),
                (None, Some(_)) => None,
                (None, None) => Some(1000),
            },
            duration_s: duration(&e.duration)?,
        },
        "stream" => {
            let rate_hz = match (e.rate, e.frame, e.sample_rate) {
                (Some(r), None, None) if r.is_finite() && r > 0.0 => r,
                (None, Some(f), Some(sr)) if f > 0 && sr > 0 => sr as f64 / f as f64,
                _ => {
                    return Err(
                        "tensor: a stream needs its input rate: rate = 31.25, or frame = \
                                512 and sample_rate = 16000"
                            .into(),
                    );
                }
            };
            let duration_s = duration(&e.duration)?.unwrap_or(60.0);
            if duration_s * rate_hz < 1.0 {
                return Err(format!(
                    "tensor: {duration_s} s at {rate_hz}/s is not one frame"
                ));
            }
            Mode::Stream {
                rate_hz,
                duration_s,
                window_s: duration(&e.window)?.unwrap_or(10.0).min(duration_s),
            }
        }
        m => return Err(format!("tensor: mode {m:?} is not burst or stream")),
    };
    if e.threads.is_empty() {
        return Err("tensor: threads is empty: give at least one value".into());
    }
    let mut threads = Vec::new();
    for t in &e.threads {
        threads.push(match t {
            Threads::Count(n) if *n > 0 => *n,
            Threads::Word(w) if w == "auto" => 0,
            _ => return Err("tensor: threads must be 1 or more (or \"auto\")".into()),
        });
    }
    let mut inputs = Vec::new();
    for (name, v) in &e.inputs {
        let src = match v {
            toml::Value::Integer(i) => InputSource::Constant { value: *i as f64 },
            toml::Value::Float(f) => InputSource::Constant { value: *f },
            toml::Value::String(p) if p.ends_with(".npy") => InputSource::Npy { path: p.into() },
            _ => {
                return Err(format!(
                    "tensor: inputs.{name}: a number (a constant) or a .npy file"
                ));
            }
        };
        inputs.push((name.clone(), src));
    }
    let providers: Vec<Option<String>> = match &e.providers {
        None => vec![None],
        Some(p) if p.is_empty() => return Err("tensor: providers is empty".into()),
        Some(p) => p.iter().map(|x| Some(x.clone())).collect(),
    };
    let mut cells = Vec::new();
    for &t in &threads {
        for provider in &providers {
            for &cold in e.cold.as_deref().unwrap_or(&[false]) {
                cells.push(Cell {
                    id: String::new(),
                    model: ModelRef::Tensor {
                        models: e.models.iter().map(PathBuf::from).collect(),
                    },
                    threads: t,
                    prompt_tokens: 0,
                    gen_tokens: 0,
                    cold,
                    sustained_s: None,
                    load: "none".into(),
                    reps: 1,
                    warmup: 0,
                    runtime: runtimes[0],
                    gpu_layers: None,
                    kv_types: None,
                    depth: 0,
                    batching: Batching::default(),
                    tensor: Some(TensorRun {
                        workload: e.workload.clone(),
                        mode: mode.clone(),
                        provider: provider.clone(),
                        shapes: e
                            .shapes
                            .iter()
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect(),
                        inputs: inputs.clone(),
                    }),
                });
            }
        }
    }
    Ok(cells)
}

fn parse_model(reference: &str, sha256: Option<String>) -> Result<ModelRef, String> {
    match reference.strip_prefix("synthetic:") {
        Some(spec) => {
            let (p, q) = synth::parse_spec(spec, "models").map_err(|e| e.to_string())?;
            if sha256.is_some() {
                return Err("a synthetic model cannot be pinned by sha256".into());
            }
            Ok(ModelRef::Synthetic {
                preset: p.name.into(),
                quant: q.name().into(),
            })
        }
        None if reference.trim().is_empty() => Err("a model reference is empty".into()),
        None => Ok(ModelRef::File {
            path: PathBuf::from(reference),
            sha256,
        }),
    }
}

fn excluded(c: &Cell, e: &Exclude) -> bool {
    let model = e
        .model
        .as_ref()
        .is_none_or(|m| parse_model(m, None).is_ok_and(|r| r.label() == c.model.label()));
    let sus = e.sustained.as_ref().is_none_or(|s| {
        (s == "none" && c.sustained_s.is_none())
            || units::parse_duration(s).is_ok_and(|d| c.sustained_s == Some(d.as_secs_f64()))
    });
    let load = e
        .load
        .as_ref()
        .is_none_or(|l| Load::parse(l).is_ok_and(|l| l.label() == c.load));
    let runtime = e
        .runtime
        .as_ref()
        .is_none_or(|r| RuntimeKind::parse(r).is_ok_and(|r| r == c.runtime));
    model
        && sus
        && load
        && runtime
        && e.threads.is_none_or(|t| t == c.threads)
        && e.prompt_tokens.is_none_or(|p| p == c.prompt_tokens)
        && e.gen_tokens.is_none_or(|n| n == c.gen_tokens)
        && e.cold.is_none_or(|x| x == c.cold)
}

/// A short stable id: FNV-1a over the cell's parameters (not its position in the file), so
/// reordering a matrix keeps the ids of its cells. The runtime joins the key only when it is not
/// `auto`, so the cells of matrices written before the runtime axis keep their ids.
fn cell_id(c: &Cell) -> String {
    let runtime = match c.runtime {
        RuntimeKind::Auto => String::new(),
        r => format!("|rt{r}"),
    };
    // A tensor cell's run is part of its identity (a stream at another rate is another cell).
    let tensor = c.tensor.as_ref().map_or(String::new(), |t| {
        format!("|tensor{}", serde_json::to_string(t).unwrap_or_default())
    });
    // Appended only when asked, so cells without it keep the ids earlier results were stored by.
    let ngl = c.gpu_layers.map_or(String::new(), |n| format!("|ngl{n}"));
    let kv = c
        .kv_types
        .map_or(String::new(), |t| format!("|kv{}", t.label()));
    let depth = if c.depth > 0 {
        format!("|d{}", c.depth)
    } else {
        String::new()
    };
    let batching = c.batching.id_part();
    let key = format!(
        "{}|t{}|p{}|n{}|cold{}|sus{:?}|load{}|reps{}|warm{}{runtime}{tensor}{ngl}{kv}{depth}{batching}",
        c.model.label(),
        c.threads,
        c.prompt_tokens,
        c.gen_tokens,
        c.cold,
        c.sustained_s,
        c.load,
        c.reps,
        c.warmup
    );
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALLEST: &str = r#"[matrix]
models = ["synthetic:smollm2-135m:q8_0"]
threads = [1, 2]
prompt_tokens = [16]
gen_tokens = [8]
reps = 1
"#;

    fn parse(text: &str) -> Result<Matrix, String> {
        Matrix::parse(text, Path::new("m.toml")).map_err(|e| e.to_string())
    }

    const TENSOR: &str = r#"[[tensor]]
workload = "voice-activity"
models = ["vad.onnx"]
mode = "stream"
frame = 512
sample_rate = 16000
duration = "10m"
threads = [1, "auto"]
providers = ["cpu", "xnnpack"]
shapes = { input = [1, 512] }
inputs = { sr = 16000, clip = "clip.npy" }
"#;

    #[test]
    fn tensor_entries_expand_into_cells_of_their_own() {
        use crate::bench::tensor::Mode;
        let m = parse(TENSOR).unwrap();
        assert_eq!(m.cells.len(), 4, "threads × providers");
        let c = &m.cells[0];
        assert_eq!(c.runtime, RuntimeKind::Onnxruntime);
        assert_eq!(c.model.label(), "vad.onnx");
        let t = c.tensor.as_ref().unwrap();
        assert_eq!(
            t.mode,
            Mode::Stream {
                rate_hz: 31.25,
                duration_s: 600.0,
                window_s: 10.0
            }
        );
        assert_eq!(c.tensor_label().unwrap(), "stream 31.25/s 10m cpu");
        assert_eq!(m.cells[1].threads, 1);
        assert_eq!(m.cells[2].threads, 0, "auto");
        let ids: std::collections::HashSet<_> = m.cells.iter().map(|c| &c.id).collect();
        assert_eq!(ids.len(), 4);
        // The rate is part of the cell: another rate is another id.
        let other = parse(&TENSOR.replace("frame = 512", "frame = 1024")).unwrap();
        assert_ne!(other.cells[0].id, m.cells[0].id);
        assert_eq!(parse(TENSOR).unwrap().cells[0].id, m.cells[0].id, "stable");
        // Beside a [matrix] table: both kinds of cell.
        let both = parse(&format!("{SMALLEST}\n{TENSOR}")).unwrap();
        assert_eq!(both.cells.len(), 2 + 4);
        // A pipeline is one model reference.
        let p =
            parse(&TENSOR.replace(r#"["vad.onnx"]"#, r#"["mel.tflite", "head.tflite"]"#)).unwrap();
        assert_eq!(p.cells[0].model.label(), "mel.tflite → head.tflite");
        assert_eq!(p.cells[0].runtime, RuntimeKind::Tflite);
    }

    #[test]
    fn tensor_entry_mistakes_name_the_line_and_the_fix() {
        assert_eq!(
            parse("").unwrap_err(),
            "m.toml:1:1: a matrix needs a [matrix] table (language models) or [[tensor]] \
             entries (tensor models)"
        );
        let e = parse(&TENSOR.replace("frame = 512\n", "")).unwrap_err();
        assert!(
            e.starts_with("m.toml:1:1: tensor: a stream needs its input rate"),
            "{e}"
        );
        let e = parse(&TENSOR.replace("vad.onnx", "model.gguf")).unwrap_err();
        assert!(
            e.contains("tensor: \"model.gguf\" is not a tensor model"),
            "{e}"
        );
        let e = parse(&TENSOR.replace("\"stream\"", "\"paced\"")).unwrap_err();
        assert!(e.contains("mode \"paced\" is not burst or stream"), "{e}");
        let e = parse(&TENSOR.replace("clip = \"clip.npy\"", "clip = true")).unwrap_err();
        assert!(
            e.contains("inputs.clip: a number (a constant) or a .npy file"),
            "{e}"
        );
        let e = parse(&TENSOR.replace("duration = \"10m\"", "duration = \"10ms\"")).unwrap_err();
        assert!(e.contains("is not one frame"), "{e}");
        let e = parse(&TENSOR.replace("threads = [1, \"auto\"]", "threads = [0]")).unwrap_err();
        assert!(e.contains("threads must be 1 or more"), "{e}");
    }

    #[test]
    fn auto_threads_are_each_devices_default() {
        let m = parse(&SMALLEST.replace("threads = [1, 2]", "threads = [\"auto\", 4]")).unwrap();
        assert_eq!(m.cells[0].threads, 0);
        assert_eq!(m.cells[0].threads_label(), "auto");
        assert_eq!(m.cells[1].threads_label(), "4");
        let e = parse(&SMALLEST.replace("threads = [1, 2]", "threads = [\"many\"]")).unwrap_err();
        assert!(
            e.to_string().contains(
                "threads: \"many\" is not a thread count (a number, or \"auto\": one per physical core each device may use)"
            ),
            "{e}"
        );
    }

    #[test]
    fn the_smallest_matrix_is_accepted_as_written() {
        let m = parse(SMALLEST).unwrap();
        assert_eq!(m.cells.len(), 2);
        assert_eq!(m.cells[0].threads, 1);
        assert_eq!(m.cells[1].threads, 2);
        assert_eq!(m.cells[0].model.label(), "synthetic:smollm2-135m:q8_0");
        assert_eq!((m.cells[0].warmup, m.cells[0].load.as_str()), (1, "none"));
        assert_ne!(m.cells[0].id, m.cells[1].id);
        // Ids depend on what a cell is, not where it sits.
        let swapped = parse(&SMALLEST.replace("[1, 2]", "[2, 1]")).unwrap();
        assert_eq!(swapped.cells[0].id, m.cells[1].id);
    }

    #[test]
    fn product_minus_exclusions() {
        let text = format!(
            "{SMALLEST}cold = [false, true]\nload = [\"none\", \"cpu:1\"]\n\n[[exclude]]\nthreads = 2\ncold = true\n"
        );
        let m = parse(&text).unwrap();
        // 2 threads x 2 cold x 2 loads = 8, minus threads=2 & cold (2 cells).
        assert_eq!(m.cells.len(), 6);
        assert!(!m.cells.iter().any(|c| c.threads == 2 && c.cold));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_column() {
        let e = parse(&SMALLEST.replace("reps = 1", "reps = 1\nrepz = 2")).unwrap_err();
        assert!(e.starts_with("m.toml:7:1: unknown field `repz`"), "{e}");
        let e = parse(&SMALLEST.replace("threads = [1, 2]", "threads = [1, -2]")).unwrap_err();
        assert!(e.starts_with("m.toml:3:"), "{e}");
        let e = parse(&SMALLEST.replace("smollm2-135m:q8_0", "gpt-5:q8_0")).unwrap_err();
        assert!(
            e.starts_with("m.toml:2:11: models: no preset \"gpt-5\""),
            "{e}"
        );
        // -p 0 is decode only, -n 0 prefill only; both at once measure nothing.
        let m = parse(&SMALLEST.replace("[16]", "[0, 16]")).unwrap();
        assert_eq!(m.cells.len(), 4);
        assert_eq!(m.cells[0].prompt_tokens, 0);
        // (0, 0) is left out of a product that has other cells.
        let m = parse(&SMALLEST.replace("[16]", "[0, 16]").replace("[8]", "[0, 8]")).unwrap();
        let pairs: Vec<(u32, u32)> = m.cells[..3]
            .iter()
            .map(|c| (c.prompt_tokens, c.gen_tokens))
            .collect();
        assert_eq!(pairs, [(0, 8), (16, 0), (16, 8)]);
        let e = parse(&SMALLEST.replace("[16]", "[0]").replace("[8]", "[0]")).unwrap_err();
        assert_eq!(
            e,
            "m.toml:1:1: prompt_tokens 0 with gen_tokens 0 measures nothing: give one of them 1 \
             or more (-p 0 alone is decode only, -n 0 alone is prefill only)"
        );
        let m = parse(&format!("{SMALLEST}sustained = [\"none\", \"10s\"]\n")).unwrap();
        assert_eq!(
            m.cells.iter().map(|c| c.sustained_s).collect::<Vec<_>>(),
            [None, Some(10.0), None, Some(10.0)],
            "\"none\" keeps the ordinary cells beside the sustained ones"
        );
        let e = parse(&format!("{SMALLEST}sustained = [\"5 parsecs\"]\n")).unwrap_err();
        assert!(e.contains("sustained: \"5 parsecs\": unknown unit"), "{e}");
    }

    #[test]
    fn gpu_layers_multiply_only_the_llama_cpp_cells() {
        let text = SMALLEST.replace("threads = [1, 2]", "threads = [1]")
            + "runtimes = [\"odai\", \"llama.cpp\"]\ngpu_layers = [0, 99]\n";
        let m = parse(&text).unwrap();
        let got: Vec<(RuntimeKind, Option<u32>)> =
            m.cells.iter().map(|c| (c.runtime, c.gpu_layers)).collect();
        assert_eq!(
            got,
            [
                (RuntimeKind::Odai, None),
                (RuntimeKind::LlamaCpp, Some(0)),
                (RuntimeKind::LlamaCpp, Some(99)),
            ]
        );
        assert_ne!(
            m.cells[1].id, m.cells[2].id,
            "the layers are part of the id"
        );
        // Without the axis a cell keeps the id it had before GPU layers were an axis.
        let plain = parse(
            &(SMALLEST.replace("threads = [1, 2]", "threads = [1]")
                + "runtimes = [\"odai\", \"llama.cpp\"]\n"),
        )
        .unwrap();
        assert_eq!(plain.cells[0].id, m.cells[0].id);
        let e = parse(&format!("{SMALLEST}gpu_layers = [99]\n")).unwrap_err();
        assert_eq!(
            e,
            "m.toml:7:14: gpu_layers: only the llama.cpp runtime offloads layers to a GPU: add \
             runtimes = [\"llama.cpp\"] (odai built with --features llama-cpp-vulkan, \
             llama-cpp-cuda or llama-cpp-metal)"
        );
        let e = parse(&format!(
            "{SMALLEST}runtimes = [\"llama.cpp\"]\ngpu_layers = []\n"
        ))
        .unwrap_err();
        assert!(e.contains("gpu_layers is empty"), "{e}");
    }

    #[test]
    fn depth_is_an_axis_and_refused_where_it_means_nothing() {
        let text = SMALLEST.replace("threads = [1, 2]", "threads = [1]") + "depth = [0, 4096]\n";
        let m = parse(&text).unwrap();
        let got: Vec<u32> = m.cells.iter().map(|c| c.depth).collect();
        assert_eq!(got, [0, 4096]);
        // Depth 0 keeps the id a cell had before depth was an axis.
        let plain = parse(&SMALLEST.replace("threads = [1, 2]", "threads = [1]")).unwrap();
        assert_eq!(plain.cells[0].id, m.cells[0].id);
        assert_ne!(m.cells[0].id, m.cells[1].id);
        let e = parse(&format!("{SMALLEST}depth = [512]\nsustained = [\"1m\"]\n")).unwrap_err();
        assert!(
            e.contains("depth 512: a sustained cell decodes from position 0"),
            "{e}"
        );
        let e = parse(&format!("{SMALLEST}depth = []\n")).unwrap_err();
        assert!(e.contains("depth is empty"), "{e}");
    }

    #[test]
    fn batch_ubatch_and_mmap_multiply_the_cells_whose_runtime_has_them() {
        let text = SMALLEST.replace("threads = [1, 2]", "threads = [1]")
            + "runtimes = [\"odai\", \"candle\"]\nubatch = [64, 512]\nmmap = [false, true]\n";
        let m = parse(&text).unwrap();
        let got: Vec<(RuntimeKind, String)> = m
            .cells
            .iter()
            .map(|c| (c.runtime, c.batching.id_part()))
            .collect();
        // candle reads its weights whatever is asked: its cells multiply by the micro-batch
        // alone.
        assert_eq!(
            got,
            [
                (RuntimeKind::Odai, "|ub64|mmap0".to_owned()),
                (RuntimeKind::Odai, "|ub64|mmap1".to_owned()),
                (RuntimeKind::Odai, "|ub512|mmap0".to_owned()),
                (RuntimeKind::Odai, "|ub512|mmap1".to_owned()),
                (RuntimeKind::Candle, "|ub64".to_owned()),
                (RuntimeKind::Candle, "|ub512".to_owned()),
            ]
        );
        assert!(m.cells[0].id != m.cells[1].id && m.cells[0].id != m.cells[2].id);
        // Nothing asked: the ids cells had before these were knobs.
        let plain = parse(SMALLEST).unwrap();
        assert!(plain.cells.iter().all(|c| c.batching.is_default()));
        let e = parse(&format!("{SMALLEST}batch = [0]\n")).unwrap_err();
        assert_eq!(
            e,
            "m.toml:7:9: batch: 0 positions runs nothing: give 1 or more"
        );
        let e = parse(&format!(
            "{SMALLEST}runtimes = [\"candle\"]\nmmap = [true]\n"
        ))
        .unwrap_err();
        assert!(
            e.ends_with(
                "mmap: none of this matrix's runtimes can map the model file: add odai, auto or \
                 llama.cpp to runtimes (candle always reads it)"
            ),
            "{e}"
        );
    }

    #[test]
    fn kv_cache_multiplies_the_cells_whose_runtime_types_its_cache() {
        use crate::engine::kv::{KvType, KvTypes};
        let text = SMALLEST.replace("threads = [1, 2]", "threads = [1]")
            + "runtimes = [\"odai\", \"candle\", \"llama.cpp\"]\nkv_cache = [\"q8_0\", \"q4_0/f16\"]\n";
        let m = parse(&text).unwrap();
        let got: Vec<(RuntimeKind, Option<KvTypes>)> =
            m.cells.iter().map(|c| (c.runtime, c.kv_types)).collect();
        let q8 = Some(KvTypes::both(KvType::Q8_0));
        let q4f16 = Some(KvTypes {
            k: KvType::Q4_0,
            v: KvType::F16,
        });
        assert_eq!(
            got,
            [
                (RuntimeKind::Odai, q8),
                (RuntimeKind::Odai, q4f16),
                (RuntimeKind::Candle, None),
                (RuntimeKind::LlamaCpp, q8),
                (RuntimeKind::LlamaCpp, q4f16),
            ]
        );
        assert_ne!(m.cells[0].id, m.cells[1].id, "the types are part of the id");
        let e = parse(&format!("{SMALLEST}kv_cache = [\"q5_1\"]\n")).unwrap_err();
        assert_eq!(
            e,
            "m.toml:7:12: kv_cache: unknown KV cache type \"q5_1\": choose one of f32, f16, q8_0, \
             q4_0"
        );
        let e = parse(&format!(
            "{SMALLEST}runtimes = [\"candle\"]\nkv_cache = [\"f16\"]\n"
        ))
        .unwrap_err();
        assert!(
            e.ends_with(
                "kv_cache: none of this matrix's runtimes has a KV cache to type: add odai, auto \
                 or llama.cpp to runtimes"
            ),
            "{e}"
        );
    }

    #[test]
    fn runtimes_multiply_local_models_and_endpoints_run_once_on_openai() {
        let text = SMALLEST
            .replace(
                "[\"synthetic:smollm2-135m:q8_0\"]",
                "[\"synthetic:smollm2-135m:q8_0\", { endpoint = \"http://127.0.0.1:8080/v1\", model = \"qwen\", api_key_env = \"KEY\" }]",
            )
            .replace("threads = [1, 2]", "threads = [1]")
            + "runtimes = [\"odai\", \"llama.cpp\"]\n";
        let m = parse(&text).unwrap();
        let got: Vec<(String, RuntimeKind)> = m
            .cells
            .iter()
            .map(|c| (c.model.label(), c.runtime))
            .collect();
        assert_eq!(
            got,
            [
                ("synthetic:smollm2-135m:q8_0".into(), RuntimeKind::Odai),
                ("synthetic:smollm2-135m:q8_0".into(), RuntimeKind::LlamaCpp),
                ("qwen@http://127.0.0.1:8080/v1".into(), RuntimeKind::Openai),
            ]
        );
        assert_eq!(
            m.cells[2].model,
            ModelRef::Endpoint {
                url: "http://127.0.0.1:8080/v1".into(),
                model: "qwen".into(),
                api_key_env: Some("KEY".into())
            }
        );
        assert_ne!(
            m.cells[0].id, m.cells[1].id,
            "the runtime is part of the id"
        );
        // `auto` keeps the ids of matrices written before the runtime axis.
        let plain = parse(SMALLEST).unwrap();
        let auto = parse(&format!("{SMALLEST}runtimes = [\"auto\"]\n")).unwrap();
        assert_eq!(plain.cells[0].id, auto.cells[0].id);
        let e = parse(&format!("{SMALLEST}runtimes = [\"openai\"]\n")).unwrap_err();
        assert!(
            e.starts_with("m.toml:7:12: runtimes: openai runs endpoint models"),
            "{e}"
        );
        let e = parse(&format!("{SMALLEST}runtimes = [\"tflite\"]\n")).unwrap_err();
        assert!(
            e.starts_with("m.toml:7:12: runtimes: tflite runs tensor models (.onnx, .tflite)"),
            "{e}"
        );
        let e = parse(&format!("{SMALLEST}runtimes = [\"tensorrt\"]\n")).unwrap_err();
        assert!(e.contains("runtimes: unknown runtime \"tensorrt\""), "{e}");
        let e = parse(&SMALLEST.replace(
            "[\"synthetic:smollm2-135m:q8_0\"]",
            "[{ endpoint = \"ftp://x\", model = \"m\" }]",
        ))
        .unwrap_err();
        assert!(e.contains("not an http:// or https:// URL"), "{e}");
    }

    #[test]
    fn models_are_tagged_by_kind_and_old_records_still_read() {
        let m = ModelRef::Synthetic {
            preset: "smollm2-135m".into(),
            quant: "q8_0".into(),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"kind": "synthetic", "preset": "smollm2-135m", "quant": "q8_0"})
        );
        assert_eq!(serde_json::from_value::<ModelRef>(v).unwrap(), m);
        let legacy = serde_json::json!({"File": {"path": "m.gguf", "sha256": null}});
        assert_eq!(
            serde_json::from_value::<ModelRef>(legacy).unwrap(),
            ModelRef::File {
                path: "m.gguf".into(),
                sha256: None
            }
        );
    }

    #[test]
    fn pinned_models_need_a_real_sha256() {
        let text = SMALLEST.replace(
            "[\"synthetic:smollm2-135m:q8_0\"]",
            "[{ model = \"m.gguf\", sha256 = \"abc\" }]",
        );
        assert_eq!(
            parse(&text).unwrap_err(),
            "m.toml:2:11: sha256 \"abc\" is not 64 hex digits"
        );
    }

    #[test]
    fn regression_a_matrix_of_a_billion_cells_is_refused_before_it_is_built() {
        // Found in review: a 15 KB matrix file of 10⁹ cells aborted `plan` on an allocation
        // failure (10⁶ cells: 1.1 GB).
        let many: Vec<String> = (1..=1000).map(|i| i.to_string()).collect();
        let list = many.join(", ");
        let text = format!(
            "[matrix]\nmodels = [\"synthetic:toy:q8_0\"]\nthreads = [{list}]\n\
             prompt_tokens = [{list}]\ngen_tokens = [{list}]\nreps = 1\n"
        );
        let Err(err) = Matrix::parse(&text, Path::new("big.toml")) else {
            panic!("a matrix of 10⁹ cells was accepted");
        };
        let err = err.to_string();
        assert!(
            err.contains(
                "the matrix expands to 1000000000 cells (threads 1000 × prompt_tokens 1000 × \
                 gen_tokens 1000): more than the 100000 one matrix may hold; split it into \
                 several"
            ),
            "{err}"
        );
    }
    #[test]
    fn regression_a_tensor_matrix_of_a_billion_cells_is_refused_before_it_is_built() {
        // Found in review: the limit held for [matrix] tables only; [[tensor]] entries expanded
        // threads × providers × cold unchecked, each entry on top of the cells before it.
        let many: Vec<String> = (1..=1000).map(|i| i.to_string()).collect();
        let providers: Vec<String> = (1..=1000).map(|i| format!("\"p{i}\"")).collect();
        let text = TENSOR
            .replace(
                "threads = [1, \"auto\"]",
                &format!("threads = [{}]", many.join(", ")),
            )
            .replace(
                "providers = [\"cpu\", \"xnnpack\"]",
                &format!("providers = [{}]", providers.join(", ")),
            );
        assert_ne!(text, TENSOR);
        let err = Matrix::parse(&text, Path::new("t.toml"))
            .map(|m| m.cells.len())
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "the matrix expands to 1000000 cells (threads 1000 × providers 1000): more than \
                 the 100000 one matrix may hold; split it into several"
            ),
            "{err}"
        );
        // Entries that each fit but not together: the count says what came before.
        let entry = &TENSOR[TENSOR.find("[[tensor]]").unwrap()..];
        let one = entry
            .replace(
                "threads = [1, \"auto\"]",
                &format!("threads = [{}]", many.join(", ")),
            )
            .replace(
                "providers = [\"cpu\", \"xnnpack\"]",
                &format!("providers = [{}]", providers[..60].join(", ")),
            );
        let err = Matrix::parse(&format!("{one}\n{one}"), Path::new("t.toml"))
            .map(|m| m.cells.len())
            .unwrap_err()
            .to_string();
        assert!(
            err.ends_with(
                "the matrix expands to 120000 cells (60000 before this entry, 60000 in it: \
                 threads 1000 × providers 60): more than the 100000 one matrix may hold; split \
                 it into several"
            ),
            "{err}"
        );
    }
}

//! `odai model inspect|synth|tokenize`: what a GGUF file holds and needs, synthetic models in the
//! exact shape of real families, and the ids odai's tokenizer gives a text.

use std::path::PathBuf;

use serde::Serialize;

use crate::cli::{Format, InspectArgs, SynthArgs, TokenizeArgs};
use crate::engine::fingerprint;
use crate::engine::gguf::{Gguf, MemoryNeeds, ModelInfo};
use crate::engine::synth::{self, Preset, Quant};
use crate::engine::text;
use crate::error::Error;
use crate::exit;
use crate::units;

pub struct InspectConfig {
    pub file: PathBuf,
    pub context: Option<u64>,
    /// The KV cache types to size (`--cache-type-k`/`-v`); `None`: the runtime's default.
    pub kv_types: Option<crate::engine::kv::KvTypes>,
    pub sha256: bool,
    pub format: Format,
}

impl InspectConfig {
    pub fn new(args: &InspectArgs) -> Self {
        InspectConfig {
            file: args.file.clone(),
            context: args.context,
            kv_types: (args.cache_type_k.is_some() || args.cache_type_v.is_some()).then(|| {
                crate::engine::kv::KvTypes {
                    k: args.cache_type_k.unwrap_or_default(),
                    v: args.cache_type_v.unwrap_or_default(),
                }
            }),
            sha256: args.sha256,
            format: args.format,
        }
    }
}

#[derive(Serialize)]
struct Inspection {
    #[serde(flatten)]
    info: ModelInfo,
    sha256: Option<String>,
    memory: MemoryNeeds,
}

/// Context odai sizes memory for when neither the user nor the model says.
const DEFAULT_CONTEXT: u64 = 4096;

pub fn inspect(cfg: &InspectConfig) -> anyhow::Result<i32> {
    if let Some(kind) = crate::runtime::tensor_runtime_for(&cfg.file) {
        return inspect_tensor(cfg, kind);
    }
    let g = Gguf::open(&cfg.file)?;
    let info = ModelInfo::from_gguf(&g)?;
    let context = cfg
        .context
        .or(info.context_length)
        .unwrap_or(DEFAULT_CONTEXT);
    // As `auto` would hold it (odai's engine where it runs the model, else candle).
    let holder = crate::runtime::memory::Holder::for_kind(crate::runtime::RuntimeKind::Auto, &info)
        .unwrap_or(crate::runtime::memory::Holder::Candle);
    let memory = crate::runtime::memory::needs(
        &info,
        holder,
        context,
        512.min(context),
        holder.kv_types(cfg.kv_types),
        &Default::default(),
    );
    let sha256 = if cfg.sha256 {
        Some(fingerprint::sha256_file(&cfg.file)?)
    } else {
        None
    };
    let out = Inspection {
        info,
        sha256,
        memory,
    };
    let text = match cfg.format {
        Format::Json => super::document(&out)?,
        Format::Text => render(&out),
    };
    super::print(&text)?;
    Ok(exit::SUCCESS)
}

fn render(o: &Inspection) -> String {
    let i = &o.info;
    let opt = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<17} {v}\n"));
    line(
        "file",
        format!("{} ({})", i.file, units::bytes(i.file_size_bytes)),
    );
    if let Some(n) = &i.name {
        line("name", n.clone());
    }
    line("architecture", i.architecture.clone());
    line("parameters", format!("{:.1} M", i.parameters as f64 / 1e6));
    line("quant", i.quant.clone());
    for (t, b) in &i.tensor_types {
        line(
            &format!("  {t}"),
            format!("{} tensors, {}", b.tensors, units::bytes(b.bytes)),
        );
    }
    line("context length", opt(i.context_length));
    line(
        "shape",
        format!(
            "{} layers, embd {}, {} heads ({} kv, dim {}), ffn {}, vocab {}",
            i.n_layers,
            i.n_embd,
            i.n_heads,
            i.n_kv_heads,
            i.head_dim,
            opt(i.feed_forward_length),
            opt(i.vocab_size)
        ),
    );
    line(
        "tokenizer",
        i.tokenizer.clone().unwrap_or_else(|| "none".into()),
    );
    if let Some(h) = &o.sha256 {
        line("sha256", h.clone());
    }
    let m = &o.memory;
    line(
        &format!("memory @ {}", m.context),
        crate::runtime::memory::describe(m),
    );
    s
}

#[derive(Serialize)]
struct TensorInspection {
    file: String,
    file_size_bytes: u64,
    sha256: Option<String>,
    #[serde(flatten)]
    contents: crate::runtime::inspect::Contents,
    /// The runtime that read the signature, or why none could.
    runtime: crate::sysroot::Reading<crate::runtime::RuntimeInfo>,
    signature: Option<crate::runtime::tensor::Signature>,
}

/// `odai model inspect` on an .onnx or .tflite file: operators and parameters from the file, the
/// signature from the runtime (ORT_DYLIB_PATH / ODAI_TFLITE_LIB), or why it is unavailable.
fn inspect_tensor(cfg: &InspectConfig, kind: crate::runtime::RuntimeKind) -> anyhow::Result<i32> {
    crate::engine::regular_file(&cfg.file).map_err(|problem| Error::Model {
        file: cfg.file.clone(),
        problem,
    })?;
    use crate::error::Error;
    let bytes = std::fs::read(&cfg.file).map_err(|e| Error::Model {
        file: cfg.file.clone(),
        problem: e.to_string(),
    })?;
    let contents = match kind {
        crate::runtime::RuntimeKind::Tflite => crate::runtime::inspect::tflite(&bytes),
        _ => crate::runtime::inspect::onnx(&bytes),
    }
    .map_err(|e| Error::Model {
        file: cfg.file.clone(),
        problem: format!("not a valid {} model: {e}", kind),
    })?;
    let (runtime, signature) =
        match crate::runtime::load(kind, &cfg.file, &crate::runtime::LoadOptions::default()) {
            Ok(rt) => (
                crate::sysroot::Reading::Value(rt.info()),
                rt.signature().cloned(),
            ),
            Err(e) => (crate::sysroot::Reading::Unavailable(e.to_string()), None),
        };
    let sha256 = if cfg.sha256 {
        Some(fingerprint::sha256_file(&cfg.file)?)
    } else {
        None
    };
    let out = TensorInspection {
        file: cfg.file.display().to_string(),
        file_size_bytes: bytes.len() as u64,
        sha256,
        contents,
        runtime,
        signature,
    };
    let text = match cfg.format {
        Format::Json => super::document(&out)?,
        Format::Text => render_tensor(&out),
    };
    super::print(&text)?;
    Ok(exit::SUCCESS)
}

fn render_tensor(o: &TensorInspection) -> String {
    let c = &o.contents;
    let mut s = String::new();
    let mut line = |k: &str, v: String| s.push_str(&format!("  {k:<17} {v}\n"));
    line(
        "file",
        format!("{} ({})", o.file, units::bytes(o.file_size_bytes)),
    );
    line(
        "format",
        format!(
            "{}{}",
            c.format,
            c.format_version
                .as_ref()
                .map_or(String::new(), |v| format!(" ({v})"))
        ),
    );
    if let Some(p) = &c.producer {
        line("producer", p.clone());
    }
    line(
        "parameters",
        format!("{} ({})", c.parameters, units::bytes(c.parameter_bytes)),
    );
    let mut ops: Vec<(&String, &u64)> = c.operators.iter().collect();
    ops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let listed: Vec<String> = ops.iter().map(|(n, k)| format!("{n} {k}")).collect();
    line(
        "operators",
        format!("{} ({})", c.operator_total, listed.join(", ")),
    );
    match (&o.runtime, &o.signature) {
        (crate::sysroot::Reading::Value(r), Some(sig)) => {
            line("runtime", format!("{} {}", r.runtime, r.runtime_version));
            for i in &sig.inputs {
                line("input", i.to_string());
            }
            for out in &sig.outputs {
                line("output", out.to_string());
            }
        }
        (crate::sysroot::Reading::Unavailable(why), _) => {
            line("signature", format!("unavailable: {why}"));
        }
        _ => line("signature", "unavailable: the runtime gave none".into()),
    }
    if let Some(h) = &o.sha256 {
        line("sha256", h.clone());
    }
    s
}

pub struct SynthConfig {
    pub preset: &'static Preset,
    pub quant: Quant,
    pub output: PathBuf,
}

impl SynthConfig {
    pub fn new(args: &SynthArgs) -> anyhow::Result<Self> {
        let (preset, quant) =
            synth::parse_spec(&format!("{}:{}", args.preset, args.quant), "--preset")?;
        Ok(SynthConfig {
            preset,
            quant,
            output: args.output.clone(),
        })
    }
}

pub fn synth(cfg: &SynthConfig) -> anyhow::Result<i32> {
    let started = std::time::Instant::now();
    synth::write(cfg.preset, cfg.quant, &cfg.output)?;
    let size = std::fs::metadata(&cfg.output).map(|m| m.len()).unwrap_or(0);
    super::print(&format!(
        "wrote {} ({} {}, {:.0} M parameters, {}) in {:.1} s\n",
        cfg.output.display(),
        cfg.preset.name,
        cfg.quant.name(),
        synth::parameter_count(cfg.preset) as f64 / 1e6,
        units::bytes(size),
        started.elapsed().as_secs_f64()
    ))?;
    Ok(exit::SUCCESS)
}

pub struct TokenizeConfig {
    pub file: PathBuf,
    pub texts: Vec<String>,
    pub format: Format,
}

impl TokenizeConfig {
    pub fn new(args: &TokenizeArgs) -> anyhow::Result<Self> {
        let mut texts = args.prompt.clone();
        if let Some(path) = &args.prompt_file {
            let read = if path.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(path)
            };
            texts.push(read.map_err(|e| Error::Invalid {
                flag: "--prompt-file".into(),
                problem: format!(
                    "{}: {e} (a UTF-8 text file, or - for stdin)",
                    path.display()
                ),
            })?);
        }
        Ok(TokenizeConfig {
            file: args.file.clone(),
            texts,
            format: args.format,
        })
    }
}

#[derive(Serialize)]
struct Tokenized {
    text: String,
    ids: Vec<u32>,
    /// Each id's vocabulary piece, as the GGUF stores it (`▁` for a SentencePiece space, `Ġ` for a
    /// gpt2 byte-level one).
    pieces: Vec<String>,
}

#[derive(Serialize)]
struct Tokenization {
    file: String,
    /// The vocabulary type and how odai reads it (e.g. `gpt2 BPE, pre-tokenizer smollm`).
    tokenizer: String,
    texts: Vec<Tokenized>,
}

/// `odai model tokenize`: the ids odai's tokenizer gives each text (no BOS), as `generate
/// --prompt` and `quality` feed them.
pub fn tokenize(cfg: &TokenizeConfig) -> anyhow::Result<i32> {
    let g = Gguf::open(&cfg.file)?;
    let tok = text::tokenizer(&g).map_err(|why| Error::Model {
        file: cfg.file.clone(),
        problem: format!("cannot tokenize: {why}"),
    })?;
    let mut texts = Vec::with_capacity(cfg.texts.len());
    for t in &cfg.texts {
        let ids = text::encode(&tok, t).map_err(|e| Error::Model {
            file: cfg.file.clone(),
            problem: format!("cannot tokenize {t:?}: {e}"),
        })?;
        let pieces = ids
            .iter()
            .map(|&id| text::piece(&tok, id).unwrap_or_default())
            .collect();
        texts.push(Tokenized {
            text: t.clone(),
            ids,
            pieces,
        });
    }
    let out = Tokenization {
        file: cfg.file.display().to_string(),
        tokenizer: text::describe(&tok),
        texts,
    };
    let text = match cfg.format {
        Format::Json => super::document(&out)?,
        Format::Text => render_tokens(&out),
    };
    super::print(&text)?;
    Ok(exit::SUCCESS)
}

fn render_tokens(o: &Tokenization) -> String {
    let mut s = format!("{} ({})\n", o.file, o.tokenizer);
    for t in &o.texts {
        s.push_str(&format!("\n{:?}: {} tokens\n", t.text, t.ids.len()));
        for (id, piece) in t.ids.iter().zip(&t.pieces) {
            s.push_str(&format!("  {id:>7}  {piece:?}\n"));
        }
    }
    s
}

//! `odai generate`: greedy decoding on a GGUF model — the engine's correctness check against
//! reference ids, and a quick way to see what a model says.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::cli::{Format, GenerateArgs};
use crate::engine::{gguf::Gguf, text};
use crate::error::Error;
use crate::exit;
use crate::runtime::{self, LoadOptions, RuntimeInfo, RuntimeKind};

pub struct Config {
    pub model: PathBuf,
    pub prompt: Prompt,
    pub gen_tokens: u32,
    pub threads: Option<u32>,
    pub format: Format,
    pub runtime: RuntimeKind,
    pub gpu_layers: Option<u32>,
    /// KV cache types (`--cache-type-k`/`-v`); `None`: the runtime's default.
    pub kv_types: Option<crate::engine::kv::KvTypes>,
    /// Prompt batch, micro-batch and mapping (`-b`, `-ub`, `--mmap`).
    pub batching: crate::runtime::batching::Batching,
}

pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
}

impl Config {
    pub fn new(args: &GenerateArgs) -> anyhow::Result<Self> {
        let prompt = match (&args.prompt, &args.prompt_ids) {
            (Some(t), None) if !t.is_empty() => Prompt::Text(t.clone()),
            (None, Some(ids)) if !ids.is_empty() => Prompt::Ids(ids.clone()),
            _ => {
                return Err(Error::Invalid {
                    flag: "--prompt".into(),
                    problem: "give a non-empty --prompt TEXT or --prompt-ids 1,2,3".into(),
                }
                .into());
            }
        };
        let runtime = match args.runtime.runtime {
            RuntimeKind::Auto => RuntimeKind::from_env(),
            RuntimeKind::Openai => {
                return Err(Error::Invalid {
                    flag: "--runtime openai".into(),
                    problem: "generate runs a local model file; benchmark an endpoint with \
                              odai bench --endpoint URL --model NAME"
                        .into(),
                }
                .into());
            }
            other => other,
        };
        runtime.available()?;
        Ok(Config {
            model: args.model.clone(),
            prompt,
            gen_tokens: args.gen_tokens,
            threads: args.threads,
            format: args.format,
            runtime,
            gpu_layers: args.runtime.gpu_layers,
            kv_types: args.runtime.kv_types(),
            batching: args.runtime.batching(),
        })
    }
}

#[derive(Serialize)]
struct Output {
    model: String,
    #[serde(flatten)]
    runtime: RuntimeInfo,
    prompt_ids: Vec<u32>,
    generated_ids: Vec<u32>,
    generated_text: Option<String>,
    threads: u32,
    /// The KV cache types the runtime held (`f16`, `q8_0/f16`); null for an endpoint.
    kv_cache: Option<String>,
    /// The prompt batch, micro-batch and mapping it ran with (llama-bench's names); null for a
    /// runtime without them.
    n_batch: Option<u32>,
    n_ubatch: Option<u32>,
    use_mmap: Option<bool>,
    load_ms: f64,
    /// Null with one generated token (`-n 1`): the first comes from the prefill, so no decode
    /// step was timed.
    decode_tps: Option<f64>,
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    // The same default as `odai bench`: one thread per physical core the process may use.
    let threads = cfg.threads.unwrap_or_else(|| {
        crate::probe::cpu::probe(&crate::sysroot::SysRoot::live())
            .default_threads()
            .0
    });
    // SAFETY: odai has started no thread yet in this command, so nothing reads the environment
    // concurrently; candle sizes its thread pool from RAYON_NUM_THREADS.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    let g = Gguf::open(&cfg.model)?;
    let tokenizer = text::tokenizer(&g);
    let prompt_ids = match &cfg.prompt {
        Prompt::Ids(ids) => ids.clone(),
        Prompt::Text(text) => {
            let tok = tokenizer.as_ref().map_err(|why| Error::Model {
                file: cfg.model.clone(),
                problem: format!("cannot tokenize --prompt: {why}; give --prompt-ids instead"),
            })?;
            text::encode(tok, text)
                .map_err(|e| anyhow::anyhow!("cannot tokenize the prompt: {e}"))?
        }
    };
    drop(g);
    let opts = LoadOptions {
        threads: Some(threads),
        context: (prompt_ids.len() as u32).saturating_add(cfg.gen_tokens),
        gpu_layers: cfg.gpu_layers,
        kv_types: cfg.kv_types,
        batching: cfg.batching,
        ..Default::default()
    };
    let started = Instant::now();
    let mut model = runtime::load(cfg.runtime, &cfg.model, &opts)?;
    let load_ms = started.elapsed().as_secs_f64() * 1e3;
    let vocab = model.vocab().size;
    if vocab > 0
        && let Some(bad) = prompt_ids.iter().find(|&&id| id as u64 >= vocab)
    {
        return Err(Error::Invalid {
            flag: "--prompt-ids".into(),
            problem: format!("token id {bad} is outside the vocabulary (0..{vocab})"),
        }
        .into());
    }

    let mut generated = Vec::with_capacity(cfg.gen_tokens as usize);
    let mut next = model
        .prefill(&prompt_ids)
        .map_err(|e| anyhow::anyhow!("prefill failed: {e}"))?;
    generated.push(next);
    let decode_started = Instant::now();
    for _ in 1..cfg.gen_tokens as usize {
        next = model
            .decode(next)
            .map_err(|e| anyhow::anyhow!("decode failed: {e}"))?;
        generated.push(next);
    }
    let decode_s = decode_started.elapsed().as_secs_f64();
    let out = Output {
        model: cfg.model.display().to_string(),
        generated_text: tokenizer
            .as_ref()
            .ok()
            .and_then(|t| text::decode(t, &generated)),
        runtime: model.info(),
        prompt_ids,
        generated_ids: generated,
        threads: model.threads(),
        kv_cache: model.kv_types().map(|t| t.label()),
        n_batch: model.batching().and_then(|b| b.batch),
        n_ubatch: model.batching().and_then(|b| b.ubatch),
        use_mmap: model.batching().and_then(|b| b.mmap),
        load_ms,
        decode_tps: (cfg.gen_tokens > 1 && decode_s > 0.0)
            .then(|| (cfg.gen_tokens as f64 - 1.0) / decode_s),
    };
    let text = match cfg.format {
        Format::Json => super::document(&out)?,
        Format::Text => {
            let ids: Vec<String> = out.generated_ids.iter().map(u32::to_string).collect();
            let mut s = format!("generated ids: {}\n", ids.join(","));
            if let Some(t) = &out.generated_text {
                s.push_str(&format!("generated text: {t:?}\n"));
            }
            s.push_str(&format!(
                "load {:.0} ms, decode {} on {} threads ({} {}, {})\n",
                out.load_ms,
                out.decode_tps
                    .map_or_else(|| "not timed (-n 1)".into(), |t| format!("{t:.1} tok/s")),
                out.threads,
                out.runtime.runtime,
                out.runtime.runtime_version,
                out.runtime.backend
            ));
            s
        }
    };
    super::print(&text)?;
    Ok(exit::SUCCESS)
}

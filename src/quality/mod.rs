//! Model quality, measured (`odai quality`): perplexity over a text and KL divergence against a
//! reference model in llama.cpp's method ([`perplexity`]), task accuracy on greedy answers and
//! shadow agreement with a cloud endpoint ([`tasks`]). A run appends one [`QualityRecord`] to a
//! results directory's `quality.jsonl` (fsync'd, append-only, beside `results.jsonl`), where the
//! scorecards read the quality criteria (`kld_mean`, `top1_agreement_pct`, `task_accuracy_pct`,
//! `ppl_delta_pct`). Records hold figures, counts and hashes: never a prompt, a text or an answer.
//!
//! The schema is documented in docs/quality-json.md.

pub mod perplexity;
pub mod tasks;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::runtime::{Runtime, RuntimeInfo};
use perplexity::{Kld, KldSummary, Nll, Row, Windows};

/// The record's schema; a reader refuses a newer one.
pub const SCHEMA_VERSION: u32 = 1;
/// The file a results directory keeps quality records in.
pub const FILE: &str = "quality.jsonl";

/// One `odai quality` run of one model on one runtime.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct QualityRecord {
    pub schema_version: u32,
    pub odai_version: String,
    /// The device it ran on (`--device`, default `local`, as a matrix names this machine).
    pub device: String,
    /// The model file as given (how scorecards name it, like `results.jsonl`'s cells).
    pub model: String,
    pub model_sha256: Option<String>,
    pub runtime: RuntimeInfo,
    /// The KV cache types the runtime held (`f16`, `q8_0`, `q8_0/f16`); null in records from
    /// before they were recorded.
    #[serde(default)]
    pub kv_cache: Option<String>,
    pub threads: u32,
    pub perplexity: Option<PerplexityResult>,
    pub kld: Option<KldResult>,
    pub tasks: Option<TaskResult>,
    pub shadow: Option<ShadowResult>,
    /// Stopped by Ctrl-C: the figures cover the windows and tasks done before it.
    #[serde(default)]
    pub interrupted: bool,
    pub finished_unix_s: f64,
}

/// Perplexity over a text.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PerplexityResult {
    /// The text's sha256 and size: which text, without the text.
    pub text_sha256: String,
    pub text_bytes: u64,
    /// Tokens of the whole text (with BOS, when the model adds one).
    pub text_tokens: u64,
    /// Whether windows start with BOS (the model's `tokenizer.ggml.add_bos_token`).
    pub add_bos: bool,
    /// Tokens per window.
    pub ctx: u32,
    pub windows: u32,
    /// Tokens scored: `windows × (ctx − 1 − ctx/2)`.
    pub scored_tokens: u64,
    pub ppl: f64,
    /// llama.cpp's `±`: ppl × sqrt(var(NLL) / (n − 1)).
    pub ppl_stderr: f64,
    /// Mean negative log-likelihood, nats per token.
    pub nll_mean: f64,
    pub elapsed_s: f64,
}

/// The model's distributions against a reference's over the same windows.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KldResult {
    pub reference: String,
    pub reference_sha256: Option<String>,
    pub reference_runtime: RuntimeInfo,
    /// The reference's KV cache types, as `kv_cache`.
    #[serde(default)]
    pub reference_kv_cache: Option<String>,
    pub reference_ppl: f64,
    pub reference_ppl_stderr: f64,
    /// 100 × (ppl ÷ reference ppl − 1).
    pub ppl_delta_pct: f64,
    #[serde(flatten)]
    pub summary: KldSummary,
}

/// Tasks answered right, of a check.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckCount {
    pub tasks: u32,
    pub correct: u32,
}

/// Task accuracy on greedy answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskResult {
    pub tasks_sha256: String,
    pub tasks: u32,
    pub correct: u32,
    pub accuracy_pct: f64,
    /// Wilson 95 % interval of the accuracy.
    pub ci95_low_pct: f64,
    pub ci95_high_pct: f64,
    pub by_check: BTreeMap<String, CheckCount>,
    /// Prompt to last answer token, per task.
    pub latency_ms_p50: f64,
    pub latency_ms_p95: f64,
    /// Each task by its prompt's hash: what support can match a complaint to.
    pub items: Vec<ItemResult>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ItemResult {
    /// The first 16 hex digits of the prompt's sha256.
    pub id: String,
    pub line: usize,
    pub check: String,
    pub correct: bool,
    pub tokens: u32,
    pub latency_ms: f64,
    /// With `--shadow`: the endpoint's verdict, whether the two answers agree, its latency, or
    /// why it gave none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_correct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agree: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_latency_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud_error: Option<String>,
}

/// Shadow mode: the same prompts sent to a cloud endpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShadowResult {
    /// `MODEL@URL`, as endpoint cells name it.
    pub endpoint: String,
    /// How prompts were sent: `chat` (a user message) or `completions` (the raw prompt).
    #[serde(default = "chat")]
    pub api: String,
    /// What the server says it is (`system_fingerprint`), or `unreported`.
    pub server: String,
    /// Tasks both answered.
    pub compared: u32,
    /// …where the two answers agree (the same label, text or verdict, per the task's check).
    pub agree: u32,
    pub agreement_pct: Option<f64>,
    pub ci95_low_pct: Option<f64>,
    pub ci95_high_pct: Option<f64>,
    pub cloud_correct: u32,
    pub cloud_accuracy_pct: Option<f64>,
    /// Requests that failed (no answer from the endpoint).
    pub failures: u32,
    pub local_latency_ms_p50: f64,
    pub local_latency_ms_p95: f64,
    pub cloud_latency_ms_p50: Option<f64>,
    pub cloud_latency_ms_p95: Option<f64>,
}

fn chat() -> String {
    "chat".into()
}

/// Appends `record` to `dir/quality.jsonl` and syncs it to disk before returning.
pub fn append(dir: &Path, record: &QualityRecord) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create the results directory", dir.display()))?;
    let path = dir.join(FILE);
    let mut line = serde_json::to_string(record).context("cannot serialize the record")?;
    line.push('\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("{}: cannot open for appending", path.display()))?;
    f.write_all(line.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("{}: cannot write the record (disk full?)", path.display()))?;
    Ok(path)
}

/// A results directory's quality records, and what could not be read (left out, said).
pub fn load(dir: &Path) -> (Vec<QualityRecord>, Vec<String>) {
    let path = dir.join(FILE);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return (Vec::new(), Vec::new());
    };
    let mut records = Vec::new();
    let mut warnings = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<QualityRecord>(line) {
            Ok(r) if r.schema_version > SCHEMA_VERSION => warnings.push(format!(
                "{}:{}: schema_version {} is newer than this odai reads ({SCHEMA_VERSION}); left out",
                path.display(),
                i + 1,
                r.schema_version
            )),
            Ok(r) => records.push(r),
            Err(e) => warnings.push(format!(
                "{}:{}: unreadable quality record left out: {e}",
                path.display(),
                i + 1
            )),
        }
    }
    (records, warnings)
}

/// What scoring a text gave: the model's NLL, and with a reference its NLL and the divergence.
pub struct TextScore {
    pub nll: Nll,
    pub reference: Option<(Nll, Kld)>,
    /// Windows done (fewer than planned when interrupted).
    pub windows: usize,
}

/// Scores `tokens` window by window on `model` (and `reference`, on the same windows);
/// `progress` hears each finished window; `stop` is asked between windows.
pub fn score_text(
    model: &mut dyn Runtime,
    mut reference: Option<&mut dyn Runtime>,
    tokens: &[u32],
    w: Windows,
    bos: Option<u32>,
    progress: &mut dyn FnMut(usize, &Nll),
    stop: &dyn Fn() -> bool,
) -> Result<TextScore, String> {
    let vocab = model.vocab().size as usize;
    let first = w.first_scored();
    let mut nll = Nll::default();
    let mut reference_score = reference.as_ref().map(|_| (Nll::default(), Kld::default()));
    let mut done = 0;
    for i in 0..w.count {
        if stop() {
            break;
        }
        let window = w.tokens(tokens, i, bos);
        let targets = w.targets(tokens, i);
        // The last row predicts the token after the window: computed, not scored.
        let logits = model.logits(&window, first)?;
        let check = |l: &[f32], what: &str| -> Result<(), String> {
            if vocab == 0 || l.len() != (w.ctx - first) * vocab {
                return Err(format!(
                    "{what} gave {} logits for {} rows of a {vocab}-token vocabulary",
                    l.len(),
                    w.ctx - first
                ));
            }
            Ok(())
        };
        check(&logits, "the model")?;
        let reference_logits = match reference.as_deref_mut() {
            Some(rt) => {
                let rl = rt.logits(&window, first)?;
                check(&rl, "the reference")?;
                Some(rl)
            }
            None => None,
        };
        for (r, &t) in targets.iter().enumerate() {
            let row = Row::of(&logits[r * vocab..(r + 1) * vocab]);
            nll.add_scored(&row, t)?;
            if let (Some(rl), Some((rn, kld))) = (&reference_logits, reference_score.as_mut()) {
                let reference_row = Row::of(&rl[r * vocab..(r + 1) * vocab]);
                rn.add_scored(&reference_row, t)?;
                kld.add_scored(&reference_row, &row)?;
            }
        }
        done += 1;
        progress(done, &nll);
    }
    Ok(TextScore {
        nll,
        reference: reference_score,
        windows: done,
    })
}

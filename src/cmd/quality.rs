//! `odai quality`: perplexity and KL divergence over a text, task accuracy, shadow agreement with
//! an endpoint — measured on the runtime a team ships, appended to a results directory for the
//! scorecards (see `quality`).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bench::stats::percentile;
use crate::cli::{Format, QualityArgs};
use crate::engine::{fingerprint, gguf::Gguf, text};
use crate::error::Error;
use crate::exit;
use crate::protocol::EndpointSpec;
use crate::quality::perplexity::Windows;
use crate::quality::tasks::{self, Task};
use crate::quality::{
    self, CheckCount, ItemResult, KldResult, PerplexityResult, QualityRecord, ShadowResult,
    TaskResult,
};
use crate::runtime::{self, LoadOptions, Runtime, RuntimeKind};

pub struct Config {
    pub model: PathBuf,
    pub runtime: RuntimeKind,
    pub gpu_layers: Option<u32>,
    /// KV cache types (`--cache-type-k`/`-v`); `None`: the runtime's default.
    pub kv_types: Option<crate::engine::kv::KvTypes>,
    /// Prompt batch, micro-batch and mapping (`-b`, `-ub`, `--mmap`).
    pub batching: crate::runtime::batching::Batching,
    pub threads: Option<u32>,
    pub text: Option<PathBuf>,
    pub ctx: u32,
    pub chunks: Option<u32>,
    pub reference: Option<PathBuf>,
    pub reference_runtime: RuntimeKind,
    /// The reference's KV cache types; `None`: its runtime's default.
    pub reference_kv_types: Option<crate::engine::kv::KvTypes>,
    pub tasks: Option<PathBuf>,
    pub max_tokens: u32,
    pub shadow: Option<EndpointSpec>,
    /// Shadow prompts as raw text (`/completions`) rather than chat messages.
    pub shadow_raw: bool,
    pub out: Option<PathBuf>,
    pub device: String,
    pub format: Format,
}

fn local_runtime(kind: RuntimeKind, flag: &str) -> Result<RuntimeKind, Error> {
    let kind = match kind {
        RuntimeKind::Auto => RuntimeKind::from_env(),
        RuntimeKind::Openai => {
            return Err(Error::Invalid {
                flag: format!("{flag} openai"),
                problem: "an endpoint gives no logits to score: run the model locally, and \
                          compare with the endpoint through --tasks … --shadow openai:URL"
                    .into(),
            });
        }
        RuntimeKind::Onnxruntime | RuntimeKind::Tflite => {
            return Err(Error::Invalid {
                flag: format!("{flag} {kind}"),
                problem: "quality is measured on language models (GGUF); a tensor model has no \
                          text to score"
                    .into(),
            });
        }
        k => k,
    };
    kind.available()?;
    Ok(kind)
}

impl Config {
    pub fn new(args: &QualityArgs) -> anyhow::Result<Config> {
        if args.text.is_none() && args.tasks.is_none() {
            return Err(Error::Invalid {
                flag: "--text".into(),
                problem: "nothing to measure: give --text FILE (perplexity, and KL divergence \
                          with --reference) and/or --tasks FILE (accuracy, and agreement with \
                          --shadow)"
                    .into(),
            }
            .into());
        }
        let runtime = local_runtime(args.runtime.runtime, "--runtime")?;
        let reference_runtime = match args.reference_runtime {
            Some(k) => local_runtime(k, "--reference-runtime")?,
            None => runtime,
        };
        let shadow = match &args.shadow {
            None => None,
            Some(s) => {
                let Some(url) = s.strip_prefix("openai:") else {
                    return Err(Error::Invalid {
                        flag: "--shadow".into(),
                        problem: format!(
                            "{s:?}: name the endpoint as openai:URL (e.g. \
                             openai:http://127.0.0.1:8080/v1)"
                        ),
                    }
                    .into());
                };
                runtime::openai::Url::parse(url).map_err(|why| Error::Invalid {
                    flag: "--shadow".into(),
                    problem: why,
                })?;
                Some(EndpointSpec {
                    url: url.to_owned(),
                    model: args.shadow_model.clone().unwrap_or_else(|| {
                        args.model
                            .file_stem()
                            .map_or_else(|| "default".into(), |s| s.to_string_lossy().into_owned())
                    }),
                    api_key_env: args.api_key_env.clone(),
                    timeout_s: args.timeout.as_secs_f64(),
                    deadline_s: None,
                })
            }
        };
        Ok(Config {
            model: args.model.clone(),
            runtime,
            gpu_layers: args.runtime.gpu_layers,
            kv_types: args.runtime.kv_types(),
            batching: args.runtime.batching(),
            threads: args.threads,
            text: args.text.clone(),
            ctx: args.ctx,
            chunks: args.chunks,
            reference: args.reference.clone(),
            reference_runtime,
            reference_kv_types: args.reference_cache_type,
            tasks: args.tasks.clone(),
            max_tokens: args.max_tokens,
            shadow,
            shadow_raw: args.shadow_api == crate::cli::ShadowApi::Completions,
            out: args.out.clone(),
            device: args.device.clone(),
            format: args.format,
        })
    }
}

/// What the model file says about tokens: its tokenizer, and BOS/EOS as llama.cpp uses them.
struct Tokens {
    tokenizer: text::Tokenizer,
    /// BOS, when the model adds one (`tokenizer.ggml.add_bos_token`).
    bos: Option<u32>,
    eos: Option<u32>,
}

impl Tokens {
    fn of(path: &Path) -> anyhow::Result<Tokens> {
        let g = Gguf::open(path)?;
        let tokenizer = text::tokenizer(&g).map_err(|why| Error::Model {
            file: path.to_owned(),
            problem: format!("cannot tokenize text for it: {why}"),
        })?;
        let bos_id = g.uint("tokenizer.ggml.bos_token_id").map(|b| b as u32);
        // llama.cpp adds BOS when the file asks (`add_bos_token`); a file that does not say gets
        // llama.cpp's default for its vocabulary type: yes for SentencePiece (`llama`), no for
        // gpt2-style BPE (llama-vocab.cpp, `llama_vocab::impl::load`).
        let add_bos = match g.get("tokenizer.ggml.add_bos_token") {
            Some(crate::engine::gguf::Value::Bool(b)) => *b,
            _ => g.string("tokenizer.ggml.model") == Some("llama"),
        };
        Ok(Tokens {
            tokenizer,
            bos: bos_id.filter(|_| add_bos),
            eos: g.uint("tokenizer.ggml.eos_token_id").map(|e| e as u32),
        })
    }

    /// Token ids of `s`, with BOS first when the model adds one.
    fn encode(&self, s: &str) -> anyhow::Result<Vec<u32>> {
        let mut ids: Vec<u32> = self.bos.into_iter().collect();
        ids.extend(
            text::encode(&self.tokenizer, s)
                .map_err(|e| anyhow::anyhow!("cannot tokenize: {e}"))?,
        );
        Ok(ids)
    }
}

/// A model file's sha256 through the cache `odai bench` keeps (a large model is hashed once).
fn model_sha256(path: &Path) -> Option<String> {
    fingerprint::sha256_cached(path, &crate::engine::synth::cache_dir().join("sha256.tsv")).ok()
}

fn read_text(path: &Path, what: &str) -> Result<String, Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::ConfigFile {
        file: path.to_owned(),
        problem: format!("cannot read the {what} ({e})"),
    })?;
    String::from_utf8(bytes).map_err(|e| Error::ConfigFile {
        file: path.to_owned(),
        problem: format!(
            "the {what} is not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })
}

pub fn execute(cfg: &Config) -> anyhow::Result<i32> {
    crate::interrupt::install();
    let threads = cfg.threads.unwrap_or_else(|| {
        crate::probe::cpu::probe(&crate::sysroot::SysRoot::live())
            .default_threads()
            .0
    });
    // SAFETY: no thread has started yet in this command; candle sizes its pool from it.
    unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    let toks = Tokens::of(&cfg.model)?;
    let task_list = match &cfg.tasks {
        Some(p) => Some((p, tasks::parse(p, &read_text(p, "task file")?)?)),
        None => None,
    };
    let text = match &cfg.text {
        Some(p) => Some((p, read_text(p, "text")?)),
        None => None,
    };
    // The longest sequence either part runs sizes the context.
    let mut longest = text.as_ref().map_or(0, |_| cfg.ctx as usize);
    if let Some((_, ts)) = &task_list {
        for t in ts {
            let n = toks.encode(&t.prompt)?.len() + t.max_tokens.unwrap_or(cfg.max_tokens) as usize;
            longest = longest.max(n);
        }
    }
    let opts = LoadOptions {
        threads: Some(threads),
        context: longest as u32,
        gpu_layers: cfg.gpu_layers,
        kv_types: cfg.kv_types,
        batching: cfg.batching,
        ..Default::default()
    };
    let mut model = runtime::load(cfg.runtime, &cfg.model, &opts)?;
    let vocab = model.vocab().size;
    let stop = || crate::interrupt::requested();
    let chatty = cfg.format == Format::Text && std::io::stderr().is_terminal();

    let mut perplexity = None;
    let mut kld = None;
    if let Some((path, body)) = &text {
        let tokens = toks.encode(body)?;
        let w = Windows::plan(
            tokens.len(),
            cfg.ctx as usize,
            cfg.chunks.map(|c| c as usize),
        )
        .map_err(|why| Error::ConfigFile {
            file: (*path).clone(),
            problem: why,
        })?;
        let mut reference = match &cfg.reference {
            None => None,
            Some(r) => {
                let ref_opts = LoadOptions {
                    kv_types: cfg.reference_kv_types,
                    ..opts.clone()
                };
                let rt = runtime::load(cfg.reference_runtime, r, &ref_opts)?;
                let rv = rt.vocab().size;
                if rv != vocab {
                    return Err(Error::Model {
                        file: r.clone(),
                        problem: format!(
                            "its vocabulary has {rv} tokens, the model's {vocab}: a reference \
                             must be the same model at a higher precision (f16, q8_0)"
                        ),
                    }
                    .into());
                }
                let rtoks = Tokens::of(r)?;
                let sample: String = body.chars().take(2000).collect();
                if rtoks.encode(&sample)? != toks.encode(&sample)? {
                    return Err(Error::Model {
                        file: r.clone(),
                        problem: "it tokenizes the text differently from the model: a reference \
                                  must share its tokenizer"
                            .into(),
                    }
                    .into());
                }
                Some(rt)
            }
        };
        let started = Instant::now();
        let count = w.count;
        let reference_rt: Option<&mut dyn Runtime> = match reference.as_mut() {
            Some(b) => Some(b.as_mut()),
            None => None,
        };
        let score = quality::score_text(
            model.as_mut(),
            reference_rt,
            &tokens,
            w,
            toks.bos,
            &mut |done, nll| {
                if chatty {
                    eprint!(
                        "\rodai: window {done}/{count}: ppl {:.4}   ",
                        nll.perplexity().0
                    );
                }
            },
            &stop,
        )
        .map_err(|e| anyhow::anyhow!("scoring {} failed: {e}", path.display()))?;
        if chatty {
            eprintln!();
        }
        if score.windows == 0 {
            eprintln!("odai: interrupted before the first window finished; nothing recorded");
            return Ok(exit::INTERRUPTED);
        }
        let (ppl, ppl_stderr) = score.nll.perplexity();
        perplexity = Some(PerplexityResult {
            text_sha256: fingerprint::sha256_hex(body.as_bytes()),
            text_bytes: body.len() as u64,
            text_tokens: tokens.len() as u64,
            add_bos: toks.bos.is_some(),
            ctx: cfg.ctx,
            windows: score.windows as u32,
            scored_tokens: score.nll.tokens(),
            ppl,
            ppl_stderr,
            nll_mean: score.nll.mean(),
            elapsed_s: started.elapsed().as_secs_f64(),
        });
        if let (Some((rn, k)), Some(r), Some(rt)) = (&score.reference, &cfg.reference, &reference)
            && let Some(summary) = k.summary()
        {
            let (rppl, rerr) = rn.perplexity();
            kld = Some(KldResult {
                reference: r.display().to_string(),
                reference_sha256: model_sha256(r),
                reference_runtime: rt.info(),
                reference_kv_cache: rt.kv_types().map(|t| t.label()),
                reference_ppl: rppl,
                reference_ppl_stderr: rerr,
                ppl_delta_pct: 100.0 * (ppl / rppl - 1.0),
                summary,
            });
        }
    }

    let mut task_result = None;
    let mut shadow = None;
    if let Some((path, ts)) = &task_list
        && !stop()
    {
        let (t, s) = run_tasks(cfg, model.as_mut(), &toks, path, ts, &stop, chatty)?;
        // Interrupted before the first answer: no figures to record, not zeros.
        if t.tasks > 0 {
            task_result = Some(t);
            shadow = s;
        }
    }

    let record = QualityRecord {
        schema_version: quality::SCHEMA_VERSION,
        odai_version: env!("CARGO_PKG_VERSION").into(),
        device: cfg.device.clone(),
        model: cfg.model.display().to_string(),
        model_sha256: model_sha256(&cfg.model),
        runtime: model.info(),
        kv_cache: model.kv_types().map(|t| t.label()),
        threads: model.threads(),
        perplexity,
        kld,
        tasks: task_result,
        shadow,
        interrupted: stop(),
        finished_unix_s: crate::matrix::results::now_unix_s(),
    };
    let written = match &cfg.out {
        Some(dir) => Some(quality::append(dir, &record)?),
        None => None,
    };
    let out = match cfg.format {
        Format::Json => super::json_text(&record)?,
        Format::Text => text_summary(&record, written.as_deref()),
    };
    super::print(&out)?;
    Ok(if record.interrupted {
        exit::INTERRUPTED
    } else {
        exit::SUCCESS
    })
}

/// Greedy answers to every task (and the endpoint's, in shadow mode), judged.
fn run_tasks(
    cfg: &Config,
    model: &mut dyn Runtime,
    toks: &Tokens,
    path: &Path,
    ts: &[Task],
    stop: &dyn Fn() -> bool,
    chatty: bool,
) -> anyhow::Result<(TaskResult, Option<ShadowResult>)> {
    let mut items = Vec::new();
    let mut server = None;
    for (i, t) in ts.iter().enumerate() {
        if stop() {
            break;
        }
        if chatty {
            eprint!("\rodai: task {}/{}   ", i + 1, ts.len());
        }
        let max = t.max_tokens.unwrap_or(cfg.max_tokens) as usize;
        let prompt = toks.encode(&t.prompt)?;
        let started = Instant::now();
        let mut ids = Vec::with_capacity(max);
        let mut next = model.prefill(&prompt).map_err(|e| {
            anyhow::anyhow!("{}: line {}: prefill failed: {e}", path.display(), t.line)
        })?;
        let mut answer = String::new();
        loop {
            if Some(next) == toks.eos {
                break;
            }
            ids.push(next);
            answer = text::decode(&toks.tokenizer, &ids).unwrap_or_default();
            if ids.len() >= max || t.stop.iter().any(|s| answer.contains(s.as_str())) {
                break;
            }
            next = model.decode(next).map_err(|e| {
                anyhow::anyhow!("{}: line {}: decode failed: {e}", path.display(), t.line)
            })?;
        }
        let latency_ms = started.elapsed().as_secs_f64() * 1e3;
        let local = t.judge(&answer);
        let mut item = ItemResult {
            id: t.id.clone(),
            line: t.line,
            check: t.check.name().into(),
            correct: local.correct,
            tokens: ids.len() as u32,
            latency_ms,
            cloud_correct: None,
            agree: None,
            cloud_latency_ms: None,
            cloud_error: None,
        };
        if let Some(e) = &cfg.shadow {
            match runtime::openai::complete(e, &t.prompt, max as u32, cfg.shadow_raw) {
                Ok(c) => {
                    let cloud = t.judge(&c.text);
                    item.cloud_correct = Some(cloud.correct);
                    item.agree = Some(cloud.key == local.key);
                    item.cloud_latency_ms = Some(c.total_ms);
                    server = server.or(c.server);
                }
                // A dead endpoint is said at once, not as a run of failed tasks.
                Err(why) if i == 0 => {
                    return Err(Error::Runtime {
                        runtime: format!("--shadow openai:{}", e.url),
                        problem: format!(
                            "{why} (is the endpoint up? odai bench --endpoint checks it)"
                        ),
                    }
                    .into());
                }
                Err(why) => item.cloud_error = Some(why),
            }
        }
        items.push(item);
    }
    if chatty {
        eprintln!();
    }
    let n = items.len() as u64;
    let correct = items.iter().filter(|i| i.correct).count() as u64;
    let (lo, hi) = tasks::wilson_pct(correct, n);
    let mut by_check = std::collections::BTreeMap::<String, CheckCount>::new();
    for i in &items {
        let c = by_check.entry(i.check.clone()).or_default();
        c.tasks += 1;
        c.correct += u32::from(i.correct);
    }
    let local_ms: Vec<f64> = items.iter().map(|i| i.latency_ms).collect();
    let shadow = cfg.shadow.as_ref().map(|e| {
        let answered: Vec<&ItemResult> = items.iter().filter(|i| i.agree.is_some()).collect();
        let compared = answered.len() as u64;
        let agree = answered.iter().filter(|i| i.agree == Some(true)).count() as u64;
        let cloud_correct = answered
            .iter()
            .filter(|i| i.cloud_correct == Some(true))
            .count() as u64;
        let ci = (compared > 0).then(|| tasks::wilson_pct(agree, compared));
        let cloud_ms: Vec<f64> = answered.iter().filter_map(|i| i.cloud_latency_ms).collect();
        ShadowResult {
            endpoint: format!("{}@{}", e.model, e.url),
            api: if cfg.shadow_raw {
                "completions"
            } else {
                "chat"
            }
            .into(),
            server: server.clone().unwrap_or_else(|| "unreported".into()),
            compared: compared as u32,
            agree: agree as u32,
            agreement_pct: (compared > 0).then(|| 100.0 * agree as f64 / compared as f64),
            ci95_low_pct: ci.map(|c| c.0),
            ci95_high_pct: ci.map(|c| c.1),
            cloud_correct: cloud_correct as u32,
            cloud_accuracy_pct: (compared > 0)
                .then(|| 100.0 * cloud_correct as f64 / compared as f64),
            failures: items.iter().filter(|i| i.cloud_error.is_some()).count() as u32,
            local_latency_ms_p50: percentile(&local_ms, 50.0),
            local_latency_ms_p95: percentile(&local_ms, 95.0),
            cloud_latency_ms_p50: (!cloud_ms.is_empty()).then(|| percentile(&cloud_ms, 50.0)),
            cloud_latency_ms_p95: (!cloud_ms.is_empty()).then(|| percentile(&cloud_ms, 95.0)),
        }
    });
    let result = TaskResult {
        tasks_sha256: fingerprint::sha256_file(path)?,
        tasks: n as u32,
        correct: correct as u32,
        accuracy_pct: if n > 0 {
            100.0 * correct as f64 / n as f64
        } else {
            0.0
        },
        ci95_low_pct: lo,
        ci95_high_pct: hi,
        by_check,
        latency_ms_p50: percentile(&local_ms, 50.0),
        latency_ms_p95: percentile(&local_ms, 95.0),
        items,
    };
    Ok((result, shadow))
}

fn f(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn text_summary(r: &QualityRecord, written: Option<&Path>) -> String {
    let mut s = format!(
        "{} on {} {} ({}), {} threads\n",
        r.model, r.runtime.runtime, r.runtime.runtime_version, r.runtime.backend, r.threads
    );
    if let Some(p) = &r.perplexity {
        s.push_str(&format!(
            "perplexity   {:.4} ± {:.4}  ({} windows of {} tokens, {} scored{})\n",
            p.ppl,
            p.ppl_stderr,
            p.windows,
            p.ctx,
            p.scored_tokens,
            if p.add_bos { ", BOS first" } else { "" }
        ));
    }
    if let Some(k) = &r.kld {
        s.push_str(&format!(
            "reference    {}: perplexity {:.4} ± {:.4}\n  Δ perplexity {:+.2} %\n  KL divergence mean {:.5} ± {:.5}, median {:.5}, p99 {:.4}, max {:.3}\n  top-1 agreement {:.2} %\n",
            k.reference,
            k.reference_ppl,
            k.reference_ppl_stderr,
            k.ppl_delta_pct,
            k.summary.kld_mean,
            k.summary.kld_mean_stderr,
            k.summary.kld_median,
            k.summary.kld_p99,
            k.summary.kld_max,
            k.summary.top1_agreement_pct
        ));
    }
    if let Some(t) = &r.tasks {
        s.push_str(&format!(
            "tasks        {}/{} right: {} % (95 % CI {}–{} %); latency p50 {} ms, p95 {} ms\n",
            t.correct,
            t.tasks,
            f(t.accuracy_pct),
            f(t.ci95_low_pct),
            f(t.ci95_high_pct),
            f(t.latency_ms_p50),
            f(t.latency_ms_p95)
        ));
    }
    if let Some(sh) = &r.shadow {
        match (sh.agreement_pct, sh.ci95_low_pct, sh.ci95_high_pct) {
            (Some(a), Some(lo), Some(hi)) => s.push_str(&format!(
                "shadow       {}: agreement {}/{} = {} % (95 % CI {}–{} %), cloud right {}/{}; latency p50 local {} ms vs cloud {} ms{}\n",
                sh.endpoint,
                sh.agree,
                sh.compared,
                f(a),
                f(lo),
                f(hi),
                sh.cloud_correct,
                sh.compared,
                f(sh.local_latency_ms_p50),
                sh.cloud_latency_ms_p50.map_or("-".into(), f),
                if sh.failures > 0 {
                    format!("; {} request(s) failed", sh.failures)
                } else {
                    String::new()
                }
            )),
            _ => s.push_str(&format!(
                "shadow       {}: no answers to compare ({} request(s) failed)\n",
                sh.endpoint, sh.failures
            )),
        }
    }
    if r.interrupted {
        s.push_str("interrupted: the figures cover what finished before Ctrl-C\n");
    }
    if let Some(w) = written {
        s.push_str(&format!("appended to {}\n", w.display()));
    }
    s
}

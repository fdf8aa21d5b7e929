//! The command line, as clap derive types — and nothing else. Each subcommand's typed config is
//! built from these in `src/cmd/<name>.rs`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "odai",
    version,
    about = "Is this AI model ready to ship on this device? Measured evidence, not guesses.",
    long_about = "odai probes a device (CPU, SIMD, memory headroom, GPUs, NPUs, thermal, power), \
benchmarks real local inference, runs benchmark matrices across a device farm, and scores \
on-device readiness.\n\nEvery reading is a value or \"unavailable: reason\" - never a made-up zero.",
    long_version = crate::LONG_VERSION,
    after_help = "Exit codes: 0 success, 1 failure, 2 usage error, 3 bad input (missing or malformed \
file or directory), 4 model does not fit the device's memory headroom, 5 a release gate tripped (compare found a \
regression or a lost cell, report --fail-on a verdict below the level), 130 interrupted (finished results are on disk).\n\
Colour follows --color, NO_COLOR and whether output is a terminal. -o is the output format in every command \
(text, json…); --output FILE names a file, --out DIR a directory."
)]
pub struct Cli {
    /// Read /proc, /sys and /dev under DIR instead of the live device (a captured device tree)
    #[arg(long, global = true, env = "ODAI_ROOT", value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// When to use colour in text output
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Log to stderr: -v what odai and its libraries do (wgpu's driver messages, workers'
    /// starts and ends), -vv debug, -vvv trace. RUST_LOG, where set, decides instead
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Describe what this device can give a local model: CPU, SIMD, memory headroom, GPUs, NPUs,
    /// thermal state, power and energy meters, and its device class
    #[command(
        after_help = "--gpu-check runs WGSL compute shaders on every adapter: a functional check whose every result is \
verified, STREAM copy/triad bandwidth, f32 and f16 matrix-multiply throughput, dispatch latency and the largest \
buffer the driver hands out (docs/probe-json.md, gpus[].check). An adapter whose check fails is reported with \
wgpu's error and never counts as a GPU path (the class rule min_gpu_bandwidth_gbs).\n\n\
Examples:\n  odai probe\n  odai probe --format json --no-gpu | jq .memory.headroom_bytes\n  \
odai probe --gpu-check --format json | jq '.gpus[] | {name, backend, triad: .check.triad_gb_s}'\n  \
odai probe --root tests/fixtures/raspberry-pi-5   # a captured device tree"
    )]
    Probe(ProbeArgs),

    /// Greedy-decode a prompt on a GGUF model and print the generated token ids (and text)
    #[command(
        after_help = "Examples:\n  odai generate --model SmolLM2-135M-Instruct.Q4_1.gguf --prompt \"The capital of France is\" -n 16\n  odai generate --model m.gguf --prompt-ids 504,3575,282 -n 8 --format json"
    )]
    Generate(GenerateArgs),

    /// Inspect GGUF models, or write synthetic ones in the shape of real families
    #[command(subcommand)]
    Model(ModelCommand),

    /// Benchmark real local inference: load, TTFT, prefill and decode speed, token latency
    /// percentiles, peak memory, and how close decode runs to the memory-bandwidth roofline
    #[command(
        after_help = "Each repetition runs in a fresh worker process (real thread counts, honest peak memory, \
cold starts that are cold). Comma lists (-m a.gguf,b.gguf -t 2,4 -p 0,512) run every combination, \
as a matrix file's axes would.\n\n\
llama-bench test             odai\n  \
pp512        (-p 512)        -p 512 -n 0: prefill_tps (ttft_ms adds the first token)\n  \
tg128        (-n 128)        -p 0 -n 128: decode_tps from an empty context\n  \
tg128 @ d512 (-d 512)        -p 512 -n 128: decode_tps (odai decodes after its prompt)\n  \
pp512+tg128  (-pg 512,128)   --pg 512,128 (or -pg): pg_tps, tokens over prefill plus decode time\n  \
-r, -t, -m, -o md|csv|json|jsonl as in llama-bench\n\n\
Examples:\n  odai bench --synthetic llama-3.2-1b:q4_0\n  \
odai bench -m a.gguf,b.gguf -t 2,4 -p 0,512 -n 128 -r 5 -o md\n  \
odai bench --model model.gguf --cold --reps 10 --export-json r.json --export-csv r.csv\n  \
odai bench -m model.gguf -p 512 -n 0 -o jsonl >> prefill.jsonl"
    )]
    Bench(Box<BenchArgs>),

    /// Benchmark matrices: plan them (cells per device, skips, time) and run them on this device
    /// or a device farm, resumably
    #[command(subcommand)]
    Matrix(MatrixCommand),

    /// A device farm (farm.toml: local, SSH and ADB devices): check every device, deploy odai
    #[command(subcommand)]
    Farm(FarmCommand),

    /// This device in one command: probe, the quick benchmark matrix sized to its headroom, and
    /// a readiness scorecard with the report files
    #[command(
        after_help = "Runs matrices/quick.toml (built in) on this device: synthetic models, nothing downloaded.\n\
Cells whose model does not fit the memory headroom are skipped, not attempted.\n\
Ends with the scorecard for --profile (the workload) and writes DIR/report/ (CSV, HTML, Markdown, JSON).\n\n\
Examples:\n  odai profile\n  odai profile --out results/my-laptop\n  odai profile --format json"
    )]
    Profile(ProfileArgs),

    /// Readiness from results: scorecards per device class and model with verdicts (on-device
    /// first, hybrid, cloud-only), fleet coverage, CSV for reviews, an HTML report, Markdown
    #[command(
        after_help = "Writes DIR/measurements.csv, DIR/scorecard.csv (docs/measurements-csv.md, docs/scorecard-csv.md), \
DIR/report.html (self-contained), DIR/report.md and DIR/report.json; prints the verdict matrix.\n\
Built-in profiles: chat-assistant (default), typing-assistant, document-summarizer, voice-command, offline-translation.\n\n\
Examples:\n  odai report results/r1\n  odai report results/r1 --profile typing-assistant --out review/\n  \
odai report results/r1 --profile my-workload.toml --format csv,md\n  \
odai report results/r1 --fail-on hybrid   # exit 5 unless every class is on-device first"
    )]
    Report(ReportArgs),

    /// Compare two results (directories or measurements.csv) as a release gate: per cell and
    /// metric the change, its significance (Welch's t-test on the repetitions), regressions past
    /// a threshold, cells lost, changes too noisy to call
    #[command(
        after_help = "Cells pair up by --match-by (device and cell id by default: the same matrix run twice). A cell ok in BASE that failed, was skipped or is missing in NEW is a regression. A metric worse than --threshold is a regression when Welch's t-test on the repetitions finds it significant (p < 0.05), or when a side has a single repetition and there is nothing to test; with repetitions that cannot tell it from noise it is INCONCLUSIVE: shown, counted, and a failure under --fail-on-inconclusive. Two results with no cell in common are an error, not a pass. A results directory and its measurements.csv give the same verdicts.\n\n\
Exit status: 0 no regression, 5 a regression or a lost cell (the gate tripped; inconclusive changes too under --fail-on-inconclusive), 1 the comparison itself failed, 2 a usage error, 3 an input is missing or malformed, or the two share no cell.\n\n\
Examples:\n  odai compare results/main results/pr-123\n  \
odai compare results/q4_0 results/q4_k --match-by device,threads,prompt_tokens,gen_tokens\n  \
odai compare base/ new/ --threshold 10% --fail-on-inconclusive --format markdown > comment.md\n  \
odai compare base/measurements.csv new/measurements.csv --format json"
    )]
    Compare(CompareArgs),

    /// Measure a model's quality: perplexity over a text and KL divergence against a reference
    /// (llama.cpp's method), task accuracy on greedy answers, and agreement with a cloud endpoint
    #[command(
        after_help = "Perplexity follows llama-perplexity: the text is cut into non-overlapping windows of --ctx \
tokens (at least two), each scored on its second half, so the figure compares with what llama.cpp prints.\n\
With --reference (the same vocabulary: an f16 or q8_0 of the same model) the same windows also give KL \
divergence (mean, p99), top-1 agreement and the perplexity change, as llama-perplexity --kl-divergence does.\n\
With --tasks each line of a JSONL file is a prompt, an expected answer and a check (exact, contains, \
choice, regex), answered greedily; --shadow sends the same prompts to an endpoint and reports agreement \
and both latencies. --out DIR appends the figures to DIR/quality.jsonl, where odai report's quality \
criteria read them. Results hold figures, counts and hashes, never a text, prompt or answer.\n\n\
Examples:\n  odai quality --model m-q4_0.gguf --text \"$(scripts/fetch-corpus.sh)\" --chunks 20\n  \
odai quality --model m-q4_0.gguf --reference m-q8_0.gguf --text corpus.txt --out results/r1\n  \
odai quality --model m.gguf --tasks tasks.jsonl --shadow openai:http://127.0.0.1:8080/v1 --format json"
    )]
    Quality(Box<QualityArgs>),

    /// Routing rules from measured evidence: which requests can run on each device class
    #[command(subcommand)]
    Route(RouteCommand),

    /// The results database: every run's records in one SQLite file, for reviews across releases
    #[command(subcommand)]
    Db(DbCommand),

    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    #[command(
        after_help = "Examples:\n  odai completions bash > ~/.local/share/bash-completion/completions/odai\n  \
odai completions zsh > \"${fpath[1]}/_odai\"\n  odai completions fish > ~/.config/fish/completions/odai.fish\n\n\
Man pages: `cargo xtask man` writes target/man/odai.1 and one page per subcommand."
    )]
    Completions(CompletionsArgs),

    /// Serves one coordinator request (worker protocol on stdin/stdout)
    #[command(hide = true)]
    Worker,

    /// Background load for `odai bench --load` (busy threads, touched memory) until killed
    #[command(hide = true)]
    Contend {
        #[arg(long, default_value_t = 0)]
        cpu: u32,
        #[arg(long, default_value_t = 0)]
        mem: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Add results directories to a SQLite database (runs, cells, repetitions, failures,
    /// quality, probes; docs/db.md); importing one again changes nothing
    #[command(
        after_help = "Examples:\n  odai db import results/r1 results/r2 --db odai.sqlite\n  \
odai report --db odai.sqlite --since 30d\n  sqlite3 odai.sqlite 'SELECT model, runtime, decode_tps_mean FROM cells'"
    )]
    Import(DbImportArgs),
}

#[derive(Debug, Args)]
pub struct DbImportArgs {
    /// Results directories (odai matrix run --out, odai profile --out)
    #[arg(value_name = "RESULTS_DIR", required = true)]
    pub results: Vec<PathBuf>,

    /// The database file (created if missing)
    #[arg(long, value_name = "FILE", default_value = "odai.sqlite")]
    pub db: PathBuf,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Which runtime runs the model, shared by `generate` and `quality`.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// Runtime: auto (odai's engine where it runs the model, else candle; ONNX Runtime for .onnx,
    /// TF Lite for .tflite), odai, candle, llama.cpp (builds with --features llama-cpp), openai
    /// (an endpoint: --endpoint), onnxruntime, or tflite. ODAI_ENGINE=candle is an older spelling
    #[arg(long, value_name = "NAME", default_value = "auto", value_parser = runtime_kind)]
    pub runtime: crate::runtime::RuntimeKind,

    /// Layers to offload to a GPU (llama.cpp with a GPU backend built in)
    #[arg(long, value_name = "N")]
    pub gpu_layers: Option<u32>,

    /// KV cache type of the keys: f16 (the default of odai's engine and llama.cpp), f32, q8_0 or
    /// q4_0 (ggml's blocks: about half and a quarter of f16's bytes, at some cost in accuracy —
    /// `odai quality --reference` measures it); `-ctk` works too. candle's cache is f32 only
    #[arg(long, value_name = "TYPE", value_parser = kv_type)]
    pub cache_type_k: Option<crate::engine::kv::KvType>,

    /// KV cache type of the values, as --cache-type-k; `-ctv` works too
    #[arg(long, value_name = "TYPE", value_parser = kv_type)]
    pub cache_type_v: Option<crate::engine::kv::KvType>,

    /// Prompt tokens per call into the runtime (llama.cpp's n_batch) [default: 2048]
    #[arg(short = 'b', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Option<u32>,

    /// Positions per pass through the layers, what sizes the runtime's working memory
    /// (llama.cpp's n_ubatch; at most --batch-size) [default: 512]; `-ub` works too
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub ubatch_size: Option<u32>,

    /// 1: map the model file (the default); 0: read it into the process's own memory
    /// (odai's engine and llama.cpp; candle always reads it); `-mmp` works too
    #[arg(long, value_name = "0|1", value_parser = mmap_flag)]
    pub mmap: Option<bool>,
}

impl RuntimeArgs {
    /// `--batch-size`, `--ubatch-size` and `--mmap` as asked (each `None`: the default).
    pub fn batching(&self) -> crate::runtime::batching::Batching {
        crate::runtime::batching::Batching {
            batch: self.batch_size,
            ubatch: self.ubatch_size,
            mmap: self.mmap,
        }
    }

    /// `--cache-type-k`/`-v` as asked: `None` when neither was given (the runtime's default), the
    /// other side f16 when one was.
    pub fn kv_types(&self) -> Option<crate::engine::kv::KvTypes> {
        (self.cache_type_k.is_some() || self.cache_type_v.is_some()).then(|| {
            crate::engine::kv::KvTypes {
                k: self.cache_type_k.unwrap_or_default(),
                v: self.cache_type_v.unwrap_or_default(),
            }
        })
    }
}

/// `--mmap`'s value: llama-bench's 0|1, or the words for them.
fn mmap_flag(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        other => Err(format!(
            "{other:?} is not 0 or 1 (1 maps the model file, 0 reads it into memory)"
        )),
    }
}

fn kv_type(s: &str) -> Result<crate::engine::kv::KvType, String> {
    crate::engine::kv::KvType::parse(s)
}

fn kv_types(s: &str) -> Result<crate::engine::kv::KvTypes, String> {
    crate::engine::kv::KvTypes::parse(s)
}

fn runtime_kind(s: &str) -> Result<crate::runtime::RuntimeKind, String> {
    crate::runtime::RuntimeKind::parse(s)
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Model file: GGUF, or a tensor model (.onnx, .tflite: --mode burst|stream); with
    /// --endpoint, the model name the endpoint serves. A comma list (or the flag repeated)
    /// benchmarks each
    #[arg(
        short = 'm',
        long,
        value_name = "FILE|NAME,...",
        value_delimiter = ',',
        conflicts_with = "synthetic",
        required_unless_present = "synthetic"
    )]
    pub model: Vec<PathBuf>,

    /// Runtime(s), a comma list: auto (odai's engine where it runs the model, else candle; ONNX
    /// Runtime for .onnx, TF Lite for .tflite), odai, candle, llama.cpp (builds with --features
    /// llama-cpp), openai (an endpoint: --endpoint), onnxruntime, or tflite. ODAI_ENGINE=candle
    /// is an older spelling
    #[arg(long, value_name = "NAME,...", value_delimiter = ',', default_value = "auto", value_parser = runtime_kind)]
    pub runtime: Vec<crate::runtime::RuntimeKind>,

    /// Layers to offload to a GPU, a comma list benchmarking each (llama-bench's -ngl, which is
    /// accepted too; 99 puts every layer there): llama.cpp with a GPU backend built in. Each
    /// result records the layers per device; a run that fell back to the CPU says so
    #[arg(long, value_name = "N,...", value_delimiter = ',')]
    pub gpu_layers: Vec<u32>,

    /// KV cache type of the keys, a comma list benchmarking each (llama-bench's -ctk, which is
    /// accepted too): f16 (the default of odai's engine and llama.cpp), f32, q8_0 or q4_0.
    /// Cells of odai's engine, auto and llama.cpp multiply by it; candle's cache is f32 only
    #[arg(long, value_name = "TYPE,...", value_delimiter = ',', value_parser = kv_type)]
    pub cache_type_k: Vec<crate::engine::kv::KvType>,

    /// KV cache type of the values, a comma list (llama-bench's -ctv), as --cache-type-k
    #[arg(long, value_name = "TYPE,...", value_delimiter = ',', value_parser = kv_type)]
    pub cache_type_v: Vec<crate::engine::kv::KvType>,

    /// Prompt tokens per call into the runtime, a comma list (llama-bench's -b, llama.cpp's
    /// n_batch) [default: 2048]. odai's engine and candle feed a longer prompt in calls of this
    /// many and run each in micro-batches (--ubatch-size)
    #[arg(short = 'b', long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: Vec<u32>,

    /// Positions per pass through the layers, a comma list (llama-bench's -ub, llama.cpp's
    /// n_ubatch; at most the batch) [default: 512]: what sizes the working memory (odai's
    /// activations, llama.cpp's compute buffer, candle's attention scores); larger ones read the
    /// weights fewer times per prompt
    #[arg(long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..))]
    pub ubatch_size: Vec<u32>,

    /// 1: map the model file (the default: pages the kernel may drop and read again); 0: read
    /// it into the process's own memory first (what a low-memory killer counts). A comma list
    /// (llama-bench's -mmp, accepted too); odai's engine, auto and llama.cpp
    #[arg(long, value_name = "0|1,...", value_delimiter = ',', value_parser = mmap_flag)]
    pub mmap: Vec<bool>,

    /// An OpenAI-compatible endpoint's base URL (llama-server, ollama, vLLM, a hosted API), e.g.
    /// http://127.0.0.1:8080/v1: benchmarks --model NAME there (the openai runtime)
    #[arg(long, value_name = "URL", conflicts_with = "synthetic")]
    pub endpoint: Option<String>,

    /// Environment variable that holds the endpoint's API key (never give the key itself)
    #[arg(long, value_name = "VAR", requires = "endpoint")]
    pub api_key_env: Option<String>,

    /// An endpoint request that sends nothing for this long fails (a stalled server), as does
    /// one whose response head takes longer; the whole request may take this long per token
    /// asked (-n) and two more
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = duration)]
    pub request_timeout: std::time::Duration,

    /// Synthetic model PRESET[:QUANT] (e.g. llama-3.2-1b:q4_0), written once into the cache; a
    /// comma list benchmarks each
    #[arg(long, value_name = "PRESET[:QUANT],...", value_delimiter = ',')]
    pub synthetic: Vec<String>,

    /// CPU threads, a comma list (default: one per physical core the process may use — its CPU
    /// affinity and cgroup cpuset — capped by the cgroup CPU quota; `odai probe` shows the figure
    /// and why)
    #[arg(short, long, value_name = "N,...", value_delimiter = ',', value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Vec<u32>,

    /// Prompt tokens (prefill), a comma list; 0: decode only (llama-bench's tgN). Decode after a
    /// P-token prompt is llama-bench's `tgN @ dP`
    #[arg(short = 'p', long, value_name = "N,...", value_delimiter = ',', default_value = "512", value_parser = clap::value_parser!(u32).range(0..))]
    pub prompt_tokens: Vec<u32>,

    /// Generated tokens (decode), a comma list; 0: prefill only (llama-bench's ppN)
    #[arg(short = 'n', long, value_name = "N,...", value_delimiter = ',', default_value = "128", value_parser = clap::value_parser!(u32).range(0..))]
    pub gen_tokens: Vec<u32>,

    /// Also a cell of P prompt then N generated tokens, reported as llama-bench's ppP+tgN
    /// (tokens over prefill plus decode time) besides prefill and decode; `-pg` works too;
    /// repeatable
    #[arg(long = "pg", value_name = "P,N", value_parser = pg_pair)]
    pub pg: Vec<(u32, u32)>,

    /// Tokens already in the context before the prompt, a comma list (llama-bench's -d): filled
    /// untimed, then the prompt's prefill is `ppP @ dD` and the decode after it `tgN @ dD+P`.
    /// Decode at a depth alone is `-p 0 -d D`. Local runtimes only (an endpoint's prompt is
    /// one request)
    #[arg(
        short = 'd',
        long,
        value_name = "N,...",
        value_delimiter = ',',
        default_value = "0"
    )]
    pub depth: Vec<u32>,

    /// Measured repetitions [default: 5; 1 with --sustained]
    #[arg(short = 'r', long, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,

    /// Repetitions run first and discarded [default: 1; 0 with --sustained]
    #[arg(long)]
    pub warmup: Option<u32>,

    /// Decode continuously for this long (e.g. 15m), judged per window: stability, checkpoints,
    /// throttling, temperature, energy
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub sustained: Option<std::time::Duration>,

    /// Window of a sustained run's time series
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub window: std::time::Duration,

    /// Points of a sustained run to compare with its first minute
    #[arg(long, value_name = "LIST", default_value = "5m,10m,15m", value_delimiter = ',', value_parser = duration)]
    pub checkpoints: Vec<std::time::Duration>,

    /// Background contention during the run: none, cpu:N (busy threads), mem:SIZE (memory
    /// touched and re-touched), or cpu:N,mem:SIZE
    #[arg(long, value_name = "LOAD", default_value = "none")]
    pub load: String,

    /// Wait this long before each repetition (let the device cool down)
    #[arg(long, value_name = "DURATION", value_parser = duration, conflicts_with = "cooldown_to")]
    pub cooldown: Option<std::time::Duration>,

    /// Before each repetition, wait until the hottest zone is within DELTA_C °C of its idle
    /// temperature (at most 10 minutes)
    #[arg(long, value_name = "DELTA_C")]
    pub cooldown_to: Option<f64>,

    /// Sample idle power for this long first, so the report can give the model's marginal power
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub idle_baseline: Option<std::time::Duration>,

    /// Telemetry sampling interval, or "off"
    #[arg(long, value_name = "DURATION|off", default_value = "1s", value_parser = interval)]
    pub sample_interval: SampleInterval,

    /// Evict the model file from the page cache before each load (cold start)
    #[arg(long)]
    pub cold: bool,

    /// Count decoded tokens slower than this as deadline misses
    #[arg(long, value_name = "MS")]
    pub token_deadline_ms: Option<f64>,

    /// Run even when the model does not fit the device's memory headroom
    #[arg(long)]
    pub force: bool,

    /// Seed of the random prompt token ids
    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// What stdout gets: text, md (llama-bench's table), csv (a row per repetition), json (the
    /// report; an array of them for several cells), jsonl (a report per line, as each cell
    /// ends), or sql (statements for the results database, as llama-bench's -o sql)
    #[arg(short = 'o', long, value_enum, default_value_t = BenchFormat::Text)]
    pub format: BenchFormat,

    /// Write FILE in --format too (stdout then gets text); the same as --export-FORMAT FILE.
    /// Paths across odai: --output FILE names a file, --out DIR a directory (--out here is the
    /// older spelling)
    #[arg(long = "output", visible_alias = "out", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Write the reports as JSON to FILE (repeatable; rewritten after every cell)
    #[arg(long, value_name = "FILE", help_heading = "Exports")]
    pub export_json: Vec<PathBuf>,

    /// Write a report per line (JSON Lines) to FILE
    #[arg(long, value_name = "FILE", help_heading = "Exports")]
    pub export_jsonl: Vec<PathBuf>,

    /// Write a row per repetition (CSV) to FILE
    #[arg(long, value_name = "FILE", help_heading = "Exports")]
    pub export_csv: Vec<PathBuf>,

    /// Write llama-bench's Markdown table to FILE
    #[arg(
        long,
        visible_alias = "export-md",
        value_name = "FILE",
        help_heading = "Exports"
    )]
    pub export_markdown: Vec<PathBuf>,

    /// Write the text summary to FILE
    #[arg(long, value_name = "FILE", help_heading = "Exports")]
    pub export_text: Vec<PathBuf>,

    /// Write SQL for the results database to FILE (`sqlite3 odai.sqlite < FILE` adds the run)
    #[arg(long, value_name = "FILE", help_heading = "Exports")]
    pub export_sql: Vec<PathBuf>,
    /// Tensor models: burst (inferences back to back) or stream (paced at --rate for
    /// --duration: deadline misses, CPU duty, energy per inference, battery %/h)
    #[arg(long, value_enum, default_value_t = TensorMode::Burst, help_heading = "Tensor models (.onnx, .tflite)")]
    pub mode: TensorMode,

    /// Burst: measured inferences [default: 1000, or as many as fit --duration]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Tensor models (.onnx, .tflite)")]
    pub iterations: Option<u64>,

    /// Stream: how long to run [default: 1m]; burst: run for this long instead of --iterations
    #[arg(long, value_name = "DURATION", value_parser = duration, help_heading = "Tensor models (.onnx, .tflite)")]
    pub duration: Option<std::time::Duration>,

    /// Stream: the input rate, frames per second (e.g. 31.25 or 31.25/s)
    #[arg(long, value_name = "HZ", value_parser = rate, conflicts_with = "frame", help_heading = "Tensor models (.onnx, .tflite)")]
    pub rate: Option<f64>,

    /// Stream: samples per frame; with --sample-rate gives the rate (512 at 16000 Hz: 31.25/s)
    #[arg(long, value_name = "SAMPLES", requires = "sample_rate", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Tensor models (.onnx, .tflite)")]
    pub frame: Option<u64>,

    /// Stream: the audio's sample rate in Hz, with --frame
    #[arg(long, value_name = "HZ", requires = "frame", value_parser = clap::value_parser!(u64).range(1..), help_heading = "Tensor models (.onnx, .tflite)")]
    pub sample_rate: Option<u64>,

    /// A further model run on each frame after the previous one (a pipeline: melspectrogram,
    /// then embedding, then the wake-word head); repeat for each stage
    #[arg(
        long,
        value_name = "FILE",
        help_heading = "Tensor models (.onnx, .tflite)"
    )]
    pub then: Vec<PathBuf>,

    /// An input's shape, for symbolic dims (e.g. input=1x512); repeatable
    #[arg(
        long,
        value_name = "NAME=DIMS",
        help_heading = "Tensor models (.onnx, .tflite)"
    )]
    pub shape: Vec<String>,

    /// An input's values: a constant (sr=16000) or a recorded array (audio=clip.npy, the input's
    /// shape or frames × it, cycled); other inputs get seeded random values; repeatable
    #[arg(
        long,
        value_name = "NAME=VALUE|FILE.npy",
        help_heading = "Tensor models (.onnx, .tflite)"
    )]
    pub input: Vec<String>,

    /// ONNX Runtime execution provider (cpu, xnnpack, nnapi, coreml, qnn, cuda) or TF Lite
    /// delegate (default, xnnpack)
    #[arg(
        long,
        value_name = "NAME",
        help_heading = "Tensor models (.onnx, .tflite)"
    )]
    pub provider: Option<String>,

    /// The runtime's shared library ([RUNTIME=]PATH: libonnxruntime.so, libtensorflowlite_c.so);
    /// default: ORT_DYLIB_PATH / ODAI_TFLITE_LIB, else the loader's search path
    #[arg(
        long,
        value_name = "[RUNTIME=]PATH",
        help_heading = "Tensor models (.onnx, .tflite)"
    )]
    pub runtime_lib: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TensorMode {
    Burst,
    Stream,
}

/// `31.25`, `31.25/s` or `31.25hz`: frames per second.
fn rate(s: &str) -> Result<f64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("/s").trim_end_matches("hz").trim();
    match t.parse::<f64>() {
        Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
        _ => Err(format!(
            "{s:?} is not a rate in frames per second (e.g. 31.25/s)"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchFormat {
    Text,
    #[value(alias = "markdown")]
    Md,
    Csv,
    Json,
    Jsonl,
    /// SQL statements for the results database (llama-bench's -o sql; docs/db.md)
    Sql,
}

/// `512,128`: llama-bench's `-pg` pair, prompt then generated tokens.
fn pg_pair(s: &str) -> Result<(u32, u32), String> {
    let bad = || format!("{s:?} is not P,N (prompt and generated tokens, e.g. 512,128)");
    let (p, n) = s.split_once(',').ok_or_else(bad)?;
    let p: u32 = p.trim().parse().map_err(|_| bad())?;
    let n: u32 = n.trim().parse().map_err(|_| bad())?;
    if p == 0 || n == 0 {
        return Err(format!("{s:?}: both P and N must be 1 or more"));
    }
    Ok((p, n))
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Architecture, parameters, tensor types, context length, and the memory a run needs
    #[command(
        after_help = "Examples:\n  odai model inspect model.gguf\n  odai model inspect model.gguf --context 4096 --sha256 --format json"
    )]
    Inspect(InspectArgs),

    /// Write a GGUF with random weights in the exact shape of a real model family
    #[command(
        after_help = "Presets: smollm2-135m, qwen2.5-0.5b, qwen3-0.6b, llama-3.2-1b, tinyllama-1.1b, llama-3.2-3b, \
phi-3-mini, gemma-3-1b, llama-3.1-8b.\nQuantizations: q4_0, q8_0, q4_k, f16.\n\nExamples:\n  odai model synth --preset llama-3.2-3b --quant q4_k --output llama3b-q4k.gguf\n  odai model inspect llama3b-q4k.gguf"
    )]
    Synth(SynthArgs),

    /// Token ids of a text as odai tokenizes it for a model: the ids `generate --prompt` and
    /// `quality` feed it (gpt2 BPE, SentencePiece BPE and unigram vocabularies, as llama.cpp
    /// tokenizes them)
    #[command(
        after_help = "Control and user-defined tokens written in the text (<start_of_turn>, <|im_start|>) become \
their own ids, as a chat template's do; no BOS is added.\n\n\
Examples:\n  odai model tokenize model.gguf -p 'The capital of France is'\n  \
odai model tokenize model.gguf -p 'first text' -p 'second text' --format json\n  \
odai model tokenize model.gguf --prompt-file prompt.txt"
    )]
    Tokenize(TokenizeArgs),
}

#[derive(Debug, Args)]
pub struct TokenizeArgs {
    /// GGUF model file (a vocabulary-only GGUF is enough)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Text to tokenize; repeat for several texts (one result each)
    #[arg(
        short = 'p',
        long,
        value_name = "TEXT",
        required_unless_present = "prompt_file"
    )]
    pub prompt: Vec<String>,

    /// Tokenize the whole of FILE as one text (`-`: standard input)
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,

    /// Output format: each text's tokens with their pieces, or JSON (ids and pieces per text)
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Model family shape
    #[arg(long)]
    pub preset: String,

    /// Tensor type of the weights
    #[arg(long, default_value = "q4_0")]
    pub quant: String,

    /// Where to write the GGUF file (`-o FILE` is the older spelling: -o is the output format in
    /// every odai command)
    #[arg(long, value_name = "FILE")]
    pub output: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum MatrixCommand {
    /// The cells a matrix runs on this device, what is skipped (does not fit, unreadable), and a
    /// lower bound on the time it takes
    #[command(
        after_help = "Examples:\n  odai matrix plan matrices/quick.toml\n  odai matrix plan matrices/readiness.toml --format json"
    )]
    Plan(MatrixPlanArgs),

    /// Run a matrix on this device or a farm: devices in parallel, one cell at a time on each,
    /// every result on disk as it finishes
    #[command(
        after_help = "Results: DIR/results.jsonl (one record per finished cell, fsync'd), DIR/manifest.json, \
DIR/probe-<device>.json; DIR/failures.jsonl keeps failed attempts that --resume retried.\n\
A transport failure (SSH or ADB down) is retried with doubling backoff; then the device is marked \
offline, its remaining cells failed, and the other devices carry on.\n\
Ctrl-C stops cleanly (exit 130); run the same command with --resume to continue: recorded cells \
are not run again, failed ones are.\n\n\
Examples:\n  odai matrix run matrices/quick.toml --out results/quick\n  \
odai matrix run matrices/readiness.toml --farm farm.toml --out results/r1\n  \
odai matrix run matrices/readiness.toml --farm farm.toml --out results/r1 --resume"
    )]
    Run(MatrixRunArgs),
}

#[derive(Debug, Args)]
pub struct MatrixRunArgs {
    /// Matrix file (TOML)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Device farm inventory (farm.toml); without it the matrix runs on this device
    #[arg(long, value_name = "FILE")]
    pub farm: Option<PathBuf>,

    /// Results directory [default: odai-results/<matrix file name>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Continue a run in --out: recorded cells are not run again, failed ones are
    #[arg(long)]
    pub resume: bool,

    /// Also write each result into this SQLite database as it lands (odai db import's tables)
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// Run the GPU compute check (probe --gpu-check) in each device's probe, so class rules on
    /// GPU bandwidth (min_gpu_bandwidth_gbs) can place it; seconds per adapter
    #[arg(long)]
    pub gpu_check: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

/// How cells run, shared by `matrix run` and `profile`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stop a cell that runs longer and record it failed [default: 30m plus its sustained time]
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    pub cell_timeout: Option<std::time::Duration>,

    /// A device that has not answered its probe by then is retried, then marked offline (a
    /// device that greets and then hangs)
    #[arg(long, default_value = "2m", value_name = "DURATION", value_parser = duration)]
    pub probe_timeout: std::time::Duration,

    /// Retries when a device cannot be reached, before it is marked offline
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub retries: u32,

    /// Wait before the first retry; doubles each time
    #[arg(long, default_value = "2s", value_name = "DURATION", value_parser = duration)]
    pub retry_backoff: std::time::Duration,

    /// Telemetry sampling interval in each cell ("off" to disable)
    #[arg(long, default_value = "1s", value_name = "DURATION", value_parser = interval)]
    pub sample_interval: SampleInterval,

    /// Output format of the summary (progress goes to stderr)
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct MatrixPlanArgs {
    /// Matrix file (TOML)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Plan for each device of this farm (each is probed through its transport)
    #[arg(long, value_name = "FILE")]
    pub farm: Option<PathBuf>,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum FarmCommand {
    /// Reach every device: transport, odai version and protocol, and a probe of each, as a table
    #[command(
        after_help = "Exit status 1 when any device is unreachable or runs an incompatible odai.\n\n\
Examples:\n  odai farm check --farm farm.toml\n  odai farm check --farm farm.toml --format json"
    )]
    Check(FarmCheckArgs),

    /// Copy the right odai binary to every SSH and ADB device (over ssh, or adb push) and check it runs
    #[command(
        after_help = "Each device's kind is read with `uname -sm` and the dynamic loaders it has: a glibc \
device takes a -gnu binary, else the static -musl one, which runs on every Linux of its \
architecture (Android, Raspberry Pi OS, Jetson's L4T, busybox boards); an Android device takes a \
-linux-android binary first. The binary is this odai when its triple fits, else one from \
--binaries DIR (odai-TRIPLE files: scripts/build-device-binaries.sh writes them) or --binary \
TRIPLE=PATH.\nSSH devices get it at `odai` from farm.toml (default ~/.local/bin/odai), ADB \
devices at /data/local/tmp/odai.\n\n\
Examples:\n  odai farm deploy --farm farm.toml\n  \
scripts/build-device-binaries.sh && odai farm deploy --farm farm.toml --binaries target/device-binaries\n  \
odai farm deploy --farm farm.toml --binary aarch64-unknown-linux-gnu=target/aarch64-unknown-linux-gnu/release/odai"
    )]
    Deploy(FarmDeployArgs),
}

#[derive(Debug, Args)]
pub struct FarmCheckArgs {
    /// Device farm inventory
    #[arg(long, value_name = "FILE")]
    pub farm: PathBuf,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct FarmDeployArgs {
    /// Device farm inventory
    #[arg(long, value_name = "FILE")]
    pub farm: PathBuf,

    /// An odai binary for a target triple (repeatable), e.g. aarch64-linux-android=odai-android
    #[arg(long, value_name = "TRIPLE=PATH")]
    pub binary: Vec<String>,

    /// A directory of odai-TRIPLE binaries, as scripts/build-device-binaries.sh writes them
    #[arg(long, value_name = "DIR")]
    pub binaries: Option<PathBuf>,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Csv,
    Md,
    Html,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Exit 5 when any verdict is cloud-only or insufficient evidence
    Fail,
    /// Exit 5 when any verdict is hybrid, cloud-only or insufficient evidence
    Hybrid,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A results directory (odai matrix run --out, odai profile --out)
    #[arg(
        value_name = "RESULTS_DIR",
        required_unless_present = "db",
        conflicts_with = "db"
    )]
    pub results: Option<PathBuf>,

    /// Read the results from a database (odai db import) instead: the newest result of each
    /// device and cell
    #[arg(long, value_name = "FILE")]
    pub db: Option<PathBuf>,

    /// With --db: only results finished since then: a date (2026-11-01, 2026-11-01T09:30Z) or
    /// a span back from now (7d, 12h)
    #[arg(long, value_name = "WHEN", requires = "db", value_parser = crate::units::parse_since)]
    pub since: Option<f64>,

    /// Workload profile: a built-in name or a TOML file
    #[arg(long, default_value = "chat-assistant", value_name = "NAME|FILE")]
    pub profile: String,

    /// Device classes file with fleet shares (default: the built-in one)
    #[arg(long, env = "ODAI_CLASSES", value_name = "FILE")]
    pub classes: Option<PathBuf>,

    /// Where to write the report files [default: RESULTS_DIR/report; with --db, odai-report]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Which files to write (comma-separated)
    #[arg(
        short = 'o',
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "csv,md,html,json"
    )]
    pub format: Vec<ReportFormat>,

    /// Exit 5 when a verdict is at or below this level (gate a release in CI)
    #[arg(long, value_enum, value_name = "LEVEL")]
    pub fail_on: Option<FailOn>,

    /// A results directory measured on an OpenAI-compatible endpoint (the cloud path): every
    /// scorecard shows its figures beside the device's [default: RESULTS_DIR's own endpoint
    /// cells, if any]
    #[arg(long, value_name = "DIR")]
    pub baseline: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct QualityArgs {
    /// GGUF model file
    #[arg(short = 'm', long, value_name = "FILE")]
    pub model: PathBuf,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// CPU threads (default: one per physical core the process may use)
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    /// A UTF-8 text to measure perplexity on (scripts/fetch-corpus.sh fetches one)
    #[arg(long, value_name = "FILE")]
    pub text: Option<PathBuf>,

    /// Tokens per window (llama-perplexity's -c)
    #[arg(long, default_value_t = 512, value_name = "TOKENS", value_parser = clap::value_parser!(u32).range(4..))]
    pub ctx: u32,

    /// Score only the first N windows (llama-perplexity's --chunks) [default: all]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), requires = "text")]
    pub chunks: Option<u32>,

    /// A reference model with the same vocabulary (f16 or q8_0): KL divergence, top-1 agreement
    /// and the perplexity change on --text's windows
    #[arg(long, value_name = "FILE", requires = "text")]
    pub reference: Option<PathBuf>,

    /// The reference's runtime [default: --runtime]
    #[arg(long, value_name = "NAME", value_parser = runtime_kind, requires = "reference")]
    pub reference_runtime: Option<crate::runtime::RuntimeKind>,

    /// The reference's KV cache types, TYPE or K/V (e.g. f32, q8_0/f16) [default: its runtime's
    /// own, f16 on odai's engine and llama.cpp]. The same file as --model with -ctk q8_0 measures
    /// what a q8_0 cache costs against the f16 one
    #[arg(long, value_name = "TYPE[/TYPE]", value_parser = kv_types, requires = "reference")]
    pub reference_cache_type: Option<crate::engine::kv::KvTypes>,

    /// A JSONL task file: {"prompt", "expected", "check": exact|contains|choice|regex} per line
    #[arg(long, value_name = "FILE")]
    pub tasks: Option<PathBuf>,

    /// Tokens to generate per task, where a task gives no max_tokens
    #[arg(long, default_value_t = 32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_tokens: u32,

    /// Shadow mode: send the tasks to an OpenAI-compatible endpoint too, as openai:URL
    #[arg(long, value_name = "openai:URL", requires = "tasks")]
    pub shadow: Option<String>,

    /// How shadow prompts are sent: chat (a user message; the server applies its chat template)
    /// or completions (the raw prompt to /completions, as the local model gets it: like with
    /// like, on llama-server, vLLM, ollama)
    #[arg(long, value_enum, default_value_t = ShadowApi::Chat, requires = "shadow")]
    pub shadow_api: ShadowApi,

    /// The model name the shadow endpoint is asked for [default: the model file's stem]
    #[arg(long, value_name = "NAME", requires = "shadow")]
    pub shadow_model: Option<String>,

    /// Environment variable holding the shadow endpoint's API key
    #[arg(long, value_name = "VAR", requires = "shadow")]
    pub api_key_env: Option<String>,

    /// A shadow request that sends nothing for this long fails, as does one whose response head
    /// takes longer; the whole request may take this long per token asked and two more
    /// (`--timeout` is the older spelling; `odai bench --endpoint` takes the same flag)
    #[arg(long = "request-timeout", alias = "timeout", default_value = "60s", value_name = "DURATION", value_parser = crate::units::parse_duration)]
    pub timeout: std::time::Duration,

    /// Append the figures to DIR/quality.jsonl (a results directory odai report reads)
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// The device name recorded (as a farm inventory names it)
    #[arg(long, default_value = "local", value_name = "NAME")]
    pub device: String,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ShadowApi {
    Chat,
    Completions,
}

#[derive(Debug, Subcommand)]
pub enum RouteCommand {
    /// Derive routing rules from a results directory: per device class, the largest prompt that
    /// meets the workload's TTFT budget, the longest generation within the latency budget, and
    /// the memory headroom the model needs
    #[command(
        after_help = "Needs a prompt-length sweep: cells at several prompt_tokens (a matrix axis) per class, model \
and runtime. TTFT is fitted as a line in prompt length (its form and error are written beside the rule) \
and solved for the budget; a rule is only written where cells stand behind it.\n\n\
Examples:\n  odai route build results/r1 --profile chat-assistant --output routing.json\n  \
odai route build results/r1 --profile my-workload.toml --output routing.json --format json"
    )]
    Build(RouteBuildArgs),

    /// Say which rule of a routing file fires for a request, and why (for support)
    #[command(
        after_help = "Examples:\n  odai route explain routing.json --class midrange-phone --prompt-tokens 900\n  \
odai route explain routing.json --class laptop --prompt-tokens 300 --gen-tokens 400 --headroom 2GiB --format json"
    )]
    Explain(RouteExplainArgs),
}

#[derive(Debug, Args)]
pub struct RouteBuildArgs {
    /// A results directory with a prompt-length sweep
    #[arg(value_name = "RESULTS_DIR")]
    pub results: PathBuf,

    /// Workload profile: its ttft_ms_p95 budget, its total-latency budget
    /// (total_latency_ms_p95) and its request shape
    #[arg(long, default_value = "chat-assistant", value_name = "NAME|FILE")]
    pub profile: String,

    /// Device classes file (default: the built-in one)
    #[arg(long, env = "ODAI_CLASSES", value_name = "FILE")]
    pub classes: Option<PathBuf>,

    /// Where to write the rules (`--out` and `-o FILE` are older spellings: -o is the output
    /// format in every odai command)
    #[arg(long = "output", visible_alias = "out", value_name = "FILE")]
    pub out: PathBuf,

    /// What to print: a summary, or the rules document itself
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct RouteExplainArgs {
    /// A routing file (odai route build --output)
    #[arg(value_name = "ROUTING_JSON")]
    pub rules: PathBuf,

    /// The requesting device's class id
    #[arg(long, value_name = "ID")]
    pub class: String,

    /// The request's prompt length
    #[arg(short = 'p', long, value_name = "TOKENS")]
    pub prompt_tokens: u32,

    /// Tokens the request will generate [default: the workload's]
    #[arg(short = 'n', long, value_name = "TOKENS")]
    pub gen_tokens: Option<u32>,

    /// The device's free memory now (e.g. 1.5GiB, 800MB) [default: not checked]
    #[arg(long, value_name = "BYTES", value_parser = crate::units::parse_bytes)]
    pub headroom: Option<u64>,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The baseline: a results directory or its measurements.csv
    #[arg(value_name = "BASE")]
    pub base: PathBuf,

    /// The candidate: a results directory or its measurements.csv
    #[arg(value_name = "NEW")]
    pub new: PathBuf,

    /// A change worse than this is a regression (when significant) or inconclusive (when the
    /// repetitions cannot tell); `10%` or `10`
    #[arg(long, default_value = "5%", value_name = "PERCENT", value_parser = percent)]
    pub threshold: f64,

    /// Fields that pair a BASE cell with a NEW one, comma-separated: device, class, cell_id,
    /// model, quant, runtime, backend, threads, prompt_tokens, gen_tokens, cold, load,
    /// sustained_s, gpu_layers, kv_cache, depth, n_batch, n_ubatch, mmap. For an A/B of two quants, models or runtimes, match by shape:
    /// device,threads,prompt_tokens,gen_tokens
    #[arg(
        long,
        value_name = "FIELDS",
        value_delimiter = ',',
        default_value = "device,cell_id",
        value_parser = clap::builder::PossibleValuesParser::new(crate::report::compare::MATCH_FIELDS)
    )]
    pub match_by: Vec<String>,

    /// Fail the gate (exit 5) on inconclusive changes too: a release that must prove it did not
    /// get slower, not merely not be caught
    #[arg(long)]
    pub fail_on_inconclusive: bool,

    /// Output format: text, json, or markdown (a pull-request comment)
    #[arg(short = 'o', long, value_enum, default_value_t = CompareFormat::Text)]
    pub format: CompareFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompareFormat {
    Text,
    Json,
    #[value(alias = "md")]
    Markdown,
}

fn percent(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('%');
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a percentage (examples: 5%, 2.5)")),
    }
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Results directory [default: odai-results/profile-<UTC time>]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Matrix to run instead of the built-in quick one (matrices/quick.toml)
    #[arg(long, value_name = "FILE")]
    pub matrix: Option<PathBuf>,

    /// Workload profile the scorecard judges against: a built-in name or a TOML file, as in
    /// `odai report --profile` (`--workload` is the older spelling)
    #[arg(
        long = "profile",
        alias = "workload",
        default_value = "chat-assistant",
        value_name = "NAME|FILE"
    )]
    pub workload: String,

    /// Device classes file with fleet shares (default: the built-in one)
    #[arg(long, env = "ODAI_CLASSES", value_name = "FILE")]
    pub classes: Option<PathBuf>,

    /// Skip the GPU compute check (probe --gpu-check) the profile runs on every hardware adapter
    #[arg(long, conflicts_with = "gpu_check_software")]
    pub no_gpu_check: bool,

    /// Check software rasterisers too (llvmpipe, lavapipe, SwiftShader, WARP): left out by
    /// default, as they are the CPU behind a GPU API and their check takes tens of seconds
    #[arg(long)]
    pub gpu_check_software: bool,

    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// GGUF model file
    #[arg(short = 'm', long, value_name = "FILE")]
    pub model: PathBuf,

    /// Prompt text, tokenized with the model's own vocabulary as llama.cpp does it (gpt2-style
    /// BPE, or SentencePiece: Llama 2, Mistral, Phi-3, Gemma)
    #[arg(
        long,
        conflicts_with = "prompt_ids",
        required_unless_present = "prompt_ids"
    )]
    pub prompt: Option<String>,

    /// Prompt as comma-separated token ids, e.g. 504,3575,282
    #[arg(long, value_name = "IDS", value_delimiter = ',')]
    pub prompt_ids: Option<Vec<u32>>,

    /// Tokens to generate
    #[arg(short = 'n', long = "gen-tokens", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub gen_tokens: u32,

    /// CPU threads (default: one per physical core the process may use, within the cgroup quota)
    #[arg(short, long, value_parser = clap::value_parser!(u32).range(1..))]
    pub threads: Option<u32>,

    #[command(flatten)]
    pub runtime: RuntimeArgs,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model file: GGUF, or a tensor model (.onnx, .tflite: operators, parameters, and the
    /// signature through ONNX Runtime / TF Lite, found by ORT_DYLIB_PATH / ODAI_TFLITE_LIB)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Context length (tokens) to size the KV cache for (default: the model's own)
    #[arg(long, value_name = "TOKENS", value_parser = clap::value_parser!(u64).range(1..))]
    pub context: Option<u64>,

    /// KV cache type of the keys to size it in: f16 (default), f32, q8_0, q4_0; `-ctk` too
    #[arg(long, value_name = "TYPE", value_parser = kv_type)]
    pub cache_type_k: Option<crate::engine::kv::KvType>,

    /// KV cache type of the values, as --cache-type-k; `-ctv` too
    #[arg(long, value_name = "TYPE", value_parser = kv_type)]
    pub cache_type_v: Option<crate::engine::kv::KvType>,

    /// Also hash the whole file (sha256)
    #[arg(long)]
    pub sha256: bool,

    /// Output format
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Output format: a readable summary, or the stable JSON document (docs/probe-json.md)
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Skip GPU adapter enumeration (loading Vulkan/GL drivers is the slow part of a probe)
    #[arg(long)]
    pub no_gpu: bool,

    /// Also measure memory bandwidth (STREAM triad on all threads; takes about a second)
    #[arg(long)]
    pub bandwidth: bool,

    /// Give up on GPU enumeration after this many seconds (a broken driver can hang)
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = positive_seconds)]
    pub gpu_timeout: std::time::Duration,

    /// Run compute shaders on every GPU adapter: verified results, bandwidth, matmul throughput,
    /// dispatch latency, largest buffer (a few seconds per adapter)
    #[arg(long, conflicts_with = "no_gpu")]
    pub gpu_check: bool,

    /// Give up on one adapter's --gpu-check after this many seconds (a hung driver)
    #[arg(long, value_name = "SECONDS", default_value = "120", value_parser = positive_seconds)]
    pub gpu_check_timeout: std::time::Duration,

    /// Device classes file (default: the built-in profiles/device-classes.toml)
    #[arg(long, env = "ODAI_CLASSES", value_name = "FILE")]
    pub classes: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// A positive number of seconds, fractions allowed (`0.5`).
fn positive_seconds(s: &str) -> Result<std::time::Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    std::time::Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{s:?} must be a positive number of seconds"))
}

/// A duration such as `15m`, `10s`, `500ms`, `1.5h`, or plain seconds.
fn duration(s: &str) -> Result<std::time::Duration, String> {
    crate::units::parse_duration(s)
}

/// A sampling interval; `None` when sampling is off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleInterval(pub Option<std::time::Duration>);

fn interval(s: &str) -> Result<SampleInterval, String> {
    if s.eq_ignore_ascii_case("off") {
        Ok(SampleInterval(None))
    } else {
        duration(s).map(|d| SampleInterval(Some(d)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units() {
        assert_eq!(duration("15m").unwrap().as_secs(), 900);
        assert_eq!(duration("500ms").unwrap().as_millis(), 500);
        assert_eq!(duration("1.5h").unwrap().as_secs(), 5400);
        assert_eq!(duration("90").unwrap().as_secs(), 90);
        assert!(duration("0s").is_err());
        assert!(duration("5 parsecs").unwrap_err().contains("unknown unit"));
        assert_eq!(interval("off").unwrap(), SampleInterval(None));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

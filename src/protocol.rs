//! The versioned worker protocol: the only thing that crosses a process (or device) boundary. A
//! coordinator sends one [`Request`] as a JSON line on `odai worker`'s stdin — one repetition, a
//! whole matrix cell, or a probe — and the worker answers with [`Event`] JSON lines on stdout:
//! `hello` first, then `progress` lines, ending with one answer or `error`. Local, SSH and ADB
//! devices speak it alike; each side refuses a peer that speaks another version.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::runtime::RuntimeKind;

/// Bump on any incompatible change to [`CellSpec`] or [`Event`]. 3: the runtime axis (a worker
/// of protocol 2 would ignore `runtime` and measure the wrong one). 4: tensor-model benchmarks
/// (`tensor` requests and answers, which a protocol 3 worker cannot read). 5: prefill-only and
/// decode-only repetitions (`-p 0`, `-n 0`: a repetition's prefill or decode figures are null,
/// which a protocol 4 coordinator cannot read). 6: KV cache types and depth (`kv_types`,
/// `depth`: a protocol 5 worker would ignore them and measure its default cache, at depth 0, as
/// if it were what was asked for). 7: prompt batch, micro-batch and mapping (`batching`: a
/// protocol 6 worker would ignore them and measure its defaults as if they were what was asked).
pub const PROTOCOL_VERSION: u32 = 7;

/// One benchmark repetition to run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CellSpec {
    pub protocol: u32,
    pub model: PathBuf,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    /// Tokens already in the context before the prompt (llama-bench's `-d`), filled untimed.
    #[serde(default)]
    pub depth: u32,
    /// Seed of the random prompt ids (llama-bench style: random ids below the vocabulary).
    pub seed: u64,
    /// Evict the model file from the page cache before loading.
    pub cold: bool,
    /// Tokens slower than this count as deadline misses.
    pub token_deadline_ms: Option<f64>,
    /// The device tree telemetry reads (`--root`); `None` is the live device.
    #[serde(default)]
    pub root: Option<PathBuf>,
    /// Telemetry sampling interval; `None` turns the sampler off.
    #[serde(default)]
    pub sample_interval_s: Option<f64>,
    /// Decode continuously for a duration instead of `gen_tokens` once.
    #[serde(default)]
    pub sustained: Option<SustainedSpec>,
    /// The runtime that runs the model.
    #[serde(default)]
    pub runtime: RuntimeKind,
    /// Layers to offload to a GPU (llama.cpp); `None`: none.
    #[serde(default)]
    pub gpu_layers: Option<u32>,
    /// The KV cache's key and value types (`-ctk`/`-ctv`); `None`: the runtime's default.
    #[serde(default)]
    pub kv_types: Option<crate::engine::kv::KvTypes>,
    /// Prompt batch, micro-batch and mapping (`-b`, `-ub`, `--mmap`); each `None`: the
    /// runtime's default.
    #[serde(
        default,
        skip_serializing_if = "crate::runtime::batching::Batching::is_default"
    )]
    pub batching: crate::runtime::batching::Batching,
    /// The endpoint, for the `openai` runtime (`model` is then unused).
    #[serde(default)]
    pub endpoint: Option<EndpointSpec>,
}

/// An OpenAI-compatible endpoint and the model name it serves. The API key is never here: only
/// the name of the environment variable that holds it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndpointSpec {
    /// Base URL, e.g. `http://127.0.0.1:8080/v1` (`/chat/completions` is appended).
    pub url: String,
    /// The model name the server is asked for.
    pub model: String,
    /// Environment variable holding the API key (sent as a bearer token); `None`: no key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A request that sends nothing for this long fails (a stalled server), as does one whose
    /// response head takes longer.
    pub timeout_s: f64,
    /// The whole request's limit (the cell's time left, in a matrix); `None`: `timeout_s` per
    /// token asked, and two more.
    #[serde(default)]
    pub deadline_s: Option<f64>,
}

/// What an endpoint's repetition saw beyond the shared figures.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EndpointFigures {
    /// DNS, TCP and (for HTTPS) TLS set-up, apart from TTFT.
    pub connect_ms: f64,
    /// Prompt and completion tokens as the server's `usage` counted them.
    pub usage_prompt_tokens: Option<u64>,
    pub usage_completion_tokens: Option<u64>,
    /// Content chunks that arrived (one per token on most servers).
    pub chunks: u64,
    /// The server's own timings, when it sends them (llama-server's `timings`).
    pub server_timings: Option<ServerTimings>,
}

/// llama-server's `timings` object (tools/server/README.md of llama.cpp).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ServerTimings {
    pub prompt_n: Option<u64>,
    pub prompt_ms: Option<f64>,
    pub predicted_n: Option<u64>,
    pub predicted_ms: Option<f64>,
    pub prompt_per_second: Option<f64>,
    pub predicted_per_second: Option<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SustainedSpec {
    pub duration_s: f64,
    pub window_s: f64,
    pub checkpoints_s: Vec<f64>,
}

/// What a coordinator asks of a worker, one JSON line tagged by `request`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// One repetition in this fresh process; answered by `result`.
    Rep(Box<CellSpec>),
    /// A whole matrix cell on the worker's device (memory fit, repetitions in fresh processes
    /// there, summary); answered by `report`.
    Cell(Box<CellRequest>),
    /// The device's probe (quick: no GPU drivers); answered by `probe`. With `bandwidth`, the
    /// STREAM triad too (cached per boot on the device), for a plan's time estimate.
    Probe {
        protocol: u32,
        #[serde(default)]
        bandwidth: bool,
        /// The GPU compute check on every adapter (`matrix run --gpu-check`), so class rules on
        /// GPU bandwidth can decide the device's class.
        #[serde(default)]
        gpu_check: bool,
    },
    /// A tensor-model benchmark (burst or stream, one model or a pipeline) in this fresh
    /// process; answered by `tensor`.
    Tensor(Box<crate::bench::tensor::TensorBenchSpec>),
}

impl Request {
    pub fn protocol(&self) -> u32 {
        match self {
            Request::Rep(s) => s.protocol,
            Request::Cell(c) => c.protocol,
            Request::Probe { protocol, .. } => *protocol,
            Request::Tensor(s) => s.protocol,
        }
    }
}

/// A matrix cell for a device: the device's own odai resolves the model (a synthetic preset is
/// made there; a path is a path on that device) and reads its own tree (`ODAI_ROOT` there).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CellRequest {
    pub protocol: u32,
    pub cell: crate::matrix::spec::Cell,
    /// Telemetry sampling interval; `None` turns the sampler off.
    pub sample_interval_s: Option<f64>,
}

/// What a worker says, one JSON object per line, tagged by `event`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// First line: who is speaking.
    Hello {
        protocol: u32,
        odai_version: String,
        /// The device kernel's count of OOM kills when the worker started (`oom_kill` of
        /// /proc/vmstat): a coordinator that sees the worker die by SIGKILL compares it with a
        /// fresh worker's, to say whether the OOM killer did it. Absent where it cannot be read
        /// (and from workers older than this field, which the same protocol still reads).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oom_kills: Option<u64>,
    },
    /// Where a long answer has got to (`rep 2/5`); any number, before the answer.
    Progress { message: String },
    /// The measured repetition; the last line.
    Result(Box<RepResult>),
    /// The cell's report; the last line.
    Report(Box<crate::bench::cell::Report>),
    /// The device's probe; the last line.
    Probe(Box<crate::probe::Probe>),
    /// A tensor-model benchmark's figures; the last line.
    Tensor(Box<crate::bench::tensor::TensorResult>),
    /// The worker could not do what was asked; the last line.
    Error { message: String },
}

/// One repetition's measurements. Times in milliseconds, rates in tokens per second.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RepResult {
    pub load_ms: f64,
    /// True when the model file was evicted from the page cache before loading.
    pub cold: bool,
    /// The first prefill after load: includes any lazy one-time work on the weights. Null when
    /// no prompt was measured (`-p 0`), as are `ttft_ms` and `prefill_tps`.
    pub first_ttft_ms: Option<f64>,
    /// Prefill of the prompt + sampling the first token, steady state.
    pub ttft_ms: Option<f64>,
    pub prefill_tps: Option<f64>,
    /// Null when nothing was decoded (`-n 0`), as are the token latencies.
    pub decode_tps: Option<f64>,
    pub token_ms_p50: Option<f64>,
    pub token_ms_p90: Option<f64>,
    #[serde(default)]
    pub token_ms_p95: Option<f64>,
    pub token_ms_p99: Option<f64>,
    /// The 99.9th percentile (onnxruntime_perf_test's): with fewer than 1000 tokens it
    /// interpolates between the slowest ones.
    #[serde(default)]
    pub token_ms_p999: Option<f64>,
    #[serde(default)]
    pub token_ms_max: Option<f64>,
    /// Share of decoded tokens slower than the deadline; null without a deadline.
    pub deadline_miss_pct: Option<f64>,
    /// CPU time the repetition's process used in user and kernel mode (getrusage(2),
    /// GetProcessTimes), load included; null for an endpoint.
    #[serde(default)]
    pub cpu_user_s: Option<f64>,
    #[serde(default)]
    pub cpu_system_s: Option<f64>,
    /// The anonymous (heap: KV cache, buffers, dequantized copies) and file-backed (mapped
    /// weights) parts of the resident set, as /proc/self/status's RssAnon and RssFile: the
    /// largest of the telemetry samples and a reading at the end, so a lower bound on each peak.
    /// Null where the OS does not split them (macOS, Windows) and for an endpoint.
    #[serde(default)]
    pub peak_rss_anon_bytes: Option<u64>,
    #[serde(default)]
    pub peak_rss_file_bytes: Option<u64>,
    /// This process's peak resident set; null for an endpoint (the model ran elsewhere).
    pub peak_rss_bytes: Option<u64>,
    /// Threads the engine's kernels ran on.
    pub threads: u32,
    /// How the runtime ran (same as `backend`; kept for readers of protocol 2 results, where it
    /// was the SIMD path: `avx2`, `avx2+vnni`, `avx`, `neon`…).
    pub simd: String,
    /// The runtime that ran, its version and backend (`cpu avx2+vnni`, llama.cpp's CPU
    /// features and GPU devices, `http` or `https`).
    #[serde(flatten)]
    pub ran: crate::runtime::RuntimeInfo,
    /// Where llama.cpp put the model's layers, when asked for a GPU.
    #[serde(default)]
    pub offload: Option<crate::runtime::Offload>,
    /// The KV cache's types the runtime held (null for an endpoint or a tensor model).
    #[serde(default)]
    pub kv_types: Option<crate::engine::kv::KvTypes>,
    /// The batch, micro-batch and mapping the runtime ran with (null for an endpoint or a
    /// tensor model, and in results from before they were recorded).
    #[serde(default)]
    pub batching: Option<crate::runtime::batching::Batching>,
    /// An endpoint's connection set-up, token counts and server timings.
    #[serde(default)]
    pub endpoint: Option<EndpointFigures>,
    /// Every decoded token's latency, in order (for distributions and reports).
    pub token_ms: Vec<f64>,
    /// Energy over the decode phase, when the sampler ran.
    #[serde(default)]
    pub energy: Option<crate::bench::telemetry::Energy>,
    /// Energy per decoded token.
    #[serde(default)]
    pub energy_j_per_token: Option<crate::sysroot::Reading<f64>>,
    /// Every telemetry sample of the run (with the meters they read), when the sampler ran.
    #[serde(default)]
    pub telemetry: Option<crate::bench::telemetry::Telemetry>,
    /// The sustained run's windows and verdicts, with `--sustained`.
    #[serde(default)]
    pub sustained: Option<crate::bench::sustained::Sustained>,
    /// What the reader must know about these figures (the model's logits were NaN); the cell's
    /// report carries each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Checks a worker's hello: a different protocol is refused with what to do about it.
pub fn check_hello(protocol: u32, odai_version: &str) -> Result<(), String> {
    if protocol == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(format!(
            "the worker speaks protocol {protocol} (odai {odai_version}) but this odai {} speaks \
             protocol {PROTOCOL_VERSION}: run the same odai version on both sides (odai farm deploy)",
            env!("CARGO_PKG_VERSION")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_worker_is_refused_with_what_to_do() {
        assert!(check_hello(PROTOCOL_VERSION, "x").is_ok());
        let e = check_hello(PROTOCOL_VERSION + 1, "9.9.9").unwrap_err();
        assert_eq!(
            e,
            format!(
                "the worker speaks protocol {} (odai 9.9.9) but this odai {} speaks protocol {}: \
                 run the same odai version on both sides (odai farm deploy)",
                PROTOCOL_VERSION + 1,
                env!("CARGO_PKG_VERSION"),
                PROTOCOL_VERSION
            )
        );
    }

    #[test]
    fn events_are_tagged_json_lines() {
        let e = Event::Error {
            message: "boom".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"error","message":"boom"}"#
        );
    }
}

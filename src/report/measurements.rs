//! A results directory read back (records, manifest, each device's probe) and flattened into
//! measurements: one row per device × cell with every metric in a fixed, documented column order
//! (docs/measurements-csv.md). Reports and `compare` read nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::bench::stats;
use crate::error::Error;
use crate::matrix::results::{Manifest, Record, Status, Store};
use crate::probe::Probe;
use crate::sysroot::Reading;

/// A results directory as `odai matrix run` left it.
pub struct ResultsSet {
    pub dir: PathBuf,
    pub manifest: Option<Manifest>,
    pub records: Vec<Record>,
    pub probes: BTreeMap<String, Probe>,
    /// `odai quality` records (`quality.jsonl`): the quality criteria's figures.
    pub quality: Vec<crate::quality::QualityRecord>,
    /// What could not be read and was left out (a line torn by a crash, a missing probe).
    pub warnings: Vec<String>,
}

impl ResultsSet {
    pub fn load(dir: &Path) -> Result<ResultsSet, Error> {
        let bad = |problem: String| Error::ConfigFile {
            file: dir.to_owned(),
            problem,
        };
        if !dir.is_dir() {
            return Err(bad(
                "no such results directory (name a directory `odai matrix run --out` or `odai \
                 profile --out` wrote, or its measurements.csv)"
                    .into(),
            ));
        }
        let path = Store::results_path(dir);
        let loaded = crate::matrix::results::Loaded::read(&path).map_err(|e| {
            bad(if e.kind() == std::io::ErrorKind::NotFound {
                "holds no results.jsonl: not an odai results directory (odai matrix run --out DIR \
                 or odai profile --out DIR writes one)"
                    .into()
            } else {
                format!("cannot read results.jsonl: {e}")
            })
        })?;
        let records = loaded.records;
        let unreadable = loaded.rejected.len();
        // Every line that is no record is named and counted, never silently dropped.
        let mut warnings: Vec<String> = loaded
            .rejected
            .iter()
            .map(|r| {
                format!(
                    "{}:{}: unreadable line left out ({})",
                    path.display(),
                    r.line,
                    r.why
                )
            })
            .collect();
        if warnings.len() > 1 {
            warnings.push(format!(
                "{}: {} unreadable line(s) left out in all",
                path.display(),
                warnings.len()
            ));
        }
        if records.is_empty() {
            return Err(bad(format!(
                "results.jsonl holds no readable results{}",
                if unreadable == 0 {
                    String::new()
                } else {
                    format!(" ({unreadable} unreadable lines)")
                }
            )));
        }
        let manifest = std::fs::read(dir.join("manifest.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let mut probes = BTreeMap::new();
        let mut devices: Vec<&str> = records.iter().map(|r| r.device.as_str()).collect();
        devices.sort_unstable();
        devices.dedup();
        for d in devices {
            if d == crate::matrix::runner::ENDPOINT_DEVICE {
                // The coordinator ran these cells against an endpoint: no device to probe.
                continue;
            }
            let p = dir.join(format!("probe-{d}.json"));
            match std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .and_then(|v| crate::sysroot::from_contract_json::<Probe>(v).ok())
            {
                Some(probe) => {
                    probes.insert(d.to_owned(), probe);
                }
                None => warnings.push(format!(
                    "{}: missing or unreadable; device {d}'s class is taken from its results",
                    p.display()
                )),
            }
        }
        let (quality, quality_warnings) = crate::quality::load(dir);
        warnings.extend(quality_warnings);
        Ok(ResultsSet {
            dir: dir.to_owned(),
            manifest,
            records,
            probes,
            quality,
            warnings,
        })
    }

    /// The device's class id and label: from its probe, else from a report's provenance.
    pub fn class_of(&self, device: &str) -> (Option<String>, Option<String>) {
        if let Some(c) = self.probes.get(device).and_then(|p| p.class.value()) {
            return (Some(c.id.clone()), Some(c.label.clone()));
        }
        let from_report = self
            .records
            .iter()
            .filter(|r| r.device == device)
            .find_map(|r| r.report.as_ref()?.provenance.device.class.value().cloned());
        (from_report, None)
    }
}

/// Columns of measurements.csv after the identifying ones, in order. Units are in the names.
pub const METRICS: &[&str] = &[
    "load_ms_mean",
    "cold_start_ms",
    "ttft_ms_mean",
    "ttft_ms_p95",
    "prefill_tps_mean",
    "decode_tps_mean",
    "decode_tps_p10",
    "token_ms_p50",
    "token_ms_p90",
    "token_ms_p99",
    "peak_rss_mib",
    "headroom_mib",
    "memory_headroom_frac",
    "roofline_pct",
    "mean_power_w",
    "energy_j_per_token",
    "battery_drain_pct_per_hour",
    "sustained_decode_tps",
    "sustained_stability",
    "failure_rate_pct",
    // Tensor cells (schema 2): per-inference latency of a burst (or of a stream's frames),
    // inferences per second, and a stream's deadline misses, latency from arrival, CPU duty.
    "inference_ms_p50",
    "inference_ms_p99",
    "inferences_per_s",
    "frame_deadline_miss_pct",
    "frame_latency_ms_p99",
    "cpu_duty_pct",
    "energy_j_per_inference",
];

/// One device × cell.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub device: String,
    pub class: Option<String>,
    pub cell_id: String,
    pub model: String,
    pub quant: Option<String>,
    /// The runtime that ran (`odai`, `candle`, `llama.cpp`, `openai`), its version and backend;
    /// what the matrix asked for when the cell produced no report.
    pub runtime: String,
    pub runtime_version: String,
    pub backend: String,
    pub threads: u32,
    pub prompt_tokens: u32,
    pub gen_tokens: u32,
    pub cold: bool,
    pub sustained_s: Option<f64>,
    pub load: String,
    pub reps: u32,
    pub status: String,
    pub reason: Option<String>,
    /// [`METRICS`], in order; None where not measured.
    pub values: Vec<Option<f64>>,
    /// Why a metric is missing, where a report said (no energy meter, on AC).
    #[serde(skip)]
    pub missing: BTreeMap<&'static str, String>,
    /// Every decoded token's latency, pooled over the repetitions.
    #[serde(skip)]
    pub token_ms: Vec<f64>,
    /// Per-repetition samples of the headline metrics, for significance tests.
    #[serde(skip)]
    pub samples: BTreeMap<&'static str, Vec<f64>>,
    pub odai_version: Option<String>,
    pub model_sha256: Option<String>,
    /// GPU layers the cell asked for (`gpu_layers`), and where the runtime put them.
    pub gpu_layers: Option<u32>,
    pub offload: Option<crate::runtime::Offload>,
    /// The KV cache types the runtime held (`f16`, `q8_0/f16`), else those the cell asked for;
    /// None where it holds none here (an endpoint, a tensor model) or results predate them.
    pub kv_cache: Option<String>,
    /// Tokens already in the context before the prompt (llama-bench's `-d`).
    pub depth: u32,
    /// The prompt batch, micro-batch and mapping the runtime ran with, else those the cell
    /// asked for; None where it has none (an endpoint, a tensor model) or results predate them.
    pub n_batch: Option<u32>,
    pub n_ubatch: Option<u32>,
    pub mmap: Option<bool>,
    /// What `odai bench` warned about the cell's measurement (a noisy machine, too few
    /// repetitions, outliers, failed repetitions): carried to every scorecard criterion built on
    /// the cell.
    pub warnings: Vec<String>,
}

impl Row {
    pub fn get(&self, metric: &str) -> Option<f64> {
        METRICS
            .iter()
            .position(|m| *m == metric)
            .and_then(|i| self.values[i])
    }

    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }

    /// A tensor-model row (ONNX Runtime, TF Lite): scored by tensor workloads only.
    pub fn is_tensor(&self) -> bool {
        matches!(self.runtime.as_str(), "onnxruntime" | "tflite")
    }
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| stats::summarize(v).mean)
}

fn reading(r: &Reading<f64>) -> Result<f64, String> {
    match r {
        Reading::Value(v) => Ok(*v),
        Reading::Unavailable(why) => Err(why.clone()),
    }
}

pub fn rows(set: &ResultsSet) -> Vec<Row> {
    set.records
        .iter()
        .map(|r| {
            let headroom = set
                .probes
                .get(&r.device)
                .and_then(|p| p.memory.headroom_bytes.value().copied());
            row_with(r, set.class_of(&r.device).0, headroom)
        })
        .collect()
}

/// A tensor cell's metrics (`[[tensor]]`): the same columns where they mean the same thing
/// (load, cold start, peak memory and headroom, power, battery), and the tensor columns.
fn tensor_values(
    t: &crate::bench::tensor::TensorResult,
    cold: bool,
    headroom: Option<f64>,
    values: &mut BTreeMap<&'static str, f64>,
    missing: &mut BTreeMap<&'static str, String>,
) {
    let mut put = |k: &'static str, v: Option<f64>| {
        if let Some(v) = v.filter(|v| v.is_finite()) {
            values.insert(k, v);
        }
    };
    put("load_ms_mean", Some(t.load_ms));
    if cold {
        put("cold_start_ms", Some(t.load_ms + t.first_inference_ms));
    }
    put("inference_ms_p50", Some(t.latency_ms_p50));
    put("inference_ms_p99", Some(t.latency_ms_p99));
    put("inferences_per_s", Some(t.inferences_per_s));
    if let Some(s) = &t.stream {
        put("frame_deadline_miss_pct", Some(s.deadline_miss_pct));
        put("frame_latency_ms_p99", Some(s.latency_ms_p99));
        put("cpu_duty_pct", Some(s.cpu_duty_pct));
    } else {
        for k in [
            "frame_deadline_miss_pct",
            "frame_latency_ms_p99",
            "cpu_duty_pct",
        ] {
            missing.insert(
                k,
                "not measured: a burst, not a paced stream (mode = \"stream\")".into(),
            );
        }
    }
    let peak = t.peak_rss_bytes.map(|b| b as f64);
    put("peak_rss_mib", peak.map(|b| b / 1048576.0));
    put("headroom_mib", headroom.map(|h| h / 1048576.0));
    match (peak, headroom) {
        (Some(p), Some(h)) if h > 0.0 => put("memory_headroom_frac", Some(p / h)),
        _ => {
            missing.insert(
                "memory_headroom_frac",
                "the device's headroom is unavailable".to_owned(),
            );
        }
    }
    match &t.energy {
        Some(e) => {
            for (k, v) in [
                ("mean_power_w", &e.mean_power_w),
                ("battery_drain_pct_per_hour", &e.battery_drain_pct_per_hour),
            ] {
                match reading(v) {
                    Ok(x) => put(k, Some(x)),
                    Err(why) => {
                        missing.insert(k, why);
                    }
                }
            }
        }
        None => {
            for k in [
                "mean_power_w",
                "battery_drain_pct_per_hour",
                "energy_j_per_inference",
            ] {
                missing.insert(k, "not measured: the sampler was off".into());
            }
        }
    }
    if let Some(j) = &t.energy_j_per_inference {
        match reading(j) {
            Ok(x) => put("energy_j_per_inference", Some(x)),
            Err(why) => {
                missing.insert("energy_j_per_inference", why);
            }
        }
    }
}

/// The metrics of one record, with the device's headroom from its probe (a tensor cell's
/// report carries none).
pub fn row_with(r: &Record, class: Option<String>, headroom_bytes: Option<u64>) -> Row {
    let mut row = row(r, class);
    if let Some(t) = &r.tensor {
        let mut values = BTreeMap::new();
        let mut missing = BTreeMap::new();
        tensor_values(
            t,
            r.cell.cold,
            headroom_bytes.map(|h| h as f64),
            &mut values,
            &mut missing,
        );
        row.values = METRICS.iter().map(|m| values.get(m).copied()).collect();
        row.missing = missing;
        if let Some(st) = t.stages.first() {
            row.runtime = st.ran.runtime.clone();
            row.runtime_version = st.ran.runtime_version.clone();
            row.backend = st.ran.backend.clone();
        }
        row.threads = t.threads;
        row.odai_version = (!t.odai_version.is_empty()).then(|| t.odai_version.clone());
        row.model_sha256 = t.stages.first().and_then(|s| s.model_sha256.clone());
        row.samples
            .insert("inference_ms_p99", vec![t.latency_ms_p99]);
    }
    row
}

/// The metrics of one record.
pub fn row(r: &Record, class: Option<String>) -> Row {
    let c = &r.cell;
    let mut values: BTreeMap<&'static str, f64> = BTreeMap::new();
    let mut missing = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let mut token_ms = Vec::new();
    if let Some(rep) = &r.report {
        let reps = &rep.reps;
        // A prefill-only or decode-only cell (-n 0, -p 0) has no figures of the other phase.
        let series = |f: fn(&crate::protocol::RepResult) -> Option<f64>| -> Vec<f64> {
            reps.iter().filter_map(f).collect()
        };
        let ttft = series(|x| x.ttft_ms);
        let decode = series(|x| x.decode_tps);
        let load = series(|x| Some(x.load_ms));
        let prefill = series(|x| x.prefill_tps);
        let rss: Vec<f64> = reps
            .iter()
            .filter_map(|x| x.peak_rss_bytes.map(|b| b as f64))
            .collect();
        token_ms = reps
            .iter()
            .flat_map(|x| x.token_ms.iter().copied())
            .collect();
        let mut put = |k: &'static str, v: Option<f64>| {
            if let Some(v) = v.filter(|v| v.is_finite()) {
                values.insert(k, v);
            }
        };
        put("load_ms_mean", mean(&load));
        if c.cold {
            let cold = series(|x| Some(x.load_ms + x.first_ttft_ms?));
            put("cold_start_ms", mean(&cold));
        }
        put("ttft_ms_mean", mean(&ttft));
        put(
            "ttft_ms_p95",
            (!ttft.is_empty()).then(|| stats::percentile(&ttft, 95.0)),
        );
        put("prefill_tps_mean", mean(&prefill));
        put("decode_tps_mean", mean(&decode));
        put(
            "decode_tps_p10",
            (!decode.is_empty()).then(|| stats::percentile(&decode, 10.0)),
        );
        if !token_ms.is_empty() {
            let mut sorted = token_ms.clone();
            sorted.sort_by(f64::total_cmp);
            put(
                "token_ms_p50",
                Some(stats::percentile_sorted(&sorted, 50.0)),
            );
            put(
                "token_ms_p90",
                Some(stats::percentile_sorted(&sorted, 90.0)),
            );
            put(
                "token_ms_p99",
                Some(stats::percentile_sorted(&sorted, 99.0)),
            );
        }
        let peak = rss.iter().copied().reduce(f64::max);
        put("peak_rss_mib", peak.map(|b| b / 1048576.0));
        let headroom = rep
            .provenance
            .device
            .headroom_bytes
            .value()
            .map(|&h| h as f64);
        put("headroom_mib", headroom.map(|h| h / 1048576.0));
        match (peak, headroom) {
            (Some(p), Some(h)) if h > 0.0 => put("memory_headroom_frac", Some(p / h)),
            _ => {
                missing.insert(
                    "memory_headroom_frac",
                    "the device's headroom is unavailable".to_owned(),
                );
            }
        }
        put(
            "roofline_pct",
            rep.roofline.as_ref().map(|rf| rf.roofline_pct),
        );
        let attempted = reps.len() + rep.failed_reps.len();
        if attempted > 0 {
            put(
                "failure_rate_pct",
                Some(100.0 * rep.failed_reps.len() as f64 / attempted as f64),
            );
        }
        for (k, v) in [
            ("mean_power_w", &rep.mean_power_w),
            ("energy_j_per_token", &rep.energy_j_per_token),
            (
                "battery_drain_pct_per_hour",
                &rep.battery_drain_pct_per_hour,
            ),
        ] {
            match reading(v) {
                Ok(x) => put(k, Some(x)),
                Err(why) => {
                    missing.insert(k, why);
                }
            }
        }
        if let Some(s) = &rep.sustained {
            let w: Vec<f64> = s.windows.iter().map(|w| w.decode_tps).collect();
            put("sustained_decode_tps", mean(&w));
            match reading(&s.stability) {
                Ok(x) => put("sustained_stability", Some(x)),
                Err(why) => {
                    missing.insert("sustained_stability", why);
                }
            }
        }
        samples.insert("ttft_ms", ttft);
        samples.insert("decode_tps", decode);
        samples.insert("prefill_tps", prefill);
        samples.insert("load_ms", load);
        samples.insert("peak_rss_mib", rss.iter().map(|b| b / 1048576.0).collect());
        samples.insert("token_ms_p99", series(|x| x.token_ms_p99));
    }
    // A figure of what ran, from the cell's report.
    let ran = |f: fn(&crate::bench::cell::Provenance) -> Option<u32>| {
        r.report.as_ref().and_then(|x| f(&x.provenance))
    };
    let ran_mmap = r.report.as_ref().and_then(|x| x.provenance.use_mmap);
    Row {
        device: r.device.clone(),
        class,
        cell_id: r.cell_id.clone(),
        model: c.model.label(),
        quant: r.report.as_ref().and_then(|x| x.provenance.quant.clone()),
        runtime: r.report.as_ref().map_or_else(
            || c.runtime.name().to_owned(),
            |x| x.provenance.ran.runtime.clone(),
        ),
        runtime_version: r
            .report
            .as_ref()
            .map_or_else(String::new, |x| x.provenance.ran.runtime_version.clone()),
        backend: r
            .report
            .as_ref()
            .map_or_else(String::new, |x| x.provenance.ran.backend.clone()),
        // What ran (an `auto` cell's count differs by device); the cell's own where nothing did.
        threads: r
            .report
            .as_ref()
            .map_or(c.threads, |x| x.provenance.threads),
        prompt_tokens: c.prompt_tokens,
        gen_tokens: c.gen_tokens,
        depth: c.depth,
        cold: c.cold,
        sustained_s: c.sustained_s,
        load: c.load.clone(),
        reps: c.reps,
        status: match r.status {
            Status::Ok => "ok",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
        }
        .into(),
        reason: r.reason.clone(),
        values: METRICS.iter().map(|m| values.get(m).copied()).collect(),
        missing,
        token_ms,
        samples,
        odai_version: r.report.as_ref().map(|x| x.provenance.odai_version.clone()),
        model_sha256: r
            .report
            .as_ref()
            .and_then(|x| x.provenance.model_sha256.clone()),
        gpu_layers: c.gpu_layers,
        kv_cache: r
            .report
            .as_ref()
            .and_then(|x| {
                let p = &x.provenance;
                Some(crate::engine::kv::KvTypes {
                    k: p.type_k?,
                    v: p.type_v?,
                })
            })
            .or(c.kv_types)
            .map(|t| t.label()),
        n_batch: ran(|p| p.n_batch).or(c.batching.batch),
        n_ubatch: ran(|p| p.n_ubatch).or(c.batching.ubatch),
        mmap: ran_mmap.or(c.batching.mmap),
        offload: r
            .report
            .as_ref()
            .and_then(|x| x.reps.first()?.offload.clone()),
        warnings: r
            .report
            .as_ref()
            .map(|x| x.warnings.clone())
            .unwrap_or_default(),
    }
}

//! What a matrix means for one device before anything runs: which cells run, which are skipped
//! because the model does not fit the device's headroom (or cannot be read), and a lower bound on
//! how long the run takes.

use serde::Serialize;

use super::spec::{Cell, Matrix, ModelRef};
use crate::engine::gguf::{Gguf, ModelInfo};
use crate::engine::synth;
use crate::probe::Probe;
use crate::sysroot::Reading;

#[derive(Serialize)]
pub struct PlannedCell {
    #[serde(flatten)]
    pub cell: Cell,
    pub needs_bytes: Reading<u64>,
    /// Why the cell will not run here; null when it will.
    pub skip: Option<String>,
    /// Lower bound on the cell's time: decode at the memory-bandwidth limit, plus any sustained
    /// duration. Loading, prefill and warm-up come on top.
    pub min_seconds: Reading<f64>,
    /// The cell's expected time, every repetition and warm-up: see [`estimate_seconds`].
    pub estimate_seconds: Reading<f64>,
}

#[derive(Serialize)]
pub struct DevicePlan {
    pub device: String,
    pub class: Reading<String>,
    pub headroom_bytes: Reading<u64>,
    pub bandwidth_gb_s: Reading<f64>,
    pub cells: Vec<PlannedCell>,
    pub runs: usize,
    pub skipped: usize,
    /// Lower bound on the whole run on this device (the cells that run).
    pub min_seconds: Reading<f64>,
    /// The expected time of the whole run on this device (the cells that run).
    pub estimate_seconds: Reading<f64>,
}

/// A worker's start, its quick probe and the model's header read, per repetition (measured
/// 0.3–0.4 s on a 2-core x86-64 VM, 2026-12-07).
const REP_OVERHEAD_S: f64 = 0.35;
/// Decode reaches this share of the memory-bandwidth roofline (odai's engine measured 57–70 %
/// on SmolLM2-135M to Llama-3.2-1B shapes, the same machine).
const DECODE_EFFICIENCY: f64 = 0.65;
/// A prompt token costs this share of a decoded token: prefill multiplies a batch of tokens
/// by each weight it reads (measured 3.0–4.2× faster per token than decode, the same machine).
const PREFILL_PER_DECODE: f64 = 0.25;
/// A warm load reads the mapped file from the page cache and repacks it (GB/s).
const WARM_LOAD_GB_S: f64 = 1.5;
/// A cold load reads it from storage: a conservative figure for phones' UFS/eMMC and SSDs
/// (GB/s; the VM measured 0.27).
const COLD_LOAD_GB_S: f64 = 0.3;

/// A language cell's expected time: per repetition (measured and warm-up), a worker's start,
/// the load (from the page cache, or from storage for a cold cell), the prompt and the
/// generated tokens, each token priced from the bytes it reads at the measured bandwidth; plus
/// any sustained duration. An estimate to plan a farm's time with (within 1.5× of the run on
/// the machine its constants were measured on), not a measurement.
pub fn estimate_seconds(c: &Cell, i: &ModelInfo, bandwidth_gb_s: f64) -> f64 {
    let context = u64::from(c.depth) + u64::from(c.prompt_tokens) + u64::from(c.gen_tokens);
    let kv = crate::runtime::memory::kv_types_for(c.runtime, i, c.kv_types);
    let per_token_s = (i.decode_weight_bytes + i.kv_cache_bytes(context, kv)) as f64
        / (bandwidth_gb_s * 1e9 * DECODE_EFFICIENCY);
    let load_s = i.file_size_bytes as f64
        / 1e9
        / if c.cold {
            COLD_LOAD_GB_S
        } else {
            WARM_LOAD_GB_S
        };
    let rep = REP_OVERHEAD_S
        + load_s
        + f64::from(c.depth + c.prompt_tokens) * per_token_s * PREFILL_PER_DECODE
        + f64::from(c.gen_tokens) * per_token_s
        + c.sustained_s.unwrap_or(0.0);
    f64::from(c.reps + c.warmup) * rep
}

fn model_info(m: &ModelRef) -> Result<ModelInfo, String> {
    match m {
        ModelRef::Synthetic { preset, quant } => {
            let (p, q) = synth::parse_spec(&format!("{preset}:{quant}"), "models")
                .map_err(|e| e.to_string())?;
            Ok(synth::model_info(p, q))
        }
        ModelRef::File { path, .. } => Gguf::open(path)
            .and_then(|g| ModelInfo::from_gguf(&g))
            .map_err(|e| e.to_string()),
        ModelRef::Endpoint { .. } => Err("an endpoint model has no file to plan".into()),
        ModelRef::Tensor { .. } => Err("a tensor model is planned by plan_tensor".into()),
    }
}

/// Checks that this machine can open every model file the matrix names (a GGUF's header and
/// metadata; a tensor model's file), before a run whose devices include this one: a typo in a
/// path is one error naming it (exit 3) instead of a run that records every cell of that model
/// failed. Remote devices open their own paths, so a farm without a local device skips this.
pub fn check_local_models(matrix: &Matrix) -> Result<(), crate::error::Error> {
    let mut seen = std::collections::BTreeSet::new();
    let mut bad = Vec::new();
    for c in &matrix.cells {
        let why = match &c.model {
            ModelRef::File { path, .. } if seen.insert(path.clone()) => {
                model_info(&c.model).err().map(|e| {
                    // The engine's errors already start with the path.
                    if e.starts_with(&path.display().to_string()) {
                        e
                    } else {
                        format!("{}: {e}", path.display())
                    }
                })
            }
            ModelRef::Tensor { models } => models
                .iter()
                .filter(|p| seen.insert((*p).clone()))
                .find_map(|p| {
                    crate::engine::regular_file(p)
                        .and_then(|()| {
                            std::fs::File::open(p)
                                .map(drop)
                                .map_err(|e| format!("cannot open: {e}"))
                        })
                        .err()
                        .map(|why| format!("{}: {why}", p.display()))
                }),
            _ => None,
        };
        bad.extend(why);
    }
    match bad.split_first() {
        None => Ok(()),
        Some((first, rest)) => Err(crate::error::Error::ConfigFile {
            file: matrix.file.clone(),
            problem: format!(
                "models: {first}{} (fix the path: model paths are read from the directory odai \
                 runs in; nothing was run)",
                if rest.is_empty() {
                    String::new()
                } else {
                    format!(", and {} more unreadable model(s)", rest.len())
                }
            ),
        }),
    }
}

/// The plan of `matrix` on the device `probe` describes; `bandwidth_gb_s` from its STREAM triad.
/// Endpoint cells are not a device's: the coordinator runs them (`runner::ENDPOINT_DEVICE`).
pub fn plan(matrix: &Matrix, probe: &Probe, bandwidth_gb_s: Reading<f64>) -> DevicePlan {
    let headroom = probe.memory.headroom_bytes.clone();
    let cells: Vec<PlannedCell> = matrix
        .cells
        .iter()
        .filter(|c| !c.model.is_endpoint())
        .map(|c| {
            if let ModelRef::Tensor { models } = &c.model {
                return plan_tensor(c, models, &headroom);
            }
            let info = model_info(&c.model);
            let context = u64::from(c.depth) + u64::from(c.prompt_tokens) + u64::from(c.gen_tokens);
            let needs = match &info {
                Ok(i) => match crate::runtime::memory::Holder::for_kind(c.runtime, i) {
                    Some(h) => Reading::Value(
                        crate::runtime::memory::needs(
                            i,
                            h,
                            context,
                            c.prompt_tokens.max(c.depth).into(),
                            h.kv_types(c.kv_types),
                            &c.batching,
                        )
                        .total_bytes,
                    ),
                    None => Reading::unavailable("not sized: no model file in this process"),
                },
                Err(e) => Reading::unavailable(e.clone()),
            };
            let skip = match (&info, &needs, &headroom) {
                _ if c.runtime.available().is_err() => Some(crate::runtime::NOT_BUILT_IN.into()),
                (Err(e), _, _) => Some(e.clone()),
                (Ok(i), _, _) if i.context_length.is_some_and(|max| context > max) => {
                    Some(format!(
                        "{context} tokens exceed the model's context length {}",
                        i.context_length.unwrap_or(0)
                    ))
                }
                (_, Reading::Value(n), Reading::Value(h)) if n > h => Some(format!(
                    "does not fit: needs {}, headroom {}",
                    crate::units::bytes(*n),
                    crate::units::bytes(*h)
                )),
                _ => None,
            };
            let min_seconds = match (&info, &bandwidth_gb_s) {
                (Ok(i), Reading::Value(bw)) if *bw > 0.0 => {
                    let kv = crate::runtime::memory::kv_types_for(c.runtime, i, c.kv_types);
                    let per_token = (i.decode_weight_bytes + i.kv_cache_bytes(context, kv)) as f64;
                    let decode = f64::from(c.gen_tokens) * per_token / (bw * 1e9);
                    Reading::Value(
                        f64::from(c.reps + c.warmup) * (decode + c.sustained_s.unwrap_or(0.0)),
                    )
                }
                (Err(e), _) => Reading::unavailable(e.clone()),
                (_, Reading::Unavailable(r)) => Reading::Unavailable(r.clone()),
                _ => Reading::unavailable("no bandwidth measured"),
            };
            let estimate_seconds = match (&info, &bandwidth_gb_s) {
                (Ok(i), Reading::Value(bw)) if *bw > 0.0 => {
                    Reading::Value(estimate_seconds(c, i, *bw))
                }
                _ => min_seconds.clone(),
            };
            PlannedCell {
                cell: c.clone(),
                needs_bytes: needs,
                skip,
                min_seconds,
                estimate_seconds,
            }
        })
        .collect();
    let runs = cells.iter().filter(|c| c.skip.is_none()).count();
    DevicePlan {
        device: probe
            .device
            .hostname
            .value()
            .cloned()
            .unwrap_or_else(|| "this device".into()),
        class: probe.class.clone().map(|c| c.id),
        headroom_bytes: headroom,
        bandwidth_gb_s,
        runs,
        skipped: cells.len() - runs,
        min_seconds: total_seconds(&cells, |c| &c.min_seconds),
        estimate_seconds: total_seconds(&cells, |c| &c.estimate_seconds),
        cells,
    }
}

/// A tensor cell's plan: its files must be there; it needs at least their bytes in memory (the
/// runtime's own allocations come on top, measured by the run); a stream lasts its duration, a
/// burst of iterations as long as the model takes (not known before it runs).
fn plan_tensor(c: &Cell, models: &[std::path::PathBuf], headroom: &Reading<u64>) -> PlannedCell {
    let mut bytes = 0u64;
    let mut missing = None;
    for m in models {
        match std::fs::metadata(m) {
            Ok(md) if md.is_file() => bytes += md.len(),
            Ok(_) => missing = Some(format!("{}: not a file", m.display())),
            Err(e) => missing = Some(format!("{}: {e}", m.display())),
        }
    }
    let needs = match &missing {
        Some(e) => Reading::unavailable(e.clone()),
        None => Reading::Value(bytes),
    };
    let skip = match (&missing, &needs, headroom) {
        (Some(e), _, _) => Some(e.clone()),
        (_, Reading::Value(n), Reading::Value(h)) if n > h => Some(format!(
            "does not fit: needs {}, headroom {}",
            crate::units::bytes(*n),
            crate::units::bytes(*h)
        )),
        _ => None,
    };
    let min_seconds = match c.tensor.as_ref().map(|t| &t.mode) {
        Some(crate::bench::tensor::Mode::Stream { duration_s, .. }) => Reading::Value(*duration_s),
        Some(crate::bench::tensor::Mode::Burst {
            duration_s: Some(d),
            ..
        }) => Reading::Value(*d),
        _ => Reading::unavailable("a burst of iterations lasts as long as the model takes"),
    };
    PlannedCell {
        cell: c.clone(),
        needs_bytes: needs,
        skip,
        estimate_seconds: min_seconds.clone(),
        min_seconds,
    }
}

/// The running cells' lower bounds added up; unknown if any is.
fn total_seconds(
    cells: &[PlannedCell],
    of: impl Fn(&PlannedCell) -> &Reading<f64>,
) -> Reading<f64> {
    let mut total = 0.0;
    for c in cells.iter().filter(|c| c.skip.is_none()) {
        match of(c) {
            Reading::Value(s) => total += s,
            Reading::Unavailable(r) => return Reading::Unavailable(r.clone()),
        }
    }
    Reading::Value(total)
}

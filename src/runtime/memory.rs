//! How much memory a runtime needs for a model, built the way each runtime holds it — what
//! decides `odai bench`'s refusal (exit 4), `matrix plan`'s skips and a class's memory fit, so it
//! must agree with the peak the run then measures (tests/it/memory.rs sweeps every synthetic
//! preset and the test models on odai's engine and llama.cpp against it: within 15 %).
//!
//! - **odai's engine** maps the file and populates it (MAP_POPULATE); Q4_0/Q4_1/Q5_0 (AVX2,
//!   NEON), Q4_K (AVX2) and, with VNNI, Q8_0 matrices are repacked eight rows at a time, each
//!   matrix's mapped pages released once its copy exists, two matrices at a time on the load's
//!   pool: the load peaks at the file plus the two largest copies in flight. The KV cache is f16
//!   unless the run asks another type (`kv.rs`) and grows from 256 positions by doubling (old and new copies live during a
//!   growth); attention is tiled, so no scores as long as the context are held (`decoder.rs`).
//! - **llama.cpp** maps the file (its pages stay resident) and copies Q4_0 and Q4_K (AVX2) or
//!   Q4_0 and IQ4_NL (Arm dot product) matrices into its repacked CPU buffer, a tied output
//!   projection included as a second copy of the embedding (ggml-cpu's repack.cpp; llama.cpp's
//!   TENSOR_DUPLICATED output); its KV cache is f16 at the context padded to 256; its compute
//!   buffer is calibrated below.
//! - **candle** reads every tensor into memory and dequantizes the token embedding to f32
//!   (candle-transformers' quantized models); its KV cache is f32 at the context.

use odai_engine::gguf::{MemoryNeeds, ModelInfo};
use odai_engine::kv::{KvType, KvTypes};

use super::RuntimeKind;
use super::batching::Batching;

const MIB: u64 = 1 << 20;

/// The process beside the model (odai's code pages, its libraries, thread stacks, the
/// allocator's arenas): measured as the peak resident set less the model's parts, 8–9 MiB for
/// odai's engine and 10–13 MiB with llama.cpp's code (x86-64, 2026-12-07).
const OVERHEAD_BYTES: u64 = 10 * MIB;
const LLAMA_CPP_OVERHEAD_BYTES: u64 = 14 * MIB;

/// odai's engine's first KV allocation, in positions (decoder.rs KV_START).
const KV_START: u64 = 256;

/// Which runtime holds the model (an `auto` cell's is the one `runtime::load` picks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Holder {
    Odai,
    Candle,
    LlamaCpp,
}

impl Holder {
    /// The runtime that would hold `info`'s model for a cell of `kind`; `None` for runtimes
    /// without a model file in this process (an endpoint, tensor runtimes).
    pub fn for_kind(kind: RuntimeKind, info: &ModelInfo) -> Option<Holder> {
        match kind {
            RuntimeKind::Odai => Some(Holder::Odai),
            RuntimeKind::Candle => Some(Holder::Candle),
            RuntimeKind::LlamaCpp => Some(Holder::LlamaCpp),
            RuntimeKind::Auto if odai_runs(info) => Some(Holder::Odai),
            RuntimeKind::Auto => Some(Holder::Candle),
            _ => None,
        }
    }

    /// The KV cache types it holds for a run that asked for `asked` (`-ctk`/`-ctv`): f16 by
    /// default on odai's engine and llama.cpp; candle's cache is f32, whatever is asked (a
    /// candle load refuses another type: `runtime::candle`).
    pub fn kv_types(self, asked: Option<KvTypes>) -> KvTypes {
        match self {
            Holder::Candle => KvTypes::both(KvType::F32),
            Holder::Odai | Holder::LlamaCpp => asked.unwrap_or_default(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Holder::Odai => "odai",
            Holder::Candle => "candle",
            Holder::LlamaCpp => "llama.cpp",
        }
    }
}

/// The KV cache types a cell of runtime `kind` holds `info`'s model's cache in, `asked` its
/// `-ctk`/`-ctv` (the roofline's bytes per token; the memory estimate's cache).
pub fn kv_types_for(kind: RuntimeKind, info: &ModelInfo, asked: Option<KvTypes>) -> KvTypes {
    Holder::for_kind(kind, info).map_or(asked.unwrap_or_default(), |h| h.kv_types(asked))
}

/// Whether odai's engine would run the model here (what `auto` tries first): its architecture,
/// its kernels' SIMD, and every weight type one it multiplies (F32 tensors are the norms).
pub fn odai_runs(info: &ModelInfo) -> bool {
    odai_engine::arch::ARCHS.contains(&info.architecture.as_str())
        && odai_engine::kernels::has_simd()
        && info
            .tensor_types
            .keys()
            .all(|t| ["F32", "Q4_0", "Q4_1", "Q5_0", "Q8_0", "Q4_K", "Q6_K"].contains(&t.as_str()))
}

/// The types odai's engine repacks on this CPU (decoder.rs `QMat::repack`).
fn odai_repacks(t: &str) -> bool {
    use odai_engine::kernels;
    match t {
        "Q4_0" | "Q4_1" | "Q5_0" => kernels::packs_32(),
        "Q4_K" => kernels::packs_q4_k(),
        "Q8_0" => kernels::packs_q8_0(),
        _ => false,
    }
}

/// The types llama.cpp's CPU backend repacks on this CPU (ggml-cpu repack.cpp's
/// `ggml_repack_get_optimal_repack_type`: Q4_0 and Q4_K with AVX2; Q4_0 and IQ4_NL with the Arm
/// dot product).
fn llama_cpp_repacks(t: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    return matches!(t, "Q4_0" | "Q4_K") && std::arch::is_x86_feature_detected!("avx2");
    #[cfg(target_arch = "aarch64")]
    return matches!(t, "Q4_0" | "IQ4_NL") && std::arch::is_aarch64_feature_detected!("dotprod");
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = t;
        false
    }
}

/// Activations while a batch goes through one layer (f32): the residual stream and its norm,
/// q/k/v, the FFN's gate/up/down, and the logits.
fn activations(info: &ModelInfo, batch: u64) -> u64 {
    let vocab = info.vocab_size.unwrap_or(0);
    let ffn = info.feed_forward_length.unwrap_or(4 * info.n_embd);
    4 * (batch * (4 * info.n_embd + 3 * ffn) + vocab)
}

/// The attention scores of a batch against the whole context, every head (f32): what candle
/// materialises (q·kᵀ, then softmax). odai's engine holds none of it (tiled attention).
fn scores(info: &ModelInfo, context: u64, batch: u64) -> u64 {
    4 * info.n_heads * batch * context
}

/// odai's KV cache at its largest while a sequence of `batch` prompt tokens then `context` in
/// all runs: allocated at max(prompt, 256) positions and doubled when the sequence outgrows it,
/// the old and new caches both live while one is copied into the other.
fn odai_kv_peak(info: &ModelInfo, context: u64, batch: u64, kv: KvTypes) -> u64 {
    let per = info.kv_bytes_per_position(kv);
    let ctx_max = info.context_length.unwrap_or(u64::MAX).max(context);
    let mut cap = batch.max(1).max(KV_START).min(ctx_max);
    let mut peak = cap;
    while cap < context {
        let next = context.max(2 * cap).min(ctx_max.max(context));
        peak = peak.max(cap + next);
        cap = next;
    }
    peak * per
}

/// Memory `holder` needs for `info`'s model at `context` tokens with prompts of `prompt` tokens,
/// fed as `batching` asks (`-b`, `-ub`, `--mmap`: runtime::batching).
pub fn needs(
    info: &ModelInfo,
    holder: Holder,
    context: u64,
    prompt: u64,
    kv: KvTypes,
    batching: &Batching,
) -> MemoryNeeds {
    let kv_types = holder.kv_types(Some(kv));
    let asked = batching.resolved();
    // The most positions one call takes, and one pass through the layers computes.
    let call = prompt.clamp(1, u64::from(asked.batch));
    let batch = call.min(u64::from(asked.ubatch));
    let mmap = asked.mmap;
    let (mapped, copied, kv, working, overhead, total) = match holder {
        Holder::Odai => {
            // Mapped and populated, or read into anonymous memory (`--mmap 0`): the same pages
            // either way, and repacking releases the same ones.
            let mapped = info.file_size_bytes;
            // Two matrices repack at once: the largest two copies beside the whole file (a tied
            // embedding is repacked as the output; an untied one is not repacked).
            let mut candidates: Vec<u64> = info
                .tensor_types
                .iter()
                .filter(|(t, _)| odai_repacks(t))
                .flat_map(|(_, b)| [b.largest_bytes, b.second_bytes])
                .collect();
            if info.output_tied && odai_repacks(&info.token_embd_type) {
                candidates.push(info.token_embd_bytes);
            }
            candidates.sort_unstable_by(|a, b| b.cmp(a));
            let in_flight: u64 = candidates.iter().take(2).sum();
            let kv = odai_kv_peak(info, context, call, kv_types);
            let working = activations(info, batch);
            let load = mapped + in_flight;
            let run = mapped + kv + working;
            (
                mapped,
                in_flight,
                kv,
                working,
                OVERHEAD_BYTES,
                load.max(run) + OVERHEAD_BYTES,
            )
        }
        Holder::LlamaCpp => {
            // Repacked matrices are copies; the mapped pages stay. An untied embedding is read
            // a row at a time from the mapping, not repacked; a tied one is, as the output.
            let repacked: u64 = info
                .tensor_types
                .iter()
                .filter(|(t, _)| llama_cpp_repacks(t))
                .map(|(_, b)| b.bytes)
                .sum();
            let repacked = if !info.output_tied && llama_cpp_repacks(&info.token_embd_type) {
                repacked.saturating_sub(info.token_embd_bytes)
            } else {
                repacked
            };
            let (mapped, copied) = if mmap {
                (info.file_size_bytes, repacked)
            } else {
                // Read, not mapped (llama_model_loader::load_all_data without mmap): a tensor
                // bound for the repacked buffer is read into a staging buffer the size of the
                // largest such tensor and converted from there, so its file bytes are never
                // held; everything else is read into the CPU buffer.
                let staging = info
                    .tensor_types
                    .iter()
                    .filter(|(t, _)| llama_cpp_repacks(t))
                    .map(|(_, b)| b.largest_bytes)
                    .max()
                    .unwrap_or(0);
                // A tied output's repacked copy comes from the embedding, which the CPU buffer
                // holds as well (its rows are looked up): that file tensor is read all the same.
                let tied_copy = if info.output_tied && llama_cpp_repacks(&info.token_embd_type) {
                    info.token_embd_bytes
                } else {
                    0
                };
                (
                    info.file_size_bytes
                        .saturating_sub(repacked.saturating_sub(tied_copy)),
                    repacked + staging,
                )
            };
            // K and V (f16 unless asked otherwise) at the context padded to 256.
            let n_ctx = context.max(1).div_ceil(256) * 256;
            let kv = info.kv_cache_bytes(n_ctx, kv_types);
            // The compute buffer's touched pages, calibrated on llama-cpp-sys-2 0.1.160 (x86-64,
            // 2026-12-08; peak less file, copies, KV cache and process): 48 rows of logits,
            // whatever the micro-batch, and four f32 rows of the FFN's width per position of it.
            // Measured (micro-batch 128 / 256 / 512): Qwen2.5-0.5B 36 / 45 / 64 MiB, the same
            // at 1,024 and 2,048 tokens of context (llama.cpp's CPU flash attention holds no
            // scores as long as the context); Llama-3.2-1B 39 / – / 87 MiB; SmolLM2-135M 15 /
            // – / 28 MiB. The buffer is reserved for the largest micro-batch the context takes,
            // but only the pages a pass touches become resident.
            let vocab = info.vocab_size.unwrap_or(0);
            let ffn = info.feed_forward_length.unwrap_or(4 * info.n_embd);
            let working = vocab * 4 * 48 + 16 * ffn * batch;
            (
                mapped,
                copied,
                kv,
                working,
                LLAMA_CPP_OVERHEAD_BYTES,
                mapped + copied + kv + working + LLAMA_CPP_OVERHEAD_BYTES,
            )
        }
        Holder::Candle => {
            // Every tensor read into memory, and the embedding dequantized to f32 besides.
            let embedding_f32 = info.vocab_size.unwrap_or(0) * info.n_embd * 4;
            let copied = info.weight_bytes + embedding_f32;
            let kv = info.kv_cache_bytes(context, kv_types);
            let working = activations(info, batch) + scores(info, context, batch);
            (
                0,
                copied,
                kv,
                working,
                OVERHEAD_BYTES,
                copied + kv + working + OVERHEAD_BYTES,
            )
        }
    };
    MemoryNeeds {
        context,
        runtime: holder.name().into(),
        mapped_bytes: mapped,
        mmap: (holder != Holder::Candle).then_some(mmap),
        copied_bytes: copied,
        weights_bytes: mapped + copied,
        kv_cache_bytes: kv,
        kv_cache: Some(kv_types.label()),
        working_bytes: working,
        overhead_bytes: overhead,
        total_bytes: total,
    }
}

/// The estimate in words: the peak, and what it is made of at load and while running.
pub fn describe(m: &MemoryNeeds) -> String {
    use crate::units::bytes;
    if m.runtime.is_empty() {
        // Results from before estimates were per runtime.
        return format!(
            "needs {} at {} tokens (weights {}, KV cache {}, working {})",
            bytes(m.total_bytes),
            m.context,
            bytes(m.weights_bytes),
            bytes(m.kv_cache_bytes),
            bytes(m.working_bytes)
        );
    }
    // `--mmap 0`: the file's bytes are read into memory, not mapped.
    let file = if m.mmap == Some(false) {
        "file read"
    } else {
        "file mapped"
    };
    let weights = match (m.mapped_bytes, m.copied_bytes, m.runtime.as_str()) {
        (mapped, copied, "odai") => format!(
            "{file} {}{}",
            bytes(mapped),
            if copied > 0 {
                format!(" + {} repacked in flight at load", bytes(copied))
            } else {
                String::new()
            }
        ),
        (mapped, copied, "llama.cpp") if m.mmap == Some(false) => format!(
            "{file} {} + repacked {} (its staging buffer included)",
            bytes(mapped),
            bytes(copied)
        ),
        (mapped, copied, "llama.cpp") => format!(
            "{file} {} + repacked copies {}",
            bytes(mapped),
            bytes(copied)
        ),
        (_, copied, _) => format!("weights read and dequantized {}", bytes(copied)),
    };
    let kv = m
        .kv_cache
        .as_ref()
        .map_or_else(String::new, |t| format!(" ({t})"));
    format!(
        "needs {} on {} at {} tokens: {weights}; KV cache{kv} {}, working {} while running; process {}",
        bytes(m.total_bytes),
        m.runtime,
        m.context,
        bytes(m.kv_cache_bytes),
        bytes(m.working_bytes),
        bytes(m.overhead_bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use odai_engine::synth;

    #[test]
    fn regression_the_engine_is_not_sized_with_candles_f32_embedding() {
        // Found in review: `--synthetic llama-3.2-1b:q4_0` "needs 1.6 GiB (weights 1.6 GiB)" for
        // a 665 MiB file that peaks at 824 MiB on odai's engine: every runtime was sized as
        // candle holds a model, its token embedding dequantized to f32 (1 GiB here).
        let (p, q) = synth::parse_spec("llama-3.2-1b:q4_0", "models").unwrap();
        let info = synth::model_info(p, q);
        let odai = needs(
            &info,
            Holder::Odai,
            144,
            128,
            KvTypes::default(),
            &Batching::default(),
        );
        let candle = needs(
            &info,
            Holder::Candle,
            144,
            128,
            KvTypes::default(),
            &Batching::default(),
        );
        assert!(odai.total_bytes < 1000 * MIB, "{odai:?}");
        assert!(candle.total_bytes > 1500 * MIB, "{candle:?}");
        assert!(odai.total_bytes >= info.file_size_bytes);
        // The load's peak or the run's, not their sum.
        assert!(
            odai.total_bytes
                <= odai.mapped_bytes
                    + odai
                        .copied_bytes
                        .max(odai.kv_cache_bytes + odai.working_bytes)
                    + odai.overhead_bytes
        );
    }

    #[test]
    fn odai_kv_grows_by_doubling_and_holds_both_copies_while_it_grows() {
        let (p, q) = synth::parse_spec("smollm2-135m:q8_0", "models").unwrap();
        let info = synth::model_info(p, q);
        let f16 = KvTypes::default();
        let per = info.kv_bytes_per_position(f16);
        // Within the first 256 positions: one allocation.
        assert_eq!(odai_kv_peak(&info, 144, 128, f16), 256 * per);
        // Past it: 256 and 512 live together while the cache is copied.
        assert_eq!(odai_kv_peak(&info, 300, 128, f16), (256 + 512) * per);
        // A long prompt allocates it whole.
        assert_eq!(odai_kv_peak(&info, 1100, 1024, f16), (1024 + 2048) * per);
        // SmolLM2-135M (30 layers, 3 KV heads of 64): 23,040 bytes a position in f16 (f32's
        // half), 12,240 in q8_0, 6,480 in q4_0 — ggml's block sizes.
        assert_eq!(per, 30 * 3 * 2 * 64 * 2);
        let q8 = KvTypes::both(KvType::Q8_0);
        assert_eq!(info.kv_bytes_per_position(q8), 30 * 3 * 2 * 68);
        assert_eq!(
            info.kv_bytes_per_position(KvTypes::both(KvType::Q4_0)),
            30 * 3 * 2 * 36
        );
        assert_eq!(
            odai_kv_peak(&info, 300, 128, q8),
            (256 + 512) * 30 * 3 * 2 * 68
        );
        // Candle's cache is f32 whatever is asked.
        assert_eq!(
            needs(&info, Holder::Candle, 144, 128, q8, &Batching::default()).kv_cache_bytes,
            144 * 30 * 3 * 2 * 64 * 4
        );
    }
}

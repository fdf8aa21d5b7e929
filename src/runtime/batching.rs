//! How a runtime takes a prompt and holds its weights — llama-bench's `-b`, `-ub` and `-mmp` —
//! as a cell asks for them (`None`: the runtime's default) and as a result records what ran
//! (every field set). It crosses the worker protocol and results files, so it is plain data.
//!
//! What each means, by runtime (llama.cpp's `llama_context_params` and `llama_model_params`):
//! - **batch** (`n_batch`, default 2048): the most prompt tokens one call into the runtime takes;
//!   a longer prompt is fed in calls of this many. llama.cpp sizes its token batch and output
//!   buffer by it; odai's engine and candle simply make more calls, so for them it matters only
//!   where it is smaller than `ubatch`.
//! - **ubatch** (`n_ubatch`, default 512; never more than `batch`): the most positions one pass
//!   through the layers computes at once — what sizes the per-pass buffers (llama.cpp's compute
//!   buffer; odai's activations, 2 × `feed_forward_length` floats a position the largest;
//!   candle's attention scores, a position times the context per head). Larger micro-batches
//!   read the weights fewer times per prompt; past a few dozen positions the matrix products are
//!   compute-bound, so what it mostly moves is memory.
//! - **mmap** (default on): the weights are the file's pages, mapped (the kernel may drop and
//!   read them again under pressure; they are shared with other processes and the page cache),
//!   or read into the process's own anonymous memory (`--mmap 0`: all read before the first
//!   pass, and what a phone's low-memory killer counts as the app's). candle reads every tensor
//!   into memory whatever is asked: it cannot map them.

use serde::{Deserialize, Serialize};

/// llama.cpp's default `n_batch` (llama_context_default_params), odai's too.
pub const BATCH_DEFAULT: u32 = 2048;
/// llama.cpp's default `n_ubatch`, odai's engine's too (`decoder::UBATCH_DEFAULT`).
pub const UBATCH_DEFAULT: u32 = odai_engine::decoder::UBATCH_DEFAULT as u32;

/// A cell's batch, micro-batch and mapping: asked (each `None` the runtime's default) or ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Batching {
    /// Prompt tokens per call into the runtime (`-b`, llama.cpp's `n_batch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Positions per pass through the layers (`-ub`, `n_ubatch`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ubatch: Option<u32>,
    /// Weights mapped from the file (`true`) or read into memory (`--mmap 0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmap: Option<bool>,
}

impl Batching {
    /// Nothing asked: every runtime's default.
    pub fn is_default(&self) -> bool {
        *self == Batching::default()
    }

    /// What a runtime with llama.cpp's defaults runs for this ask: batch 2048 and micro-batch
    /// 512 unless asked, the micro-batch no larger than the batch (as llama.cpp clamps it), and
    /// the file mapped.
    pub fn resolved(&self) -> Resolved {
        let batch = self.batch.unwrap_or(BATCH_DEFAULT).max(1);
        Resolved {
            batch,
            ubatch: self.ubatch.unwrap_or(UBATCH_DEFAULT).clamp(1, batch),
            mmap: self.mmap.unwrap_or(true),
        }
    }

    /// What was asked, knob by knob, in llama-bench's short names: (`b`, 512), (`mmap`, 0).
    fn asked(&self) -> Vec<(&'static str, u32)> {
        [
            ("b", self.batch),
            ("ub", self.ubatch),
            ("mmap", self.mmap.map(u32::from)),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect()
    }

    /// The cell id's part for what was asked: `|b512|ub128|mmap0`, empty when nothing was (so
    /// cells keep the ids they had before these were knobs).
    pub fn id_part(&self) -> String {
        self.asked()
            .iter()
            .map(|(k, v)| format!("|{k}{v}"))
            .collect()
    }

    /// What was asked, in llama-bench's words for a progress line: ` b=512 ub=128 mmap=0`.
    pub fn label(&self) -> String {
        self.asked()
            .iter()
            .map(|(k, v)| format!(" {k}={v}"))
            .collect()
    }

    /// Every combination of the lists (`-b 512,2048 -ub 128,512 --mmap 0,1`), an empty list
    /// leaving that knob at its default: one cell each, in llama-bench's order.
    pub fn product(batch: &[u32], ubatch: &[u32], mmap: &[bool]) -> Vec<Batching> {
        fn or_none<T: Copy>(v: &[T]) -> Vec<Option<T>> {
            if v.is_empty() {
                vec![None]
            } else {
                v.iter().copied().map(Some).collect()
            }
        }
        let mut out = Vec::new();
        for &b in &or_none(batch) {
            for &u in &or_none(ubatch) {
                for &m in &or_none(mmap) {
                    out.push(Batching {
                        batch: b,
                        ubatch: u,
                        mmap: m,
                    });
                }
            }
        }
        out
    }
}

/// What a runtime runs with: [`Batching::resolved`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub batch: u32,
    pub ubatch: u32,
    pub mmap: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_llama_cpps_and_the_micro_batch_never_exceeds_the_batch() {
        let r = Batching::default().resolved();
        assert_eq!((r.batch, r.ubatch, r.mmap), (2048, 512, true));
        let small = Batching {
            batch: Some(128),
            ..Default::default()
        };
        assert_eq!(small.resolved().ubatch, 128);
        let zero = Batching {
            batch: Some(0),
            ubatch: Some(0),
            mmap: Some(false),
        };
        assert_eq!(
            zero.resolved(),
            Resolved {
                batch: 1,
                ubatch: 1,
                mmap: false
            }
        );
    }

    #[test]
    fn ids_and_labels_name_only_what_was_asked() {
        assert_eq!(Batching::default().id_part(), "");
        let b = Batching {
            batch: Some(512),
            ubatch: Some(128),
            mmap: Some(false),
        };
        assert_eq!(b.id_part(), "|b512|ub128|mmap0");
        assert_eq!(b.label(), " b=512 ub=128 mmap=0");
        assert_eq!(
            serde_json::to_string(&Batching::default()).unwrap(),
            "{}",
            "nothing asked writes nothing"
        );
    }

    #[test]
    fn lists_multiply_in_llama_benchs_order() {
        let all = Batching::product(&[512, 2048], &[128], &[false, true]);
        let ids: Vec<String> = all.iter().map(Batching::id_part).collect();
        assert_eq!(
            ids,
            [
                "|b512|ub128|mmap0",
                "|b512|ub128|mmap1",
                "|b2048|ub128|mmap0",
                "|b2048|ub128|mmap1"
            ]
        );
        assert_eq!(Batching::product(&[], &[], &[]), [Batching::default()]);
    }
}

//! odai's own engine (`engine::decoder`): llama, qwen2, qwen3, gemma3 and phi3 models on odai's kernels. Its
//! wrapper also serves candle (`runtime::candle`): both run through `engine::Model`.

use std::path::Path;

use super::{Runtime, RuntimeInfo, Vocab};
use crate::engine::{self, Model, kernels};
use crate::error::Error;

/// A model on odai's engine or candle's, and the sequence's next position.
pub struct EngineRuntime {
    model: Model,
    pos: usize,
    /// Forward passes whose logits held NaN or +∞.
    non_finite: u64,
    /// Why odai's engine did not take a file `--runtime auto` gave to candle (the row says so).
    fallback: Option<String>,
}

impl EngineRuntime {
    pub(super) fn new(model: Model) -> EngineRuntime {
        EngineRuntime {
            model,
            pos: 0,
            non_finite: 0,
            fallback: None,
        }
    }

    /// A candle model that `auto` chose because odai's engine cannot run the file (`why`).
    pub(super) fn fallback(model: Model, why: String) -> EngineRuntime {
        EngineRuntime {
            fallback: Some(why),
            ..EngineRuntime::new(model)
        }
    }

    /// Loads `path` on odai's engine; the inner error says why it cannot run it (then candle
    /// can).
    pub fn load_own(path: &Path) -> Result<Result<EngineRuntime, String>, Error> {
        Ok(Model::load_own(path)?.map(EngineRuntime::new))
    }

    fn step(&mut self, tokens: &[u32]) -> Result<u32, String> {
        let logits = self
            .model
            .forward(tokens, self.pos)
            .map_err(|e| engine::candle_message(&e))?;
        self.pos += tokens.len();
        Ok(super::greedy(&logits, &mut self.non_finite))
    }
}

impl Runtime for EngineRuntime {
    fn info(&self) -> RuntimeInfo {
        let (runtime, version, simd) = match self.model.engine() {
            "odai" => ("odai", env!("CARGO_PKG_VERSION"), kernels::simd_path()),
            _ => ("candle", super::candle::CANDLE_VERSION, engine::simd_path()),
        };
        let backend = match &self.fallback {
            Some(why) => format!("cpu {simd} (odai's engine cannot run it: {why})"),
            None => format!("cpu {simd}"),
        };
        RuntimeInfo {
            runtime: runtime.into(),
            runtime_version: version.into(),
            backend,
        }
    }

    fn vocab(&self) -> Vocab {
        Vocab {
            size: self.model.info.vocab_size.unwrap_or(0),
            bos: self.model.info.bos_token_id,
            context_length: self.model.info.context_length,
        }
    }

    fn non_finite_steps(&self) -> u64 {
        self.non_finite
    }

    fn threads(&self) -> u32 {
        // Both size their threads like rayon's pool (RAYON_NUM_THREADS, set from --threads).
        rayon::current_num_threads() as u32
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<u32, String> {
        self.model.reset();
        self.pos = 0;
        self.step(tokens)
    }

    fn decode(&mut self, token: u32) -> Result<u32, String> {
        self.step(&[token])
    }

    fn logits(&mut self, tokens: &[u32], from: usize) -> Result<Vec<f32>, String> {
        self.model.reset();
        self.pos = 0;
        let out = self
            .model
            .forward_rows(tokens, 0, from)
            .map_err(|e| engine::candle_message(&e))?;
        self.pos = tokens.len();
        Ok(out)
    }
}

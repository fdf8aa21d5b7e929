//! odai's own engine (`engine::llama`): llama models on odai's x86-64 AVX2/VNNI kernels.

use std::path::Path;

use super::{Runtime, RuntimeInfo, Vocab};
use crate::engine::{self, Model, kernels};
use crate::error::Error;

/// The engine with a model loaded, and the sequence's next position.
pub struct OwnEngine {
    model: Model,
    pos: usize,
}

impl OwnEngine {
    /// Loads `path`; the inner error says why odai's engine cannot run it (then candle can).
    pub fn load(path: &Path) -> Result<Result<OwnEngine, String>, Error> {
        Ok(Model::load_own(path)?.map(|model| OwnEngine { model, pos: 0 }))
    }
}

/// The runtime interface over one of the engine's models, shared with candle's wrapper: both run
/// through `engine::Model`, which keeps positions explicit.
pub(super) fn step(model: &mut Model, pos: &mut usize, tokens: &[u32]) -> Result<u32, String> {
    let logits = model
        .forward(tokens, *pos)
        .map_err(|e| engine::gguf::candle_message(&e))?;
    *pos += tokens.len();
    Ok(engine::argmax(&logits))
}

pub(super) fn vocab(model: &Model) -> Vocab {
    Vocab {
        size: model.info.vocab_size.unwrap_or(0),
        bos: model.info.bos_token_id,
        context_length: model.info.context_length,
    }
}

impl Runtime for OwnEngine {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            runtime: "odai".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            backend: format!("cpu {}", kernels::simd_path()),
        }
    }

    fn vocab(&self) -> Vocab {
        vocab(&self.model)
    }

    fn threads(&self) -> u32 {
        // The engine's team is sized like rayon's pool (RAYON_NUM_THREADS, set from --threads).
        rayon::current_num_threads() as u32
    }

    fn prefill(&mut self, tokens: &[u32]) -> Result<u32, String> {
        self.model.reset();
        self.pos = 0;
        step(&mut self.model, &mut self.pos, tokens)
    }

    fn decode(&mut self, token: u32) -> Result<u32, String> {
        step(&mut self.model, &mut self.pos, &[token])
    }
}

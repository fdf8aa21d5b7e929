//! odai's own engine (`engine::decoder`): llama, qwen2, qwen3, gemma3 and phi3 models on odai's kernels. Its
//! wrapper also serves candle (`runtime::candle`): both run through `engine::Model`.

use std::path::Path;

use super::batching::{self, Batching};
use super::{Runtime, RuntimeInfo, Vocab};
use crate::engine::kv::KvTypes;
use crate::engine::{self, Model, kernels};
use crate::error::Error;

/// A model on odai's engine or candle's, and the sequence's next position.
pub struct EngineRuntime {
    model: Model,
    pos: usize,
    /// The most prompt tokens one forward call takes (`-b`); the model splits each call into
    /// micro-batches itself (`-ub`).
    batch: usize,
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
            batch: batching::BATCH_DEFAULT as usize,
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
    pub fn load_own(
        path: &Path,
        batching: &Batching,
    ) -> Result<Result<EngineRuntime, String>, Error> {
        let r = batching.resolved();
        Ok(match Model::load_own_with(path, r.mmap)? {
            Ok(m) => Ok(EngineRuntime::new(m).with_batching(batching)?),
            Err(why) => Err(why),
        })
    }

    /// Feeds prompts in calls of the batch asked and runs each in micro-batches of the
    /// micro-batch asked (llama.cpp's defaults otherwise: 2048 and 512).
    pub(super) fn with_batching(mut self, batching: &Batching) -> Result<EngineRuntime, Error> {
        let r = batching.resolved();
        self.batch = r.batch as usize;
        self.model.set_ubatch(r.ubatch as usize);
        Ok(self)
    }

    /// Holds the KV cache in `asked` (`-ctk`/`-ctv`; `None`: the engine's default), or says why
    /// it cannot, naming the model file.
    pub(super) fn with_kv_types(
        mut self,
        path: &Path,
        asked: Option<KvTypes>,
    ) -> Result<EngineRuntime, Error> {
        if let Some(types) = asked {
            self.model
                .set_kv_types(types)
                .map_err(|problem| Error::Model {
                    file: path.to_owned(),
                    problem,
                })?;
        }
        Ok(self)
    }

    fn step(&mut self, tokens: &[u32]) -> Result<u32, String> {
        let mut logits = Vec::new();
        for piece in tokens.chunks(self.batch) {
            logits = self
                .model
                .forward(piece, self.pos)
                .map_err(|e| engine::candle_message(&e))?;
            self.pos += piece.len();
        }
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

    fn kv_types(&self) -> Option<KvTypes> {
        Some(self.model.kv_types())
    }

    fn batching(&self) -> Option<Batching> {
        Some(Batching {
            batch: Some(self.batch as u32),
            // One pass per call where the model cannot split one.
            ubatch: Some(self.model.ubatch().unwrap_or(self.batch) as u32),
            mmap: Some(self.model.mapped()),
        })
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

    fn extend(&mut self, tokens: &[u32]) -> Result<u32, String> {
        self.step(tokens)
    }

    fn truncate(&mut self, pos: usize) -> Result<(), String> {
        // odai's engine reads only positions below the one it runs at, and overwrites the rest
        // before reading them: moving back is the whole of it. candle's caches append.
        if self.model.engine() != "odai" {
            return Err("candle cannot shorten its cache".into());
        }
        if pos > self.pos {
            return Err(format!(
                "position {pos} is past the sequence ({})",
                self.pos
            ));
        }
        self.pos = pos;
        Ok(())
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

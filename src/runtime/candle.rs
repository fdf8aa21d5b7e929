//! candle's quantized implementations (candle-transformers): every architecture odai loads.

use std::path::Path;

use super::odai::{step, vocab};
use super::{Runtime, RuntimeInfo, Vocab};
use crate::engine::{self, Model};
use crate::error::Error;

/// candle's crate version, pinned exactly in Cargo.toml (a test checks the two agree).
pub const CANDLE_VERSION: &str = "0.11.1";

pub struct Candle {
    model: Model,
    pos: usize,
}

impl Candle {
    pub fn load(path: &Path) -> Result<Candle, Error> {
        Ok(Candle {
            model: Model::load_candle(path)?,
            pos: 0,
        })
    }
}

impl Runtime for Candle {
    fn info(&self) -> RuntimeInfo {
        RuntimeInfo {
            runtime: "candle".into(),
            runtime_version: CANDLE_VERSION.into(),
            backend: format!("cpu {}", engine::simd_path()),
        }
    }

    fn vocab(&self) -> Vocab {
        vocab(&self.model)
    }

    fn threads(&self) -> u32 {
        candle_core::utils::get_num_threads() as u32
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorded_candle_version_is_the_one_built() {
        let lock = include_str!("../../Cargo.lock");
        let at = lock
            .find("name = \"candle-core\"\nversion = \"")
            .expect("candle-core in Cargo.lock");
        let version = lock[at..].lines().nth(1).unwrap();
        assert_eq!(version, format!("version = \"{}\"", super::CANDLE_VERSION));
    }
}

//! candle's quantized implementations (candle-transformers): every architecture odai loads. It
//! runs through the same `engine::Model` wrapper as odai's engine (`runtime::odai`).

use std::path::Path;

use super::odai::EngineRuntime;
use crate::engine::Model;
use crate::error::Error;

/// candle's crate version, pinned exactly in Cargo.toml (a test checks the two agree).
pub const CANDLE_VERSION: &str = "0.11.1";

pub fn load(path: &Path) -> Result<EngineRuntime, Error> {
    Ok(EngineRuntime::new(Model::load_candle(path)?))
}

/// Loads `path` on candle because odai's engine cannot run it (`why`, which the rep's backend
/// then carries).
pub fn load_because(path: &Path, why: String) -> Result<EngineRuntime, Error> {
    let model = Model::load_candle_because(path, Some(why.clone()))?;
    Ok(EngineRuntime::fallback(model, why))
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

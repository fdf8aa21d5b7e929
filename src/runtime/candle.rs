//! candle's quantized implementations (candle-transformers): every architecture odai loads. It
//! runs through the same `engine::Model` wrapper as odai's engine (`runtime::odai`).

use std::path::Path;

use super::batching::Batching;
use super::odai::EngineRuntime;
use crate::engine::Model;
use crate::error::Error;

/// candle's crate version, pinned exactly in Cargo.toml (a test checks the two agree).
pub const CANDLE_VERSION: &str = "0.11.1";

pub fn load(path: &Path, batching: &Batching) -> Result<EngineRuntime, Error> {
    refuse_mmap(path, batching, None)?;
    EngineRuntime::new(Model::load_candle(path)?).with_batching(batching)
}

/// Loads `path` on candle because odai's engine cannot run it (`why`, which the rep's backend
/// then carries).
pub fn load_because(path: &Path, why: String, batching: &Batching) -> Result<EngineRuntime, Error> {
    refuse_mmap(path, batching, Some(&why))?;
    let model = Model::load_candle_because(path, Some(why.clone()))?;
    EngineRuntime::fallback(model, why).with_batching(batching)
}

/// candle reads every tensor into memory: a run that asked for the file mapped (`--mmap 1`)
/// would measure something else than it asked for, so it is refused before the load.
fn refuse_mmap(path: &Path, batching: &Batching, why: Option<&str>) -> Result<(), Error> {
    if batching.mmap != Some(true) {
        return Ok(());
    }
    let fell_back = why.map_or_else(String::new, |w| {
        format!(" (odai's engine, which maps it, cannot run it: {w})")
    });
    Err(Error::Model {
        file: path.to_owned(),
        problem: format!(
            "candle reads every weight into memory and cannot map them{fell_back}: leave --mmap              unset or give 0, or run it on llama.cpp"
        ),
    })
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

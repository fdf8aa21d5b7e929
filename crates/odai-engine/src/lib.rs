//! odai's own inference engine: GGUF files read and checked (`gguf`), what each architecture
//! computes (`arch`), the forward pass (`decoder`) on kernels per ISA (`kernels`: AVX2/VNNI on
//! x86-64, NEON/dotprod on aarch64) run by a team of spinning threads (`team`), over a read-only
//! mapping of the file (`mapped`); synthetic models in real shapes (`synth`) and a seedable RNG.
//!
//! A crate of its own so that it builds and tests on a new target (aarch64 under qemu in
//! `scripts/test.sh --all`) without odai's other dependencies, and so that it is optimised in
//! dev builds while the rest of odai compiles fast. odai wraps it (`odai::engine`) with candle's
//! implementations for what it does not run, and with the tokenizer.

pub mod arch;
pub mod attention;
pub mod decoder;
pub mod error;
pub mod gguf;
pub mod kernels;
pub mod kv;
pub mod mapped;
pub mod rng;
pub mod synth;
pub mod team;

pub use error::Error;

/// Index of the largest logit (greedy sampling); ties go to the lowest index, as llama.cpp does.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

//! Benchmark matrices: the plan (`spec`), what it means for a device (`plan`), running it on a
//! farm's devices (`runner`, with `progress` on stderr) into an append-only results directory
//! (`results`).

pub mod plan;
pub mod plausible;
pub mod progress;
pub mod results;
pub mod runner;
pub mod spec;

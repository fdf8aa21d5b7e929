//! Benchmark matrices: the plan (`spec`), what it means for a device (`plan`), running it
//! (`runner`) into an append-only results directory (`results`). Farm transports come next.

pub mod plan;
pub mod results;
pub mod runner;
pub mod spec;

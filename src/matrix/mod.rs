//! Benchmark matrices: the plan (`spec`), what it means for a device (`plan`); the runner, the
//! results store and the farm arrive next.

pub mod plan;
pub mod spec;

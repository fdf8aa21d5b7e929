//! Exit codes odai returns, in one place so scripts can rely on them (documented in README.md).

/// Everything asked for was done.
pub const SUCCESS: i32 = 0;
/// odai could not do what was asked for a reason other than bad input (I/O, an internal error).
pub const FAILURE: i32 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const USAGE: i32 = 2;
/// An input named on the command line is missing or malformed: `--root`, a profile, a model file.
pub const INPUT: i32 = 3;

/// The exit code for an error that reached `main`.
pub fn code_for(err: &anyhow::Error) -> i32 {
    match err.downcast_ref::<crate::error::Error>() {
        Some(_) => INPUT,
        None => FAILURE,
    }
}

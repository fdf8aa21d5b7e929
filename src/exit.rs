//! Exit codes odai returns, in one place so scripts can rely on them (documented in README.md).

/// Everything asked for was done.
pub const SUCCESS: i32 = 0;
/// odai could not do what was asked for a reason other than bad input (I/O, an internal error).
pub const FAILURE: i32 = 1;
/// The command line was wrong (clap's own code for usage errors).
pub const USAGE: i32 = 2;
/// An input named on the command line is missing or malformed: `--root`, a profile, a model file.
pub const INPUT: i32 = 3;

/// The model does not fit the device's memory headroom (odai refused to run it).
pub const DOES_NOT_FIT: i32 = 4;

/// A release gate tripped: `odai compare` found a regression past its threshold, or `odai report
/// --fail-on` found a class below the level asked for. Apart from FAILURE so a pipeline can tell
/// "the candidate is worse" from "the check itself broke" (a missing file, a full disk).
pub const GATE: i32 = 5;

/// Stopped by Ctrl-C or SIGTERM before the work was done (128 + SIGINT, the shell convention);
/// what finished is on disk.
pub const INTERRUPTED: i32 = 130;

/// The exit code for an error that reached `main`.
pub fn code_for(err: &anyhow::Error) -> i32 {
    // The engine's errors (a model file, a synthetic preset) reach here as they are, or as
    // odai's own with the same meaning.
    if let Some(e) = err.downcast_ref::<odai_engine::Error>() {
        return match e {
            odai_engine::Error::Invalid { .. } => USAGE,
            odai_engine::Error::Model { .. } => INPUT,
        };
    }
    match err.downcast_ref::<crate::error::Error>() {
        Some(crate::error::Error::Invalid { .. }) => USAGE,
        Some(crate::error::Error::DoesNotFit { .. }) => DOES_NOT_FIT,
        Some(_) => INPUT,
        None => FAILURE,
    }
}

/// Set when a GPU driver thread was abandoned mid-call (enumeration timed out). Such a thread may
/// hold the driver's locks, and the driver's exit handlers would then wait on them forever.
pub static DRIVER_THREAD_ABANDONED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Ends the process with `code`. After a hung driver, standard streams are flushed and the
/// process leaves at once (`_exit(2)`, TerminateProcess), skipping exit handlers that would
/// deadlock.
pub fn terminate(code: i32) -> ! {
    if DRIVER_THREAD_ABANDONED.load(std::sync::atomic::Ordering::SeqCst) {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        crate::platform::exit_now(code)
    }
    std::process::exit(code)
}

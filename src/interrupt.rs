//! Ctrl-C and SIGTERM for long runs: the first one asks the run to stop cleanly (no new cell
//! starts, running workers are stopped, everything finished is already on disk); a second one
//! ends odai at once, the default action. The handlers themselves are the platform's
//! (signals on Unix, the console control handler on Windows).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Records a stop request. Async-signal-safe: an atomic store only (signal-safety(7)).
pub fn note() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Installs the handlers for Ctrl-C and SIGTERM (or the console's close events).
pub fn install() {
    crate::platform::install_interrupt_handlers();
}

/// True once the user asked the run to stop.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

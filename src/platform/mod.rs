//! What differs between operating systems, behind one small interface (just's `platform` module
//! is the model): every `#[cfg(unix)]` / `#[cfg(windows)]` choice of a system call lives in
//! `unix.rs` or `windows.rs`, and the rest of odai calls the same functions on every OS.
//!
//! Each OS file provides:
//! - process control: [`die_with_parent`] (a worker or load child must not outlive the
//!   coordinator), [`die_with_parent_self`], [`exit_now`] (leave without exit handlers);
//! - signals: [`install_interrupt_handlers`] (Ctrl-C / SIGTERM into [`crate::interrupt`]),
//!   [`signal_of`] (what killed a child, where the OS has signals);
//! - errors: [`is_text_busy`], [`is_device_unanswering`], [`is_not_a_link`];
//! - memory and time: [`peak_rss_bytes`], [`own_rss_bytes`], [`own_rss_split`],
//!   [`process_cpu_s`], [`cpu_times_s`], [`page_size`];
//! - files: [`evict_from_page_cache`] (`--cold`);
//! - identity: [`kernel_machine`] (the architecture as the kernel names it).
//!
//! A figure an OS cannot give is an `Err(reason)` or `Unavailable(reason)`, never a zero.

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub use windows::*;

// Signal numbers as POSIX.1 and every Unix odai runs on number them (signal(7); the same on
// Linux, Android and macOS). On Windows no child dies of a signal, so `signal_of` is `None` and
// these are only compared against.
pub const SIGINT: i32 = 2;
pub const SIGABRT: i32 = 6;
pub const SIGKILL: i32 = 9;
pub const SIGTERM: i32 = 15;

/// The OS family odai was built for, in the words the platform table of README.md uses.
pub fn family() -> &'static str {
    if cfg!(target_os = "android") {
        "android"
    } else if cfg!(target_os = "linux") {
        "linux"
    } else if cfg!(target_os = "macos") {
        "macos"
    } else if cfg!(windows) {
        "windows"
    } else {
        std::env::consts::OS
    }
}

/// The peak resident set from an OS's answer: an error for a failed call (a zeroed struct would
/// read as 0 bytes) and for a zero maximum, which a process that loaded a model cannot have.
/// `unit` is the multiplier from the OS's unit to bytes; `call` names the call in the error.
pub fn peak_from(
    call: &str,
    result: std::io::Result<i64>,
    unit: u64,
    unit_name: &str,
) -> Result<u64, String> {
    match result {
        Err(e) => Err(format!("peak memory unreadable: {call} failed: {e}")),
        Ok(v) if v <= 0 => Err(format!(
            "peak memory unreadable: {call} reported {v} {unit_name}"
        )),
        Ok(v) => Ok(v as u64 * unit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_failed_getrusage_is_not_zero_bytes() {
        // Found in review: a failed getrusage left the zeroed struct, reported as 0 bytes.
        let e = peak_from(
            "getrusage",
            Err(std::io::Error::from(std::io::ErrorKind::InvalidInput)),
            1024,
            "KiB",
        )
        .unwrap_err();
        assert!(
            e.starts_with("peak memory unreadable: getrusage failed: "),
            "{e}"
        );
        assert_eq!(
            peak_from("getrusage", Ok(0), 1024, "KiB"),
            Err("peak memory unreadable: getrusage reported 0 KiB".into())
        );
        assert_eq!(
            peak_from("getrusage", Ok(2048), 1024, "KiB"),
            Ok(2048 * 1024)
        );
        assert!(peak_rss_bytes().unwrap() > 0);
    }

    #[test]
    fn this_process_has_memory_time_and_pages() {
        // Real readings of this test process: each is a value, never a made-up zero.
        assert!(own_rss_bytes().unwrap() > 0);
        assert!(page_size() >= 4096 && page_size().is_power_of_two());
        let t0 = process_cpu_s().unwrap();
        let mut x = 0u64;
        for i in 0..100_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(process_cpu_s().unwrap() > t0, "{x}");
        assert!(kernel_machine().value().is_some_and(|m| !m.is_empty()));
    }

    #[test]
    fn eviction_names_the_file_it_could_not_open() {
        let e = evict_from_page_cache(std::path::Path::new("/nonexistent/model.gguf")).unwrap_err();
        assert!(e.contains("/nonexistent/model.gguf"), "{e}");
    }
}

//! Linux, Android and macOS (POSIX calls through libc; what only Linux has is marked).

use std::path::Path;
use std::process::{Command, ExitStatus};

use crate::sysroot::Reading;

/// Makes the child started by `cmd` die (SIGKILL) when the thread that started it goes: a cell
/// worker stopped by its coordinator leaves no benchmark running. Linux and Android have
/// PR_SET_PDEATHSIG (prctl(2)); macOS has no such call, and there the worker's own watch on its
/// stdin (closed when the coordinator goes) ends it instead.
pub fn die_with_parent(cmd: &mut Command) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = cmd;
}

/// The same for this process, already running (`odai contend`, the background load).
pub fn die_with_parent_self() {
    // SAFETY: prctl(PR_SET_PDEATHSIG) only sets this process's parent-death signal.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }
}

/// Ends the process at once with `code`, without exit handlers or destructors (`_exit(2)`):
/// for a thread that must not wait on locks another thread holds.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit ends the process; nothing runs after it.
    unsafe { libc::_exit(code) }
}

extern "C" fn on_signal(sig: libc::c_int) {
    // Only async-signal-safe work here (signal-safety(7)): an atomic store and signal(2).
    crate::interrupt::note();
    // SAFETY: restoring the default disposition is async-signal-safe: a second one ends odai.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// SIGINT (Ctrl-C) and SIGTERM note a stop request; the second one has the default action.
pub fn install_interrupt_handlers() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic and calls signal(2).
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The signal that ended a child, if one did.
pub fn signal_of(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// An exit status as a child that exited with `code` leaves it (wait(2)'s encoding), for tests.
#[cfg(test)]
pub fn exited_with(code: i32) -> ExitStatus {
    use std::os::unix::process::ExitStatusExt;
    ExitStatus::from_raw(code << 8)
}

/// ETXTBSY: an executable just written can be briefly "busy" while another thread's fork still
/// holds the writer's descriptor.
pub fn is_text_busy(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ETXTBSY)
}

/// ENODATA / EINVAL / EIO / ENXIO: how sysfs attributes whose sensor is off or absent answer.
pub fn is_device_unanswering(e: &std::io::Error) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let nodata = e.raw_os_error() == Some(libc::ENODATA);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let nodata = false;
    nodata
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::EIO | libc::ENXIO)
        )
}

/// readlink(2) on something that is not a symlink: EINVAL.
pub fn is_not_a_link(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// Peak resident set of this process in bytes. Linux and Android: /proc/self/status `VmHWM`, the
/// high-water mark of this process's own address space. Not getrusage's ru_maxrss there: exec
/// folds the *previous* address space's high-water mark into it (fs/exec.c,
/// setmax_mm_hiwater_rss), and a worker started with posix_spawn (CLONE_VM | CLONE_VFORK) ran in
/// the coordinator's address space until its exec, so ru_maxrss reported the coordinator's peak
/// when that was larger than the model's (peak_rss above RssAnon + RssFile, with no reason).
/// Elsewhere getrusage's ru_maxrss (KiB on Linux, bytes on macOS).
pub fn peak_rss_bytes() -> Result<u64, String> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Some(hwm) = own_status_kib("VmHWM:") {
        return Ok(hwm);
    }
    rusage_maxrss_bytes()
}

/// A `kB` field of /proc/self/status, in bytes (always the live /proc: it is this process).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn own_status_kib(key: &str) -> Option<u64> {
    let status = crate::sysroot::SysRoot::live()
        .read_str("/proc/self/status")
        .into_value()?;
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.trim().strip_suffix("kB")?;
        v.trim().parse::<u64>().ok().map(|k| k * 1024)
    })
}

/// getrusage(2)'s ru_maxrss, which Linux and Android give in KiB and macOS in bytes.
fn rusage_maxrss_bytes() -> Result<u64, String> {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let result = if rc == 0 {
        Ok(ru.ru_maxrss as i64)
    } else {
        Err(std::io::Error::last_os_error())
    };
    if cfg!(target_os = "macos") {
        super::peak_from("getrusage", result, 1, "bytes")
    } else {
        super::peak_from("getrusage", result, 1024, "KiB")
    }
}

/// This process's resident set now: proc(5) `statm` (resident pages) on Linux and Android, always
/// the live /proc (it is the worker's own memory, not the device's); the task's resident size
/// elsewhere (through sysinfo).
pub fn own_rss_bytes() -> Option<u64> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let statm = crate::sysroot::SysRoot::live()
            .read_str("/proc/self/statm")
            .into_value()?;
        let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
        Some(pages * page_size() as u64)
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    crate::probe::native::own_rss_bytes()
}

/// CPU time this process has used (user + system, all threads): CLOCK_PROCESS_CPUTIME_ID
/// (clock_gettime(2); macOS has it since 10.12).
pub fn process_cpu_s() -> Result<f64, String> {
    // SAFETY: clock_gettime fills the zeroed timespec.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Err(format!(
            "CPU time unreadable: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9)
}

/// CPU time this process has used in user and in kernel mode, all threads: getrusage(2)'s
/// ru_utime and ru_stime.
pub fn cpu_times_s() -> Result<(f64, f64), String> {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Err(format!(
            "CPU time unreadable: {}",
            std::io::Error::last_os_error()
        ));
    }
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Ok((s(ru.ru_utime), s(ru.ru_stime)))
}

/// This process's resident set split into anonymous and file-backed bytes: proc(5)
/// /proc/self/status `RssAnon` and `RssFile` (kB; Linux 4.5+), always the live /proc (it is the
/// worker's own memory). None where the kernel does not split it, and on macOS.
pub fn own_rss_split() -> Option<(u64, u64)> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        Some((own_status_kib("RssAnon:")?, own_status_kib("RssFile:")?))
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    None
}

/// The memory page size (sysconf(3) _SC_PAGESIZE: 4 KiB on x86, 4/16/64 KiB on Arm).
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

/// Asks the kernel to drop the file's pages from the page cache (posix_fadvise(2)
/// POSIX_FADV_DONTNEED), so the next load reads from storage. Advisory: pages in use stay.
/// macOS has no call that evicts a file's cached pages (F_NOCACHE only stops new caching, and
/// purge(8) needs root and empties everything), so `--cold` says so there instead of pretending.
pub fn evict_from_page_cache(path: &Path) -> Result<(), String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a valid descriptor; offset 0 and length 0 mean the whole file.
        let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!(
                "posix_fadvise failed on {}: error {rc}",
                path.display()
            ))
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        drop(f);
        Err(format!(
            "a cold start needs {}'s pages evicted from the page cache, which {} has no call for; \
             drop --cold (or reboot between runs)",
            path.display(),
            super::family()
        ))
    }
}

/// The machine as uname(2) names it (`x86_64`, `aarch64`, `arm64`, `armv7l`).
pub fn kernel_machine() -> Reading<String> {
    // SAFETY: uname fills a zeroed utsname whose fields are NUL-terminated C strings.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Reading::unavailable("uname(2) failed");
    }
    // CStr reads the field whatever c_char is (i8 on x86, u8 on Arm).
    // SAFETY: `machine` is NUL-terminated (uname succeeded), inside the struct.
    let machine = unsafe { std::ffi::CStr::from_ptr(u.machine.as_ptr()) };
    Reading::Value(machine.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes_are_the_kernels() {
        assert!(is_text_busy(&std::io::Error::from_raw_os_error(
            libc::ETXTBSY
        )));
        assert!(is_not_a_link(&std::io::Error::from_raw_os_error(
            libc::EINVAL
        )));
        assert!(is_device_unanswering(&std::io::Error::from_raw_os_error(
            libc::EIO
        )));
        assert!(!is_device_unanswering(&std::io::Error::from_raw_os_error(
            libc::ENOENT
        )));
        assert_eq!(exited_with(3).code(), Some(3));
        assert_eq!(signal_of(&exited_with(3)), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_peak_is_at_least_what_is_resident_now() {
        // statm's resident pages now and getrusage's high-water mark, two kernel interfaces:
        // the peak cannot be below the present (a tenth spared for the kernel's per-CPU counters).
        let now = own_rss_bytes().unwrap();
        assert!(peak_rss_bytes().unwrap() >= now - now / 10, "{now}");
    }
}

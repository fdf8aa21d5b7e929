//! Windows (Win32 through windows-sys).

use std::path::Path;
use std::process::{Command, ExitStatus};

use windows_sys::Win32::Foundation::{
    ERROR_NOT_A_REPARSE_POINT, ERROR_SHARING_VIOLATION, FILETIME, TRUE,
};
use windows_sys::Win32::System::Console::{
    CTRL_BREAK_EVENT, CTRL_C_EVENT, CTRL_CLOSE_EVENT, SetConsoleCtrlHandler,
};
use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::SystemInformation::{
    GetNativeSystemInfo, GetSystemInfo, PROCESSOR_ARCHITECTURE_AMD64, PROCESSOR_ARCHITECTURE_ARM,
    PROCESSOR_ARCHITECTURE_ARM64, PROCESSOR_ARCHITECTURE_INTEL, SYSTEM_INFO,
};
use windows_sys::Win32::System::Threading::{GetCurrentProcess, GetProcessTimes, TerminateProcess};
use windows_sys::core::BOOL;

use crate::sysroot::Reading;

/// Windows has no parent-death signal; a job object would need the coordinator to own the
/// child's handle for its whole life. The worker watches its stdin, which closes when the
/// coordinator goes, and exits then (cmd/worker.rs): that covers Windows too.
pub fn die_with_parent(cmd: &mut Command) {
    let _ = cmd;
}

/// As [`die_with_parent`]: `odai contend` is killed by the guard that started it.
pub fn die_with_parent_self() {}

/// Ends the process at once with `code`: TerminateProcess on itself runs no DLL detach or exit
/// handlers (ExitProcess would, and they may wait on a lock a hung driver thread holds).
pub fn exit_now(code: i32) -> ! {
    // SAFETY: the pseudo-handle of this process; TerminateProcess does not return on success.
    unsafe {
        TerminateProcess(GetCurrentProcess(), code as u32);
    }
    // Only if TerminateProcess failed, which it does not for the current process.
    std::process::abort()
}

unsafe extern "system" fn on_console_event(kind: u32) -> BOOL {
    match kind {
        CTRL_C_EVENT | CTRL_BREAK_EVENT | CTRL_CLOSE_EVENT => {
            if crate::interrupt::requested() {
                // The second one: not handled, so the default handler ends odai at once.
                0
            } else {
                crate::interrupt::note();
                TRUE
            }
        }
        _ => 0,
    }
}

/// Ctrl-C, Ctrl-Break and closing the console note a stop request (SetConsoleCtrlHandler); the
/// second one is left to the default handler, which ends the process.
pub fn install_interrupt_handlers() {
    // SAFETY: the handler only reads and writes an atomic; it runs on a thread of its own.
    unsafe {
        SetConsoleCtrlHandler(Some(on_console_event), TRUE);
    }
}

/// Windows children do not die of signals; an exit code says how they ended. One code is a
/// signal in all but name: a console process ended by Ctrl-C or Ctrl-Break exits with
/// STATUS_CONTROL_C_EXIT, which is read as SIGINT so a run tells "interrupted" from "failed".
pub fn signal_of(status: &ExitStatus) -> Option<i32> {
    const STATUS_CONTROL_C_EXIT: u32 = 0xC000_013A;
    (status.code() == Some(STATUS_CONTROL_C_EXIT as i32)).then_some(super::SIGINT)
}

/// An exit status as a child that exited with `code` leaves it, for tests.
#[cfg(test)]
pub fn exited_with(code: i32) -> ExitStatus {
    use std::os::windows::process::ExitStatusExt;
    ExitStatus::from_raw(code as u32)
}

/// A file still open for writing cannot be executed: ERROR_SHARING_VIOLATION.
pub fn is_text_busy(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(ERROR_SHARING_VIOLATION as i32)
}

/// There is no sysfs on Windows: only captured Linux trees are read through `SysRoot`, and their
/// files answer like files.
pub fn is_device_unanswering(e: &std::io::Error) -> bool {
    let _ = e;
    false
}

/// read_link on a file that is no reparse point.
pub fn is_not_a_link(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(ERROR_NOT_A_REPARSE_POINT as i32)
}

fn memory_counters() -> std::io::Result<PROCESS_MEMORY_COUNTERS> {
    // SAFETY: a zeroed counters struct whose size is passed; the pseudo-handle needs no closing.
    let mut c: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
    let ok = unsafe {
        K32GetProcessMemoryInfo(
            GetCurrentProcess(),
            &mut c,
            std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32,
        )
    };
    if ok == 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(c)
    }
}

/// Peak working set of this process in bytes (GetProcessMemoryInfo's PeakWorkingSetSize: the
/// resident high-water mark, as ru_maxrss is on Unix).
pub fn peak_rss_bytes() -> Result<u64, String> {
    let result = memory_counters().map(|c| c.PeakWorkingSetSize as i64);
    super::peak_from("GetProcessMemoryInfo", result, 1, "bytes")
}

/// This process's working set now.
pub fn own_rss_bytes() -> Option<u64> {
    memory_counters()
        .ok()
        .map(|c| c.WorkingSetSize as u64)
        .filter(|&b| b > 0)
}

fn filetime_s(t: &FILETIME) -> f64 {
    // FILETIME counts 100 ns intervals.
    ((u64::from(t.dwHighDateTime) << 32) | u64::from(t.dwLowDateTime)) as f64 * 1e-7
}

/// CPU time this process has used, kernel + user, all threads (GetProcessTimes).
pub fn process_cpu_s() -> Result<f64, String> {
    cpu_times_s().map(|(user, kernel)| user + kernel)
}

/// CPU time this process has used in user and in kernel mode, all threads (GetProcessTimes).
pub fn cpu_times_s() -> Result<(f64, f64), String> {
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: four FILETIMEs to fill; the pseudo-handle needs no closing.
    let ok = unsafe {
        GetProcessTimes(
            GetCurrentProcess(),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    if ok == 0 {
        return Err(format!(
            "CPU time unreadable: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok((filetime_s(&user), filetime_s(&kernel)))
}

/// Windows does not split the working set into anonymous and file-backed parts cheaply.
pub fn own_rss_split() -> Option<(u64, u64)> {
    None
}

/// The memory page size (GetSystemInfo's dwPageSize).
pub fn page_size() -> usize {
    // SAFETY: GetSystemInfo fills the struct.
    let mut info: SYSTEM_INFO = unsafe { std::mem::zeroed() };
    unsafe { GetSystemInfo(&mut info) };
    match info.dwPageSize as usize {
        0 => 4096,
        p => p,
    }
}

/// Windows has no documented call that drops one file's pages from the standby list (the
/// memory-list purge of RAMMap needs SeProfileSingleProcessPrivilege and empties all of it), so
/// `--cold` says so instead of measuring a warm start as cold.
pub fn evict_from_page_cache(path: &Path) -> Result<(), String> {
    std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Err(format!(
        "a cold start needs {}'s pages evicted from the page cache, which Windows has no call \
         for; drop --cold (or reboot between runs)",
        path.display()
    ))
}

/// The machine's architecture in uname's words (GetNativeSystemInfo: the hardware's, not this
/// process's, so an x86-64 odai under emulation on Arm says `aarch64`).
pub fn kernel_machine() -> Reading<String> {
    // SAFETY: GetNativeSystemInfo fills the struct; the union's architecture field is the one
    // the documentation says it sets.
    let mut info: SYSTEM_INFO = unsafe { std::mem::zeroed() };
    let arch = unsafe {
        GetNativeSystemInfo(&mut info);
        info.Anonymous.Anonymous.wProcessorArchitecture
    };
    match arch {
        PROCESSOR_ARCHITECTURE_AMD64 => Reading::Value("x86_64".into()),
        PROCESSOR_ARCHITECTURE_ARM64 => Reading::Value("aarch64".into()),
        PROCESSOR_ARCHITECTURE_INTEL => Reading::Value("i686".into()),
        PROCESSOR_ARCHITECTURE_ARM => Reading::Value("armv7l".into()),
        other => Reading::unavailable(format!(
            "unparsable: GetNativeSystemInfo names processor architecture {other}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn win32_error_classes() {
        assert!(is_text_busy(&std::io::Error::from_raw_os_error(32)));
        assert!(is_not_a_link(&std::io::Error::from_raw_os_error(4390)));
        assert_eq!(exited_with(3).code(), Some(3));
        assert_eq!(signal_of(&exited_with(3)), None);
        assert_eq!(
            signal_of(&exited_with(0xC000_013Au32 as i32)),
            Some(super::super::SIGINT)
        );
        let t = FILETIME {
            dwLowDateTime: 10_000_000,
            dwHighDateTime: 0,
        };
        assert_eq!(filetime_s(&t), 1.0);
    }
}

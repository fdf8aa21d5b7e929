//! A model file mapped read-only: the GGUF header is parsed straight from it (no read or seek
//! system call per field: candle's parser over a buffered file spent a tenth of load in lseek),
//! and odai's engine reads its weights from it without copying.

use std::fs::File;
use std::path::Path;

/// The file, mapped read-only. The engine populates its pages at load as llama.cpp does
/// (MAP_POPULATE), so the first forward pass does not pay the page faults.
pub struct Mapped {
    pub ptr: *const u8,
    pub len: usize,
    /// Windows: the view, unmapped on drop (Unix unmaps `ptr` itself).
    #[cfg(windows)]
    _view: Option<memmap2::Mmap>,
}

// SAFETY: the mapping is read-only and lives as long as the model; sharing it is sharing
// immutable bytes.
unsafe impl Send for Mapped {}
unsafe impl Sync for Mapped {}

impl Mapped {
    /// Maps `path`; `populate` reads every page in now (the engine), rather than on first touch
    /// (header parsing, which reads the first few megabytes of files up to many gigabytes).
    pub fn open(path: &Path, populate: bool) -> std::io::Result<Mapped> {
        let file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        if len == 0 {
            // mmap refuses empty mappings; an empty file is simply no bytes.
            return Ok(Mapped {
                ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
                len: 0,
                #[cfg(windows)]
                _view: None,
            });
        }
        Self::map(file, len, populate)
    }

    /// Windows: a read-only view through memmap2 (CreateFileMapping + MapViewOfFile); there is
    /// no MAP_POPULATE, so pages fault in on first touch.
    #[cfg(windows)]
    fn map(file: File, len: usize, populate: bool) -> std::io::Result<Mapped> {
        let _ = populate;
        // SAFETY: a read-only view; model files are not modified while odai runs (as llama.cpp
        // assumes of the files it maps).
        let view = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Mapped {
            ptr: view.as_ptr(),
            len,
            _view: Some(view),
        })
    }

    #[cfg(unix)]
    fn map(file: File, len: usize, populate: bool) -> std::io::Result<Mapped> {
        use std::os::fd::AsRawFd;
        #[cfg(target_os = "linux")]
        let flags = if populate {
            libc::MAP_PRIVATE | libc::MAP_POPULATE
        } else {
            libc::MAP_PRIVATE
        };
        #[cfg(not(target_os = "linux"))]
        let flags = {
            let _ = populate;
            libc::MAP_PRIVATE
        };
        // SAFETY: a fresh read-only private mapping of an open file; the fd may close after.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                flags,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapped {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Mapped {
    /// The file's bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: len readable bytes at ptr for the mapping's life (or none when empty).
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// Tells the kernel the whole pages inside `addr..addr + len` will not be read again: a
    /// private file mapping drops them from this process's resident set.
    pub fn release(&self, addr: usize, len: usize) {
        debug_assert!(addr >= self.ptr as usize && addr + len <= self.ptr as usize + self.len);
        // SAFETY: inside this mapping, which nothing reads again there.
        #[cfg(unix)]
        unsafe {
            advise_inside(addr, len, page_size(), libc::MADV_DONTNEED)
        };
        // Windows: a hint with no counterpart for a file view (the working set trims itself).
        #[cfg(windows)]
        let _ = (addr, len);
    }
}

/// The kernel's page size (sysconf(3) _SC_PAGESIZE; 4 KiB if it will not say).
#[cfg(unix)]
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .ok()
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

/// madvise(2) on the whole `align`-sized pages inside `addr..addr + len` (none if it holds no
/// whole page).
///
/// # Safety
/// The range must belong to the caller, and `advice` must be one its contents survive (or that
/// it no longer needs them).
#[cfg(unix)]
pub unsafe fn advise_inside(addr: usize, len: usize, align: usize, advice: libc::c_int) {
    let start = addr.next_multiple_of(align);
    let end = (addr + len) / align * align;
    if end > start {
        // SAFETY: forwarded from the caller.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, advice) };
    }
}

#[cfg(unix)]
impl Drop for Mapped {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // SAFETY: unmapping what open mapped; nothing borrows it past the model's life.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}

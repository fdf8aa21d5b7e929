//! A model file mapped read-only: the GGUF header is parsed straight from it (no read or seek
//! system call per field: candle's parser over a buffered file spent a tenth of load in lseek),
//! and odai's engine reads its weights from it without copying.

use std::fs::File;
use std::path::Path;

/// The file, mapped read-only (or read into anonymous memory: [`Mapped::read`]). The engine populates its pages at load as llama.cpp does
/// (MAP_POPULATE), so the first forward pass does not pay the page faults.
pub struct Mapped {
    pub ptr: *const u8,
    pub len: usize,
    /// Windows: the view, unmapped on drop (Unix unmaps `ptr` itself).
    #[cfg(windows)]
    _view: Option<memmap2::Mmap>,
    /// Windows: anonymous memory being read into (`read`), until it is sealed into `_view`.
    #[cfg(windows)]
    _anon: Option<memmap2::MmapMut>,
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
                #[cfg(windows)]
                _anon: None,
            });
        }
        Self::map(file, len, populate)
    }

    /// Reads `path` into anonymous memory instead of mapping it (llama.cpp's `--no-mmap`): the
    /// weights become the process's own pages — read in full before the first pass, not shared
    /// with the page cache or other processes, and what a phone's low-memory killer counts as
    /// the process's — rather than file pages the kernel may drop and read again.
    pub fn read(path: &Path) -> std::io::Result<Mapped> {
        use std::io::Read;
        let mut file = File::open(path)?;
        let len = usize::try_from(file.metadata()?.len()).map_err(std::io::Error::other)?;
        let mut mem = Self::anonymous(len)?;
        if len > 0 {
            // SAFETY: `anonymous` gave `len` writable bytes that nothing else references yet.
            let buf = unsafe { std::slice::from_raw_parts_mut(mem.ptr.cast_mut(), len) };
            file.read_exact(buf)?;
        }
        mem.seal()?;
        Ok(mem)
    }

    /// `len` zeroed, writable bytes of anonymous memory, unmapped (or freed) on drop.
    #[cfg(unix)]
    fn anonymous(len: usize) -> std::io::Result<Mapped> {
        if len == 0 {
            return Ok(Mapped {
                ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
                len: 0,
            });
        }
        // SAFETY: a fresh private anonymous mapping; no file, no aliasing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
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

    /// Makes what `anonymous` gave read-only, as a mapped file is: a stray write faults.
    #[cfg(unix)]
    fn seal(&mut self) -> std::io::Result<()> {
        if self.len == 0 {
            return Ok(());
        }
        // SAFETY: the whole of this process's own mapping.
        if unsafe { libc::mprotect(self.ptr as *mut libc::c_void, self.len, libc::PROT_READ) } != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    #[cfg(windows)]
    fn anonymous(len: usize) -> std::io::Result<Mapped> {
        let mut view = memmap2::MmapMut::map_anon(len.max(1))?;
        Ok(Mapped {
            ptr: view.as_mut_ptr(),
            len,
            _view: None,
            _anon: Some(view),
        })
    }

    #[cfg(windows)]
    fn seal(&mut self) -> std::io::Result<()> {
        if let Some(view) = self._anon.take() {
            let view = view.make_read_only()?;
            self.ptr = view.as_ptr();
            self._view = Some(view);
        }
        Ok(())
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
            _anon: None,
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

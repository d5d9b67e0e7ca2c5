//! Process-wide settings that are only sound before any thread exists.

use std::io;
use std::path::Path;

/// Why a process-wide setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(
        "{what} must happen before any thread is started, but this process has {threads} \
         threads; call it first in main"
    )]
    NotSingleThreaded { what: &'static str, threads: usize },
    #[error("cannot count this process's threads: {0}")]
    Proc(io::Error),
    #[error("malloc refused a setting: {0}")]
    Malloc(&'static str),
}

/// Number of threads of this process (from /proc/self/task).
fn thread_count() -> Result<usize, ProcessError> {
    Ok(std::fs::read_dir("/proc/self/task")
        .map_err(ProcessError::Proc)?
        .count())
}

/// Points `TMPDIR` at `dir`, so that ipc-channel's one-shot servers (which
/// bind their sockets in the temporary directory) live in the runtime
/// directory that every Vigil service shares, even when systemd gives each
/// unit a private /tmp.
pub fn set_temp_dir(dir: &Path) -> Result<(), ProcessError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(ProcessError::NotSingleThreaded {
            what: "setting TMPDIR",
            threads,
        });
    }
    // SAFETY: set_var is unsound only when another thread reads or writes
    // the environment concurrently; we just checked that this process has
    // exactly one thread, the caller's.
    unsafe { std::env::set_var("TMPDIR", dir) };
    Ok(())
}

/// The size above which glibc's malloc hands memory straight to `mmap`,
/// fixed (128 KiB, glibc's own starting value).
const MMAP_THRESHOLD: libc::c_int = 128 * 1024;

/// Makes every large allocation go back to the kernel when it is freed.
///
/// glibc raises its mmap threshold each time a large mmapped block is freed
/// (up to 32 MiB), after which blocks of that size come from the heap and
/// stay in the process once freed. A PIN lookup (argon2) takes 19 MiB: under
/// a flood of PINs, the hub kept some 370 MiB it no longer used. Setting the
/// threshold fixes it and turns the adjustment off.
pub fn return_large_allocations() -> Result<(), ProcessError> {
    let threads = thread_count()?;
    if threads != 1 {
        return Err(ProcessError::NotSingleThreaded {
            what: "setting malloc's mmap threshold",
            threads,
        });
    }
    // SAFETY: mallopt only changes malloc's tunables; glibc documents it as
    // MT-unsafe, so it is called while this process has one thread (checked
    // just above), before any other can allocate concurrently.
    let set = unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) };
    // mallopt returns 1 on success and 0 on error (an unknown option or a
    // value out of range), without errno.
    if set != 1 {
        return Err(ProcessError::Malloc("mallopt(M_MMAP_THRESHOLD, 128 KiB)"));
    }
    Ok(())
}

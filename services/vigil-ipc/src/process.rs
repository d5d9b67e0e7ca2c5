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

//! Files that hold secrets (the CA's key, the client registry, the alert
//! journal with its delivery tokens), replaced whole and durably.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file of the hub's that cannot be read or written: what was being
/// done to which file, and why it failed.
#[derive(Debug, thiserror::Error)]
#[error("cannot {what} {path}: {source}")]
pub struct FileError {
    pub what: &'static str,
    pub path: PathBuf,
    pub source: std::io::Error,
}

impl FileError {
    /// The error of doing `what` to `path`, for `map_err`.
    pub fn on(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_owned();
        move |source| FileError { what, path, source }
    }
}

/// Replaces `path` with `contents`: written to `tmp` (made anew, mode
/// 0600: a file left at `tmp` by a crash, whatever its mode or owner, is
/// removed first, never reused), synced, renamed over `path`, and the
/// directory synced, so a crash leaves the old file or the new one, never
/// half of either, and no other user can read it at any point. A failed
/// write removes `tmp` (a full disk keeps no partial copy).
pub(crate) fn replace_private(path: &Path, tmp: &Path, contents: &[u8]) -> std::io::Result<()> {
    match std::fs::remove_file(tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(tmp)
        .and_then(|mut file| {
            file.write_all(contents)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_left_over_temporary_file_is_never_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let (path, tmp) = (dir.path().join("ca.key"), dir.path().join("ca.tmp"));
        // A crash (or another writer) left the temporary file, readable by
        // all and longer than what comes.
        std::fs::write(&tmp, "left over, and longer than the key").expect("write");
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        replace_private(&path, &tmp, b"key").expect("replace");
        assert_eq!(std::fs::read(&path).expect("read"), b"key");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!tmp.exists());
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary_one() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clients.json");
        std::fs::write(&path, "old").expect("write");
        // The temporary file cannot be made: its directory is missing.
        let tmp = dir.path().join("missing").join("clients.tmp");
        assert!(replace_private(&path, &tmp, b"new").is_err());
        assert_eq!(std::fs::read(&path).expect("read"), b"old");
    }
}

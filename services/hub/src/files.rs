//! Files that hold secrets (the CA's key, the client registry, the alert
//! journal with its delivery tokens), replaced whole and durably.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Replaces `path` with `contents`: written to `tmp` (mode 0600, made
/// anew), synced, renamed over `path`, and the directory synced, so a
/// crash leaves the old file or the new one, never half of either, and no
/// other user can read it at any point.
pub(crate) fn replace_private(path: &Path, tmp: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

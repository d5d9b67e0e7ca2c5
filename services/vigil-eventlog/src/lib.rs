//! The event log: an append-only sequence of framed, checksummed records
//! in fixed-size, memory-mapped segment files. One writer (the hub); any
//! number of readers, in any process, that map the segments read-only and
//! follow the tail.
//!
//! Owns: the on-disk format (documented byte by byte in
//! `docs/event-log.md`), appending, syncing, recovery of a torn tail, and
//! reading.
//!
//! Must never: touch a record before the first invalid one when it
//! recovers, invent a record (every record is checked by length, CRC32C and
//! sequence number), or interpret payloads (they are the caller's bytes).
//!
//! This is the second and last crate with `unsafe` (after `vigil-ipc`):
//! mapping files. Every block carries its `// SAFETY:` argument.
//!
//! Architecture invariant: a record becomes visible to readers only when
//! its length word is stored, with release ordering, after every other byte
//! of it; readers load the length with acquire ordering and verify the CRC,
//! so a reader never returns a half-written record.

mod format;
mod reader;
mod writer;

pub use format::{FORMAT_VERSION, HEADER_LEN, MAGIC, RECORD_HEADER_LEN, Record};
pub use reader::LogReader;
pub use writer::{Cut, LogWriter, Options, Recovery, Retention};

use std::path::PathBuf;

/// The record kinds Vigil writes (`docs/event-log.md`): the hub writes them,
/// reportd and the hub's replay read them. The log itself gives kinds no
/// meaning.
pub mod kinds {
    /// Holds only a sequence number (no payload): keeps the log's numbers
    /// equal to the event stream's.
    pub const PLACEHOLDER: u16 = 0;
    /// A `vigil.v1.Event`, prost-encoded.
    pub const EVENT: u16 = 1;
    /// A silent event (a duress disarm), only in `events-private/`.
    pub const HIDDEN: u16 = 2;
}

/// What can go wrong with the log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a Vigil event-log segment ({problem}); move it out of the log directory"
    )]
    BadSegment { path: PathBuf, problem: String },
    #[error(
        "{path} is format version {found}, this program writes version {expected}; run the \
         release that wrote it, or move the log away"
    )]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    #[error("a record of {len} bytes does not fit a segment of {segment} bytes")]
    TooLarge { len: usize, segment: u64 },
    #[error("sequence {seq} is no longer in the log (the oldest kept is {oldest})")]
    Gone { seq: u64, oldest: u64 },
    #[error("another process writes the event log in {path}; only one writer (the hub) may")]
    Locked { path: PathBuf },
}

impl LogError {
    fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.to_owned();
        move |source| LogError::Io { what, path, source }
    }
}

/// The segment files of `dir`, oldest first: (first sequence, path).
fn segments(dir: &std::path::Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    let mut found = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(LogError::io("read the log directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("read the log directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = name
            .strip_suffix(format::SEGMENT_SUFFIX)
            .and_then(|n| n.parse::<u64>().ok())
        {
            found.push((first, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

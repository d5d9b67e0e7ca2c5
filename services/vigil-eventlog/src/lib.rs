//! The event log: an append-only sequence of framed, checksummed records
//! in fixed-size, memory-mapped segment files. One writer (the hub); any
//! number of readers, in any process, that map the segments read-only and
//! follow the tail.
//!
//! Owns: the on-disk format (documented byte by byte in
//! `docs/event-log.md`), appending, syncing, recovery of a torn tail,
//! setting aside a segment whose header is damaged, and reading, with
//! damage met as an explicit [`Gap`].
//!
//! Must never: modify or remove a valid record when it recovers (only the
//! bytes after the last valid record of the newest segment, a torn tail,
//! are cut), skip a record without saying so (a reader returns a [`Gap`]
//! naming the numbers it cannot give), invent a record (every record is
//! checked by length, CRC32C and sequence number), or interpret payloads
//! (they are the caller's bytes).
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
pub use reader::{Entry, LogReader, scan};
pub use writer::{Cut, LogWriter, Options, Recovery, Retention, SetAside};

use std::path::{Path, PathBuf};

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

/// The event kind Vigil's readers give a [`Gap`] when they show it among
/// events (the hub's replay for WatchEvents): one item, numbered with the
/// gap's last number, whose message is the gap's description.
pub const GAP_EVENT_KIND: &str = "log_gap";

/// Sequence numbers `first..=last` that a reader cannot give as records,
/// and why. A reader returns one where it meets them, then goes on with the
/// record after them: damage is never a silent skip, and never the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gap {
    pub first: u64,
    pub last: u64,
    /// The segment where the reader met the gap.
    pub segment: PathBuf,
    pub cause: GapCause,
}

/// Why a [`Gap`] has no records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GapCause {
    /// `bytes` bytes from `offset` of the segment are not valid records
    /// (damage on the disk, or a write torn by a power cut), and the valid
    /// record after them is numbered after the gap.
    Damaged {
        offset: usize,
        bytes: usize,
        reason: String,
    },
    /// The writer moved its numbering on without writing these numbers:
    /// events it could not write (a full disk), a torn tail its recovery cut
    /// after a crash, or a log that was behind the alarm's numbering.
    Skipped,
    /// The segment's header is damaged, so none of its records can be
    /// trusted.
    Unreadable { reason: String },
    /// No segment holds these numbers: the one that did was set aside (its
    /// header was damaged; `set_aside` names where it went), the writer
    /// could not start a segment for them (a full disk), or a segment was
    /// removed by hand.
    Missing { set_aside: Option<PathBuf> },
}

impl Gap {
    /// How many numbers the gap holds.
    pub fn count(&self) -> u64 {
        self.last - self.first + 1
    }

    /// "record 7" or "records 7 to 9".
    pub fn range(&self) -> String {
        if self.first == self.last {
            format!("record {}", self.first)
        } else {
            format!("records {} to {}", self.first, self.last)
        }
    }
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let range = self.range();
        let (are, were) = if self.first == self.last {
            ("is", "was")
        } else {
            ("are", "were")
        };
        let segment = self.segment.display();
        match &self.cause {
            GapCause::Damaged {
                offset,
                bytes,
                reason,
            } => write!(
                f,
                "{range} of the event log {are} lost: {bytes} damaged bytes at offset {offset} \
                 of {segment} ({reason}); the records after them are read"
            ),
            GapCause::Skipped => write!(
                f,
                "{range} of the event log {were} never written (not written on a full disk, \
                 cut as a torn write after a crash, or lost with an older log); the log \
                 goes on in {segment}"
            ),
            GapCause::Unreadable { reason } => write!(
                f,
                "{range} of the event log cannot be read: the header of {segment} is damaged \
                 ({reason})"
            ),
            GapCause::Missing {
                set_aside: Some(aside),
            } => write!(
                f,
                "{range} of the event log {are} not in it: their segment was set aside as {} \
                 (its header was damaged); the log goes on in {segment}",
                aside.display()
            ),
            GapCause::Missing { set_aside: None } => write!(
                f,
                "{range} of the event log {are} in no segment (never written, as on a full disk \
                 when a new segment was due, or removed by hand); the log goes on in {segment}"
            ),
        }
    }
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
    /// What [`LogReader::next_record`] returns where records are lost; the
    /// reader has moved past them (the next call reads on).
    #[error("{0}")]
    Lost(Box<Gap>),
    #[error(
        "no room for the event log in {dir}: a new segment takes {needed} bytes, reserved when \
         it is made, and the file system is full; free space on it (old camera clips, old \
         reports, files that are not Vigil's)"
    )]
    NoSpace { dir: PathBuf, needed: u64 },
}

/// Whether an I/O error means the file system is full (or the user's quota
/// is).
pub fn is_no_space(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(code) if code == nix::libc::ENOSPC || code == nix::libc::EDQUOT
    )
}

impl LogError {
    fn io(what: &'static str, path: &std::path::Path) -> impl FnOnce(std::io::Error) -> LogError {
        let path = path.to_owned();
        move |source| LogError::Io { what, path, source }
    }
}

/// The segment files of `dir`, oldest first: (first sequence, path).
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, LogError> {
    Ok(listing(dir)?.segments)
}

/// What a log directory holds: its segments and the segments set aside,
/// each oldest first, as (first sequence, path).
struct Listing {
    segments: Vec<(u64, PathBuf)>,
    set_aside: Vec<(u64, PathBuf)>,
}

fn listing(dir: &Path) -> Result<Listing, LogError> {
    let mut segments = Vec::new();
    let mut set_aside = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(LogError::io("read the log directory", dir))?;
    for entry in entries {
        let entry = entry.map_err(LogError::io("read the log directory", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // A name outside `format::SEQ_RANGE` is no segment of ours. (Found
        // by fuzzing: a file named 0, or u64::MAX, made the writer's
        // sequence arithmetic overflow at open, a panic in a debug build.)
        let number = |digits: &str| {
            digits
                .parse::<u64>()
                .ok()
                .filter(|n| format::SEQ_RANGE.contains(n))
        };
        if let Some(first) = name.strip_suffix(format::SEGMENT_SUFFIX).and_then(number) {
            segments.push((first, entry.path()));
        } else if let Some(first) = name
            .split_once(format::SET_ASIDE_INFIX)
            .and_then(|(digits, _)| number(digits))
        {
            set_aside.push((first, entry.path()));
        }
    }
    segments.sort();
    set_aside.sort();
    Ok(Listing {
        segments,
        set_aside,
    })
}

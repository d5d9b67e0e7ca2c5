//! Readers: map segments read-only and follow the tail as it grows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::Mmap;

use crate::format::{HEADER_LEN, Header, HeaderProblem, Record, Slot, read_slot};
use crate::{LogError, segments};

struct Mapped {
    path: PathBuf,
    _file: std::fs::File,
    map: Mmap,
}

/// A reader positioned at a sequence number.
pub struct LogReader {
    dir: PathBuf,
    current: Option<Mapped>,
    offset: usize,
    next_seq: u64,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

fn map_read_only(path: &Path) -> Result<Mapped, LogError> {
    let file = std::fs::File::open(path).map_err(LogError::io("open", path))?;
    // SAFETY: the mapping is read-only. The one writer changes the file
    // while it is mapped, but only by storing bytes into space that holds
    // no published record (and, at recovery, by zeroing a tail no valid
    // record precedes); this reader reads a record's bytes only after an
    // acquire load of its length word has published them, and re-checks
    // each record's CRC, so it never trusts bytes that are changing.
    let map = unsafe { Mmap::map(&file) }.map_err(LogError::io("map", path))?;
    Ok(Mapped {
        path: path.to_owned(),
        _file: file,
        map,
    })
}

impl LogReader {
    /// A reader whose first record will be `from_seq` (1: the beginning).
    pub fn open(dir: &Path, from_seq: u64) -> Result<LogReader, LogError> {
        let mut reader = LogReader {
            dir: dir.to_owned(),
            current: None,
            offset: HEADER_LEN,
            next_seq: from_seq.max(1),
        };
        let found = segments(dir)?;
        let Some(&(oldest, _)) = found.first() else {
            return Ok(reader);
        };
        if reader.next_seq < oldest {
            return Err(LogError::Gone {
                seq: reader.next_seq,
                oldest,
            });
        }
        // The segment holding from_seq, then skip to it.
        let Some((first, path)) = found.iter().rev().find(|(f, _)| *f <= reader.next_seq) else {
            return Ok(reader);
        };
        reader.attach(path, *first)?;
        let target = reader.next_seq;
        reader.next_seq = *first;
        while reader.next_seq < target {
            if reader.next_record()?.is_none() {
                break;
            }
        }
        Ok(reader)
    }

    fn attach(&mut self, path: &Path, first: u64) -> Result<(), LogError> {
        let mapped = map_read_only(path)?;
        match Header::decode(&mapped.map) {
            Ok(h) if h.first_seq == first => {}
            Ok(_) | Err(HeaderProblem::Other(_)) => {
                return Err(LogError::BadSegment {
                    path: path.to_owned(),
                    problem: "bad header".into(),
                });
            }
            Err(HeaderProblem::Version(v)) => {
                return Err(LogError::Version {
                    path: path.to_owned(),
                    found: v,
                    expected: crate::FORMAT_VERSION,
                });
            }
        }
        self.current = Some(mapped);
        self.offset = HEADER_LEN;
        Ok(())
    }

    /// The sequence the next record will have.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The next record, or `None` if the writer has not written it yet
    /// (call again later to follow the tail).
    pub fn next_record(&mut self) -> Result<Option<Record>, LogError> {
        loop {
            let Some(current) = &self.current else {
                // No segment yet: wait for the one that starts here.
                let path = self.dir.join(crate::format::segment_name(self.next_seq));
                if !path.exists() {
                    return Ok(None);
                }
                self.attach(&path, self.next_seq)?;
                continue;
            };
            let map = &current.map;
            if self.offset + 4 <= map.len() {
                // SAFETY: the offset is 8-aligned in a page-aligned mapping
                // and 4 bytes fit before its end; the word is only ever
                // stored atomically by the writer.
                let len = unsafe {
                    (*map.as_ptr().add(self.offset).cast::<AtomicU32>()).load(Ordering::Acquire)
                };
                match read_slot(map, self.offset, u32::from_le(len), self.next_seq) {
                    Slot::Record(record, next) => {
                        self.offset = next;
                        self.next_seq += 1;
                        return Ok(Some(record));
                    }
                    // Not valid (yet): a write in progress, or a tail the
                    // writer's recovery will cut. Never skipped.
                    Slot::Invalid(_) => return Ok(None),
                    Slot::End => {}
                }
            }
            // The end of this segment's data: has the writer moved on?
            let following = self.dir.join(crate::format::segment_name(self.next_seq));
            if following.exists() && following != current.path {
                self.attach(&following, self.next_seq)?;
                continue;
            }
            return Ok(None);
        }
    }
}

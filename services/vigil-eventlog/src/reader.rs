//! Readers: map segments read-only and follow the tail as it grows,
//! stepping over damage as an explicit [`Gap`].

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::Mmap;

use crate::format::{HEADER_LEN, Header, HeaderProblem, Record, Slot, read_slot, resync};
use crate::{Gap, GapCause, LogError, listing, segments};

struct Mapped {
    path: PathBuf,
    first: u64,
    _file: std::fs::File,
    map: Mmap,
}

/// What a reader reads next: a record, or the numbers it cannot give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    Record(Record),
    Gap(Gap),
}

/// A reader positioned at a sequence number.
pub struct LogReader {
    dir: PathBuf,
    current: Option<Mapped>,
    offset: usize,
    /// The number the next record should have.
    next_seq: u64,
    /// Nothing numbered below this is returned (where the reader was
    /// opened: it reads its segment from the start).
    floor: u64,
}

impl std::fmt::Debug for LogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogReader")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq())
            .finish_non_exhaustive()
    }
}

fn map_read_only(path: &Path) -> Result<(std::fs::File, Mmap), LogError> {
    let file = std::fs::File::open(path).map_err(LogError::io("open", path))?;
    // SAFETY: the mapping is read-only. The one writer changes the file
    // while it is mapped, but only by storing bytes into space that holds
    // no published record (and, at recovery, by zeroing a tail after the
    // last valid record). This reader reads a record's bytes only after an
    // acquire load of its length word has published them, or, stepping
    // over damage, as untrusted bytes: every record is copied out and
    // checked on the copy (length, CRC32C, sequence), so bytes that change
    // under it can make a record invalid, never valid with bytes it did not
    // have.
    let map = unsafe { Mmap::map(&file) }.map_err(LogError::io("map", path))?;
    Ok((file, map))
}

/// The length word at `at` of a mapped segment, loaded with acquire
/// ordering (0 where no word fits).
fn load_len(map: &Mmap, at: usize) -> u32 {
    if !at.is_multiple_of(4) || at + 4 > map.len() {
        return 0;
    }
    // SAFETY: `at` is 4-aligned (checked) in a page-aligned mapping and 4
    // bytes fit before its end (checked), so the pointer is valid and
    // aligned for an AtomicU32 for the borrow of `map`; the writer only
    // ever stores this word atomically.
    let word = unsafe { &*map.as_ptr().add(at).cast::<AtomicU32>() };
    u32::from_le(word.load(Ordering::Acquire))
}

/// What attaching the segment that holds the next number gave.
enum Attached {
    /// A segment is mapped: read on.
    Mapped,
    /// Numbers no segment holds, or a segment that cannot be read.
    Gap(Gap),
    /// No segment yet.
    Nothing,
}

impl LogReader {
    /// A reader whose first entry will be `from_seq` (1: the beginning): a
    /// record, or a gap that holds it.
    pub fn open(dir: &Path, from_seq: u64) -> Result<LogReader, LogError> {
        let from = from_seq.max(1);
        let mut reader = LogReader {
            dir: dir.to_owned(),
            current: None,
            offset: HEADER_LEN,
            next_seq: from,
            floor: from,
        };
        let found = listing(dir)?;
        let Some(&(oldest, _)) = found.segments.first() else {
            return Ok(reader);
        };
        // Before the oldest segment: retired (an error naming the oldest
        // kept), unless a segment set aside held them (then the first
        // entry is a gap that says so).
        let set_aside = found.set_aside.iter().any(|(f, _)| *f <= from);
        if from < oldest && !set_aside {
            return Err(LogError::Gone { seq: from, oldest });
        }
        let found = found.segments;
        // The segment holding from_seq, read from its start: what is below
        // the floor is not returned.
        if let Some((first, _)) = found.iter().rev().find(|(f, _)| *f <= from) {
            reader.next_seq = *first;
        }
        Ok(reader)
    }

    /// The sequence the next record will have (unless a gap comes first).
    pub fn next_seq(&self) -> u64 {
        self.next_seq.max(self.floor)
    }

    /// The next record, or `None` if the writer has not written it yet
    /// (call again later to follow the tail). Where records are lost, this
    /// is [`LogError::Lost`] naming them, and the reader has moved past
    /// them: the next call reads on. [`LogReader::next_entry`] gives the
    /// gap as an entry instead.
    pub fn next_record(&mut self) -> Result<Option<Record>, LogError> {
        match self.next_entry()? {
            None => Ok(None),
            Some(Entry::Record(record)) => Ok(Some(record)),
            Some(Entry::Gap(gap)) => Err(LogError::Lost(Box::new(gap))),
        }
    }

    /// The next record or gap, or `None` if the writer has not written the
    /// next record yet (call again later to follow the tail).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, LogError> {
        loop {
            match self.step()? {
                None => return Ok(None),
                Some(Entry::Record(r)) if r.seq < self.floor => {}
                Some(Entry::Gap(g)) if g.last < self.floor => {}
                Some(Entry::Gap(mut g)) => {
                    g.first = g.first.max(self.floor);
                    return Ok(Some(Entry::Gap(g)));
                }
                Some(record) => return Ok(Some(record)),
            }
        }
    }

    /// The next entry, floor aside.
    fn step(&mut self) -> Result<Option<Entry>, LogError> {
        loop {
            let Some(current) = &self.current else {
                match self.attach()? {
                    Attached::Mapped => continue,
                    Attached::Gap(gap) => return Ok(Some(Entry::Gap(gap))),
                    Attached::Nothing => return Ok(None),
                }
            };
            let at = self.offset;
            let len = load_len(&current.map, at);
            let reason = match read_slot(&current.map, at, len) {
                Slot::Record(record, next) if record.seq == self.next_seq => {
                    self.offset = next;
                    self.next_seq += 1;
                    return Ok(Some(Entry::Record(record)));
                }
                Slot::Record(record, _) if record.seq > self.next_seq => {
                    // The writer moved its numbering on: read this record
                    // next, after saying what it skipped.
                    let gap = Gap {
                        first: self.next_seq,
                        last: record.seq - 1,
                        segment: current.path.clone(),
                        cause: GapCause::Skipped,
                    };
                    self.next_seq = record.seq;
                    return Ok(Some(Entry::Gap(gap)));
                }
                Slot::Record(record, _) => Some(format!(
                    "sequence {} where {} was due",
                    record.seq, self.next_seq
                )),
                Slot::Invalid(reason) => Some(reason),
                Slot::End => None,
            };
            let following = self.following(current.first)?;
            if reason.is_none() && following.is_none() {
                // The end of the newest segment's data: the tail, for now.
                return Ok(None);
            }
            let below = following.as_ref().map_or(u64::MAX, |(f, _)| *f);
            let map = &current.map;
            if let Some((found, seq)) =
                resync(map, at + 8, self.next_seq, below, |a| load_len(map, a))
            {
                if following.is_none() {
                    // The newest segment: a restarted writer may have cut
                    // this tail and written new records since the length
                    // was loaded (the acquire load of the record found
                    // makes such a rewrite visible): look again.
                    // Only a record the top of the loop now takes (its
                    // number due, or past it) is news: a valid record
                    // numbered below it is the damage seen before, and
                    // looking again would loop forever (found by fuzzing).
                    let again = read_slot(map, at, load_len(map, at));
                    if matches!(again, Slot::Record(ref r, _) if r.seq >= self.next_seq) {
                        continue;
                    }
                }
                let gap = Gap {
                    first: self.next_seq,
                    last: seq.saturating_sub(1),
                    segment: current.path.clone(),
                    cause: GapCause::Damaged {
                        offset: at,
                        bytes: found - at,
                        reason: reason.unwrap_or_else(|| "a record length of zero".into()),
                    },
                };
                self.offset = found;
                if seq > self.next_seq {
                    self.next_seq = seq;
                    return Ok(Some(Entry::Gap(gap)));
                }
                // Debris, but no number lost.
                continue;
            }
            let Some((next_first, next_path)) = following else {
                // An invalid record with nothing valid after it in the
                // newest segment: a torn tail the writer's recovery
                // removes, or damage the writer's next record will let
                // this reader step over. Never skipped blindly.
                return Ok(None);
            };
            // Nothing more in this segment: on to the next one, saying
            // what no segment holds.
            let damaged = reason.map(|reason| {
                let bytes = map[at.min(map.len())..]
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |p| p + 1);
                (reason, bytes)
            });
            let path = current.path.clone();
            let first = current.first;
            self.current = None;
            if next_first < self.next_seq {
                // Overlapping segments (a copy by hand): never read a
                // number twice.
                self.floor = self.floor.max(self.next_seq);
                self.next_seq = next_first;
                continue;
            }
            if next_first == self.next_seq {
                self.next_seq = next_first;
                continue;
            }
            let cause = match damaged {
                Some((reason, bytes)) => GapCause::Damaged {
                    offset: at,
                    bytes,
                    reason,
                },
                None => GapCause::Missing {
                    set_aside: self.set_aside_before(Some(first), next_first)?,
                },
            };
            let gap = Gap {
                first: self.next_seq,
                last: next_first - 1,
                segment: if matches!(cause, GapCause::Damaged { .. }) {
                    path
                } else {
                    next_path
                },
                cause,
            };
            self.next_seq = next_first;
            return Ok(Some(Entry::Gap(gap)));
        }
    }

    /// The first segment after the one starting at `first`, if the writer
    /// has started one.
    fn following(&self, first: u64) -> Result<Option<(u64, PathBuf)>, LogError> {
        Ok(segments(&self.dir)?.into_iter().find(|(f, _)| *f > first))
    }

    /// The segment set aside whose records end where the segment starting
    /// at `before` begins: the last one set aside before it (the writer
    /// sets aside only its newest segment, and starts the next one after
    /// its records), and after the segment starting at `after`, if given.
    fn set_aside_before(
        &self,
        after: Option<u64>,
        before: u64,
    ) -> Result<Option<PathBuf>, LogError> {
        Ok(listing(&self.dir)?
            .set_aside
            .into_iter()
            .rev()
            .find(|(f, _)| *f < before && after.is_none_or(|a| *f > a))
            .map(|(_, p)| p))
    }

    /// Maps the segment that holds the next number: the last one that
    /// starts at or before it, or else the first after it (a gap before).
    fn attach(&mut self) -> Result<Attached, LogError> {
        let found = segments(&self.dir)?;
        let holding = found.iter().rev().find(|(f, _)| *f <= self.next_seq);
        let Some((first, path)) = holding.or(found.first()).cloned() else {
            return Ok(Attached::Nothing);
        };
        if first > self.next_seq {
            let gap = Gap {
                first: self.next_seq,
                last: first - 1,
                segment: path.clone(),
                cause: GapCause::Missing {
                    set_aside: self.set_aside_before(None, first)?,
                },
            };
            self.next_seq = first;
            return Ok(Attached::Gap(gap));
        }
        let (file, map) = map_read_only(&path)?;
        let problem = match Header::decode(&map) {
            Ok(h) if h.first_seq == first => None,
            Ok(h) => Some(format!("its header says it starts at {}", h.first_seq)),
            Err(HeaderProblem::Version(v)) => {
                return Err(LogError::Version {
                    path,
                    found: v,
                    expected: crate::FORMAT_VERSION,
                });
            }
            Err(HeaderProblem::Other(problem)) => Some(problem),
        };
        let Some(problem) = problem else {
            // Read from its start: what is below the number wanted is not
            // returned.
            self.floor = self.floor.max(self.next_seq);
            self.next_seq = first;
            self.current = Some(Mapped {
                path,
                first,
                _file: file,
                map,
            });
            self.offset = HEADER_LEN;
            return Ok(Attached::Mapped);
        };
        // A header that cannot be trusted: none of its records can. The
        // newest segment is the writer's to set aside (until then this is
        // an error the caller reports); an older one is a gap.
        match found.iter().find(|(f, _)| *f > first) {
            None => Err(LogError::BadSegment { path, problem }),
            Some((next_first, _)) => {
                let gap = Gap {
                    first: self.next_seq.max(first),
                    last: next_first - 1,
                    segment: path,
                    cause: GapCause::Unreadable { reason: problem },
                };
                self.floor = self.floor.max(self.next_seq);
                self.next_seq = *next_first;
                Ok(Attached::Gap(gap))
            }
        }
    }
}

/// Reads the whole log from its oldest record to the tail and returns every
/// gap in it: what the hub checks at start, on a thread of its own.
pub fn scan(dir: &Path) -> Result<Vec<Gap>, LogError> {
    let found = listing(dir)?;
    let Some(&(oldest, _)) = found.segments.first() else {
        return Ok(Vec::new());
    };
    // From the oldest segment, or the oldest set aside before it.
    let from = found
        .set_aside
        .first()
        .map_or(oldest, |(f, _)| oldest.min(*f));
    let mut reader = LogReader::open(dir, from)?;
    let mut gaps = Vec::new();
    while let Some(entry) = reader.next_entry()? {
        if let Entry::Gap(gap) = entry {
            gaps.push(gap);
        }
    }
    Ok(gaps)
}

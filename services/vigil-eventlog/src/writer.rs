//! The one writer: appends records, syncs them (msync), rotates segments,
//! and recovers the tail when it opens.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::MmapMut;
use tracing::{error, info, warn};

use crate::format::{
    HEADER_LEN, Header, HeaderProblem, RECORD_HEADER_LEN, SET_ASIDE_INFIX, Slot, encode_record,
    last_valid_seq, len_word, pad8, published_from, read_slot, resync, segment_name,
};
use crate::{Gap, GapCause, LogError, is_no_space, segments};

/// How the log is laid out.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Bytes per segment file (whole segments are preallocated and retired).
    pub segment_size: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_size: 16 << 20,
        }
    }
}

/// A torn tail that recovery removed: the bytes after the last valid record
/// of the newest segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub segment: PathBuf,
    /// Where the first invalid record started.
    pub offset: usize,
    /// How many bytes after it were not zero (now zeroed).
    pub bytes: usize,
    pub reason: String,
    /// The numbers that records published there had (their length word was
    /// stored, so a reader may have seen them): never given to another
    /// record, the log goes on after them.
    pub published: Option<(u64, u64)>,
}

/// The newest segment, set aside because its header is damaged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAside {
    pub segment: PathBuf,
    /// Its name now (`<digits>.vlog.broken`): kept for inspection, never
    /// read or removed by Vigil.
    pub moved_to: PathBuf,
    pub problem: String,
    /// The numbers its valid records had (read by its file name's number),
    /// if any: readers see them as a gap.
    pub records: Option<(u64, u64)>,
}

/// What opening found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    /// The sequence the next append gets.
    pub next_seq: u64,
    pub cut: Option<Cut>,
    /// Numbers lost inside the newest segment (damaged bytes between valid
    /// records, which are kept), or skipped by the writer.
    pub gaps: Vec<Gap>,
    /// Whether the newest segment was sealed because damage was found in it:
    /// new records go to a new segment.
    pub sealed: bool,
    pub set_aside: Option<SetAside>,
    /// Why the log has no segment to write in, if it has none (a full
    /// disk): appends try again, and fail until there is room.
    pub no_segment: Option<String>,
}

struct Segment {
    path: PathBuf,
    /// Keeps the file open for the mapping's life.
    _file: File,
    map: MmapMut,
    /// Where the next record goes.
    offset: usize,
    /// Bytes from here to `offset` are written but not yet synced.
    dirty_from: usize,
}

/// The log's writer. There must be one per log directory (the hub); it is
/// not shared between threads.
pub struct LogWriter {
    /// The directory's writer lock, held while this writer lives.
    _lock: File,
    dir: PathBuf,
    options: Options,
    segment: Option<Segment>,
    next_seq: u64,
    synced_seq: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for LogWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("dir", &self.dir)
            .field("next_seq", &self.next_seq)
            .field("synced_seq", &self.synced_seq)
            .finish_non_exhaustive()
    }
}

fn map_segment(path: &Path, size: u64) -> Result<(File, MmapMut), LogError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(LogError::io("open", path))?;
    let len = file.metadata().map_err(LogError::io("stat", path))?.len();
    if len < size {
        // A file cut short (a crash while it was being made, or someone's
        // truncate): the missing part reads as zeros, which is "no data".
        file.set_len(size).map_err(LogError::io("extend", path))?;
    }
    reserve(&file, path, size)?;
    // SAFETY: the file is open read-write and at least `size` long; this
    // writer is the only process that writes it (one hub per log directory,
    // which the hub's bootstrap socket enforces), and it never truncates a
    // mapped file, so the mapping stays valid for as long as it is held.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .len(size as usize)
            .map_mut(&file)
    }
    .map_err(LogError::io("map", path))?;
    Ok((file, map))
}

/// Allocates the segment's blocks now: a mapped write into a hole on a full
/// disk would kill the process with SIGBUS; this fails with ENOSPC instead,
/// which the caller can report.
fn reserve(file: &File, path: &Path, size: u64) -> Result<(), LogError> {
    nix::fcntl::posix_fallocate(file, 0, size as i64)
        .map_err(|e| LogError::io("reserve disk space for", path)(std::io::Error::from(e)))
}

/// Sets the newest segment aside (its header is damaged): renamed
/// `<name>.broken` (`.broken.1`, ... if taken), never read or removed by
/// Vigil again. Its records are read by its file name's number, the header
/// aside, only to find where the log goes on.
fn set_aside(dir: &Path, path: &Path, first: u64, problem: String) -> Result<SetAside, LogError> {
    let bytes = std::fs::read(path).map_err(LogError::io("read", path))?;
    let records = last_valid_seq(&bytes, first).map(|last| (first, last));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(crate::format::SEGMENT_SUFFIX)
        .unwrap_or(&name);
    let mut moved_to = dir.join(format!("{stem}{SET_ASIDE_INFIX}"));
    let mut n = 0;
    while moved_to.exists() {
        n += 1;
        moved_to = dir.join(format!("{stem}{SET_ASIDE_INFIX}.{n}"));
    }
    std::fs::rename(path, &moved_to).map_err(LogError::io("set aside", path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(LogError::io("sync", dir))?;
    let aside = SetAside {
        segment: path.to_owned(),
        moved_to,
        problem,
        records,
    };
    error!(
        segment = %aside.segment.display(),
        moved_to = %aside.moved_to.display(),
        "set aside the newest event-log segment: its header is damaged ({}); {}; it is kept as \
         {} for inspection, and new records go to a new segment",
        aside.problem,
        match aside.records {
            Some((a, b)) => format!("its records {a} to {b} are no longer read (readers see a gap)"),
            None => "no valid record was found in it".to_owned(),
        },
        aside.moved_to.display()
    );
    Ok(aside)
}

/// The first `n` bytes of a file (fewer if it is shorter).
fn read_prefix(path: &Path, n: usize) -> Result<Vec<u8>, LogError> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(n);
    File::open(path)
        .and_then(|f| f.take(n as u64).read_to_end(&mut bytes))
        .map_err(LogError::io("read", path))?;
    Ok(bytes)
}

impl LogWriter {
    /// Opens the log in `dir` (made if missing): recovers the newest
    /// segment (see `recover`), or sets it aside if its header is damaged,
    /// and makes sure a segment is there to write in
    /// ([`Recovery::no_segment`] says why not).
    pub fn open(dir: &Path, options: Options) -> Result<(LogWriter, Recovery), LogError> {
        std::fs::create_dir_all(dir).map_err(LogError::io("create", dir))?;
        // One writer per log: an exclusive lock on a file in the directory,
        // held for the writer's life (released by the kernel if it dies).
        let lock_path = dir.join("writer.lock");
        // Mode 0600: the log's readers (its group) may not open it, so none
        // can take the lock and keep the hub from its own log.
        let lock = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(LogError::io("create", &lock_path))?;
        lock.try_lock().map_err(|_| LogError::Locked {
            path: dir.to_owned(),
        })?;
        let mut writer = LogWriter {
            _lock: lock,
            dir: dir.to_owned(),
            options,
            segment: None,
            next_seq: 1,
            synced_seq: 0,
            buf: Vec::new(),
        };
        let mut found = segments(dir)?;
        let mut recovery = Recovery {
            segments: found.len(),
            next_seq: 1,
            cut: None,
            gaps: Vec::new(),
            sealed: false,
            set_aside: None,
            no_segment: None,
        };
        while let Some((first, path)) = found.last().cloned() {
            let bytes = read_prefix(&path, HEADER_LEN)?;
            let problem = match Header::decode(&bytes) {
                Ok(h) if h.first_seq == first => {
                    writer.recover(path, h, &mut recovery)?;
                    break;
                }
                Ok(h) => format!("its header says it starts at {}", h.first_seq),
                Err(HeaderProblem::Version(v)) => {
                    return Err(LogError::Version {
                        path,
                        found: v,
                        expected: crate::FORMAT_VERSION,
                    });
                }
                Err(HeaderProblem::Other(problem))
                    if bytes.len() < HEADER_LEN || bytes.iter().all(|&b| b == 0) =>
                {
                    // A segment whose creation never finished: it holds
                    // nothing, so it goes.
                    warn!(segment = %path.display(), "removing a segment left unfinished ({problem})");
                    std::fs::remove_file(&path).map_err(LogError::io("remove", &path))?;
                    found.pop();
                    recovery.segments -= 1;
                    continue;
                }
                Err(HeaderProblem::Other(problem)) => problem,
            };
            // A damaged header on the newest segment: it goes aside, and
            // the log goes on in a new segment after its records.
            let aside = set_aside(dir, &path, first, problem)?;
            writer.next_seq = aside.records.map_or(first, |(_, last)| last + 1);
            writer.synced_seq = writer.next_seq - 1;
            recovery.segments -= 1;
            recovery.set_aside = Some(aside);
            break;
        }
        if writer.segment.is_none() {
            // A new log, a sealed segment, or one set aside: a segment to
            // write in now, so that a full disk shows at start. Without
            // one the writer still opens (its caller keeps working); the
            // appends try again.
            match writer.rotate() {
                Ok(()) => recovery.segments += 1,
                Err(e) => {
                    warn!("cannot start a new event-log segment: {e}; new records wait for room");
                    recovery.no_segment = Some(e.to_string());
                }
            }
        }
        recovery.next_seq = writer.next_seq;
        info!(
            dir = %dir.display(),
            segments = recovery.segments,
            next_seq = recovery.next_seq,
            "event log open"
        );
        Ok((writer, recovery))
    }

    /// Recovers the newest segment (its header is valid): reads it from its
    /// first record, stepping over damage to the valid records after it
    /// (kept, reported as gaps, and the segment sealed), and cuts what
    /// follows the last valid record (a torn tail). Never modifies a valid
    /// record.
    fn recover(
        &mut self,
        path: PathBuf,
        header: Header,
        recovery: &mut Recovery,
    ) -> Result<(), LogError> {
        let (file, mut map) = match map_segment(&path, header.segment_size) {
            Ok(mapped) => mapped,
            Err(LogError::Io { source, .. }) if is_no_space(&source) => {
                // A segment shorter than its header says (cut short), on a
                // full disk: it cannot be made whole again. What it holds is
                // kept, and it is sealed.
                let bytes = std::fs::read(&path).map_err(LogError::io("read", &path))?;
                self.next_seq =
                    last_valid_seq(&bytes, header.first_seq).map_or(header.first_seq, |l| l + 1);
                self.synced_seq = self.next_seq - 1;
                recovery.sealed = true;
                warn!(
                    segment = %path.display(),
                    "the newest event-log segment is shorter than its header says and the disk \
                     is full: it is sealed as it is; new records go to a new segment"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let mut at = HEADER_LEN;
        let mut seq = header.first_seq;
        let mut sealed = false;
        loop {
            let reason = match read_slot(&map, at, len_word(&map, at)) {
                Slot::Record(r, next) if r.seq == seq => {
                    at = next;
                    seq += 1;
                    continue;
                }
                Slot::Record(r, _) if r.seq > seq => {
                    recovery.gaps.push(Gap {
                        first: seq,
                        last: r.seq - 1,
                        segment: path.clone(),
                        cause: GapCause::Skipped,
                    });
                    seq = r.seq;
                    continue;
                }
                Slot::Record(r, _) => Some(format!("sequence {} where {seq} was due", r.seq)),
                Slot::Invalid(reason) => Some(reason),
                Slot::End => None,
            };
            if let Some((found, next)) = resync(&map, at + 8, seq, u64::MAX, |a| len_word(&map, a))
            {
                // Damage between valid records: the bytes stay as they are
                // (readers step over them too), the records after them are
                // kept, and no new record goes into this segment.
                sealed = true;
                let reason = reason.unwrap_or_else(|| "a record length of zero".into());
                if next > seq {
                    let gap = Gap {
                        first: seq,
                        last: next - 1,
                        segment: path.clone(),
                        cause: GapCause::Damaged {
                            offset: at,
                            bytes: found - at,
                            reason,
                        },
                    };
                    error!(
                        segment = %path.display(),
                        offset = at,
                        first_lost = gap.first,
                        last_lost = gap.last,
                        "{gap}"
                    );
                    recovery.gaps.push(gap);
                } else {
                    warn!(
                        segment = %path.display(),
                        offset = at,
                        bytes = found - at,
                        "unreadable bytes between records {} and {next} of the event log \
                         ({reason}); no record is lost",
                        next.saturating_sub(1)
                    );
                }
                at = found;
                seq = next;
                continue;
            }
            // The last valid record is behind: what follows is a torn tail
            // (or damage no valid record follows), and goes.
            let tail = &map[at.min(map.len())..];
            let bytes = tail.iter().filter(|&&b| b != 0).count();
            if bytes > 0 {
                // Records whose length word was stored had been published;
                // their numbers are never given to other records.
                let published = match reason {
                    Some(_) => published_from(&map, at, seq),
                    None => 0,
                };
                let cut = Cut {
                    segment: path.clone(),
                    offset: at,
                    bytes,
                    reason: reason.unwrap_or_else(|| "bytes after the end of the data".into()),
                    published: (published > 0).then(|| (seq, seq + published - 1)),
                };
                let end = map.len();
                map[at.min(end)..].fill(0);
                map.flush().map_err(LogError::io("sync", &path))?;
                warn!(
                    segment = %cut.segment.display(),
                    offset = cut.offset,
                    bytes = cut.bytes,
                    last_good_seq = seq - 1,
                    "cut a torn tail from the event log ({}); records before it are intact{}",
                    cut.reason,
                    match cut.published {
                        Some((a, b)) => format!(
                            "; the numbers {a} to {b} it held are not given again (readers \
                             see them as a gap)"
                        ),
                        None => String::new(),
                    }
                );
                seq += published;
                recovery.cut = Some(cut);
            }
            break;
        }
        self.next_seq = seq;
        self.synced_seq = seq - 1;
        if sealed {
            recovery.sealed = true;
            warn!(
                segment = %path.display(),
                "the newest event-log segment holds damaged records: it is kept as it is and \
                 sealed; new records go to a new segment"
            );
            return Ok(());
        }
        self.segment = Some(Segment {
            path,
            _file: file,
            map,
            offset: at,
            dirty_from: at,
        });
        Ok(())
    }

    /// The sequence the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last sequence known to be on disk.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
    }

    /// Moves the numbering on, so that the next record gets `seq` (if it
    /// is ahead): the numbers between were never written (events that
    /// could not be, on a full disk, or a log behind its caller's
    /// numbering). Readers see them as a gap.
    pub fn skip_to(&mut self, seq: u64) {
        if seq > self.next_seq {
            self.next_seq = seq;
            self.synced_seq = self.synced_seq.max(self.next_seq - 1);
        }
    }

    /// Appends a record; returns its sequence. Not durable until [`sync`].
    ///
    /// [`sync`]: LogWriter::sync
    pub fn append(
        &mut self,
        kind: u16,
        flags: u16,
        unix_ns: u64,
        payload: &[u8],
    ) -> Result<u64, LogError> {
        let seq = self.next_seq;
        let mut buf = std::mem::take(&mut self.buf);
        encode_record(&mut buf, seq, unix_ns, kind, flags, payload);
        let segment_size = self.options.segment_size;
        if HEADER_LEN + buf.len() > segment_size as usize {
            self.buf = buf;
            return Err(LogError::TooLarge {
                len: RECORD_HEADER_LEN + payload.len(),
                segment: segment_size,
            });
        }
        let fits = self
            .segment
            .as_ref()
            .is_some_and(|s| s.offset + buf.len() <= s.map.len());
        if !fits {
            self.rotate()?;
        }
        let Some(seg) = self.segment.as_mut() else {
            unreachable!("rotate() leaves a segment open");
        };
        let at = seg.offset;
        // Everything but the length word first...
        seg.map[at + 4..at + buf.len()].copy_from_slice(&buf[4..]);
        // ...then the length, with release ordering: a reader that sees it
        // sees the rest.
        let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        // SAFETY: `at` is 8-aligned within a page-aligned mapping and at
        // least 4 bytes before its end (checked by `fits`), so the pointer
        // is valid and aligned for a u32 for the borrow of `seg.map`; other
        // processes only read this word, atomically.
        let word = unsafe { AtomicU32::from_ptr(seg.map.as_mut_ptr().add(at).cast::<u32>()) };
        word.store(len.to_le(), Ordering::Release);
        seg.offset = at + buf.len();
        self.next_seq += 1;
        self.buf = buf;
        Ok(seq)
    }

    /// Makes every appended record durable (msync of the written range);
    /// returns the last synced sequence.
    pub fn sync(&mut self) -> Result<u64, LogError> {
        if let Some(seg) = self.segment.as_mut()
            && seg.offset > seg.dirty_from
        {
            seg.map
                .flush_range(seg.dirty_from, seg.offset - seg.dirty_from)
                .map_err(LogError::io("sync", &seg.path))?;
            seg.dirty_from = seg.offset;
        }
        self.synced_seq = self.next_seq - 1;
        Ok(self.synced_seq)
    }

    /// Appends and syncs: for alarm-class events, acknowledged only once on
    /// disk.
    pub fn append_synced(
        &mut self,
        kind: u16,
        flags: u16,
        unix_ns: u64,
        payload: &[u8],
    ) -> Result<u64, LogError> {
        let seq = self.append(kind, flags, unix_ns, payload)?;
        self.sync()?;
        Ok(seq)
    }

    /// Starts a new segment at the next sequence (syncing the old one).
    /// The file is made under a temporary name, given its header and
    /// synced, and only then renamed into place, so no reader (or a later
    /// recovery) ever sees a segment without a header.
    fn rotate(&mut self) -> Result<(), LogError> {
        self.sync()?;
        let size = self.options.segment_size;
        self.start_segment().map_err(|e| match e {
            LogError::Io { source, .. } if is_no_space(&source) => LogError::NoSpace {
                dir: self.dir.clone(),
                needed: size,
            },
            e => e,
        })
    }

    fn start_segment(&mut self) -> Result<(), LogError> {
        let path = self.dir.join(segment_name(self.next_seq));
        let tmp = path.with_extension("vlog.new");
        let size = self.options.segment_size;
        // Never writable by the group, whatever the umask: the log's group
        // (NixOS: vigil-log, given by the directory's setgid bit) is its
        // readers', reportd's, and the log has one writer.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)
            .map_err(LogError::io("create", &tmp))?;
        file.set_len(size).map_err(LogError::io("size", &tmp))?;
        if let Err(e) = reserve(&file, &tmp, size) {
            drop(file);
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        drop(file);
        let (file, mut map) = map_segment(&tmp, size)?;
        let header = Header {
            first_seq: self.next_seq,
            segment_size: size,
            created_unix_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        map[..HEADER_LEN].copy_from_slice(&header.encode());
        map.flush_range(0, HEADER_LEN)
            .map_err(LogError::io("sync", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(LogError::io("rename into", &path))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(LogError::io("sync", &self.dir))?;
        self.segment = Some(Segment {
            path,
            _file: file,
            map,
            offset: HEADER_LEN,
            dirty_from: HEADER_LEN,
        });
        debug_assert_eq!(pad8(HEADER_LEN), HEADER_LEN);
        Ok(())
    }
}

/// How much of the log to keep.
#[derive(Clone, Copy, Debug, Default)]
pub struct Retention {
    /// Segments sealed (the next one started) longer ago than this go.
    pub max_age: Option<std::time::Duration>,
    /// Oldest segments go while the log is larger than this.
    pub max_bytes: Option<u64>,
}

impl LogWriter {
    /// Removes whole segments, oldest first, as `retention` asks, but never
    /// the segment being written and never one holding a record at or after
    /// `keep_from` (the first sequence a reader such as reportd still
    /// needs). Returns the removed files.
    pub fn retire(
        &mut self,
        retention: &Retention,
        keep_from: u64,
        now_unix_ns: u64,
    ) -> Result<Vec<PathBuf>, LogError> {
        let found = segments(&self.dir)?;
        let mut sizes = Vec::with_capacity(found.len());
        let mut sealed = Vec::with_capacity(found.len());
        for (_, path) in &found {
            let meta = std::fs::metadata(path).map_err(LogError::io("stat", path))?;
            sizes.push(meta.len());
            // A damaged header does not stop retention: the file's time
            // stands in for its creation time.
            let created = match Header::decode(&read_prefix(path, HEADER_LEN)?) {
                Ok(header) => header.created_unix_ns,
                Err(_) => meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos() as u64),
            };
            sealed.push(created);
        }
        let mut total: u64 = sizes.iter().sum();
        let mut removed = Vec::new();
        // Segment i is sealed when segment i + 1 was created; the last one
        // is being written and stays.
        for i in 0..found.len().saturating_sub(1) {
            let next_first = found[i + 1].0;
            if next_first > keep_from {
                break; // holds records still needed
            }
            let too_old = retention.max_age.is_some_and(|age| {
                now_unix_ns.saturating_sub(sealed[i + 1]) > age.as_nanos() as u64
            });
            let too_big = retention.max_bytes.is_some_and(|max| total > max);
            if !(too_old || too_big) {
                break; // oldest first: nothing after it qualifies by age either
            }
            let path = &found[i].1;
            std::fs::remove_file(path).map_err(LogError::io("remove", path))?;
            total -= sizes[i];
            removed.push(path.clone());
        }
        if !removed.is_empty() {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(LogError::io("sync", &self.dir))?;
            info!(count = removed.len(), "retired old event-log segments");
        }
        Ok(removed)
    }
}

//! The one writer: appends records, syncs them (msync), rotates segments,
//! and recovers the tail when it opens.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::MmapMut;
use tracing::{info, warn};

use crate::format::{
    HEADER_LEN, Header, HeaderProblem, RECORD_HEADER_LEN, Slot, encode_record, pad8, read_slot,
    segment_name,
};
use crate::{LogError, segments};

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

/// A torn or corrupt tail that recovery removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cut {
    pub segment: PathBuf,
    /// Where the first invalid record started.
    pub offset: usize,
    /// How many bytes after it were not zero (now zeroed).
    pub bytes: usize,
    pub reason: String,
}

/// What opening found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    pub segments: usize,
    /// The sequence the next append gets.
    pub next_seq: u64,
    pub cut: Option<Cut>,
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
    /// Opens the log in `dir` (made if missing), recovering the tail of the
    /// newest segment: a torn or corrupt record and everything after it in
    /// that segment are zeroed; earlier records are never touched.
    pub fn open(dir: &Path, options: Options) -> Result<(LogWriter, Recovery), LogError> {
        std::fs::create_dir_all(dir).map_err(LogError::io("create", dir))?;
        // One writer per log: an exclusive lock on a file in the directory,
        // held for the writer's life (released by the kernel if it dies).
        let lock_path = dir.join("writer.lock");
        let lock = File::create(&lock_path).map_err(LogError::io("create", &lock_path))?;
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
        let mut cut = None;
        while let Some((first, path)) = found.last().cloned() {
            let bytes = read_prefix(&path, HEADER_LEN)?;
            let header = match Header::decode(&bytes) {
                Ok(h) => h,
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
                    continue;
                }
                Err(HeaderProblem::Other(problem)) => {
                    return Err(LogError::BadSegment { path, problem });
                }
            };
            if header.first_seq != first {
                return Err(LogError::BadSegment {
                    path,
                    problem: format!("its header says it starts at {}", header.first_seq),
                });
            }
            let (file, mut map) = map_segment(&path, header.segment_size)?;
            let mut at = HEADER_LEN;
            let mut seq = header.first_seq;
            loop {
                let len = u32::from_le_bytes([map[at], map[at + 1], map[at + 2], map[at + 3]]);
                match read_slot(&map, at, len, seq) {
                    Slot::Record(_, next) => {
                        at = next;
                        seq += 1;
                        if at + 4 > map.len() {
                            break;
                        }
                    }
                    Slot::End => {
                        // Anything non-zero after the end marker is debris
                        // of a torn write: clear it too.
                        let debris = map[at..].iter().filter(|&&b| b != 0).count();
                        if debris > 0 {
                            cut = Some(Cut {
                                segment: path.clone(),
                                offset: at,
                                bytes: debris,
                                reason: "bytes after the end of the data".into(),
                            });
                            map[at..].fill(0);
                        }
                        break;
                    }
                    Slot::Invalid(reason) => {
                        let bytes = map[at..].iter().filter(|&&b| b != 0).count();
                        map[at..].fill(0);
                        cut = Some(Cut {
                            segment: path.clone(),
                            offset: at,
                            bytes,
                            reason,
                        });
                        break;
                    }
                }
            }
            if let Some(c) = &cut {
                map.flush().map_err(LogError::io("sync", &path))?;
                warn!(
                    segment = %c.segment.display(),
                    offset = c.offset,
                    bytes = c.bytes,
                    last_good_seq = seq - 1,
                    "cut a torn or corrupt tail from the event log ({}); records before it are intact",
                    c.reason
                );
            }
            writer.next_seq = seq;
            writer.synced_seq = seq - 1;
            writer.segment = Some(Segment {
                path,
                _file: file,
                map,
                offset: at,
                dirty_from: at,
            });
            break;
        }
        let recovery = Recovery {
            segments: found.len(),
            next_seq: writer.next_seq,
            cut,
        };
        info!(
            dir = %dir.display(),
            segments = recovery.segments,
            next_seq = recovery.next_seq,
            "event log open"
        );
        Ok((writer, recovery))
    }

    /// The sequence the next append gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The last sequence known to be on disk.
    pub fn synced_seq(&self) -> u64 {
        self.synced_seq
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
        let path = self.dir.join(segment_name(self.next_seq));
        let tmp = path.with_extension("vlog.new");
        let size = self.options.segment_size;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
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
            let header = Header::decode(&read_prefix(path, HEADER_LEN)?).map_err(|_| {
                LogError::BadSegment {
                    path: path.clone(),
                    problem: "bad header".into(),
                }
            })?;
            sealed.push(header.created_unix_ns);
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

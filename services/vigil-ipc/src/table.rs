//! The sensor table: the live state of every sensor and of the system, in
//! one shared-memory region that any number of processes map.
//!
//! # Layout (format version 1)
//! All integers are native-endian `u64` words accessed atomically; offsets
//! are in bytes from the start of the region, which is page-aligned.
//!
//! | offset | size | what |
//! |---|---|---|
//! | 0 | 128 | header: magic `VIGILTBL`, format version and slot count, generation, creation time, hub pid; the writer semaphore (`sem_t`, pshared) at byte 64 |
//! | 128 | 128 | the system slot (armed mode, alarm state), written by the hub |
//! | 256 + 128·k | 128 | sensor slot k, written by sensord |
//!
//! A slot is 16 words: `seq` (the seqlock sequence: odd while a write is in
//! progress), then the payload (state and flags, change counter, wall-clock
//! and monotonic time of the last change, the W3C trace context of the
//! change), then static words set at creation (kind, name).
//!
//! # Concurrency
//! - Readers never block and never write: they retry a slot while its `seq`
//!   is odd or changed under them, and give up with [`TableError::Torn`]
//!   after [`READ_GIVE_UP`] (only a writer that died mid-write holds a slot
//!   that long).
//! - Writers, in any process, first take the process-shared semaphore in the
//!   header, so each slot has one writer at a time and `generation` counts
//!   every write. A writer that dies holding it is repaired by the hub
//!   ([`SensorTable::repair_after_writer_death`]).
//!
//! # The region cannot change size
//! The region is a memfd the hub creates with `MFD_ALLOW_SEALING`, sizes,
//! and seals with `F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL` before anyone
//! else has it. Every process that holds it (sensord, readers, anyone who
//! reopens `/proc/<hub>/fd/N`) must be able to write it, so it cannot be
//! sealed against writes; but no holder can truncate it, which would kill
//! every process mapping it with SIGBUS at its next access. A table handed
//! over by another process is mapped only after [`SensorTable::from_fd`]
//! has checked those seals and that its size is exactly what its header
//! says. (ipc-channel's own shared memory is created without
//! `MFD_ALLOW_SEALING`, so it can never be sealed: the descriptor travels
//! with `SCM_RIGHTS`, see [`crate::fdpass`].)

use std::fmt;
use std::fs::File;
use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering, fence};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, SealFlag, fcntl};
use nix::sys::memfd::{MFdFlags, memfd_create};
use vigil_domain::{AlarmState, ArmedMode, SensorKind, SensorState, TraceContext};

use crate::clock::{monotonic_ns, unix_ns};

/// The layout version. Bump it on any change to the layout or the codes.
pub const FORMAT_VERSION: u32 = 1;
/// The most sensor slots a table holds.
pub const MAX_SLOTS: usize = vigil_domain::MAX_SENSORS;
/// How long a reader retries a slot that is mid-write before giving up.
pub const READ_GIVE_UP: Duration = Duration::from_millis(20);
/// How long a writer waits for the writer semaphore.
pub const WRITE_LOCK_TIMEOUT: Duration = Duration::from_millis(250);

const MAGIC: u64 = u64::from_ne_bytes(*b"VIGILTBL");
const HEADER_BYTES: usize = 128;
const SLOT_BYTES: usize = 128;
const SEMAPHORE_OFFSET: usize = 64;
const NAME_BYTES: usize = 32;

// Header words (byte offset / 8).
const H_MAGIC: usize = 0;
const H_VERSION_AND_COUNT: usize = 1;
const H_GENERATION: usize = 2;
const H_CREATED_UNIX_NS: usize = 3;
const H_HUB_PID: usize = 4;

// Slot words.
const S_SEQ: usize = 0;
/// First payload word; the payload is [`PAYLOAD_WORDS`] words long.
const S_PAYLOAD: usize = 1;
const PAYLOAD_WORDS: usize = 8;
const S_KIND: usize = 11;
const S_NAME: usize = 12;

// The semaphore must fit between its offset and the end of the header.
const _: () = assert!(std::mem::size_of::<libc::sem_t>() <= HEADER_BYTES - SEMAPHORE_OFFSET);
const _: () = assert!(S_NAME * 8 + NAME_BYTES == SLOT_BYTES);
const _: () = assert!(S_PAYLOAD + PAYLOAD_WORDS <= S_KIND);

/// The seals every table has: no holder can shrink or grow it, nor change
/// its seals.
const REQUIRED_SEALS: SealFlag = SealFlag::F_SEAL_SHRINK
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_SEAL);
/// Seals a table must not have: writers could not map it writable.
const WRITE_SEALS: SealFlag = SealFlag::F_SEAL_WRITE.union(SealFlag::F_SEAL_FUTURE_WRITE);
/// The memfd's name, as `/proc/<pid>/fd` shows it (`/memfd:vigil-sensor-table`).
pub const MEMFD_NAME: &str = "vigil-sensor-table";

const FLAG_FAULT: u64 = 1 << 8;
const FLAG_TAMPER: u64 = 1 << 9;
const FLAG_BYPASSED: u64 = 1 << 10;

/// What can go wrong with the table.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("the shared region is {len} bytes, too small for a sensor table")]
    TooSmall { len: usize },
    #[error("the shared region is not a Vigil sensor table (bad magic number)")]
    BadMagic,
    #[error(
        "the sensor table has format version {found}, but this program reads version {expected}; \
         run the same Vigil release for every service (restart them all after an upgrade)"
    )]
    FormatVersion { found: u32, expected: u32 },
    #[error("a table holds at most {MAX_SLOTS} sensors, {count} were asked for")]
    TooManySlots { count: usize },
    #[error("sensor name {name:?} is longer than {max} bytes", max = NAME_BYTES - 1)]
    NameTooLong { name: String },
    #[error("slot {slot} does not exist; the table has {count} sensor slots")]
    NoSuchSlot { slot: usize, count: usize },
    #[error(
        "slot {slot} stayed mid-write for {READ_GIVE_UP:?}; its writer probably died \
         (the hub repairs the table when the writer reconnects)"
    )]
    Torn { slot: usize },
    #[error(
        "waited {WRITE_LOCK_TIMEOUT:?} for the table's writer lock; a writer probably died \
         holding it (the hub repairs the table when the writer reconnects)"
    )]
    WriterLockTimeout,
    #[error("slot {slot} holds a code this release does not know ({what} {code})")]
    UnknownCode {
        slot: usize,
        what: &'static str,
        code: u64,
    },
    #[error("the table's writer semaphore failed: {0}")]
    Semaphore(#[source] io::Error),
    /// The descriptor handed over is not a sealable memfd.
    #[error(
        "the sensor table handed over is not a sealable memfd (cannot read its seals: {0}); \
         refusing to map it. Run the same Vigil release for the hub and every service"
    )]
    NotSealable(#[source] io::Error),
    /// The memfd can still change size, or cannot be written.
    #[error(
        "the sensor table handed over has seals {found:#x}, but a table must be sealed against \
         shrinking, growing and new seals ({REQUIRED_SEALS:?}) and not against writes; refusing \
         to map it (any holder could truncate it and kill this process with SIGBUS). Run the \
         same Vigil release for the hub and every service"
    )]
    BadSeals { found: i32 },
    /// The memfd's size is not the one its header's slot count gives.
    #[error(
        "the sensor table handed over is {len} bytes, but its header's {count} slots take \
         {expected}; refusing to map it"
    )]
    WrongSize {
        len: u64,
        count: usize,
        expected: usize,
    },
    /// A system call on the table's memfd failed.
    #[error("cannot {what} the sensor table's memfd: {source}")]
    Memfd {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

/// The static description of a sensor slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotDescriptor {
    pub name: String,
    pub kind: SensorKind,
}

/// What a writer says about a sensor; the table adds counters and times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SensorUpdate {
    pub state: SensorState,
    pub fault: bool,
    pub tamper: bool,
    pub bypassed: bool,
    pub trace: TraceContext,
}

/// A consistent read of one sensor slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SensorReading {
    pub state: SensorState,
    pub fault: bool,
    pub tamper: bool,
    pub bypassed: bool,
    /// Writes to this slot since the table was created.
    pub change_count: u64,
    pub changed_unix_ns: u64,
    /// CLOCK_MONOTONIC of the write, comparable across processes.
    pub changed_mono_ns: u64,
    pub trace: TraceContext,
}

/// What the hub says about the system.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemUpdate {
    pub mode: ArmedMode,
    pub alarm: AlarmState,
    pub trace: TraceContext,
}

/// A consistent read of the system slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SystemReading {
    pub mode: ArmedMode,
    pub alarm: AlarmState,
    pub change_count: u64,
    pub changed_unix_ns: u64,
    pub changed_mono_ns: u64,
    pub trace: TraceContext,
}

/// What [`SensorTable::repair_after_writer_death`] found and fixed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Repair {
    /// The writer lock was held by nobody alive and has been released.
    pub broke_writer_lock: bool,
    /// Slots left mid-write (their data may be torn until rewritten).
    pub torn_slots: Vec<usize>,
}

/// A mapping of the sensor table. Cheap to share between threads; to hand
/// it to another process send [`SensorTable::fd`] (`SCM_RIGHTS`, see
/// [`crate::fdpass`]) and call [`SensorTable::from_fd`] there.
pub struct SensorTable {
    /// The sealed memfd, kept to hand the table to other processes.
    file: File,
    /// Start of the shared mapping of the whole memfd (page-aligned); never
    /// turned into a slice, because other processes write the region
    /// concurrently (all access is atomic through `base`). Unmapped on drop.
    base: NonNull<u8>,
    /// The mapping's length: the memfd's size, which its seals fix.
    len: usize,
    slot_count: usize,
}

// SAFETY: the region is only accessed through atomic word operations and the
// process-shared semaphore, both of which are safe to use from any thread;
// `base` stays valid until drop unmaps it, and the memfd cannot shrink
// under it (sealed, checked before mapping).
unsafe impl Send for SensorTable {}
// SAFETY: as for Send: every shared access is atomic or goes through sem_*.
unsafe impl Sync for SensorTable {}

impl fmt::Debug for SensorTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not derived: the raw pointer says nothing useful.
        f.debug_struct("SensorTable")
            .field("slot_count", &self.slot_count)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

fn region_len(slot_count: usize) -> usize {
    HEADER_BYTES + SLOT_BYTES * (slot_count + 1)
}

/// Byte offset of sensor slot `k`; the system slot is "slot -1".
fn sensor_slot_offset(k: usize) -> usize {
    HEADER_BYTES + SLOT_BYTES * (k + 1)
}

const SYSTEM_SLOT_OFFSET: usize = HEADER_BYTES;

impl SensorTable {
    /// Creates a table for `sensors` (slot k is `sensors[k]`), owned by the
    /// hub whose pid is `hub_pid`. Every sensor starts `Unknown`; the system
    /// starts disarmed and idle.
    pub fn create(sensors: &[SlotDescriptor], hub_pid: u32) -> Result<SensorTable, TableError> {
        if sensors.len() > MAX_SLOTS {
            return Err(TableError::TooManySlots {
                count: sensors.len(),
            });
        }
        if let Some(s) = sensors.iter().find(|s| s.name.len() >= NAME_BYTES) {
            return Err(TableError::NameTooLong {
                name: s.name.clone(),
            });
        }
        let len = region_len(sensors.len());
        let mut table = SensorTable::map(sealed_memfd(len)?, len)?;
        let sem = table.semaphore();
        // SAFETY: `sem` points into our own fresh mapping, inside the header,
        // suitably aligned (offset 64 of a page-aligned region) and large
        // enough (checked at compile time); nobody else has the region yet,
        // so nothing uses the semaphore before it is initialised.
        let rc = unsafe { libc::sem_init(sem, 1, 1) };
        if rc != 0 {
            return Err(TableError::Semaphore(io::Error::last_os_error()));
        }
        table.header(H_VERSION_AND_COUNT).store(
            u64::from(FORMAT_VERSION) | ((sensors.len() as u64) << 32),
            Ordering::Relaxed,
        );
        table
            .header(H_CREATED_UNIX_NS)
            .store(unix_ns(), Ordering::Relaxed);
        table
            .header(H_HUB_PID)
            .store(u64::from(hub_pid), Ordering::Relaxed);
        for (k, s) in sensors.iter().enumerate() {
            let at = sensor_slot_offset(k);
            table
                .word(at, S_KIND)
                .store(u64::from(s.kind.code()), Ordering::Relaxed);
            let mut name = [0u8; NAME_BYTES];
            name[..s.name.len()].copy_from_slice(s.name.as_bytes());
            for (i, chunk) in name.chunks_exact(8).enumerate() {
                let mut w = [0u8; 8];
                w.copy_from_slice(chunk);
                table
                    .word(at, S_NAME + i)
                    .store(u64::from_ne_bytes(w), Ordering::Relaxed);
            }
        }
        let system = pack_system(ArmedMode::Disarmed, AlarmState::Idle);
        table
            .word(SYSTEM_SLOT_OFFSET, S_PAYLOAD)
            .store(system, Ordering::Relaxed);
        // The magic goes last, with Release: a mapping that sees it sees a
        // complete header.
        table.header(H_MAGIC).store(MAGIC, Ordering::Release);
        table.slot_count = sensors.len();
        Ok(table)
    }

    /// Maps a table received from another process. Before anything is
    /// mapped, checks that the memfd is sealed against shrinking, growing
    /// and new seals (so no holder can truncate it under this mapping and
    /// kill this process with SIGBUS), and that its size is exactly the one
    /// its header's format version and slot count give.
    pub fn from_fd(fd: OwnedFd) -> Result<SensorTable, TableError> {
        let file = File::from(fd);
        let found = fcntl(&file, FcntlArg::F_GET_SEALS)
            .map_err(|e| TableError::NotSealable(io::Error::from(e)))?;
        let seals = SealFlag::from_bits_retain(found);
        if !seals.contains(REQUIRED_SEALS) || seals.intersects(WRITE_SEALS) {
            return Err(TableError::BadSeals { found });
        }
        let memfd = |what| move |source| TableError::Memfd { what, source };
        let len = file.metadata().map_err(memfd("stat"))?.len();
        let too_small = || TableError::TooSmall {
            len: usize::try_from(len).unwrap_or(usize::MAX),
        };
        if len < region_len(0) as u64 {
            return Err(too_small());
        }
        // The header is read without mapping anything: the size it implies
        // must be the memfd's before the memfd is mapped.
        let mut header = [0u8; 16];
        file.read_exact_at(&mut header, 0)
            .map_err(memfd("read the header of"))?;
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&header[i * 8..i * 8 + 8]);
            u64::from_ne_bytes(w)
        };
        if word(H_MAGIC) != MAGIC {
            return Err(TableError::BadMagic);
        }
        let version_and_count = word(H_VERSION_AND_COUNT);
        let version = (version_and_count & 0xffff_ffff) as u32;
        if version != FORMAT_VERSION {
            return Err(TableError::FormatVersion {
                found: version,
                expected: FORMAT_VERSION,
            });
        }
        let count = (version_and_count >> 32) as usize;
        if count > MAX_SLOTS {
            return Err(TableError::TooManySlots { count });
        }
        let expected = region_len(count);
        if len != expected as u64 {
            return Err(TableError::WrongSize {
                len,
                count,
                expected,
            });
        }
        let mut table = SensorTable::map(file, expected)?;
        // The slot count is the one checked against the size above; a
        // header rewritten since changes nothing this mapping reads.
        table.slot_count = count;
        Ok(table)
    }

    /// Maps `len` bytes of `file` shared, without checking its contents;
    /// `slot_count` is 0 until the caller has validated the header. The
    /// caller has made sure the memfd is `len` bytes and cannot shrink.
    fn map(file: File, len: usize) -> Result<SensorTable, TableError> {
        if len < region_len(0) {
            return Err(TableError::TooSmall { len });
        }
        // SAFETY: a fresh shared mapping chosen by the kernel (null hint),
        // of a descriptor we own for the whole call; it aliases no Rust
        // object. Every later access to it is atomic through `base`, and
        // drop unmaps exactly this range.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(TableError::Memfd {
                what: "map",
                source: io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(TableError::Memfd {
            what: "map",
            source: io::ErrorKind::InvalidData.into(),
        })?;
        Ok(SensorTable {
            file,
            base,
            len,
            slot_count: 0,
        })
    }

    fn len(&self) -> usize {
        self.len
    }

    /// The table's memfd, to hand to another process (with `SCM_RIGHTS`,
    /// [`crate::fdpass::send_fd`]), which maps it with
    /// [`SensorTable::from_fd`]. It is sealed: no holder can resize it.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// Word `index` of the 128-byte block at byte `offset`.
    fn word(&self, offset: usize, index: usize) -> &AtomicU64 {
        let at = offset + index * 8;
        debug_assert!(at + 8 <= self.len());
        // SAFETY: `at` is within the mapping (offsets come from the layout
        // and slot indices are checked against `slot_count`, which was
        // checked against the mapping's length) and 8-aligned (the mapping
        // is page-aligned and every offset is a multiple of 8). The memory
        // stays mapped until `self` is dropped, which outlives the returned
        // borrow of `self`, and cannot shrink (sealed). Every access to these words, in every process, is atomic.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(at).cast::<u64>()) }
    }

    fn header(&self, index: usize) -> &AtomicU64 {
        self.word(0, index)
    }

    fn semaphore(&self) -> *mut libc::sem_t {
        // SAFETY: SEMAPHORE_OFFSET plus the size of sem_t lies inside the
        // header (checked at compile time), which every valid mapping has.
        unsafe {
            self.base
                .as_ptr()
                .add(SEMAPHORE_OFFSET)
                .cast::<libc::sem_t>()
        }
    }

    /// Number of sensor slots.
    pub fn slot_count(&self) -> usize {
        self.slot_count
    }

    /// Counts every write to any slot since creation.
    pub fn generation(&self) -> u64 {
        self.header(H_GENERATION).load(Ordering::Acquire)
    }

    /// The pid of the hub that created the table.
    pub fn hub_pid(&self) -> u32 {
        self.header(H_HUB_PID).load(Ordering::Relaxed) as u32
    }

    /// When the table was created (ns since the Unix epoch).
    pub fn created_unix_ns(&self) -> u64 {
        self.header(H_CREATED_UNIX_NS).load(Ordering::Relaxed)
    }

    fn check_slot(&self, slot: usize) -> Result<usize, TableError> {
        if slot < self.slot_count {
            Ok(sensor_slot_offset(slot))
        } else {
            Err(TableError::NoSuchSlot {
                slot,
                count: self.slot_count,
            })
        }
    }

    /// The name and kind of slot `slot` (static since creation).
    pub fn descriptor(&self, slot: usize) -> Result<SlotDescriptor, TableError> {
        let at = self.check_slot(slot)?;
        let code = self.word(at, S_KIND).load(Ordering::Relaxed);
        let kind = u8::try_from(code)
            .ok()
            .and_then(SensorKind::from_code)
            .ok_or(TableError::UnknownCode {
                slot,
                what: "sensor kind",
                code,
            })?;
        let mut name = Vec::with_capacity(NAME_BYTES);
        for i in 0..NAME_BYTES / 8 {
            let w = self.word(at, S_NAME + i).load(Ordering::Relaxed);
            name.extend_from_slice(&w.to_ne_bytes());
        }
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        name.truncate(end);
        Ok(SlotDescriptor {
            name: String::from_utf8_lossy(&name).into_owned(),
            kind,
        })
    }

    /// Every slot's descriptor, in slot order.
    pub fn descriptors(&self) -> Result<Vec<SlotDescriptor>, TableError> {
        (0..self.slot_count).map(|k| self.descriptor(k)).collect()
    }

    /// Reads sensor slot `slot`. Never blocks.
    pub fn read_sensor(&self, slot: usize) -> Result<SensorReading, TableError> {
        let at = self.check_slot(slot)?;
        let w = self.read_payload(at, slot)?;
        let state_code = w[0] & 0xff;
        let state = u8::try_from(state_code)
            .ok()
            .and_then(SensorState::from_code)
            .ok_or(TableError::UnknownCode {
                slot,
                what: "sensor state",
                code: state_code,
            })?;
        Ok(SensorReading {
            state,
            fault: w[0] & FLAG_FAULT != 0,
            tamper: w[0] & FLAG_TAMPER != 0,
            bypassed: w[0] & FLAG_BYPASSED != 0,
            change_count: w[1],
            changed_unix_ns: w[2],
            changed_mono_ns: w[3],
            trace: unpack_trace(&w),
        })
    }

    /// The change counter of `slot` alone: one atomic load, for rescans that
    /// only need to know whether a slot moved.
    pub fn change_count(&self, slot: usize) -> Result<u64, TableError> {
        let at = self.check_slot(slot)?;
        Ok(self.word(at, S_PAYLOAD + 1).load(Ordering::Acquire))
    }

    /// Writes sensor slot `slot`; returns the slot's new change count.
    pub fn write_sensor(&self, slot: usize, update: &SensorUpdate) -> Result<u64, TableError> {
        let at = self.check_slot(slot)?;
        let first = pack_sensor(update);
        let _lock = self.lock_writer()?;
        Ok(self.write_payload_locked(at, first, update.trace))
    }

    /// Like [`SensorTable::write_sensor`], but never waits for the writer
    /// lock: `Ok(None)` if another writer holds it right now. For a writer
    /// that keeps the update and retries later instead of blocking its
    /// event loop behind a held (or abandoned) lock.
    pub fn try_write_sensor(
        &self,
        slot: usize,
        update: &SensorUpdate,
    ) -> Result<Option<u64>, TableError> {
        let at = self.check_slot(slot)?;
        let first = pack_sensor(update);
        let Some(_lock) = self.try_lock_writer()? else {
            return Ok(None);
        };
        Ok(Some(self.write_payload_locked(at, first, update.trace)))
    }

    /// Reads the system slot. Never blocks.
    pub fn read_system(&self) -> Result<SystemReading, TableError> {
        let w = self.read_payload(SYSTEM_SLOT_OFFSET, usize::MAX)?;
        let bad = |what, code| TableError::UnknownCode {
            slot: usize::MAX,
            what,
            code,
        };
        let mode_code = w[0] & 0xff;
        let alarm_code = (w[0] >> 8) & 0xff;
        let mode = ArmedMode::from_code(mode_code as u8).ok_or(bad("armed mode", mode_code))?;
        let alarm =
            AlarmState::from_code(alarm_code as u8).ok_or(bad("alarm state", alarm_code))?;
        Ok(SystemReading {
            mode,
            alarm,
            change_count: w[1],
            changed_unix_ns: w[2],
            changed_mono_ns: w[3],
            trace: unpack_trace(&w),
        })
    }

    /// Writes the system slot (the hub's job); returns its new change count.
    pub fn write_system(&self, update: &SystemUpdate) -> Result<u64, TableError> {
        let _lock = self.lock_writer()?;
        Ok(self.write_payload_locked(
            SYSTEM_SLOT_OFFSET,
            pack_system(update.mode, update.alarm),
            update.trace,
        ))
    }

    /// The seqlock read of the payload of the slot at `at`.
    fn read_payload(&self, at: usize, slot: usize) -> Result<[u64; PAYLOAD_WORDS], TableError> {
        let seq = self.word(at, S_SEQ);
        let mut started: Option<Instant> = None;
        let mut spins = 0u32;
        loop {
            let before = seq.load(Ordering::Acquire);
            if before & 1 == 0 {
                let mut w = [0u64; PAYLOAD_WORDS];
                for (i, v) in w.iter_mut().enumerate() {
                    *v = self.word(at, S_PAYLOAD + i).load(Ordering::Relaxed);
                }
                // Orders the payload loads before the second load of seq.
                fence(Ordering::Acquire);
                if seq.load(Ordering::Relaxed) == before {
                    return Ok(w);
                }
            }
            // A write is in progress (a few tens of ns) or the writer was
            // preempted; spin briefly, then yield, never wait on a lock.
            spins += 1;
            if spins < 128 {
                std::hint::spin_loop();
            } else {
                let since = *started.get_or_insert_with(Instant::now);
                if since.elapsed() > READ_GIVE_UP {
                    return Err(TableError::Torn { slot });
                }
                std::thread::yield_now();
            }
        }
    }

    /// The seqlock write; the caller holds the writer semaphore.
    fn write_payload_locked(&self, at: usize, first: u64, trace: TraceContext) -> u64 {
        let seq = self.word(at, S_SEQ);
        // Odd for the write. A sequence already odd here, under the lock, is
        // what a writer that died mid-write left: this write completes it,
        // so the slot ends even instead of every later write flipping it.
        let odd = seq.load(Ordering::Relaxed) | 1;
        seq.store(odd, Ordering::Relaxed);
        // Orders the odd seq before the payload stores for any reader that
        // sees one of them.
        fence(Ordering::Release);
        let count = self.word(at, S_PAYLOAD + 1).load(Ordering::Relaxed) + 1;
        let (t0, t1, span, flags) = pack_trace(trace);
        let payload = [first, count, unix_ns(), monotonic_ns(), t0, t1, span, flags];
        for (i, v) in payload.into_iter().enumerate() {
            self.word(at, S_PAYLOAD + i).store(v, Ordering::Relaxed);
        }
        seq.store(odd.wrapping_add(1), Ordering::Release);
        self.header(H_GENERATION).fetch_add(1, Ordering::AcqRel);
        count
    }

    /// Takes the writer lock only if it is free now.
    fn try_lock_writer(&self) -> Result<Option<WriterLock<'_>>, TableError> {
        let sem = self.semaphore();
        loop {
            // SAFETY: `sem` is the initialised process-shared semaphore in
            // this valid mapping (create() initialised it before the magic
            // was published; from_fd() checked the magic).
            if unsafe { libc::sem_trywait(sem) } == 0 {
                return Ok(Some(WriterLock {
                    sem,
                    _table: PhantomData,
                }));
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) => return Ok(None),
                _ => return Err(TableError::Semaphore(err)),
            }
        }
    }

    /// Holds the writer lock until the guard is dropped, as a writer that
    /// is stuck (or died) holding it would. Only for tests of what the
    /// other writers and the hub do then; writers use the write methods.
    #[doc(hidden)]
    pub fn hold_writer_lock_for_test(&self) -> Result<WriterLock<'_>, TableError> {
        self.lock_writer()
    }

    /// Leaves sensor slot `slot` as a writer that died mid-write would: its
    /// sequence odd, the lock given back (as the hub's session repair does).
    /// Only for tests of torn-slot repair.
    #[doc(hidden)]
    pub fn abandon_write_for_test(&self, slot: usize) -> Result<(), TableError> {
        let at = self.check_slot(slot)?;
        let _lock = self.lock_writer()?;
        let seq = self.word(at, S_SEQ);
        let s = seq.load(Ordering::Relaxed);
        if s & 1 == 0 {
            seq.store(s.wrapping_add(1), Ordering::Release);
        }
        Ok(())
    }

    /// Repairs sensor slot `slot` if it is still mid-write (its sequence
    /// odd) once the writer lock is ours: every live writer finishes its
    /// write before it gives the lock back, so an odd slot then can only be
    /// the leftover of a writer that died mid-write. The sequence is made
    /// even again, and the generation moves so that every reader rescans.
    /// Returns whether the slot needed it. The payload may mix the dead
    /// write with the one before until the writer rewrites the slot (sensord
    /// rewrites every slot when it rejoins).
    pub fn repair_torn_slot(&self, slot: usize) -> Result<bool, TableError> {
        let at = self.check_slot(slot)?;
        let _lock = self.lock_writer()?;
        let seq = self.word(at, S_SEQ);
        let s = seq.load(Ordering::Relaxed);
        if s & 1 == 0 {
            return Ok(false);
        }
        // A change count bump tells watchers the slot moved, so they read it
        // again instead of keeping the value they had before the tear.
        let count = self.word(at, S_PAYLOAD + 1);
        count.store(count.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        seq.store(s.wrapping_add(1), Ordering::Release);
        self.header(H_GENERATION).fetch_add(1, Ordering::AcqRel);
        Ok(true)
    }

    fn lock_writer(&self) -> Result<WriterLock<'_>, TableError> {
        let sem = self.semaphore();
        // SAFETY: `sem` is the initialised process-shared semaphore in this
        // valid mapping (create() initialised it before the magic was
        // published; from_fd() checked the magic).
        if unsafe { libc::sem_trywait(sem) } == 0 {
            return Ok(WriterLock {
                sem,
                _table: PhantomData,
            });
        }
        let deadline = realtime_after(WRITE_LOCK_TIMEOUT);
        loop {
            // SAFETY: as above; `deadline` is a valid timespec.
            if unsafe { libc::sem_timedwait(sem, &deadline) } == 0 {
                return Ok(WriterLock {
                    sem,
                    _table: PhantomData,
                });
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::ETIMEDOUT) => return Err(TableError::WriterLockTimeout),
                _ => return Err(TableError::Semaphore(err)),
            }
        }
    }

    /// Repairs what a writer that died mid-write left: a held writer lock
    /// and slots with an odd sequence. Only the hub calls this, and only
    /// after the writer's session has ended (its process is gone), so no
    /// live writer can be holding the lock for longer than a write.
    pub fn repair_after_writer_death(&self) -> Result<Repair, TableError> {
        let mut repair = Repair::default();
        let lock = match self.lock_writer() {
            Ok(lock) => lock,
            Err(TableError::WriterLockTimeout) => {
                // Held past any live write: its holder is dead. Adopt it.
                repair.broke_writer_lock = true;
                WriterLock {
                    sem: self.semaphore(),
                    _table: PhantomData,
                }
            }
            Err(e) => return Err(e),
        };
        for slot in 0..self.slot_count {
            let seq = self.word(sensor_slot_offset(slot), S_SEQ);
            let s = seq.load(Ordering::Relaxed);
            if s & 1 == 1 {
                seq.store(s.wrapping_add(1), Ordering::Release);
                repair.torn_slots.push(slot);
            }
        }
        drop(lock);
        Ok(repair)
    }
}

impl Drop for SensorTable {
    fn drop(&mut self) {
        // SAFETY: `base` and `len` are exactly the range map() mapped, and
        // no borrow of it outlives `self` (every word borrow is tied to
        // `&self`, every WriterLock to the table's lifetime).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A new memfd of `len` zero bytes, sealed so that nobody can shrink or
/// grow it or change its seals: the only kind of region a table lives in.
fn sealed_memfd(len: usize) -> Result<File, TableError> {
    let file = new_memfd(len)?;
    fcntl(&file, FcntlArg::F_ADD_SEALS(REQUIRED_SEALS)).map_err(|e| TableError::Memfd {
        what: "seal",
        source: e.into(),
    })?;
    Ok(file)
}

/// A new memfd of `len` zero bytes that can be sealed, not sealed yet.
fn new_memfd(len: usize) -> Result<File, TableError> {
    let fd = memfd_create(
        MEMFD_NAME,
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(|e| TableError::Memfd {
        what: "create",
        source: e.into(),
    })?;
    let file = File::from(fd);
    file.set_len(len as u64)
        .map_err(|source| TableError::Memfd {
            what: "size",
            source,
        })?;
    Ok(file)
}

/// A memfd holding `bytes`, sealed as the hub seals a table when `sealed`,
/// else not sealed at all: for tests and fuzzing of
/// [`SensorTable::from_fd`], which must refuse anything the hub would not
/// have made.
#[doc(hidden)]
pub fn memfd_for_test(bytes: &[u8], sealed: bool) -> Result<OwnedFd, TableError> {
    let file = new_memfd(bytes.len())?;
    file.write_all_at(bytes, 0)
        .map_err(|source| TableError::Memfd {
            what: "write",
            source,
        })?;
    if sealed {
        fcntl(&file, FcntlArg::F_ADD_SEALS(REQUIRED_SEALS)).map_err(|e| TableError::Memfd {
            what: "seal",
            source: e.into(),
        })?;
    }
    Ok(OwnedFd::from(file))
}

/// The writer semaphore, held; released on drop.
#[derive(Debug)]
pub struct WriterLock<'a> {
    sem: *mut libc::sem_t,
    _table: PhantomData<&'a SensorTable>,
}

impl Drop for WriterLock<'_> {
    fn drop(&mut self) {
        // SAFETY: we hold one count of this initialised semaphore, which
        // lives as long as the table borrowed for 'a.
        unsafe { libc::sem_post(self.sem) };
    }
}

fn realtime_after(d: Duration) -> libc::timespec {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec; CLOCK_REALTIME exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut now) };
    let nanos = now.tv_nsec as u64 + u64::from(d.subsec_nanos());
    libc::timespec {
        tv_sec: now.tv_sec + d.as_secs() as libc::time_t + (nanos / 1_000_000_000) as libc::time_t,
        tv_nsec: (nanos % 1_000_000_000) as _,
    }
}

fn pack_sensor(update: &SensorUpdate) -> u64 {
    let mut first = u64::from(update.state.code());
    for (on, flag) in [
        (update.fault, FLAG_FAULT),
        (update.tamper, FLAG_TAMPER),
        (update.bypassed, FLAG_BYPASSED),
    ] {
        if on {
            first |= flag;
        }
    }
    first
}

fn pack_system(mode: ArmedMode, alarm: AlarmState) -> u64 {
    u64::from(mode.code()) | (u64::from(alarm.code()) << 8)
}

fn pack_trace(t: TraceContext) -> (u64, u64, u64, u64) {
    let mut hi = [0u8; 8];
    let mut lo = [0u8; 8];
    hi.copy_from_slice(&t.trace_id[..8]);
    lo.copy_from_slice(&t.trace_id[8..]);
    (
        u64::from_be_bytes(hi),
        u64::from_be_bytes(lo),
        u64::from_be_bytes(t.span_id),
        u64::from(t.flags),
    )
}

fn unpack_trace(w: &[u64; PAYLOAD_WORDS]) -> TraceContext {
    let mut trace_id = [0u8; 16];
    trace_id[..8].copy_from_slice(&w[4].to_be_bytes());
    trace_id[8..].copy_from_slice(&w[5].to_be_bytes());
    TraceContext {
        trace_id,
        span_id: w[6].to_be_bytes(),
        flags: (w[7] & 0xff) as u8,
    }
}

#[cfg(test)]
mod tests;

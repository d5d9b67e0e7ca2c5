//! The alarm's state on disk (`<state_dir>/alarm-state.json`), so a hub
//! killed at any moment comes back exactly where it was: the mode, a
//! running delay or siren with its deadline, bypasses, the keypad lockout,
//! and the event sequence number.
//!
//! A full disk never loses it: the state has two files whose space is
//! reserved once, at the first start (`alarm-state.json` and its spare,
//! `alarm-state.json.spare`, 64 KiB each). A save writes the new state into
//! the spare's reserved blocks (JSON padded with spaces to the file's
//! size, so nothing is allocated), fsyncs it, and exchanges the two names
//! in one step (`renameat2(RENAME_EXCHANGE)`), then fsyncs the directory:
//! a crash leaves the old file or the new one, never a torn one, and the
//! old one becomes the next spare. A first start without room for both
//! stops with [`PersistError::NoSpace`], naming the directory. Sensors are
//! stored by name, so a config that reorders them does not scramble state.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;
use vigil_alarm::users::Lockout;
use vigil_alarm::{AlarmSetup, AlarmState, Phase, TriggerCause};
use vigil_domain::ArmedMode;

/// The file's format version.
const VERSION: u32 = 1;

/// The space each of the two state files keeps (the state itself is a few
/// hundred bytes; a house of many sensors, a few KiB). A larger state
/// grows its file at the save that needs it.
pub const RESERVED: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error(transparent)]
    Io(#[from] crate::files::FileError),
    #[error(
        "{path} is not a valid alarm state ({message}); move it away to start disarmed, \
         after checking the premises"
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "the state directory {} is full: the hub reserves {} KiB there for the alarm state \
         (two copies, so that a full disk can never lose an armed system) and cannot start \
         without it; free space on the file system that holds {} (old camera clips in {}, \
         files that are not Vigil's) and start the hub again",
        dir.display(),
        needed / 1024,
        dir.display(),
        dir.join("clips").display()
    )]
    NoSpace { dir: PathBuf, needed: u64 },
}

/// What is restored at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub alarm: AlarmState,
    pub lockout: Lockout,
    /// The lockout counters of each source (a client, the FIFO).
    pub source_lockouts: BTreeMap<String, Lockout>,
    pub event_seq: u64,
}

// The wire shape of the file.
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    phase: PhaseFile,
    bypassed: Vec<String>,
    waiting_to_close: Vec<String>,
    knocks: BTreeMap<String, (String, u64)>,
    lockout_failures: u32,
    locked_until_unix_ms: Option<u64>,
    /// Per source: (failures, locked until). Absent in files written
    /// before sources were counted.
    #[serde(default)]
    source_lockouts: BTreeMap<String, (u32, Option<u64>)>,
    event_seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
enum PhaseFile {
    Disarmed,
    Arming {
        mode: String,
        until: u64,
    },
    Armed {
        mode: String,
    },
    Pending {
        mode: String,
        until: u64,
        sensor: String,
    },
    Triggered {
        mode: String,
        until: u64,
        cause: String,
        sensor: Option<String>,
    },
}

/// The state file in `state_dir`, and its spare.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    spare: PathBuf,
    /// Whether the spare's reservation failed (warned once).
    unreserved: std::cell::Cell<bool>,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PersistError {
    let on = crate::files::FileError::on(what, path);
    move |source| PersistError::Io(on(source))
}

fn is_no_space(e: &PersistError) -> bool {
    matches!(e, PersistError::Io(f) if vigil_eventlog::is_no_space(&f.source))
}

/// Allocates `size` bytes of `file` (a no-op where they are allocated).
fn allocate(file: &std::fs::File, size: u64) -> std::io::Result<()> {
    nix::fcntl::posix_fallocate(file, 0, size as i64).map_err(std::io::Error::from)
}

/// Swaps the names `a` and `b` in one step; `Ok(false)` where that cannot
/// be done (`b` missing, or a file system without it): the caller renames.
fn exchange(a: &Path, b: &Path) -> std::io::Result<bool> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use nix::errno::Errno;
        use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
        match renameat2(AT_FDCWD, a, AT_FDCWD, b, RenameFlags::RENAME_EXCHANGE) {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT | Errno::EINVAL | Errno::ENOSYS) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

impl StateStore {
    pub fn new(state_dir: &Path) -> StateStore {
        StateStore {
            path: state_dir.join("alarm-state.json"),
            spare: state_dir.join("alarm-state.json.spare"),
            unreserved: std::cell::Cell::new(false),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The spare the next save writes into.
    pub fn spare(&self) -> &Path {
        &self.spare
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Reads the state. A missing file is a fresh, disarmed system: the
    /// two files are made then, their space reserved, and a disk without
    /// room for them is [`PersistError::NoSpace`].
    pub fn load(&self, setup: &AlarmSetup) -> Result<Restored, PersistError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.make(setup)?;
                return Ok(Restored::default());
            }
            Err(e) => return Err(io("read", &self.path)(e)),
        };
        let corrupt = |message: String| PersistError::Corrupt {
            path: self.path.clone(),
            message,
        };
        let file: StateFile = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        if file.version != VERSION {
            return Err(corrupt(format!("format version {}", file.version)));
        }
        let restored = from_file(file, setup).map_err(corrupt)?;
        self.reserve_spare();
        Ok(restored)
    }

    /// A first start: the disarmed state saved, and a spare reserved;
    /// neither is left behind if the disk has no room for both.
    fn make(&self, setup: &AlarmSetup) -> Result<(), PersistError> {
        let made = self
            .write_and_swap(setup, &Restored::default())
            .and_then(|_| self.reserve(&self.spare));
        match made {
            Ok(()) => Ok(()),
            Err(e) => {
                let _ = std::fs::remove_file(&self.path);
                let _ = std::fs::remove_file(&self.spare);
                if is_no_space(&e) {
                    Err(PersistError::NoSpace {
                        dir: self.dir().to_owned(),
                        needed: 2 * RESERVED,
                    })
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Makes sure `path` has [`RESERVED`] bytes allocated (its content is
    /// never read: it is the spare).
    fn reserve(&self, path: &Path) -> Result<(), PersistError> {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("create", path))?;
        allocate(&file, RESERVED).map_err(io("reserve space for", path))?;
        file.sync_all().map_err(io("sync", path))
    }

    /// [`StateStore::reserve`] for the spare, where a failure is not fatal
    /// (an existing installation on a full disk must still start): warned
    /// once, and the next save tries again.
    fn reserve_spare(&self) {
        match self.reserve(&self.spare) {
            Ok(()) => self.unreserved.set(false),
            Err(e) if !self.unreserved.get() => {
                warn!(
                    "cannot reserve the alarm state's spare: {e}; on a full disk, a change of \
                     the alarm state could not be saved"
                );
                self.unreserved.set(true);
            }
            Err(_) => {}
        }
    }

    /// Writes `state` into the spare's reserved space, then swaps it with
    /// the state file: nothing is allocated unless the state outgrew the
    /// reservation.
    pub fn save(&self, setup: &AlarmSetup, state: &Restored) -> Result<(), PersistError> {
        if !self.write_and_swap(setup, state)? {
            // The old state went with a rename: a new spare.
            self.reserve_spare();
        }
        Ok(())
    }

    /// The save itself; whether the names were exchanged (else renamed:
    /// no spare is left).
    fn write_and_swap(&self, setup: &AlarmSetup, state: &Restored) -> Result<bool, PersistError> {
        let file = to_file(setup, state);
        let mut text = serde_json::to_vec_pretty(&file).map_err(|e| PersistError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        text.push(b'\n');
        let spare = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.spare)
            .map_err(io("open", &self.spare))?;
        let len = spare.metadata().map_err(io("stat", &self.spare))?.len();
        let size = len
            .max(RESERVED)
            .max((text.len() as u64).div_ceil(4096) * 4096);
        allocate(&spare, size).map_err(io("reserve space for", &self.spare))?;
        // JSON allows trailing white space: the padding overwrites whatever
        // the spare held, within its own blocks.
        text.resize(size as usize, b' ');
        spare
            .write_all_at(&text, 0)
            .and_then(|()| spare.sync_all())
            .map_err(io("write", &self.spare))?;
        drop(spare);
        let exchanged = exchange(&self.spare, &self.path).map_err(io("swap in", &self.path))?;
        if !exchanged {
            std::fs::rename(&self.spare, &self.path).map_err(io("rename into", &self.path))?;
        }
        std::fs::File::open(self.dir())
            .and_then(|d| d.sync_all())
            .map_err(io("sync", self.dir()))?;
        Ok(exchanged)
    }
}

/// The state in the file's shape: sensors by name.
fn to_file(setup: &AlarmSetup, state: &Restored) -> StateFile {
    let name = |slot: usize| {
        setup
            .sensors
            .get(slot)
            .map_or_else(|| format!("slot-{slot}"), |s| s.name.clone())
    };
    let phase = match &state.alarm.phase {
        Phase::Disarmed => PhaseFile::Disarmed,
        Phase::Arming { mode, until } => PhaseFile::Arming {
            mode: mode.as_str().into(),
            until: *until,
        },
        Phase::Armed { mode } => PhaseFile::Armed {
            mode: mode.as_str().into(),
        },
        Phase::Pending { mode, until, slot } => PhaseFile::Pending {
            mode: mode.as_str().into(),
            until: *until,
            sensor: name(*slot),
        },
        Phase::Triggered { mode, until, cause } => {
            let (cause, sensor) = match cause {
                TriggerCause::Panic => ("panic", None),
                TriggerCause::Zone(s) => ("zone", Some(*s)),
                TriggerCause::Tamper(s) => ("tamper", Some(*s)),
                TriggerCause::Fault(s) => ("fault", Some(*s)),
                TriggerCause::Sensor(s) => ("sensor", Some(*s)),
            };
            PhaseFile::Triggered {
                mode: mode.as_str().into(),
                until: *until,
                cause: cause.into(),
                sensor: sensor.map(name),
            }
        }
    };
    StateFile {
        version: VERSION,
        phase,
        bypassed: state.alarm.bypassed.iter().map(|&s| name(s)).collect(),
        waiting_to_close: state
            .alarm
            .waiting_to_close
            .iter()
            .map(|&s| name(s))
            .collect(),
        knocks: state
            .alarm
            .knocks
            .iter()
            .map(|(g, (s, at))| (g.clone(), (name(*s), *at)))
            .collect(),
        lockout_failures: state.lockout.failures,
        locked_until_unix_ms: state.lockout.locked_until,
        source_lockouts: state
            .source_lockouts
            .iter()
            .map(|(source, l)| (source.clone(), (l.failures, l.locked_until)))
            .collect(),
        event_seq: state.event_seq,
    }
}

/// The state of a file, for `setup`: sensors found by name (one the setup
/// no longer has is dropped, or stood in for on the safe side).
fn from_file(file: StateFile, setup: &AlarmSetup) -> Result<Restored, String> {
    let slot = |name: &str| setup.sensors.iter().position(|s| s.name == name);
    let mode = |m: &str| ArmedMode::parse(m).ok_or_else(|| format!("unknown mode {m:?}"));
    let phase = match file.phase {
        PhaseFile::Disarmed => Phase::Disarmed,
        PhaseFile::Arming { mode: m, until } => Phase::Arming {
            mode: mode(&m)?,
            until,
        },
        PhaseFile::Armed { mode: m } => Phase::Armed { mode: mode(&m)? },
        PhaseFile::Pending {
            mode: m,
            until,
            sensor,
        } => match slot(&sensor) {
            Some(slot) => Phase::Pending {
                mode: mode(&m)?,
                until,
                slot,
            },
            // The sensor left the config: keep the delay running on
            // the safe side by triggering when it ends (slot 0 stands in).
            None => Phase::Pending {
                mode: mode(&m)?,
                until,
                slot: 0,
            },
        },
        PhaseFile::Triggered {
            mode: m,
            until,
            cause,
            sensor,
        } => {
            let s = sensor.as_deref().and_then(slot).unwrap_or(0);
            let cause = match cause.as_str() {
                "panic" => TriggerCause::Panic,
                "zone" => TriggerCause::Zone(s),
                "tamper" => TriggerCause::Tamper(s),
                "fault" => TriggerCause::Fault(s),
                _ => TriggerCause::Sensor(s),
            };
            Phase::Triggered {
                mode: mode(&m)?,
                until,
                cause,
            }
        }
    };
    let slots =
        |names: &[String]| -> BTreeSet<usize> { names.iter().filter_map(|n| slot(n)).collect() };
    Ok(Restored {
        alarm: AlarmState {
            phase,
            bypassed: slots(&file.bypassed),
            waiting_to_close: slots(&file.waiting_to_close),
            knocks: file
                .knocks
                .into_iter()
                .filter_map(|(g, (n, at))| Some((g, (slot(&n)?, at))))
                .collect(),
        },
        lockout: Lockout {
            failures: file.lockout_failures,
            locked_until: file.locked_until_unix_ms,
        },
        source_lockouts: file
            .source_lockouts
            .into_iter()
            .map(|(source, (failures, locked_until))| {
                (
                    source,
                    Lockout {
                        failures,
                        locked_until,
                    },
                )
            })
            .collect(),
        event_seq: file.event_seq,
    })
}

/// Carries `state` from one setup to another in memory, sensors matched by
/// name exactly as a save and a load would (a config reload).
pub fn carry_over(state: &Restored, from: &AlarmSetup, to: &AlarmSetup) -> Restored {
    match from_file(to_file(from, state), to) {
        Ok(carried) => carried,
        // Cannot happen: every mode written by `to_file` reads back.
        Err(_) => Restored {
            lockout: state.lockout,
            source_lockouts: state.source_lockouts.clone(),
            event_seq: state.event_seq,
            ..Restored::default()
        },
    }
}

#[cfg(test)]
mod tests {
    use vigil_config::Config;

    use super::*;

    /// Eight doors, slots 0 to 7: the states below name slots up to 6.
    fn setup() -> AlarmSetup {
        let door = |i: u8| {
            format!(
                "[[sensors]]\nname = \"door-{i}\"\nkind = \"door\"\npin = {}\n",
                17 + i
            )
        };
        let sensors: String = (0..8).map(door).collect();
        let config = Config::parse(&sensors, "persist test").expect("the test's house");
        crate::alarm_setup(&config)
    }

    /// A fresh state directory, the test's house and its store.
    fn fresh() -> (tempfile::TempDir, AlarmSetup, StateStore) {
        let dir = tempfile::tempdir().expect("dir");
        let store = StateStore::new(dir.path());
        (dir, setup(), store)
    }

    #[test]
    fn every_phase_round_trips_by_sensor_name() {
        let (_dir, setup, store) = fresh();
        assert_eq!(store.load(&setup).expect("fresh"), Restored::default());
        let phases = [
            Phase::Arming {
                mode: ArmedMode::Away,
                until: 5,
            },
            Phase::Armed {
                mode: ArmedMode::Night,
            },
            Phase::Pending {
                mode: ArmedMode::Home,
                until: 9,
                slot: 1,
            },
            Phase::Triggered {
                mode: ArmedMode::Away,
                until: 99,
                cause: TriggerCause::Zone(6),
            },
            Phase::Triggered {
                mode: ArmedMode::Disarmed,
                until: 99,
                cause: TriggerCause::Panic,
            },
        ];
        for phase in phases {
            let state = Restored {
                alarm: AlarmState {
                    phase,
                    bypassed: [2].into(),
                    waiting_to_close: [1].into(),
                    knocks: [("hall".to_owned(), (3, 7))].into(),
                },
                lockout: Lockout {
                    failures: 3,
                    locked_until: Some(12),
                },
                source_lockouts: [(
                    "grpc:teen".to_owned(),
                    Lockout {
                        failures: 0,
                        locked_until: Some(99),
                    },
                )]
                .into(),
                event_seq: 42,
            };
            store.save(&setup, &state).expect("save");
            assert_eq!(store.load(&setup).expect("load"), state);
        }
    }

    /// Bytes the file system has allocated to `path`.
    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("stat").blocks() * 512
    }

    fn inode(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("stat").ino()
    }

    #[test]
    fn a_first_start_reserves_the_state_and_its_spare() {
        let dir = tempfile::tempdir().expect("dir");
        let store = StateStore::new(dir.path());
        assert_eq!(store.load(&setup()).expect("fresh"), Restored::default());
        for path in [store.path(), store.spare()] {
            assert!(allocated(path) >= RESERVED, "{}", path.display());
        }
        // The file is the disarmed state, padded: plain JSON to any reader.
        let text = std::fs::read_to_string(store.path()).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(value["phase"]["phase"], "disarmed");
        assert_eq!(text.len() as u64, RESERVED);
    }

    /// A save writes into the spare's reserved blocks and swaps the names:
    /// the files keep their sizes and blocks (nothing to allocate on a full
    /// disk), and the old state becomes the spare.
    #[test]
    fn a_save_swaps_the_reserved_files_and_allocates_nothing() {
        let (_dir, setup, store) = fresh();
        store.load(&setup).expect("fresh");
        let mut state = Restored::default();
        for (i, mode) in [ArmedMode::Away, ArmedMode::Night, ArmedMode::Home]
            .into_iter()
            .enumerate()
        {
            let (live, spare) = (inode(store.path()), inode(store.spare()));
            let blocks = allocated(store.path()) + allocated(store.spare());
            state.alarm.phase = Phase::Armed { mode };
            state.event_seq = i as u64;
            store.save(&setup, &state).expect("save");
            assert_eq!(inode(store.path()), spare, "the spare is the state now");
            assert_eq!(inode(store.spare()), live, "the old state is the spare");
            assert_eq!(allocated(store.path()) + allocated(store.spare()), blocks);
            assert_eq!(store.load(&setup).expect("load"), state);
        }
    }

    /// A state file written before the reservation (exact JSON, no spare)
    /// loads, and gets its spare.
    #[test]
    fn a_state_file_without_a_spare_loads_and_gets_one() {
        let (_dir, setup, store) = fresh();
        let state = Restored {
            alarm: AlarmState {
                phase: Phase::Armed {
                    mode: ArmedMode::Away,
                },
                ..AlarmState::default()
            },
            event_seq: 7,
            ..Restored::default()
        };
        let text = serde_json::to_vec_pretty(&to_file(&setup, &state)).expect("json");
        std::fs::write(store.path(), text).expect("write");
        assert_eq!(store.load(&setup).expect("load"), state);
        assert!(allocated(store.spare()) >= RESERVED);
        store.save(&setup, &state).expect("save");
        assert_eq!(store.load(&setup).expect("load"), state);
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let (_dir, setup, store) = fresh();
        std::fs::write(store.path(), "{ half").expect("write");
        let err = store.load(&setup).expect_err("corrupt");
        assert!(err.to_string().contains("move it away"), "{err}");
    }
}

//! The alarm's state on disk (`<state_dir>/alarm-state.json`), so a hub
//! killed at any moment comes back exactly where it was: the mode, a
//! running delay or siren with its deadline, bypasses, the keypad lockout,
//! and the event sequence number.
//!
//! Written with write-to-temporary, fsync, rename, fsync of the directory:
//! a crash leaves the old file or the new one, never a torn one. Sensors are
//! stored by name, so a config that reorders them does not scramble state.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_alarm::users::Lockout;
use vigil_alarm::{AlarmSetup, AlarmState, Phase, TriggerCause};
use vigil_domain::ArmedMode;

/// The file's format version.
const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid alarm state ({message}); move it away to start disarmed, \
         after checking the premises"
    )]
    Corrupt { path: PathBuf, message: String },
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

/// The state file in `state_dir`.
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PersistError {
    let path = path.to_owned();
    move |source| PersistError::Io { what, path, source }
}

impl StateStore {
    pub fn new(state_dir: &Path) -> StateStore {
        StateStore {
            path: state_dir.join("alarm-state.json"),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the state; a missing file is a fresh, disarmed system.
    pub fn load(&self, setup: &AlarmSetup) -> Result<Restored, PersistError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Restored::default()),
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
        from_file(file, setup).map_err(corrupt)
    }

    pub fn save(&self, setup: &AlarmSetup, state: &Restored) -> Result<(), PersistError> {
        let file = to_file(setup, state);
        let text = serde_json::to_vec_pretty(&file).map_err(|e| PersistError::Corrupt {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io("create", &tmp))?;
        f.write_all(&text)
            .and_then(|()| f.sync_all())
            .map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io("rename into", &self.path))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io("sync", dir))?;
        }
        Ok(())
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

    #[test]
    fn every_phase_round_trips_by_sensor_name() {
        let dir = tempfile::tempdir().expect("dir");
        let setup = setup();
        let store = StateStore::new(dir.path());
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

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("dir");
        let setup = setup();
        let store = StateStore::new(dir.path());
        std::fs::write(store.path(), "{ half").expect("write");
        let err = store.load(&setup).expect_err("corrupt");
        assert!(err.to_string().contains("move it away"), "{err}");
    }
}

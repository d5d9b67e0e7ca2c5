//! The state machine. Inputs are method calls with `now`; outputs are
//! [`AlarmEvent`]s to log, stream and alert on, plus the derived
//! [`Outputs`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use vigil_domain::{AlarmConfig, ModeTiming, Response};
use vigil_domain::{AlarmState as AlarmPhaseCode, ArmedMode, SensorKind};

/// Milliseconds since the Unix epoch.
pub type Millis = u64;

fn ms(d: Duration) -> Millis {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A sensor as the alarm sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmSensor {
    pub name: String,
    pub kind: SensorKind,
    pub modes: BTreeSet<ArmedMode>,
    pub response: Response,
    pub arm_after_close: bool,
    pub auto_bypass: bool,
    pub double_knock: Option<String>,
    pub trigger_on_fault: bool,
}

/// Everything the machine needs from the configuration; slot k is
/// `sensors[k]`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmSetup {
    pub sensors: Vec<AlarmSensor>,
    pub alarm: AlarmConfig,
}

impl AlarmSetup {
    fn timing(&self, mode: ArmedMode) -> ModeTiming {
        self.alarm
            .modes
            .get(&mode)
            .copied()
            .unwrap_or_else(|| ModeTiming::default_for(mode))
    }
}

/// What set the siren off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerCause {
    /// A sensor armed in the mode (after its entry delay, or at once).
    Sensor(usize),
    /// A 24-hour zone (panic, smoke, water, tamper).
    Zone(usize),
    /// A sensor's tamper flag.
    Tamper(usize),
    /// A sensor's fault, where the sensor is configured to trigger on it.
    Fault(usize),
    /// The panic command.
    Panic,
}

/// Where the alarm is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    Disarmed,
    /// Exit delay running.
    Arming {
        mode: ArmedMode,
        until: Millis,
    },
    Armed {
        mode: ArmedMode,
    },
    /// Entry delay running, started by `slot`.
    Pending {
        mode: ArmedMode,
        until: Millis,
        slot: usize,
    },
    /// Siren on until `until`; then back to `mode` (disarmed if it went off
    /// while disarmed).
    Triggered {
        mode: ArmedMode,
        until: Millis,
        cause: TriggerCause,
    },
}

impl Phase {
    /// The mode and the alarm state, as the shared table shows them.
    pub fn table_codes(&self) -> (ArmedMode, AlarmPhaseCode) {
        match self {
            Phase::Disarmed => (ArmedMode::Disarmed, AlarmPhaseCode::Idle),
            Phase::Arming { mode, .. } => (*mode, AlarmPhaseCode::Arming),
            Phase::Armed { mode } => (*mode, AlarmPhaseCode::Idle),
            Phase::Pending { mode, .. } => (*mode, AlarmPhaseCode::Pending),
            Phase::Triggered { mode, .. } => (*mode, AlarmPhaseCode::Triggered),
        }
    }

    /// The deadline of the running timer, if any.
    pub fn deadline(&self) -> Option<Millis> {
        match self {
            Phase::Arming { until, .. }
            | Phase::Pending { until, .. }
            | Phase::Triggered { until, .. } => Some(*until),
            Phase::Disarmed | Phase::Armed { .. } => None,
        }
    }
}

/// The part of the machine that must survive a restart of the hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlarmState {
    pub phase: Phase,
    /// Bypassed until the next disarm (manual, automatic or forced).
    pub bypassed: BTreeSet<usize>,
    /// Open at arming with arm-after-close: armed once they close.
    pub waiting_to_close: BTreeSet<usize>,
    /// Double-knock: the first activation per group, and when.
    pub knocks: BTreeMap<String, (usize, Millis)>,
}

impl Default for AlarmState {
    fn default() -> Self {
        AlarmState {
            phase: Phase::Disarmed,
            bypassed: BTreeSet::new(),
            waiting_to_close: BTreeSet::new(),
            knocks: BTreeMap::new(),
        }
    }
}

/// A sensor's live condition (from the sensor table).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub active: bool,
    pub fault: bool,
    pub tamper: bool,
}

/// Who did something, for the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Actor {
    /// The user whose code or credential was used.
    pub user: Option<String>,
    /// Where from: `grpc:<client>`, `fifo`, `sensor`, ...
    pub source: String,
}

impl Actor {
    pub fn system() -> Actor {
        Actor {
            user: None,
            source: "system".into(),
        }
    }
}

/// Something that happened, for the event stream, the log and alerts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlarmEvent {
    Arming {
        mode: ArmedMode,
        until: Millis,
        bypassed: Vec<usize>,
        by: Actor,
    },
    Armed {
        mode: ArmedMode,
        bypassed: Vec<usize>,
        by: Actor,
    },
    Disarmed {
        by: Actor,
    },
    /// A duress code was used: silent, for the alert path only.
    Duress {
        by: Actor,
    },
    EntryDelay {
        slot: usize,
        until: Millis,
    },
    Triggered {
        cause: TriggerCause,
        until: Millis,
    },
    /// The siren's time ran out.
    SirenTimedOut {
        back_to: ArmedMode,
    },
    Bypass {
        slot: usize,
        on: bool,
        by: Actor,
    },
    /// An arm-after-close sensor closed and is armed now.
    SensorArmed {
        slot: usize,
    },
    /// First sensor of a double-knock group: waiting for a second.
    Knock {
        slot: usize,
        group: String,
    },
    Fault {
        slot: usize,
    },
    FaultCleared {
        slot: usize,
    },
    Tamper {
        slot: usize,
    },
    Chime {
        slot: usize,
    },
}

/// Why arming was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    #[error("{0} is not an armed mode")]
    NotAnArmedMode(ArmedMode),
    #[error("already {0}; disarm first")]
    Busy(&'static str),
    /// Sensors armed in the mode are open.
    #[error("{} open; close them or arm with force to bypass them", .names.join(", "))]
    OpenSensors {
        slots: Vec<usize>,
        names: Vec<String>,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BypassError {
    #[error("no sensor in slot {0}")]
    NoSuchSensor(usize),
    #[error("{0} is a 24-hour zone and cannot be bypassed")]
    TwentyFourHour(String),
}

/// The outputs the phase asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    pub siren: bool,
    /// The entry/exit buzzer.
    pub buzzer: bool,
}

/// The machine.
#[derive(Debug)]
pub struct Alarm {
    setup: AlarmSetup,
    state: AlarmState,
    /// Live conditions per slot (not persisted: sensord republishes them).
    live: Vec<Live>,
}

impl Alarm {
    pub fn new(setup: AlarmSetup, mut state: AlarmState) -> Alarm {
        let n = setup.sensors.len();
        // A restored state may name slots a new config no longer has.
        state.bypassed.retain(|&s| s < n);
        state.waiting_to_close.retain(|&s| s < n);
        state.knocks.retain(|_, (s, _)| *s < n);
        Alarm {
            live: vec![Live::default(); n],
            setup,
            state,
        }
    }

    pub fn state(&self) -> &AlarmState {
        &self.state
    }

    pub fn setup(&self) -> &AlarmSetup {
        &self.setup
    }

    pub fn live(&self, slot: usize) -> Option<Live> {
        self.live.get(slot).copied()
    }

    pub fn outputs(&self) -> Outputs {
        Outputs {
            siren: matches!(self.state.phase, Phase::Triggered { .. }),
            buzzer: matches!(
                self.state.phase,
                Phase::Arming { .. } | Phase::Pending { .. }
            ),
        }
    }

    /// After a restart: no running timer may end later than its full
    /// configured length from `now`. Deadlines are stored in wall-clock
    /// time, and a clock that jumped back while the hub was down must not
    /// stretch an entry delay or a siren.
    pub fn clamp_deadlines(&mut self, now: Millis) {
        let timing = |mode| self.setup.timing(mode);
        let limit = match &self.state.phase {
            Phase::Arming { mode, .. } => Some(ms(timing(*mode).exit_delay)),
            Phase::Pending { mode, .. } => Some(ms(timing(*mode).entry_delay)),
            Phase::Triggered { mode, .. } => Some(self.trigger_time(*mode)),
            Phase::Disarmed | Phase::Armed { .. } => None,
        };
        let Some(limit) = limit else { return };
        let latest = now.saturating_add(limit);
        match &mut self.state.phase {
            Phase::Arming { until, .. }
            | Phase::Pending { until, .. }
            | Phase::Triggered { until, .. } => *until = (*until).min(latest),
            Phase::Disarmed | Phase::Armed { .. } => {}
        }
    }

    /// When [`Alarm::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.state.phase.deadline()
    }

    fn armed_in(&self, slot: usize, mode: ArmedMode) -> bool {
        let s = &self.setup.sensors[slot];
        !s.kind.is_24_hour()
            && s.modes.contains(&mode)
            && !self.state.bypassed.contains(&slot)
            && !self.state.waiting_to_close.contains(&slot)
    }

    fn trigger_time(&self, mode: ArmedMode) -> Millis {
        let mode = if mode == ArmedMode::Disarmed {
            ArmedMode::Away
        } else {
            mode
        };
        ms(self.setup.timing(mode).trigger_time)
    }

    fn current_mode(&self) -> ArmedMode {
        self.state.phase.table_codes().0
    }

    fn trigger(&mut self, cause: TriggerCause, now: Millis) -> Vec<AlarmEvent> {
        let mode = self.current_mode();
        if let Phase::Triggered { cause: first, .. } = &self.state.phase {
            // Already sounding: keep the first cause and the siren's time.
            let _ = first;
            return Vec::new();
        }
        let until = now.saturating_add(self.trigger_time(mode));
        self.state.phase = Phase::Triggered { mode, until, cause };
        vec![AlarmEvent::Triggered { cause, until }]
    }

    /// Arms in `mode`. With `force`, open sensors are bypassed (and named in
    /// the event) instead of refusing.
    pub fn arm(
        &mut self,
        mode: ArmedMode,
        force: bool,
        by: Actor,
        now: Millis,
    ) -> Result<Vec<AlarmEvent>, ArmError> {
        if mode == ArmedMode::Disarmed {
            return Err(ArmError::NotAnArmedMode(mode));
        }
        match self.state.phase {
            Phase::Disarmed => {}
            Phase::Arming { .. } => return Err(ArmError::Busy("arming")),
            Phase::Armed { .. } => return Err(ArmError::Busy("armed")),
            Phase::Pending { .. } => return Err(ArmError::Busy("in the entry delay")),
            Phase::Triggered { .. } => return Err(ArmError::Busy("triggered")),
        }
        let mut bypass = BTreeSet::new();
        let mut wait = BTreeSet::new();
        let mut blocking = Vec::new();
        for (slot, s) in self.setup.sensors.iter().enumerate() {
            let open = self.live[slot].active;
            if !open
                || s.kind.is_24_hour()
                || !s.modes.contains(&mode)
                || self.state.bypassed.contains(&slot)
            {
                continue;
            }
            if s.auto_bypass || force {
                bypass.insert(slot);
            } else if s.arm_after_close {
                wait.insert(slot);
            } else {
                blocking.push(slot);
            }
        }
        if !blocking.is_empty() {
            return Err(ArmError::OpenSensors {
                names: blocking
                    .iter()
                    .map(|&s| self.setup.sensors[s].name.clone())
                    .collect(),
                slots: blocking,
            });
        }
        self.state.bypassed.extend(bypass);
        self.state.waiting_to_close = wait;
        self.state.knocks.clear();
        let bypassed: Vec<usize> = self.state.bypassed.iter().copied().collect();
        let exit = ms(self.setup.timing(mode).exit_delay);
        if exit == 0 {
            self.state.phase = Phase::Armed { mode };
            Ok(vec![AlarmEvent::Armed { mode, bypassed, by }])
        } else {
            let until = now.saturating_add(exit);
            self.state.phase = Phase::Arming { mode, until };
            Ok(vec![AlarmEvent::Arming {
                mode,
                until,
                bypassed,
                by,
            }])
        }
    }

    /// Disarms from any phase; the caller has checked the code. A duress
    /// code disarms just the same and adds a [`AlarmEvent::Duress`].
    pub fn disarm(&mut self, by: Actor, duress: bool, _now: Millis) -> Vec<AlarmEvent> {
        self.state = AlarmState::default();
        let mut events = vec![AlarmEvent::Disarmed { by: by.clone() }];
        if duress {
            events.push(AlarmEvent::Duress { by });
        }
        events
    }

    /// The panic command: the siren at once, in any phase.
    pub fn panic(&mut self, _by: Actor, now: Millis) -> Vec<AlarmEvent> {
        self.trigger(TriggerCause::Panic, now)
    }

    /// Bypasses (or restores) a sensor until the next disarm.
    pub fn bypass(
        &mut self,
        slot: usize,
        on: bool,
        by: Actor,
        _now: Millis,
    ) -> Result<Vec<AlarmEvent>, BypassError> {
        let sensor = self
            .setup
            .sensors
            .get(slot)
            .ok_or(BypassError::NoSuchSensor(slot))?;
        if sensor.kind.is_24_hour() {
            return Err(BypassError::TwentyFourHour(sensor.name.clone()));
        }
        let changed = if on {
            self.state.bypassed.insert(slot)
        } else {
            self.state.bypassed.remove(&slot)
        };
        Ok(if changed {
            vec![AlarmEvent::Bypass { slot, on, by }]
        } else {
            Vec::new()
        })
    }

    /// A sensor's live condition changed (or was published again).
    pub fn sensor(&mut self, slot: usize, live: Live, now: Millis) -> Vec<AlarmEvent> {
        let Some(before) = self.live.get(slot).copied() else {
            return Vec::new();
        };
        self.live[slot] = live;
        let sensor = self.setup.sensors[slot].clone();
        let mut events = Vec::new();
        let opened = live.active && !before.active;

        if live.tamper && !before.tamper {
            events.push(AlarmEvent::Tamper { slot });
            events.extend(self.trigger(TriggerCause::Tamper(slot), now));
        }
        if live.fault && !before.fault {
            events.push(AlarmEvent::Fault { slot });
            let armed_mode = match self.state.phase {
                Phase::Armed { mode } | Phase::Pending { mode, .. } => Some(mode),
                _ => None,
            };
            if sensor.trigger_on_fault && armed_mode.is_some_and(|m| self.armed_in(slot, m)) {
                events.extend(self.trigger(TriggerCause::Fault(slot), now));
            }
        } else if !live.fault && before.fault {
            events.push(AlarmEvent::FaultCleared { slot });
        }

        if !live.active && self.state.waiting_to_close.remove(&slot) {
            events.push(AlarmEvent::SensorArmed { slot });
        }
        if !opened {
            return events;
        }
        if sensor.kind.is_24_hour() {
            events.extend(self.trigger(TriggerCause::Zone(slot), now));
            return events;
        }
        match self.state.phase.clone() {
            Phase::Disarmed
                if self.setup.alarm.chime
                    && matches!(sensor.kind, SensorKind::Door | SensorKind::Window) =>
            {
                events.push(AlarmEvent::Chime { slot });
            }
            Phase::Armed { mode } if self.armed_in(slot, mode) => {
                if let Some(group) = &sensor.double_knock
                    && !self.second_knock(slot, group, now)
                {
                    events.push(AlarmEvent::Knock {
                        slot,
                        group: group.clone(),
                    });
                    return events;
                }
                let entry = ms(self.setup.timing(mode).entry_delay);
                if sensor.response == Response::EntryDelay && entry > 0 {
                    let until = now.saturating_add(entry);
                    self.state.phase = Phase::Pending { mode, until, slot };
                    events.push(AlarmEvent::EntryDelay { slot, until });
                } else {
                    events.extend(self.trigger(TriggerCause::Sensor(slot), now));
                }
            }
            Phase::Pending { mode, .. }
                if self.armed_in(slot, mode) && sensor.response == Response::Instant =>
            {
                events.extend(self.trigger(TriggerCause::Sensor(slot), now));
            }
            // Exit delay: the way out is open. Triggered: already sounding.
            _ => {}
        }
        events
    }

    /// Whether this activation completes a double knock (and records it if
    /// not).
    fn second_knock(&mut self, slot: usize, group: &str, now: Millis) -> bool {
        let window = ms(self.setup.alarm.double_knock_window);
        match self.state.knocks.get(group) {
            Some(&(first, at)) if first != slot && now.saturating_sub(at) <= window => {
                self.state.knocks.remove(group);
                true
            }
            _ => {
                self.state.knocks.insert(group.to_owned(), (slot, now));
                false
            }
        }
    }

    /// Lets time pass: ends delays and the siren whose deadlines are due.
    pub fn tick(&mut self, now: Millis) -> Vec<AlarmEvent> {
        let mut events = Vec::new();
        // Loop: after a long outage several deadlines may be due at once.
        while let Some(deadline) = self.next_deadline().filter(|d| *d <= now) {
            match self.state.phase.clone() {
                Phase::Arming { mode, .. } => {
                    self.state.phase = Phase::Armed { mode };
                    events.push(AlarmEvent::Armed {
                        mode,
                        bypassed: self.state.bypassed.iter().copied().collect(),
                        by: Actor::system(),
                    });
                }
                Phase::Pending { mode, slot, .. } => {
                    // The siren's time counts from the deadline, not from a
                    // late tick.
                    let until = deadline.saturating_add(self.trigger_time(mode));
                    let cause = TriggerCause::Sensor(slot);
                    self.state.phase = Phase::Triggered { mode, until, cause };
                    events.push(AlarmEvent::Triggered { cause, until });
                }
                Phase::Triggered { mode, .. } => {
                    self.state.phase = if mode == ArmedMode::Disarmed {
                        Phase::Disarmed
                    } else {
                        Phase::Armed { mode }
                    };
                    events.push(AlarmEvent::SirenTimedOut { back_to: mode });
                }
                Phase::Disarmed | Phase::Armed { .. } => break,
            }
        }
        events
    }
}

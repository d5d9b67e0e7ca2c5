//! The alarm engine: the one owner of the alarm state machine, the users'
//! codes and the event numbering.
//!
//! Each input — a [`Command`], a sensor change ([`Engine::on_sensor`]), the
//! passing of time ([`Engine::tick`]), a checked PIN
//! ([`Engine::code_checked`]) — changes the engine's state and returns
//! [`Effects`]: the events to log and stream, the alerts, whether the state
//! must be saved, the answers to send, the PINs to check. The engine does
//! no I/O and never waits; the hub applies the effects in one documented
//! order (`Hub::apply`), which is where the durability rules live.
//!
//! The engine's modules: `pins` (the PIN flow), `wording` (how events
//! read; pure), `effects` (the value it returns); alert minting and event
//! numbering are here.
//!
//! Must never: touch a file, a socket or a channel; read the ambient
//! tracing span (the cause of a change is an argument, [`Cause`]).

mod effects;
mod pins;
#[cfg(test)]
mod tests;
pub mod wording;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};
use vigil_alarm::users::{User, Users};
use vigil_alarm::{Actor, Alarm, AlarmEvent, AlarmSetup, Live, Outputs};
use vigil_alerts::AlertMessage;
use vigil_domain::{AlarmState, ArmedMode, Event, EventKind, SensorState, TraceContext, source};
use vigil_ipc::table::SensorReading;

pub use effects::{Answer, Effects, PinCheck};
pub use pins::{CheckedPin, PinAction};

use crate::clock::{AlarmClock, now_ms};
use crate::commands::{Command, CommandError, Reply};
use crate::persist::{Restored, carry_over};
use crate::status::StatusSnapshot;

/// How long a chime beeps the buzzer.
const CHIME: Duration = Duration::from_millis(300);
/// How long `siren test` sounds the siren.
const SIREN_TEST: Duration = Duration::from_secs(3);

/// What caused a change, for tracing: passed in, never read from the
/// ambient span.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cause {
    /// The trace id (hex) of the change, recorded in its events.
    pub trace_id: Option<String>,
    /// The W3C `traceparent` of the hub's span for the change: alerts
    /// carry it to alertd, whose delivery spans become its children.
    pub parent: Option<String>,
}

impl Cause {
    /// A sensor change traced as `change` (sensord's span, from the slot),
    /// handled in the hub's span `here` (a child of it; invalid when the
    /// hub is not tracing, and then sensord's span is the parent).
    pub fn of_change(change: TraceContext, here: TraceContext) -> Cause {
        let parent = if here.is_valid() { here } else { change };
        Cause {
            trace_id: change.is_valid().then(|| change.trace_id_hex()),
            parent: parent.is_valid().then(|| parent.traceparent()),
        }
    }
}

/// An event before it is numbered.
#[derive(Clone, Debug)]
struct Draft {
    kind: EventKind,
    sensor: Option<String>,
    sensor_state: Option<SensorState>,
    camera: Option<String>,
    by: Actor,
    message: String,
    /// The alert's title, where it is not the message.
    title: Option<String>,
    cause: Cause,
}

impl Draft {
    fn new(kind: EventKind, by: &Actor, message: String) -> Draft {
        Draft {
            kind,
            sensor: None,
            sensor_state: None,
            camera: None,
            by: by.clone(),
            message,
            title: None,
            cause: Cause::default(),
        }
    }
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    alarm: Alarm,
    /// Everyone whose PIN counts: `configured` and then `managed`, merged.
    users: Users,
    /// The config file's users (replaced by a reload).
    configured: Vec<User>,
    /// The users added over the API (replaced by a change of users).
    managed: Vec<User>,
    /// The users for PIN lookups on blocking threads.
    users_snapshot: Arc<Vec<User>>,
    /// The number of the last event.
    seq: u64,
    clock: AlarmClock,
    chime_until: Option<Instant>,
    siren_test_until: Option<Instant>,
    /// Why the last save of the state failed, while it keeps failing.
    save_error: Option<String>,
    /// The cause of the change that started the running entry delay: the
    /// alarm it ends in continues that trace.
    entry_cause: Option<Cause>,
}

impl Engine {
    /// The engine as `restored`, with a clock that starts now.
    pub fn new(setup: AlarmSetup, users: Users, restored: Restored) -> Engine {
        Engine::with_clock(setup, users, restored, AlarmClock::start())
    }

    pub(crate) fn with_clock(
        setup: AlarmSetup,
        mut users: Users,
        restored: Restored,
        clock: AlarmClock,
    ) -> Engine {
        users.lockout = restored.lockout;
        let users = users.with_source_lockouts(restored.source_lockouts);
        let mut alarm = Alarm::new(setup, restored.alarm);
        alarm.clamp_deadlines(clock.now());
        Engine {
            alarm,
            users_snapshot: users.snapshot(),
            configured: users.users().to_vec(),
            managed: Vec::new(),
            users,
            seq: restored.event_seq,
            clock,
            chime_until: None,
            siren_test_until: None,
            save_error: None,
            entry_cause: None,
        }
    }

    /// The number of the last event.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    /// Numbers the next event after `logged` if the log is ahead of the
    /// saved state (a state file older than the log).
    pub fn skip_to(&mut self, logged: u64) {
        self.seq = self.seq.max(logged);
    }

    pub fn setup(&self) -> &AlarmSetup {
        self.alarm.setup()
    }

    /// What is saved: the alarm, the lockout and the event number.
    pub fn to_save(&self) -> Restored {
        Restored {
            alarm: self.alarm.state().clone(),
            lockout: self.users.lockout,
            source_lockouts: self.users.source_lockouts().clone(),
            event_seq: self.seq,
        }
    }

    /// How the last save went: a failure shows as a system fault in the
    /// status until a save succeeds (the alarm itself goes on).
    pub fn saved(&mut self, result: Result<(), String>) {
        self.save_error = result.err().map(|e| format!("state not saved: {e}"));
    }

    /// The mode and alarm state for the table's system slot.
    pub fn table_codes(&self) -> (ArmedMode, AlarmState) {
        self.alarm.state().phase.table_codes()
    }

    /// What the siren and buzzer should do now.
    pub fn outputs(&self) -> Outputs {
        let now = Instant::now();
        let base = self.alarm.outputs();
        Outputs {
            siren: base.siren || self.siren_test_until.is_some_and(|t| t > now),
            buzzer: base.buzzer || self.chime_until.is_some_and(|t| t > now),
        }
    }

    /// When the engine next needs a [`Engine::tick`].
    pub fn next_wake(&self) -> Option<Instant> {
        let alarm = self.alarm.next_deadline().map(|d| self.clock.instant_of(d));
        [alarm, self.chime_until, self.siren_test_until]
            .into_iter()
            .flatten()
            .min()
    }

    /// The status as readers see it.
    pub fn status(&self) -> StatusSnapshot {
        let (mode, alarm) = self.table_codes();
        let state = self.alarm.state();
        let setup = self.alarm.setup();
        let names = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..setup.sensors.len())
                .filter(|&s| pred(s))
                .map(|s| setup.sensors[s].name.clone())
                .collect()
        };
        StatusSnapshot {
            mode,
            alarm,
            deadline_unix_ms: state.phase.deadline(),
            outputs: self.outputs(),
            bypassed: names(&|s| state.bypassed.contains(&s)),
            open: names(&|s| self.alarm.live(s).is_some_and(|l| l.active)),
            faults: names(&|s| self.alarm.live(s).is_some_and(|l| l.fault))
                .into_iter()
                .chain(self.save_error.clone())
                .collect(),
            locked_until_unix_ms: self
                .users
                .lockout
                .locked_until
                .filter(|&t| t > self.clock.now()),
            last_seq: self.seq,
        }
    }

    /// Lets time pass: delays and the siren run out, the chime and a siren
    /// test end.
    pub fn tick(&mut self) -> Effects {
        let mut fx = Effects::default();
        let now = Instant::now();
        if self.chime_until.is_some_and(|t| t <= now) {
            self.chime_until = None;
        }
        if self.siren_test_until.is_some_and(|t| t <= now) {
            self.siren_test_until = None;
        }
        let events = self.alarm.tick(self.clock.now());
        // An entry delay that runs out triggers the alarm: the trace of the
        // change that started the delay goes on to the alarm and its alert,
        // so one trace runs from the door to the hook.
        let cause = events
            .iter()
            .any(|e| matches!(e, AlarmEvent::Triggered { .. }))
            .then(|| self.entry_cause.take())
            .flatten()
            .unwrap_or_default();
        self.commit(&mut fx, events, &Actor::system(), &cause);
        fx
    }

    /// A sensor's slot changed; `cause` is its trace (see
    /// [`Cause::of_change`]).
    pub fn on_sensor(&mut self, slot: usize, reading: &SensorReading, cause: Cause) -> Effects {
        let mut fx = Effects::default();
        let Some(sensor) = self.alarm.setup().sensors.get(slot).cloned() else {
            return fx;
        };
        let before = self.alarm.live(slot).unwrap_or_default();
        let known = reading.state != SensorState::Unknown;
        let live = if known {
            Live {
                active: reading.state == SensorState::Active,
                fault: reading.fault,
                tamper: reading.tamper,
            }
        } else if reading.fault || reading.tamper {
            // Not reported yet, but faulty: a wireless sensor sensord
            // cannot hear, or that zigbee2mqtt says is offline, before its
            // first message. Its state stays as it was; the fault is raised
            // (never cleared: only a reading of a known state clears it).
            Live {
                active: before.active,
                fault: before.fault || reading.fault,
                tamper: before.tamper || reading.tamper,
            }
        } else {
            return fx;
        };
        let by = Actor {
            user: None,
            source: source::SENSOR.into(),
        };
        if known && before.active != live.active {
            let message = wording::sensor_change(&sensor.name, reading.state.describe(sensor.kind));
            let draft = Draft {
                sensor: Some(sensor.name.clone()),
                sensor_state: Some(reading.state),
                cause: cause.clone(),
                ..Draft::new(EventKind::Sensor, &by, message)
            };
            self.emit(&mut fx, draft);
        }
        let events = self.alarm.sensor(slot, live, self.clock.now());
        if events
            .iter()
            .any(|e| matches!(e, AlarmEvent::EntryDelay { .. }))
        {
            self.entry_cause = Some(cause.clone());
        }
        self.commit(&mut fx, events, &by, &cause);
        fx
    }

    /// Handles one command.
    pub fn handle(&mut self, command: Command) -> Effects {
        let mut fx = Effects::default();
        let now = self.clock.now();
        match command {
            Command::Arm {
                mode,
                force,
                pin,
                by,
                reply,
            } => {
                if !self.alarm.setup().alarm.require_pin_to_arm {
                    self.arm(&mut fx, mode, force, by, reply);
                } else if let Some(pin) = pin {
                    let source = by.source.clone();
                    let then = PinAction::Arm {
                        mode,
                        force,
                        by,
                        reply,
                    };
                    self.check_pin(&mut fx, pin, source, then);
                } else {
                    fx.answers
                        .push(Answer::Armed(reply, Err(CommandError::PinRequired)));
                }
            }
            Command::Disarm { pin, source, reply } => {
                self.check_pin(&mut fx, pin, source, PinAction::Disarm { reply });
            }
            Command::Panic { by, reply } => {
                let events = self.alarm.panic(by.clone(), now);
                self.commit(&mut fx, events, &by, &Cause::default());
                fx.answers.push(Answer::Done(reply, Ok(())));
            }
            Command::Bypass {
                sensor,
                on,
                pin,
                by,
                reply,
            } => {
                let slot = self
                    .alarm
                    .setup()
                    .sensors
                    .iter()
                    .position(|s| s.name == sensor);
                let armed = self.table_codes().0 != ArmedMode::Disarmed;
                match (slot, pin) {
                    (None, _) => fx
                        .answers
                        .push(Answer::Done(reply, Err(CommandError::NoSuchSensor(sensor)))),
                    // EN 50131 grade 2: inhibiting a zone of an armed
                    // system needs an authorised code; restoring one only
                    // makes it safer, and a disarmed system guards nothing.
                    (Some(slot), _) if !on || !armed => self.bypass(&mut fx, slot, on, by, reply),
                    (Some(slot), Some(pin)) => {
                        let source = by.source.clone();
                        let then = PinAction::Bypass { slot, by, reply };
                        self.check_pin(&mut fx, pin, source, then);
                    }
                    (Some(_), None) => fx
                        .answers
                        .push(Answer::Done(reply, Err(CommandError::PinRequiredToBypass))),
                }
            }
            Command::SirenTest { by, reply } => {
                // While armed the siren means an alarm: a test then would
                // teach the neighbours to ignore it.
                let answer = if self.table_codes().0 == ArmedMode::Disarmed {
                    self.siren_test_until = Some(Instant::now() + SIREN_TEST);
                    let message = wording::siren_test(SIREN_TEST.as_secs());
                    self.emit(&mut fx, Draft::new(EventKind::SirenTest, &by, message));
                    Ok(())
                } else {
                    Err(CommandError::SirenTestWhileArmed)
                };
                fx.answers.push(Answer::Done(reply, answer));
            }
            Command::ConfirmAdmin { pin, by, reply } => {
                let source = by.source.clone();
                self.check_pin(&mut fx, pin, source, PinAction::Confirm { by, reply });
            }
            Command::RefuseTakenPin { by, reply } => {
                let source = by.source.clone();
                let check = self.users.record(None, &source, now);
                fx.save = true;
                self.finish_pin(&mut fx, check, source, PinAction::Confirm { by, reply });
            }
            Command::SetUsers {
                managed,
                by,
                audit: (kind, message),
                reply,
            } => {
                self.set_managed_users(managed);
                self.emit(&mut fx, Draft::new(kind, &by, message));
                fx.answers.push(Answer::Done(reply, Ok(())));
            }
            Command::Audit {
                kind,
                camera,
                by,
                message,
                reply,
            } => {
                let draft = Draft {
                    camera,
                    ..Draft::new(kind, &by, message)
                };
                self.emit(&mut fx, draft);
                fx.answers.push(Answer::Done(reply, Ok(())));
            }
            Command::CameraEvent {
                kind,
                camera,
                message,
            } => {
                let by = Actor {
                    user: None,
                    source: source::CAMERA.into(),
                };
                let draft = Draft {
                    camera: Some(camera),
                    ..Draft::new(kind, &by, message)
                };
                self.emit(&mut fx, draft);
            }
        }
        fx
    }

    fn arm(
        &mut self,
        fx: &mut Effects,
        mode: ArmedMode,
        force: bool,
        by: Actor,
        reply: Reply<Vec<String>>,
    ) {
        match self.alarm.arm(mode, force, by.clone(), self.clock.now()) {
            Ok(events) => {
                let bypassed = events
                    .iter()
                    .find_map(|e| match e {
                        AlarmEvent::Arming { bypassed, .. }
                        | AlarmEvent::Armed { bypassed, .. } => Some(bypassed.clone()),
                        _ => None,
                    })
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| self.sensor_name(s))
                    .collect();
                self.commit(fx, events, &by, &Cause::default());
                fx.answers.push(Answer::Armed(reply, Ok(bypassed)));
            }
            Err(e) => {
                let message = wording::arm_refused(mode, &e);
                self.emit(fx, Draft::new(EventKind::ArmRefused, &by, message));
                fx.answers.push(Answer::Armed(reply, Err(e.into())));
            }
        }
    }

    /// Bypasses (or restores) `slot` as the alarm's rules allow.
    fn bypass(&mut self, fx: &mut Effects, slot: usize, on: bool, by: Actor, reply: Reply<()>) {
        let result = self.alarm.bypass(slot, on, by.clone(), self.clock.now());
        let answer = result
            .map(|events| self.commit(fx, events, &by, &Cause::default()))
            .map_err(Into::into);
        fx.answers.push(Answer::Done(reply, answer));
    }

    fn sensor_name(&self, slot: usize) -> String {
        self.alarm
            .setup()
            .sensors
            .get(slot)
            .map_or_else(|| format!("slot {slot}"), |s| s.name.clone())
    }

    /// Turns the alarm's events into stream events (and alerts).
    fn commit(&mut self, fx: &mut Effects, events: Vec<AlarmEvent>, by: &Actor, cause: &Cause) {
        if events
            .iter()
            .any(|e| matches!(e, AlarmEvent::Disarmed { .. }))
        {
            self.entry_cause = None;
        }
        for event in events {
            if let AlarmEvent::Duress { by } = &event {
                self.raise_duress(fx, by, "disarmed");
                continue;
            }
            if matches!(event, AlarmEvent::Chime { .. }) {
                self.chime_until = Some(Instant::now() + CHIME);
            }
            let name = |slot: usize| self.sensor_name(slot);
            let Some(w) = wording::alarm_event(&event, &name, self.clock.now()) else {
                continue;
            };
            match w.kind {
                EventKind::Triggered => warn!(trace_id = ?cause.trace_id, "{}", w.message),
                EventKind::Chime => {}
                _ => info!("{}", w.message),
            }
            let draft = Draft {
                sensor: w.slot.map(|s| self.sensor_name(s)),
                title: w.title,
                cause: cause.clone(),
                ..Draft::new(w.kind, w.by.as_ref().unwrap_or(by), w.message)
            };
            self.emit(fx, draft);
        }
    }

    /// The event of `draft`, numbered `seq`, in the state as it is now.
    fn event_of(&self, draft: &Draft, seq: u64) -> Event {
        let (mode, alarm) = self.table_codes();
        Event {
            seq,
            unix_ms: now_ms(),
            kind: draft.kind.clone(),
            sensor: draft.sensor.clone(),
            sensor_state: draft.sensor_state,
            camera: draft.camera.clone(),
            mode,
            alarm,
            user: draft.by.user.clone(),
            source: draft.by.source.clone(),
            message: draft.message.clone(),
            trace_id: draft.cause.trace_id.clone(),
        }
    }

    /// Numbers the next event of the stream, with its alert if its kind
    /// has one.
    fn emit(&mut self, fx: &mut Effects, draft: Draft) {
        self.seq += 1;
        let event = self.event_of(&draft, self.seq);
        self.alert(fx, &draft, &event);
        fx.events.push(event);
        fx.save = true;
    }

    /// Makes the alert of an event, if its kind has one.
    fn alert(&mut self, fx: &mut Effects, draft: &Draft, event: &Event) {
        let Some(priority) = event.kind.priority() else {
            return;
        };
        fx.alerts.push(AlertMessage {
            // Unguessable, so nobody can post an alert in advance under the
            // id of an alarm to come (alertd drops repeats of an id).
            id: vigil_alerts::random_hex128(),
            priority: priority.as_str().to_owned(),
            kind: event.kind.as_str().to_owned(),
            title: draft.title.clone().unwrap_or_else(|| draft.message.clone()),
            message: draft.message.clone(),
            sensor: event.sensor.clone().or_else(|| event.camera.clone()),
            unix_ms: event.unix_ms,
            trace_id: event.trace_id.clone(),
            traceparent: draft.cause.parent.clone(),
            // The poster gives each alert its token.
            delivery_token: None,
        });
    }

    /// Takes a new configuration: sensors are matched by name, so the
    /// state (bypasses, a running delay) carries over in memory; the
    /// config file's users are replaced (`configured`), those added over
    /// the API kept, the lockout kept.
    pub fn reconfigure(&mut self, setup: AlarmSetup, configured: Users) {
        let carried = carry_over(&self.to_save(), self.alarm.setup(), &setup);
        self.configured = configured.users().to_vec();
        self.merge_users();
        self.alarm = Alarm::new(setup, carried.alarm);
        self.alarm.clamp_deadlines(self.clock.now());
    }

    /// The names of the users whose PINs the engine takes.
    pub fn user_names(&self) -> Vec<String> {
        self.users.users().iter().map(|u| u.name.clone()).collect()
    }

    /// The users added over the API (at start, and after each change of
    /// users): merged after the config file's, whose names win.
    pub fn set_managed_users(&mut self, managed: Vec<User>) {
        self.managed = managed;
        self.merge_users();
    }

    fn merge_users(&mut self) {
        let mut users = self.configured.clone();
        for user in &self.managed {
            if self.configured.iter().any(|c| c.name == user.name) {
                warn!(
                    user = %user.name,
                    "a user added over the API has the name of a user in the config file; the \
                     config file's is used: remove one of them"
                );
                continue;
            }
            users.push(user.clone());
        }
        self.replace_users(users);
    }

    /// Replaces the users; the lockout's counters stay, so changing users
    /// never clears a lockout.
    fn replace_users(&mut self, users: Vec<vigil_alarm::users::User>) {
        let lockout = self.users.lockout;
        let by_source = self.users.source_lockouts().clone();
        self.users = Users::new(users, lockout).with_source_lockouts(by_source);
        self.users_snapshot = self.users.snapshot();
    }
}

//! The alarm engine: the one owner of the alarm state machine, the users'
//! codes, the persisted state and the event stream.
//!
//! It runs inside the hub's event loop (no locks): the loop feeds it sensor
//! changes and ticks, and commands from the gRPC API and the control FIFO
//! arrive over [`EngineHandle`]'s channel with a reply channel each. Readers
//! that only need the status (GetStatus, 30 000 times a second) read the
//! latest [`StatusSnapshot`] from a `watch` channel without asking.
//!
//! Every change is persisted before its reply is sent, so an acknowledged
//! command survives a SIGKILL of the hub.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tracing::{error, info, warn};
use vigil_alarm::users::{CodeCheck, Found, User, Users, lookup};
use vigil_alarm::{
    Actor, Alarm, AlarmEvent, AlarmSetup, ArmError, BypassError, Live, Millis, Outputs,
    TriggerCause,
};
use vigil_alerts::AlertMessage;
use vigil_domain::AlertPriority;
use vigil_domain::{AlarmState, ArmedMode, SensorState};
use vigil_ipc::table::SensorReading;

use crate::eventlog::EventLog;
use crate::persist::{Restored, StateStore};

/// Events kept in memory for WatchEvents to resume from.
pub const EVENT_RING: usize = 4096;
/// How long a chime beeps the buzzer.
const CHIME: Duration = Duration::from_millis(300);
/// How long `siren test` sounds the siren.
const SIREN_TEST: Duration = Duration::from_secs(3);

/// Wall-clock time, for timestamps people read.
pub fn now_ms() -> Millis {
    vigil_ipc::unix_ns() / 1_000_000
}

/// The alarm's clock: wall-clock time at the engine's start, advanced by
/// the monotonic clock. Delays and the siren run on it, so a wall clock that
/// jumps (a Pi's first network time sync after boot) cannot end an exit
/// delay early or stretch a siren; its readings are still comparable with
/// deadlines persisted by an earlier run.
#[derive(Debug)]
struct AlarmClock {
    wall_at_start: Millis,
    started: Instant,
}

impl AlarmClock {
    fn start() -> AlarmClock {
        AlarmClock {
            wall_at_start: now_ms(),
            started: Instant::now(),
        }
    }

    fn now(&self) -> Millis {
        self.wall_at_start + self.started.elapsed().as_millis() as Millis
    }
}

/// One event of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord {
    pub seq: u64,
    pub unix_ms: Millis,
    pub kind: &'static str,
    pub sensor: Option<String>,
    pub mode: ArmedMode,
    pub alarm: AlarmState,
    pub user: Option<String>,
    pub source: String,
    pub message: String,
    pub trace_id: Option<String>,
}

/// The status every reader sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSnapshot {
    pub mode: ArmedMode,
    pub alarm: AlarmState,
    pub deadline_unix_ms: Option<Millis>,
    pub outputs: Outputs,
    pub bypassed: Vec<String>,
    pub open: Vec<String>,
    pub faults: Vec<String>,
    pub locked_until_unix_ms: Option<Millis>,
    pub last_seq: u64,
}

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("wrong PIN; {attempts_left} attempts left before a 90 s lockout")]
    WrongPin { attempts_left: u32 },
    #[error("too many wrong PINs: every PIN is refused for {} more s", retry_after_ms.div_ceil(1000))]
    LockedOut { retry_after_ms: u64 },
    #[error("this system needs a PIN to arm")]
    PinRequired,
    #[error("cannot arm: {0}")]
    Arm(#[from] ArmError),
    #[error("cannot bypass: {0}")]
    Bypass(#[from] BypassError),
    #[error("no sensor named {0:?}")]
    NoSuchSensor(String),
    #[error(
        "events up to {oldest} are no longer kept; resume from {oldest} or later (the event \
         log keeps them all)"
    )]
    ResumeTooOld { oldest: u64 },
    #[error("the alarm engine has stopped")]
    Stopped,
}

/// What a disarm did.
#[derive(Clone, Debug)]
pub struct Disarmed {
    pub user: String,
}

type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// A past-and-future view of the event stream.
#[derive(Debug)]
pub struct Subscription {
    pub backlog: Vec<Arc<EventRecord>>,
    pub live: broadcast::Receiver<Arc<EventRecord>>,
}

/// Commands to the engine.
#[derive(Debug)]
pub enum Command {
    Arm {
        mode: ArmedMode,
        force: bool,
        pin: Option<String>,
        by: Actor,
        reply: Reply<Vec<String>>,
    },
    Disarm {
        pin: String,
        source: String,
        reply: Reply<Disarmed>,
    },
    Panic {
        by: Actor,
        reply: Reply<()>,
    },
    Bypass {
        sensor: String,
        on: bool,
        by: Actor,
        reply: Reply<()>,
    },
    SirenTest {
        by: Actor,
        reply: Reply<()>,
    },
    Subscribe {
        /// None: new events only; Some(n): replay the kept events after n.
        after_seq: Option<u64>,
        reply: Reply<Subscription>,
    },
    /// Something a camera did: `camera_online`, `camera_offline` (a fault
    /// alert), `clip_recorded`. An event like any other (and an alert
    /// where [`alert_priority`] says so).
    CameraEvent {
        kind: &'static str,
        camera: String,
        message: String,
    },
    /// Removes old event-log segments; `keep_from` is the first sequence
    /// number reportd has not indexed yet.
    RetireLog {
        retention: vigil_eventlog::Retention,
        keep_from: u64,
    },
    /// Internal: a PIN lookup finished on a blocking thread.
    CodeChecked {
        found: Option<Found>,
        source: String,
        then: PinAction,
    },
}

/// What a PIN was entered for, finished once it is checked.
#[derive(Debug)]
pub enum PinAction {
    Disarm {
        reply: Reply<Disarmed>,
    },
    Arm {
        mode: ArmedMode,
        force: bool,
        by: Actor,
        reply: Reply<Vec<String>>,
    },
}

impl PinAction {
    fn refuse(self, e: CommandError) {
        match self {
            PinAction::Disarm { reply } => {
                let _ = reply.send(Err(e));
            }
            PinAction::Arm { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// The engine's front door, cheap to clone.
#[derive(Clone, Debug)]
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Arc<StatusSnapshot>>,
}

impl EngineHandle {
    /// The latest status, without asking the engine.
    pub fn status(&self) -> Arc<StatusSnapshot> {
        Arc::clone(&self.status.borrow())
    }

    /// Sends a command and waits for its answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }

    /// Sends a command that has no answer.
    pub async fn tell(&self, command: Command) -> Result<(), CommandError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| CommandError::Stopped)
    }
}

/// The engine.
#[derive(Debug)]
pub struct Engine {
    alarm: Alarm,
    users: Users,
    store: StateStore,
    seq: u64,
    ring: VecDeque<Arc<EventRecord>>,
    events: broadcast::Sender<Arc<EventRecord>>,
    status: watch::Sender<Arc<StatusSnapshot>>,
    chime_until: Option<Instant>,
    siren_test_until: Option<Instant>,
    /// Alerts made since the hub's loop last took them.
    alerts: Vec<AlertMessage>,
    /// A state change waits to be saved until the hub has journaled the
    /// alerts made with it ([`Engine::save_after_alerts`]).
    unsaved: bool,
    /// Numbers alerts for their ids: `<boot ms in hex>-<n>`.
    alert_counter: u64,
    boot_ms: Millis,
    /// Where every event is kept for good (None in benchmarks).
    log: Option<EventLog>,
    clock: AlarmClock,
    /// The users for PIN lookups on blocking threads.
    users_snapshot: Arc<Vec<User>>,
    /// The engine's own command channel, for results of background work.
    commands: mpsc::Sender<Command>,
    /// Why the last save of the state failed, while it keeps failing.
    save_error: Option<String>,
    /// While a sensor change is handled: the `traceparent` of the hub's span
    /// for it, which alerts it causes carry to alertd.
    alert_parent: Option<String>,
    /// The trace (id, traceparent) of the change that started the running
    /// entry delay.
    entry_trace: Option<(String, String)>,
}

/// Which events become alerts, and how urgent.
fn alert_priority(kind: &str) -> Option<AlertPriority> {
    match kind {
        "triggered" | "duress" => Some(AlertPriority::Alarm),
        "tamper" | "lockout" => Some(AlertPriority::Tamper),
        "fault" | "camera_offline" => Some(AlertPriority::Fault),
        "camera_online" => Some(AlertPriority::Info),
        "entry_delay" | "arming" | "armed" | "disarmed" | "fault_cleared" | "siren_timed_out" => {
            Some(AlertPriority::Info)
        }
        _ => None,
    }
}

impl Engine {
    /// Restores the engine from `store`; returns it, its handle and the
    /// receiving end of its commands (for the hub's event loop).
    pub fn new(
        setup: AlarmSetup,
        users: Users,
        store: StateStore,
        restored: Restored,
    ) -> (Engine, EngineHandle, mpsc::Receiver<Command>) {
        let mut users = users;
        users.lockout = restored.lockout;
        let clock = AlarmClock::start();
        let mut alarm = Alarm::new(setup, restored.alarm);
        alarm.clamp_deadlines(clock.now());
        let (events, _) = broadcast::channel(EVENT_RING);
        let (commands_tx, commands_rx) = mpsc::channel(256);
        let placeholder = Arc::new(StatusSnapshot {
            mode: ArmedMode::Disarmed,
            alarm: AlarmState::Idle,
            deadline_unix_ms: None,
            outputs: Outputs::default(),
            bypassed: Vec::new(),
            open: Vec::new(),
            faults: Vec::new(),
            locked_until_unix_ms: None,
            last_seq: restored.event_seq,
        });
        let (status, status_rx) = watch::channel(placeholder);
        let users_snapshot = users.snapshot();
        let engine = Engine {
            alarm,
            users,
            store,
            seq: restored.event_seq,
            ring: VecDeque::with_capacity(EVENT_RING),
            events,
            status,
            chime_until: None,
            siren_test_until: None,
            alerts: Vec::new(),
            unsaved: false,
            alert_counter: 0,
            boot_ms: now_ms(),
            log: None,
            clock,
            users_snapshot,
            commands: commands_tx.clone(),
            save_error: None,
            alert_parent: None,
            entry_trace: None,
        };
        engine.publish_status();
        let handle = EngineHandle {
            commands: commands_tx,
            status: status_rx,
        };
        (engine, handle, commands_rx)
    }

    /// Keeps every event in `log` from now on.
    ///
    /// The log's sequence numbers are the event stream's: an event's
    /// number is its record's, so a watcher can resume from the log. If the
    /// state file is ahead of the log (a log lost or started later), the
    /// log is caught up with placeholder records first.
    pub fn with_log(mut self, mut log: EventLog) -> Engine {
        let logged = log.last_seq();
        if logged > self.seq {
            self.seq = logged;
        }
        log.pad_to(self.seq);
        self.log = Some(log);
        self.publish_status();
        self
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
        let alarm = self
            .alarm
            .next_deadline()
            .map(|d| Instant::now() + Duration::from_millis(d.saturating_sub(self.clock.now())));
        let log = self.log.as_ref().and_then(EventLog::next_sync);
        [alarm, self.chime_until, self.siren_test_until, log]
            .into_iter()
            .flatten()
            .min()
    }

    /// Lets time pass.
    pub fn tick(&mut self) {
        let now = Instant::now();
        if let Some(log) = &mut self.log
            && log.next_sync().is_some_and(|t| t <= now)
        {
            log.sync();
        }
        if self.chime_until.is_some_and(|t| t <= now) {
            self.chime_until = None;
        }
        if self.siren_test_until.is_some_and(|t| t <= now) {
            self.siren_test_until = None;
        }
        let events = self.alarm.tick(self.clock.now());
        // An entry delay that runs out triggers the alarm: the trace of
        // the sensor change that started the delay goes on to the alarm
        // (and its alert), so one trace runs from the door to the hook.
        let traced = events
            .iter()
            .any(|e| matches!(e, AlarmEvent::Triggered { .. }))
            .then(|| self.entry_trace.take())
            .flatten();
        let trace = traced.as_ref().map(|(id, _)| id.clone());
        self.alert_parent = traced.map(|(_, parent)| parent);
        self.commit(events, &Actor::system(), trace);
        self.alert_parent = None;
    }

    /// A sensor's slot changed.
    pub fn on_sensor(&mut self, slot: usize, reading: &SensorReading) {
        let Some(sensor) = self.alarm.setup().sensors.get(slot).cloned() else {
            return;
        };
        let trace = reading
            .trace
            .is_valid()
            .then(|| reading.trace.trace_id_hex());
        if reading.state == SensorState::Unknown {
            return;
        }
        // The hub's span for this change (a child of sensord's), or
        // sensord's own when the hub is not tracing.
        let here = vigil_telemetry::trace_context_of(&tracing::Span::current());
        let parent = if here.is_valid() { here } else { reading.trace };
        self.alert_parent = parent.is_valid().then(|| parent.traceparent());
        let live = Live {
            active: reading.state == SensorState::Active,
            fault: reading.fault,
            tamper: reading.tamper,
        };
        let before = self.alarm.live(slot).unwrap_or_default();
        if before.active != live.active {
            let (mode, alarm) = self.table_codes();
            self.push(EventRecord {
                seq: 0,
                unix_ms: now_ms(),
                kind: "sensor",
                sensor: Some(sensor.name.clone()),
                mode,
                alarm,
                user: None,
                source: "sensor".into(),
                message: format!("{} {}", sensor.name, reading.state.describe(sensor.kind)),
                trace_id: trace.clone(),
            });
        }
        let events = self.alarm.sensor(slot, live, self.clock.now());
        let actor = Actor {
            user: None,
            source: "sensor".into(),
        };
        if events
            .iter()
            .any(|e| matches!(e, AlarmEvent::EntryDelay { .. }))
        {
            self.entry_trace = trace.clone().zip(self.alert_parent.clone());
        }
        self.commit(events, &actor, trace);
        self.alert_parent = None;
    }

    /// Handles one command.
    pub fn handle(&mut self, command: Command) {
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
                    self.arm(mode, force, by, reply);
                    return;
                }
                let Some(pin) = pin else {
                    let _ = reply.send(Err(CommandError::PinRequired));
                    return;
                };
                let source = by.source.clone();
                self.check_pin(
                    pin,
                    source,
                    PinAction::Arm {
                        mode,
                        force,
                        by,
                        reply,
                    },
                );
            }
            Command::Disarm { pin, source, reply } => {
                self.check_pin(pin, source, PinAction::Disarm { reply });
            }
            Command::CodeChecked {
                found,
                source,
                then,
            } => {
                let check = self.users.record(found, self.clock.now());
                self.finish_pin(check, source, then);
            }
            Command::Panic { by, reply } => {
                let events = self.alarm.panic(by.clone(), now);
                self.commit(events, &by, None);
                let _ = reply.send(Ok(()));
            }
            Command::Bypass {
                sensor,
                on,
                by,
                reply,
            } => {
                let Some(slot) = self
                    .alarm
                    .setup()
                    .sensors
                    .iter()
                    .position(|s| s.name == sensor)
                else {
                    let _ = reply.send(Err(CommandError::NoSuchSensor(sensor)));
                    return;
                };
                let result = self.alarm.bypass(slot, on, by.clone(), now);
                let _ = reply.send(match result {
                    Ok(events) => {
                        self.commit(events, &by, None);
                        Ok(())
                    }
                    Err(e) => Err(e.into()),
                });
            }
            Command::CameraEvent {
                kind,
                camera,
                message,
            } => {
                let (mode, alarm) = self.table_codes();
                self.push(EventRecord {
                    seq: 0,
                    unix_ms: now_ms(),
                    kind,
                    sensor: Some(camera),
                    mode,
                    alarm,
                    user: None,
                    source: "camera".into(),
                    message,
                    trace_id: None,
                });
                self.persist();
                self.publish_status();
            }
            Command::RetireLog {
                retention,
                keep_from,
            } => {
                if let Some(log) = &mut self.log {
                    log.retire(&retention, keep_from);
                }
            }
            Command::SirenTest { by, reply } => {
                if self.alarm.state().phase.table_codes().0 == ArmedMode::Disarmed {
                    self.siren_test_until = Some(Instant::now() + SIREN_TEST);
                    self.note("siren_test", &by, "siren test for 3 s".into());
                }
                let _ = reply.send(Ok(()));
            }
            Command::Subscribe { after_seq, reply } => {
                let _ = reply.send(self.subscribe(after_seq));
            }
        }
    }

    fn subscribe(&self, after_seq: Option<u64>) -> Result<Subscription, CommandError> {
        let live = self.events.subscribe();
        let Some(after_seq) = after_seq else {
            return Ok(Subscription {
                backlog: Vec::new(),
                live,
            });
        };
        if after_seq >= self.seq {
            return Ok(Subscription {
                backlog: Vec::new(),
                live,
            });
        }
        let oldest = self.ring.front().map_or(self.seq + 1, |e| e.seq);
        // 0 means "every kept event"; otherwise a gap is data loss.
        if after_seq != 0 && after_seq + 1 < oldest {
            return Err(CommandError::ResumeTooOld { oldest });
        }
        Ok(Subscription {
            backlog: self
                .ring
                .iter()
                .filter(|e| e.seq > after_seq)
                .cloned()
                .collect(),
            live,
        })
    }

    /// Checks a PIN off the event loop: the lockout now, the argon2 lookup
    /// on a blocking thread, whose result comes back as
    /// [`Command::CodeChecked`] and finishes `then`.
    fn check_pin(&mut self, pin: String, source: String, then: PinAction) {
        if let Some(locked) = self.users.locked(self.clock.now()) {
            self.finish_pin(locked, source, then);
            return;
        }
        let users = Arc::clone(&self.users_snapshot);
        let commands = self.commands.clone();
        tokio::spawn(async move {
            let found = tokio::task::spawn_blocking(move || lookup(&users, &pin))
                .await
                .unwrap_or(None);
            let _ = commands
                .send(Command::CodeChecked {
                    found,
                    source,
                    then,
                })
                .await;
        });
    }

    /// Acts on a checked PIN, recording refusals in the event stream.
    fn finish_pin(&mut self, check: CodeCheck, source: String, then: PinAction) {
        let anonymous = Actor {
            user: None,
            source: source.clone(),
        };
        match check {
            CodeCheck::Valid { user, duress, .. } => {
                self.persist();
                match then {
                    PinAction::Disarm { reply } => {
                        let by = Actor {
                            user: Some(user.clone()),
                            source,
                        };
                        let events = self.alarm.disarm(by.clone(), duress, self.clock.now());
                        self.siren_test_until = None;
                        self.commit(events, &by, None);
                        let _ = reply.send(Ok(Disarmed { user }));
                    }
                    PinAction::Arm {
                        mode,
                        force,
                        mut by,
                        reply,
                    } => {
                        by.user = Some(user);
                        if duress {
                            self.raise_duress(&by, &format!("armed {mode}"));
                        }
                        self.arm(mode, force, by, reply);
                    }
                }
            }
            CodeCheck::Wrong { attempts_left } => {
                self.note(
                    "code_refused",
                    &anonymous,
                    format!("wrong PIN from {source}; {attempts_left} attempts left"),
                );
                then.refuse(CommandError::WrongPin { attempts_left });
            }
            CodeCheck::LockedOut { retry_after_ms } => {
                self.note(
                    "lockout",
                    &anonymous,
                    format!(
                        "PIN refused from {source}: locked out for {} s after too many wrong PINs",
                        retry_after_ms.div_ceil(1000)
                    ),
                );
                then.refuse(CommandError::LockedOut { retry_after_ms });
            }
        }
    }

    /// A duress code was used to do `what`: a silent alert, and a record in
    /// the private log, never anything in the stream a watcher sees.
    fn raise_duress(&mut self, by: &Actor, what: &str) {
        warn!(
            user = ?by.user,
            source = %by.source,
            "DURESS code used: {what} as asked; silent alert raised"
        );
        let message = format!("{what} under duress by {}", Self::describe_actor(by));
        self.alert(
            "duress",
            "Duress code used".into(),
            message.clone(),
            None,
            None,
        );
        if let Some(log) = &mut self.log {
            let (mode, alarm) = self.alarm.state().phase.table_codes();
            log.append_hidden(&EventRecord {
                seq: 0,
                unix_ms: now_ms(),
                kind: "duress",
                sensor: None,
                mode,
                alarm,
                user: by.user.clone(),
                source: by.source.clone(),
                message,
                trace_id: None,
            });
        }
    }

    fn arm(&mut self, mode: ArmedMode, force: bool, by: Actor, reply: Reply<Vec<String>>) {
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
                self.commit(events, &by, None);
                let _ = reply.send(Ok(bypassed));
            }
            Err(e) => {
                self.note("arm_refused", &by, format!("arming {mode} refused: {e}"));
                let _ = reply.send(Err(e.into()));
            }
        }
    }

    fn sensor_name(&self, slot: usize) -> String {
        self.alarm
            .setup()
            .sensors
            .get(slot)
            .map_or_else(|| format!("slot {slot}"), |s| s.name.clone())
    }

    fn describe_actor(by: &Actor) -> String {
        match &by.user {
            Some(user) => format!("{user} ({})", by.source),
            None => by.source.clone(),
        }
    }

    /// Records an event that is not a state change.
    fn note(&mut self, kind: &'static str, by: &Actor, message: String) {
        let (mode, alarm) = self.table_codes();
        self.push(EventRecord {
            seq: 0,
            unix_ms: now_ms(),
            kind,
            sensor: None,
            mode,
            alarm,
            user: by.user.clone(),
            source: by.source.clone(),
            message,
            trace_id: None,
        });
        self.persist();
        self.publish_status();
    }

    /// Turns machine events into records, persists, publishes.
    fn commit(&mut self, events: Vec<AlarmEvent>, by: &Actor, trace: Option<String>) {
        if events
            .iter()
            .any(|e| matches!(e, AlarmEvent::Disarmed { .. }))
        {
            self.entry_trace = None;
        }
        let (mode, alarm) = self.table_codes();
        for event in &events {
            let (kind, sensor, message, actor): (&'static str, Option<usize>, String, Actor) =
                match event {
                    AlarmEvent::Arming {
                        mode, until, by, ..
                    } => (
                        "arming",
                        None,
                        format!(
                            "arming {mode} by {}: exit delay of {} s",
                            Self::describe_actor(by),
                            until.saturating_sub(self.clock.now()).div_ceil(1000)
                        ),
                        by.clone(),
                    ),
                    AlarmEvent::Armed { mode, bypassed, by } => (
                        "armed",
                        None,
                        if bypassed.is_empty() {
                            format!("armed {mode} by {}", Self::describe_actor(by))
                        } else {
                            format!(
                                "armed {mode} by {}, bypassing {}",
                                Self::describe_actor(by),
                                bypassed
                                    .iter()
                                    .map(|&s| self.sensor_name(s))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        },
                        by.clone(),
                    ),
                    AlarmEvent::Disarmed { by } => (
                        "disarmed",
                        None,
                        format!("disarmed by {}", Self::describe_actor(by)),
                        by.clone(),
                    ),
                    AlarmEvent::Duress { by } => {
                        self.raise_duress(by, "disarmed");
                        continue;
                    }
                    AlarmEvent::EntryDelay { slot, until } => (
                        "entry_delay",
                        Some(*slot),
                        format!(
                            "{} opened: entry delay, disarm within {} s",
                            self.sensor_name(*slot),
                            until.saturating_sub(self.clock.now()).div_ceil(1000)
                        ),
                        by.clone(),
                    ),
                    AlarmEvent::Triggered { cause, .. } => {
                        let (slot, what) = match cause {
                            TriggerCause::Sensor(s) => (Some(*s), self.sensor_name(*s)),
                            TriggerCause::Zone(s) => (Some(*s), self.sensor_name(*s)),
                            TriggerCause::Tamper(s) => {
                                (Some(*s), format!("tamper on {}", self.sensor_name(*s)))
                            }
                            TriggerCause::Fault(s) => {
                                (Some(*s), format!("fault on {}", self.sensor_name(*s)))
                            }
                            TriggerCause::Panic => (None, "panic".to_owned()),
                        };
                        (
                            "triggered",
                            slot,
                            format!("ALARM: {what}; siren on"),
                            by.clone(),
                        )
                    }
                    AlarmEvent::SirenTimedOut { back_to } => (
                        "siren_timed_out",
                        None,
                        format!("siren time over; back to {back_to}"),
                        Actor::system(),
                    ),
                    AlarmEvent::Bypass { slot, on, by } => (
                        "bypass",
                        Some(*slot),
                        format!(
                            "{} {} by {}",
                            self.sensor_name(*slot),
                            if *on { "bypassed" } else { "restored" },
                            Self::describe_actor(by)
                        ),
                        by.clone(),
                    ),
                    AlarmEvent::SensorArmed { slot } => (
                        "sensor_armed",
                        Some(*slot),
                        format!("{} closed and is armed now", self.sensor_name(*slot)),
                        by.clone(),
                    ),
                    AlarmEvent::Knock { slot, group } => (
                        "knock",
                        Some(*slot),
                        format!(
                            "{}: first of double-knock group {group}",
                            self.sensor_name(*slot)
                        ),
                        by.clone(),
                    ),
                    AlarmEvent::Fault { slot } => (
                        "fault",
                        Some(*slot),
                        format!("{} reports a fault", self.sensor_name(*slot)),
                        by.clone(),
                    ),
                    AlarmEvent::FaultCleared { slot } => (
                        "fault_cleared",
                        Some(*slot),
                        format!("{} is healthy again", self.sensor_name(*slot)),
                        by.clone(),
                    ),
                    AlarmEvent::Tamper { slot } => (
                        "tamper",
                        Some(*slot),
                        format!("tamper on {}", self.sensor_name(*slot)),
                        by.clone(),
                    ),
                    AlarmEvent::Chime { slot } => {
                        self.chime_until = Some(Instant::now() + CHIME);
                        (
                            "chime",
                            Some(*slot),
                            format!("chime: {}", self.sensor_name(*slot)),
                            by.clone(),
                        )
                    }
                };
            let record = EventRecord {
                seq: 0,
                unix_ms: now_ms(),
                kind,
                sensor: sensor.map(|s| self.sensor_name(s)),
                mode,
                alarm,
                user: actor.user.clone(),
                source: actor.source.clone(),
                message,
                trace_id: trace.clone(),
            };
            match kind {
                "triggered" => warn!(trace_id = ?trace, "{}", record.message),
                "chime" => {}
                _ => info!("{}", record.message),
            }
            self.push(record);
        }
        if !events.is_empty() {
            self.persist();
        }
        self.publish_status();
    }

    /// Makes an alert for the hub to post.
    fn alert(
        &mut self,
        kind: &str,
        title: String,
        message: String,
        sensor: Option<String>,
        trace_id: Option<String>,
    ) {
        let Some(priority) = alert_priority(kind) else {
            return;
        };
        self.alert_counter += 1;
        self.alerts.push(AlertMessage {
            id: format!("{:x}-{}", self.boot_ms, self.alert_counter),
            priority: priority.as_str().to_owned(),
            kind: kind.to_owned(),
            title,
            message,
            sensor,
            unix_ms: now_ms(),
            trace_id,
            traceparent: self.alert_parent.clone(),
        });
    }

    /// The alerts made since the last call. The hub journals them, then
    /// calls [`Engine::save_after_alerts`].
    pub fn drain_alerts(&mut self) -> Vec<AlertMessage> {
        std::mem::take(&mut self.alerts)
    }

    /// Saves a state change that waited for its alerts to be journaled,
    /// and shows in the status whether that worked.
    pub fn save_after_alerts(&mut self) {
        if self.unsaved {
            self.save_state();
            self.publish_status();
        }
    }

    fn push(&mut self, mut record: EventRecord) {
        if alert_priority(record.kind).is_some() {
            let title = match record.kind {
                "triggered" => record
                    .message
                    .split(';')
                    .next()
                    .unwrap_or("ALARM")
                    .to_owned(),
                _ => record.message.clone(),
            };
            self.alert(
                record.kind,
                title,
                record.message.clone(),
                record.sensor.clone(),
                record.trace_id.clone(),
            );
        }
        self.seq += 1;
        record.seq = self.seq;
        if let Some(log) = &mut self.log {
            log.append(&record);
        }
        let record = Arc::new(record);
        if self.ring.len() == EVENT_RING {
            self.ring.pop_front();
        }
        self.ring.push_back(Arc::clone(&record));
        // No receivers is fine: nobody is watching.
        let _ = self.events.send(record);
    }

    /// Saves the state, or, when the change made alerts that the hub will
    /// journal (alarm, tamper, fault), marks it to be saved once the hub has
    /// journaled them, in the same turn of its loop.
    ///
    /// Architecture Invariant: an alert is journaled before the state
    /// change that made it is saved. A hub killed between the two posts
    /// the alert again after a restart (at least once); in the other order
    /// it would find the alarm saved and its alert gone. The price: a reply
    /// the engine sends in that turn (to a duress disarm, or a PIN that
    /// causes a lockout) can leave before the state is saved.
    fn persist(&mut self) {
        // Only alerts above info are journaled; info alerts never wait.
        if self
            .alerts
            .iter()
            .any(|a| a.priority() > AlertPriority::Info)
        {
            self.unsaved = true;
        } else {
            self.save_state();
        }
    }

    /// Saves the state now. A failure is logged and shown as a system fault
    /// in the status until a save succeeds again (the alarm itself goes
    /// on).
    fn save_state(&mut self) {
        self.unsaved = false;
        let state = Restored {
            alarm: self.alarm.state().clone(),
            lockout: self.users.lockout,
            event_seq: self.seq,
        };
        match self.store.save(self.alarm.setup(), &state) {
            Ok(()) => self.save_error = None,
            Err(e) => {
                error!("the alarm state was not saved: {e}; a restart now would lose it");
                self.save_error = Some(format!("state not saved: {e}"));
            }
        }
    }

    fn publish_status(&self) {
        let (mode, alarm) = self.table_codes();
        let state = self.alarm.state();
        let setup = self.alarm.setup();
        let names = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..setup.sensors.len())
                .filter(|&s| pred(s))
                .map(|s| setup.sensors[s].name.clone())
                .collect()
        };
        let now = self.clock.now();
        let snapshot = StatusSnapshot {
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
            locked_until_unix_ms: self.users.lockout.locked_until.filter(|&t| t > now),
            last_seq: self.seq,
        };
        self.status.send_if_modified(|current| {
            if **current == snapshot {
                false
            } else {
                *current = Arc::new(snapshot);
                true
            }
        });
    }

    /// Takes a new configuration: sensors are matched by name, so the
    /// state (bypasses, a running delay) carries over; users are replaced,
    /// the lockout kept.
    pub fn reconfigure(&mut self, setup: AlarmSetup, users: Users) {
        // Saved now, whatever waits: the state is read back just below.
        self.save_state();
        let restored = match self.store.load(&setup) {
            Ok(r) => r,
            Err(e) => {
                error!("cannot carry the alarm state over the reload: {e}");
                return;
            }
        };
        let lockout = self.users.lockout;
        self.users = users;
        self.users.lockout = lockout;
        self.users_snapshot = self.users.snapshot();
        self.alarm = Alarm::new(setup, restored.alarm);
        self.publish_status();
    }
}

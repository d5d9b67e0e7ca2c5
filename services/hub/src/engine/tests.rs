//! The engine's unit tests, table-driven like vigil-alarm's: inputs in,
//! effects out — events, alerts, saves, answers — and the rule that holds
//! for every input: whatever changes what is saved asks for a save, and
//! every answer travels with the save of what it reports.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::oneshot;
use vigil_alarm::users::{User, Users, hash_pin, lookup};
use vigil_alarm::{Actor, AlarmSensor, AlarmSetup};
use vigil_domain::{
    AlarmConfig, AlertPriority, ArmedMode, EventKind, ModeTiming, Response, Role, SensorKind,
    SensorState, TraceContext,
};
use vigil_ipc::table::SensorReading;

use super::*;
use crate::clock::AlarmClock;
use crate::commands::{Command, CommandError, Disarmed};
use crate::persist::Restored;

const FRONT_DOOR: usize = 0;
const HALL: usize = 1;
const PANIC_BUTTON: usize = 2;
const BOX_TAMPER: usize = 3;

fn sensor(name: &str, kind: SensorKind, response: Response) -> AlarmSensor {
    AlarmSensor {
        name: name.into(),
        kind,
        modes: [ArmedMode::Away, ArmedMode::Home, ArmedMode::Night]
            .into_iter()
            .collect(),
        response,
        arm_after_close: false,
        auto_bypass: false,
        double_knock: None,
        trigger_on_fault: false,
    }
}

fn setup() -> AlarmSetup {
    let timing = ModeTiming {
        exit_delay: Duration::from_secs(60),
        entry_delay: Duration::from_secs(30),
        trigger_time: Duration::from_secs(180),
    };
    AlarmSetup {
        sensors: vec![
            sensor("front-door", SensorKind::Door, Response::EntryDelay),
            sensor("hall", SensorKind::Motion, Response::Instant),
            sensor("panic-button", SensorKind::Panic, Response::Instant),
            sensor("box-tamper", SensorKind::Tamper, Response::Instant),
        ],
        alarm: AlarmConfig {
            modes: [ArmedMode::Away, ArmedMode::Home, ArmedMode::Night]
                .into_iter()
                .map(|m| (m, timing))
                .collect(),
            chime: true,
            double_knock_window: Duration::from_secs(30),
            require_pin_to_arm: false,
        },
    }
}

/// alice: PIN 1234, duress 9999 (hashed once: argon2 is slow on purpose).
fn users() -> Users {
    static ALICE: OnceLock<User> = OnceLock::new();
    let alice = ALICE.get_or_init(|| {
        let pin = hash_pin("1234").expect("hash");
        let duress = hash_pin("9999").expect("hash");
        User::new("alice", Role::Admin, &pin, Some(&duress)).expect("user")
    });
    Users::new(vec![alice.clone()], Default::default())
}

fn phone() -> Actor {
    Actor {
        user: None,
        source: "grpc:phone".into(),
    }
}

/// One input to the engine.
#[derive(Clone, Debug)]
enum Input {
    Arm(ArmedMode),
    Disarm(&'static str),
    /// A PIN from another source than the phone.
    DisarmFrom(&'static str, &'static str),
    Panic,
    Bypass(&'static str, bool),
    /// Bypass with a PIN (as needed while armed).
    BypassWithPin(&'static str, &'static str),
    /// A sensor opens (true) or closes, traced as this test's trace.
    Sensor(usize, bool),
    /// Time passes (ms), then a tick.
    Wait(u64),
    Camera(EventKind, &'static str),
}

/// What one input did, in a form a table can state.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    events: Vec<String>,
    hidden: Vec<String>,
    alerts: Vec<(String, AlertPriority)>,
    save: bool,
    /// `ok` or the refusal's message, in order.
    answers: Vec<String>,
}

fn outcome(fx: &Effects) -> Outcome {
    Outcome {
        events: fx.kinds().into_iter().map(str::to_owned).collect(),
        hidden: fx.hidden.iter().map(|e| e.kind.to_string()).collect(),
        alerts: fx
            .alerts
            .iter()
            .map(|a| (a.kind.clone(), a.priority()))
            .collect(),
        save: fx.save,
        answers: fx
            .answers
            .iter()
            .map(|a| a.error().map_or("ok".to_owned(), ToString::to_string))
            .collect(),
    }
}

/// The trace every traced sensor change of these tests carries: sensord's
/// span (from the slot) and the hub's span for the change.
fn door_trace() -> (TraceContext, TraceContext) {
    let sensord = TraceContext {
        trace_id: [7; 16],
        span_id: [1; 8],
        flags: 1,
    };
    let hub = TraceContext {
        span_id: [2; 8],
        ..sensord
    };
    (sensord, hub)
}

struct Rig {
    engine: Engine,
    /// Answers' receivers, kept so a send never fails.
    pending: Vec<Box<dyn std::any::Any>>,
}

impl Rig {
    fn new() -> Rig {
        Rig::restored(Restored::default())
    }

    fn restored(restored: Restored) -> Rig {
        Rig {
            engine: Engine::with_clock(setup(), users(), restored, AlarmClock::at(1_000_000)),
            pending: Vec::new(),
        }
    }

    fn reply<T: 'static>(&mut self) -> Reply<T> {
        let (tx, rx) = oneshot::channel::<Result<T, CommandError>>();
        self.pending.push(Box::new(rx));
        tx
    }

    /// Runs the PIN checks an input asked for, as the hub would, folding
    /// their effects into one.
    fn settle(&mut self, mut fx: Effects) -> Effects {
        let checks = std::mem::take(&mut fx.pin_checks);
        for check in checks {
            let found = Ok(lookup(&check.users, &check.pin));
            let more = self.engine.code_checked(CheckedPin {
                found,
                source: check.source,
                then: check.then,
            });
            let more = self.settle(more);
            fx.events.extend(more.events);
            fx.hidden.extend(more.hidden);
            fx.alerts.extend(more.alerts);
            fx.save |= more.save;
            fx.answers.extend(more.answers);
        }
        fx
    }

    fn input(&mut self, input: Input) -> Effects {
        let fx = match input {
            Input::Arm(mode) => {
                let reply = self.reply();
                self.engine.handle(Command::Arm {
                    mode,
                    force: false,
                    pin: None,
                    by: phone(),
                    reply,
                })
            }
            Input::Disarm(pin) => self.input(Input::DisarmFrom("grpc:phone", pin)),
            Input::DisarmFrom(source, pin) => {
                let reply = self.reply();
                self.engine.handle(Command::Disarm {
                    pin: pin.into(),
                    source: source.into(),
                    reply,
                })
            }
            Input::Panic => {
                let reply = self.reply();
                self.engine.handle(Command::Panic { by: phone(), reply })
            }
            Input::Bypass(sensor, on) => {
                let reply = self.reply();
                self.engine.handle(Command::Bypass {
                    sensor: sensor.into(),
                    on,
                    pin: None,
                    by: phone(),
                    reply,
                })
            }
            Input::BypassWithPin(sensor, pin) => {
                let reply = self.reply();
                self.engine.handle(Command::Bypass {
                    sensor: sensor.into(),
                    on: true,
                    pin: Some(pin.into()),
                    by: phone(),
                    reply,
                })
            }
            Input::Sensor(slot, open) => {
                let (sensord, hub) = door_trace();
                let reading = SensorReading {
                    state: if open {
                        SensorState::Active
                    } else {
                        SensorState::Inactive
                    },
                    fault: false,
                    tamper: slot == BOX_TAMPER && open,
                    bypassed: false,
                    change_count: 1,
                    changed_unix_ns: 0,
                    changed_mono_ns: 0,
                    trace: sensord,
                };
                self.engine
                    .on_sensor(slot, &reading, Cause::of_change(sensord, hub))
            }
            Input::Wait(ms) => {
                self.engine.clock.advance(ms);
                self.engine.tick()
            }
            Input::Camera(kind, camera) => self.engine.handle(Command::CameraEvent {
                kind,
                camera: camera.into(),
                message: format!("{camera} did something"),
            }),
        };
        let fx = self.settle(fx);
        check_invariants(&fx);
        fx
    }
}

/// What holds for every input: an event (streamed or silent) changes the
/// saved event number or state, so it asks for a save; events are numbered
/// one after another.
fn check_invariants(fx: &Effects) {
    if !fx.events.is_empty() || !fx.hidden.is_empty() {
        assert!(fx.save, "events without a save: {:?}", fx.kinds());
    }
    for pair in fx.events.windows(2) {
        assert_eq!(pair[1].seq, pair[0].seq + 1, "numbered in order");
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn alerts(items: &[(&str, AlertPriority)]) -> Vec<(String, AlertPriority)> {
    items.iter().map(|(k, p)| ((*k).to_owned(), *p)).collect()
}

/// An answer of `ok`.
const OK: &[&str] = &["ok"];

impl Outcome {
    /// Events that ask for a save, with these alerts (kind, priority).
    fn saved(events: &[&str], alerted: &[(&str, AlertPriority)]) -> Outcome {
        Outcome {
            events: strings(events),
            alerts: alerts(alerted),
            save: true,
            ..Outcome::default()
        }
    }

    /// With these silent events.
    fn hiding(self, hidden: &[&str]) -> Outcome {
        Outcome {
            hidden: strings(hidden),
            ..self
        }
    }

    /// With these answers: `ok` or the refusal's message, in order.
    fn answered(self, answers: &[&str]) -> Outcome {
        Outcome {
            answers: strings(answers),
            ..self
        }
    }
}

/// Each case: inputs, and what the last one must do.
#[test]
fn sequences_of_inputs_give_the_effects_a_user_expects() {
    use AlertPriority::{Alarm, Fault, Info, Tamper};
    use Input::*;
    let cases: Vec<(&str, Vec<Input>, Outcome)> = vec![
        (
            "arming away starts the exit delay, answered once saved",
            vec![Arm(ArmedMode::Away)],
            Outcome::saved(&["arming"], &[("arming", Info)]).answered(OK),
        ),
        (
            "the exit delay runs out",
            vec![Arm(ArmedMode::Away), Wait(60_000)],
            Outcome::saved(&["armed"], &[("armed", Info)]),
        ),
        (
            "the door opens while armed: the entry delay",
            vec![Arm(ArmedMode::Away), Wait(60_000), Sensor(FRONT_DOOR, true)],
            Outcome::saved(&["sensor", "entry_delay"], &[("entry_delay", Info)]),
        ),
        (
            "the entry delay runs out: the alarm, with an alarm alert",
            vec![
                Arm(ArmedMode::Away),
                Wait(60_000),
                Sensor(FRONT_DOOR, true),
                Wait(30_000),
            ],
            Outcome::saved(&["triggered"], &[("triggered", Alarm)]),
        ),
        (
            "a valid PIN disarms the alarm, answered once saved",
            vec![Panic, Disarm("1234")],
            Outcome::saved(&["disarmed"], &[("disarmed", Info)]).answered(OK),
        ),
        (
            "a panic triggers at once and is saved before it is answered",
            vec![Panic],
            Outcome::saved(&["triggered"], &[("triggered", Alarm)]).answered(OK),
        ),
        (
            "a duress code disarms visibly and alerts silently, saved before the answer",
            vec![Arm(ArmedMode::Away), Disarm("9999")],
            Outcome::saved(&["disarmed"], &[("disarmed", Info), ("duress", Alarm)])
                .hiding(&["duress"])
                .answered(OK),
        ),
        (
            "a wrong PIN is refused and counted (saved)",
            vec![Arm(ArmedMode::Away), Disarm("0000")],
            Outcome::saved(&["code_refused"], &[])
                .answered(&["wrong PIN; 4 attempts left before a 90 s lockout"]),
        ),
        (
            "bypassing a sensor that does not exist changes nothing",
            vec![Bypass("garage", true)],
            Outcome::default().answered(&["no sensor named \"garage\""]),
        ),
        (
            "a bypass while disarmed needs no PIN, is saved before it is answered, and \
             is an info alert",
            vec![Bypass("hall", true)],
            Outcome::saved(&["bypass"], &[("bypass", Info)]).answered(OK),
        ),
        (
            "a bypass while armed without a PIN is refused and changes nothing",
            vec![Arm(ArmedMode::Away), Bypass("hall", true)],
            Outcome::default()
                .answered(&["bypassing a sensor while the system is armed needs a PIN"]),
        ),
        (
            "a bypass while armed with a wrong PIN is a wrong PIN",
            vec![Arm(ArmedMode::Away), BypassWithPin("hall", "0000")],
            Outcome::saved(&["code_refused"], &[])
                .answered(&["wrong PIN; 4 attempts left before a 90 s lockout"]),
        ),
        (
            "a bypass while armed with a valid PIN is done and alerted",
            vec![Arm(ArmedMode::Away), BypassWithPin("hall", "1234")],
            Outcome::saved(&["bypass"], &[("bypass", Info)]).answered(OK),
        ),
        (
            "restoring a sensor while armed needs no PIN",
            vec![
                Bypass("hall", true),
                Arm(ArmedMode::Away),
                Bypass("hall", false),
            ],
            Outcome::saved(&["bypass"], &[("bypass", Info)]).answered(OK),
        ),
        (
            "an empty PIN is refused without a lookup and not counted",
            vec![Arm(ArmedMode::Away), Disarm("")],
            Outcome::default().answered(&["no PIN was given"]),
        ),
        (
            "a PIN that cannot be one is refused without a lookup and not counted",
            vec![Arm(ArmedMode::Away), Disarm("12345678901234567890")],
            Outcome::default().answered(&["a PIN is 4 to 12 digits"]),
        ),
        (
            "a tamper triggers even when disarmed",
            vec![Sensor(BOX_TAMPER, true)],
            Outcome::saved(
                &["sensor", "tamper", "triggered"],
                &[("tamper", Tamper), ("triggered", Alarm)],
            ),
        ),
        (
            "the panic button is a 24-hour zone",
            vec![Sensor(PANIC_BUTTON, true)],
            Outcome::saved(&["sensor", "triggered"], &[("triggered", Alarm)]),
        ),
        (
            "a door opening while disarmed chimes",
            vec![Sensor(FRONT_DOOR, true)],
            Outcome::saved(&["sensor", "chime"], &[]),
        ),
        (
            "a camera going offline is a fault alert",
            vec![Camera(EventKind::CameraOffline, "porch")],
            Outcome::saved(&["camera_offline"], &[("camera_offline", Fault)]),
        ),
        (
            "arming with the hall open is refused, and the refusal logged",
            vec![Sensor(HALL, true), Arm(ArmedMode::Away)],
            Outcome::saved(&["arm_refused"], &[])
                .answered(&["cannot arm: hall open; close them or arm with force to bypass them"]),
        ),
    ];
    for (name, inputs, want) in cases {
        let mut rig = Rig::new();
        let mut last = Effects::default();
        for input in inputs {
            last = rig.input(input);
        }
        let got = outcome(&last);
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn ten_wrong_pins_lock_every_pin_out_and_the_lockout_is_saved() {
    let mut rig = Rig::new();
    rig.input(Input::Arm(ArmedMode::Away));
    let sources = ["grpc:a", "grpc:b", "fifo"];
    for i in 0..9 {
        rig.input(Input::DisarmFrom(sources[i % 3], "0000"));
    }
    let fx = rig.input(Input::DisarmFrom("grpc:a", "0000"));
    let got = outcome(&fx);
    assert_eq!(got.events, strings(&["lockout"]));
    assert_eq!(got.alerts, alerts(&[("lockout", AlertPriority::Tamper)]));
    assert!(got.save);
    assert!(got.answers[0].starts_with("too many wrong PINs"), "{got:?}");
    assert!(rig.engine.to_save().lockout.locked_until.is_some());
    // While locked out, even the right PIN is refused without a lookup.
    let reply = rig.reply();
    let fx = rig.engine.handle(Command::Disarm {
        pin: "1234".into(),
        source: "fifo".into(),
        reply,
    });
    assert!(fx.pin_checks.is_empty(), "no argon2 while locked out");
    assert!(matches!(
        fx.answers[0].error(),
        Some(CommandError::LockedOut { .. })
    ));
    // After 90 s the valid code disarms.
    rig.engine.clock.advance(90_001);
    let fx = rig.input(Input::Disarm("1234"));
    assert_eq!(outcome(&fx).events, strings(&["disarmed"]));
}

#[test]
fn a_pin_check_that_failed_is_refused_and_not_counted() {
    let mut rig = Rig::new();
    let reply = rig.reply();
    let fx = rig.engine.code_checked(CheckedPin {
        found: Err(CommandError::PinCheckFailed),
        source: "grpc:phone".into(),
        then: PinAction::Disarm { reply },
    });
    assert!(matches!(
        fx.answers[0].error(),
        Some(CommandError::PinCheckFailed)
    ));
    assert!(!fx.save && fx.events.is_empty());
    assert_eq!(rig.engine.to_save().lockout.failures, 0);
    let fx = rig.input(Input::Disarm("0000"));
    assert_eq!(
        outcome(&fx).answers,
        strings(&["wrong PIN; 4 attempts left before a 90 s lockout"])
    );
}

#[test]
fn one_client_locks_out_only_itself_and_the_lockout_alerts_once() {
    let mut rig = Rig::new();
    rig.input(Input::Arm(ArmedMode::Away));
    for _ in 0..4 {
        rig.input(Input::DisarmFrom("grpc:teen", "0000"));
    }
    let fx = rig.input(Input::DisarmFrom("grpc:teen", "0000"));
    let got = outcome(&fx);
    assert_eq!(got.events, strings(&["lockout"]));
    assert_eq!(got.alerts, alerts(&[("lockout", AlertPriority::Tamper)]));
    assert!(
        fx.events[0].message.contains("PINs from there"),
        "{:?}",
        fx.events
    );
    // Refused during the lockout: answered, with no event and no alert, so
    // a flood of them costs neither the disk nor the owner's phone.
    for pin in ["0000", "1234"] {
        let fx = rig.input(Input::DisarmFrom("grpc:teen", pin));
        let got = outcome(&fx);
        assert!(
            got.events.is_empty() && got.alerts.is_empty() && !got.save,
            "{got:?}"
        );
        assert!(got.answers[0].starts_with("too many wrong PINs"), "{got:?}");
    }
    // The owner's phone still disarms.
    let fx = rig.input(Input::DisarmFrom("grpc:owner", "1234"));
    assert_eq!(outcome(&fx).events, strings(&["disarmed"]));
}

#[test]
fn a_disarm_answer_names_the_user_and_events_name_who_did_what() {
    let mut rig = Rig::new();
    rig.input(Input::Arm(ArmedMode::Away));
    let fx = rig.input(Input::Disarm("1234"));
    let Answer::Disarmed(_, Ok(Disarmed { user })) = &fx.answers[0] else {
        panic!("{:?}", fx.answers);
    };
    assert_eq!(user, "alice");
    let event = &fx.events[0];
    assert_eq!(event.user.as_deref(), Some("alice"));
    assert_eq!(event.source, "grpc:phone");
    assert_eq!(event.mode, ArmedMode::Disarmed);
}

#[test]
fn a_sensor_event_carries_its_state_and_a_camera_event_its_camera() {
    let mut rig = Rig::new();
    let fx = rig.input(Input::Sensor(FRONT_DOOR, true));
    let sensor = &fx.events[0];
    assert_eq!(sensor.kind, EventKind::Sensor);
    assert_eq!(sensor.sensor.as_deref(), Some("front-door"));
    assert_eq!(sensor.sensor_state, Some(SensorState::Active));
    assert_eq!(sensor.message, "front-door open");
    let fx = rig.input(Input::Camera(EventKind::ClipRecorded, "porch"));
    let clip = &fx.events[0];
    assert_eq!(
        (clip.camera.as_deref(), clip.sensor.as_deref()),
        (Some("porch"), None)
    );
    assert_eq!(clip.source, "camera");
}

#[test]
fn the_alarm_after_an_entry_delay_continues_the_doors_trace() {
    let mut rig = Rig::new();
    rig.input(Input::Arm(ArmedMode::Away));
    rig.input(Input::Wait(60_000));
    let (sensord, hub) = door_trace();
    let fx = rig.input(Input::Sensor(FRONT_DOOR, true));
    for event in &fx.events {
        assert_eq!(event.trace_id, Some(sensord.trace_id_hex()));
    }
    let fx = rig.input(Input::Wait(30_000));
    let alarm = &fx.alerts[0];
    assert_eq!(alarm.kind, "triggered");
    assert_eq!(alarm.title, "ALARM: front-door");
    assert_eq!(alarm.message, "ALARM: front-door; siren on");
    // The alert's parent is the hub's span for the change, not sensord's.
    assert_eq!(alarm.traceparent, Some(hub.traceparent()));
    assert_eq!(alarm.trace_id, Some(sensord.trace_id_hex()));
}

#[test]
fn a_change_the_hub_did_not_trace_is_parented_to_sensords_span() {
    let (sensord, _) = door_trace();
    let cause = Cause::of_change(sensord, TraceContext::default());
    assert_eq!(cause.parent, Some(sensord.traceparent()));
    assert_eq!(
        Cause::of_change(TraceContext::default(), TraceContext::default()),
        Cause::default()
    );
}

#[test]
fn alert_ids_are_distinct_and_event_numbers_continue_from_the_saved_state() {
    let mut rig = Rig::restored(Restored {
        event_seq: 41,
        ..Restored::default()
    });
    let first = rig.input(Input::Panic);
    assert_eq!(first.events[0].seq, 42);
    let second = rig.input(Input::Disarm("1234"));
    assert_eq!(second.events[0].seq, 43);
    let ids: BTreeSet<&str> = first
        .alerts
        .iter()
        .chain(&second.alerts)
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(ids.len(), first.alerts.len() + second.alerts.len());
    assert_eq!(rig.engine.to_save().event_seq, 43);
}

#[test]
fn a_reload_carries_bypasses_and_a_running_delay_over_by_name_in_memory() {
    let mut rig = Rig::new();
    rig.input(Input::Bypass("hall", true));
    rig.input(Input::Arm(ArmedMode::Away));
    // The new config lists the sensors in another order.
    let mut reordered = setup();
    reordered.sensors.reverse();
    rig.engine.reconfigure(reordered, users());
    let status = rig.engine.status();
    assert_eq!(status.bypassed, strings(&["hall"]));
    assert_eq!(status.mode, ArmedMode::Away);
    assert_eq!(status.alarm, vigil_domain::AlarmState::Arming);
    let deadline = status.deadline_unix_ms.expect("the exit delay runs on");
    assert!(deadline <= rig.engine.clock.now() + 60_000);
}

#[test]
fn the_status_lists_open_sensors_and_a_failed_save() {
    let mut rig = Rig::new();
    rig.input(Input::Sensor(FRONT_DOOR, true));
    rig.engine.saved(Err("disk full".into()));
    let status = rig.engine.status();
    assert_eq!(status.open, strings(&["front-door"]));
    assert_eq!(status.faults, strings(&["state not saved: disk full"]));
    rig.engine.saved(Ok(()));
    assert!(rig.engine.status().faults.is_empty());
}

#[test]
fn a_reload_replaces_the_config_files_users_and_keeps_the_apis() {
    let mut rig = Rig::new();
    let bob = User::new("bob", Role::User, &hash_pin("5555").expect("hash"), None).expect("bob");
    let shadow =
        User::new("alice", Role::User, &hash_pin("7777").expect("hash"), None).expect("shadow");
    rig.engine.set_managed_users(vec![bob, shadow]);
    // The config file's alice wins over the API's of the same name.
    assert_eq!(rig.engine.user_names(), strings(&["alice", "bob"]));
    // A reload whose config has no users: the config's alice goes; the
    // API's users stay, its alice no longer shadowed.
    rig.engine
        .reconfigure(setup(), Users::new(Vec::new(), Default::default()));
    assert_eq!(rig.engine.user_names(), strings(&["bob", "alice"]));
}

/// A sensor not reported yet (a Zigbee device sensord cannot hear before
/// its first message) is no state change, but its fault is one: raised,
/// and cleared only by a reading of a known state.
#[test]
fn an_unknown_sensor_that_reports_a_fault_is_a_fault() {
    let mut rig = Rig::new();
    let reading = |state, fault| SensorReading {
        state,
        fault,
        tamper: false,
        bypassed: false,
        change_count: 1,
        changed_unix_ns: 0,
        changed_mono_ns: 0,
        trace: TraceContext::default(),
    };
    let unknown_quiet = rig.engine.on_sensor(
        FRONT_DOOR,
        &reading(SensorState::Unknown, false),
        Cause::default(),
    );
    assert!(
        outcome(&unknown_quiet).events.is_empty(),
        "nothing known, nothing to say"
    );
    let unheard = rig.engine.on_sensor(
        FRONT_DOOR,
        &reading(SensorState::Unknown, true),
        Cause::default(),
    );
    assert_eq!(outcome(&unheard).events, vec!["fault".to_owned()]);
    // Still unknown, no fault flag: the fault stays.
    let still = rig.engine.on_sensor(
        FRONT_DOOR,
        &reading(SensorState::Unknown, false),
        Cause::default(),
    );
    assert!(outcome(&still).events.is_empty());
    // Heard, closed: cleared.
    let heard = rig.engine.on_sensor(
        FRONT_DOOR,
        &reading(SensorState::Inactive, false),
        Cause::default(),
    );
    assert_eq!(outcome(&heard).events, vec!["fault_cleared".to_owned()]);
}

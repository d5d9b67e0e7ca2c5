//! Scenario timelines (table-driven) and a property test over random event
//! sequences.

use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Duration;

use proptest::prelude::*;
use vigil_domain::{AlarmConfig, ModeTiming, Response, Role};
use vigil_domain::{AlarmState as Code, ArmedMode, SensorKind};

use super::*;
use crate::users::{CodeCheck, LOCKOUT_TIME, Lockout, User, Users, cheap_hash};

const FRONT: usize = 0; // door, entry delay
const WINDOW: usize = 1; // instant
const MOTION: usize = 2; // away and vacation only
const SMOKE: usize = 3; // 24-hour
const GARAGE: usize = 4; // door, arm after close
const PATIO: usize = 5; // window, auto bypass
const PIR_A: usize = 6; // double knock "hall", away
const PIR_B: usize = 7; // double knock "hall", away
const SENSORS: usize = 8;

fn sensor(name: &str, kind: SensorKind) -> AlarmSensor {
    AlarmSensor {
        name: name.into(),
        kind,
        modes: if kind.is_24_hour() {
            BTreeSet::new()
        } else {
            ArmedMode::ARMED.into()
        },
        response: if kind == SensorKind::Door {
            Response::EntryDelay
        } else {
            Response::Instant
        },
        arm_after_close: false,
        auto_bypass: false,
        double_knock: None,
        trigger_on_fault: false,
    }
}

fn setup() -> AlarmSetup {
    let mut sensors = vec![
        sensor("front-door", SensorKind::Door),
        sensor("window", SensorKind::Window),
        sensor("motion", SensorKind::Motion),
        sensor("smoke", SensorKind::Smoke),
        sensor("garage-door", SensorKind::Door),
        sensor("patio", SensorKind::Window),
        sensor("pir-a", SensorKind::Motion),
        sensor("pir-b", SensorKind::Motion),
    ];
    sensors[MOTION].modes = [ArmedMode::Away, ArmedMode::Vacation].into();
    sensors[GARAGE].arm_after_close = true;
    sensors[PATIO].auto_bypass = true;
    for pir in [PIR_A, PIR_B] {
        sensors[pir].modes = [ArmedMode::Away].into();
        sensors[pir].double_knock = Some("hall".into());
    }
    let timing = |exit, entry| ModeTiming {
        exit_delay: Duration::from_secs(exit),
        entry_delay: Duration::from_secs(entry),
        trigger_time: Duration::from_secs(180),
    };
    AlarmSetup {
        sensors,
        alarm: AlarmConfig {
            modes: [
                (ArmedMode::Away, timing(30, 20)),
                (ArmedMode::Home, timing(0, 10)),
                (ArmedMode::Night, timing(0, 0)),
                (ArmedMode::Vacation, timing(30, 20)),
                (ArmedMode::Custom, timing(60, 20)),
            ]
            .into(),
            chime: true,
            double_knock_window: Duration::from_secs(30),
            require_pin_to_arm: false,
        },
    }
}

#[derive(Clone, Copy, Debug)]
enum Step {
    Arm(ArmedMode),
    ForceArm(ArmedMode),
    Disarm,
    Open(usize),
    Close(usize),
    Fault(usize),
    Tamper(usize),
    Bypass(usize),
    Panic,
    Tick,
}

fn me() -> Actor {
    Actor {
        user: Some("alice".into()),
        source: "test".into(),
    }
}

/// Applies a step; returns the events (arming errors become no events).
fn apply(alarm: &mut Alarm, step: Step, now: Millis) -> Vec<AlarmEvent> {
    let live = |alarm: &Alarm, slot: usize| alarm.live(slot).unwrap_or_default();
    let mut events = alarm.tick(now);
    events.extend(match step {
        Step::Arm(mode) => alarm.arm(mode, false, me(), now).unwrap_or_default(),
        Step::ForceArm(mode) => alarm.arm(mode, true, me(), now).unwrap_or_default(),
        Step::Disarm => alarm.disarm(me(), false, now),
        Step::Open(s) => {
            let l = Live {
                active: true,
                ..live(alarm, s)
            };
            alarm.sensor(s, l, now)
        }
        Step::Close(s) => {
            let l = Live {
                active: false,
                ..live(alarm, s)
            };
            alarm.sensor(s, l, now)
        }
        Step::Fault(s) => {
            let l = Live {
                fault: true,
                ..live(alarm, s)
            };
            alarm.sensor(s, l, now)
        }
        Step::Tamper(s) => {
            let l = Live {
                tamper: true,
                ..live(alarm, s)
            };
            alarm.sensor(s, l, now)
        }
        Step::Bypass(s) => alarm.bypass(s, true, me(), now).unwrap_or_default(),
        Step::Panic => alarm.panic(me(), now),
        Step::Tick => Vec::new(),
    });
    events
}

/// Expected after a step: mode, alarm state, siren.
type Expect = (ArmedMode, Code, bool);
/// (seconds, step, expectation).
type Timeline = Vec<(u64, Step, Expect)>;

fn scenarios() -> Vec<(&'static str, Timeline)> {
    use ArmedMode::*;
    use Code::*;
    use Step::*;
    vec![
        (
            "away: exit delay, door, entry delay runs out, siren, back to armed",
            vec![
                (0, Arm(Away), (Away, Arming, false)),
                (29, Tick, (Away, Arming, false)),
                (30, Tick, (Away, Idle, false)),
                (100, Open(FRONT), (Away, Pending, false)),
                (119, Tick, (Away, Pending, false)),
                (120, Tick, (Away, Triggered, true)),
                (299, Tick, (Away, Triggered, true)),
                (300, Tick, (Away, Idle, false)),
            ],
        ),
        (
            "a code during the entry delay: no siren",
            vec![
                (0, Arm(Away), (Away, Arming, false)),
                (40, Open(FRONT), (Away, Pending, false)),
                (50, Disarm, (Disarmed, Idle, false)),
                (100, Tick, (Disarmed, Idle, false)),
            ],
        ),
        (
            "a window is instant; a code silences the siren",
            vec![
                (0, Arm(Away), (Away, Arming, false)),
                (31, Open(WINDOW), (Away, Triggered, true)),
                (40, Disarm, (Disarmed, Idle, false)),
            ],
        ),
        (
            "an instant sensor during the entry delay triggers at once",
            vec![
                (0, Arm(Home), (Home, Idle, false)),
                (1, Open(FRONT), (Home, Pending, false)),
                (2, Open(WINDOW), (Home, Triggered, true)),
            ],
        ),
        (
            "custom arms only the sensors that list it: motion no, window yes",
            vec![
                (0, Arm(Custom), (Custom, Arming, false)),
                (60, Tick, (Custom, Idle, false)),
                (61, Open(MOTION), (Custom, Idle, false)),
                (62, Open(WINDOW), (Custom, Triggered, true)),
            ],
        ),
        (
            "motion is not armed at home",
            vec![
                (0, Arm(Home), (Home, Idle, false)),
                (5, Open(MOTION), (Home, Idle, false)),
            ],
        ),
        (
            "smoke while disarmed: siren, then back to disarmed",
            vec![
                (0, Open(SMOKE), (Disarmed, Triggered, true)),
                (180, Tick, (Disarmed, Idle, false)),
            ],
        ),
        (
            "the door during the exit delay is the way out",
            vec![
                (0, Arm(Away), (Away, Arming, false)),
                (5, Open(FRONT), (Away, Arming, false)),
                (6, Close(FRONT), (Away, Arming, false)),
                (30, Tick, (Away, Idle, false)),
            ],
        ),
        (
            "an open window refuses arming; force bypasses it",
            vec![
                (0, Open(WINDOW), (Disarmed, Idle, false)),
                (1, Arm(Home), (Disarmed, Idle, false)),
                (2, ForceArm(Home), (Home, Idle, false)),
                (3, Close(WINDOW), (Home, Idle, false)),
                (4, Open(WINDOW), (Home, Idle, false)),
            ],
        ),
        (
            "arm after close: the garage is armed once it closes",
            vec![
                (0, Open(GARAGE), (Disarmed, Idle, false)),
                (1, Arm(Night), (Night, Idle, false)),
                (2, Close(GARAGE), (Night, Idle, false)),
                (3, Open(GARAGE), (Night, Triggered, true)),
            ],
        ),
        (
            "auto bypass: the open patio window is left out",
            vec![
                (0, Open(PATIO), (Disarmed, Idle, false)),
                (1, Arm(Night), (Night, Idle, false)),
                (2, Close(PATIO), (Night, Idle, false)),
                (3, Open(PATIO), (Night, Idle, false)),
            ],
        ),
        (
            "double knock: two sensors of a group within the window",
            vec![
                (0, Arm(Away), (Away, Arming, false)),
                (40, Open(PIR_A), (Away, Idle, false)),
                (41, Close(PIR_A), (Away, Idle, false)),
                (50, Open(PIR_B), (Away, Triggered, true)),
            ],
        ),
        (
            "double knock: one sensor twice, or two too far apart, do not trigger",
            vec![
                (0, Arm(Away), (Away, Arming, false)),
                (40, Open(PIR_A), (Away, Idle, false)),
                (41, Close(PIR_A), (Away, Idle, false)),
                (42, Open(PIR_A), (Away, Idle, false)),
                (100, Open(PIR_B), (Away, Idle, false)),
            ],
        ),
        (
            "panic while disarmed",
            vec![(0, Panic, (Disarmed, Triggered, true))],
        ),
        (
            "a tamper flag triggers in any mode",
            vec![(0, Tamper(WINDOW), (Disarmed, Triggered, true))],
        ),
        (
            "night has no entry delay: the door is instant",
            vec![
                (0, Arm(Night), (Night, Idle, false)),
                (1, Open(FRONT), (Night, Triggered, true)),
            ],
        ),
        (
            "a bypassed door is ignored until disarm",
            vec![
                (0, Bypass(FRONT), (Disarmed, Idle, false)),
                (1, Arm(Home), (Home, Idle, false)),
                (2, Open(FRONT), (Home, Idle, false)),
                (3, Disarm, (Disarmed, Idle, false)),
                (4, Close(FRONT), (Disarmed, Idle, false)),
                (5, Arm(Home), (Home, Idle, false)),
                (6, Open(FRONT), (Home, Pending, false)),
            ],
        ),
        (
            "a fault triggers only a sensor configured to",
            vec![
                (0, Arm(Home), (Home, Idle, false)),
                (1, Fault(WINDOW), (Home, Idle, false)),
            ],
        ),
        (
            "a long outage: the missed deadlines are applied in order",
            vec![
                (0, Arm(Away), (Away, Arming, false)),
                (31, Open(FRONT), (Away, Pending, false)),
                // 51: entry delay over; siren until 231; the tick at 240
                // finds both done.
                (240, Tick, (Away, Idle, false)),
            ],
        ),
    ]
}

#[test]
fn scenario_timelines() {
    for (name, timeline) in scenarios() {
        let mut alarm = Alarm::new(setup(), AlarmState::default());
        for (i, (t, step, (mode, code, siren))) in timeline.into_iter().enumerate() {
            apply(&mut alarm, step, t * 1000);
            let (got_mode, got_code) = alarm.state().phase.table_codes();
            assert_eq!(
                (got_mode, got_code, alarm.outputs().siren),
                (mode, code, siren),
                "{name}: step {i} ({step:?} at {t} s)"
            );
        }
    }
}

#[test]
fn arming_over_an_open_sensor_names_it_and_force_reports_the_bypass() {
    let mut alarm = Alarm::new(setup(), AlarmState::default());
    apply(&mut alarm, Step::Open(WINDOW), 0);
    let err = alarm
        .arm(ArmedMode::Away, false, me(), 0)
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "window open; close them or arm with force to bypass them"
    );
    let events = alarm.arm(ArmedMode::Away, true, me(), 0).expect("forced");
    assert!(matches!(
        &events[0],
        AlarmEvent::Arming { bypassed, .. } if bypassed == &vec![WINDOW]
    ));
}

#[test]
fn duress_disarms_and_adds_a_silent_event_and_24h_zones_refuse_bypass() {
    let mut alarm = Alarm::new(setup(), AlarmState::default());
    alarm.arm(ArmedMode::Home, false, me(), 0).expect("arm");
    let events = alarm.disarm(me(), true, 1);
    assert!(matches!(events[0], AlarmEvent::Disarmed { .. }));
    assert!(matches!(events[1], AlarmEvent::Duress { .. }));
    assert_eq!(alarm.state().phase, Phase::Disarmed);
    assert!(matches!(
        alarm.bypass(SMOKE, true, me(), 0),
        Err(BypassError::TwentyFourHour(_))
    ));
}

#[test]
fn chime_when_disarmed_buzzer_during_delays() {
    let mut alarm = Alarm::new(setup(), AlarmState::default());
    let events = apply(&mut alarm, Step::Open(FRONT), 0);
    assert_eq!(events, vec![AlarmEvent::Chime { slot: FRONT }]);
    apply(&mut alarm, Step::Close(FRONT), 1);
    alarm.arm(ArmedMode::Away, false, me(), 2).expect("arm");
    assert!(alarm.outputs().buzzer);
    apply(&mut alarm, Step::Tick, 40_000);
    assert!(!alarm.outputs().buzzer);
    apply(&mut alarm, Step::Open(FRONT), 41_000);
    assert!(alarm.outputs().buzzer, "entry delay beeps");
}

#[test]
fn a_restored_state_resumes_its_timer() {
    let mut alarm = Alarm::new(setup(), AlarmState::default());
    alarm.arm(ArmedMode::Away, false, me(), 0).expect("arm");
    apply(&mut alarm, Step::Tick, 31_000);
    apply(&mut alarm, Step::Open(FRONT), 40_000);
    // The hub restarts: a new machine from the persisted state.
    let mut restored = Alarm::new(setup(), alarm.state().clone());
    assert_eq!(restored.next_deadline(), Some(60_000));
    apply(&mut restored, Step::Tick, 59_999);
    assert_eq!(restored.state().phase.table_codes().1, Code::Pending);
    apply(&mut restored, Step::Tick, 60_000);
    assert!(restored.outputs().siren);
}

#[test]
fn a_restored_deadline_never_exceeds_its_configured_length() {
    let mut alarm = Alarm::new(setup(), AlarmState::default());
    alarm.arm(ArmedMode::Away, false, me(), 0).expect("arm");
    // A deadline within its configured length is kept as it is.
    let mut restored = Alarm::new(setup(), alarm.state().clone());
    restored.clamp_deadlines(1_000);
    assert_eq!(restored.next_deadline(), Some(30_000));
    // One that a backwards clock jump stretched is cut to the full delay.
    let mut stretched = alarm.state().clone();
    stretched.phase = Phase::Arming {
        mode: ArmedMode::Away,
        until: 10_000_000,
    };
    let mut clamped = Alarm::new(setup(), stretched);
    clamped.clamp_deadlines(5_000);
    assert_eq!(clamped.next_deadline(), Some(35_000));
}

fn step_strategy() -> impl Strategy<Value = Step> {
    let mode = prop::sample::select(ArmedMode::ARMED.to_vec());
    let slot = 0..SENSORS;
    prop_oneof![
        mode.clone().prop_map(Step::Arm),
        mode.prop_map(Step::ForceArm),
        Just(Step::Disarm),
        slot.clone().prop_map(Step::Open),
        slot.clone().prop_map(Step::Close),
        slot.clone().prop_map(Step::Fault),
        slot.clone().prop_map(Step::Tamper),
        slot.prop_map(Step::Bypass),
        Just(Step::Panic),
        Just(Step::Tick),
    ]
}

/// An input of the property test: a step, or a code typed at the keypad.
#[derive(Clone, Debug)]
enum Input {
    Step(Step),
    WrongCode,
    RightCode,
}

fn users() -> Users {
    static HASH: OnceLock<String> = OnceLock::new();
    let hash = HASH.get_or_init(|| cheap_hash("2468"));
    Users::new(
        vec![User::new("alice", Role::User, hash, None).expect("user")],
        Lockout::default(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever happens — sensors, faults, tamper, panic, forced arming,
    /// wrong codes up to a lockout, hours passing — a valid code, once any
    /// lockout has run out, always brings the system back to disarmed with
    /// the siren and buzzer off.
    #[test]
    fn prop_always_a_way_back(
        inputs in prop::collection::vec(
            prop_oneof![
                8 => step_strategy().prop_map(Input::Step),
                2 => Just(Input::WrongCode),
                1 => Just(Input::RightCode),
            ],
            0..60,
        ),
        gaps in prop::collection::vec(0u64..200_000, 60),
    ) {
        let mut alarm = Alarm::new(setup(), AlarmState::default());
        let mut keypad = users();
        let mut now: Millis = 1_700_000_000_000;
        for (input, gap) in inputs.iter().zip(gaps) {
            now += gap;
            match input {
                Input::Step(step) => { apply(&mut alarm, *step, now); }
                Input::WrongCode => { keypad.check("0000", "keypad", now); }
                Input::RightCode => {
                    if let CodeCheck::Valid { .. } = keypad.check("2468", "keypad", now) {
                        alarm.disarm(me(), false, now);
                    }
                }
            }
            // Invariants at every step: outputs follow the phase, and a
            // running timer is never in the past after a tick.
            let out = alarm.outputs();
            let phase = alarm.state().phase.clone();
            prop_assert_eq!(out.siren, matches!(phase, Phase::Triggered { .. }));
            alarm.tick(now);
            prop_assert!(alarm.next_deadline().is_none_or(|d| d > now));
        }
        // The way back: wait out any lockout, enter the code, disarmed.
        now += LOCKOUT_TIME;
        let check = keypad.check("2468", "keypad", now);
        prop_assert!(matches!(check, CodeCheck::Valid { .. }), "{:?}", check);
        alarm.disarm(me(), false, now);
        prop_assert_eq!(alarm.state().phase.clone(), Phase::Disarmed);
        prop_assert_eq!(alarm.outputs(), Outputs::default());
    }
}

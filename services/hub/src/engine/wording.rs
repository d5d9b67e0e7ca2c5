//! How events read: one line for people per event, and an alert's title.
//! Pure functions of what happened and the sensors' names, so the words can
//! change (or be translated) without touching the alarm.

use vigil_alarm::{Actor, AlarmEvent, ArmError, Millis, TriggerCause};
use vigil_domain::{ArmedMode, EventKind};

/// An event in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worded {
    pub kind: EventKind,
    /// The sensor concerned, by slot.
    pub slot: Option<usize>,
    pub message: String,
    /// The alert's title, where it differs from the message.
    pub title: Option<String>,
    /// Who did it, where the event itself says.
    pub by: Option<Actor>,
}

/// "alice (grpc:phone)", or just the source.
pub fn actor(by: &Actor) -> String {
    match &by.user {
        Some(user) => format!("{user} ({})", by.source),
        None => by.source.clone(),
    }
}

fn seconds_left(until: Millis, now: Millis) -> u64 {
    until.saturating_sub(now).div_ceil(1000)
}

/// An event of the alarm in words; `None` for a duress code, which is never
/// worded into the stream (see [`duress`]). `name` gives a slot's sensor
/// name; `now` is the alarm clock, for the seconds left of a delay.
pub fn alarm_event(
    event: &AlarmEvent,
    name: &dyn Fn(usize) -> String,
    now: Millis,
) -> Option<Worded> {
    let worded = |kind, slot, message| Worded {
        kind,
        slot,
        message,
        title: None,
        by: None,
    };
    // Something someone did, who the event names.
    let done = |by: &Actor, kind, slot, message| Worded {
        by: Some(by.clone()),
        ..worded(kind, slot, message)
    };
    // Something one sensor did, in words around its name.
    let sensor = |kind, slot: usize, words: &dyn Fn(String) -> String| {
        worded(kind, Some(slot), words(name(slot)))
    };
    Some(match event {
        AlarmEvent::Duress { .. } => return None,
        AlarmEvent::Arming {
            mode, until, by, ..
        } => done(
            by,
            EventKind::Arming,
            None,
            format!(
                "arming {mode} by {}: exit delay of {} s",
                actor(by),
                seconds_left(*until, now)
            ),
        ),
        AlarmEvent::Armed { mode, bypassed, by } => {
            let message = if bypassed.is_empty() {
                format!("armed {mode} by {}", actor(by))
            } else {
                let names: Vec<String> = bypassed.iter().map(|&s| name(s)).collect();
                format!(
                    "armed {mode} by {}, bypassing {}",
                    actor(by),
                    names.join(", ")
                )
            };
            done(by, EventKind::Armed, None, message)
        }
        AlarmEvent::Disarmed { by } => done(
            by,
            EventKind::Disarmed,
            None,
            format!("disarmed by {}", actor(by)),
        ),
        AlarmEvent::EntryDelay { slot, until } => sensor(EventKind::EntryDelay, *slot, &|s| {
            format!(
                "{s} opened: entry delay, disarm within {} s",
                seconds_left(*until, now)
            )
        }),
        AlarmEvent::Triggered { cause, .. } => {
            let (slot, what) = match cause {
                TriggerCause::Sensor(s) | TriggerCause::Zone(s) => (Some(*s), name(*s)),
                TriggerCause::Tamper(s) => (Some(*s), format!("tamper on {}", name(*s))),
                TriggerCause::Fault(s) => (Some(*s), format!("fault on {}", name(*s))),
                TriggerCause::Panic => (None, "panic".to_owned()),
            };
            Worded {
                title: Some(format!("ALARM: {what}")),
                ..worded(
                    EventKind::Triggered,
                    slot,
                    format!("ALARM: {what}; siren on"),
                )
            }
        }
        AlarmEvent::SirenTimedOut { back_to } => done(
            &Actor::system(),
            EventKind::SirenTimedOut,
            None,
            format!("siren time over; back to {back_to}"),
        ),
        AlarmEvent::Bypass { slot, on, by } => done(
            by,
            EventKind::Bypass,
            Some(*slot),
            format!(
                "{} {} by {}",
                name(*slot),
                if *on { "bypassed" } else { "restored" },
                actor(by)
            ),
        ),
        AlarmEvent::SensorArmed { slot } => sensor(EventKind::SensorArmed, *slot, &|s| {
            format!("{s} closed and is armed now")
        }),
        AlarmEvent::Knock { slot, group } => sensor(EventKind::Knock, *slot, &|s| {
            format!("{s}: first of double-knock group {group}")
        }),
        AlarmEvent::Fault { slot } => {
            sensor(EventKind::Fault, *slot, &|s| format!("{s} reports a fault"))
        }
        AlarmEvent::FaultCleared { slot } => sensor(EventKind::FaultCleared, *slot, &|s| {
            format!("{s} is healthy again")
        }),
        AlarmEvent::Tamper { slot } => {
            sensor(EventKind::Tamper, *slot, &|s| format!("tamper on {s}"))
        }
        AlarmEvent::Chime { slot } => sensor(EventKind::Chime, *slot, &|s| format!("chime: {s}")),
    })
}

/// A sensor's change: "front-door open".
pub fn sensor_change(sensor: &str, state_word: &str) -> String {
    format!("{sensor} {state_word}")
}

pub fn arm_refused(mode: ArmedMode, why: &ArmError) -> String {
    format!("arming {mode} refused: {why}")
}

pub fn wrong_pin(source: &str, attempts_left: u32) -> String {
    format!("wrong PIN from {source}; {attempts_left} attempts left")
}

pub fn locked_out(source: &str, everyone: bool, retry_after_ms: u64) -> String {
    let who = if everyone {
        "every PIN is"
    } else {
        "PINs from there are"
    };
    format!(
        "PIN refused from {source}: too many wrong PINs; {who} refused for {} s",
        retry_after_ms.div_ceil(1000)
    )
}

pub const DURESS_TITLE: &str = "Duress code used";

/// What was done under duress ("disarmed", "armed away"), and by whom.
pub fn duress(what: &str, by: &Actor) -> String {
    format!("{what} under duress by {}", actor(by))
}

pub fn siren_test(seconds: u64) -> String {
    format!("siren test for {seconds} s")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(slot: usize) -> String {
        ["front-door", "hall"][slot].to_owned()
    }

    fn alice() -> Actor {
        Actor {
            user: Some("alice".into()),
            source: "grpc:phone".into(),
        }
    }

    #[test]
    fn each_event_reads_as_before() {
        let cases: Vec<(AlarmEvent, &str, &str)> = vec![
            (
                AlarmEvent::Arming {
                    mode: ArmedMode::Away,
                    until: 10_500,
                    bypassed: vec![],
                    by: alice(),
                },
                "arming",
                "arming away by alice (grpc:phone): exit delay of 10 s",
            ),
            (
                AlarmEvent::Armed {
                    mode: ArmedMode::Home,
                    bypassed: vec![1],
                    by: Actor::system(),
                },
                "armed",
                "armed home by system, bypassing hall",
            ),
            (
                AlarmEvent::Disarmed { by: alice() },
                "disarmed",
                "disarmed by alice (grpc:phone)",
            ),
            (
                AlarmEvent::EntryDelay {
                    slot: 0,
                    until: 30_001,
                },
                "entry_delay",
                "front-door opened: entry delay, disarm within 30 s",
            ),
            (
                AlarmEvent::Triggered {
                    cause: TriggerCause::Tamper(1),
                    until: 0,
                },
                "triggered",
                "ALARM: tamper on hall; siren on",
            ),
            (
                AlarmEvent::SirenTimedOut {
                    back_to: ArmedMode::Night,
                },
                "siren_timed_out",
                "siren time over; back to night",
            ),
            (
                AlarmEvent::Bypass {
                    slot: 1,
                    on: false,
                    by: alice(),
                },
                "bypass",
                "hall restored by alice (grpc:phone)",
            ),
            (
                AlarmEvent::Knock {
                    slot: 1,
                    group: "g".into(),
                },
                "knock",
                "hall: first of double-knock group g",
            ),
            (AlarmEvent::Chime { slot: 0 }, "chime", "chime: front-door"),
        ];
        for (event, kind, message) in cases {
            let w = alarm_event(&event, &name, 500).expect("worded");
            assert_eq!((w.kind.as_str(), w.message.as_str()), (kind, message));
        }
    }

    /// The events about one sensor name it and carry its slot.
    #[test]
    fn a_sensor_event_names_its_sensor() {
        let cases = [
            (
                AlarmEvent::SensorArmed { slot: 1 },
                "sensor_armed",
                "hall closed and is armed now",
            ),
            (
                AlarmEvent::Fault { slot: 1 },
                "fault",
                "hall reports a fault",
            ),
            (
                AlarmEvent::FaultCleared { slot: 1 },
                "fault_cleared",
                "hall is healthy again",
            ),
            (AlarmEvent::Tamper { slot: 1 }, "tamper", "tamper on hall"),
        ];
        for (event, kind, message) in cases {
            let w = alarm_event(&event, &name, 0).expect("worded");
            assert_eq!(w.slot, Some(1), "{kind}");
            assert_eq!((w.kind.as_str(), w.message.as_str()), (kind, message));
        }
    }

    #[test]
    fn an_alarm_has_a_short_title_and_duress_is_never_worded() {
        let w = alarm_event(
            &AlarmEvent::Triggered {
                cause: TriggerCause::Panic,
                until: 0,
            },
            &name,
            0,
        )
        .expect("worded");
        assert_eq!(w.title.as_deref(), Some("ALARM: panic"));
        assert_eq!(w.slot, None);
        assert_eq!(
            alarm_event(&AlarmEvent::Duress { by: alice() }, &name, 0),
            None
        );
        assert_eq!(
            duress("disarmed", &alice()),
            "disarmed under duress by alice (grpc:phone)"
        );
    }
}

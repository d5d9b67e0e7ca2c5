//! The alarm: a state machine and the users' codes, as pure logic.
//!
//! Owns: every rule of the alarm panel — modes, exit and entry delays, the
//! siren's time, 24-hour zones, bypass (manual, automatic, forced),
//! arm-after-close, double-knock groups, chime, faults — and PIN checking
//! with lockout ([`users`]). Anchors: Home Assistant's manual alarm, Alarmo,
//! EN 50131 grade 2.
//!
//! Must never: do I/O, read a clock (time is passed in as Unix
//! milliseconds, so a persisted deadline means the same after a restart),
//! or drive outputs itself: the siren and buzzer are derived from the phase
//! ([`Alarm::outputs`]) and the hub drives them.
//!
//! Architecture invariant: from every state, a valid code disarms
//! (`tests::prop_always_a_way_back` checks it over random event sequences).

#![forbid(unsafe_code)]

mod machine;
pub mod users;

pub use machine::{
    Actor, Alarm, AlarmEvent, AlarmSensor, AlarmSetup, AlarmState, ArmError, BypassError, Live,
    Millis, Outputs, Phase, TriggerCause,
};

#[cfg(test)]
mod tests;

//! What happened: the kinds of event, how urgent each is, and the event
//! itself as every service sees it once it is off the wire.
//!
//! Architecture Invariant: a kind's name ([`EventKind::as_str`]) is part of
//! three formats (the event log, the gRPC `Event.kind`, the reports index)
//! and never changes; new kinds are added, old ones are never renamed.
//! A name this build does not know (a newer hub's log) is kept as
//! [`EventKind::Other`], never dropped.

use crate::{AlarmState, AlertPriority, ArmedMode, SensorState};

/// The kind of an event.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// Exit delay started.
    Arming,
    Armed,
    Disarmed,
    /// An entry-delay sensor opened while armed: disarm before it runs out.
    EntryDelay,
    /// The alarm went off (siren on).
    Triggered,
    SirenTimedOut,
    /// A sensor was bypassed or restored.
    Bypass,
    /// A sensor that was open at arming closed and is armed now.
    SensorArmed,
    /// The first of a double-knock group.
    Knock,
    Fault,
    FaultCleared,
    Tamper,
    Chime,
    /// A sensor changed state (open/closed, motion/still).
    Sensor,
    ArmRefused,
    CodeRefused,
    Lockout,
    SirenTest,
    /// A duress code was used: kept in the private log, never streamed.
    Duress,
    CameraOffline,
    CameraOnline,
    ClipRecorded,
    /// An admin deleted a clip.
    ClipDeleted,
    /// An admin added a keypad user, removed one, or changed a PIN.
    UserAdded,
    UserRemoved,
    UserPinChanged,
    /// A kind this build does not know, from a newer or older log.
    Other(String),
}

/// Every kind this build knows, for parsing and tests.
pub const KNOWN_KINDS: [EventKind; 26] = [
    EventKind::Arming,
    EventKind::Armed,
    EventKind::Disarmed,
    EventKind::EntryDelay,
    EventKind::Triggered,
    EventKind::SirenTimedOut,
    EventKind::Bypass,
    EventKind::SensorArmed,
    EventKind::Knock,
    EventKind::Fault,
    EventKind::FaultCleared,
    EventKind::Tamper,
    EventKind::Chime,
    EventKind::Sensor,
    EventKind::ArmRefused,
    EventKind::CodeRefused,
    EventKind::Lockout,
    EventKind::SirenTest,
    EventKind::Duress,
    EventKind::CameraOffline,
    EventKind::CameraOnline,
    EventKind::ClipRecorded,
    EventKind::ClipDeleted,
    EventKind::UserAdded,
    EventKind::UserRemoved,
    EventKind::UserPinChanged,
];

impl EventKind {
    /// The stable name (`"triggered"`), as the log, the API and the
    /// reports store it.
    pub fn as_str(&self) -> &str {
        match self {
            EventKind::Arming => "arming",
            EventKind::Armed => "armed",
            EventKind::Disarmed => "disarmed",
            EventKind::EntryDelay => "entry_delay",
            EventKind::Triggered => "triggered",
            EventKind::SirenTimedOut => "siren_timed_out",
            EventKind::Bypass => "bypass",
            EventKind::SensorArmed => "sensor_armed",
            EventKind::Knock => "knock",
            EventKind::Fault => "fault",
            EventKind::FaultCleared => "fault_cleared",
            EventKind::Tamper => "tamper",
            EventKind::Chime => "chime",
            EventKind::Sensor => "sensor",
            EventKind::ArmRefused => "arm_refused",
            EventKind::CodeRefused => "code_refused",
            EventKind::Lockout => "lockout",
            EventKind::SirenTest => "siren_test",
            EventKind::Duress => "duress",
            EventKind::CameraOffline => "camera_offline",
            EventKind::CameraOnline => "camera_online",
            EventKind::ClipRecorded => "clip_recorded",
            EventKind::ClipDeleted => "clip_deleted",
            EventKind::UserAdded => "user_added",
            EventKind::UserRemoved => "user_removed",
            EventKind::UserPinChanged => "user_pin_changed",
            EventKind::Other(name) => name,
        }
    }

    /// The kind of a name; a name this build does not know is kept as
    /// [`EventKind::Other`].
    pub fn from_name(name: &str) -> EventKind {
        KNOWN_KINDS
            .iter()
            .find(|k| k.as_str() == name)
            .cloned()
            .unwrap_or_else(|| EventKind::Other(name.to_owned()))
    }

    /// Whether events of this kind become alerts, and how urgent.
    pub fn priority(&self) -> Option<AlertPriority> {
        match self {
            EventKind::Triggered | EventKind::Duress => Some(AlertPriority::Alarm),
            EventKind::Tamper | EventKind::Lockout => Some(AlertPriority::Tamper),
            EventKind::Fault | EventKind::CameraOffline => Some(AlertPriority::Fault),
            EventKind::CameraOnline
            | EventKind::EntryDelay
            | EventKind::Arming
            | EventKind::Armed
            | EventKind::Disarmed
            | EventKind::FaultCleared
            | EventKind::SirenTimedOut
            | EventKind::Bypass
            // Who may disarm, and what evidence there is: the owner hears
            // of every change.
            | EventKind::ClipDeleted
            | EventKind::UserAdded
            | EventKind::UserRemoved
            | EventKind::UserPinChanged => Some(AlertPriority::Info),
            _ => None,
        }
    }

    /// Alarm-class events are on disk before anyone is told they happened
    /// (the command's reply, a watcher); the rest within the log's sync
    /// window.
    pub fn is_alarm_class(&self) -> bool {
        matches!(
            self,
            EventKind::Triggered
                | EventKind::Disarmed
                | EventKind::Armed
                | EventKind::Arming
                | EventKind::Tamper
                | EventKind::Lockout
                | EventKind::EntryDelay
                | EventKind::Duress
                // Audit records of changes already made durable elsewhere
                // (users.json, a deleted file): on disk before the reply.
                | EventKind::ClipDeleted
                | EventKind::UserAdded
                | EventKind::UserRemoved
                | EventKind::UserPinChanged
        )
    }
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an event came from, for [`Event::source`]: the gRPC client
/// (`grpc:<client name>`), the control FIFO, a sensor, a camera, or the
/// alarm's own timers.
pub mod source {
    pub const FIFO: &str = "fifo";
    pub const SENSOR: &str = "sensor";
    pub const CAMERA: &str = "camera";
    pub const SYSTEM: &str = "system";
    /// The prefix of a gRPC client's source: `grpc:<client name>`.
    pub const GRPC_PREFIX: &str = "grpc:";
}

/// One event of the stream: what the hub logs, streams and alerts on, and
/// what reportd indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Its number in the stream and the log (1, 2, ...; 0 until numbered).
    pub seq: u64,
    pub unix_ms: u64,
    pub kind: EventKind,
    /// The sensor concerned, if any.
    pub sensor: Option<String>,
    /// For a [`EventKind::Sensor`] event: the sensor's new state.
    pub sensor_state: Option<SensorState>,
    /// The camera concerned, for camera events.
    pub camera: Option<String>,
    /// The mode and the alarm state after the event.
    pub mode: ArmedMode,
    pub alarm: AlarmState,
    /// The user whose code or credential was used, if any.
    pub user: Option<String>,
    /// Where it came from (see [`source`]).
    pub source: String,
    /// One line for people.
    pub message: String,
    /// The W3C trace id of the change that caused it, if traced.
    pub trace_id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_kind_round_trips_by_name_and_unknown_names_are_kept() {
        for kind in KNOWN_KINDS {
            assert_eq!(EventKind::from_name(kind.as_str()), kind);
        }
        let newer = EventKind::from_name("doorbell_rang");
        assert_eq!(newer, EventKind::Other("doorbell_rang".into()));
        assert_eq!(newer.as_str(), "doorbell_rang");
        assert_eq!(newer.priority(), None);
    }

    #[test]
    fn priorities_and_alarm_class() {
        assert_eq!(EventKind::Triggered.priority(), Some(AlertPriority::Alarm));
        assert_eq!(EventKind::Lockout.priority(), Some(AlertPriority::Tamper));
        assert_eq!(
            EventKind::CameraOffline.priority(),
            Some(AlertPriority::Fault)
        );
        assert_eq!(EventKind::Armed.priority(), Some(AlertPriority::Info));
        assert_eq!(EventKind::Sensor.priority(), None);
        assert!(EventKind::Triggered.is_alarm_class());
        assert!(!EventKind::Sensor.is_alarm_class());
    }
}

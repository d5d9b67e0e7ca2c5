//! The event log's record: how one [`Event`] is kept on disk, as the
//! payload of a record of kind `EVENT` (or `HIDDEN`, in the private log).
//!
//! Owns: the record's wire type ([`LogEvent`], protobuf) and its one
//! conversion to and from the domain [`Event`]. The hub writes with
//! [`encode`]; reportd and the hub's replay read with [`decode`].
//!
//! Must never: depend on the public API (`vigil-proto`). The log outlives
//! API versions, so the record is its own message. It is wire-compatible
//! with the `vigil.v1.Event` that logs written before it hold (fields 1 to
//! 10 are the same numbers and types), so those logs read as they are.
//! Field numbers are never reused; a new field takes a new number.

#![forbid(unsafe_code)]

use vigil_domain::{AlarmState, ArmedMode, Event, EventKind, SensorState, source};

/// The record on disk (protobuf).
#[derive(Clone, PartialEq, prost::Message)]
pub struct LogEvent {
    #[prost(uint64, tag = "1")]
    pub seq: u64,
    #[prost(int64, tag = "2")]
    pub unix_ms: i64,
    /// [`EventKind::as_str`].
    #[prost(string, tag = "3")]
    pub kind: String,
    #[prost(string, tag = "4")]
    pub sensor: String,
    /// 1 disarmed, 2 home, 3 away, 4 night, 5 vacation, 6 custom.
    #[prost(int32, tag = "5")]
    pub mode: i32,
    /// 1 idle, 2 arming, 3 pending, 4 triggered.
    #[prost(int32, tag = "6")]
    pub alarm: i32,
    #[prost(string, tag = "7")]
    pub user: String,
    #[prost(string, tag = "8")]
    pub source: String,
    #[prost(string, tag = "9")]
    pub message: String,
    #[prost(string, tag = "10")]
    pub trace_id: String,
    /// 0 none (not a sensor event, or written before this field), 1
    /// inactive, 2 active, 3 unknown.
    #[prost(int32, tag = "11")]
    pub sensor_state: i32,
    #[prost(string, tag = "12")]
    pub camera: String,
}

/// A payload that is not a record.
#[derive(Debug, thiserror::Error)]
#[error("not an event record: {0}")]
pub struct RecordError(#[from] prost::DecodeError);

const MODES: [ArmedMode; 6] = [
    ArmedMode::Disarmed,
    ArmedMode::Home,
    ArmedMode::Away,
    ArmedMode::Night,
    ArmedMode::Vacation,
    ArmedMode::Custom,
];
const ALARMS: [AlarmState; 4] = [
    AlarmState::Idle,
    AlarmState::Arming,
    AlarmState::Pending,
    AlarmState::Triggered,
];
const SENSOR_STATES: [SensorState; 3] = [
    SensorState::Inactive,
    SensorState::Active,
    SensorState::Unknown,
];

/// 1-based place in `all`; 0 is "none" on the wire.
fn code<T: PartialEq>(all: &[T], value: &T) -> i32 {
    all.iter()
        .position(|v| v == value)
        .map_or(0, |i| i as i32 + 1)
}

fn from_code<T: Copy>(all: &[T], code: i32) -> Option<T> {
    usize::try_from(code)
        .ok()
        .and_then(|c| c.checked_sub(1))
        .and_then(|i| all.get(i).copied())
}

fn some(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The record of `event`.
pub fn to_record(event: &Event) -> LogEvent {
    LogEvent {
        seq: event.seq,
        unix_ms: i64::try_from(event.unix_ms).unwrap_or(i64::MAX),
        kind: event.kind.as_str().to_owned(),
        sensor: event.sensor.clone().unwrap_or_default(),
        mode: code(&MODES, &event.mode),
        alarm: code(&ALARMS, &event.alarm),
        user: event.user.clone().unwrap_or_default(),
        source: event.source.clone(),
        message: event.message.clone(),
        trace_id: event.trace_id.clone().unwrap_or_default(),
        sensor_state: event.sensor_state.map_or(0, |s| code(&SENSOR_STATES, &s)),
        camera: event.camera.clone().unwrap_or_default(),
    }
}

/// The event of a record. A mode or alarm state this build does not know
/// reads as disarmed / idle; an unknown kind is kept by name.
pub fn from_record(record: LogEvent) -> Event {
    let kind = EventKind::from_name(&record.kind);
    let (mut sensor, mut camera) = (some(record.sensor), some(record.camera));
    // Written before the camera had its own field: camera events named the
    // camera in `sensor`, with source "camera".
    if camera.is_none()
        && record.source == source::CAMERA
        && matches!(
            kind,
            EventKind::CameraOnline | EventKind::CameraOffline | EventKind::ClipRecorded
        )
    {
        camera = sensor.take();
    }
    Event {
        seq: record.seq,
        unix_ms: u64::try_from(record.unix_ms).unwrap_or(0),
        kind,
        sensor,
        sensor_state: from_code(&SENSOR_STATES, record.sensor_state),
        camera,
        mode: from_code(&MODES, record.mode).unwrap_or(ArmedMode::Disarmed),
        alarm: from_code(&ALARMS, record.alarm).unwrap_or(AlarmState::Idle),
        user: some(record.user),
        source: record.source,
        message: record.message,
        trace_id: some(record.trace_id),
    }
}

/// `event` as a record payload.
pub fn encode(event: &Event) -> Vec<u8> {
    prost::Message::encode_to_vec(&to_record(event))
}

/// The event in a record payload.
pub fn decode(payload: &[u8]) -> Result<Event, RecordError> {
    Ok(from_record(prost::Message::decode(payload)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: EventKind) -> Event {
        Event {
            seq: 7,
            unix_ms: 1_795_000_000_000,
            kind,
            sensor: Some("front-door".into()),
            sensor_state: Some(SensorState::Active),
            camera: None,
            mode: ArmedMode::Night,
            alarm: AlarmState::Pending,
            user: Some("alice".into()),
            source: "grpc:phone".into(),
            message: "front-door open".into(),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        }
    }

    #[test]
    fn an_event_round_trips() {
        for kind in vigil_domain::KNOWN_KINDS
            .into_iter()
            .chain([EventKind::Other("newer_kind".into())])
        {
            let e = event(kind);
            assert_eq!(decode(&encode(&e)).expect("decode"), e);
        }
    }

    /// The record as logs written before this crate hold it: a
    /// `vigil.v1.Event` (fields 1 to 10), camera events naming the camera
    /// in `sensor`.
    #[derive(Clone, PartialEq, prost::Message)]
    struct OldEvent {
        #[prost(uint64, tag = "1")]
        seq: u64,
        #[prost(int64, tag = "2")]
        unix_ms: i64,
        #[prost(string, tag = "3")]
        kind: String,
        #[prost(string, tag = "4")]
        sensor: String,
        #[prost(int32, tag = "5")]
        mode: i32,
        #[prost(int32, tag = "6")]
        state: i32,
        #[prost(string, tag = "7")]
        user: String,
        #[prost(string, tag = "8")]
        source: String,
        #[prost(string, tag = "9")]
        message: String,
        #[prost(string, tag = "10")]
        trace_id: String,
    }

    #[test]
    fn records_written_as_the_public_event_still_read() {
        let old = OldEvent {
            seq: 3,
            unix_ms: 5,
            kind: "camera_offline".into(),
            sensor: "porch".into(),
            mode: 3,
            state: 4,
            user: String::new(),
            source: "camera".into(),
            message: "porch is offline".into(),
            trace_id: String::new(),
        };
        let e = decode(&prost::Message::encode_to_vec(&old)).expect("decode");
        assert_eq!(e.kind, EventKind::CameraOffline);
        assert_eq!(e.camera.as_deref(), Some("porch"));
        assert_eq!(e.sensor, None);
        assert_eq!((e.mode, e.alarm), (ArmedMode::Away, AlarmState::Triggered));
        assert_eq!(e.sensor_state, None);
        assert_eq!(e.user, None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
    }
}

//! The one boundary between the domain and the public API's types
//! (`vigil.v1`, generated from `proto/`): modes, alarm states, roles,
//! events and the status. Every gRPC service converts here and nowhere
//! else.

use tonic::Status;
use vigil_domain::{AlarmState, ArmedMode, Event, Role};
use vigil_proto::v1 as pb;

use crate::status::StatusSnapshot;

pub fn to_pb_mode(mode: ArmedMode) -> pb::Mode {
    match mode {
        ArmedMode::Disarmed => pb::Mode::Disarmed,
        ArmedMode::Home => pb::Mode::Home,
        ArmedMode::Away => pb::Mode::Away,
        ArmedMode::Night => pb::Mode::Night,
        ArmedMode::Vacation => pb::Mode::Vacation,
        ArmedMode::Custom => pb::Mode::Custom,
    }
}

/// An armed mode from a request: INVALID_ARGUMENT for anything else.
pub fn from_pb_mode(mode: i32) -> Result<ArmedMode, Status> {
    match pb::Mode::try_from(mode) {
        Ok(pb::Mode::Home) => Ok(ArmedMode::Home),
        Ok(pb::Mode::Away) => Ok(ArmedMode::Away),
        Ok(pb::Mode::Night) => Ok(ArmedMode::Night),
        Ok(pb::Mode::Vacation) => Ok(ArmedMode::Vacation),
        Ok(pb::Mode::Custom) => Ok(ArmedMode::Custom),
        _ => Err(Status::invalid_argument(
            "mode must be MODE_HOME, MODE_AWAY, MODE_NIGHT, MODE_VACATION or MODE_CUSTOM",
        )),
    }
}

pub fn to_pb_state(state: AlarmState) -> pb::AlarmState {
    match state {
        AlarmState::Idle => pb::AlarmState::Idle,
        AlarmState::Arming => pb::AlarmState::Arming,
        AlarmState::Pending => pb::AlarmState::Pending,
        AlarmState::Triggered => pb::AlarmState::Triggered,
    }
}

pub fn to_pb_role(role: Role) -> pb::Role {
    match role {
        Role::Guest => pb::Role::Guest,
        Role::User => pb::Role::User,
        Role::Admin => pb::Role::Admin,
    }
}

/// Unix milliseconds as the API carries them (saturating).
pub fn ms_i64(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

pub fn to_pb_status(s: &StatusSnapshot) -> pb::Status {
    pb::Status {
        mode: to_pb_mode(s.mode) as i32,
        state: to_pb_state(s.alarm) as i32,
        deadline_unix_ms: s.deadline_unix_ms.map_or(0, ms_i64),
        siren: s.outputs.siren,
        buzzer: s.outputs.buzzer,
        bypassed: s.bypassed.clone(),
        open: s.open.clone(),
        faults: s.faults.clone(),
        locked_until_unix_ms: s.locked_until_unix_ms.map_or(0, ms_i64),
        last_event_seq: s.last_seq,
    }
}

/// An event as the API carries it.
pub fn to_pb_event(e: &Event) -> pb::Event {
    pb::Event {
        seq: e.seq,
        unix_ms: ms_i64(e.unix_ms),
        kind: e.kind.as_str().to_owned(),
        // The API has no camera field yet: a camera event names its camera
        // in `sensor`, as it always has.
        sensor: e
            .sensor
            .clone()
            .or_else(|| e.camera.clone())
            .unwrap_or_default(),
        mode: to_pb_mode(e.mode) as i32,
        state: to_pb_state(e.alarm) as i32,
        user: e.user.clone().unwrap_or_default(),
        source: e.source.clone(),
        message: e.message.clone(),
        trace_id: e.trace_id.clone().unwrap_or_default(),
    }
}

/// A role from a request.
pub fn from_pb_role(role: i32) -> Option<Role> {
    match pb::Role::try_from(role) {
        Ok(pb::Role::Admin) => Some(Role::Admin),
        Ok(pb::Role::User) => Some(Role::User),
        Ok(pb::Role::Guest) => Some(Role::Guest),
        _ => None,
    }
}

/// The name of a mode as the API spells it (`MODE_AWAY`).
pub fn mode_name(mode: ArmedMode) -> &'static str {
    to_pb_mode(mode).as_str_name()
}

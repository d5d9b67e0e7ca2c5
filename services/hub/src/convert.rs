//! The one boundary between the domain and the public API's types
//! (`vigil.v1`, generated from `proto/`): modes, alarm states, roles,
//! events and the status. Every gRPC service converts here and nowhere
//! else.

use tonic::Status;
use vigil_domain::{AlarmState, ArmedMode, Event, Role, SensorState};
use vigil_proto::v1 as pb;

use crate::identity::HubInfo;
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

/// The status, with the hub's and its log's identities.
pub fn to_pb_status(s: &StatusSnapshot, info: &HubInfo) -> pb::Status {
    pb::Status {
        hub_id: info.hub_id.clone(),
        log_id: info.log_id.clone(),
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
        sensor: e.sensor.clone().unwrap_or_default(),
        camera: e.camera.clone().unwrap_or_default(),
        sensor_state: e
            .sensor_state
            .map_or(pb::SensorState::Unspecified, to_pb_sensor_state) as i32,
        mode: to_pb_mode(e.mode) as i32,
        state: to_pb_state(e.alarm) as i32,
        user: e.user.clone().unwrap_or_default(),
        source: e.source.clone(),
        message: e.message.clone(),
        trace_id: e.trace_id.clone().unwrap_or_default(),
    }
}

pub fn to_pb_sensor_state(state: SensorState) -> pb::SensorState {
    match state {
        SensorState::Unknown => pb::SensorState::Unknown,
        SensorState::Inactive => pb::SensorState::Inactive,
        SensorState::Active => pb::SensorState::Active,
    }
}

/// Whole seconds of a duration, as the API carries them (saturating).
fn secs_u32(d: std::time::Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// GetSystem's answer: the hub, its setup and its faults.
pub fn to_pb_system(
    info: &HubInfo,
    setup: &vigil_alarm::AlarmSetup,
    cameras: &[String],
    status: &StatusSnapshot,
    offline_cameras: &[String],
) -> pb::GetSystemResponse {
    let alarm = &setup.alarm;
    let modes = ArmedMode::ARMED
        .iter()
        .map(|&mode| {
            let timing = alarm
                .modes
                .get(&mode)
                .copied()
                .unwrap_or_else(|| vigil_domain::ModeTiming::default_for(mode));
            pb::ModeTiming {
                mode: to_pb_mode(mode) as i32,
                exit_delay_s: secs_u32(timing.exit_delay),
                entry_delay_s: secs_u32(timing.entry_delay),
                siren_s: secs_u32(timing.trigger_time),
            }
        })
        .collect();
    let sensors = setup
        .sensors
        .iter()
        .map(|s| pb::SensorSetup {
            name: s.name.clone(),
            kind: s.kind.as_str().to_owned(),
            modes: s.modes.iter().map(|m| to_pb_mode(*m) as i32).collect(),
            twenty_four_hour: s.kind.is_24_hour(),
            entry_delay: s.response == vigil_domain::Response::EntryDelay,
        })
        .collect();
    let sensor_names: std::collections::HashSet<&str> =
        setup.sensors.iter().map(|s| s.name.as_str()).collect();
    // The status lists sensors by name and the system's own faults by
    // what they say.
    let mut faults: Vec<pb::Fault> = status
        .faults
        .iter()
        .map(|fault| match sensor_names.contains(fault.as_str()) {
            true => pb::Fault {
                kind: "sensor".into(),
                subject: fault.clone(),
                message: format!("sensor {fault} reports a fault: check its wiring or its battery"),
            },
            false => pb::Fault {
                kind: "storage".into(),
                subject: String::new(),
                message: fault.clone(),
            },
        })
        .collect();
    faults.extend(offline_cameras.iter().map(|camera| pb::Fault {
        kind: "camera".into(),
        subject: camera.clone(),
        message: format!("camera {camera} is offline: check its power and its network"),
    }));
    pb::GetSystemResponse {
        version: info.version.to_owned(),
        api: "vigil.v1".into(),
        hub_id: info.hub_id.clone(),
        log_id: info.log_id.clone(),
        started_unix_ms: ms_i64(info.started_unix_ms),
        uptime_s: info.uptime_s(),
        modes,
        pin_required_to_arm: alarm.require_pin_to_arm,
        chime: alarm.chime,
        sensors,
        cameras: cameras.to_vec(),
        faults,
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

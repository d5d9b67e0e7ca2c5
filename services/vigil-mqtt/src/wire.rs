//! What the bridge publishes about the panel and its events, in the words
//! Home Assistant and zigbee2mqtt keypads use. These are wire types: they
//! derive serialization; the bridge converts the API's messages into them.

use serde::Serialize;
use vigil_domain::{AlarmState, ArmedMode, SensorState};

use crate::zigbee::ArmMode;

/// The panel's state in Home Assistant's `alarm_control_panel` words:
/// `disarmed`, `armed_home`, `armed_away`, `armed_night`,
/// `armed_vacation`, `armed_custom_bypass`, `arming` (exit delay),
/// `pending` (entry delay), `triggered`.
pub fn ha_state(mode: ArmedMode, state: AlarmState) -> &'static str {
    match (state, mode) {
        (AlarmState::Triggered, _) => "triggered",
        (AlarmState::Pending, _) => "pending",
        (AlarmState::Arming, _) => "arming",
        (AlarmState::Idle, ArmedMode::Disarmed) => "disarmed",
        (AlarmState::Idle, ArmedMode::Home) => "armed_home",
        (AlarmState::Idle, ArmedMode::Away) => "armed_away",
        (AlarmState::Idle, ArmedMode::Night) => "armed_night",
        (AlarmState::Idle, ArmedMode::Vacation) => "armed_vacation",
        (AlarmState::Idle, ArmedMode::Custom) => "armed_custom_bypass",
    }
}

/// The panel's state as a keypad shows it (its lights and beeps): the
/// delays and the alarm, else the armed mode. Vacation shows as all zones,
/// custom as day zones (a keypad has three modes).
pub fn keypad_state(mode: ArmedMode, state: AlarmState) -> ArmMode {
    match (state, mode) {
        (AlarmState::Triggered, _) => ArmMode::InAlarm,
        (AlarmState::Pending, _) => ArmMode::EntryDelay,
        (AlarmState::Arming, _) => ArmMode::ExitDelay,
        (AlarmState::Idle, ArmedMode::Disarmed) => ArmMode::Disarm,
        (AlarmState::Idle, ArmedMode::Home | ArmedMode::Custom) => ArmMode::ArmDayZones,
        (AlarmState::Idle, ArmedMode::Night) => ArmMode::ArmNightZones,
        (AlarmState::Idle, ArmedMode::Away | ArmedMode::Vacation) => ArmMode::ArmAllZones,
    }
}

/// A Home Assistant `binary_sensor` payload for a sensor's state: `ON`
/// (open, motion, water...), `OFF`, or `None` (Home Assistant's unknown).
pub fn binary_state(state: SensorState) -> &'static str {
    match state {
        SensorState::Active => "ON",
        SensorState::Inactive => "OFF",
        SensorState::Unknown => "None",
    }
}

/// A Home Assistant `binary_sensor` payload for a flag (a fault).
pub fn binary_flag(on: bool) -> &'static str {
    if on { "ON" } else { "OFF" }
}

/// An event's `sensor_state`: `active`, `inactive` or `unknown`.
pub fn sensor_state_word(state: SensorState) -> &'static str {
    match state {
        SensorState::Active => "active",
        SensorState::Inactive => "inactive",
        SensorState::Unknown => "unknown",
    }
}

/// One event on `<base>/<hub>/events`: the API's `Event`, its enums as
/// their lowercase words, empty strings left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EventMessage {
    pub seq: u64,
    pub unix_ms: i64,
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensor_state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub camera: Option<String>,
    pub mode: &'static str,
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    pub source: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The panel's status on `<base>/<hub>/alarm/status`, retained.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StatusMessage {
    /// [`ha_state`]'s word.
    pub state: &'static str,
    pub mode: &'static str,
    pub alarm: &'static str,
    /// When the running delay or siren ends (Unix ms), if one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_unix_ms: Option<i64>,
    pub open: Vec<String>,
    pub bypassed: Vec<String>,
    pub faults: Vec<String>,
    pub last_event_seq: u64,
}

/// The answer to a command on `<base>/<hub>/alarm/result`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CommandResult {
    /// The command as received (`ARM_AWAY`, `DISARM`, `TRIGGER`, `PANIC`).
    pub action: String,
    pub ok: bool,
    /// Why it was refused, as the hub says it ("wrong PIN; 4 attempts left...").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The refusal's class: `wrong_code`, `locked_out`, `refused` (the
    /// alarm's rules: open sensors...), `code_required`, `bad_request`,
    /// `unavailable` (the hub is not reachable).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The sensors that were open, when an arm was refused for them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub open: Vec<String>,
    /// The panel's state after it, in [`ha_state`]'s words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
}

/// A command on `<base>/<hub>/alarm/set`, as Home Assistant's
/// `command_template` sends it: `{"action": "ARM_AWAY", "code": "1234"}`.
/// A bare `ARM_AWAY` (no code) is read too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanelCommand {
    pub action: PanelAction,
    pub code: Option<String>,
    /// The action as received, for the answer.
    pub raw_action: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelAction {
    Arm(ArmedMode),
    Disarm,
    /// Home Assistant's `TRIGGER`, or `PANIC`: a panic alarm.
    Panic,
}

/// Why a command was not read (answered with `bad_request`).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("a command is at most 1024 bytes")]
    TooLarge,
    #[error(
        "unknown action {0:?}; use ARM_HOME, ARM_AWAY, ARM_NIGHT, ARM_VACATION, \
         ARM_CUSTOM_BYPASS, DISARM, TRIGGER or PANIC"
    )]
    UnknownAction(String),
    #[error("not a command: {0}")]
    Malformed(String),
}

impl PanelCommand {
    pub fn parse(payload: &[u8]) -> Result<PanelCommand, CommandError> {
        #[derive(serde::Deserialize)]
        struct CommandFile {
            action: String,
            code: Option<String>,
        }
        if payload.len() > 1024 {
            return Err(CommandError::TooLarge);
        }
        let text = std::str::from_utf8(payload)
            .map_err(|_| CommandError::Malformed("not UTF-8".into()))?
            .trim();
        let file = if text.starts_with('{') {
            serde_json::from_str::<CommandFile>(text)
                .map_err(|e| CommandError::Malformed(e.to_string()))?
        } else {
            CommandFile {
                action: text.to_owned(),
                code: None,
            }
        };
        let action = match file.action.as_str() {
            "ARM_HOME" => PanelAction::Arm(ArmedMode::Home),
            "ARM_AWAY" => PanelAction::Arm(ArmedMode::Away),
            "ARM_NIGHT" => PanelAction::Arm(ArmedMode::Night),
            "ARM_VACATION" => PanelAction::Arm(ArmedMode::Vacation),
            "ARM_CUSTOM_BYPASS" => PanelAction::Arm(ArmedMode::Custom),
            "DISARM" => PanelAction::Disarm,
            "TRIGGER" | "PANIC" => PanelAction::Panic,
            other => {
                return Err(CommandError::UnknownAction(vigil_domain::text::excerpt(
                    other,
                )));
            }
        };
        Ok(PanelCommand {
            action,
            // Home Assistant renders a missing code as "" or "None".
            code: file.code.filter(|c| !c.is_empty() && c != "None"),
            raw_action: file.action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_has_home_assistants_word() {
        assert_eq!(ha_state(ArmedMode::Away, AlarmState::Idle), "armed_away");
        assert_eq!(ha_state(ArmedMode::Away, AlarmState::Arming), "arming");
        assert_eq!(ha_state(ArmedMode::Away, AlarmState::Pending), "pending");
        assert_eq!(
            ha_state(ArmedMode::Disarmed, AlarmState::Triggered),
            "triggered"
        );
        assert_eq!(
            ha_state(ArmedMode::Custom, AlarmState::Idle),
            "armed_custom_bypass"
        );
        assert_eq!(
            keypad_state(ArmedMode::Night, AlarmState::Idle),
            ArmMode::ArmNightZones
        );
        assert_eq!(
            keypad_state(ArmedMode::Away, AlarmState::Pending),
            ArmMode::EntryDelay
        );
    }

    #[test]
    fn commands_as_home_assistant_sends_them() {
        let c = PanelCommand::parse(br#"{"action":"ARM_AWAY","code":"1234"}"#).expect("ok");
        assert_eq!(c.action, PanelAction::Arm(ArmedMode::Away));
        assert_eq!(c.code.as_deref(), Some("1234"));
        let c = PanelCommand::parse(br#"{"action":"ARM_HOME","code":"None"}"#).expect("ok");
        assert_eq!(c.code, None);
        assert_eq!(
            PanelCommand::parse(b"DISARM").expect("ok").action,
            PanelAction::Disarm
        );
        assert!(matches!(
            PanelCommand::parse(b"OPEN_SESAME"),
            Err(CommandError::UnknownAction(_))
        ));
        assert!(PanelCommand::parse(b"{\"code\":\"1\"}").is_err());
        assert_eq!(
            PanelCommand::parse(&[b'x'; 2000]),
            Err(CommandError::TooLarge)
        );
    }
}

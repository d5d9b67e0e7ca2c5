//! zigbee2mqtt's payloads, as its device pages document them: a sensor's
//! state message (`contact`, `occupancy`, `water_leak`, `smoke`,
//! `tamper`, `battery_low`), a device's availability, and a keypad's
//! `action` with its code and transaction, answered by `arm_mode`.
//!
//! Every parser takes bytes anyone on the broker can publish: it returns
//! a typed error for what it cannot read, and ignores fields it does not
//! know (zigbee2mqtt adds `linkquality`, `voltage`, `last_seen`...).

use serde::Deserialize;
use vigil_domain::SensorKind;

/// Why a payload was not read.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload of {0} bytes is over the {max} byte limit", max = crate::MAX_INBOUND_PAYLOAD)]
    TooLarge(usize),
    #[error("not a JSON object: {0}")]
    Json(String),
    #[error("not an availability (`online`, `offline` or {{\"state\": ...}}): {0:?}")]
    Availability(String),
}

/// What one state message of a sensor device says (`None`: not in it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceReport {
    /// Whether the sensor is active in its kind's sense (a door's contact
    /// broken, motion, water, smoke), if the message says.
    pub active: Option<bool>,
    pub tamper: Option<bool>,
    pub battery_low: Option<bool>,
}

#[derive(Deserialize)]
struct DeviceFile {
    contact: Option<bool>,
    occupancy: Option<bool>,
    water_leak: Option<bool>,
    smoke: Option<bool>,
    tamper: Option<bool>,
    battery_low: Option<bool>,
    /// Some panic buttons report `action: "emergency"` or `"panic"`.
    action: Option<String>,
}

fn bounded(payload: &[u8]) -> Result<&[u8], PayloadError> {
    if payload.len() > crate::MAX_INBOUND_PAYLOAD {
        return Err(PayloadError::TooLarge(payload.len()));
    }
    Ok(payload)
}

/// Reads a device's state message for a sensor of `kind`.
///
/// The field that means "active" depends on the kind: a door or window is
/// active when `contact` is false (the magnet is away); motion reads
/// `occupancy`, water `water_leak`, smoke `smoke`, a tamper sensor
/// `tamper`, a panic button an `action` of `emergency` or `panic` (a press,
/// which releases on the next message without one).
pub fn parse_device(kind: SensorKind, payload: &[u8]) -> Result<DeviceReport, PayloadError> {
    let file: DeviceFile =
        serde_json::from_slice(bounded(payload)?).map_err(|e| PayloadError::Json(e.to_string()))?;
    let active = match kind {
        SensorKind::Door | SensorKind::Window => file.contact.map(|closed| !closed),
        SensorKind::Motion => file.occupancy,
        SensorKind::Water => file.water_leak,
        SensorKind::Smoke => file.smoke,
        SensorKind::Tamper => file.tamper,
        SensorKind::Panic => Some(matches!(
            file.action.as_deref(),
            Some("emergency" | "panic" | "sos")
        )),
    };
    Ok(DeviceReport {
        active,
        tamper: file.tamper,
        battery_low: file.battery_low,
    })
}

/// Reads an availability message: `online`/`offline` (zigbee2mqtt's
/// legacy form) or `{"state": "online"}`. True when online.
pub fn parse_availability(payload: &[u8]) -> Result<bool, PayloadError> {
    let text = std::str::from_utf8(bounded(payload)?)
        .map_err(|_| PayloadError::Availability("not UTF-8".into()))?
        .trim();
    let state = if text.starts_with('{') {
        #[derive(Deserialize)]
        struct AvailabilityFile {
            state: String,
        }
        serde_json::from_str::<AvailabilityFile>(text)
            .map_err(|e| PayloadError::Json(e.to_string()))?
            .state
    } else {
        text.to_owned()
    };
    match state.as_str() {
        "online" => Ok(true),
        "offline" => Ok(false),
        _ => Err(PayloadError::Availability(vigil_domain::text::excerpt(
            &state,
        ))),
    }
}

/// What a keypad asks (its `action`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeypadAction {
    Disarm,
    /// `arm_day_zones`: armed home.
    ArmDay,
    /// `arm_night_zones`: armed night.
    ArmNight,
    /// `arm_all_zones`: armed away.
    ArmAll,
    /// `emergency` or `panic`.
    Panic,
}

impl KeypadAction {
    fn parse(action: &str) -> Option<KeypadAction> {
        Some(match action {
            "disarm" => KeypadAction::Disarm,
            "arm_day_zones" => KeypadAction::ArmDay,
            "arm_night_zones" => KeypadAction::ArmNight,
            "arm_all_zones" => KeypadAction::ArmAll,
            "emergency" | "panic" => KeypadAction::Panic,
            _ => return None,
        })
    }

    /// The `arm_mode` that confirms it.
    pub fn confirmation(self) -> ArmMode {
        match self {
            KeypadAction::Disarm => ArmMode::Disarm,
            KeypadAction::ArmDay => ArmMode::ArmDayZones,
            KeypadAction::ArmNight => ArmMode::ArmNightZones,
            KeypadAction::ArmAll => ArmMode::ArmAllZones,
            KeypadAction::Panic => ArmMode::InAlarm,
        }
    }
}

/// A keypad's request: its action, the code typed (if any), and the
/// transaction its answer must carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeypadRequest {
    pub action: KeypadAction,
    pub code: Option<String>,
    pub transaction: Option<u64>,
}

/// Reads a keypad's message; `Ok(None)` for messages that ask nothing
/// (battery reports, an `action` Vigil does not act on).
pub fn parse_keypad(payload: &[u8]) -> Result<Option<KeypadRequest>, PayloadError> {
    #[derive(Deserialize)]
    struct KeypadFile {
        action: Option<String>,
        action_code: Option<serde_json::Value>,
        action_transaction: Option<u64>,
    }
    let file: KeypadFile =
        serde_json::from_slice(bounded(payload)?).map_err(|e| PayloadError::Json(e.to_string()))?;
    let Some(action) = file.action.as_deref().and_then(KeypadAction::parse) else {
        return Ok(None);
    };
    // Keypads send the code as a string; some as a number.
    let code = match file.action_code {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(Some(KeypadRequest {
        action,
        code,
        transaction: file.action_transaction,
    }))
}

/// What Vigil tells a keypad (zigbee2mqtt's `arm_mode.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArmMode {
    Disarm,
    ArmDayZones,
    ArmNightZones,
    ArmAllZones,
    InvalidCode,
    NotReady,
    AlreadyDisarmed,
    ExitDelay,
    EntryDelay,
    InAlarm,
}

impl ArmMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ArmMode::Disarm => "disarm",
            ArmMode::ArmDayZones => "arm_day_zones",
            ArmMode::ArmNightZones => "arm_night_zones",
            ArmMode::ArmAllZones => "arm_all_zones",
            ArmMode::InvalidCode => "invalid_code",
            ArmMode::NotReady => "not_ready",
            ArmMode::AlreadyDisarmed => "already_disarmed",
            ArmMode::ExitDelay => "exit_delay",
            ArmMode::EntryDelay => "entry_delay",
            ArmMode::InAlarm => "in_alarm",
        }
    }
}

/// The payload for `<device>/set`: the answer to a transaction, or (with
/// none) the panel's state mirrored.
pub fn arm_mode_payload(mode: ArmMode, transaction: Option<u64>) -> String {
    let mut arm_mode = serde_json::Map::new();
    if let Some(t) = transaction {
        arm_mode.insert("transaction".into(), t.into());
    }
    arm_mode.insert("mode".into(), mode.as_str().into());
    serde_json::json!({ "arm_mode": arm_mode }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_door_is_open_when_its_contact_is_false() {
        let open = br#"{"battery":91,"battery_low":false,"contact":false,"linkquality":120,"tamper":false,"voltage":2995}"#;
        let report = parse_device(SensorKind::Door, open).expect("parse");
        assert_eq!(
            report,
            DeviceReport {
                active: Some(true),
                tamper: Some(false),
                battery_low: Some(false)
            }
        );
        let closed = br#"{"contact":true}"#;
        assert_eq!(
            parse_device(SensorKind::Window, closed)
                .expect("parse")
                .active,
            Some(false)
        );
        assert_eq!(
            parse_device(SensorKind::Door, br#"{"linkquality":3}"#)
                .expect("parse")
                .active,
            None
        );
    }

    #[test]
    fn each_kind_reads_its_own_field() {
        let p = br#"{"occupancy":true,"water_leak":true,"smoke":false,"tamper":true}"#;
        assert_eq!(
            parse_device(SensorKind::Motion, p).expect("p").active,
            Some(true)
        );
        assert_eq!(
            parse_device(SensorKind::Water, p).expect("p").active,
            Some(true)
        );
        assert_eq!(
            parse_device(SensorKind::Smoke, p).expect("p").active,
            Some(false)
        );
        assert_eq!(
            parse_device(SensorKind::Tamper, p).expect("p").active,
            Some(true)
        );
        let sos = br#"{"action":"emergency"}"#;
        assert_eq!(
            parse_device(SensorKind::Panic, sos).expect("p").active,
            Some(true)
        );
    }

    #[test]
    fn hostile_payloads_are_errors_not_panics() {
        for bad in [
            &b"not json"[..],
            b"[1,2]",
            b"{\"contact\":\"yes\"}",
            b"\xff\xfe",
            b"",
        ] {
            assert!(parse_device(SensorKind::Door, bad).is_err(), "{bad:?}");
        }
        let huge = vec![b' '; crate::MAX_INBOUND_PAYLOAD + 1];
        assert_eq!(
            parse_device(SensorKind::Door, &huge),
            Err(PayloadError::TooLarge(huge.len()))
        );
        assert!(parse_keypad(b"{\"action\":7}").is_err());
    }

    #[test]
    fn availability_in_both_forms() {
        assert_eq!(parse_availability(b"online"), Ok(true));
        assert_eq!(parse_availability(b"offline"), Ok(false));
        assert_eq!(parse_availability(br#"{"state":"offline"}"#), Ok(false));
        assert!(parse_availability(b"maybe").is_err());
    }

    #[test]
    fn a_keypad_request_and_its_answer() {
        let p = br#"{"action":"arm_all_zones","action_code":"1234","action_transaction":12,"action_zone":0}"#;
        let req = parse_keypad(p).expect("parse").expect("a request");
        assert_eq!(
            req,
            KeypadRequest {
                action: KeypadAction::ArmAll,
                code: Some("1234".into()),
                transaction: Some(12)
            }
        );
        assert_eq!(
            arm_mode_payload(req.action.confirmation(), req.transaction),
            r#"{"arm_mode":{"mode":"arm_all_zones","transaction":12}}"#
        );
        assert_eq!(
            arm_mode_payload(ArmMode::ExitDelay, None),
            r#"{"arm_mode":{"mode":"exit_delay"}}"#
        );
        assert_eq!(parse_keypad(br#"{"battery":50}"#), Ok(None));
        assert_eq!(parse_keypad(br#"{"action":"identify"}"#), Ok(None));
    }
}

//! `[[sensors]]`: the wired inputs, in table-slot order; and the motion
//! sensors that cameras with `motion = true` add after them.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::Deserialize;
use vigil_domain::{ArmedMode, Level, MAX_NAME_LEN, MAX_SENSORS, Pull, Response, SensorKind};

use crate::CameraConfig;
use crate::check::{At, Checker, words};
use crate::limits::{DEBOUNCE_MS, SUPERVISION_SECS};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SensorFile {
    name: Option<String>,
    kind: Option<String>,
    pin: Option<i64>,
    pull: Option<String>,
    active: Option<String>,
    debounce_ms: Option<u64>,
    modes: Option<Vec<String>>,
    supervision_secs: Option<u64>,
    response: Option<String>,
    arm_after_close: Option<bool>,
    auto_bypass: Option<bool>,
    double_knock: Option<String>,
    trigger_on_fault: Option<bool>,
    source: Option<String>,
    friendly_name: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SensorConfig {
    pub name: String,
    pub kind: SensorKind,
    /// Modes in which the sensor is armed; 24-hour zones ignore this.
    pub modes: BTreeSet<ArmedMode>,
    /// BCM pin number.
    pub pin: u8,
    pub pull: Pull,
    /// The level that means "active" (door open, motion, loop open).
    pub active_level: Level,
    /// A sensor with no edge for this long is reported as a fault.
    pub supervision: Option<Duration>,
    /// Double-knock group: triggers only with a second sensor of the group.
    pub double_knock: Option<String>,
    /// Not a GPIO input: motion seen on this camera's video (the hub
    /// writes the slot; sensord leaves it alone). Such sensors come after
    /// every GPIO sensor, so GPIO slots keep their numbers.
    pub camera: Option<String>,
    /// Not a GPIO input: a Zigbee device, by its zigbee2mqtt friendly name
    /// (`source = "zigbee2mqtt"`). sensord writes its slot from the
    /// device's MQTT messages; `pin`, `pull` and `active_level` mean
    /// nothing for it.
    pub zigbee: Option<String>,
    /// A new level must hold this long before it counts.
    pub debounce: Duration,
    /// What it does when it activates in an armed mode.
    pub response: Response,
    /// Open at arming time: armed once it closes (instead of refusing).
    pub arm_after_close: bool,
    /// Open at arming time: bypassed until disarm (instead of refusing).
    pub auto_bypass: bool,
    /// A fault (silence, unavailability) triggers when armed.
    pub trigger_on_fault: bool,
}

impl SensorConfig {
    /// A wired input on a GPIO pin (not a camera's motion, not Zigbee).
    pub fn is_gpio(&self) -> bool {
        self.camera.is_none() && self.zigbee.is_none()
    }
}

words! { Response, "response", ["entry" => Response::EntryDelay, "instant" => Response::Instant],
hint "\"entry\" starts the entry delay, \"instant\" triggers at once" }

/// People move about at home and at night: motion arms when away.
const MOTION_MODES: [ArmedMode; 2] = [ArmedMode::Away, ArmedMode::Vacation];

/// Every sensor, with their names in `names` (for the cameras' motion
/// sensors to be checked against).
pub(crate) fn check(
    c: &mut Checker,
    files: Vec<SensorFile>,
    names: &mut BTreeSet<String>,
) -> Vec<SensorConfig> {
    if files.len() > MAX_SENSORS {
        c.report(
            "sensors",
            format!("{} sensors configured", files.len()),
            format!("configure at most {MAX_SENSORS}"),
        );
    }
    c.each("sensors", files, |c, at, s| sensor(c, at, s, names))
}

fn sensor(
    c: &mut Checker,
    at: &At,
    s: SensorFile,
    names: &mut BTreeSet<String>,
) -> Option<SensorConfig> {
    let name = c.name(&at.key("name"), s.name, "sensor");
    if let Some(n) = &name
        && !names.insert(n.clone())
    {
        c.report(
            at.key("name"),
            format!("a second sensor is named {n:?}"),
            "give every sensor its own name",
        );
    }
    let kind_fix = format!(
        "use one of {}",
        SensorKind::ALL.map(SensorKind::as_str).join(", ")
    );
    let kind = c
        .required(&at.key("kind"), s.kind, &format!("set `kind`: {kind_fix}"))
        .and_then(|k| {
            let parsed = SensorKind::parse(&k);
            if parsed.is_none() {
                c.report(
                    at.key("kind"),
                    format!("unknown sensor kind {k:?}"),
                    &kind_fix,
                );
            }
            parsed
        });
    let zigbee = match s.source.as_deref() {
        None | Some("gpio") => {
            if s.friendly_name.is_some() {
                c.report(
                    at.key("friendly_name"),
                    "a GPIO sensor has no friendly name",
                    "remove `friendly_name`, or set `source = \"zigbee2mqtt\"`",
                );
            }
            None
        }
        Some("zigbee2mqtt") => {
            if s.pin.is_some() || s.pull.is_some() || s.active.is_some() {
                c.report(
                    at.key("pin"),
                    "a Zigbee sensor has no pin, pull or active level",
                    "remove `pin`, `pull` and `active` from this sensor",
                );
            }
            let friendly = c.required(
                &at.key("friendly_name"),
                s.friendly_name,
                "set `friendly_name` to the device's name in zigbee2mqtt",
            );
            if let Some(f) = &friendly
                && !crate::is_valid_topic(f)
            {
                c.report(
                    at.key("friendly_name"),
                    format!("{f:?} cannot be a zigbee2mqtt topic"),
                    "rename the device in zigbee2mqtt without + or #",
                );
            }
            Some(friendly)
        }
        Some(other) => {
            c.report(
                at.key("source"),
                format!("unknown sensor source {other:?}"),
                "use \"gpio\" (the default) or \"zigbee2mqtt\"",
            );
            None
        }
    };
    let pin = match zigbee {
        Some(_) => Some(0),
        None => c.pin(&at.key("pin"), s.pin, name.as_deref().unwrap_or("unnamed")),
    };
    let pull = c.word(&at.key("pull"), s.pull.as_deref(), Pull::Up);
    // A reed switch to ground with a pull-up reads high when it opens.
    let active_level = c.word(&at.key("active"), s.active.as_deref(), Level::High);
    let debounce_ms = c.bounded(&at.key("debounce_ms"), s.debounce_ms, &DEBOUNCE_MS);
    let supervision_secs = (s.supervision_secs)
        .map(|secs| c.bounded(&at.key("supervision_secs"), Some(secs), &SUPERVISION_SECS));
    let modes = modes(c, &at.key("modes"), kind, s.modes);
    // People come in through doors; anything else is instant.
    let default_response = match kind {
        Some(SensorKind::Door) => Response::EntryDelay,
        _ => Response::Instant,
    };
    let response = c.word(&at.key("response"), s.response.as_deref(), default_response);
    Some(SensorConfig {
        name: name?,
        kind: kind?,
        pin: pin?,
        pull,
        active_level,
        debounce: Duration::from_millis(debounce_ms),
        modes,
        supervision: supervision_secs.map(Duration::from_secs),
        response,
        arm_after_close: s.arm_after_close.unwrap_or(false),
        auto_bypass: s.auto_bypass.unwrap_or(false),
        double_knock: s.double_knock,
        trigger_on_fault: s.trigger_on_fault.unwrap_or(false),
        camera: None,
        zigbee: zigbee.flatten(),
    })
}

/// The armed modes of a sensor of `kind`: the listed ones, or its kind's.
fn modes(
    c: &mut Checker,
    key: &str,
    kind: Option<SensorKind>,
    listed: Option<Vec<String>>,
) -> BTreeSet<ArmedMode> {
    match (kind, listed) {
        (Some(k), Some(_)) if k.is_24_hour() => {
            c.report(
                key,
                format!("a {k} sensor is a 24-hour zone and triggers in every mode"),
                "remove `modes` from this sensor",
            );
            BTreeSet::new()
        }
        (_, Some(list)) => list
            .iter()
            .filter_map(|m| match ArmedMode::parse(m) {
                Some(ArmedMode::Disarmed) | None => {
                    c.report(
                        key,
                        format!("{m:?} is not an armed mode"),
                        "list some of \"home\", \"away\", \"night\", \"vacation\", \"custom\"",
                    );
                    None
                }
                Some(mode) => Some(mode),
            })
            .collect(),
        (Some(SensorKind::Motion), None) => MOTION_MODES.into(),
        (Some(k), None) if k.is_24_hour() => BTreeSet::new(),
        (_, None) => ArmedMode::ARMED.into(),
    }
}

/// Motion on video: one motion sensor per camera that asks, after the GPIO
/// sensors (their slots keep their numbers).
pub(crate) fn add_camera_motion(
    c: &mut Checker,
    sensors: &mut Vec<SensorConfig>,
    cameras: &[CameraConfig],
    names: &mut BTreeSet<String>,
) {
    for (i, cam) in cameras.iter().enumerate().filter(|(_, c)| c.motion) {
        let name = format!("{}-motion", cam.name);
        if !names.insert(name.clone()) || name.len() > MAX_NAME_LEN {
            c.report(
                format!("cameras[{i}].motion"),
                format!("the motion sensor's name {name:?} is taken or too long"),
                "rename the sensor or the camera (camera names are at most 24 characters here)",
            );
            continue;
        }
        sensors.push(SensorConfig {
            name,
            kind: SensorKind::Motion,
            pin: 0,
            pull: Pull::Off,
            active_level: Level::High,
            debounce: Duration::ZERO,
            modes: MOTION_MODES.into(),
            supervision: None,
            response: Response::Instant,
            arm_after_close: false,
            auto_bypass: false,
            double_knock: None,
            trigger_on_fault: false,
            camera: Some(cam.name.clone()),
            zigbee: None,
        });
    }
    if sensors.len() > MAX_SENSORS {
        c.report(
            "cameras",
            format!("{} sensors with the cameras' motion sensors", sensors.len()),
            format!("keep wired sensors plus cameras with motion = true at most {MAX_SENSORS}"),
        );
    }
}

/// Zigbee sensors arrive through the broker: they need `[mqtt]`, and two
/// sensors cannot be one device.
pub(crate) fn check_zigbee(
    c: &mut Checker,
    sensors: &[SensorConfig],
    mqtt: Option<&crate::MqttConfig>,
) {
    let mut seen = BTreeSet::new();
    for (i, s) in sensors.iter().enumerate() {
        let Some(friendly) = &s.zigbee else { continue };
        if mqtt.is_none() {
            c.report(
                format!("sensors[{i}].source"),
                "a zigbee2mqtt sensor needs the broker",
                "add an [mqtt] table with the broker zigbee2mqtt publishes to",
            );
        }
        if !seen.insert(friendly) {
            c.report(
                format!("sensors[{i}].friendly_name"),
                format!("a second sensor is the Zigbee device {friendly:?}"),
                "give every Zigbee sensor its own device",
            );
        }
    }
}

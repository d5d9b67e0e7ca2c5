//! Home Assistant's MQTT discovery: one device for the hub, with an
//! `alarm_control_panel`, a `binary_sensor` (and a fault `binary_sensor`)
//! per sensor, a `camera` per camera, a panic `button` and a last-event
//! `sensor`. Configs are published retained to
//! `<prefix>/<component>/vigil_<hub id>/<object>/config`; an entity that
//! is gone gets an empty retained config, which removes it.
//!
//! The code is Home Assistant's `REMOTE_CODE`: Home Assistant asks for it
//! and sends it with the command, and the hub checks it. Neither Home
//! Assistant nor the broker ever knows a PIN.

use serde_json::{Value, json};
use vigil_domain::SensorKind;

use crate::topics::HubTopics;

/// What the hub is, for its discovery configs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubDescription {
    pub hub_id: String,
    pub version: String,
    pub sensors: Vec<(String, SensorKind)>,
    pub cameras: Vec<String>,
    /// Arming needs a PIN (`[alarm] pin_to_arm`).
    pub code_arm_required: bool,
}

/// One retained config message.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub topic: String,
    pub payload: Value,
}

/// Home Assistant's device class for a sensor of `kind`.
pub fn device_class(kind: SensorKind) -> &'static str {
    match kind {
        SensorKind::Door => "door",
        SensorKind::Window => "window",
        SensorKind::Motion => "motion",
        SensorKind::Tamper => "tamper",
        SensorKind::Smoke => "smoke",
        SensorKind::Water => "moisture",
        SensorKind::Panic => "safety",
    }
}

/// The node id of the hub's entities: `vigil_<hub id>`.
pub fn node_id(hub_id: &str) -> String {
    format!("vigil_{hub_id}")
}

/// The topic filter that matches every config this hub may have published.
pub fn config_filter(prefix: &str, hub_id: &str) -> String {
    format!("{prefix}/+/{}/+/config", node_id(hub_id))
}

/// Every config of the hub.
pub fn configs(prefix: &str, base_topic: &str, hub: &HubDescription) -> Vec<Config> {
    let topics = HubTopics::new(base_topic, &hub.hub_id);
    let node = node_id(&hub.hub_id);
    let short = &hub.hub_id[..hub.hub_id.len().min(8)];
    let device = json!({
        "identifiers": [node],
        "name": format!("Vigil {short}"),
        "manufacturer": "Vigil",
        "model": "Vigil alarm hub",
        "sw_version": hub.version,
    });
    let availability = json!([{ "topic": topics.availability() }]);
    let topic =
        |component: &str, object: &str| format!("{prefix}/{component}/{node}/{object}/config");
    let base = |name: Value, object: &str| {
        json!({
            "name": name,
            "unique_id": format!("{node}_{object}"),
            "object_id": format!("vigil_{object}"),
            "device": device,
            "availability": availability,
        })
    };
    let mut configs = Vec::new();

    let mut panel = base(json!("Alarm"), "alarm");
    merge(
        &mut panel,
        json!({
            "state_topic": topics.alarm_state(),
            "command_topic": topics.alarm_command(),
            "command_template": "{\"action\": \"{{ action }}\", \"code\": \"{{ code }}\"}",
            "json_attributes_topic": topics.alarm_status(),
            "code": "REMOTE_CODE",
            "code_arm_required": hub.code_arm_required,
            "code_disarm_required": true,
            "code_trigger_required": false,
            "supported_features": ["arm_home", "arm_away", "arm_night", "arm_vacation",
                                   "arm_custom_bypass", "trigger"],
        }),
    );
    configs.push(Config {
        topic: topic("alarm_control_panel", "alarm"),
        payload: panel,
    });

    for (name, kind) in &hub.sensors {
        let mut sensor = base(json!(name), name);
        merge(
            &mut sensor,
            json!({
                "state_topic": topics.sensor_state(name),
                "device_class": device_class(*kind),
            }),
        );
        configs.push(Config {
            topic: topic("binary_sensor", name),
            payload: sensor,
        });
        let object = format!("{name}_fault");
        let mut fault = base(json!(format!("{name} fault")), &object);
        merge(
            &mut fault,
            json!({
                "state_topic": topics.sensor_fault(name),
                "device_class": "problem",
                "entity_category": "diagnostic",
            }),
        );
        configs.push(Config {
            topic: topic("binary_sensor", &object),
            payload: fault,
        });
    }

    for camera in &hub.cameras {
        let object = format!("camera_{camera}");
        let mut cam = base(json!(camera), &object);
        merge(&mut cam, json!({ "topic": topics.camera_snapshot(camera) }));
        configs.push(Config {
            topic: topic("camera", &object),
            payload: cam,
        });
        let object = format!("camera_{camera}_snapshot");
        let mut button = base(json!(format!("{camera} snapshot")), &object);
        merge(
            &mut button,
            json!({
                "command_topic": topics.camera_snapshot_request(camera),
                "payload_press": "PRESS",
            }),
        );
        configs.push(Config {
            topic: topic("button", &object),
            payload: button,
        });
    }

    let mut panic = base(json!("Panic"), "panic");
    merge(
        &mut panic,
        json!({
            "command_topic": topics.panic_command(),
            "payload_press": "PRESS",
            "icon": "mdi:alarm-light",
        }),
    );
    configs.push(Config {
        topic: topic("button", "panic"),
        payload: panic,
    });

    let mut last = base(json!("Last event"), "last_event");
    merge(
        &mut last,
        json!({
            "state_topic": topics.last_event(),
            "value_template": "{{ value_json.message[:255] }}",
            "json_attributes_topic": topics.last_event(),
            "icon": "mdi:history",
        }),
    );
    configs.push(Config {
        topic: topic("sensor", "last_event"),
        payload: last,
    });
    configs
}

fn merge(into: &mut Value, more: Value) {
    if let (Value::Object(into), Value::Object(more)) = (into, more) {
        into.extend(more);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub() -> HubDescription {
        HubDescription {
            hub_id: "0123456789abcdef0123456789abcdef".into(),
            version: "0.1.0".into(),
            sensors: vec![
                ("front_door".into(), SensorKind::Door),
                ("leak".into(), SensorKind::Water),
            ],
            cameras: vec!["porch".into()],
            code_arm_required: false,
        }
    }

    #[test]
    fn one_device_with_every_entity() {
        let configs = configs("homeassistant", "vigil", &hub());
        let topics: Vec<_> = configs.iter().map(|c| c.topic.as_str()).collect();
        let node = "vigil_0123456789abcdef0123456789abcdef";
        for t in [
            format!("homeassistant/alarm_control_panel/{node}/alarm/config"),
            format!("homeassistant/binary_sensor/{node}/front_door/config"),
            format!("homeassistant/binary_sensor/{node}/leak_fault/config"),
            format!("homeassistant/camera/{node}/camera_porch/config"),
            format!("homeassistant/button/{node}/panic/config"),
            format!("homeassistant/sensor/{node}/last_event/config"),
        ] {
            assert!(topics.contains(&t.as_str()), "{t} missing from {topics:?}");
        }
        for c in &configs {
            assert!(c.topic.starts_with("homeassistant/"));
            let p = &c.payload;
            assert!(p["unique_id"].as_str().is_some_and(|u| u.starts_with(node)));
            assert_eq!(p["device"]["identifiers"][0], node);
        }
        let panel = &configs[0].payload;
        assert_eq!(panel["code"], "REMOTE_CODE");
        assert_eq!(panel["code_disarm_required"], true);
        let leak = configs
            .iter()
            .find(|c| c.topic.contains("/leak/"))
            .expect("leak");
        assert_eq!(leak.payload["device_class"], "moisture");
    }
}

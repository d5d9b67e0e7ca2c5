//! The bridge's topics: every one under `<base_topic>/<hub id>/`, so many
//! hubs share one broker without meeting. docs/mqtt.md lists them.

/// The topics of one hub.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubTopics {
    /// `<base_topic>/<hub id>`.
    root: String,
}

impl HubTopics {
    pub fn new(base_topic: &str, hub_id: &str) -> HubTopics {
        HubTopics {
            root: format!("{base_topic}/{hub_id}"),
        }
    }

    /// `online` or `offline`, retained; `offline` is also the last will.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.root)
    }

    /// The panel's state in Home Assistant's words, retained.
    pub fn alarm_state(&self) -> String {
        format!("{}/alarm/state", self.root)
    }

    /// The panel's status as JSON (mode, state, deadline, open, faults), retained.
    pub fn alarm_status(&self) -> String {
        format!("{}/alarm/status", self.root)
    }

    /// Commands to the panel: `{"action": "ARM_AWAY", "code": "1234"}`.
    pub fn alarm_command(&self) -> String {
        format!("{}/alarm/set", self.root)
    }

    /// The answer to each command (not retained).
    pub fn alarm_result(&self) -> String {
        format!("{}/alarm/result", self.root)
    }

    /// Every event as JSON, in order, with its sequence number.
    pub fn events(&self) -> String {
        format!("{}/events", self.root)
    }

    /// The last event's message, retained (a Home Assistant sensor).
    pub fn last_event(&self) -> String {
        format!("{}/last_event", self.root)
    }

    /// A sensor's state, `ON` (open, motion, wet...) or `OFF`, retained.
    pub fn sensor_state(&self, sensor: &str) -> String {
        format!("{}/sensor/{sensor}/state", self.root)
    }

    /// A sensor's fault, `ON` or `OFF`, retained.
    pub fn sensor_fault(&self, sensor: &str) -> String {
        format!("{}/sensor/{sensor}/fault", self.root)
    }

    /// A camera's latest snapshot (JPEG bytes), retained.
    pub fn camera_snapshot(&self, camera: &str) -> String {
        format!("{}/camera/{camera}/snapshot", self.root)
    }

    /// Any payload asks for a new snapshot of the camera.
    pub fn camera_snapshot_request(&self, camera: &str) -> String {
        format!("{}/camera/{camera}/snapshot/set", self.root)
    }

    /// `PRESS` raises a panic alarm.
    pub fn panic_command(&self) -> String {
        format!("{}/panic/set", self.root)
    }
}

/// zigbee2mqtt's topics for one device (`<base>/<friendly name>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceTopics {
    device: String,
}

impl DeviceTopics {
    pub fn new(zigbee2mqtt_topic: &str, friendly_name: &str) -> DeviceTopics {
        DeviceTopics {
            device: format!("{zigbee2mqtt_topic}/{friendly_name}"),
        }
    }

    /// The device's state messages.
    pub fn state(&self) -> &str {
        &self.device
    }

    /// `online`/`offline` (or `{"state": "online"}`), retained by zigbee2mqtt.
    pub fn availability(&self) -> String {
        format!("{}/availability", self.device)
    }

    /// What Vigil asks of the device (a keypad's `arm_mode`).
    pub fn set(&self) -> String {
        format!("{}/set", self.device)
    }
}

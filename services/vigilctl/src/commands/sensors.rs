//! `sensors`: every sensor the hub knows and its live state.

use serde_json::json;
use vigil_proto::v1 as pb;

use super::Ask;
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, Render, flags, mode_word};

/// Every sensor and its live state.
#[derive(Debug, clap::Args)]
pub struct Sensors {}

impl Ask for Sensors {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let answer = hub.answer(hub.alarm().list_sensors(pb::ListSensorsRequest {}).await)?;
        out.show(&answer);
        Ok(())
    }
}

/// The modes a sensor is armed in, as words.
fn modes(sensor: &pb::Sensor) -> Vec<&'static str> {
    sensor.modes.iter().map(|m| mode_word(*m)).collect()
}

/// One JSON array (not a line a sensor): scripts read the set whole.
impl Render for pb::ListSensorsResponse {
    fn json(&self) -> serde_json::Value {
        let list = self.sensors.iter().map(|s| {
            json!({
                "name": s.name, "kind": s.kind, "state": s.state,
                "active": s.active, "fault": s.fault, "tamper": s.tamper,
                "bypassed": s.bypassed, "twenty_four_hour": s.twenty_four_hour,
                "modes": modes(s),
                "change_count": s.change_count,
                "last_change_unix_ms": s.last_change_unix_ms,
            })
        });
        serde_json::Value::Array(list.collect())
    }

    fn text(&self) -> String {
        let mut out = format!(
            "{:<22} {:<7} {:<9} {:<16} MODES\n",
            "SENSOR", "KIND", "STATE", "FLAGS"
        );
        for s in &self.sensors {
            let modes = if s.twenty_four_hour {
                "24-hour".to_owned()
            } else {
                modes(s).join(",")
            };
            out.push_str(&format!(
                "{:<22} {:<7} {:<9} {:<16} {modes}\n",
                s.name,
                s.kind,
                s.state,
                flags(s.fault, s.tamper, s.bypassed),
            ));
        }
        out
    }
}

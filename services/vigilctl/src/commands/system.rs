//! `system`: what the hub is and how it is set up (GetSystem), and
//! `siren-test` (admin, while disarmed).

use serde_json::json;
use vigil_proto::v1 as pb;

use super::Ask;
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, Render, mode_name, mode_word};

/// The hub's version, identities and uptime, each mode's delays, the
/// sensors with the modes they are armed in, and the faults.
#[derive(Debug, clap::Args)]
pub struct System {}

impl Ask for System {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let system = hub.answer(hub.alarm().get_system(pb::GetSystemRequest {}).await)?;
        out.show(&system);
        Ok(())
    }
}

/// Sound the siren for 5 seconds, to check it (admin; only while
/// disarmed).
#[derive(Debug, clap::Args)]
pub struct SirenTest {}

impl Ask for SirenTest {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let answer = hub.answer(hub.alarm().test_siren(pb::TestSirenRequest {}).await)?;
        out.show(&answer.status.unwrap_or_default());
        Ok(())
    }
}

fn modes_json(modes: &[i32]) -> Vec<&'static str> {
    modes.iter().map(|m| mode_word(*m)).collect()
}

impl Render for pb::GetSystemResponse {
    fn json(&self) -> serde_json::Value {
        json!({
            "version": self.version,
            "api": self.api,
            "hub_id": self.hub_id,
            "log_id": self.log_id,
            "started_unix_ms": self.started_unix_ms,
            "uptime_s": self.uptime_s,
            "modes": self.modes.iter().map(|m| json!({
                "mode": mode_word(m.mode),
                "exit_delay_s": m.exit_delay_s,
                "entry_delay_s": m.entry_delay_s,
                "siren_s": m.siren_s,
            })).collect::<Vec<_>>(),
            "pin_required_to_arm": self.pin_required_to_arm,
            "chime": self.chime,
            "sensors": self.sensors.iter().map(|s| json!({
                "name": s.name,
                "kind": s.kind,
                "modes": modes_json(&s.modes),
                "twenty_four_hour": s.twenty_four_hour,
                "entry_delay": s.entry_delay,
            })).collect::<Vec<_>>(),
            "cameras": self.cameras,
            "faults": self.faults.iter().map(|f| json!({
                "kind": f.kind, "subject": f.subject, "message": f.message,
            })).collect::<Vec<_>>(),
        })
    }

    fn text(&self) -> String {
        let mut out = format!(
            "vigil-hub {} ({}), up {} s\nhub {}  log {}\n",
            self.version, self.api, self.uptime_s, self.hub_id, self.log_id
        );
        out.push_str("modes:\n");
        for m in &self.modes {
            out.push_str(&format!(
                "  {:<16} exit {:>3} s  entry {:>3} s  siren {:>4} s\n",
                mode_name(m.mode),
                m.exit_delay_s,
                m.entry_delay_s,
                m.siren_s
            ));
        }
        if self.pin_required_to_arm {
            out.push_str("arming needs a PIN\n");
        }
        out.push_str("sensors:\n");
        for s in &self.sensors {
            let armed = if s.twenty_four_hour {
                "24-hour zone".to_owned()
            } else {
                modes_json(&s.modes).join(", ")
            };
            let delay = if s.entry_delay { ", entry delay" } else { "" };
            out.push_str(&format!("  {:<20} {:<7} {armed}{delay}\n", s.name, s.kind));
        }
        if !self.cameras.is_empty() {
            out.push_str(&format!("cameras: {}\n", self.cameras.join(", ")));
        }
        if self.faults.is_empty() {
            out.push_str("no faults\n");
        }
        for f in &self.faults {
            out.push_str(&format!("fault ({}): {}\n", f.kind, f.message));
        }
        out
    }
}

//! `status`: the alarm as the hub reports it, or with `--local` the shared
//! sensor table read directly on the hub machine. The status's two forms
//! are also what `arm`, `disarm`, `panic` and `bypass` answer with.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use vigil_proto::v1 as pb;

use super::{Context, Run};
use crate::error::Error;
use crate::hub::Hub;
use crate::local;
use crate::output::{Render, mode_name, mode_word, state_name};

/// The mode, the alarm state, timers, open and bypassed sensors.
#[derive(Debug, clap::Args)]
pub struct Status {
    /// Read the shared sensor table on the hub machine instead (needs
    /// the hub's user or root; no pairing).
    #[arg(long)]
    pub local: bool,
}

impl Run for Status {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        if self.local {
            let status = ctx
                .on_hub_machine(|config| local::local_status(config, local::TIMEOUT))
                .await?;
            ctx.out.show(&status);
        } else {
            let hub = ctx.connect().await?;
            ctx.out.show(&get(&hub).await?);
        }
        Ok(())
    }
}

/// The hub's status now.
pub(crate) async fn get(hub: &Hub) -> Result<pb::Status, Error> {
    let answer = hub.answer(hub.alarm().get_status(pb::GetStatusRequest {}).await)?;
    Ok(answer.status.unwrap_or_default())
}

/// Whole seconds from now until `unix_ms`, rounded up (0 once past).
fn seconds_until(unix_ms: i64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    (unix_ms - now).max(0).unsigned_abs().div_ceil(1000)
}

impl Render for pb::Status {
    fn json(&self) -> serde_json::Value {
        json!({
            "mode": mode_word(self.mode),
            "state": state_name(self.state),
            "deadline_unix_ms": (self.deadline_unix_ms != 0).then_some(self.deadline_unix_ms),
            "siren": self.siren,
            "buzzer": self.buzzer,
            "bypassed": self.bypassed,
            "open": self.open,
            "faults": self.faults,
            "locked_until_unix_ms":
                (self.locked_until_unix_ms != 0).then_some(self.locked_until_unix_ms),
            "last_event_seq": self.last_event_seq,
        })
    }

    fn text(&self) -> String {
        let mut out = format!("{}, {}", mode_name(self.mode), state_name(self.state));
        if self.deadline_unix_ms != 0 {
            let what = match pb::AlarmState::try_from(self.state) {
                Ok(pb::AlarmState::Arming) => "exit delay ends",
                Ok(pb::AlarmState::Pending) => "entry delay ends",
                _ => "siren stops",
            };
            let left = seconds_until(self.deadline_unix_ms);
            out.push_str(&format!(" ({what} in {left} s)"));
        }
        out.push('\n');
        out.push_str(&format!(
            "siren {}, buzzer {}\n",
            if self.siren { "ON" } else { "off" },
            if self.buzzer { "on" } else { "off" }
        ));
        for (label, list) in [
            ("open", &self.open),
            ("bypassed", &self.bypassed),
            ("faults", &self.faults),
        ] {
            if !list.is_empty() {
                out.push_str(&format!("{label}: {}\n", list.join(", ")));
            }
        }
        if self.locked_until_unix_ms != 0 {
            let left = seconds_until(self.locked_until_unix_ms);
            out.push_str(&format!("PINs locked out for {left} s\n"));
        }
        out
    }
}

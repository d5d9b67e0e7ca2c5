//! vigil-mqttd: the MQTT bridge.
//!
//! Owns: the hub's presence on an MQTT broker: Home Assistant discovery
//! (retained), the panel's and each sensor's state (retained), every event
//! on the event topic in order, commands from MQTT (Home Assistant's
//! panel and buttons) and from Zigbee keypads (zigbee2mqtt), answered on
//! the broker; availability by a retained `online` and a last will.
//!
//! Must never: decide or check anything about the alarm (every command,
//! code and role goes through the hub's API, which checks it and counts a
//! wrong code toward the lockout), keep a PIN, or sit on the alarm's path:
//! the hub does not wait for the bridge, and a bridge that is slow, down
//! or flooded by the broker changes nothing the alarm does.
//!
//! How it talks: to the hub as a paired gRPC client (`[mqtt]
//! hub_credentials`, paired with `vigilctl --credentials DIR pair --here
//! mqtt`); to the broker with rumqttc. It starts in any order: it waits
//! for the hub, then the broker, and reconnects to each by itself. After
//! a lost stream, or its own restart, it resumes the events after the last
//! one it published (`resume`), so the event topic misses none.
//!
//! Code map:
//! - [`run`]: connects to the hub, makes the MQTT client (its last will
//!   names the hub) and runs a session per hub connection.
//! - `hub`: the gRPC calls the bridge makes.
//! - `session`: one hub connection's loop: events out, commands in.
//! - `resume`: where the event topic stands, kept in a file.
//! - `pump`: drives rumqttc's event loop, hands inbound messages over
//!   through a bounded queue that drops (and counts) a flood.
//! - `error`: why it stops, with exit codes.

#![forbid(unsafe_code)]

mod error;
mod hub;
mod pump;
mod resume;
mod session;

use std::time::Duration;

use tracing::{info, warn};
use vigil_config::Config;

pub use crate::error::MqttdError;
use crate::hub::Hub;
use crate::session::{Ended, Session};

/// How long to wait between attempts to reach the hub.
const HUB_RETRY: Duration = Duration::from_secs(2);

/// Runs the bridge until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), MqttdError> {
    let mqtt = config.mqtt.clone().ok_or(MqttdError::NoMqtt)?;
    // The broker's files are read once now, so a bad one stops the bridge
    // at start with its name, not at the first reconnection.
    vigil_mqtt::broker::options(&mqtt, "check", None)?;
    tokio::pin!(shutdown);
    let mut link: Option<pump::Link> = None;
    let mut resume = resume::Resume::load(mqtt.hub_credentials.join("events-resume"));
    let mut logged_unreachable = false;
    loop {
        let hub = tokio::select! {
            () = &mut shutdown => break,
            hub = Hub::connect(&mqtt.hub_credentials, mqtt.hub.as_deref()) => hub,
        };
        let mut hub = match hub {
            Ok(hub) => hub,
            Err(e) => {
                if !logged_unreachable {
                    warn!("cannot reach the hub (retrying every 2 s): {e}");
                    logged_unreachable = true;
                }
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(HUB_RETRY) => continue,
                }
            }
        };
        let system = match hub.system().await {
            Ok(system) => system,
            Err(e) => {
                warn!("the hub did not describe itself: {}", e.message());
                tokio::time::sleep(HUB_RETRY).await;
                continue;
            }
        };
        logged_unreachable = false;
        // The hub id names every topic: 32 hex digits, or nothing at all.
        if system.hub_id.len() != 32 || !system.hub_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            warn!(
                hub_id = %vigil_domain::text::excerpt(&system.hub_id),
                "the hub's id is not 32 hex digits; not publishing under it"
            );
            tokio::time::sleep(HUB_RETRY).await;
            continue;
        }
        // One MQTT client per hub identity: its last will names the hub.
        if link.as_ref().is_none_or(|l| l.hub_id != system.hub_id) {
            if let Some(old) = link.take() {
                old.stop().await;
            }
            link = Some(pump::Link::start(&mqtt, &system.hub_id)?);
        }
        let Some(link) = link.as_mut() else { continue };
        info!(hub_id = %system.hub_id, "connected to the hub");
        let session = Session::new(&mqtt, hub, system, link);
        match session.run(&mut resume, &mut shutdown).await {
            Ended::Shutdown => break,
            Ended::Rewind => {}
            Ended::HubLost(why) => {
                warn!("lost the hub ({why}); reconnecting");
                link.publish_offline().await;
                tokio::select! {
                    () = &mut shutdown => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
        }
    }
    info!("vigil-mqttd stopping");
    if let Some(link) = link {
        link.publish_offline().await;
        link.stop().await;
    }
    resume.save();
    Ok(())
}

//! The MQTT client: rumqttc's event loop driven on a task of its own,
//! which reconnects by itself (every 1 s while the broker is away) and
//! hands what arrives to the session through a bounded queue. A flood
//! from the broker fills the queue and is dropped there, counted and
//! logged, so it can never hold up the event loop (which also carries our
//! publications) or the session.

use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vigil_config::MqttConfig;
use vigil_mqtt::broker::{BrokerSetupError, Will};
use vigil_mqtt::topics::HubTopics;

/// Inbound messages waiting for the session; more are dropped.
const INBOUND_QUEUE: usize = 256;
/// Requests (publications) waiting for the connection.
const OUTBOUND_QUEUE: usize = 1024;

/// A message from the broker.
#[derive(Debug)]
pub(crate) struct Inbound {
    pub(crate) topic: String,
    pub(crate) payload: Vec<u8>,
    /// The broker's retained copy (sent on every subscription), not a
    /// message published now: never a command.
    pub(crate) retained: bool,
    /// When it arrived: a command that waited too long is not run.
    pub(crate) at: Instant,
}

/// The connection to the broker, as the session needs to know it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct LinkState {
    /// Connections made so far: each change asks the session to subscribe
    /// and publish the whole state again (a clean session).
    pub(crate) connections: u64,
    /// Since when the broker has been unreachable, if it is now.
    pub(crate) down_since: Option<Instant>,
    /// When the last connection was lost: what was handed to the client
    /// shortly before may have been lost with it.
    pub(crate) last_lost: Option<Instant>,
}

/// The client and its running event loop.
#[derive(Debug)]
pub(crate) struct Link {
    pub(crate) hub_id: String,
    pub(crate) client: AsyncClient,
    /// Commands, keypads, snapshot requests: what people do.
    pub(crate) inbound: mpsc::Receiver<Inbound>,
    /// Retained discovery configs coming back (hundreds at each
    /// connection): a queue of their own, so they never crowd out a
    /// keypad's command.
    pub(crate) configs: mpsc::Receiver<Inbound>,
    /// Apart from the queues, so a flood never hides a reconnection and
    /// the event loop never waits to say one.
    pub(crate) state: watch::Receiver<LinkState>,
    topics: HubTopics,
    task: JoinHandle<()>,
}

impl Link {
    pub(crate) fn start(config: &MqttConfig, hub_id: &str) -> Result<Link, BrokerSetupError> {
        let discovery =
            (!config.discovery_prefix.is_empty()).then(|| format!("{}/", config.discovery_prefix));
        let topics = HubTopics::new(&config.base_topic, hub_id);
        let will = Will {
            topic: topics.availability(),
            payload: "offline",
        };
        // A client id per hub and process: two bridges never kick each
        // other off the broker in a loop.
        let client_id = format!(
            "vigil-{}-{}",
            &hub_id[..hub_id.len().min(12)],
            std::process::id()
        );
        let options = vigil_mqtt::broker::options(config, &client_id, Some(will))?;
        let (client, mut eventloop) = vigil_mqtt::broker::client(options, OUTBOUND_QUEUE);
        let (tx, inbound) = mpsc::channel(INBOUND_QUEUE);
        let (configs_tx, configs) = mpsc::channel(INBOUND_QUEUE);
        let (state_tx, state) = watch::channel(LinkState::default());
        let broker = format!("{}:{}", config.host, config.port);
        let task = tokio::spawn(async move {
            let mut down_logged = false;
            // Inbound messages dropped because the queue was full.
            let drops = vigil_telemetry::LogBudget::new();
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        info!(%broker, "connected to the MQTT broker");
                        down_logged = false;
                        state_tx.send_modify(|s| {
                            s.connections += 1;
                            s.down_since = None;
                        });
                    }
                    Ok(Event::Incoming(Packet::SubAck(ack))) => {
                        if vigil_mqtt::broker::refused(&ack) {
                            warn!(
                                %broker,
                                "the broker refused a subscription: check its ACL for this user \
                                 (docs/mqtt.md); commands on that topic will not arrive"
                            );
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let to_configs =
                            discovery.as_deref().is_some_and(|d| p.topic.starts_with(d));
                        let message = Inbound {
                            topic: p.topic,
                            payload: p.payload.to_vec(),
                            retained: p.retain,
                            at: Instant::now(),
                        };
                        let queue = if to_configs { &configs_tx } else { &tx };
                        match queue.try_send(message) {
                            Ok(()) => {}
                            Err(mpsc::error::TrySendError::Full(_)) => {
                                if let Some(suppressed) = drops.allow() {
                                    warn!(
                                        suppressed,
                                        "the broker sends faster than the bridge reads; \
                                         dropped an inbound message"
                                    );
                                }
                            }
                            Err(mpsc::error::TrySendError::Closed(_)) => return,
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        let now = Instant::now();
                        state_tx.send_if_modified(|s| {
                            if s.down_since.is_some() {
                                return false;
                            }
                            s.down_since = Some(now);
                            s.last_lost = Some(now);
                            true
                        });
                        if !down_logged {
                            warn!(%broker, "MQTT broker unreachable or gone ({e}); reconnecting every 1 s");
                            down_logged = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Link {
            hub_id: hub_id.to_owned(),
            client,
            inbound,
            configs,
            state,
            topics,
            task,
        })
    }

    /// Marks the hub offline (retained), as the last will would.
    pub(crate) async fn publish_offline(&self) {
        let _ = self.client.try_publish(
            self.topics.availability(),
            QoS::AtLeastOnce,
            true,
            "offline",
        );
        // Give the event loop a moment to send it.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    /// Disconnects and stops the event loop.
    pub(crate) async fn stop(self) {
        let _ = self.client.try_disconnect();
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.task.abort();
    }
}

//! Zigbee sensors through zigbee2mqtt: sensord subscribes to each
//! device's topics on the `[mqtt]` broker and hands what they say to the
//! event loop, which feeds the sensor's tracker as a GPIO edge would
//! (debounce, supervision and every alarm rule apply alike).
//!
//! What counts as a fault: the device `offline` on zigbee2mqtt's
//! availability topic, `battery_low`, `tamper`, the broker unreachable
//! (sensord cannot hear the device), and silence for the sensor's
//! `supervision` window (every message is a sign of life, as
//! zigbee2mqtt's `last_seen` is).
//!
//! The MQTT client runs on a task of its own; what it reads goes to the
//! loop through a bounded queue it waits on, so a flood on a device's
//! topic slows that topic's reader and never drops a real change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rumqttc::{Event, Packet, QoS};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use vigil_config::Config;
use vigil_domain::SensorKind;
use vigil_mqtt::broker::BrokerSetupError;
use vigil_mqtt::topics::DeviceTopics;
use vigil_mqtt::zigbee::{self, DeviceReport};

/// Messages between the MQTT task and the loop.
pub(crate) const QUEUE: usize = 1024;

/// What one Zigbee sensor's device said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Update {
    /// A state message.
    Report(DeviceReport),
    /// zigbee2mqtt's availability: online or not.
    Available(bool),
    /// The broker connection: sensord hears the device or cannot.
    Heard(bool),
}

/// An update for the sensor at `index` (its slot and tracker).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DeviceMessage {
    pub(crate) index: usize,
    pub(crate) update: Update,
    pub(crate) at: Instant,
    /// The broker's retained copy, sent again at every subscription: its
    /// state counts, but it is no sign that the device is alive now.
    pub(crate) retained: bool,
}

/// The running subscription; dropping it stops it.
#[derive(Debug)]
pub(crate) struct Subscription {
    task: JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Which sensor a topic is about, and how to read it.
#[derive(Clone, Copy, Debug)]
enum Reader {
    State { index: usize, kind: SensorKind },
    Availability { index: usize },
}

/// Subscribes to the Zigbee sensors of `config`; `None` if it has none.
pub(crate) fn start(
    config: &Config,
    out: mpsc::Sender<DeviceMessage>,
) -> Result<Option<Subscription>, BrokerSetupError> {
    let Some(mqtt) = &config.mqtt else {
        return Ok(None);
    };
    let mut readers = HashMap::new();
    // The Zigbee sensors' slots: told when the broker is heard or not.
    let mut indices = Vec::new();
    for (index, sensor) in config.sensors.iter().enumerate() {
        let Some(friendly) = &sensor.zigbee else {
            continue;
        };
        indices.push(index);
        let topics = DeviceTopics::new(&mqtt.zigbee2mqtt_topic, friendly);
        readers.insert(
            topics.state().to_owned(),
            Reader::State {
                index,
                kind: sensor.kind,
            },
        );
        readers.insert(topics.availability(), Reader::Availability { index });
    }
    if indices.is_empty() {
        return Ok(None);
    }
    let client_id = format!("vigil-sensord-{}", std::process::id());
    let options = vigil_mqtt::broker::options(mqtt, &client_id, None)?;
    let broker = format!("{}:{}", mqtt.host, mqtt.port);
    let (client, mut eventloop) = vigil_mqtt::broker::client(options, 64);
    let task = tokio::spawn(async move {
        let mut heard = None;
        let bad_payloads = vigil_telemetry::LogBudget::new();
        let send_heard = |heard: bool| {
            let out = out.clone();
            let indices = indices.clone();
            async move {
                let at = Instant::now();
                for index in indices {
                    let update = Update::Heard(heard);
                    let message = DeviceMessage {
                        index,
                        update,
                        at,
                        retained: false,
                    };
                    if out.send(message).await.is_err() {
                        return;
                    }
                }
            }
        };
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!(%broker, devices = indices.len(), "subscribing to the Zigbee sensors");
                    // One SUBSCRIBE for every topic (up to 128): one request
                    // in the client's queue, whatever the number of sensors.
                    let filters = readers
                        .keys()
                        .map(|t| rumqttc::SubscribeFilter::new(t.clone(), QoS::AtLeastOnce));
                    if let Err(e) = client.try_subscribe_many(filters) {
                        warn!(
                            "cannot subscribe to the Zigbee sensors ({e}); retrying at the next connection"
                        );
                    }
                    if heard != Some(true) {
                        heard = Some(true);
                        send_heard(true).await;
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let at = Instant::now();
                    let Some(reader) = readers.get(p.topic.as_str()) else {
                        continue;
                    };
                    let (index, parsed) = match *reader {
                        Reader::State { index, kind } => (
                            index,
                            zigbee::parse_device(kind, &p.payload).map(Update::Report),
                        ),
                        Reader::Availability { index } => (
                            index,
                            zigbee::parse_availability(&p.payload).map(Update::Available),
                        ),
                    };
                    match parsed {
                        Ok(update) => {
                            let message = DeviceMessage {
                                index,
                                update,
                                at,
                                retained: p.retain,
                            };
                            if out.send(message).await.is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            if let Some(suppressed) = bad_payloads.allow() {
                                warn!(
                                    topic = %vigil_domain::text::excerpt(&p.topic),
                                    suppressed,
                                    "dropped a Zigbee message that is not zigbee2mqtt's: {e}"
                                );
                            }
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    if vigil_mqtt::broker::refused(&ack) {
                        warn!(
                            %broker,
                            "the broker refused the Zigbee sensors' subscription: check its ACL \
                             (docs/mqtt.md); the sensors cannot be heard"
                        );
                        let _ = heard.replace(false);
                        send_heard(false).await;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if heard != Some(false) {
                        warn!(
                            %broker,
                            "MQTT broker unreachable ({e}): the Zigbee sensors are faults until \
                             it is back; retrying every 1 s"
                        );
                        heard = Some(false);
                        send_heard(false).await;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(Some(Subscription { task }))
}

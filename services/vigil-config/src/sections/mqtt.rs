//! `[mqtt]`: the MQTT broker that the bridge (`vigil-mqttd`) and sensord's
//! Zigbee sensors use, and what the bridge publishes there (absent: no
//! MQTT at all). docs/mqtt.md has every topic.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{At, Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MqttFile {
    broker: Option<String>,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    credentials_file: Option<PathBuf>,
    insecure_plaintext: Option<bool>,
    base_topic: Option<String>,
    discovery_prefix: Option<String>,
    zigbee2mqtt_topic: Option<String>,
    hub: Option<String>,
    hub_credentials: Option<PathBuf>,
    #[serde(default)]
    keypads: Vec<KeypadFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KeypadFile {
    name: Option<String>,
    friendly_name: Option<String>,
}

/// The broker and the bridge's topics.
#[derive(Clone, Debug, PartialEq)]
pub struct MqttConfig {
    /// The broker's host (a name or an address) and port.
    pub host: String,
    pub port: u16,
    /// TLS: the CA that signs the broker's certificate. Absent only with
    /// `insecure_plaintext = true` (a broker on the same machine).
    pub ca_file: Option<PathBuf>,
    /// TLS client authentication (both or neither).
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// A file holding `username:password` (one line; the password may hold
    /// colons, the username may not, as in mosquitto's password files).
    pub credentials_file: Option<PathBuf>,
    /// Every topic of the bridge starts `<base_topic>/<hub id>/`.
    pub base_topic: String,
    /// Home Assistant's discovery prefix; empty: no discovery.
    pub discovery_prefix: String,
    /// zigbee2mqtt's base topic (its `mqtt.base_topic`).
    pub zigbee2mqtt_topic: String,
    /// The hub's gRPC address for the bridge (`host:port`); absent: the
    /// address stored when the bridge was paired.
    pub hub: Option<String>,
    /// The bridge's paired identity (a `vigilctl --credentials` directory).
    pub hub_credentials: PathBuf,
    /// Zigbee keypads (through zigbee2mqtt) that arm and disarm.
    pub keypads: Vec<KeypadConfig>,
}

/// A Zigbee keypad.
#[derive(Clone, Debug, PartialEq)]
pub struct KeypadConfig {
    /// Vigil's name for it, in the bridge's log.
    pub name: String,
    /// Its friendly name in zigbee2mqtt (the topic `zigbee2mqtt/<friendly_name>`).
    pub friendly_name: String,
}

/// A topic level a config gives: no wildcards, no empty levels, no NUL.
pub fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty()
        && topic.len() <= 200
        && !topic.contains(['+', '#', '\0'])
        && topic.split('/').all(|level| !level.is_empty())
}

pub(crate) fn check(c: &mut Checker, f: MqttFile) -> Option<MqttConfig> {
    let broker = c.required(
        "mqtt.broker",
        f.broker,
        "set `broker` to the broker's host:port, like \"broker.lan:8883\"",
    )?;
    let (host, port) = match broker.rsplit_once(':').map(|(h, p)| (h, p.parse::<u16>())) {
        Some((host, Ok(port))) if !host.is_empty() && port != 0 => (
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
        ),
        _ => {
            c.report(
                "mqtt.broker",
                format!("{broker:?} is not a host:port"),
                "use a form like \"broker.lan:8883\" or \"[fd00::2]:8883\"",
            );
            (String::new(), 0)
        }
    };
    if f.ca_file.is_none() && !f.insecure_plaintext.unwrap_or(false) {
        c.report(
            "mqtt.ca_file",
            "no CA for the broker's TLS certificate",
            "set `ca_file` to the CA that signs the broker's certificate (or, for a broker on \
             this machine only, `insecure_plaintext = true`)",
        );
    }
    let client_cert = match (f.client_cert_file, f.client_key_file) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => {
            c.report(
                "mqtt.client_cert_file",
                "a client certificate needs its key, and a key its certificate",
                "set both `client_cert_file` and `client_key_file`, or neither",
            );
            None
        }
    };
    let topic = |c: &mut Checker, key: &str, value: Option<String>, default: &str| {
        let value = value.unwrap_or_else(|| default.to_owned());
        if !is_valid_topic(&value) {
            c.report(
                key,
                format!("{value:?} is not a usable topic"),
                "use levels of letters, digits, - and _ separated by /, without + or #",
            );
        }
        value
    };
    let base_topic = topic(c, "mqtt.base_topic", f.base_topic, "vigil");
    let discovery_prefix = match f.discovery_prefix {
        Some(empty) if empty.is_empty() => empty,
        other => topic(c, "mqtt.discovery_prefix", other, "homeassistant"),
    };
    let zigbee2mqtt_topic = topic(
        c,
        "mqtt.zigbee2mqtt_topic",
        f.zigbee2mqtt_topic,
        "zigbee2mqtt",
    );
    let keypads = c.each("mqtt.keypads", f.keypads, keypad);
    Some(MqttConfig {
        host,
        port,
        ca_file: f.ca_file,
        client_cert,
        credentials_file: f.credentials_file,
        base_topic,
        discovery_prefix,
        zigbee2mqtt_topic,
        hub: f.hub,
        hub_credentials: f
            .hub_credentials
            .unwrap_or_else(|| PathBuf::from("/var/lib/vigil-mqtt/hub")),
        keypads,
    })
}

fn keypad(c: &mut Checker, at: &At, k: KeypadFile) -> Option<KeypadConfig> {
    let name = c.name(&at.key("name"), k.name, "keypad");
    let friendly_name = c.required(
        &at.key("friendly_name"),
        k.friendly_name,
        "set `friendly_name` to the keypad's name in zigbee2mqtt",
    );
    if let Some(f) = &friendly_name
        && !is_valid_topic(f)
    {
        c.report(
            at.key("friendly_name"),
            format!("{f:?} cannot be a zigbee2mqtt topic"),
            "rename the device in zigbee2mqtt without + or #",
        );
    }
    Some(KeypadConfig {
        name: name?,
        friendly_name: friendly_name?,
    })
}

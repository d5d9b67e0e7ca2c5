//! The MQTT boundary, shared by the bridge (`vigil-mqttd`) and sensord's
//! Zigbee sensors.
//!
//! Owns: how Vigil connects to a broker (TLS with a pinned CA, the
//! credentials file, the last will) in [`broker`]; the bridge's topics in
//! [`topics`]; Home Assistant's discovery payloads in [`discovery`];
//! zigbee2mqtt's payloads (sensors, availability, keypads) in [`zigbee`];
//! the event as JSON on the event topic in [`wire`].
//!
//! Must never: decide anything about the alarm (commands go to the hub's
//! engine, which checks every code), trust a payload (every parser takes
//! bytes from anyone who can publish and returns a typed error), or block:
//! nothing here does I/O but reading the files the config names.
//!
//! Every payload's shape is in docs/mqtt.md; the tests here pin it.

#![forbid(unsafe_code)]

pub mod broker;
pub mod discovery;
pub mod topics;
pub mod wire;
pub mod zigbee;

/// The largest payload Vigil reads from the broker. zigbee2mqtt's device
/// messages are a few hundred bytes; anything larger is dropped unread.
pub const MAX_INBOUND_PAYLOAD: usize = 16 * 1024;

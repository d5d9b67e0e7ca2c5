//! The whole file: its top-level tables, and [`validate`], which hands each
//! table to its section's check and gathers the problems of them all.

use std::collections::BTreeSet;

use serde::Deserialize;

use crate::check::Checker;
use crate::sections::{
    alarm, alerts, cameras, events, grpc, hooks, mqtt, outputs, recording, runtime, sensors,
    telemetry, users, webhook,
};
use crate::{Config, ConfigError};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    runtime: runtime::RuntimeFile,
    #[serde(default)]
    gpio: runtime::GpioFile,
    #[serde(default)]
    sensors: Vec<sensors::SensorFile>,
    #[serde(default)]
    outputs: outputs::OutputsFile,
    #[serde(default)]
    users: Vec<users::UserFile>,
    #[serde(default)]
    cameras: Vec<cameras::CameraFile>,
    #[serde(default)]
    hooks: Vec<hooks::HookFile>,
    #[serde(default)]
    alarm: alarm::AlarmFile,
    #[serde(default)]
    grpc: grpc::GrpcFile,
    #[serde(default)]
    alerts: alerts::AlertsFile,
    #[serde(default)]
    events: events::EventsFile,
    #[serde(default)]
    recording: recording::RecordingFile,
    /// Absent: no webhook (every other table has defaults).
    webhook: Option<webhook::WebhookFile>,
    #[serde(default)]
    telemetry: telemetry::TelemetryFile,
    /// Absent: no MQTT.
    mqtt: Option<mqtt::MqttFile>,
}

/// Checks every table, in the file's order, and refuses the file with all
/// its problems if there is any.
pub(crate) fn validate(raw: ConfigFile, source_name: &str) -> Result<Config, ConfigError> {
    let mut c = Checker::default();
    let runtime = runtime::check(&mut c, raw.runtime);
    let gpio = runtime::check_gpio(&mut c, raw.gpio);
    let mut names = BTreeSet::new();
    let mut sensors = sensors::check(&mut c, raw.sensors, &mut names);
    let outputs = outputs::check(&mut c, raw.outputs);
    let users = users::check(&mut c, raw.users);
    let cameras = cameras::check(&mut c, raw.cameras);
    sensors::add_camera_motion(&mut c, &mut sensors, &cameras, &mut names);
    let hooks = hooks::check(&mut c, raw.hooks);
    let alarm = alarm::check(&mut c, raw.alarm);
    let grpc = grpc::check(&mut c, raw.grpc);
    let alerts = alerts::check(&mut c, raw.alerts);
    let recording = recording::check(&mut c, raw.recording);
    let events = events::check(&mut c, raw.events);
    let webhook = raw.webhook.and_then(|w| webhook::check(&mut c, w));
    let telemetry = telemetry::check(&mut c, raw.telemetry);
    let mqtt = raw.mqtt.and_then(|m| mqtt::check(&mut c, m));
    sensors::check_zigbee(&mut c, &sensors, mqtt.as_ref());
    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            problems: c.problems,
        });
    }
    Ok(Config {
        source: source_name.to_owned(),
        runtime,
        gpio,
        sensors,
        outputs,
        users,
        cameras,
        recording,
        hooks,
        alarm,
        grpc,
        alerts,
        events,
        webhook,
        telemetry,
        mqtt,
    })
}

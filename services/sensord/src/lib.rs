//! sensord: the sensor service.
//!
//! Owns: the GPIO pins (through [`gpio::Gpio`]), the Zigbee sensors'
//! zigbee2mqtt topics (through the `[mqtt]` broker), debouncing and supervision
//! ([`sensors`]), the sensor slots of the shared table (it is their only
//! writer), the doorbell to the hub, the siren and buzzer outputs (driven on
//! the hub's command), and the simulated board's control socket.
//!
//! Must never: decide what a change means for the alarm (that is the hub's),
//! write the system slot, or stop reading its pins because the hub is away:
//! it keeps tracking and publishes a full snapshot on every (re)connection.
//!
//! Code map:
//! - [`run`]: the event loop (edges, timers, hub link, signals).
//! - `link`: the session with the hub: connect with backoff, publish, ring.
//! - `zigbee`: the Zigbee sensors' subscription: device messages in.
//! - [`sim_control`]: the simulated board's line protocol and its client.

#![forbid(unsafe_code)]

mod error;
pub mod gpio;
mod link;
pub mod sensors;
pub mod sim_control;
mod zigbee;

use std::sync::Arc;
use std::time::Instant;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};
use vigil_config::{Config, ConfigSource};
use vigil_domain::Level;

pub use crate::error::SensordError;
use crate::gpio::{Edge, Gpio, GpioError};
use crate::link::{HubLink, LinkEvent};
use crate::sensors::{Cause, DeviceHealth, SensorTracker};
use crate::zigbee::{DeviceMessage, Update};

/// The pins of one configuration, claimed.
struct Board {
    trackers: Vec<SensorTracker>,
    /// Input pin -> index into `trackers`.
    by_pin: std::collections::HashMap<u8, usize>,
}

impl Board {
    fn claim(
        config: &Config,
        gpio: &dyn Gpio,
        edges: &mpsc::UnboundedSender<Edge>,
    ) -> Result<Board, GpioError> {
        gpio.release_all();
        let now = Instant::now();
        let mut trackers = Vec::with_capacity(config.sensors.len());
        let mut by_pin = std::collections::HashMap::new();
        // Camera motion sensors come last and are the hub's to write; a
        // tracker's index is its sensor's slot.
        for (i, sensor) in config
            .sensors
            .iter()
            .enumerate()
            .filter(|(_, s)| s.camera.is_none())
        {
            if !sensor.is_gpio() {
                trackers.push(SensorTracker::new_wireless(sensor.clone(), now));
                continue;
            }
            let resting = inactive(sensor.active_level);
            let level = gpio.claim_input(sensor.pin, sensor.pull, resting, edges.clone())?;
            by_pin.insert(sensor.pin, i);
            trackers.push(SensorTracker::new(sensor.clone(), level, now));
        }
        for output in [&config.outputs.siren, &config.outputs.buzzer]
            .into_iter()
            .flatten()
        {
            gpio.claim_output(output.pin, inactive(output.active_level))?;
        }
        Ok(Board { trackers, by_pin })
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.trackers.iter().filter_map(|t| t.next_deadline()).min()
    }
}

/// Feeds a Zigbee device's message to its sensor's tracker: its active
/// flag as the level a wire would show (so debounce applies), its health
/// as a fault.
fn apply_device_message(tracker: &mut SensorTracker, message: DeviceMessage) {
    let mut health: DeviceHealth = tracker.device();
    // A retained copy says what the device said last, not that it lives.
    let alive = (!message.retained).then_some(message.at);
    match message.update {
        Update::Report(report) => {
            if let Some(active) = report.active {
                let level = if active {
                    tracker.config.active_level
                } else {
                    inactive(tracker.config.active_level)
                };
                tracker.level(level, message.at, alive.is_some());
            }
            if let Some(tamper) = report.tamper {
                health.tamper = tamper;
            }
            if let Some(low) = report.battery_low {
                health.battery_low = low;
            }
            tracker.set_device(health, alive);
        }
        Update::Available(online) => {
            health.offline = !online;
            tracker.set_device(health, alive.filter(|_| online));
        }
        Update::Heard(heard) => {
            health.unheard = !heard;
            tracker.set_device(health, None);
        }
    }
}

fn inactive(active: Level) -> Level {
    match active {
        Level::High => Level::Low,
        Level::Low => Level::High,
    }
}

/// Runs sensord until `shutdown` resolves (SIGTERM in production). SIGHUP
/// reloads the configuration from `source`.
pub async fn run(
    source: ConfigSource,
    mut config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), SensordError> {
    let gpio::OpenedGpio {
        gpio,
        simulated: sim,
    } = gpio::open(&config)?;
    let (edge_tx, mut edge_rx) = mpsc::unbounded_channel::<Edge>();
    let mut board = Board::claim(&config, gpio.as_ref(), &edge_tx)?;
    let (zigbee_tx, mut zigbee_rx) = mpsc::channel::<DeviceMessage>(zigbee::QUEUE);
    let mut zigbee = zigbee::start(&config, zigbee_tx.clone())?;
    info!(
        backend = gpio.name(),
        sensors = board.trackers.len(),
        "sensord started"
    );

    // Readers of the current config outside the loop (the simulator's
    // control socket) follow reloads through this.
    let (config_tx, config_rx) = watch::channel(Arc::new(config.clone()));
    let _sim_server = match &sim {
        Some(sim) => Some(sim_control::serve(config_rx, Arc::clone(sim)).await?),
        None => None,
    };

    let (link_tx, mut link_rx) = mpsc::unbounded_channel::<LinkEvent>();
    let mut link = HubLink::new(config.runtime.hub_socket(), link_tx);
    link.start_connecting();

    let mut hangup = signal(SignalKind::hangup()).map_err(SensordError::Signal)?;
    tokio::pin!(shutdown);

    loop {
        let deadline = board.next_deadline();
        tokio::select! {
            () = &mut shutdown => break,
            Some(edge) = edge_rx.recv() => {
                if let Some(&i) = board.by_pin.get(&edge.pin) {
                    board.trackers[i].edge(edge.level, edge.at);
                }
            }
            () = sleep_until(deadline) => {}
            Some(message) = zigbee_rx.recv() => {
                if let Some(tracker) = board.trackers.get_mut(message.index) {
                    apply_device_message(tracker, message);
                }
            }
            Some(event) = link_rx.recv() => {
                link.handle(event, &config, &board.trackers, gpio.as_ref());
            }
            _ = hangup.recv() => {
                match source.load() {
                    Ok(new) => {
                        if new.gpio.backend != config.gpio.backend {
                            warn!("gpio.backend changed; restart sensord to switch backends");
                        }
                        board = Board::claim(&new, gpio.as_ref(), &edge_tx)?;
                        // The devices' indices change with the config:
                        // subscribe again (and drop what the old one queued).
                        drop(zigbee.take());
                        while zigbee_rx.try_recv().is_ok() {}
                        zigbee = match zigbee::start(&new, zigbee_tx.clone()) {
                            Ok(subscription) => subscription,
                            // The wires and the siren go on; the Zigbee
                            // sensors are unheard (faults) until fixed.
                            Err(e) => {
                                error!("the Zigbee sensors cannot be heard: {e}; fix it and reload");
                                None
                            }
                        };
                        config = new;
                        config_tx.send_replace(Arc::new(config.clone()));
                        link.republish(&config, &board.trackers);
                        info!(source = %config.source, "configuration reloaded");
                    }
                    Err(e) => error!("configuration not reloaded, keeping the running one: {e}"),
                }
            }
        }
        // Apply debounce and supervision deadlines that have passed.
        let now = Instant::now();
        for (i, tracker) in board.trackers.iter_mut().enumerate() {
            if let Some((report, cause)) = tracker.poll(now) {
                let sensor = &tracker.config;
                let span = tracing::info_span!(
                    "sensor.change",
                    sensor = %sensor.name,
                    state = report.state.describe(sensor.kind),
                );
                let trace = vigil_telemetry::trace_context_of(&span);
                let _entered = span.enter();
                // The change reaches the table (and the hub) first, the log
                // after: a log line is not on the alert path.
                link.publish(i, &report, trace);
                match cause {
                    Cause::Level => info!(
                        trace_id = %trace.trace_id_hex(),
                        "{} {}", sensor.name, report.state.describe(sensor.kind)
                    ),
                    Cause::Silent => warn!(
                        "{} has shown no activity for its supervision window; check its wiring \
                         and battery",
                        sensor.name
                    ),
                    Cause::Alive => info!("{} is active again", sensor.name),
                    Cause::Device => {
                        let health = tracker.device();
                        if report.fault {
                            warn!("{} {}", sensor.name, health.describe());
                        } else {
                            info!("{} {}", sensor.name, health.describe());
                        }
                    }
                }
            }
        }
    }

    info!("sensord stopping");
    // Leave the outputs off: an operator stopping sensord owns the siren now.
    for output in [&config.outputs.siren, &config.outputs.buzzer]
        .into_iter()
        .flatten()
    {
        let _ = gpio.set_output(output.pin, inactive(output.active_level));
    }
    Ok(())
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

//! sensord's session with the hub: connect (with backoff) over the
//! bootstrap socket, map the table the hub hands over, publish a snapshot,
//! then write a slot and ring the doorbell on every change. When the hub
//! goes away the session ends and connecting starts again by itself.

use std::path::PathBuf;
use std::time::Duration;

use ipc_channel::ipc::IpcSender;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, error, info, warn};
use vigil_bootstrap::{
    BootstrapError, HubMessage, OutputName, ServiceMessage, ServiceRole, Session,
};
use vigil_config::Config;
use vigil_domain::{Level, TraceContext};
use vigil_ipc::doorbell::{DoorbellError, DoorbellSender};
use vigil_ipc::table::{SensorTable, SensorUpdate};

use crate::gpio::Gpio;
use crate::sensors::{Report, SensorTracker};

/// The first retry comes quickly (a restarting hub is back in well under a
/// second); later ones back off, but never past half a second, so sensord
/// is back within a second of the hub (an attempt on a local socket costs
/// nothing).
const FIRST_RETRY: Duration = Duration::from_millis(50);
const MAX_RETRY: Duration = Duration::from_millis(500);
const STEP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the link's background work reports to the event loop.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    Connected(Box<Session>),
    ConnectFailed(BootstrapError),
    Message { session: u64, message: HubMessage },
    Lost { session: u64 },
}

/// A live session.
struct Connected {
    session: u64,
    table: SensorTable,
    doorbell: DoorbellSender,
    /// Table slot of each configured sensor (`None`: the hub's table does
    /// not have it).
    slots: Vec<Option<usize>>,
    to_hub: IpcSender<ServiceMessage>,
}

pub(crate) struct HubLink {
    socket: PathBuf,
    events: UnboundedSender<LinkEvent>,
    connected: Option<Connected>,
    connecting: bool,
    retry: Duration,
}

impl HubLink {
    pub(crate) fn new(socket: PathBuf, events: UnboundedSender<LinkEvent>) -> HubLink {
        HubLink {
            socket,
            events,
            connected: None,
            connecting: false,
            retry: FIRST_RETRY,
        }
    }

    /// Starts one connection attempt in the background after `delay`.
    fn connect_after(&mut self, delay: Duration) {
        if self.connecting {
            return;
        }
        self.connecting = true;
        let (socket, events) = (self.socket.clone(), self.events.clone());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let attempt = tokio::task::spawn_blocking(move || {
                vigil_bootstrap::connect(&socket, ServiceRole::Sensord, STEP_TIMEOUT)
            })
            .await;
            let event = match attempt {
                Ok(Ok(session)) => LinkEvent::Connected(Box::new(session)),
                Ok(Err(e)) => LinkEvent::ConnectFailed(e),
                Err(join) => LinkEvent::ConnectFailed(BootstrapError::Protocol {
                    detail: format!("connect task failed: {join}"),
                }),
            };
            let _ = events.send(event);
        });
    }

    pub(crate) fn start_connecting(&mut self) {
        self.connect_after(Duration::ZERO);
    }

    fn lost(&mut self, why: &str) {
        if let Some(c) = self.connected.take() {
            warn!(
                session = c.session,
                "lost the hub ({why}); reconnecting, sensors are still tracked"
            );
        }
        self.retry = FIRST_RETRY;
        self.connect_after(self.retry);
    }

    pub(crate) fn handle(
        &mut self,
        event: LinkEvent,
        config: &Config,
        trackers: &[SensorTracker],
        gpio: &dyn Gpio,
    ) {
        match event {
            LinkEvent::Connected(session) => {
                self.connecting = false;
                self.retry = FIRST_RETRY;
                self.adopt(*session, config, trackers);
            }
            LinkEvent::ConnectFailed(e) => {
                self.connecting = false;
                match e {
                    BootstrapError::HubNotRunning { .. } => debug!("{e}; retrying"),
                    _ => warn!("cannot join the hub: {e}; retrying"),
                }
                self.retry = (self.retry * 2).min(MAX_RETRY);
                self.connect_after(self.retry);
            }
            LinkEvent::Lost { session } => {
                if self
                    .connected
                    .as_ref()
                    .is_some_and(|c| c.session == session)
                {
                    self.lost("its process ended");
                }
            }
            LinkEvent::Message { session, message } => {
                let current = self
                    .connected
                    .as_ref()
                    .is_some_and(|c| c.session == session);
                if current {
                    self.on_message(message, config, gpio);
                }
            }
        }
    }

    fn adopt(&mut self, session: Session, config: &Config, trackers: &[SensorTracker]) {
        let Session {
            welcome,
            to_hub,
            from_hub,
        } = session;
        let table = match SensorTable::from_shared(welcome.table) {
            Ok(t) => t,
            Err(e) => {
                error!("the hub's sensor table is unusable: {e}");
                self.connect_after(MAX_RETRY);
                return;
            }
        };
        let doorbell = match DoorbellSender::new(welcome.hub_pid) {
            Ok(d) => d,
            Err(e) => {
                warn!("cannot open the hub's doorbell: {e}");
                self.connect_after(FIRST_RETRY);
                return;
            }
        };
        // Forward the hub's messages; the end of the channel is the end of
        // the session.
        let (events, id) = (self.events.clone(), welcome.session);
        std::thread::Builder::new()
            .name(format!("hub-session-{id}"))
            .spawn(move || {
                while let Ok(message) = from_hub.recv() {
                    let _ = events.send(LinkEvent::Message {
                        session: id,
                        message,
                    });
                }
                let _ = events.send(LinkEvent::Lost { session: id });
            })
            .ok();
        let mut connected = Connected {
            session: welcome.session,
            table,
            doorbell,
            slots: Vec::new(),
            to_hub,
        };
        connected.map_slots(config, &welcome.slots);
        info!(
            session = connected.session,
            hub_pid = welcome.hub_pid,
            slots = welcome.slots.len(),
            "joined the hub; publishing every sensor"
        );
        self.connected = Some(connected);
        self.republish(config, trackers);
    }

    /// Publishes every sensor (after a connection or a reload).
    pub(crate) fn republish(&mut self, config: &Config, trackers: &[SensorTracker]) {
        if let Some(c) = &mut self.connected {
            let names: Vec<String> = (0..c.table.slot_count())
                .filter_map(|k| c.table.descriptor(k).ok().map(|d| d.name))
                .collect();
            c.map_slots(config, &names);
        }
        for (i, tracker) in trackers.iter().enumerate() {
            self.publish(i, &tracker.report(), TraceContext::default());
        }
    }

    /// Writes sensor `index`'s report into its slot and rings the doorbell.
    pub(crate) fn publish(&mut self, index: usize, report: &Report, trace: TraceContext) {
        let Some(c) = &self.connected else { return };
        let Some(Some(slot)) = c.slots.get(index).copied() else {
            return;
        };
        let update = SensorUpdate {
            state: report.state,
            fault: report.fault,
            tamper: report.tamper,
            bypassed: false,
            trace,
        };
        if let Err(e) = c.table.write_sensor(slot, &update) {
            error!(slot, "cannot write the sensor table: {e}");
            return;
        }
        match c.doorbell.ring(slot as u64) {
            Ok(()) => {}
            // The change is in the table; the hub's rescan finds it.
            Err(e @ DoorbellError::QueueFull) => warn!("{e}"),
            Err(DoorbellError::PeerGone { .. }) => self.lost("its doorbell is gone"),
            Err(e) => error!("{e}"),
        }
    }

    fn on_message(&mut self, message: HubMessage, config: &Config, gpio: &dyn Gpio) {
        match message {
            HubMessage::SetOutput(cmd) => {
                let output = match cmd.output {
                    OutputName::Siren => &config.outputs.siren,
                    OutputName::Buzzer => &config.outputs.buzzer,
                };
                let Some(output) = output else {
                    warn!(
                        "the hub asked for the {} but none is configured under [outputs]",
                        cmd.output.as_str()
                    );
                    return;
                };
                let level = match (cmd.on, output.active_level) {
                    (true, l) => l,
                    (false, Level::High) => Level::Low,
                    (false, Level::Low) => Level::High,
                };
                let span = tracing::info_span!("output.set", output = cmd.output.as_str());
                vigil_telemetry::set_remote_parent(&span, cmd.trace.into());
                let _entered = span.enter();
                match gpio.set_output(output.pin, level) {
                    Ok(()) => {
                        info!(
                            "{} {}",
                            cmd.output.as_str(),
                            if cmd.on { "on" } else { "off" }
                        );
                        if let Some(c) = &self.connected {
                            let _ = c.to_hub.send(ServiceMessage::OutputState {
                                output: cmd.output,
                                on: cmd.on,
                            });
                        }
                    }
                    Err(e) => error!("cannot drive the {}: {e}", cmd.output.as_str()),
                }
            }
            HubMessage::Welcome(_) | HubMessage::Refused { .. } | HubMessage::PairingCode(_) => {
                warn!("ignored an unexpected bootstrap message from the hub")
            }
        }
    }
}

impl Connected {
    fn map_slots(&mut self, config: &Config, names: &[String]) {
        self.slots = config
            .sensors
            .iter()
            .map(|s| {
                let slot = names.iter().position(|n| *n == s.name);
                if slot.is_none() {
                    warn!(
                        sensor = %s.name,
                        "the hub's table has no slot for this sensor; give the hub the same \
                         config and reload it (SIGHUP)"
                    );
                }
                slot
            })
            .collect();
    }
}

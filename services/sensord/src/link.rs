//! sensord's session with the hub: connect (with backoff) over the
//! bootstrap socket, map the table the hub hands over, publish a snapshot,
//! then write a slot and ring the doorbell on every change. When the hub
//! goes away the session ends and connecting starts again by itself.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
/// Retrying a write behind a held writer lock: a live writer holds it for
/// well under a microsecond, so the first retry is soon; one that stays held
/// (a stuck or dead writer, until the hub repairs it) is polled ten times a
/// second, which costs nothing and lands the change within 100 ms of the
/// lock coming free.
const FIRST_WRITE_RETRY: Duration = Duration::from_millis(1);
const MAX_WRITE_RETRY: Duration = Duration::from_millis(100);
/// How often a writer lock that stays held is reported again.
const HELD_LOCK_REMINDER: Duration = Duration::from_secs(10);

/// What the link's background work reports to the event loop.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    Connected(Box<Session>),
    ConnectFailed(BootstrapError),
    Message {
        session: u64,
        message: HubMessage,
    },
    Lost {
        session: u64,
    },
    /// Time to try the held-back table writes again.
    RetryWrites {
        session: u64,
    },
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
    /// The latest update of each slot that could not be written yet because
    /// another writer held the table's lock. The table holds state, not
    /// history, so the latest update per slot is all that must land.
    pending: BTreeMap<usize, SensorUpdate>,
    /// Set while a retry is scheduled (the lock was found held).
    retry: Option<WriteRetry>,
}

/// A retry of held-back writes in progress.
struct WriteRetry {
    delay: Duration,
    since: Instant,
    last_warned: Instant,
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
            LinkEvent::RetryWrites { session } => {
                if let Some(c) = self.connected.as_mut().filter(|c| c.session == session) {
                    // The scheduled retry is this one: flush decides anew.
                    if let Some(r) = &mut c.retry {
                        r.delay = (r.delay * 2).min(MAX_WRITE_RETRY);
                    }
                    self.flush(true);
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
            table,
            to_hub,
            from_hub,
        } = session;
        // Checked before it is mapped: a table that is not sealed against
        // truncation (a process posing as the hub) is refused, not mapped.
        let table = match SensorTable::from_fd(table) {
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
            pending: BTreeMap::new(),
            retry: None,
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
    /// If another writer holds the table's lock, the report is kept (the
    /// latest per slot) and written, then rung, as soon as the lock is free:
    /// a change is never dropped for a held lock.
    pub(crate) fn publish(&mut self, index: usize, report: &Report, trace: TraceContext) {
        let Some(c) = &mut self.connected else { return };
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
        // A newer report of the same slot replaces one still held back.
        c.pending.insert(slot, update);
        self.flush(false);
    }

    /// Writes every held-back update it can and rings for each. `retrying`
    /// says a scheduled retry is running; otherwise, while one is scheduled
    /// the lock is known to be held and the new update just waits for it.
    fn flush(&mut self, retrying: bool) {
        let Some(c) = &mut self.connected else { return };
        if c.retry.is_some() && !retrying {
            return;
        }
        let mut written = Vec::new();
        let mut held = false;
        while let Some((&slot, update)) = c.pending.first_key_value() {
            match c.table.try_write_sensor(slot, update) {
                Ok(Some(_)) => {
                    c.pending.remove(&slot);
                    written.push(slot);
                }
                Ok(None) => {
                    held = true;
                    break;
                }
                Err(e) => {
                    // Not a held lock: this write can never succeed (a slot
                    // the table lacks, a broken semaphore); retrying would
                    // spin for nothing. Rejoining rewrites every slot.
                    error!(slot, "cannot write the sensor table: {e}");
                    c.pending.remove(&slot);
                }
            }
        }
        let now = Instant::now();
        if held {
            let retry = c.retry.get_or_insert_with(|| {
                warn!(
                    pending = c.pending.len(),
                    "another writer holds the sensor table's lock; keeping the latest state of \
                     each changed sensor and retrying until it lands"
                );
                WriteRetry {
                    delay: FIRST_WRITE_RETRY,
                    since: now,
                    last_warned: now,
                }
            });
            if now.duration_since(retry.last_warned) >= HELD_LOCK_REMINDER {
                retry.last_warned = now;
                warn!(
                    pending = c.pending.len(),
                    held_for_s = now.duration_since(retry.since).as_secs(),
                    "the sensor table's lock is still held by another writer; still retrying \
                     (the hub repairs a lock left by a writer that died)"
                );
            }
            let (events, session, delay) = (self.events.clone(), c.session, retry.delay);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = events.send(LinkEvent::RetryWrites { session });
            });
        } else if let Some(retry) = c.retry.take() {
            info!(
                held_back_ms = now.duration_since(retry.since).as_millis() as u64,
                "the sensor table's lock came free; wrote the held-back sensor changes"
            );
        }
        for slot in written {
            let Some(c) = &self.connected else { return };
            match c.doorbell.ring(slot as u64) {
                Ok(()) => {}
                // The change is in the table; the hub's rescan finds it.
                Err(e @ DoorbellError::QueueFull) => warn!("{e}"),
                Err(DoorbellError::PeerGone { .. }) => {
                    self.lost("its doorbell is gone");
                    return;
                }
                Err(e) => error!("{e}"),
            }
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
                            // A blocking send (a hub that stopped reading
                            // fills the socket) must not hold this loop,
                            // which is the sensors' only thread: off it.
                            let to_hub = c.to_hub.clone();
                            let state = ServiceMessage::OutputState {
                                output: cmd.output,
                                on: cmd.on,
                            };
                            tokio::task::spawn_blocking(move || {
                                let _ = to_hub.send(state);
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

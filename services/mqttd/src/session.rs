//! One hub connection's loop: the hub's events out to the broker, the
//! broker's commands in to the hub.
//!
//! Everything the session publishes is either retained state (discovery,
//! availability, the panel, each sensor), published again in full after
//! every (re)connection to the broker, or the event stream, resumed after
//! the last event handed to the MQTT client when the hub's stream is lost.
//!
//! Commands run as tasks of their own (at most [`COMMANDS_IN_FLIGHT`]), so
//! a slow answer from the hub never holds up the event stream; a command
//! beyond that is answered `busy` at once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use rumqttc::QoS;
use tokio::task::JoinSet;
use tonic::{Code, Status};
use tracing::{debug, info, warn};
use vigil_config::{KeypadConfig, MqttConfig};
use vigil_domain::{AlarmState, ArmedMode, EventKind, SensorKind, SensorState};
use vigil_mqtt::discovery::{self, HubDescription};
use vigil_mqtt::topics::{DeviceTopics, HubTopics};
use vigil_mqtt::wire::{
    self, CommandResult, EventMessage, PanelAction, PanelCommand, StatusMessage,
};
use vigil_mqtt::zigbee::{self, ArmMode, KeypadAction};
use vigil_proto::v1 as pb;
use vigil_telemetry::LogBudget;

use crate::hub::{self, Hub};
use crate::pump::{Inbound, Link};
use crate::resume::Resume;

/// Commands running at once; more are answered `busy`.
const COMMANDS_IN_FLIGHT: usize = 4;
/// A command older than this when the bridge reads it (the hub was away)
/// is answered `unavailable`, never run late.
const COMMAND_MAX_AGE: Duration = Duration::from_secs(5);
/// Events handed to the MQTT client this long before a lost connection
/// may have been lost with it (rumqttc drops what it had not sent when
/// the broker gives a clean session): they are published again.
const REWIND_MARGIN: Duration = Duration::from_secs(2);
/// Recent publications remembered for that (beyond: from the oldest).
const RECENT_EVENTS: usize = 4096;
/// The largest snapshot published: docs/mqtt.md has the broker refuse
/// packets over 1 MiB, and a refused packet costs the connection.
const MAX_SNAPSHOT: usize = 1024 * 1024 - 4096;
/// Changes within this window are refreshed from the hub once.
const REFRESH_DEBOUNCE: Duration = Duration::from_millis(50);
/// How often the hub's description (its sensors and cameras, which a
/// reload changes without an event) is read again for discovery.
const SYSTEM_CHECK: Duration = Duration::from_secs(10);

/// Why a session ended.
#[derive(Debug)]
pub(crate) enum Ended {
    Shutdown,
    /// The hub's stream or a call failed: reconnect and resume.
    HubLost(String),
    /// The broker connection was lost and made again: watch again from
    /// before the loss (the resume point is already set back).
    Rewind,
}

/// Who asked, so the answer goes back the same way.
#[derive(Clone, Debug)]
enum Asker {
    /// `alarm/set` or `panic/set`: answered on `alarm/result`.
    Panel { raw_action: String },
    /// A keypad: answered with `arm_mode` and its transaction.
    Keypad {
        name: String,
        set_topic: String,
        action: KeypadAction,
        transaction: Option<u64>,
        was_disarmed: bool,
    },
}

/// A finished task.
enum Done {
    Command {
        asker: Asker,
        code_given: bool,
        /// Boxed: a tonic Status is large, and most tasks are snapshots.
        outcome: Box<Result<pb::Status, Status>>,
        /// The open sensors, when the alarm's rules refused it.
        open: Vec<String>,
    },
    Snapshot {
        camera: String,
        outcome: Result<Vec<u8>, Status>,
    },
}

pub(crate) struct Session<'a> {
    config: &'a MqttConfig,
    hub: Hub,
    system: pb::GetSystemResponse,
    link: &'a mut Link,
    topics: HubTopics,
    discovery_configs: Vec<discovery::Config>,
    keypads: Vec<(KeypadConfig, DeviceTopics)>,
    /// The panel as last published.
    panel: Option<(ArmedMode, AlarmState)>,
    /// Each sensor's (state, fault) payloads as last published.
    sensors: HashMap<String, (&'static str, &'static str)>,
    /// Commands running (at most COMMANDS_IN_FLIGHT).
    commands: JoinSet<Done>,
    /// Snapshots running, one per camera at most.
    snapshots: JoinSet<Done>,
    snapshots_running: HashSet<String>,
    /// (when, seq) of the events handed to the MQTT client lately, to
    /// publish again what a lost connection may have taken.
    recent: std::collections::VecDeque<(Instant, u64)>,
    /// Events up to this one are replays of the past: published on the
    /// event topic, never as the panel's state now.
    replay_until: Option<u64>,
    /// Lines about dropped input: a flood is a few lines a minute.
    bad_input: LogBudget,
}

impl<'a> Session<'a> {
    pub(crate) fn new(
        config: &'a MqttConfig,
        hub: Hub,
        system: pb::GetSystemResponse,
        link: &'a mut Link,
    ) -> Session<'a> {
        let topics = HubTopics::new(&config.base_topic, &system.hub_id);
        let discovery_configs = discovery_configs(config, &system);
        let keypads = config
            .keypads
            .iter()
            .map(|k| {
                (
                    k.clone(),
                    DeviceTopics::new(&config.zigbee2mqtt_topic, &k.friendly_name),
                )
            })
            .collect();
        Session {
            config,
            hub,
            system,
            link,
            topics,
            discovery_configs,
            keypads,
            panel: None,
            sensors: HashMap::new(),
            commands: JoinSet::new(),
            snapshots: JoinSet::new(),
            snapshots_running: HashSet::new(),
            recent: std::collections::VecDeque::new(),
            replay_until: None,
            bad_input: LogBudget::new(),
        }
    }

    /// Runs until the hub is lost or `shutdown` resolves.
    pub(crate) async fn run(
        mut self,
        resume: &mut Resume,
        shutdown: &mut std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Ended {
        // Resume after the last event published if this is the same log;
        // a new log (a wiped or restored hub) starts from now.
        let after = if resume.log_id.as_deref() == Some(self.system.log_id.as_str()) {
            resume.last_seq
        } else {
            None
        };
        // `resumed`: the stream replays from `after`, not from now.
        let (mut watch, resumed) = match self.hub.watch(after).await {
            Ok(watch) => (watch, after.is_some()),
            // The hub no longer has the events after our last one (or
            // the log is another): from now, and say what was missed.
            Err(e) if e.code() == Code::OutOfRange => {
                warn!(
                    after_seq = ?after,
                    "the hub cannot replay the events the bridge missed ({}); \
                     the event topic continues from now",
                    e.message()
                );
                match self.hub.watch(None).await {
                    Ok(watch) => (watch, false),
                    Err(e) => return Ended::HubLost(format!("WatchEvents: {}", e.message())),
                }
            }
            Err(e) => return Ended::HubLost(format!("WatchEvents: {}", e.message())),
        };
        if resumed {
            self.replay_until = watch.last_seq;
        } else {
            let log_id = watch
                .log_id
                .clone()
                .unwrap_or_else(|| self.system.log_id.clone());
            resume.start_log(log_id, watch.last_seq);
        }
        // A connection made before this session is announced now; the
        // first one, when it comes (below).
        let link = *self.link.state.borrow_and_update();
        let mut connections = link.connections;
        if connections > 0
            && let Err(why) = self.announce().await
        {
            return Ended::HubLost(why);
        }
        let refresh = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(refresh);
        let mut refresh_due = false;
        let mut save_place = tokio::time::interval(crate::resume::SAVE_EVERY);
        let mut system_check = tokio::time::interval(SYSTEM_CHECK);
        system_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        system_check.reset();
        loop {
            tokio::select! {
                () = &mut *shutdown => return Ended::Shutdown,
                // While the broker is away, what was handed to the client
                // may yet be lost: the place does not move.
                _ = save_place.tick() => {
                    if self.link.state.borrow().down_since.is_none() {
                        resume.tick();
                    }
                }
                _ = system_check.tick() => {
                    if let Err(why) = self.check_system().await {
                        return Ended::HubLost(why);
                    }
                }
                event = watch.events.message() => match event {
                    Ok(Some(event)) => {
                        if self.on_event(event, resume).await {
                            refresh_due = true;
                            refresh.as_mut().reset(tokio::time::Instant::now() + REFRESH_DEBOUNCE);
                        }
                    }
                    Ok(None) => return Ended::HubLost("the hub ended the event stream".into()),
                    Err(e) => return Ended::HubLost(format!("event stream: {}", e.message())),
                },
                changed = self.link.state.changed() => {
                    if changed.is_err() {
                        return Ended::HubLost("the MQTT client stopped".into());
                    }
                    let link = *self.link.state.borrow_and_update();
                    if link.connections == connections {
                        continue;
                    }
                    let reconnected = connections > 0;
                    connections = link.connections;
                    if reconnected && self.rewind(link.last_lost, resume) {
                        return Ended::Rewind;
                    }
                    if let Err(why) = self.announce().await {
                        return Ended::HubLost(why);
                    }
                }
                inbound = self.link.inbound.recv() => match inbound {
                    Some(message) => self.on_message(message).await,
                    None => return Ended::HubLost("the MQTT client stopped".into()),
                },
                config = self.link.configs.recv() => match config {
                    Some(message) => self.on_config(&message.topic, &message.payload).await,
                    None => return Ended::HubLost("the MQTT client stopped".into()),
                },
                Some(done) = self.commands.join_next(), if !self.commands.is_empty() => {
                    match done {
                        Ok(done) => self.on_done(done).await,
                        Err(e) => warn!("a command's task failed: {e}"),
                    }
                }
                Some(done) = self.snapshots.join_next(), if !self.snapshots.is_empty() => {
                    match done {
                        Ok(done) => self.on_done(done).await,
                        Err(e) => warn!("a snapshot's task failed: {e}"),
                    }
                    if self.snapshots.is_empty() {
                        self.snapshots_running.clear();
                    }
                }
                () = &mut refresh, if refresh_due => {
                    refresh_due = false;
                    refresh.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
                    if let Err(why) = self.refresh().await {
                        return Ended::HubLost(why);
                    }
                }
            }
        }
    }

    /// After a lost connection: sets the resume point back to the last
    /// event handed to the client well before the loss, if any since may
    /// have been lost. True when the session must watch again.
    fn rewind(&mut self, lost_at: Option<Instant>, resume: &mut Resume) -> bool {
        let Some(lost_at) = lost_at else {
            return false;
        };
        let cutoff = lost_at.checked_sub(REWIND_MARGIN).unwrap_or(lost_at);
        let Some(&(_, first)) = self.recent.front() else {
            return false;
        };
        let back_to = self
            .recent
            .iter()
            .rev()
            .find(|(at, _)| *at < cutoff)
            .map_or(first.saturating_sub(1), |&(_, seq)| seq);
        if resume.last_seq.is_none_or(|last| last <= back_to) {
            return false;
        }
        info!(
            after_seq = back_to,
            "the broker connection was lost: publishing again the events since"
        );
        resume.rewind(back_to);
        true
    }

    /// A retained config of ours: removed if its entity is gone.
    async fn on_config(&mut self, topic: &str, payload: &[u8]) {
        let current = self.discovery_configs.iter().any(|c| c.topic == topic);
        if !current && !payload.is_empty() && topic.ends_with("/config") {
            info!(%topic, "removing a Home Assistant entity that is no longer configured");
            self.send(topic, QoS::AtLeastOnce, true, Vec::<u8>::new())
                .await;
        }
    }

    /// Everything retained, again: after a (re)connection to the broker
    /// (a clean session) or to the hub.
    async fn announce(&mut self) -> Result<(), String> {
        let mut filters = vec![self.topics.alarm_command(), self.topics.panic_command()];
        filters.extend(
            self.system
                .cameras
                .iter()
                .map(|c| self.topics.camera_snapshot_request(c)),
        );
        filters.extend(self.keypads.iter().map(|(_, t)| t.state().to_owned()));
        if !self.config.discovery_prefix.is_empty() {
            // Our own retained configs come back: any not in the current
            // set is an entity that is gone, and is removed.
            filters.push(discovery::config_filter(
                &self.config.discovery_prefix,
                &self.system.hub_id,
            ));
        }
        // One SUBSCRIBE for all: one request, one SubAck (which the pump
        // checks for refusals).
        let filters = filters
            .into_iter()
            .map(|f| rumqttc::SubscribeFilter::new(f, QoS::AtLeastOnce));
        if let Err(e) = self.link.client.subscribe_many(filters).await {
            debug!("not subscribed: {e}");
        }
        for config in &self.discovery_configs {
            self.send(
                &config.topic,
                QoS::AtLeastOnce,
                true,
                config.payload.to_string(),
            )
            .await;
        }
        self.send(self.topics.availability(), QoS::AtLeastOnce, true, "online")
            .await;
        self.panel = None;
        self.sensors.clear();
        self.refresh().await
    }

    /// Reads the hub's description again: a reload that adds or removes a
    /// sensor or camera changes the discovery configs (an entity that is
    /// gone gets an empty config, which removes it from Home Assistant).
    async fn check_system(&mut self) -> Result<(), String> {
        let system = self
            .hub
            .system()
            .await
            .map_err(|e| format!("GetSystem: {}", e.message()))?;
        if system.hub_id != self.system.hub_id || system.log_id != self.system.log_id {
            return Err("the hub's identity or event log changed".into());
        }
        let configs = discovery_configs(self.config, &system);
        let cameras_changed = system.cameras != self.system.cameras;
        self.system = system;
        if configs == self.discovery_configs && !cameras_changed {
            return Ok(());
        }
        info!("the hub's sensors or cameras changed; updating Home Assistant's entities");
        for gone in self
            .discovery_configs
            .iter()
            .filter(|old| !configs.iter().any(|new| new.topic == old.topic))
        {
            self.send(&gone.topic, QoS::AtLeastOnce, true, Vec::<u8>::new())
                .await;
        }
        self.discovery_configs = configs;
        self.announce().await
    }

    /// Publishes the panel's status and each sensor from the hub's answer.
    async fn refresh(&mut self) -> Result<(), String> {
        let status = self
            .hub
            .status()
            .await
            .map_err(|e| format!("GetStatus: {}", e.message()))?;
        let sensors = self
            .hub
            .sensors()
            .await
            .map_err(|e| format!("ListSensors: {}", e.message()))?;
        let mode = hub::mode_from_proto(status.mode);
        let state = hub::state_from_proto(status.state);
        self.publish_panel(mode, state).await;
        let message = StatusMessage {
            state: wire::ha_state(mode, state),
            mode: mode.as_str(),
            alarm: state.as_str(),
            deadline_unix_ms: (status.deadline_unix_ms > 0).then_some(status.deadline_unix_ms),
            open: status.open,
            bypassed: status.bypassed,
            faults: status.faults,
            last_event_seq: status.last_event_seq,
        };
        self.publish_json(self.topics.alarm_status(), QoS::AtLeastOnce, true, &message)
            .await;
        for sensor in sensors {
            let state = match (sensor.state.as_str(), sensor.active) {
                ("unknown", _) => SensorState::Unknown,
                (_, true) => SensorState::Active,
                (_, false) => SensorState::Inactive,
            };
            let fault = wire::binary_flag(sensor.fault || sensor.tamper);
            self.publish_sensor(&sensor.name, wire::binary_state(state), fault)
                .await;
        }
        Ok(())
    }

    async fn publish_panel(&mut self, mode: ArmedMode, state: AlarmState) {
        if self.panel == Some((mode, state)) {
            return;
        }
        self.panel = Some((mode, state));
        self.send(
            self.topics.alarm_state(),
            QoS::AtLeastOnce,
            true,
            wire::ha_state(mode, state),
        )
        .await;
        // The keypads light and beep with the panel: exit and entry delay,
        // the alarm, the armed mode.
        let shown = wire::keypad_state(mode, state);
        for (_, topics) in &self.keypads {
            self.send(
                topics.set(),
                QoS::AtLeastOnce,
                false,
                zigbee::arm_mode_payload(shown, None),
            )
            .await;
        }
    }

    async fn publish_sensor(&mut self, name: &str, state: &'static str, fault: &'static str) {
        let before = self.sensors.get(name).copied();
        if before == Some((state, fault)) {
            return;
        }
        if before.is_none_or(|(s, _)| s != state) {
            self.send(
                self.topics.sensor_state(name),
                QoS::AtLeastOnce,
                true,
                state,
            )
            .await;
        }
        if before.is_none_or(|(_, f)| f != fault) {
            self.send(
                self.topics.sensor_fault(name),
                QoS::AtLeastOnce,
                true,
                fault,
            )
            .await;
        }
        self.sensors.insert(name.to_owned(), (state, fault));
    }

    /// Hands a message to the MQTT client. It fails only when the client's
    /// event loop is gone, which the session sees on its own (the link's
    /// state closes), so the error says nothing more here.
    async fn send(
        &self,
        topic: impl Into<String>,
        qos: QoS,
        retain: bool,
        payload: impl Into<Vec<u8>>,
    ) {
        if let Err(e) = self.link.client.publish(topic, qos, retain, payload).await {
            debug!("not sent: {e}");
        }
    }

    async fn publish_json(
        &self,
        topic: String,
        qos: QoS,
        retain: bool,
        value: &impl serde::Serialize,
    ) {
        match serde_json::to_string(value) {
            Ok(json) => {
                self.send(topic, qos, retain, json).await;
            }
            Err(e) => warn!("could not write {topic} as JSON: {e}"),
        }
    }

    /// Publishes one event; true when the status needs refreshing.
    async fn on_event(&mut self, event: pb::Event, resume: &mut Resume) -> bool {
        let kind = EventKind::from_name(&event.kind);
        let mode = hub::mode_from_proto(event.mode);
        let state = hub::state_from_proto(event.state);
        let sensor_state = hub::sensor_state_from_proto(event.sensor_state);
        let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let message = EventMessage {
            seq: event.seq,
            unix_ms: event.unix_ms,
            kind: event.kind.clone(),
            sensor: non_empty(&event.sensor),
            sensor_state: sensor_state.map(wire::sensor_state_word),
            camera: non_empty(&event.camera),
            mode: mode.as_str(),
            state: state.as_str(),
            user: non_empty(&event.user),
            source: event.source.clone(),
            message: event.message.clone(),
            trace_id: non_empty(&event.trace_id),
        };
        // Alarm-class events at least once; the rest at most once.
        let qos = if kind.is_alarm_class() {
            QoS::AtLeastOnce
        } else {
            QoS::AtMostOnce
        };
        self.publish_json(self.topics.events(), qos, false, &message)
            .await;
        self.publish_json(self.topics.last_event(), QoS::AtLeastOnce, true, &message)
            .await;
        resume.published(event.seq);
        if self.recent.len() == RECENT_EVENTS {
            self.recent.pop_front();
        }
        self.recent.push_back((Instant::now(), event.seq));
        // A replay of the past goes on the event topic only: the panel,
        // keypads and cameras show now (announce has published it).
        if self.replay_until.is_some_and(|last| event.seq <= last) {
            return false;
        }

        self.publish_panel(mode, state).await;
        // A sensor's change is published from the event itself, at once;
        // its fault and the status's lists follow from the refresh.
        if kind == EventKind::Sensor && !event.sensor.is_empty() {
            let fault = self
                .sensors
                .get(&event.sensor)
                .map_or(wire::binary_flag(false), |(_, f)| *f);
            let on = wire::binary_state(sensor_state.unwrap_or(SensorState::Unknown));
            self.publish_sensor(&event.sensor, on, fault).await;
        }
        if kind == EventKind::Triggered {
            let cameras = self.system.cameras.clone();
            for camera in cameras {
                self.start_snapshot(camera);
            }
        }
        true
    }

    async fn on_message(&mut self, message: Inbound) {
        let (topic, payload) = (message.topic.as_str(), message.payload.as_slice());
        if payload.len() > vigil_mqtt::MAX_INBOUND_PAYLOAD {
            self.dropped(topic, &format!("{} bytes, over the limit", payload.len()));
            return;
        }
        // A retained command is yesterday's (the broker sends it again at
        // every subscription): never run. A keypad that zigbee2mqtt
        // retains would disarm at every reconnection otherwise.
        if message.retained {
            self.dropped(topic, "a retained message is never a command");
            return;
        }
        // An empty message clears a retained one: it asks nothing.
        if payload.is_empty() {
            debug!(%topic, "an empty message (a retained one cleared)");
            return;
        }
        if message.at.elapsed() > COMMAND_MAX_AGE {
            self.dropped(
                topic,
                "it waited while the hub was unreachable; too late to run",
            );
            if topic == self.topics.alarm_command() {
                let result = CommandResult {
                    action: PanelCommand::parse(payload)
                        .map(|c| c.raw_action)
                        .unwrap_or_default(),
                    ok: false,
                    error: Some("the hub was unreachable; send it again".into()),
                    reason: Some("unavailable"),
                    open: Vec::new(),
                    state: None,
                };
                self.publish_json(self.topics.alarm_result(), QoS::AtLeastOnce, false, &result)
                    .await;
            }
            return;
        }
        if topic == self.topics.alarm_command() {
            match PanelCommand::parse(payload) {
                Ok(command) => {
                    let asker = Asker::Panel {
                        raw_action: command.raw_action.clone(),
                    };
                    self.start_command(asker, command.action, command.code)
                        .await;
                }
                Err(e) => {
                    self.dropped(topic, &e.to_string());
                    let result = CommandResult {
                        action: String::new(),
                        ok: false,
                        error: Some(e.to_string()),
                        reason: Some("bad_request"),
                        open: Vec::new(),
                        state: None,
                    };
                    self.publish_json(self.topics.alarm_result(), QoS::AtLeastOnce, false, &result)
                        .await;
                }
            }
            return;
        }
        if topic == self.topics.panic_command() {
            if payload == b"PRESS" {
                let asker = Asker::Panel {
                    raw_action: "PANIC".into(),
                };
                self.start_command(asker, PanelAction::Panic, None).await;
            } else {
                self.dropped(topic, "the panic button's payload is PRESS");
            }
            return;
        }
        if let Some(camera) = self
            .system
            .cameras
            .iter()
            .find(|c| self.topics.camera_snapshot_request(c) == topic)
            .cloned()
        {
            self.start_snapshot(camera);
            return;
        }
        if let Some((keypad, topics)) = self.keypads.iter().find(|(_, t)| t.state() == topic) {
            let keypad = keypad.name.clone();
            let set_topic = topics.set();
            match zigbee::parse_keypad(payload) {
                Ok(Some(request)) => {
                    let was_disarmed = self.panel == Some((ArmedMode::Disarmed, AlarmState::Idle));
                    let action = match request.action {
                        KeypadAction::Disarm => PanelAction::Disarm,
                        KeypadAction::ArmDay => PanelAction::Arm(ArmedMode::Home),
                        KeypadAction::ArmNight => PanelAction::Arm(ArmedMode::Night),
                        KeypadAction::ArmAll => PanelAction::Arm(ArmedMode::Away),
                        KeypadAction::Panic => PanelAction::Panic,
                    };
                    let asker = Asker::Keypad {
                        name: keypad,
                        set_topic,
                        action: request.action,
                        transaction: request.transaction,
                        was_disarmed,
                    };
                    self.start_command(asker, action, request.code).await;
                }
                // Battery reports and actions that ask nothing.
                Ok(None) => {}
                Err(e) => self.dropped(topic, &e.to_string()),
            }
            return;
        }
        self.dropped(topic, "not a topic the bridge reads");
    }

    fn dropped(&self, topic: &str, why: &str) {
        let topic = vigil_domain::text::excerpt(topic);
        match self.bad_input.allow() {
            Some(suppressed) => {
                warn!(%topic, suppressed, "dropped a message from the broker: {why}");
            }
            None => debug!(%topic, "dropped a message from the broker: {why}"),
        }
    }

    async fn start_command(&mut self, asker: Asker, action: PanelAction, code: Option<String>) {
        if self.commands.len() >= COMMANDS_IN_FLIGHT {
            let busy = Status::unavailable("the bridge is busy with other commands; try again");
            self.answer(asker, code.is_some(), Err(busy), Vec::new())
                .await;
            return;
        }
        let mut hub = self.hub.clone();
        let code_given = code.is_some();
        self.commands.spawn(async move {
            let outcome = match action {
                PanelAction::Arm(mode) => hub.arm(mode, code).await,
                PanelAction::Disarm => hub.disarm(code).await,
                PanelAction::Panic => hub.panic().await,
            };
            // Refused by the alarm's rules: which sensors were open.
            let open = match &outcome {
                Err(e) if e.code() == Code::FailedPrecondition => {
                    hub.status().await.map(|s| s.open).unwrap_or_default()
                }
                _ => Vec::new(),
            };
            Done::Command {
                asker,
                code_given,
                outcome: Box::new(outcome),
                open,
            }
        });
    }

    fn start_snapshot(&mut self, camera: String) {
        // One at a time per camera: a flood of requests costs one.
        if !self.snapshots_running.insert(camera.clone()) {
            return;
        }
        let mut hub = self.hub.clone();
        self.snapshots.spawn(async move {
            let outcome = hub.snapshot(&camera).await;
            Done::Snapshot { camera, outcome }
        });
    }

    async fn on_done(&mut self, done: Done) {
        match done {
            Done::Command {
                asker,
                code_given,
                outcome,
                open,
            } => self.answer(asker, code_given, *outcome, open).await,
            Done::Snapshot { camera, outcome } => {
                self.snapshots_running.remove(&camera);
                match outcome {
                    Ok(jpeg) if jpeg.len() > MAX_SNAPSHOT => warn!(
                        %camera,
                        bytes = jpeg.len(),
                        "a snapshot too large for the broker (1 MiB) is not published"
                    ),
                    Ok(jpeg) => {
                        self.send(
                            self.topics.camera_snapshot(&camera),
                            QoS::AtMostOnce,
                            true,
                            jpeg,
                        )
                        .await;
                    }
                    Err(e) => warn!(%camera, "no snapshot for MQTT: {}", e.message()),
                }
            }
        }
    }

    /// Publishes a command's answer where its asker reads it.
    async fn answer(
        &mut self,
        asker: Asker,
        code_given: bool,
        outcome: Result<pb::Status, Status>,
        open: Vec<String>,
    ) {
        let reason = outcome
            .as_ref()
            .err()
            .map(|e| refusal_reason(e, code_given));
        match asker {
            Asker::Panel { raw_action } => {
                let result = match &outcome {
                    Ok(status) => CommandResult {
                        action: raw_action,
                        ok: true,
                        error: None,
                        reason: None,
                        open,
                        state: Some(wire::ha_state(
                            hub::mode_from_proto(status.mode),
                            hub::state_from_proto(status.state),
                        )),
                    },
                    Err(e) => CommandResult {
                        action: raw_action,
                        ok: false,
                        error: Some(e.message().to_owned()),
                        reason,
                        open,
                        state: self.panel.map(|(m, s)| wire::ha_state(m, s)),
                    },
                };
                info!(action = %result.action, ok = result.ok, reason = ?result.reason, "MQTT command answered");
                self.publish_json(self.topics.alarm_result(), QoS::AtLeastOnce, false, &result)
                    .await;
            }
            Asker::Keypad {
                name,
                set_topic,
                action,
                transaction,
                was_disarmed,
            } => {
                let mode = match (&outcome, reason) {
                    (Ok(_), _) if action == KeypadAction::Disarm && was_disarmed => {
                        ArmMode::AlreadyDisarmed
                    }
                    (Ok(_), _) => action.confirmation(),
                    (
                        Err(_),
                        Some("wrong_code" | "code_required" | "locked_out" | "bad_request"),
                    ) => ArmMode::InvalidCode,
                    (Err(_), Some("refused")) if action == KeypadAction::Disarm && was_disarmed => {
                        ArmMode::AlreadyDisarmed
                    }
                    (Err(_), _) => ArmMode::NotReady,
                };
                info!(keypad = %name, answer = mode.as_str(), "keypad answered");
                let set_topic_again = set_topic.clone();
                self.send(
                    set_topic,
                    QoS::AtLeastOnce,
                    false,
                    zigbee::arm_mode_payload(mode, transaction),
                )
                .await;
                // Then what the panel shows now (the exit delay after an
                // arm), which the answer may have overtaken.
                if let Ok(status) = &outcome {
                    let shown = wire::keypad_state(
                        hub::mode_from_proto(status.mode),
                        hub::state_from_proto(status.state),
                    );
                    self.send(
                        set_topic_again,
                        QoS::AtLeastOnce,
                        false,
                        zigbee::arm_mode_payload(shown, None),
                    )
                    .await;
                }
            }
        }
    }
}

/// The discovery configs for the hub `system` describes (none when
/// discovery is off).
fn discovery_configs(
    config: &MqttConfig,
    system: &pb::GetSystemResponse,
) -> Vec<discovery::Config> {
    if config.discovery_prefix.is_empty() {
        return Vec::new();
    }
    let description = HubDescription {
        hub_id: system.hub_id.clone(),
        version: system.version.clone(),
        sensors: system
            .sensors
            .iter()
            .filter_map(|s| SensorKind::parse(&s.kind).map(|k| (s.name.clone(), k)))
            .collect(),
        cameras: system.cameras.clone(),
        code_arm_required: system.pin_required_to_arm,
    };
    discovery::configs(&config.discovery_prefix, &config.base_topic, &description)
}

/// The class of a refusal, for `alarm/result`'s `reason`.
fn refusal_reason(status: &Status, code_given: bool) -> &'static str {
    match status.code() {
        Code::PermissionDenied | Code::Unauthenticated if code_given => "wrong_code",
        Code::PermissionDenied | Code::Unauthenticated => "code_required",
        Code::ResourceExhausted => "locked_out",
        Code::FailedPrecondition => "refused",
        // The hub refuses an empty PIN as an invalid argument.
        Code::InvalidArgument if !code_given => "code_required",
        Code::InvalidArgument => "bad_request",
        Code::Unavailable | Code::DeadlineExceeded => "unavailable",
        _ => "error",
    }
}

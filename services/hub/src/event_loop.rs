//! The hub's event loop: the one place where the engine's decisions
//! ([`Effects`]) become I/O, in one fixed order.
//!
//! Everything the loop drives — the table and its watcher, the sessions,
//! the engine, the alert poster, the event log and stream, the state file
//! — lives in [`Hub`], owned by the loop: nothing is shared, nothing is
//! locked.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{error, info_span, warn};
use vigil_alarm::Outputs;
use vigil_alarm::users::lookup;
use vigil_domain::{AlarmState, ArmedMode};
use vigil_ipc::table::{SensorTable, SlotDescriptor, SystemUpdate};

use crate::alerts::AlertPoster;
use crate::commands::{CommandError, HubHandle, HubInbox, HubRequest};
use crate::engine::{Cause, CheckedPin, Effects, Engine, PinCheck};
use crate::eventlog::EventLog;
use crate::persist::StateStore;
use crate::pki::Pki;
use crate::sessions::Sessions;
use crate::status::StatusSnapshot;
use crate::stream::EventStream;
use crate::watcher::{Observed, TableWatcher};

/// The parts of the hub the event loop drives.
pub(crate) struct Hub {
    pub(crate) table: Arc<SensorTable>,
    pub(crate) watcher: TableWatcher,
    pub(crate) sessions: Sessions,
    /// The engine and what answers for it.
    pub(crate) core: Core,
    pub(crate) alerts: AlertPoster,
    pub(crate) log: EventLog,
    pub(crate) pki: Arc<Pki>,
    pub(crate) grpc_listen: std::net::SocketAddr,
    /// What was last written to the system slot and sent to sensord.
    pub(crate) written_codes: Option<(ArmedMode, AlarmState)>,
    pub(crate) sent_outputs: Option<Outputs>,
}

/// The engine with the parts that every answer needs: its state file, the
/// live stream, the status readers see, and the way back for checked
/// PINs. The hub wraps it with the table, the log and the alert queue;
/// [`spawn_engine`] runs it alone.
pub struct Core {
    pub engine: Engine,
    pub store: StateStore,
    pub stream: EventStream,
    /// The requests to the loop, and where GetStatus reads the status.
    pub inbox: HubInbox,
    /// The threads that check PINs, behind their bounded queue.
    pin_checkers: PinCheckers,
    /// Faults of the hub's storage (the event log: events it could not
    /// store, damage found in it), shown after the engine's own in the
    /// status; the hub's loop keeps them current.
    pub storage_faults: Vec<String>,
}

/// How many PIN lookups run at once: as many as the Pi has cores to spare.
const PIN_CHECKS_AT_ONCE: usize = 2;
/// How many may wait besides; past that a PIN is refused with
/// [`CommandError::Busy`] (not counted as wrong).
const PIN_CHECKS_WAITING: usize = 14;

/// Threads of their own that check PINs (argon2: slow, and 19 MiB a
/// lookup, by design), fed through a bounded queue.
///
/// Why not tokio's blocking pool: it grows to hundreds of threads under a
/// flood, and glibc gives each thread its own arena that keeps the 19 MiB
/// after the lookup (a flood of 120 PINs took the hub to 556 MiB). Two
/// long-lived threads keep at most two arenas, whatever comes.
#[derive(Clone, Debug)]
struct PinCheckers {
    queue: std::sync::mpsc::SyncSender<PinCheck>,
}

impl PinCheckers {
    /// Starts the threads; each checked PIN goes to `results`.
    fn start(results: mpsc::UnboundedSender<CheckedPin>) -> std::io::Result<PinCheckers> {
        let (queue, waiting) = std::sync::mpsc::sync_channel::<PinCheck>(PIN_CHECKS_WAITING);
        let waiting = Arc::new(std::sync::Mutex::new(waiting));
        for i in 0..PIN_CHECKS_AT_ONCE {
            let waiting = Arc::clone(&waiting);
            let results = results.clone();
            std::thread::Builder::new()
                .name(format!("pin-check-{i}"))
                .spawn(move || {
                    // One thread at a time waits on the queue; the other
                    // waits for its turn to, or checks a PIN.
                    while let Some(check) = waiting.lock().ok().and_then(|q| q.recv().ok()) {
                        let PinCheck {
                            users,
                            pin,
                            source,
                            then,
                        } = check;
                        let found = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            lookup(&users, &pin)
                        }))
                        .map_err(|_| {
                            error!("a PIN lookup panicked; the command is refused, not counted");
                            CommandError::PinCheckFailed
                        });
                        if results
                            .send(CheckedPin {
                                found,
                                source,
                                then,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                })?;
        }
        Ok(PinCheckers { queue })
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("last_seq", &self.engine.last_seq())
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A core for `engine` and its handle; checked PINs arrive on the
    /// returned receiver, to be handed to [`Core::code_checked`].
    /// Fails only if the PIN-checking threads cannot be started.
    pub fn new(
        engine: Engine,
        store: StateStore,
    ) -> std::io::Result<(Core, HubHandle, mpsc::UnboundedReceiver<CheckedPin>)> {
        let (handle, inbox) = HubHandle::channel(engine.status());
        let (pin_results, checked) = mpsc::unbounded_channel();
        let core = Core {
            stream: EventStream::new(engine.last_seq()),
            engine,
            store,
            inbox,
            pin_checkers: PinCheckers::start(pin_results)?,
            storage_faults: Vec::new(),
        };
        Ok((core, handle, checked))
    }

    /// Answers a subscription from the stream.
    fn subscribe(
        &self,
        after_seq: Option<u64>,
        reply: crate::commands::Reply<crate::stream::Subscription>,
    ) {
        let subscribed = self.stream.subscribe(after_seq).map_err(|e| match e {
            crate::stream::ResumeError::TooOld { oldest } => CommandError::ResumeTooOld { oldest },
            crate::stream::ResumeError::BeyondLast { last } => {
                CommandError::ResumeBeyondLast { last }
            }
        });
        let _ = reply.send(subscribed);
    }

    /// Steps 5 to 8 of [`Hub::apply`]: the save, the status and the
    /// stream, the answers, the PIN checks.
    fn finish(&mut self, effects: Effects) {
        let Effects {
            events,
            save,
            answers,
            pin_checks,
            ..
        } = effects;
        if save {
            let result = self
                .store
                .save(self.engine.setup(), &self.engine.to_save())
                .map_err(|e| {
                    error!("the alarm state was not saved: {e}; a restart now would lose it");
                    e.to_string()
                });
            self.engine.saved(result);
            failpoint("state-saved");
        }
        self.publish_status();
        for event in events {
            self.stream.publish(event);
        }
        let answered = !answers.is_empty();
        for answer in answers {
            answer.send();
        }
        if answered {
            failpoint_after_reply();
        }
        for check in pin_checks {
            self.check_pin(check);
        }
    }

    /// Publishes the engine's status for GetStatus, if it changed.
    pub fn publish_status(&self) {
        let mut status: StatusSnapshot = self.engine.status();
        status.faults.extend(self.storage_faults.iter().cloned());
        self.inbox.status.send_if_modified(|current| {
            if **current == status {
                false
            } else {
                *current = Arc::new(status);
                true
            }
        });
    }

    /// Hands a PIN to the checking threads; one past the queue's bound is
    /// refused at once ([`CommandError::Busy`]), not counted. The result
    /// comes back to the loop.
    fn check_pin(&self, check: PinCheck) {
        use std::sync::mpsc::TrySendError;
        match self.pin_checkers.queue.try_send(check) {
            Ok(()) => {}
            Err(TrySendError::Full(check)) => {
                warn!(
                    source = %check.source,
                    "too many PIN checks at once: refused one, not counted"
                );
                check.then.refuse(CommandError::Busy).send();
            }
            Err(TrySendError::Disconnected(check)) => {
                error!("the PIN-checking threads are gone; refusing the PIN, not counted");
                check.then.refuse(CommandError::PinCheckFailed).send();
            }
        }
    }
}

/// The engine alone behind a handle, with its state file, stream and
/// status but no table, event log or alert queue: for benchmarks of the API
/// and the camera server. Runs until every handle is dropped.
pub fn spawn_engine(engine: Engine, store: StateStore) -> HubHandle {
    let (mut core, handle, mut checked) =
        Core::new(engine, store).expect("the PIN-checking threads start");
    tokio::spawn(async move {
        loop {
            let effects = tokio::select! {
                Some(request) = core.inbox.requests.recv() => match request {
                    HubRequest::Alarm(command) => core.engine.handle(command),
                    HubRequest::Subscribe { after_seq, reply } => {
                        core.subscribe(after_seq, reply);
                        continue;
                    }
                    HubRequest::RetireLog { .. } => continue,
                },
                Some(pin) = checked.recv() => core.engine.code_checked(pin),
                else => return,
            };
            core.finish(effects);
        }
    });
    handle
}

impl Hub {
    /// Hands sensor changes to the engine, each in the hub's span for it
    /// (a child of sensord's, read from the slot).
    pub(crate) fn observe(&mut self, observed: Vec<Observed>) {
        for o in observed {
            let change = SensorChange::read(&self.table, &o);
            let _entered = change.span.enter();
            let cause = Cause::of_change(
                o.reading.trace,
                vigil_telemetry::trace_context_of(&change.span),
            );
            let mut effects = self.core.engine.on_sensor(o.slot, &o.reading, cause);
            // The alerts go out before the change's log line: a log line is
            // not on the alert path.
            let journal = self.post_alerts(&mut effects);
            change.log(&o);
            self.apply_after_posting(effects, journal);
        }
    }

    /// Handles one request from the API, the FIFO, the cameras or the
    /// retention task.
    pub(crate) fn handle(&mut self, request: HubRequest) {
        match request {
            HubRequest::Alarm(command) => {
                let effects = self.core.engine.handle(command);
                self.apply(effects);
            }
            HubRequest::Subscribe { after_seq, reply } => self.core.subscribe(after_seq, reply),
            HubRequest::RetireLog {
                retention,
                keep_from,
            } => self.log.retire(&retention, keep_from),
        }
    }

    /// Lets time pass: the log's group commit, the alarm's timers.
    pub(crate) fn tick(&mut self) {
        self.log.sync_if_due();
        let effects = self.core.engine.tick();
        self.apply(effects);
    }

    /// When the loop must next call [`Hub::tick`].
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        [self.core.engine.next_wake(), self.log.next_sync()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Acts on what the engine decided, in this order:
    ///
    /// 1. **Alerts onto the queue** (a non-blocking send into kernel
    ///    memory): nothing waits for the disk before an alarm is on its way
    ///    to alertd. An alert that does not fit waits in the outbox.
    /// 2. **Events into the log's mapped memory**; silent events into the
    ///    private log (synced there and then: rare).
    /// 3. **The alert journal** (alarm, tamper, fault alerts not yet
    ///    delivered), synced.
    /// 4. **The log synced** if an event is alarm-class.
    /// 5. **The state saved** (fsync and rename).
    /// 6. **The status published, then the events streamed**: a watcher
    ///    that sees an event and asks for the status never gets an older
    ///    one.
    /// 7. **The answers sent**: every command is persisted before its reply.
    /// 8. **PINs sent off to be checked.**
    ///
    /// Architecture Invariants this order keeps: no acknowledged command is
    /// lost (7 after 4 and 5); no saved alarm is without its alert (3 before
    /// 5, and 1 before both); no alert is lost on a SIGKILL of any one
    /// service (posted alerts live in the kernel's queue until alertd takes
    /// them; journaled ones are posted again by the next hub, same id). A
    /// hub killed between 1 and 3 delivers an alert whose state it then
    /// does not have: at least once, never lost.
    pub(crate) fn apply(&mut self, mut effects: Effects) {
        let journal = self.post_alerts(&mut effects);
        self.apply_after_posting(effects, journal);
    }

    /// Step 1 of [`Hub::apply`]: posts the effects' alerts; whether they
    /// must be journaled.
    fn post_alerts(&mut self, effects: &mut Effects) -> bool {
        let alerts = std::mem::take(&mut effects.alerts);
        let posted = !alerts.is_empty();
        let journal = self.alerts.post(alerts);
        if posted {
            failpoint("alert-posted");
        }
        journal
    }

    /// Steps 2 to 8 of [`Hub::apply`], once [`Hub::post_alerts`] has run.
    fn apply_after_posting(&mut self, mut effects: Effects, journal: bool) {
        for event in &effects.hidden {
            self.log.append_hidden(event);
        }
        let mut refused = false;
        for event in &effects.events {
            refused |= !self.log.append(event);
        }
        if refused {
            // A full disk: an event the log could not store is remembered
            // by the state file (whose space is reserved), so that its
            // number is never given to another event after a restart.
            effects.save = true;
        }
        if let Some(faults) = self.log.faults_if_changed() {
            self.core.storage_faults = faults;
        }
        if journal {
            self.alerts.save_journal();
            failpoint("alert-journaled");
        }
        if effects.must_sync_log() {
            self.log.sync();
        }
        self.core.finish(effects);
    }

    /// Brings the system slot and the outputs (siren, buzzer) in line with
    /// the engine, after every turn of the loop.
    pub(crate) fn sync_outputs(&mut self) {
        // The event log's faults can change off the loop (its start-up
        // check runs on a thread of its own).
        if let Some(faults) = self.log.faults_if_changed() {
            self.core.storage_faults = faults;
        }
        self.core.publish_status();
        let codes = self.core.engine.table_codes();
        if self.written_codes != Some(codes) {
            let update = SystemUpdate {
                mode: codes.0,
                alarm: codes.1,
                trace: Default::default(),
            };
            match self.table.write_system(&update) {
                Ok(_) => self.written_codes = Some(codes),
                Err(e) => error!("cannot write the system slot: {e}"),
            }
        }
        let outputs = self.core.engine.outputs();
        if self.sent_outputs != Some(outputs) {
            self.sessions.send_outputs(outputs);
            self.sent_outputs = Some(outputs);
        }
    }
}

/// The hub's span for a sensor change, a child of sensord's (whose context
/// the slot carries), and how long the change took to reach the hub.
struct SensorChange {
    span: tracing::Span,
    latency_us: u64,
    /// The slot's name and kind, read from the table once.
    descriptor: Option<SlotDescriptor>,
}

impl SensorChange {
    /// Opens the span and measures the latency as the change is read.
    fn read(table: &SensorTable, o: &Observed) -> SensorChange {
        let latency_us = vigil_ipc::monotonic_ns().saturating_sub(o.reading.changed_mono_ns) / 1000;
        let descriptor = table.descriptor(o.slot).ok();
        let name = descriptor.as_ref().map_or("", |d| d.name.as_str());
        let span = info_span!("hub.sensor_change", sensor = %name, slot = o.slot);
        vigil_telemetry::set_remote_parent(&span, o.reading.trace);
        SensorChange {
            span,
            latency_us,
            descriptor,
        }
    }

    /// Logs the change, in its span.
    fn log(&self, o: &Observed) {
        let Some(descriptor) = &self.descriptor else {
            return;
        };
        let r = &o.reading;
        self.span.in_scope(|| {
            tracing::info!(
                sensor = %descriptor.name,
                kind = %descriptor.kind,
                state = r.state.describe(descriptor.kind),
                fault = r.fault,
                tamper = r.tamper,
                change_count = r.change_count,
                latency_us = self.latency_us,
                changed_mono_ns = r.changed_mono_ns,
                trace_id = %r.trace.trace_id_hex(),
                "sensor changed"
            );
        });
    }
}

/// Stops the process at once (SIGABRT, no cleanup) when `VIGIL_FAILPOINT`
/// names this point: how the end-to-end tests kill the hub at an exact
/// place rather than at a random moment. Unset in production; read once.
///
/// Points: `alert-posted`, `alert-journaled`, `state-saved` (in
/// [`Hub::apply`]'s order) and `answered` (see [`failpoint_after_reply`]).
pub(crate) fn failpoint(name: &str) {
    if armed_failpoint() == Some(name) {
        error!("failpoint {name}: aborting, as VIGIL_FAILPOINT asks");
        std::process::abort();
    }
}

fn armed_failpoint() -> Option<&'static str> {
    static ARMED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ARMED
        .get_or_init(|| std::env::var("VIGIL_FAILPOINT").ok())
        .as_deref()
}

/// `VIGIL_FAILPOINT=answered`: the hub dies 200 ms after it first answers
/// a command — long enough for the answer to reach the client — without
/// another turn of its loop: what the client was told must be what a
/// restarted hub finds.
fn failpoint_after_reply() {
    if armed_failpoint() == Some("answered") {
        warn!("failpoint answered: aborting in 200 ms, as VIGIL_FAILPOINT asks");
        std::thread::spawn(|| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            std::process::abort();
        });
        // The loop stops here: nothing after the answer may be done.
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

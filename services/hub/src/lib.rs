//! The hub: the one process every other Vigil process talks to.
//!
//! Owns: the sensor table (it makes the sealed memfd and hands it to each
//! admitted service over `hub.sock`, SCM_RIGHTS) and its system slot, the
//! bootstrap socket and the sessions of every local service, the receiving
//! end of the doorbell, the alarm engine and its persisted state, the event
//! log (its only writer) and the live event stream, the alert queue's
//! sending end, the gRPC API with its CA and paired clients, the control
//! FIFO and the camera server.
//!
//! Must never: block the servers' runtime (the loop, which fsyncs, has a
//! one-thread runtime of its own; ipc-channel receives run on their own
//! threads, the doorbell is a signalfd, argon2 runs on blocking threads), trust a doorbell (the table's counters are the truth, see
//! [`watcher`]), or let a second writer of the sensor slots in while one is
//! connected.
//!
//! Code map, in layers: a module imports only modules of the layers below
//! its own (checked: `../shared/tools/module-cycles services/hub/src` finds
//! no circle).
//! 1. [`run`]: builds everything and runs the event loop; `event_loop`: the
//!    loop's state and `Hub::apply`, where the engine's effects become I/O
//!    in one documented order; `error`: why the hub stops; `camera_api`,
//!    `reports`: the CameraService and ReportService of [`grpc`]'s `Api`;
//!    `user_api`: AdminService's user management (confirmed by an admin's
//!    PIN through the engine, stored by [`users`], then told the engine).
//! 2. [`engine`]: the alarm (vigil-alarm), users and PINs, event numbering
//!    and wording, alerts; returns [`engine::Effects`], does no I/O.
//!    [`grpc`]: AlarmService and AdminService. `sessions`: admitted
//!    services, their message threads, and what happens when one ends (a
//!    dead writer's table repair). [`control_fifo`]: `echo "arm away" >
//!    /run/vigil/control`.
//! 3. [`cameras`]: the camera server (links, rings, clips, motion);
//!    [`convert`]: the one domain <-> proto boundary; [`eventlog`]: events
//!    into the memory-mapped log, replay; [`persist`]: the state file;
//!    [`pki`]: the CA, pairing, renewal and the client registry (who a
//!    certificate is, or why nobody); [`alerts`]: the
//!    POSIX queue to alertd and the alert journal; [`watcher`]: doorbells
//!    and rescans into observed changes.
//! 4. [`commands`]: what the loop is asked ([`commands::HubRequest`]) and
//!    the handle that asks ([`commands::HubHandle`]).
//! 5. [`status`]: the status every reader sees; [`stream`]: the event ring
//!    and broadcast; [`clock`]: wall-clock time and the alarm's monotonic
//!    clock; [`listen`]: what every peer-facing listener (gRPC, cameras,
//!    `hub.sock`) keeps to (handshake deadlines, caps per peer and in all,
//!    accept back-off, the descriptor budget, the gRPC server's TLS
//!    incoming stream and its client-certificate check); `files`: secret
//!    files replaced whole and durably; [`identity`]: the hub's and its
//!    log's identities (`hub-id`, `events/log-id`); [`users`]: the users
//!    added over the API (`users.json`) and how they merge with the config
//!    file's.

#![forbid(unsafe_code)]

pub mod alerts;
mod camera_api;
pub mod cameras;
pub mod clock;
pub mod commands;
pub mod control_fifo;
pub mod convert;
pub mod engine;
mod error;
mod event_loop;
pub mod eventlog;
mod files;
pub mod grpc;
pub mod identity;
pub mod listen;
pub mod persist;
pub mod pki;
mod reports;
mod sessions;
pub mod status;
pub mod stream;
mod user_api;
pub mod users;
pub mod watcher;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use vigil_bootstrap::Rendezvous;
use vigil_config::{Config, ConfigSource};
use vigil_ipc::doorbell::DoorbellReceiver;
use vigil_ipc::table::{SensorTable, SlotDescriptor};

use tokio::sync::watch;
use vigil_alarm::AlarmSetup;
use vigil_alarm::users::{User, Users};

pub use crate::error::HubError;

use crate::alerts::AlertPoster;
use crate::commands::HubHandle;
use crate::engine::Engine;
pub use crate::event_loop::{Core, spawn_engine};

use crate::event_loop::Hub;
use crate::eventlog::EventLog;
use crate::grpc::{Api, ApiView, Auth};
use crate::persist::StateStore;
use crate::pki::Pki;
use crate::sessions::{SessionAction, SessionContext, SessionEvent, Sessions};
use crate::users::UserStore;
use crate::watcher::{Suspicious, TableWatcher};

/// How often the hub rescans the table without a doorbell: the bound on how
/// late a change is seen if its ring was lost (a full signal queue).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// What the alarm needs of a configuration; slot k is `config.sensors[k]`.
pub fn alarm_setup(config: &Config) -> AlarmSetup {
    AlarmSetup {
        sensors: config
            .sensors
            .iter()
            .map(|s| vigil_alarm::AlarmSensor {
                name: s.name.clone(),
                kind: s.kind,
                modes: s.modes.clone(),
                response: s.response,
                arm_after_close: s.arm_after_close,
                auto_bypass: s.auto_bypass,
                double_knock: s.double_knock.clone(),
                trigger_on_fault: s.trigger_on_fault,
            })
            .collect(),
        alarm: config.alarm.clone(),
    }
}

/// The table's slots for a configuration.
fn descriptors(config: &Config) -> Vec<SlotDescriptor> {
    config
        .sensors
        .iter()
        .map(|s| SlotDescriptor {
            name: s.name.clone(),
            kind: s.kind,
        })
        .collect()
}

/// Creates the runtime directory (mode 0750) if it is missing.
pub fn ensure_runtime_dir(path: &Path) -> Result<(), HubError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(path)
        .map_err(|source| HubError::RuntimeDir {
            path: path.to_owned(),
            source,
        })
}

/// alertd's group (`[alerts] group`), when alertd runs under a uid of its
/// own: its gid and the uids listed as its members, for the alert queue
/// and `hub.sock` (ARCHITECTURE.md, "Users and groups").
pub fn alertd_group(config: &Config) -> Result<Option<vigil_bootstrap::AlertdGroup>, HubError> {
    let Some(name) = &config.alerts.group else {
        return Ok(None);
    };
    let no_group = || HubError::NoGroup { name: name.clone() };
    let group = nix::unistd::Group::from_name(name)
        .map_err(|_| no_group())?
        .ok_or_else(no_group)?;
    let members = (group.mem.iter())
        .filter_map(|member| nix::unistd::User::from_name(member).ok().flatten())
        .map(|user| user.uid.as_raw())
        .collect();
    Ok(Some(vigil_bootstrap::AlertdGroup {
        gid: group.gid.as_raw(),
        members,
    }))
}

/// Reads every user's PIN hashes (inline or from their files). A file that
/// cannot be read is [`HubError::PinHashFile`] and a hash that does not
/// parse [`HubError::User`]: both the configuration's (exit 78).
/// The users of the config file, with their hashes read and checked.
pub fn configured_users(config: &Config) -> Result<Vec<User>, HubError> {
    let read = |index: usize,
                user: &str,
                key: &'static str,
                inline: &Option<String>,
                file: &Option<std::path::PathBuf>| match (inline, file) {
        (Some(hash), _) => Ok(Some(hash.clone())),
        (None, Some(path)) => std::fs::read_to_string(path)
            .map(|s| Some(s.trim().to_owned()))
            .map_err(|source| HubError::PinHashFile {
                index,
                user: user.to_owned(),
                key,
                path: path.clone(),
                source,
            }),
        (None, None) => Ok(None),
    };
    let mut users = Vec::new();
    for (i, u) in config.users.iter().enumerate() {
        let Some(pin) = read(i, &u.name, "pin_hash_file", &u.pin_hash, &u.pin_hash_file)? else {
            continue;
        };
        let duress = read(
            i,
            &u.name,
            "duress_pin_hash_file",
            &u.duress_pin_hash,
            &u.duress_pin_hash_file,
        )?;
        users.push(User::new(&u.name, u.role, &pin, duress.as_deref())?);
    }
    Ok(users)
}

/// Warns when nobody could disarm.
fn warn_if_no_users(configured: &[User], store: &UserStore) {
    if configured.is_empty() && store.list().is_empty() {
        warn!(
            "no users are configured: nobody can disarm; add [[users]] to the config, or a user \
             with `vigilctl user-add`"
        );
    }
}

/// How often old event-log segments are looked at.
const RETENTION_EVERY: Duration = Duration::from_secs(600);

/// Retires old event-log segments every [`RETENTION_EVERY`], but only
/// those reportd has indexed: its checkpoint, read from its database, is
/// the floor. No database (reportd never ran): nothing is retired.
async fn retention_loop(
    engine: HubHandle,
    reports_db: std::path::PathBuf,
    retention: vigil_eventlog::Retention,
) {
    let mut every = tokio::time::interval(RETENTION_EVERY);
    loop {
        every.tick().await;
        let indexed = match vigil_reports::ReadOnly::open(&reports_db).await {
            Ok(mut db) => db.checkpoint().await,
            Err(e) => Err(e),
        };
        match indexed {
            Ok(through) => {
                let command = commands::HubRequest::RetireLog {
                    retention,
                    keep_from: through + 1,
                };
                if engine.tell(command).await.is_err() {
                    return;
                }
            }
            Err(e) => tracing::debug!("event-log retention waits for reportd: {e}"),
        }
    }
}

fn api_view(config: &Config, table: &Arc<SensorTable>) -> Arc<ApiView> {
    Arc::new(ApiView {
        events_dir: Some(config.runtime.state_dir.join("events")),
        reports_db: Some(config.runtime.reports_db()),
        cameras: config.cameras.iter().map(|c| c.name.clone()).collect(),
        table: Arc::clone(table),
        setup: alarm_setup(config),
        users: config
            .users
            .iter()
            .map(|u| {
                let duress = u.duress_pin_hash.is_some() || u.duress_pin_hash_file.is_some();
                (u.name.clone(), u.role, duress)
            })
            .collect(),
    })
}

/// Runs the hub until `shutdown` resolves (SIGTERM in production); SIGHUP
/// reloads the configuration from `source`. The doorbell signal must have
/// been blocked in every thread (`vigil_ipc::doorbell::block_doorbell_signal`
/// first thing in main).
///
/// Two runtimes: `run` is polled on a one-thread runtime of its own (the
/// loop's), which reads the doorbell, the loop's timers and SIGHUP itself,
/// so a ring reaches the loop with no wake-up of another thread; every
/// server (gRPC, cameras, `hub.sock`, the FIFO, retention) runs on
/// `servers`, a multi-thread runtime, so that the loop's fsyncs never hold
/// one up.
pub async fn run(
    source: ConfigSource,
    mut config: Config,
    shutdown: impl Future<Output = ()>,
    servers: tokio::runtime::Handle,
) -> Result<(), HubError> {
    ensure_runtime_dir(&config.runtime.runtime_dir)?;
    ensure_runtime_dir(&config.runtime.state_dir)?;
    // Registered with the loop's runtime (the current one).
    let doorbell = DoorbellReceiver::new()?;
    // Everything made from here until the loop starts (listeners, spawned
    // servers) belongs to `servers`.
    let on_servers = servers.enter();
    let table = Arc::new(SensorTable::create(
        &descriptors(&config),
        std::process::id(),
    )?);
    let setup = alarm_setup(&config);
    let store = StateStore::new(&config.runtime.state_dir);
    let restored = store.load(&setup)?;
    let user_store = Arc::new(UserStore::load(&config.runtime.state_dir)?);
    let configured = configured_users(&config)?;
    warn_if_no_users(&configured, &user_store);
    let mut engine = Engine::new(setup, Users::new(configured, Default::default()), restored);
    engine.set_managed_users(users::checked(&user_store.list()));
    // Before anything else listens: an unprivileged hub whose kernel limits
    // are too small for the alert queue stops here, saying what to set.
    let alertd_group = alertd_group(&config)?;
    let alerts = AlertPoster::open(
        &config.alerts,
        (alertd_group.as_ref()).map(|g| nix::unistd::Gid::from_raw(g.gid)),
    )?
    .with_journal(&config.runtime.state_dir);
    let pki = Arc::new(Pki::load_or_create(
        &config.runtime.state_dir,
        &config.grpc.hostnames,
    )?);
    // Bound before the event log opens: a second hub stops here, before
    // its log recovery could touch the running hub's log.
    let rendezvous = Rendezvous::bind_for(
        &config.runtime.hub_socket(),
        nix::unistd::getuid().as_raw(),
        alertd_group,
    )
    .await?;
    // The log's numbers are the stream's: an event's number is its
    // record's, so a watcher can resume from the log. A state file ahead
    // of the log (events not stored on a full disk, a log lost) moves the
    // log's numbering on: a gap readers see, never stand-ins; a log ahead
    // of the state file moves the engine's numbering on.
    let mut log = EventLog::open(&config.runtime.state_dir, config.events.sync_window)?;
    // After the log made its directory (with the mode it wants).
    let info = identity::HubInfo::load_or_create(&config.runtime.state_dir)?;
    engine.skip_to(log.last_seq());
    log.skip_to(engine.last_seq());
    let (core, engine_handle, mut checked_pins) =
        Core::new(engine, store).map_err(HubError::Signal)?;

    let (view_tx, view_rx) = watch::channel(api_view(&config, &table));
    // The listeners' caps must fit the descriptor limit (raised if it can be).
    listen::reserve_descriptors(config.cameras.len());
    let listener = grpc::bind(config.grpc.listen).await?;
    let grpc_listen = listener.local_addr().unwrap_or(config.grpc.listen);
    let mut api = Api::new(
        engine_handle.clone(),
        view_rx,
        Auth::Certificates(Arc::clone(&pki)),
        info,
    )
    .with_user_store(Arc::clone(&user_store));
    // Motion seen on video, for the hub to write into its sensor table.
    let (motion_tx, mut motion_rx) = mpsc::unbounded_channel::<cameras::MotionChange>();
    // The camera server: TCP for the link, UDP (same port) for heartbeats.
    let (camera_stop_tx, camera_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mut camera_tasks = Vec::new();
    if !config.cameras.is_empty() {
        let addr = config.recording.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| HubError::CameraListen { addr, source })?;
        let udp = tokio::net::UdpSocket::bind(addr)
            .await
            .map_err(|source| HubError::CameraListen { addr, source })?;
        let listener_port = listener
            .local_addr()
            .map(|a| a.port())
            .unwrap_or(addr.port());
        let cameras = cameras::CameraHub::new(&config, engine_handle.clone());
        info!(%addr, cameras = config.cameras.len(), "camera server listening");
        camera_tasks.push(tokio::spawn(cameras::serve(
            Arc::clone(&cameras),
            listener,
            udp,
            async move {
                let _ = camera_stop_rx.await;
            },
        )));
        camera_tasks.push(tokio::spawn(Arc::clone(&cameras).supervise()));
        if let Some(to) = config.recording.beacon {
            let port = listener_port;
            camera_tasks.push(tokio::spawn(cameras::beacon(to, port)));
        }
        camera_tasks.push(tokio::spawn(Arc::clone(&cameras).record_on_alarm()));
        for (slot, sensor) in config.sensors.iter().enumerate() {
            let Some(camera) = &sensor.camera else {
                continue;
            };
            let percent = config
                .cameras
                .iter()
                .find(|c| &c.name == camera)
                .map_or(2, |c| c.motion_percent);
            camera_tasks.push(tokio::spawn(cameras::watch_motion(
                Arc::clone(&cameras),
                camera.clone(),
                slot,
                percent,
                motion_tx.clone(),
            )));
        }
        api = api.with_cameras(cameras);
    }
    let (grpc_stop_tx, grpc_stop_rx) = tokio::sync::oneshot::channel::<()>();
    let grpc_task = tokio::spawn(grpc::serve(listener, api, async move {
        let _ = grpc_stop_rx.await;
    }));

    let fifo = config.runtime.runtime_dir.join("control");
    match control_fifo::ensure_fifo(&fifo) {
        Ok(()) => {
            control_fifo::spawn(
                fifo,
                engine_handle.clone(),
                tokio::runtime::Handle::current(),
            )
            .map_err(HubError::Signal)?;
        }
        Err(e) => error!("the control FIFO is off: {e}"),
    }

    let retention_task = tokio::spawn(retention_loop(
        engine_handle.clone(),
        config.runtime.reports_db(),
        vigil_eventlog::Retention {
            max_age: config.events.max_age,
            max_bytes: config.events.max_bytes,
        },
    ));

    let (session_tx, mut session_rx) = mpsc::unbounded_channel::<SessionEvent>();
    let mut hub = Hub {
        watcher: TableWatcher::new(table.slot_count()),
        table,
        sessions: Sessions::new(session_tx.clone()),
        core,
        alerts,
        log,
        pki,
        grpc_listen,
        written_codes: None,
        sent_outputs: None,
    };
    // Alerts a previous hub left undelivered go out now.
    hub.alerts.flush();
    hub.sync_outputs();
    let (mode, alarm) = hub.core.engine.table_codes();
    info!(
        socket = %rendezvous.path().display(),
        grpc = %grpc_listen,
        slots = hub.table.slot_count(),
        mode = mode.as_str(),
        alarm = alarm.as_str(),
        "hub ready"
    );
    let accept_task = tokio::spawn(sessions::accept_loop(rendezvous, session_tx));
    // The loop's own: its signals and timers wake this thread.
    drop(on_servers);

    let mut hangup = signal(SignalKind::hangup()).map_err(HubError::Signal)?;
    let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
    let mut rings = Vec::new();
    tokio::pin!(shutdown);

    loop {
        let wake = hub.next_wake();
        tokio::select! {
            () = &mut shutdown => break,
            Some(change) = motion_rx.recv() => {
                // The hub is this slot's writer: write it, then read it
                // back like any other change.
                let update = vigil_ipc::table::SensorUpdate {
                    state: if change.active {
                        vigil_domain::SensorState::Active
                    } else {
                        vigil_domain::SensorState::Inactive
                    },
                    fault: false,
                    tamper: false,
                    bypassed: false,
                    trace: vigil_telemetry::trace_context_of(&tracing::Span::current()),
                };
                if let Err(e) = hub.table.write_sensor(change.slot, &update) {
                    error!("cannot write a camera's motion sensor: {e}");
                    continue;
                }
                let observed = hub.watcher.rescan(&hub.table);
                hub.observe(observed);
            }
            received = doorbell.recv(&mut rings) => {
                if let Err(e) = received {
                    error!("cannot read the doorbell: {e}");
                    continue;
                }
                let (observed, suspicious) = hub.watcher.on_rings(&hub.table, &rings);
                rings.clear();
                for s in suspicious {
                    log_suspicious(&s);
                }
                hub.observe(observed);
            }
            _ = rescan.tick() => {
                let observed = hub.watcher.rescan(&hub.table);
                if !observed.is_empty() {
                    debug!(count = observed.len(), "found by the periodic rescan");
                }
                hub.observe(observed);
            }
            () = sleep_until(wake) => hub.tick(),
            () = hub.alerts.writable(), if hub.alerts.waiting() => hub.alerts.flush(),
            Some(request) = hub.core.inbox.requests.recv() => hub.handle(request),
            Some(checked) = checked_pins.recv() => {
                let effects = hub.core.engine.code_checked(checked);
                hub.apply(effects);
            }
            Some(event) = session_rx.recv() => {
                let ctx = SessionContext {
                    table: &hub.table,
                    outputs: hub.core.engine.outputs(),
                    pki: &hub.pki,
                    grpc_listen: hub.grpc_listen,
                    users: hub.core.engine.user_names(),
                };
                match hub.sessions.handle(event, &ctx) {
                    Some(SessionAction::AlertdJoined) => hub.alerts.repost_in_flight(),
                    Some(SessionAction::AlertDelivered { id, token }) => {
                        hub.alerts.delivered(&id, &token)
                    }
                    None => {}
                }
            }
            _ = hangup.recv() => {
                if let Some(new) = reload(&source, &config, &user_store, &mut hub) {
                    view_tx.send_replace(api_view(&new, &hub.table));
                    config = new;
                    info!(source = %config.source, "configuration reloaded");
                }
            }
        }
        hub.sync_outputs();
    }

    info!("hub stopping: closing the API, the bootstrap socket and every session");
    let _ = grpc_stop_tx.send(());
    match grpc_task.await {
        Ok(Err(e)) => warn!("{e}"),
        Err(e) => warn!("the gRPC task failed: {e}"),
        Ok(Ok(())) => {}
    }
    accept_task.abort();
    retention_task.abort();
    let _ = camera_stop_tx.send(());
    for t in camera_tasks {
        t.abort();
    }
    // The task owned the rendezvous; wait for it so the socket is removed.
    let _ = accept_task.await;
    hub.sessions.end_all();
    Ok(())
}

/// Reloads the configuration from `source` into `hub` (SIGHUP): the new
/// config, or `None` when it is refused — an invalid file, an unreadable
/// PIN hash, a table that cannot be made — and the running one is kept.
fn reload(
    source: &ConfigSource,
    running: &Config,
    store: &UserStore,
    hub: &mut Hub,
) -> Option<Config> {
    let loaded = source.load().map_err(|e| e.to_string()).and_then(|config| {
        Ok((
            configured_users(&config).map_err(|e| e.to_string())?,
            config,
        ))
    });
    let (configured, new) = match loaded {
        Ok(loaded) => loaded,
        Err(e) => {
            error!("configuration not reloaded, keeping the running one: {e}");
            return None;
        }
    };
    if descriptors(&new) != descriptors(running) {
        match SensorTable::create(&descriptors(&new), std::process::id()) {
            Ok(table) => {
                info!("the sensor list changed: new table, every service rejoins");
                hub.table = Arc::new(table);
                hub.sessions.end_all();
                hub.written_codes = None;
            }
            Err(e) => {
                error!(
                    "configuration not reloaded, keeping the running one: cannot make the new \
                     sensor table: {e}"
                );
                return None;
            }
        }
    }
    warn_if_no_users(&configured, store);
    let users = Users::new(configured, Default::default());
    hub.core.engine.reconfigure(alarm_setup(&new), users);
    // The engine starts the new setup without live sensor states: the
    // watcher reports every slot to it again.
    hub.watcher = TableWatcher::new(hub.table.slot_count());
    hub.apply(crate::engine::Effects {
        save: true,
        ..Default::default()
    });
    Some(new)
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

fn log_suspicious(s: &Suspicious) {
    match s {
        Suspicious::NotQueued { ring } => warn!(
            sender_pid = ring.sender_pid,
            sender_uid = ring.sender_uid,
            "ignored a doorbell signal sent with kill, not by sensord; rescanning the table"
        ),
        Suspicious::NoSuchSlot { ring, slot_count } => warn!(
            sender_pid = ring.sender_pid,
            sender_uid = ring.sender_uid,
            value = ring.value,
            slot_count,
            "ignored a doorbell for a slot that does not exist (forged, or a sensord with \
             another config); rescanning the table"
        ),
    }
}

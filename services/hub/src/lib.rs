//! The hub: the one process every other Vigil process talks to.
//!
//! Owns (so far): the sensor table (it creates the region and hands it out
//! over ipc-channel), the system slot, the bootstrap socket and the
//! sessions of every local service, and the receiving end of the doorbell.
//! The alarm state machine, the gRPC API, the camera server and the event
//! log will live here too (see ARCHITECTURE.md).
//!
//! Must never: block its async runtime (ipc-channel receives run on their
//! own threads, the doorbell is a signalfd), trust a doorbell (the table's
//! counters are the truth, see [`watcher`]), or let a second writer of the
//! sensor slots in while one is connected.
//!
//! Code map:
//! - [`run`]: builds the table, listens, and runs the event loop.
//! - `sessions`: admitted services, their message threads, and what happens
//!   when one ends (a dead writer's table repair).
//! - [`watcher`]: doorbells and rescans into observed changes.

#![forbid(unsafe_code)]

mod sessions;
pub mod watcher;

use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{debug, error, info, info_span, warn};
use vigil_bootstrap::{BootstrapError, Rendezvous};
use vigil_core::config::{Config, ConfigSource};
use vigil_ipc::doorbell::{DoorbellError, DoorbellReceiver};
use vigil_ipc::table::{SensorTable, SlotDescriptor, TableError};

use crate::sessions::{SessionEvent, Sessions};
use crate::watcher::{Observed, Suspicious, TableWatcher};

/// How often the hub rescans the table without a doorbell: the bound on how
/// late a change is seen if its ring was lost (a full signal queue).
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);

/// Why the hub stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot create the runtime directory {path}: {source}")]
    RuntimeDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Table(#[from] TableError),
    #[error(transparent)]
    Doorbell(#[from] DoorbellError),
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    #[error("cannot install a signal handler: {0}")]
    Signal(std::io::Error),
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

/// Runs the hub until `shutdown` resolves (SIGTERM in production); SIGHUP
/// reloads the configuration from `source`. The doorbell signal must have
/// been blocked in every thread (`vigil_ipc::doorbell::block_doorbell_signal`
/// first thing in main).
pub async fn run(
    source: ConfigSource,
    mut config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HubError> {
    ensure_runtime_dir(&config.runtime.runtime_dir)?;
    let doorbell = DoorbellReceiver::new()?;
    let mut table = Arc::new(SensorTable::create(
        &descriptors(&config),
        std::process::id(),
    )?);
    let mut watcher = TableWatcher::new(table.slot_count());
    let rendezvous =
        Rendezvous::bind(&config.runtime.hub_socket(), nix::unistd::getuid().as_raw()).await?;
    info!(
        socket = %rendezvous.path().display(),
        slots = table.slot_count(),
        "hub ready"
    );

    let (session_tx, mut session_rx) = mpsc::unbounded_channel::<SessionEvent>();
    let mut sessions = Sessions::new(session_tx.clone());
    let accept_task = tokio::spawn(sessions::accept_loop(rendezvous, session_tx));

    let mut hangup = signal(SignalKind::hangup()).map_err(HubError::Signal)?;
    let mut rescan = tokio::time::interval(RESCAN_INTERVAL);
    let mut rings = Vec::new();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            () = &mut shutdown => break,
            received = doorbell.recv(&mut rings) => {
                if let Err(e) = received {
                    error!("cannot read the doorbell: {e}");
                    continue;
                }
                let (observed, suspicious) = watcher.on_rings(&table, &rings);
                rings.clear();
                for s in suspicious {
                    log_suspicious(&s);
                }
                for o in observed {
                    on_sensor_change(&table, &o);
                }
            }
            _ = rescan.tick() => {
                for o in watcher.rescan(&table) {
                    debug!(slot = o.slot, "found by the periodic rescan");
                    on_sensor_change(&table, &o);
                }
            }
            Some(event) = session_rx.recv() => {
                sessions.handle(event, &table);
            }
            _ = hangup.recv() => {
                match source.load() {
                    Ok(new) => {
                        if descriptors(&new) != descriptors(&config) {
                            info!("the sensor list changed: new table, every service rejoins");
                            table = Arc::new(SensorTable::create(
                                &descriptors(&new),
                                std::process::id(),
                            )?);
                            watcher = TableWatcher::new(table.slot_count());
                            sessions.end_all();
                        }
                        config = new;
                        info!(source = %config.source, "configuration reloaded");
                    }
                    Err(e) => error!("configuration not reloaded, keeping the running one: {e}"),
                }
            }
        }
    }

    info!("hub stopping: closing the bootstrap socket and every session");
    accept_task.abort();
    // The task owned the rendezvous; wait for it so the socket is removed.
    let _ = accept_task.await;
    sessions.end_all();
    Ok(())
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

fn on_sensor_change(table: &SensorTable, o: &Observed) {
    let Ok(descriptor) = table.descriptor(o.slot) else {
        return;
    };
    let r = &o.reading;
    let latency_us = vigil_ipc::monotonic_ns().saturating_sub(r.changed_mono_ns) / 1000;
    let span = info_span!("hub.sensor_change", sensor = %descriptor.name, slot = o.slot);
    vigil_telemetry::set_remote_parent(&span, r.trace);
    let _entered = span.enter();
    info!(
        sensor = %descriptor.name,
        kind = %descriptor.kind,
        state = r.state.describe(descriptor.kind),
        fault = r.fault,
        tamper = r.tamper,
        change_count = r.change_count,
        latency_us,
        trace_id = %r.trace.trace_id_hex(),
        "sensor changed"
    );
}

//! The services the hub has admitted, one ipc-channel session each.
//!
//! Each session has a thread blocked in `recv` on the service's channel
//! (ipc-channel is blocking), which forwards messages to the event loop
//! and reports the end of the session when the service's process exits.

use std::collections::HashMap;
use std::sync::Arc;

use ipc_channel::ipc::IpcSender;
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};
use vigil_alarm::Outputs;
use vigil_bootstrap::{
    Admitted, HubMessage, OutputCommand, OutputName, PairingCode, Rendezvous, ServiceMessage,
    ServiceRole, Welcome,
};
use vigil_domain::Role;
use vigil_ipc::table::SensorTable;

use crate::clock::now_ms;
use crate::listen::{AcceptBackoff, BOOTSTRAP_JOINS, LogBudget, Pool};
use crate::pki::Pki;

/// What a session event asks of the rest of the hub.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SessionAction {
    /// An alertd joined: post undelivered alerts again.
    AlertdJoined,
    /// alertd delivered this alert (its id, and the delivery token read
    /// from the queue that proves it).
    AlertDelivered { id: String, token: String },
}

/// What session handling needs from the rest of the hub.
pub(crate) struct SessionContext<'a> {
    pub(crate) table: &'a SensorTable,
    pub(crate) outputs: Outputs,
    pub(crate) pki: &'a Pki,
    pub(crate) grpc_listen: std::net::SocketAddr,
    /// The names of the keypad users, for pairing codes that name one.
    pub(crate) users: Vec<String>,
}

/// What session threads and the accept loop tell the event loop.
#[derive(Debug)]
pub(crate) enum SessionEvent {
    Admitted(Box<Admitted>),
    Message { id: u64, message: ServiceMessage },
    Ended { id: u64 },
}

/// Accepts services forever. Each client's rendezvous runs in its own task
/// under its deadlines, holding a place in [`BOOTSTRAP_JOINS`] (per pid;
/// the oldest goes when they are full), so a client that stays silent
/// delays nobody; a failing accept (EMFILE) backs off.
pub(crate) async fn accept_loop(rendezvous: Rendezvous, events: UnboundedSender<SessionEvent>) {
    let joins = Pool::new(BOOTSTRAP_JOINS);
    let failures = Arc::new(LogBudget::new());
    let mut backoff = AcceptBackoff::new("hub.sock");
    loop {
        let incoming = backoff.next(|| rendezvous.accept()).await;
        let pid = incoming.peer_pid();
        let Some(place) = joins.admit(pid.unwrap_or(0)) else {
            continue;
        };
        let events = events.clone();
        let failures = Arc::clone(&failures);
        tokio::spawn(async move {
            let join = async {
                let pending = incoming.greet().await.map_err(|e| (None, e))?;
                let role = pending.role;
                pending.admit().await.map_err(|e| (Some(role), e))
            };
            let outcome = tokio::select! {
                outcome = join => outcome,
                () = place.stopped() => {
                    debug!(?pid, "dropped a bootstrap client that had not joined, to make room");
                    return;
                }
            };
            match outcome {
                Ok(admitted) => {
                    let _ = events.send(SessionEvent::Admitted(Box::new(admitted)));
                }
                Err((role, e)) => {
                    let Some(suppressed) = failures.allow() else {
                        return;
                    };
                    match role {
                        Some(role) => {
                            warn!(
                                role = role.as_str(),
                                ?pid,
                                suppressed,
                                "rendezvous failed: {e}"
                            )
                        }
                        None => warn!(?pid, suppressed, "refused a bootstrap connection: {e}"),
                    }
                }
            }
        });
    }
}

struct Session {
    role: ServiceRole,
    pid: u32,
    /// The service's reply channel; dropping it ends the session for the
    /// service, which then rejoins.
    reply: IpcSender<HubMessage>,
}

pub(crate) struct Sessions {
    events: UnboundedSender<SessionEvent>,
    live: HashMap<u64, Session>,
    next_id: u64,
}

impl Sessions {
    pub(crate) fn new(events: UnboundedSender<SessionEvent>) -> Sessions {
        Sessions {
            events,
            live: HashMap::new(),
            next_id: 1,
        }
    }

    pub(crate) fn handle(
        &mut self,
        event: SessionEvent,
        ctx: &SessionContext<'_>,
    ) -> Option<SessionAction> {
        match event {
            SessionEvent::Admitted(admitted) => {
                let id = self.welcome(*admitted, ctx.table)?;
                match self.live.get(&id).map(|s| s.role) {
                    // A sensord that (re)joins gets the outputs the alarm
                    // wants: a siren that was sounding keeps sounding.
                    Some(ServiceRole::Sensord) => {
                        self.send_outputs(ctx.outputs);
                        None
                    }
                    Some(ServiceRole::Alertd) => Some(SessionAction::AlertdJoined),
                    _ => None,
                }
            }
            SessionEvent::Message {
                id,
                message: ServiceMessage::AlertDelivered { id: alert, token },
            } => {
                // Only a session admitted as alertd reports deliveries.
                let session = self.live.get(&id)?;
                if session.role != ServiceRole::Alertd {
                    warn!(
                        session = id,
                        role = session.role.as_str(),
                        pid = session.pid,
                        "ignored a delivery report from a session that is not alertd"
                    );
                    return None;
                }
                Some(SessionAction::AlertDelivered { id: alert, token })
            }
            SessionEvent::Message { id, message } => {
                self.on_message(id, message, ctx);
                None
            }
            SessionEvent::Ended { id } => {
                self.ended(id, ctx.table);
                None
            }
        }
    }

    /// Tells sensord what the siren and buzzer should do.
    pub(crate) fn send_outputs(&self, outputs: Outputs) {
        for session in self
            .live
            .values()
            .filter(|s| s.role == ServiceRole::Sensord)
        {
            for (output, on) in [
                (OutputName::Siren, outputs.siren),
                (OutputName::Buzzer, outputs.buzzer),
            ] {
                let command = OutputCommand {
                    output,
                    on,
                    trace: Default::default(),
                };
                if session.reply.send(HubMessage::SetOutput(command)).is_err() {
                    warn!(pid = session.pid, "sensord did not take an output command");
                }
            }
        }
    }

    /// Welcomes a service; returns its session id.
    fn welcome(&mut self, admitted: Admitted, table: &SensorTable) -> Option<u64> {
        if admitted.hello.role == ServiceRole::Sensord
            && let Some(other) = self.live.values().find(|s| s.role == ServiceRole::Sensord)
        {
            let reason = format!(
                "another sensord (pid {}) is connected; only one may write the sensor table",
                other.pid
            );
            warn!(pid = admitted.hello.pid, "{reason}");
            let _ = admitted.hello.reply.send(HubMessage::Refused { reason });
            return None;
        }
        // The table's sealed memfd goes on hub.sock, before the welcome
        // that tells the client to take it.
        if let Err(e) = admitted.hand_table(table.fd()) {
            warn!(
                pid = admitted.hello.pid,
                role = admitted.hello.role.as_str(),
                "could not hand the sensor table to a joining service, which will retry: {e}"
            );
            return None;
        }
        let Admitted {
            hello,
            from_service,
            ..
        } = admitted;
        let id = self.next_id;
        self.next_id += 1;
        let slots = (0..table.slot_count())
            .filter_map(|k| table.descriptor(k).ok().map(|d| d.name))
            .collect();
        let welcome = Welcome {
            session: id,
            hub_pid: std::process::id(),
            slots,
        };
        if hello.reply.send(HubMessage::Welcome(welcome)).is_err() {
            warn!(pid = hello.pid, "the service left before its welcome");
            return None;
        }
        let events = self.events.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("session-{id}"))
            .spawn(move || {
                while let Ok(message) = from_service.recv() {
                    if events.send(SessionEvent::Message { id, message }).is_err() {
                        return;
                    }
                }
                let _ = events.send(SessionEvent::Ended { id });
            });
        if let Err(e) = spawned {
            warn!("cannot start a session thread: {e}");
            return None;
        }
        if hello.role == ServiceRole::Reader {
            debug!(session = id, pid = hello.pid, "reader joined");
        } else {
            info!(
                session = id,
                role = hello.role.as_str(),
                pid = hello.pid,
                // The client's own words: quoted and cut, never raw.
                release = %vigil_domain::text::excerpt(&hello.release),
                "service joined"
            );
        }
        self.live.insert(
            id,
            Session {
                role: hello.role,
                pid: hello.pid,
                reply: hello.reply,
            },
        );
        Some(id)
    }

    fn on_message(&mut self, id: u64, message: ServiceMessage, ctx: &SessionContext<'_>) {
        let Some(session) = self.live.get(&id) else {
            return;
        };
        match message {
            ServiceMessage::OutputState { output, on } => info!(
                pid = session.pid,
                "{} is {}",
                output.as_str(),
                if on { "on" } else { "off" }
            ),
            ServiceMessage::CreatePairingCode { role, user } => {
                let Some(role) = Role::parse(&role) else {
                    warn!(
                        session = id,
                        "pairing code asked for an unknown role {}",
                        vigil_domain::text::excerpt(&role)
                    );
                    return;
                };
                if let Some(name) = user
                    .as_deref()
                    .filter(|n| !ctx.users.iter().any(|u| u == n))
                {
                    let reason = format!(
                        "there is no user {}: see `vigilctl users`",
                        vigil_domain::text::excerpt(name)
                    );
                    let _ = session.reply.send(HubMessage::Refused { reason });
                    return;
                }
                let (code, expires_unix_ms) = ctx.pki.create_code(role, user, now_ms());
                info!(
                    pid = session.pid,
                    role = role.as_str(),
                    "pairing code issued to a local administrator"
                );
                let answer = PairingCode {
                    code,
                    expires_unix_ms,
                    ca_sha256: ctx.pki.ca_sha256().to_owned(),
                    grpc_listen: ctx.grpc_listen.to_string(),
                    role: role.as_str().to_owned(),
                };
                let _ = session.reply.send(HubMessage::PairingCode(answer));
            }
            ServiceMessage::Hello(_)
            | ServiceMessage::Abandon
            | ServiceMessage::AlertDelivered { .. } => {
                warn!(session = id, "ignored a bootstrap message inside a session");
            }
        }
    }

    fn ended(&mut self, id: u64, table: &SensorTable) {
        let Some(session) = self.live.remove(&id) else {
            return;
        };
        if session.role == ServiceRole::Reader {
            debug!(session = id, "reader left");
            return;
        }
        warn!(
            session = id,
            role = session.role.as_str(),
            pid = session.pid,
            "service left; it rejoins when it restarts"
        );
        if session.role == ServiceRole::Sensord {
            // The writer is gone: release what it may have held mid-write.
            match table.repair_after_writer_death() {
                Ok(r) if r.broke_writer_lock || !r.torn_slots.is_empty() => warn!(
                    broke_writer_lock = r.broke_writer_lock,
                    torn_slots = ?r.torn_slots,
                    "repaired the sensor table after sensord died mid-write"
                ),
                Ok(_) => {}
                Err(e) => warn!("cannot check the sensor table after sensord left: {e}"),
            }
        }
    }

    /// Ends every session; the services rejoin (used on reload and exit).
    pub(crate) fn end_all(&mut self) {
        self.live.clear();
    }
}

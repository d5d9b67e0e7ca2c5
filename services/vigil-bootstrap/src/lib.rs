//! The rendezvous between the hub and every other local Vigil process, and
//! the typed ipc-channel messages they exchange after it.
//!
//! Owns: the bootstrap protocol on the hub's well-known socket
//! (`<runtime_dir>/hub.sock`), and the wire types ([`ServiceMessage`],
//! [`HubMessage`]) — the only types here that derive serialization.
//!
//! Must never: hold alarm policy or touch the sensor table's bytes (that is
//! `vigil-ipc`); block a tokio worker (blocking ipc-channel calls run on
//! blocking threads).
//!
//! # The protocol
//! 1. The client connects to `hub.sock` (a Unix stream socket, mode 0660)
//!    and writes one line: `VIGIL-BOOTSTRAP/1 <role> <pid>`.
//! 2. The hub checks the peer's credentials (`SO_PEERCRED`: the hub's own
//!    uid, or root; or, with alertd under a uid of its own, a member of
//!    alertd's group, which may join as alertd only: [`AlertdGroup`]; the
//!    socket then belongs to that group, and the one-shot server of step 3
//!    is opened to it) and answers `OK <name>` with the name of a fresh
//!    ipc-channel one-shot server, or `ERR <reason>` and closes.
//! 3. The client connects to that server and sends
//!    [`ServiceMessage::Hello`], which carries an `IpcSender<HubMessage>`
//!    for the replies and must name the pid the kernel reported in step 2.
//! 4. The hub sends the sensor table's memfd on `hub.sock` (one byte `T`
//!    carrying it with `SCM_RIGHTS`: ipc-channel's own shared memory cannot
//!    be sealed against truncation, this memfd is), then answers
//!    [`HubMessage::Welcome`] with what the client needs to ring the
//!    doorbell. The client takes the memfd after the welcome and maps it
//!    with `vigil_ipc::table::SensorTable::from_fd`, which checks its seals
//!    and size first.
//!
//! A session ends when either process exits: the other side's ipc-channel
//! receiver reports disconnection, and the client starts again at step 1.
//! Every step has a timeout (the first line 2 s, the hello 5 s), and the
//! hub runs each client's steps on their own ([`Rendezvous::accept`] only
//! accepts; [`Incoming::greet`] and [`PendingSession::admit`] run per
//! client), so a client that stalls delays nobody else.

#![forbid(unsafe_code)]

mod client;
mod hub;
mod wire;

use std::io;
use std::path::PathBuf;

pub use client::{Session, connect};
pub use hub::{Admitted, AlertdGroup, FIRST_LINE_TIMEOUT, Incoming, PendingSession, Rendezvous};
pub use wire::{
    Hello, HubMessage, OutputCommand, OutputName, PairingCode, ServiceMessage, ServiceRole,
    Welcome, WireTrace,
};

/// The protocol tag of the first line; bump on any change to the messages.
pub const PROTOCOL: &str = "VIGIL-BOOTSTRAP/1";

/// Why a rendezvous failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// Nobody listens on the socket.
    #[error(
        "the hub is not running (nothing listens on {path}); start vigil-hub, or pass the \
         config whose runtime_dir it uses"
    )]
    HubNotRunning { path: PathBuf },
    /// Another hub already listens on the socket.
    #[error("another hub is already running on {path}; stop it first")]
    HubAlreadyRunning { path: PathBuf },
    /// The hub said no.
    #[error("the hub refused the connection: {reason}")]
    Refused { reason: String },
    /// The other side spoke something else.
    #[error("bootstrap protocol error: {detail}")]
    Protocol { detail: String },
    /// A step took too long.
    #[error("the bootstrap timed out while {step}")]
    Timeout { step: &'static str },
    /// The other process went away.
    #[error("the other side disconnected while {step}")]
    Disconnected { step: &'static str },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl BootstrapError {
    fn io(context: impl Into<String>, source: io::Error) -> BootstrapError {
        BootstrapError::Io {
            context: context.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests;

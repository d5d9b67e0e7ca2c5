//! The ipc-channel messages. These are wire types: they derive serde and
//! carry handles; convert to domain types at the edge of each service.

use ipc_channel::ipc::IpcSender;
use serde::{Deserialize, Serialize};
use vigil_domain::TraceContext;

/// Who is connecting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ServiceRole {
    /// The GPIO service: writes sensor slots, rings the doorbell.
    Sensord,
    Camd,
    Alertd,
    Reportd,
    /// A read-only client of the table (`vigilctl status --local`, tests).
    Reader,
}

impl ServiceRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceRole::Sensord => "sensord",
            ServiceRole::Camd => "camd",
            ServiceRole::Alertd => "alertd",
            ServiceRole::Reportd => "reportd",
            ServiceRole::Reader => "reader",
        }
    }

    pub fn parse(s: &str) -> Option<ServiceRole> {
        [
            ServiceRole::Sensord,
            ServiceRole::Camd,
            ServiceRole::Alertd,
            ServiceRole::Reportd,
            ServiceRole::Reader,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// The first message of a session, from the service to the hub.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hello {
    pub role: ServiceRole,
    pub pid: u32,
    /// The sender's release, for the hub's log.
    pub release: String,
    /// Where the hub sends its replies.
    pub reply: IpcSender<HubMessage>,
}

/// From a service to the hub.
#[derive(Debug, Serialize, Deserialize)]
pub enum ServiceMessage {
    Hello(Hello),
    /// Sent by the hub to its own one-shot server to release a rendezvous
    /// whose client never came.
    Abandon,
    /// sensord reports an output's new level after a [`HubMessage::SetOutput`].
    OutputState {
        output: OutputName,
        on: bool,
    },
    /// A local administrator (`vigilctl pair`) asks for a pairing code for
    /// a client of `role` ("guest", "user", "admin") that belongs to the
    /// keypad user `user` (the hub refuses a name that is no user's).
    CreatePairingCode {
        role: String,
        user: Option<String>,
    },
    /// alertd delivered the alert with this id to every hook and webhook;
    /// `token` is the alert's delivery token, read from the queue, which
    /// proves it (the hub ignores a report without the right one).
    AlertDelivered {
        id: String,
        token: String,
    },
}

/// From the hub to a service.
#[derive(Debug, Serialize, Deserialize)]
pub enum HubMessage {
    Welcome(Welcome),
    /// The hub will not serve this client; the reason is for its operator.
    Refused {
        reason: String,
    },
    /// Drive an output (sensord).
    SetOutput(OutputCommand),
    /// The answer to [`ServiceMessage::CreatePairingCode`].
    PairingCode(PairingCode),
}

/// A one-time pairing code and what a client needs to check the hub.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairingCode {
    pub code: String,
    pub expires_unix_ms: u64,
    /// SHA-256 of the hub's CA certificate (DER), lowercase hex.
    pub ca_sha256: String,
    /// The gRPC listen address from the hub's config.
    pub grpc_listen: String,
    pub role: String,
}

/// The hub's answer to a [`Hello`]. The sensor table itself is not in it:
/// ipc-channel's shared memory cannot be sealed, so the table's sealed
/// memfd comes on `hub.sock` beside it ([`crate::Session::table`]).
#[derive(Debug, Serialize, Deserialize)]
pub struct Welcome {
    /// Numbers the hub's sessions, for logs.
    pub session: u64,
    pub hub_pid: u32,
    /// The sensor names in slot order (also in the table; here so a writer
    /// can map its config without reading the table first).
    pub slots: Vec<String>,
}

/// A GPIO output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OutputName {
    Siren,
    Buzzer,
}

impl OutputName {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputName::Siren => "siren",
            OutputName::Buzzer => "buzzer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputCommand {
    pub output: OutputName,
    pub on: bool,
    pub trace: WireTrace,
}

/// [`TraceContext`] on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTrace {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub flags: u8,
}

impl From<TraceContext> for WireTrace {
    fn from(t: TraceContext) -> WireTrace {
        WireTrace {
            trace_id: t.trace_id,
            span_id: t.span_id,
            flags: t.flags,
        }
    }
}

impl From<WireTrace> for TraceContext {
    fn from(t: WireTrace) -> TraceContext {
        TraceContext {
            trace_id: t.trace_id,
            span_id: t.span_id,
            flags: t.flags,
        }
    }
}

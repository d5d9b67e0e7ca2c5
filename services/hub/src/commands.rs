//! What the hub's event loop is asked to do, and the handle that asks.
//!
//! The gRPC API, the control FIFO, the cameras and the retention task hold
//! a [`HubHandle`]; each [`HubRequest`] carries a reply channel where it has
//! an answer. Requests are handled one at a time by the loop, so nothing
//! they touch is locked. The latest [`StatusSnapshot`] is read from a
//! `watch` channel without asking.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, watch};
use vigil_alarm::{Actor, ArmError, BypassError};
use vigil_domain::{ArmedMode, EventKind};

use crate::status::StatusSnapshot;
use crate::stream::Subscription;

/// Where a command's answer goes.
pub type Reply<T> = oneshot::Sender<Result<T, CommandError>>;

/// Why a command was refused.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("wrong PIN; {attempts_left} attempts left before a 90 s lockout")]
    WrongPin { attempts_left: u32 },
    #[error(
        "too many wrong PINs: {} refused for {} more s",
        if *everyone { "every PIN is" } else { "this client's PINs are" },
        retry_after_ms.div_ceil(1000)
    )]
    LockedOut {
        retry_after_ms: u64,
        /// Every source is locked out (else only the one that asked).
        everyone: bool,
    },
    #[error("this system needs a PIN to arm")]
    PinRequired,
    #[error("bypassing a sensor while the system is armed needs a PIN")]
    PinRequiredToBypass,
    #[error("no PIN was given")]
    EmptyPin,
    #[error("a PIN is 4 to 12 digits")]
    MalformedPin,
    /// More PIN checks wait than the hub takes at once (argon2 is slow and
    /// memory-hungry by design): refused, not counted.
    #[error("too many PINs are being checked at once; try again in a moment")]
    Busy,
    #[error("cannot arm: {0}")]
    Arm(#[from] ArmError),
    #[error("cannot bypass: {0}")]
    Bypass(#[from] BypassError),
    /// The name as given (quoted as an excerpt when shown).
    #[error("no sensor named {}", vigil_domain::text::excerpt(.0))]
    NoSuchSensor(String),
    #[error(
        "events up to {oldest} are no longer kept; resume from {oldest} or later (the event \
         log keeps them all)"
    )]
    ResumeTooOld { oldest: u64 },
    #[error(
        "after_seq is beyond the last event ({last}) of this hub's log: the numbers come from \
         another log (the hub was reset: compare log_id); start again without after_seq"
    )]
    ResumeBeyondLast { last: u64 },
    #[error("the siren can be tested only while the system is disarmed")]
    SirenTestWhileArmed,
    /// The PIN check itself failed (it panicked): not counted as a wrong
    /// PIN, since nobody entered one.
    #[error("the PIN could not be checked (an internal error); try again")]
    PinCheckFailed,
    #[error("the alarm engine has stopped")]
    Stopped,
}

/// Whose admin PIN confirmed a change of users, and the users then (for
/// the change's own checks, off the loop).
#[derive(Clone, Debug)]
pub struct Confirmed {
    pub admin: String,
    pub users: Arc<Vec<vigil_alarm::users::User>>,
}

/// What a disarm did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disarmed {
    pub user: String,
}

/// Commands to the alarm engine. Its `Debug` shows which command and from
/// where, never a PIN or a hash.
pub enum Command {
    Arm {
        mode: ArmedMode,
        force: bool,
        pin: Option<String>,
        by: Actor,
        reply: Reply<Vec<String>>,
    },
    Disarm {
        pin: String,
        source: String,
        reply: Reply<Disarmed>,
    },
    Panic {
        by: Actor,
        reply: Reply<()>,
    },
    Bypass {
        sensor: String,
        on: bool,
        /// Needed to bypass while armed.
        pin: Option<String>,
        by: Actor,
        reply: Reply<()>,
    },
    SirenTest {
        by: Actor,
        reply: Reply<()>,
    },
    /// Checks an admin user's PIN before a change of users (it counts
    /// toward the lockout like any PIN).
    ConfirmAdmin {
        pin: String,
        by: Actor,
        reply: Reply<Confirmed>,
    },
    /// A new PIN that someone already has: booked as a wrong PIN from
    /// `by`'s source (toward the lockout), answered as a refused
    /// confirmation.
    RefuseTakenPin {
        by: Actor,
        reply: Reply<Confirmed>,
    },
    /// Replaces the users added over the API (the engine merges them
    /// after the config file's), the lockout kept, and records `audit` as
    /// an event by `by`.
    SetUsers {
        managed: Vec<vigil_alarm::users::User>,
        by: Actor,
        audit: (EventKind, String),
        reply: Reply<()>,
    },
    /// A change made outside the alarm that must be on the record (a clip
    /// deleted): an event by `by`, on disk before the answer.
    Audit {
        kind: EventKind,
        camera: Option<String>,
        by: Actor,
        message: String,
        reply: Reply<()>,
    },
    /// Something a camera did: `CameraOnline`, `CameraOffline` (a fault
    /// alert), `ClipRecorded`. An event like any other (and an alert where
    /// the kind's priority says so).
    CameraEvent {
        kind: EventKind,
        camera: String,
        message: String,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (name, source): (&str, &str) = match self {
            Command::Arm { by, .. } => ("Arm", &by.source),
            Command::Disarm { source, .. } => ("Disarm", source),
            Command::Panic { by, .. } => ("Panic", &by.source),
            Command::Bypass { by, .. } => ("Bypass", &by.source),
            Command::SirenTest { by, .. } => ("SirenTest", &by.source),
            Command::ConfirmAdmin { by, .. } => ("ConfirmAdmin", &by.source),
            Command::RefuseTakenPin { by, .. } => ("RefuseTakenPin", &by.source),
            Command::SetUsers { by, .. } => ("SetUsers", &by.source),
            Command::Audit { by, .. } => ("Audit", &by.source),
            Command::CameraEvent { camera, .. } => ("CameraEvent", camera),
        };
        f.debug_struct("Command")
            .field("name", &name)
            .field("source", &source)
            .finish_non_exhaustive()
    }
}

/// Requests to the hub's loop.
#[derive(Debug)]
pub enum HubRequest {
    /// For the alarm engine.
    Alarm(Command),
    /// Watch the event stream: None, new events only; Some(n), the kept
    /// events after n first.
    Subscribe {
        after_seq: Option<u64>,
        reply: Reply<Subscription>,
    },
    /// Remove old event-log segments; `keep_from` is the first sequence
    /// number reportd has not indexed yet.
    RetireLog {
        retention: vigil_eventlog::Retention,
        keep_from: u64,
    },
}

impl From<Command> for HubRequest {
    fn from(command: Command) -> HubRequest {
        HubRequest::Alarm(command)
    }
}

/// The hub loop's front door, cheap to clone.
#[derive(Clone, Debug)]
pub struct HubHandle {
    requests: mpsc::Sender<HubRequest>,
    status: watch::Receiver<Arc<StatusSnapshot>>,
}

/// The receiving ends of a [`HubHandle`], for the hub's loop.
#[derive(Debug)]
pub struct HubInbox {
    pub requests: mpsc::Receiver<HubRequest>,
    pub status: watch::Sender<Arc<StatusSnapshot>>,
}

impl HubHandle {
    /// A handle and its inbox; readers see `status` until the loop
    /// publishes another.
    pub fn channel(status: StatusSnapshot) -> (HubHandle, HubInbox) {
        // Bounded: a flood of requests waits for the loop rather than
        // growing without limit.
        let (requests_tx, requests) = mpsc::channel(256);
        let (status_tx, status_rx) = watch::channel(Arc::new(status));
        (
            HubHandle {
                requests: requests_tx,
                status: status_rx,
            },
            HubInbox {
                requests,
                status: status_tx,
            },
        )
    }

    /// The latest status, without asking the loop.
    pub fn status(&self) -> Arc<StatusSnapshot> {
        Arc::clone(&self.status.borrow())
    }

    /// Sends a request and waits for its answer.
    pub async fn ask<T, R: Into<HubRequest>>(
        &self,
        make: impl FnOnce(Reply<T>) -> R,
    ) -> Result<T, CommandError> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(make(tx).into())
            .await
            .map_err(|_| CommandError::Stopped)?;
        rx.await.map_err(|_| CommandError::Stopped)?
    }

    /// Sends a request that has no answer.
    pub async fn tell(&self, request: impl Into<HubRequest>) -> Result<(), CommandError> {
        self.requests
            .send(request.into())
            .await
            .map_err(|_| CommandError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_never_shows_its_pin() {
        let (reply, _) = oneshot::channel();
        let command = Command::Disarm {
            pin: "8642".into(),
            source: "grpc:phone".into(),
            reply,
        };
        let shown = format!("{command:?}");
        assert!(
            shown.contains("Disarm") && shown.contains("grpc:phone"),
            "{shown}"
        );
        assert!(!shown.contains("8642"), "{shown}");
    }
}

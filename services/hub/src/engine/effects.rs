//! What one step of the engine asks the hub to do, as a value: the engine
//! decides, [`crate::Hub::apply`] acts, in a fixed order (see there).

use std::sync::Arc;

use vigil_alarm::users::User;
use vigil_alerts::AlertMessage;
use vigil_domain::Event;

use crate::commands::{CommandError, Confirmed, Disarmed, Reply};
use crate::engine::pins::PinAction;

/// Everything one command, sensor change or tick caused.
#[derive(Debug, Default)]
pub struct Effects {
    /// New events of the stream, numbered, in order: to log, then stream.
    pub events: Vec<Event>,
    /// Silent events (a duress code) for the private log only.
    pub hidden: Vec<Event>,
    /// Alerts for alertd.
    pub alerts: Vec<AlertMessage>,
    /// The persisted state (alarm, lockout, event number) changed.
    pub save: bool,
    /// Answers to commands: sent only once everything above is durable.
    pub answers: Vec<Answer>,
    /// PINs to check off the loop (argon2 is slow by design); each result
    /// comes back through [`crate::engine::Engine::code_checked`].
    pub pin_checks: Vec<PinCheck>,
}

impl Effects {
    /// Whether an event must be on disk before anyone is told about it.
    pub fn must_sync_log(&self) -> bool {
        self.events.iter().any(|e| e.kind.is_alarm_class())
    }

    /// The kinds of the events, in order (tests and logs).
    pub fn kinds(&self) -> Vec<&str> {
        self.events.iter().map(|e| e.kind.as_str()).collect()
    }
}

/// The answer to a command, with where it goes.
#[derive(Debug)]
pub enum Answer {
    /// Arm: the sensors bypassed because they were open.
    Armed(Reply<Vec<String>>, Result<Vec<String>, CommandError>),
    Disarmed(Reply<Disarmed>, Result<Disarmed, CommandError>),
    Done(Reply<()>, Result<(), CommandError>),
    Confirmed(Reply<Confirmed>, Result<Confirmed, CommandError>),
}

impl Answer {
    /// Sends it; a caller that stopped waiting is no error.
    pub fn send(self) {
        match self {
            Answer::Armed(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Disarmed(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Done(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Confirmed(reply, result) => {
                let _ = reply.send(result);
            }
        }
    }

    /// Why it refuses, if it does.
    pub fn error(&self) -> Option<&CommandError> {
        match self {
            Answer::Armed(_, r) => r.as_ref().err(),
            Answer::Disarmed(_, r) => r.as_ref().err(),
            Answer::Done(_, r) => r.as_ref().err(),
            Answer::Confirmed(_, r) => r.as_ref().err(),
        }
    }
}

impl std::fmt::Debug for PinCheck {
    /// Never the PIN.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinCheck")
            .field("source", &self.source)
            .field("then", &self.then)
            .finish_non_exhaustive()
    }
}

/// A PIN to look up among `users` on a blocking thread.
pub struct PinCheck {
    pub users: Arc<Vec<User>>,
    pub pin: String,
    pub source: String,
    pub then: PinAction,
}

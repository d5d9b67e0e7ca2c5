//! Everything a command can fail with. Each error knows its exit code
//! ([`Error::exit_code`]), so no handler picks one, and a gRPC status
//! becomes an error in one place ([`Error::from_status`]).

use std::path::PathBuf;

use tonic::Code;

use crate::local::LocalError;
use crate::token::TokenError;

/// Exit codes (also in `vigilctl --help`, the README and ARCHITECTURE.md).
pub mod exit {
    /// The hub refused or failed the request for another reason.
    pub const FAILED: u8 = 1;
    /// A malformed argument (as clap's own usage errors).
    pub const USAGE: u8 = 2;
    /// The hub could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// Not paired, or the pairing was revoked.
    pub const NOT_PAIRED: u8 = 4;
    /// Wrong PIN or not allowed for this client's role.
    pub const DENIED: u8 = 5;
    /// Locked out after too many wrong PINs.
    pub const LOCKED_OUT: u8 = 6;
    /// Refused by the alarm's rules (open sensors, already armed).
    pub const REFUSED: u8 = 7;
    /// The configuration is invalid (sysexits' EX_CONFIG, as every daemon).
    pub const CONFIG: u8 = vigil_service::EX_CONFIG;
}

/// What to try when the hub does not answer: said with both ways of not
/// reaching it, so a person gets the same advice.
const REACH_HINT: &str = "is vigil-hub running, and is its gRPC port reachable from here?";

/// A failed command. The messages are written for the person at the
/// terminal; the hub's own messages are passed on as they are.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // Exit 2: the flags parsed, but a value in them is unusable.
    #[error(
        "{text:?} is not a time: give an RFC 3339 time (2026-11-24T08:00:00Z) or a duration \
         ago (90m, 2h, 7days)"
    )]
    BadTime { text: String },
    #[error("--address {address:?} cannot go in a pairing token: {reason}")]
    PairAddress { address: String, reason: TokenError },

    // Exit 3: nothing answered.
    #[error("cannot reach the hub at {hub}: {source}; {hint}", hint = REACH_HINT)]
    Unreachable {
        hub: String,
        source: tonic::transport::Error,
    },
    #[error("cannot reach the hub at {hub} ({message}); {hint}", hint = REACH_HINT)]
    HubUnavailable { hub: String, message: String },
    /// Only pairing connects with a pinned CA instead of stored credentials.
    #[error("cannot reach the hub at {hub} securely: {source}")]
    UnreachableForPairing {
        hub: String,
        source: tonic::transport::Error,
    },
    #[error("cannot reach {hub}: {source}")]
    UnreachableAnonymous {
        hub: String,
        source: tonic::transport::Error,
    },
    /// The hub machine's own socket or table (`status --local`, `pair`).
    #[error(transparent)]
    Local(#[from] LocalError),

    // Exit 4: no credentials, or the hub no longer knows them.
    #[error(
        "this client is not paired ({}: {source}); run `vigilctl pair` on the hub for a token, \
         then `vigilctl pair --token TOKEN --name NAME` here",
        path.display()
    )]
    NotPaired {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unauthenticated(String),

    // Exits 5, 6 and 7: the hub's answers, in its words.
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    LockedOut(String),
    #[error("{0}")]
    Refused(String),

    // Exit 78.
    #[error(transparent)]
    Config(#[from] vigil_config::ConfigError),

    // Exit 1: everything else.
    #[error("{code:?}: {message}")]
    HubFailed { code: Code, message: String },
    #[error("bad hub address {hub:?}: {source}")]
    BadAddress {
        hub: String,
        source: tonic::transport::Error,
    },
    #[error("TLS set-up: {0}")]
    Tls(tonic::transport::Error),
    #[error(
        "not a pairing token: {0}; a token looks like vigil-pair:1:HOST:PORT:CODE:FINGERPRINT \
         (copy it whole from `vigilctl pair` on the hub; its grammar is in docs/pairing.md)"
    )]
    BadToken(TokenError),
    /// What `vigilctl pair` cannot put in a token it makes (this host's
    /// name, the hub's listening address, the hub's code).
    #[error("cannot make a pairing token: {0}")]
    MakeToken(String),
    #[error("give this client a --name")]
    NoName,
    #[error("the hub listens on {0:?}")]
    HubListen(String),
    #[error("cannot make a key: {0}")]
    Key(rcgen::Error),
    #[error("cannot make a CSR: {0}")]
    Csr(rcgen::Error),
    #[error("cannot read the {what}: {source}")]
    ReadSecret {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Pin(#[from] vigil_alarm::users::UserError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing the stream: {0}")]
    Stream(std::io::Error),
    #[error("the hub sent a report that is not JSON: {0}")]
    BadReport(serde_json::Error),
    #[error("internal task failed: {0}")]
    Task(tokio::task::JoinError),
    #[error("{what} stopped short after {got} bytes, several times; try again")]
    Truncated { what: &'static str, got: u64 },
}

impl Error {
    /// The hub's refusal of a request to the hub at `hub`: the one place a
    /// gRPC status code is read.
    pub fn from_status(status: &tonic::Status, hub: &str) -> Error {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unavailable => Error::HubUnavailable {
                hub: hub.to_owned(),
                message,
            },
            Code::Unauthenticated => Error::Unauthenticated(message),
            Code::PermissionDenied => Error::Denied(message),
            Code::ResourceExhausted => Error::LockedOut(message),
            Code::FailedPrecondition
            | Code::NotFound
            | Code::InvalidArgument
            | Code::AlreadyExists
            | Code::OutOfRange => Error::Refused(message),
            code => Error::HubFailed { code, message },
        }
    }

    /// The exit code this error ends vigilctl with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::BadTime { .. } | Error::PairAddress { .. } => exit::USAGE,
            Error::Local(LocalError::Refused(_)) => exit::REFUSED,
            Error::Unreachable { .. }
            | Error::HubUnavailable { .. }
            | Error::UnreachableForPairing { .. }
            | Error::UnreachableAnonymous { .. }
            | Error::Local(_) => exit::UNREACHABLE,
            Error::NotPaired { .. } | Error::Unauthenticated(_) => exit::NOT_PAIRED,
            Error::Denied(_) => exit::DENIED,
            Error::LockedOut(_) => exit::LOCKED_OUT,
            Error::Refused(_) => exit::REFUSED,
            Error::Config(_) => exit::CONFIG,
            Error::HubFailed { .. }
            | Error::BadAddress { .. }
            | Error::Tls(_)
            | Error::BadToken(_)
            | Error::MakeToken(_)
            | Error::NoName
            | Error::HubListen(_)
            | Error::Key(_)
            | Error::Csr(_)
            | Error::ReadSecret { .. }
            | Error::Pin(_)
            | Error::Write { .. }
            | Error::Create { .. }
            | Error::Stream(_)
            | Error::BadReport(_)
            | Error::Truncated { .. }
            | Error::Task(_) => exit::FAILED,
        }
    }

    /// Whether trying again cannot help: the hub does not know this client
    /// or will not let it do this (a following stream gives up on these).
    pub fn is_final(&self) -> bool {
        matches!(self.exit_code(), exit::NOT_PAIRED | exit::DENIED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_token_says_so_before_why() {
        let message = Error::BadToken(TokenError::Code).to_string();
        assert!(message.starts_with("not a pairing token: "), "{message}");
        assert!(message.contains("docs/pairing.md"), "{message}");
    }

    #[test]
    fn grpc_codes_map_to_the_documented_exit_codes() {
        let cases = [
            (Code::Unavailable, exit::UNREACHABLE),
            (Code::Unauthenticated, exit::NOT_PAIRED),
            (Code::PermissionDenied, exit::DENIED),
            (Code::ResourceExhausted, exit::LOCKED_OUT),
            (Code::FailedPrecondition, exit::REFUSED),
            (Code::NotFound, exit::REFUSED),
            (Code::InvalidArgument, exit::REFUSED),
            (Code::AlreadyExists, exit::REFUSED),
            (Code::OutOfRange, exit::REFUSED),
            (Code::Internal, exit::FAILED),
        ];
        for (code, want) in cases {
            let e = Error::from_status(&tonic::Status::new(code, "no"), "hub:7443");
            assert_eq!(e.exit_code(), want, "{code:?}");
        }
    }

    #[test]
    fn the_hubs_words_pass_through() {
        let denied = Error::from_status(&tonic::Status::permission_denied("wrong PIN"), "h:1");
        assert_eq!(denied.to_string(), "wrong PIN");
        let down = Error::from_status(&tonic::Status::unavailable("gone"), "h:1");
        assert_eq!(
            down.to_string(),
            "cannot reach the hub at h:1 (gone); is vigil-hub running, and is its gRPC port \
             reachable from here?"
        );
        let other = Error::from_status(&tonic::Status::internal("boom"), "h:1");
        assert_eq!(other.to_string(), "Internal: boom");
    }
}

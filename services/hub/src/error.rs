//! Why the hub stops: every error `run` can return, and the exit code each
//! one stops the process with ([`ExitError`]; the codes are
//! `vigil_service`'s: 1 a runtime failure, systemd restarts the hub; 78 the
//! configuration or a file it names, systemd does not).

use std::path::PathBuf;

use vigil_alarm::users::UserError;
use vigil_bootstrap::BootstrapError;
use vigil_ipc::doorbell::DoorbellError;
use vigil_ipc::process::ProcessError;
use vigil_ipc::table::TableError;
use vigil_service::{ExitError, ExitStatus};

use crate::grpc;
use crate::persist::PersistError;
use crate::pki::PkiError;

/// Why the hub stopped.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// Exit 1: the runtime or state directory cannot be created (its
    /// parent's permissions, a read-only or full disk).
    #[error("cannot create the runtime directory {path}: {source}")]
    RuntimeDir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Exit 1: a process-wide setting made before the threads start
    /// failed: ipc-channel's TMPDIR, malloc's mmap threshold.
    #[error("cannot set up the process before its threads start: {0}")]
    TempDir(#[from] ProcessError),
    /// Exit 78 when the config asks for more sensors, or longer names,
    /// than a table holds; exit 1 for the shared memory itself (memfd,
    /// mmap, the writer semaphore).
    #[error("the sensor table: {0}")]
    Table(#[from] TableError),
    /// Exit 1: the doorbell's signal mask or signalfd.
    #[error(transparent)]
    Doorbell(#[from] DoorbellError),
    /// Exit 1: the bootstrap socket, among them another hub already
    /// running on it.
    #[error(transparent)]
    Bootstrap(#[from] BootstrapError),
    /// Exit 1: a signal handler or a thread.
    #[error("cannot install a signal handler or start a thread: {0}")]
    Signal(std::io::Error),
    /// Exit 78: a user's PIN hash file (`pin_hash_file` or
    /// `duress_pin_hash_file`) cannot be read.
    #[error(
        "users[{index}].{key}: cannot read the PIN hash file {path} (user {user}): {source}; \
         fix: write the PIN's argon2 hash there (`vigilctl hash-pin < pin.txt > {path}`), \
         readable by the hub's user, or point {key} at the file that holds it"
    )]
    PinHashFile {
        /// The user's index in `[[users]]`.
        index: usize,
        user: String,
        /// `pin_hash_file` or `duress_pin_hash_file`.
        key: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// Exit 78 for a configured PIN hash that is not an argon2 hash (the
    /// message says how to make one); exit 1 if hashing itself failed.
    #[error(transparent)]
    User(#[from] UserError),
    /// Exit 1: the saved alarm state cannot be read or is not valid (the
    /// message names the file and what to do).
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// Exit 1: the hub's CA, keys or client registry.
    #[error("the hub's CA or its client registry: {0}")]
    Pki(#[from] PkiError),
    /// Exit 1: the users added over the API (`users.json`) cannot be read
    /// or are damaged (the message names the file and what to do).
    #[error("the users added over the API: {0}")]
    UserStore(#[from] crate::users::UserStoreError),
    /// Exit 1: the hub's or its log's identity file cannot be written.
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    /// Exit 1: the gRPC listener, among them a port another hub holds.
    #[error(transparent)]
    Grpc(#[from] grpc::GrpcError),
    /// Exit 1: the alert queue, among them kernel limits too small for it
    /// (the message names the sysctl or rlimit and the value to set).
    #[error("the alert queue: {0}")]
    Alerts(#[from] vigil_ipc::mqueue::QueueError),
    /// Exit 78: `[alerts] group` names no group of this system.
    #[error(
        "alerts.group: there is no group {name:?} on this system; fix: create it and put alertd's \
         user in it (NixOS does: ARCHITECTURE.md, \"Users and groups\"), or remove the key"
    )]
    NoGroup { name: String },
    /// Exit 1: the event log, among them another process writing it.
    #[error("the event log: {0}")]
    EventLog(#[from] vigil_eventlog::LogError),
    /// Exit 1: the camera port is taken (another hub?) or not allowed.
    #[error("cannot listen for cameras on {addr} (recording.listen): {source}")]
    CameraListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl ExitError for HubError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            HubError::PinHashFile { .. } | HubError::NoGroup { .. } => ExitStatus::Config,
            HubError::User(e) => match e {
                UserError::BadHash { .. } | UserError::BadPin => ExitStatus::Config,
                UserError::Hash(_) => ExitStatus::Failure,
            },
            HubError::Table(e) => match e {
                // What the config asks of the table; vigil-config's own
                // checks normally say it first, with the key.
                TableError::TooManySlots { .. } | TableError::NameTooLong { .. } => {
                    ExitStatus::Config
                }
                TableError::TooSmall { .. }
                | TableError::BadMagic
                | TableError::FormatVersion { .. }
                | TableError::NoSuchSlot { .. }
                | TableError::Torn { .. }
                | TableError::WriterLockTimeout
                | TableError::UnknownCode { .. }
                | TableError::Semaphore(_)
                // Making the memfd can fail for want of memory or
                // descriptors (it may pass); the others are about a table
                // handed over, which the hub never maps.
                | TableError::Memfd { .. }
                | TableError::NotSealable(_)
                | TableError::BadSeals { .. }
                | TableError::WrongSize { .. } => ExitStatus::Failure,
            },
            HubError::RuntimeDir { .. }
            | HubError::TempDir(_)
            | HubError::Doorbell(_)
            | HubError::Bootstrap(_)
            | HubError::Signal(_)
            | HubError::Persist(_)
            | HubError::Pki(_)
            | HubError::Identity(_)
            | HubError::UserStore(_)
            | HubError::Grpc(_)
            | HubError::Alerts(_)
            | HubError::EventLog(_)
            | HubError::CameraListen { .. } => ExitStatus::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn io_error() -> io::Error {
        io::Error::from(io::ErrorKind::PermissionDenied)
    }

    /// One value of every variant (and of the nested variants that decide
    /// the code), with the code it must exit with.
    fn cases() -> Vec<(HubError, u8)> {
        let path = PathBuf::from("/var/lib/vigil");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], 7443));
        vec![
            (
                HubError::RuntimeDir {
                    path: path.clone(),
                    source: io_error(),
                },
                1,
            ),
            (
                HubError::TempDir(ProcessError::NotSingleThreaded {
                    what: "setting TMPDIR",
                    threads: 3,
                }),
                1,
            ),
            (HubError::Table(TableError::TooManySlots { count: 999 }), 78),
            (
                HubError::Table(TableError::NameTooLong {
                    name: "x".repeat(100),
                }),
                78,
            ),
            (HubError::Table(TableError::Semaphore(io_error())), 1),
            (HubError::Table(TableError::BadMagic), 1),
            (
                HubError::Table(TableError::Memfd {
                    what: "create",
                    source: io_error(),
                }),
                1,
            ),
            (HubError::Doorbell(DoorbellError::NotBlocked), 1),
            (
                HubError::Bootstrap(BootstrapError::HubAlreadyRunning {
                    path: "/run/vigil/hub.sock".into(),
                }),
                1,
            ),
            (HubError::Signal(io_error()), 1),
            (
                HubError::PinHashFile {
                    index: 0,
                    user: "alice".into(),
                    key: "pin_hash_file",
                    path: "/run/credentials/vigil-hub.service/alice-pin".into(),
                    source: io::Error::from(io::ErrorKind::NotFound),
                },
                78,
            ),
            (
                HubError::User(UserError::BadHash {
                    user: "alice".into(),
                    message: "not PHC".into(),
                }),
                78,
            ),
            (HubError::User(UserError::BadPin), 78),
            (HubError::User(UserError::Hash("out of memory".into())), 1),
            (
                HubError::Persist(PersistError::Io(crate::files::FileError {
                    what: "read",
                    path: path.join("alarm-state.json"),
                    source: io_error(),
                })),
                1,
            ),
            (HubError::Pki(PkiError::BadCode), 1),
            (
                HubError::Grpc(grpc::GrpcError::Bind {
                    addr,
                    source: io::Error::from(io::ErrorKind::AddrInUse),
                }),
                1,
            ),
            (
                HubError::Alerts(vigil_ipc::mqueue::QueueError::Limits(
                    "fs.mqueue.msg_max is 10".into(),
                )),
                1,
            ),
            (
                HubError::NoGroup {
                    name: "vigil-alerts".into(),
                },
                78,
            ),
            (
                HubError::EventLog(vigil_eventlog::LogError::Locked {
                    path: path.join("events"),
                }),
                1,
            ),
            (
                HubError::CameraListen {
                    addr,
                    source: io::Error::from(io::ErrorKind::AddrInUse),
                },
                1,
            ),
        ]
    }

    #[test]
    fn every_variant_exits_with_its_documented_code() {
        for (error, code) in cases() {
            assert_eq!(error.exit_status().code(), code, "{error:?}");
        }
    }

    #[test]
    fn an_unreadable_pin_hash_file_names_the_key_the_file_and_the_fix() {
        let error = HubError::PinHashFile {
            index: 1,
            user: "bob".into(),
            key: "duress_pin_hash_file",
            path: "/etc/vigil/bob-duress".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let text = error.to_string();
        assert!(
            text.starts_with("users[1].duress_pin_hash_file: cannot read the PIN hash file /etc/vigil/bob-duress (user bob)"),
            "{text}"
        );
        assert!(
            text.contains("fix: write the PIN's argon2 hash there (`vigilctl hash-pin"),
            "{text}"
        );
        assert_eq!(error.exit_status(), ExitStatus::Config);
    }
}

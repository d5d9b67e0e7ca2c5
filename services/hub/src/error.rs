//! Why the hub stops: every error `run` can return.

use vigil_bootstrap::BootstrapError;
use vigil_ipc::doorbell::DoorbellError;
use vigil_ipc::table::TableError;

use crate::grpc;
use crate::persist::PersistError;
use crate::pki::PkiError;

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
    #[error("cannot install a signal handler or start a thread: {0}")]
    Signal(std::io::Error),
    #[error("{0}")]
    Users(String),
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error(transparent)]
    Pki(#[from] PkiError),
    #[error(transparent)]
    Grpc(#[from] grpc::GrpcError),
    #[error("the alert queue: {0}")]
    Alerts(#[from] vigil_ipc::mqueue::QueueError),
    #[error("the event log: {0}")]
    EventLog(#[from] vigil_eventlog::LogError),
    /// The camera port is taken (another hub?) or not allowed.
    #[error("cannot listen for cameras on {addr} (recording.listen): {source}")]
    CameraListen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

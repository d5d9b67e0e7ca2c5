//! The hub side of the rendezvous.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::wire::{Hello, ServiceMessage, ServiceRole};
use crate::{BootstrapError, PROTOCOL};

/// How long a client may take for each step before the hub gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest first line the hub reads.
const MAX_LINE: usize = 256;

/// The hub's well-known socket.
#[derive(Debug)]
pub struct Rendezvous {
    listener: UnixListener,
    path: PathBuf,
    /// The hub's uid: peers must have it, or be root.
    uid: u32,
}

impl Rendezvous {
    /// Listens on `path`, replacing a stale socket left by a hub that died,
    /// but never one that a live hub still answers on. Must be called inside
    /// a tokio runtime.
    pub async fn bind(path: &Path, uid: u32) -> Result<Rendezvous, BootstrapError> {
        if path.exists() {
            match UnixStream::connect(path).await {
                Ok(_) => {
                    return Err(BootstrapError::HubAlreadyRunning {
                        path: path.to_owned(),
                    });
                }
                Err(_) => {
                    std::fs::remove_file(path).map_err(|e| {
                        BootstrapError::io(format!("cannot remove stale {}", path.display()), e)
                    })?;
                }
            }
        }
        let listener = UnixListener::bind(path)
            .map_err(|e| BootstrapError::io(format!("cannot listen on {}", path.display()), e))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
            .map_err(|e| BootstrapError::io(format!("chmod {}", path.display()), e))?;
        Ok(Rendezvous {
            listener,
            path: path.to_owned(),
            uid,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next client and reads its first line. Errors here are
    /// about one client; the caller logs them and keeps accepting.
    pub async fn accept(&self) -> Result<PendingSession, BootstrapError> {
        let (stream, _) = self
            .listener
            .accept()
            .await
            .map_err(|e| BootstrapError::io("accept on the bootstrap socket", e))?;
        let cred = stream
            .peer_cred()
            .map_err(|e| BootstrapError::io("SO_PEERCRED", e))?;
        let mut pending = PendingSession {
            stream: BufReader::new(stream),
            peer_uid: cred.uid(),
            peer_pid: cred.pid().and_then(|p| u32::try_from(p).ok()),
            role: ServiceRole::Reader,
        };
        if cred.uid() != self.uid && cred.uid() != 0 {
            let reason = format!(
                "uid {} may not connect; run the service as uid {} (the hub's user) or root",
                cred.uid(),
                self.uid
            );
            pending.refuse(&reason).await;
            return Err(BootstrapError::Refused { reason });
        }
        let line = match tokio::time::timeout(STEP_TIMEOUT, pending.read_line()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(BootstrapError::Timeout {
                    step: "reading the client's first line",
                });
            }
        };
        let mut words = line.split_ascii_whitespace();
        let (protocol, role, pid) = (words.next(), words.next(), words.next());
        if protocol != Some(PROTOCOL) {
            let reason = format!("expected {PROTOCOL}, got {line:?}; run one Vigil release");
            pending.refuse(&reason).await;
            return Err(BootstrapError::Protocol { detail: reason });
        }
        let Some(role) = role.and_then(ServiceRole::parse) else {
            let reason = format!("unknown role in {line:?}");
            pending.refuse(&reason).await;
            return Err(BootstrapError::Protocol { detail: reason });
        };
        let claimed_pid = pid.and_then(|p| p.parse::<u32>().ok());
        if claimed_pid.is_none() || (pending.peer_pid.is_some() && claimed_pid != pending.peer_pid)
        {
            let reason = format!("the pid in {line:?} is not the connecting process's");
            pending.refuse(&reason).await;
            return Err(BootstrapError::Protocol { detail: reason });
        }
        pending.peer_pid = claimed_pid;
        pending.role = role;
        Ok(pending)
    }
}

impl Drop for Rendezvous {
    fn drop(&mut self) {
        // A clean shutdown leaves no stale socket behind.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A client that has said who it is but is not admitted yet.
#[derive(Debug)]
pub struct PendingSession {
    stream: BufReader<UnixStream>,
    pub peer_uid: u32,
    /// The client's pid, as the kernel reports it.
    pub peer_pid: Option<u32>,
    pub role: ServiceRole,
}

/// An admitted client: its hello (with the reply sender) and the receiver
/// for its messages, which reports disconnection when it exits.
#[derive(Debug)]
pub struct Admitted {
    pub hello: Hello,
    pub from_service: IpcReceiver<ServiceMessage>,
}

impl PendingSession {
    async fn read_line(&mut self) -> Result<String, BootstrapError> {
        let mut line = String::new();
        let n = (&mut self.stream)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await
            .map_err(|e| BootstrapError::io("reading the client's first line", e))?;
        if n == 0 {
            return Err(BootstrapError::Disconnected {
                step: "reading the client's first line",
            });
        }
        Ok(line.trim_end().to_owned())
    }

    /// Says no, with a reason the client shows to its operator.
    pub async fn refuse(&mut self, reason: &str) {
        let line = format!("ERR {}\n", reason.replace('\n', " "));
        let _ = self.stream.get_mut().write_all(line.as_bytes()).await;
    }

    /// Opens the ipc-channel side and waits for the client's hello.
    pub async fn admit(mut self) -> Result<Admitted, BootstrapError> {
        let (server, name) = IpcOneShotServer::<ServiceMessage>::new()
            .map_err(|e| BootstrapError::io("cannot create an ipc-channel server", e))?;
        let accept = tokio::task::spawn_blocking(move || server.accept());
        self.stream
            .get_mut()
            .write_all(format!("OK {name}\n").as_bytes())
            .await
            .map_err(|e| BootstrapError::io("answering the client", e))?;
        let accepted = match tokio::time::timeout(STEP_TIMEOUT, accept).await {
            Ok(joined) => joined.map_err(|e| BootstrapError::Protocol {
                detail: format!("accept task failed: {e}"),
            })?,
            Err(_) => {
                // Release the blocking accept by connecting to it ourselves.
                if let Ok(tx) = IpcSender::<ServiceMessage>::connect(name) {
                    let _ = tx.send(ServiceMessage::Abandon);
                }
                return Err(BootstrapError::Timeout {
                    step: "waiting for the client's hello",
                });
            }
        };
        let (from_service, first) = accepted.map_err(|e| BootstrapError::Protocol {
            detail: format!("no hello: {e:?}"),
        })?;
        match first {
            ServiceMessage::Hello(hello)
                if hello.role == self.role && Some(hello.pid) == self.peer_pid =>
            {
                Ok(Admitted {
                    hello,
                    from_service,
                })
            }
            other => Err(BootstrapError::Protocol {
                detail: format!("expected the hello the first line announced, got {other:?}"),
            }),
        }
    }
}

//! The hub side of the rendezvous.

use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipc_channel::ipc::{IpcOneShotServer, IpcReceiver, IpcSender};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::wire::{Hello, ServiceMessage, ServiceRole};
use crate::{BootstrapError, PROTOCOL};

/// How long a client may take to say its first line: it writes it as soon
/// as it connects, so a client still silent after this is dropped.
pub const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to send its hello on the ipc-channel.
const STEP_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest first line the hub reads.
const MAX_LINE: usize = 256;

/// The hub's well-known socket.
#[derive(Debug)]
pub struct Rendezvous {
    listener: UnixListener,
    path: PathBuf,
    /// The hub's uid: peers must have it, or be root, or be in `group`.
    uid: u32,
    /// alertd's group, when alertd runs under a uid of its own: the socket
    /// belongs to it, and its members may join, as alertd only.
    group: Option<AlertdGroup>,
}

impl Rendezvous {
    /// Listens on `path`, replacing a stale socket left by a hub that died,
    /// but never one that a live hub still answers on. Must be called inside
    /// a tokio runtime.
    pub async fn bind(path: &Path, uid: u32) -> Result<Rendezvous, BootstrapError> {
        Rendezvous::bind_for(path, uid, None).await
    }

    /// [`Rendezvous::bind`], and with `alertd_group` the socket is given to
    /// that group (mode 0660): a member of another uid may join, as
    /// [`ServiceRole::Alertd`] and nothing else. Everyone else is refused
    /// by the socket's mode before the hub hears of them, and by their
    /// credentials if they hold a descriptor anyway.
    pub async fn bind_for(
        path: &Path,
        uid: u32,
        alertd_group: Option<AlertdGroup>,
    ) -> Result<Rendezvous, BootstrapError> {
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
        if let Some(AlertdGroup { gid, .. }) = &alertd_group {
            let gid = *gid;
            std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| {
                BootstrapError::io(
                    format!(
                        "cannot give {} to group {gid} (the hub's user must be in alertd's group)",
                        path.display()
                    ),
                    e,
                )
            })?;
        }
        Ok(Rendezvous {
            listener,
            path: path.to_owned(),
            uid,
            group: alertd_group,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits for the next client: the accept and its credentials, nothing
    /// it has to say (that is [`Incoming::greet`], which the caller runs
    /// concurrently, so a client that stays silent delays nobody). An error
    /// is the listener's (no descriptor left: EMFILE): the caller backs off.
    pub async fn accept(&self) -> std::io::Result<Incoming> {
        let (stream, _) = self.listener.accept().await?;
        // No credentials: refused by greet.
        let cred = stream.peer_cred().ok();
        Ok(Incoming {
            stream,
            peer_uid: cred.map(|c| c.uid()),
            peer_gid: cred.map(|c| c.gid()),
            peer_pid: cred
                .and_then(|c| c.pid())
                .and_then(|p| u32::try_from(p).ok()),
            hub_uid: self.uid,
            group: self.group.clone(),
        })
    }
}

/// alertd's group, when alertd runs under a uid of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertdGroup {
    pub gid: u32,
    /// The uids the group database lists as its members (supplementary);
    /// a peer whose primary group it is is a member too. (Not read from
    /// /proc/PID/status: the hub's unit hides other users' processes.)
    pub members: Vec<u32>,
}

impl AlertdGroup {
    fn has(&self, uid: u32, gid: Option<u32>) -> bool {
        gid == Some(self.gid) || self.members.contains(&uid)
    }
}

/// A client just accepted: who the kernel says it is, nothing read yet.
#[derive(Debug)]
pub struct Incoming {
    stream: UnixStream,
    peer_uid: Option<u32>,
    peer_gid: Option<u32>,
    peer_pid: Option<u32>,
    hub_uid: u32,
    group: Option<AlertdGroup>,
}

impl Incoming {
    /// The client's pid, as the kernel reports it.
    pub fn peer_pid(&self) -> Option<u32> {
        self.peer_pid
    }

    /// Checks the client's credentials and reads its first line within
    /// [`FIRST_LINE_TIMEOUT`]. Errors are about this client only.
    pub async fn greet(self) -> Result<PendingSession, BootstrapError> {
        let mut pending = PendingSession {
            stream: BufReader::new(self.stream),
            peer_uid: self.peer_uid.unwrap_or(u32::MAX),
            peer_pid: self.peer_pid,
            role: ServiceRole::Reader,
            share_with: None,
        };
        let Some(uid) = self.peer_uid else {
            let reason = "the kernel did not say who is connecting (SO_PEERCRED)".to_owned();
            pending.refuse(&reason).await;
            return Err(BootstrapError::Refused { reason });
        };
        // A peer of another uid may only be alertd, and only as a member
        // of alertd's group.
        let alertd_only = uid != self.hub_uid && uid != 0;
        if alertd_only {
            let member = (self.group.as_ref())
                .filter(|group| group.has(uid, self.peer_gid))
                .map(|group| group.gid);
            let Some(group) = member else {
                let reason = format!(
                    "uid {uid} may not connect; run the service as uid {} (the hub's user) or \
                     root{}",
                    self.hub_uid,
                    if self.group.is_some() {
                        ", or alertd as a member of alertd's group ([alerts] group)"
                    } else {
                        ""
                    }
                );
                pending.refuse(&reason).await;
                return Err(BootstrapError::Refused { reason });
            };
            pending.share_with = Some(group);
        }
        let line = match tokio::time::timeout(FIRST_LINE_TIMEOUT, pending.read_line()).await {
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
        if alertd_only && role != ServiceRole::Alertd {
            let reason = format!(
                "uid {uid} may join only as alertd, not as {}",
                role.as_str()
            );
            pending.refuse(&reason).await;
            return Err(BootstrapError::Refused { reason });
        }
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
    /// alertd's group, when the client is a member of another uid: the
    /// ipc-channel server it connects to next is opened to that group.
    share_with: Option<u32>,
}

/// An admitted client: its hello (with the reply sender) and the receiver
/// for its messages, which reports disconnection when it exits.
#[derive(Debug)]
pub struct Admitted {
    pub hello: Hello,
    pub from_service: IpcReceiver<ServiceMessage>,
    /// The client's `hub.sock` connection, kept to hand it the table.
    socket: std::os::unix::net::UnixStream,
}

/// The byte the table's memfd rides on.
pub(crate) const TABLE_BYTE: u8 = b'T';

impl Admitted {
    /// Hands the client the sensor table's memfd on its `hub.sock`
    /// connection; send it before the [`crate::HubMessage::Welcome`], which
    /// tells the client to take it. Never blocks: the client sent its hello
    /// and is waiting, and nothing else was written to it since `OK`.
    pub fn hand_table(&self, table: impl AsFd) -> Result<(), BootstrapError> {
        vigil_ipc::fdpass::send_fd(&self.socket, TABLE_BYTE, table)
            .map_err(|e| BootstrapError::io("handing the client the sensor table", e))
    }
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

    /// Opens the ipc-channel side and waits for the client's hello. Safe to
    /// drop at any point (the hub drops a client to make room): the
    /// blocking accept of the ipc-channel server is released, never left
    /// waiting on a thread.
    pub async fn admit(mut self) -> Result<Admitted, BootstrapError> {
        let (server, name) = IpcOneShotServer::<ServiceMessage>::new()
            .map_err(|e| BootstrapError::io("cannot create an ipc-channel server", e))?;
        if let Some(gid) = self.share_with {
            open_to_group(Path::new(&name), gid)?;
        }
        let accept = tokio::task::spawn_blocking(move || server.accept());
        let mut release = Release(Some(name.clone()));
        self.stream
            .get_mut()
            .write_all(format!("OK {name}\n").as_bytes())
            .await
            .map_err(|e| BootstrapError::io("answering the client", e))?;
        let accepted = match tokio::time::timeout(STEP_TIMEOUT, accept).await {
            Ok(joined) => {
                release.0 = None;
                joined.map_err(|e| BootstrapError::Protocol {
                    detail: format!("accept task failed: {e}"),
                })?
            }
            Err(_) => {
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
                // Out of tokio: the hub sends one byte on it, from its event
                // loop, when it welcomes the client (non-blocking, as tokio
                // left it).
                let socket = self
                    .stream
                    .into_inner()
                    .into_std()
                    .map_err(|e| BootstrapError::io("keeping the client's connection", e))?;
                Ok(Admitted {
                    hello,
                    from_service,
                    socket,
                })
            }
            other => Err(BootstrapError::Protocol {
                detail: format!("expected the hello the first line announced, got {other:?}"),
            }),
        }
    }
}

/// Opens an ipc-channel one-shot server (`<TMPDIR>/.tmpXXXX/socket`, its
/// directory made 0700 by ipc-channel) to `gid`: the directory 0710 (enter,
/// not list), the socket 0660. Only the client just admitted learns the
/// random name, and the server takes one connection, whose hello must come
/// from that client's pid.
fn open_to_group(socket: &Path, gid: u32) -> Result<(), BootstrapError> {
    let dir = socket.parent().ok_or_else(|| BootstrapError::Protocol {
        detail: format!(
            "the ipc-channel server {} has no directory",
            socket.display()
        ),
    })?;
    for (path, mode) in [(dir, 0o710), (socket, 0o660)] {
        std::os::unix::fs::chown(path, None, Some(gid))
            .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)))
            .map_err(|e| {
                BootstrapError::io(
                    format!("cannot open {} to alertd's group", path.display()),
                    e,
                )
            })?;
    }
    Ok(())
}

/// Releases a blocking `IpcOneShotServer::accept` that nobody will connect
/// to any more, by connecting to it (unless disarmed).
struct Release(Option<String>);

impl Drop for Release {
    fn drop(&mut self) {
        if let Some(name) = self.0.take()
            && let Ok(tx) = IpcSender::<ServiceMessage>::connect(name)
        {
            let _ = tx.send(ServiceMessage::Abandon);
        }
    }
}

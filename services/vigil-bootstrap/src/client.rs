//! The service side of the rendezvous. Blocking: call it from a blocking
//! thread (`tokio::task::spawn_blocking`) or a plain program.

use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use ipc_channel::TryRecvError;
use ipc_channel::ipc::{self, IpcReceiver, IpcSender};

use crate::wire::{Hello, HubMessage, ServiceMessage, ServiceRole, Welcome};
use crate::{BootstrapError, PROTOCOL};

/// An established session with the hub.
#[derive(Debug)]
pub struct Session {
    pub welcome: Welcome,
    /// The sensor table's memfd, as the hub handed it: map it with
    /// `vigil_ipc::table::SensorTable::from_fd`, which checks its seals and
    /// size before mapping it.
    pub table: OwnedFd,
    /// Messages to the hub.
    pub to_hub: IpcSender<ServiceMessage>,
    /// Messages from the hub; reports disconnection when the hub exits.
    pub from_hub: IpcReceiver<HubMessage>,
}

/// Connects to the hub listening on `socket` as `role`, waiting at most
/// `timeout` for each step.
pub fn connect(
    socket: &Path,
    role: ServiceRole,
    timeout: Duration,
) -> Result<Session, BootstrapError> {
    let stream = UnixStream::connect(socket).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused => {
            BootstrapError::HubNotRunning {
                path: socket.to_owned(),
            }
        }
        _ => BootstrapError::io(format!("cannot connect to {}", socket.display()), e),
    })?;
    let io_err = |e| BootstrapError::io("bootstrap socket", e);
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    let pid = std::process::id();
    (&stream)
        .write_all(format!("{PROTOCOL} {} {pid}\n", role.as_str()).as_bytes())
        .map_err(io_err)?;

    let mut line = String::new();
    BufReader::new(&stream)
        .read_line(&mut line)
        .map_err(|e| match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => BootstrapError::Timeout {
                step: "waiting for the hub's answer",
            },
            _ => io_err(e),
        })?;
    let line = line.trim_end();
    let server_name = if let Some(name) = line.strip_prefix("OK ") {
        name.to_owned()
    } else if let Some(reason) = line.strip_prefix("ERR ") {
        return Err(BootstrapError::Refused {
            reason: reason.to_owned(),
        });
    } else if line.is_empty() {
        return Err(BootstrapError::Disconnected {
            step: "waiting for the hub's answer",
        });
    } else {
        return Err(BootstrapError::Protocol {
            detail: format!("unexpected answer {line:?}"),
        });
    };

    let to_hub = IpcSender::<ServiceMessage>::connect(server_name)
        .map_err(|e| BootstrapError::io("cannot reach the hub's ipc-channel server", e))?;
    let (reply, from_hub) =
        ipc::channel::<HubMessage>().map_err(|e| BootstrapError::io("ipc channel", e))?;
    to_hub
        .send(ServiceMessage::Hello(Hello {
            role,
            pid,
            release: env!("CARGO_PKG_VERSION").to_owned(),
            reply,
        }))
        .map_err(|_| BootstrapError::Disconnected {
            step: "sending hello",
        })?;
    let welcome = match from_hub.try_recv_timeout(timeout) {
        Ok(HubMessage::Welcome(w)) => w,
        Ok(HubMessage::Refused { reason }) => return Err(BootstrapError::Refused { reason }),
        Ok(other) => {
            return Err(BootstrapError::Protocol {
                detail: format!("expected a welcome, got {other:?}"),
            });
        }
        Err(TryRecvError::Empty) => {
            return Err(BootstrapError::Timeout {
                step: "waiting for the welcome",
            });
        }
        Err(TryRecvError::IpcError(_)) => {
            return Err(BootstrapError::Disconnected {
                step: "waiting for the welcome",
            });
        }
    };
    let table = match vigil_ipc::fdpass::recv_fd(&stream) {
        Ok((crate::hub::TABLE_BYTE, Some(fd))) => fd,
        Ok(_) => {
            return Err(BootstrapError::Protocol {
                detail: "the hub's welcome came without the sensor table on hub.sock".to_owned(),
            });
        }
        Err(e) => {
            return Err(match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => BootstrapError::Timeout {
                    step: "waiting for the sensor table",
                },
                io::ErrorKind::UnexpectedEof => BootstrapError::Disconnected {
                    step: "waiting for the sensor table",
                },
                _ => io_err(e),
            });
        }
    };
    Ok(Session {
        welcome,
        table,
        to_hub,
        from_hub,
    })
}

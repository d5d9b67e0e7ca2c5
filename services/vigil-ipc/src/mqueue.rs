//! A POSIX message queue with priorities, registered with tokio (on Linux a
//! queue descriptor is pollable: readable when a message waits, writable
//! when there is room).
//!
//! Both ends open with `O_CREAT` and the same attributes, so either may
//! start first; the queue lives in the kernel (`/dev/mqueue`) and outlives
//! both, which is what lets alerts wait for a restarting reader. Names live
//! in one global namespace: configure a distinct one per installation.

use std::io;

use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, MqdT, mq_getattr, mq_open, mq_receive, mq_send};
use nix::sys::resource::{Resource, getrlimit};
use nix::sys::stat::Mode;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Why the queue cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// The kernel's limits are too small for the queue asked for; the
    /// message names the sysctl or rlimit and the value to set.
    #[error("{0}")]
    Limits(String),
    #[error(
        "the queue {name} exists with {found} messages of {found_size} bytes, not {depth} of {size}; remove it (rm /dev/mqueue{name}) or use its size"
    )]
    Mismatch {
        name: String,
        depth: i64,
        size: i64,
        found: i64,
        found_size: i64,
    },
    #[error("POSIX message queue {name}: {source}")]
    Os {
        name: String,
        #[source]
        source: io::Error,
    },
}

/// The queue is full (send) — the caller decides what to drop or retry.
#[derive(Debug, PartialEq, Eq)]
pub struct Full;

/// Reads a number from a /proc file.
fn proc_number(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Checks, before opening, that an unprivileged process may make a queue of
/// `depth` messages of `msg_size` bytes, and says exactly what to raise if
/// not. (A process with CAP_SYS_RESOURCE, like root, is not bound by
/// `msg_max`, which is how a test as root can hide the problem.)
pub fn check_limits(depth: i64, msg_size: i64) -> Result<(), QueueError> {
    let privileged = nix::unistd::geteuid().is_root();
    let mut problems = Vec::new();
    if !privileged {
        if let Some(max) = proc_number("/proc/sys/fs/mqueue/msg_max")
            && max < depth
        {
            problems.push(format!(
                "the alert queue needs {depth} messages but fs.mqueue.msg_max is {max}: set \
                 `sysctl -w fs.mqueue.msg_max={depth}` (NixOS: boot.kernel.sysctl.\"fs.mqueue.msg_max\" = {depth})"
            ));
        }
        if let Some(max) = proc_number("/proc/sys/fs/mqueue/msgsize_max")
            && max < msg_size
        {
            problems.push(format!(
                "the alert queue needs messages of {msg_size} bytes but fs.mqueue.msgsize_max is \
                 {max}: set `sysctl -w fs.mqueue.msgsize_max={msg_size}`"
            ));
        }
    }
    // The kernel charges each queue about its messages plus a pointer each.
    let needed = depth * (msg_size + 8) + 4096;
    if let Ok((soft, _hard)) = getrlimit(Resource::RLIMIT_MSGQUEUE)
        && (soft as i64) < needed
        && soft != nix::sys::resource::RLIM_INFINITY
    {
        problems.push(format!(
            "the alert queue needs about {needed} bytes but RLIMIT_MSGQUEUE is {soft}: raise it \
             (systemd: LimitMSGQUEUE={needed}; shell: ulimit -q {needed})"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(QueueError::Limits(problems.join("; ")))
    }
}

/// One end of a queue.
#[derive(Debug)]
pub struct MessageQueue {
    name: String,
    fd: AsyncFd<MqdT>,
    msg_size: usize,
}

impl MessageQueue {
    /// Opens (creating if needed, mode 0660) queue `name` ("/vigil-alerts")
    /// of `depth` messages of `msg_size` bytes, non-blocking, for reading
    /// and writing. Must be called inside a tokio runtime.
    pub fn open(name: &str, depth: i64, msg_size: i64) -> Result<MessageQueue, QueueError> {
        check_limits(depth, msg_size)?;
        let os = |source: Errno| QueueError::Os {
            name: name.to_owned(),
            source: io::Error::from(source),
        };
        let attr = MqAttr::new(0, depth, msg_size, 0);
        let mqd = mq_open(
            name,
            MQ_OFlag::O_CREAT | MQ_OFlag::O_RDWR | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o660),
            Some(&attr),
        )
        .map_err(|e| match e {
            Errno::EMFILE => QueueError::Limits(format!(
                "the kernel refused a queue of {depth} messages of {msg_size} bytes: this user's \
                 RLIMIT_MSGQUEUE, shared by all of its queues, is used up ({e}); raise it \
                 (systemd: LimitMSGQUEUE=; shell: ulimit -q) or remove stale queues \
                 (mount -t mqueue none /dev/mqueue; ls /dev/mqueue)"
            )),
            Errno::EINVAL | Errno::ENOMEM => QueueError::Limits(format!(
                "the kernel refused a queue of {depth} messages of {msg_size} bytes ({e}); \
                 check fs.mqueue.msg_max, fs.mqueue.msgsize_max and RLIMIT_MSGQUEUE"
            )),
            e => os(e),
        })?;
        let found = mq_getattr(&mqd).map_err(os)?;
        if found.maxmsg() != depth || found.msgsize() != msg_size {
            return Err(QueueError::Mismatch {
                name: name.to_owned(),
                depth,
                size: msg_size,
                found: found.maxmsg(),
                found_size: found.msgsize(),
            });
        }
        // SAFETY: `mqd` owns its descriptor and moves into the AsyncFd,
        // which keeps it open (and registered) until the AsyncFd is dropped;
        // nothing else closes or replaces it meanwhile.
        let fd = unsafe {
            AsyncFd::register_with_interest(mqd, Interest::READABLE | Interest::WRITABLE)
        }
        .map_err(|e| QueueError::Os {
            name: name.to_owned(),
            source: e.into(),
        })?;
        Ok(MessageQueue {
            name: name.to_owned(),
            fd,
            msg_size: usize::try_from(msg_size).unwrap_or(8192),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The largest message.
    pub fn msg_size(&self) -> usize {
        self.msg_size
    }

    /// Sends without waiting; `Err(Ok(Full))` when there is no room.
    pub fn try_send(&self, priority: u32, message: &[u8]) -> Result<Result<(), Full>, QueueError> {
        match mq_send(self.fd.get_ref(), message, priority) {
            Ok(()) => Ok(Ok(())),
            Err(Errno::EAGAIN) => Ok(Err(Full)),
            Err(e) => Err(QueueError::Os {
                name: self.name.clone(),
                source: e.into(),
            }),
        }
    }

    /// Waits until the queue has room (after a [`Full`]).
    pub async fn writable(&self) -> io::Result<()> {
        let mut guard = self.fd.writable().await?;
        guard.clear_ready();
        Ok(())
    }

    /// Waits for the highest-priority message; returns it and its priority.
    pub async fn recv(&self) -> Result<(u32, Vec<u8>), QueueError> {
        let mut buf = vec![0u8; self.msg_size];
        loop {
            let mut guard = self.fd.readable().await.map_err(|e| QueueError::Os {
                name: self.name.clone(),
                source: e,
            })?;
            let mut priority = 0u32;
            match mq_receive(guard.get_inner(), &mut buf, &mut priority) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok((priority, buf));
                }
                Err(Errno::EAGAIN) => guard.clear_ready(),
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    return Err(QueueError::Os {
                        name: self.name.clone(),
                        source: e.into(),
                    });
                }
            }
        }
    }

    /// Removes the queue's name (tests; an installation keeps its queue).
    pub fn unlink(name: &str) {
        let _ = nix::mqueue::mq_unlink(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn priorities_order_delivery_and_a_full_queue_says_so() {
        let name = format!("/vigil-test-{}", std::process::id());
        MessageQueue::unlink(&name);
        let q = MessageQueue::open(&name, 4, 128).expect("open");
        for (p, m) in [(0u32, "info"), (30, "alarm"), (10, "fault"), (20, "tamper")] {
            assert_eq!(q.try_send(p, m.as_bytes()).expect("send"), Ok(()));
        }
        assert_eq!(q.try_send(0, b"fifth").expect("send"), Err(Full));
        let mut order = Vec::new();
        for _ in 0..4 {
            let (p, m) = q.recv().await.expect("recv");
            order.push((p, String::from_utf8(m).expect("utf8")));
        }
        assert_eq!(
            order,
            [
                (30, "alarm".to_owned()),
                (20, "tamper".to_owned()),
                (10, "fault".to_owned()),
                (0, "info".to_owned())
            ]
        );
        // A second opener with other attributes is told so.
        assert!(matches!(
            MessageQueue::open(&name, 8, 128),
            Err(QueueError::Mismatch { .. })
        ));
        MessageQueue::unlink(&name);
    }
}

//! A POSIX message queue with priorities, registered with tokio (on Linux a
//! queue descriptor is pollable: readable when a message waits, writable
//! when there is room).
//!
//! Names live in one global namespace that every local user can create in,
//! so the queue has one owner: the hub makes it exclusively
//! ([`MessageQueue::create_owned`], `O_CREAT | O_EXCL`, mode 0660 less the
//! umask) and, when the name already exists, uses it only if it is its own
//! (its owner is the hub's user and others have no access, checked with
//! `fstat` on the queue descriptor itself); otherwise it refuses, naming the
//! queue, its owner and the fix. A queue made by another user would let
//! that user post forged alerts and read (steal) the real ones. The reader
//! ([`MessageQueue::open_existing`]) never creates it: it waits for the
//! hub's. The queue lives in the kernel (`/dev/mqueue`) and outlives both
//! ends, which is what lets alerts wait for a restarting reader.
//!
//! Who can read the queue can read every alert (and its delivery token).
//! With no group given, that is the hub's user, and the members of the
//! hub's group when the umask leaves the group's bits. With a group
//! ([`MessageQueue::create_owned`]'s `group`: alertd under a uid of its own),
//! the hub gives the queue to that group with mode 0640 whether it made it
//! or found its own: the group's members (alertd) may read it, never post
//! to it, and every other user (a hook's) may not open it at all.

use std::io;

use nix::errno::Errno;
use nix::mqueue::{MQ_OFlag, MqAttr, MqdT, mq_getattr, mq_open, mq_receive, mq_send};
use nix::sys::resource::{Resource, getrlimit};
use std::os::fd::AsFd;

use nix::sys::stat::{Mode, fstat};
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
    #[error(
        "the alert queue {name} already exists and is not this hub's: it belongs to uid {owner_uid}{owner} \
         with mode {mode:04o}, and the hub (uid {ours}) uses only a queue it owns that others cannot \
         open. Another user may have made it to read or forge alerts. Remove it \
         (`rm /dev/mqueue{name}` as root or its owner; mount -t mqueue none /dev/mqueue if that \
         directory is empty) and start the hub again, or set another [alerts] queue name"
    )]
    NotOurs {
        name: String,
        owner_uid: u32,
        /// " (name)" when the owner has a name.
        owner: String,
        mode: u32,
        ours: u32,
    },
    #[error(
        "the alert queue {name} exists but this user may not open it ({source}); it is not the \
         hub's. Remove it (`rm /dev/mqueue{name}` as root or its owner) and start the hub again"
    )]
    Forbidden {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("the alert queue {name} does not exist yet (the hub makes it)")]
    Missing { name: String },
    #[error(
        "the alert queue {name} has mode {mode:04o}: any local user may post to it or read it; \
         refusing it (remove it and let the hub make it again)"
    )]
    OpenToOthers { name: String, mode: u32 },
    #[error(
        "cannot give the alert queue {name} to group {gid} ({source}); the hub's user must be \
         a member of that group ([alerts] group)"
    )]
    Group {
        name: String,
        gid: u32,
        #[source]
        source: io::Error,
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

fn os(name: &str, source: Errno) -> QueueError {
    QueueError::Os {
        name: name.to_owned(),
        source: io::Error::from(source),
    }
}

/// What an `mq_open` error means, with what to set when it is a limit.
fn open_error(name: &str, depth: i64, msg_size: i64, e: Errno) -> QueueError {
    match e {
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
        e => os(name, e),
    }
}

/// " (name)" of `uid`, or nothing.
fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| format!(" ({})", u.name))
        .unwrap_or_default()
}

/// The queue exists and this user cannot even open it: say whose it is,
/// from /dev/mqueue when that is mounted.
fn not_ours_by_path(name: &str, e: Errno) -> QueueError {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(format!("/dev/mqueue{name}")) {
        Ok(m) => QueueError::NotOurs {
            name: name.to_owned(),
            owner_uid: m.uid(),
            owner: user_name(m.uid()),
            mode: m.mode() & 0o7777,
            ours: nix::unistd::geteuid().as_raw(),
        },
        Err(_) => QueueError::Forbidden {
            name: name.to_owned(),
            source: io::Error::from(e),
        },
    }
}

/// An existing queue is the hub's only if this user owns it and others
/// have no access to it (checked on the descriptor we hold, so the queue
/// checked is the queue used).
fn check_owner(name: &str, mqd: &MqdT) -> Result<(), QueueError> {
    let stat = fstat(mqd.as_fd()).map_err(|e| os(name, e))?;
    let ours = nix::unistd::geteuid().as_raw();
    let mode = stat.st_mode & 0o7777;
    if stat.st_uid == ours && mode & 0o007 == 0 {
        return Ok(());
    }
    Err(QueueError::NotOurs {
        name: name.to_owned(),
        owner_uid: stat.st_uid,
        owner: user_name(stat.st_uid),
        mode,
        ours,
    })
}

/// Gives the queue (checked to be the hub's) to `gid`, mode 0640: the
/// group may read, only the owner may post. On the descriptor, so the queue
/// changed is the queue checked; the mode first, so no moment lets the new
/// group post.
fn give_to_group(name: &str, mqd: &MqdT, gid: nix::unistd::Gid) -> Result<(), QueueError> {
    nix::sys::stat::fchmod(mqd.as_fd(), Mode::from_bits_truncate(0o640))
        .map_err(|e| os(name, e))?;
    nix::unistd::fchown(mqd.as_fd(), None, Some(gid)).map_err(|e| QueueError::Group {
        name: name.to_owned(),
        gid: gid.as_raw(),
        source: io::Error::from(e),
    })
}

/// A queue descriptor that is closed when dropped. nix's `MqdT` is not:
/// dropping one leaks the descriptor (a hub that reopened its queue on
/// every error would run out of descriptors).
#[derive(Debug)]
struct OwnedMqd(std::mem::ManuallyDrop<MqdT>);

impl OwnedMqd {
    fn new(mqd: MqdT) -> Self {
        OwnedMqd(std::mem::ManuallyDrop::new(mqd))
    }
}

impl std::ops::Deref for OwnedMqd {
    type Target = MqdT;
    fn deref(&self) -> &MqdT {
        &self.0
    }
}

impl std::os::fd::AsRawFd for OwnedMqd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0.as_raw_fd()
    }
}

impl Drop for OwnedMqd {
    fn drop(&mut self) {
        // SAFETY: the descriptor is taken out exactly once, here, as the
        // wrapper is dropped; nothing can use `self.0` afterwards.
        let mqd = unsafe { std::mem::ManuallyDrop::take(&mut self.0) };
        // A close that fails leaves nothing to do: the descriptor is gone.
        let _ = nix::mqueue::mq_close(mqd);
    }
}

/// One end of a queue.
#[derive(Debug)]
pub struct MessageQueue {
    name: String,
    fd: AsyncFd<OwnedMqd>,
    msg_size: usize,
}

impl MessageQueue {
    /// The hub's end: makes queue `name` ("/vigil-alerts") of `depth`
    /// messages of `msg_size` bytes exclusively, or reuses it if it exists
    /// and is this user's with no access for others (a queue left by an
    /// earlier hub keeps its alerts); refuses anyone else's. With `group`,
    /// the queue is then given to that group, mode 0640 (its members read,
    /// nobody but the hub posts); without, its mode is as made (0660 less
    /// the umask). Non-blocking, read and write. Must be called inside a
    /// tokio runtime.
    pub fn create_owned(
        name: &str,
        depth: i64,
        msg_size: i64,
        group: Option<nix::unistd::Gid>,
    ) -> Result<MessageQueue, QueueError> {
        check_limits(depth, msg_size)?;
        let attr = MqAttr::new(0, depth, msg_size, 0);
        let flags = MQ_OFlag::O_RDWR | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
        let mqd = match mq_open(
            name,
            flags | MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL,
            Mode::from_bits_truncate(0o660),
            Some(&attr),
        ) {
            Ok(mqd) => OwnedMqd::new(mqd),
            Err(Errno::EEXIST) => {
                let mqd = mq_open(name, flags, Mode::empty(), None).map_err(|e| match e {
                    Errno::EACCES | Errno::EPERM => not_ours_by_path(name, e),
                    e => open_error(name, depth, msg_size, e),
                })?;
                let mqd = OwnedMqd::new(mqd);
                check_owner(name, &mqd)?;
                mqd
            }
            Err(e) => return Err(open_error(name, depth, msg_size, e)),
        };
        if let Some(gid) = group {
            give_to_group(name, &mqd, gid)?;
        }
        MessageQueue::register(name, mqd, depth, msg_size)
    }

    /// The reader's end (alertd): opens the hub's queue, never creating it
    /// ([`QueueError::Missing`] until the hub has made it), and refuses one
    /// that others may open. Non-blocking, read only. Must be called inside
    /// a tokio runtime.
    pub fn open_existing(
        name: &str,
        depth: i64,
        msg_size: i64,
    ) -> Result<MessageQueue, QueueError> {
        let flags = MQ_OFlag::O_RDONLY | MQ_OFlag::O_NONBLOCK | MQ_OFlag::O_CLOEXEC;
        let mqd = mq_open(name, flags, Mode::empty(), None).map_err(|e| match e {
            Errno::ENOENT => QueueError::Missing {
                name: name.to_owned(),
            },
            e => open_error(name, depth, msg_size, e),
        })?;
        let mqd = OwnedMqd::new(mqd);
        let stat = fstat(mqd.as_fd()).map_err(|e| os(name, e))?;
        let mode = stat.st_mode & 0o7777;
        if mode & 0o007 != 0 {
            return Err(QueueError::OpenToOthers {
                name: name.to_owned(),
                mode,
            });
        }
        MessageQueue::register(name, mqd, depth, msg_size)
    }

    /// Checks the attributes and registers the descriptor with tokio.
    fn register(
        name: &str,
        mqd: OwnedMqd,
        depth: i64,
        msg_size: i64,
    ) -> Result<MessageQueue, QueueError> {
        let found = mq_getattr(&mqd).map_err(|e| os(name, e))?;
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
        let q = MessageQueue::create_owned(&name, 4, 128, None).expect("open");
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
            MessageQueue::create_owned(&name, 8, 128, None),
            Err(QueueError::Mismatch { .. })
        ));
        MessageQueue::unlink(&name);
    }

    #[tokio::test]
    async fn the_hub_reuses_its_own_queue_and_refuses_one_open_to_others() {
        let name = format!("/vigil-test-own-{}", std::process::id());
        MessageQueue::unlink(&name);
        assert!(matches!(
            MessageQueue::open_existing(&name, 4, 128),
            Err(QueueError::Missing { .. })
        ));
        let q = MessageQueue::create_owned(&name, 4, 128, None).expect("create");
        assert_eq!(q.try_send(30, b"kept").expect("send"), Ok(()));
        drop(q);
        // Its own queue, left by an earlier hub: reused, alerts kept.
        let again = MessageQueue::create_owned(&name, 4, 128, None).expect("reuse");
        let reader = MessageQueue::open_existing(&name, 4, 128).expect("reader");
        assert_eq!(reader.recv().await.expect("recv").1, b"kept");
        drop((again, reader));
        // A queue others may open (as another user would make it).
        let mqd = mq_open(name.as_str(), MQ_OFlag::O_RDONLY, Mode::empty(), None).expect("open");
        nix::sys::stat::fchmod(mqd.as_fd(), Mode::from_bits_truncate(0o666)).expect("chmod");
        nix::mqueue::mq_close(mqd).expect("close");
        let err = MessageQueue::create_owned(&name, 4, 128, None).expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains(&name) && text.contains("0666") && text.contains("rm /dev/mqueue"),
            "{text}"
        );
        assert!(matches!(
            MessageQueue::open_existing(&name, 4, 128),
            Err(QueueError::OpenToOthers { .. })
        ));
        MessageQueue::unlink(&name);
    }

    #[tokio::test]
    async fn with_a_group_the_queue_is_the_groups_to_read_and_only_the_hubs_to_post() {
        use std::os::unix::fs::MetadataExt;
        let name = format!("/vigil-test-group-{}", std::process::id());
        MessageQueue::unlink(&name);
        // The hub's own group stands in for alertd's (a process may give a
        // file only to a group it is in); the end-to-end test
        // tests/tests/privilege.rs uses real users.
        let gid = nix::unistd::getegid();
        let q = MessageQueue::create_owned(&name, 4, 128, Some(gid)).expect("create");
        let stat = fstat(q.fd.get_ref().as_fd()).expect("fstat");
        assert_eq!(stat.st_mode & 0o7777, 0o640);
        assert_eq!(stat.st_gid, gid.as_raw());
        assert_eq!(q.try_send(30, b"kept").expect("send"), Ok(()));
        drop(q);
        // Found again (a hub restarting) with the umask's mode: given back.
        let mqd = mq_open(name.as_str(), MQ_OFlag::O_RDONLY, Mode::empty(), None).expect("open");
        nix::sys::stat::fchmod(mqd.as_fd(), Mode::from_bits_truncate(0o660)).expect("chmod");
        nix::mqueue::mq_close(mqd).expect("close");
        let again = MessageQueue::create_owned(&name, 4, 128, Some(gid)).expect("reuse");
        let reader = MessageQueue::open_existing(&name, 4, 128).expect("reader");
        assert_eq!(reader.recv().await.expect("recv").1, b"kept");
        if let Ok(m) = std::fs::metadata(format!("/dev/mqueue{name}")) {
            assert_eq!(m.mode() & 0o7777, 0o640);
        }
        drop((again, reader));
        // Open to others is still refused, group or not.
        let mqd = mq_open(name.as_str(), MQ_OFlag::O_RDONLY, Mode::empty(), None).expect("open");
        nix::sys::stat::fchmod(mqd.as_fd(), Mode::from_bits_truncate(0o644)).expect("chmod");
        nix::mqueue::mq_close(mqd).expect("close");
        assert!(matches!(
            MessageQueue::create_owned(&name, 4, 128, Some(gid)),
            Err(QueueError::NotOurs { .. })
        ));
        MessageQueue::unlink(&name);
    }
}

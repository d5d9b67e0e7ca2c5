//! The doorbell: "slot k changed", from sensord to the hub, as a queued
//! real-time signal whose value is k. The data is already in the table; the
//! signal only wakes the reader, as fast as the kernel can.
//!
//! Sending uses `pidfd_send_signal(2)` with an `SI_QUEUE` siginfo, which is
//! `sigqueue(3)` addressed by a pidfd: a recycled pid can never receive a
//! doorbell meant for a dead hub (plain `sigqueue` would kill whatever
//! process got the pid, since a real-time signal's default action is to
//! terminate). Kernels before 5.1 fall back to `sigqueue`.
//!
//! Receiving uses a `signalfd(2)` registered with tokio, so the hub's runtime
//! never blocks. The signal must be blocked in every thread of the receiving
//! process: call [`block_doorbell_signal`] first thing in `main`, before any
//! thread exists.
//!
//! Real-time signals queue (up to `RLIMIT_SIGPENDING`) rather than coalesce,
//! but a full queue, a forged `kill`, or a value out of range are all
//! possible; the receiver treats each ring as a hint, checks the table's
//! counters, and rescans.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// `si_code` of a signal sent with a value by sigqueue or pidfd_send_signal.
pub const SI_QUEUE: i32 = -1;
/// `si_code` of a signal sent by kill(2).
pub const SI_USER: i32 = 0;

/// The doorbell's signal number: SIGRTMIN+2 (`kill -s RTMIN+2` forges one).
pub fn doorbell_signal() -> i32 {
    libc::SIGRTMIN() + 2
}

/// Why a ring failed.
#[derive(Debug, thiserror::Error)]
pub enum DoorbellError {
    /// The receiver exited; the caller should reconnect.
    #[error("the hub (pid {pid}) is gone")]
    PeerGone { pid: u32 },
    /// Too many signals are queued at the receiver (RLIMIT_SIGPENDING).
    #[error(
        "the hub's signal queue is full; the change is in the table and the hub's rescan will \
         find it"
    )]
    QueueFull,
    /// Signals between processes need the same uid (or CAP_KILL).
    #[error(
        "not allowed to signal the hub (pid {pid}): run sensord as the same user as the hub \
         (the NixOS module uses the `vigil` user for both)"
    )]
    PermissionDenied { pid: u32 },
    /// The doorbell signal is not blocked in the calling thread.
    #[error(
        "the doorbell signal is not blocked; call vigil_ipc::doorbell::block_doorbell_signal() \
         at the start of main, before any thread is spawned"
    )]
    NotBlocked,
    #[error("doorbell system call failed: {0}")]
    Io(#[from] io::Error),
}

fn doorbell_sigset() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the zeroed set we own; sigaddset adds
    // a valid signal number (SIGRTMIN+2 <= SIGRTMAX on Linux).
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, doorbell_signal());
        set
    }
}

/// Blocks the doorbell signal in the calling thread, and so in every thread
/// spawned from it afterwards. Call it first in `main`.
pub fn block_doorbell_signal() -> Result<(), DoorbellError> {
    let set = doorbell_sigset();
    // SAFETY: `set` is an initialised sigset; the old-set pointer may be null.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc).into());
    }
    Ok(())
}

fn doorbell_blocked_here() -> bool {
    // SAFETY: a null new-set only queries; `old` is a writable sigset.
    unsafe {
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut old);
        libc::sigismember(&old, doorbell_signal()) == 1
    }
}

/// The kernel's siginfo for a queued signal (the `_rt` member of the union),
/// as `pidfd_send_signal` expects it; 128 bytes on every Linux ABI with
/// 64-bit pointers.
#[cfg(target_pointer_width = "64")]
#[repr(C)]
struct QueuedSigInfo {
    signo: i32,
    errno: i32,
    code: i32,
    _align: i32,
    pid: i32,
    uid: u32,
    value: u64,
    _rest: [u8; 96],
}

#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<QueuedSigInfo>() == 128);

/// Rings one process's doorbell.
#[derive(Debug)]
pub struct DoorbellSender {
    pid: u32,
    /// Pins the process: signals through it never reach a recycled pid.
    /// `None` on kernels without pidfds, where plain sigqueue is used.
    pidfd: Option<OwnedFd>,
    signal: i32,
}

impl DoorbellSender {
    /// Opens the doorbell of process `pid`.
    pub fn new(pid: u32) -> Result<DoorbellSender, DoorbellError> {
        let raw_pid = libc::pid_t::try_from(pid).map_err(|_| DoorbellError::PeerGone { pid })?;
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, raw_pid, 0) };
        let pidfd = if fd >= 0 {
            // SAFETY: the syscall returned a new fd that nothing else owns.
            Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        } else {
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::ESRCH) => return Err(DoorbellError::PeerGone { pid }),
                Some(libc::ENOSYS) => None,
                _ => return Err(io::Error::last_os_error().into()),
            }
        };
        Ok(DoorbellSender {
            pid,
            pidfd,
            signal: doorbell_signal(),
        })
    }

    /// The receiving process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Rings with `value` (a slot index, or anything 64-bit for benches).
    pub fn ring(&self, value: u64) -> Result<(), DoorbellError> {
        let rc = match &self.pidfd {
            #[cfg(target_pointer_width = "64")]
            Some(pidfd) => {
                let info = QueuedSigInfo {
                    signo: self.signal,
                    errno: 0,
                    code: SI_QUEUE,
                    _align: 0,
                    pid: std::process::id() as i32,
                    // SAFETY: getuid cannot fail.
                    uid: unsafe { libc::getuid() },
                    value,
                    _rest: [0; 96],
                };
                // SAFETY: pidfd is a live pidfd we own; `info` is a fully
                // initialised siginfo of the kernel's size whose signo
                // matches the signal and whose code is SI_QUEUE (negative,
                // as the kernel requires for another process).
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        pidfd.as_raw_fd(),
                        self.signal,
                        &info as *const QueuedSigInfo,
                        0,
                    )
                }
            }
            _ => {
                let value = libc::sigval {
                    sival_ptr: value as usize as *mut libc::c_void,
                };
                // SAFETY: plain sigqueue with a valid signal and value.
                i64::from(unsafe { libc::sigqueue(self.pid as libc::pid_t, self.signal, value) })
            }
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        Err(match err.raw_os_error() {
            Some(libc::ESRCH) => DoorbellError::PeerGone { pid: self.pid },
            Some(libc::EAGAIN) => DoorbellError::QueueFull,
            Some(libc::EPERM) => DoorbellError::PermissionDenied { pid: self.pid },
            _ => DoorbellError::Io(err),
        })
    }
}

/// One received doorbell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ring {
    /// The value sent: a slot index from sensord; anything from a forger.
    pub value: u64,
    /// Who sent it, as the sender claims (the kernel fills these for kill).
    pub sender_pid: u32,
    pub sender_uid: u32,
    /// [`SI_QUEUE`] for a real ring, [`SI_USER`] for `kill`.
    pub code: i32,
}

/// The receiving end: a signalfd for the doorbell signal, registered with
/// the tokio reactor.
#[derive(Debug)]
pub struct DoorbellReceiver {
    fd: AsyncFd<OwnedFd>,
}

impl DoorbellReceiver {
    /// Opens the doorbell of this process. The signal must already be
    /// blocked ([`block_doorbell_signal`]); must be called inside a tokio
    /// runtime.
    pub fn new() -> Result<DoorbellReceiver, DoorbellError> {
        if !doorbell_blocked_here() {
            return Err(DoorbellError::NotBlocked);
        }
        let set = doorbell_sigset();
        // SAFETY: -1 asks for a new signalfd; `set` is initialised.
        let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error().into());
        }
        // SAFETY: signalfd returned a new fd that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `owned` is a valid signalfd that the AsyncFd takes over;
        // nothing replaces or closes it while it is registered.
        let fd = unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
            .map_err(|e| DoorbellError::Io(e.into()))?;
        Ok(DoorbellReceiver { fd })
    }

    /// Waits for at least one ring and appends every queued ring to `out`.
    pub async fn recv(&self, out: &mut Vec<Ring>) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| read_rings(fd.get_ref(), out)) {
                Ok(Ok(0)) => continue,
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }
}

const INFO_SIZE: usize = std::mem::size_of::<libc::signalfd_siginfo>();

/// Reads every pending siginfo; WouldBlock when none is pending.
fn read_rings(fd: &OwnedFd, out: &mut Vec<Ring>) -> io::Result<usize> {
    let mut buf = [0u8; INFO_SIZE * 32];
    let mut total = 0;
    loop {
        // SAFETY: `buf` is a writable buffer of the length passed.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::WouldBlock && total > 0 {
                return Ok(total);
            }
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        let n = n as usize;
        for chunk in buf[..n].chunks_exact(INFO_SIZE) {
            // SAFETY: the kernel wrote whole signalfd_siginfo records; the
            // read is unaligned-safe and the type is plain old data.
            let info: libc::signalfd_siginfo =
                unsafe { std::ptr::read_unaligned(chunk.as_ptr().cast()) };
            out.push(Ring {
                value: info.ssi_ptr,
                sender_pid: info.ssi_pid,
                sender_uid: info.ssi_uid,
                code: info.ssi_code,
            });
            total += 1;
        }
        if n < buf.len() {
            return Ok(total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receiver_refuses_without_the_signal_blocked() {
        std::thread::spawn(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            let _guard = rt.enter();
            assert!(matches!(
                DoorbellReceiver::new(),
                Err(DoorbellError::NotBlocked)
            ));
        })
        .join()
        .expect("thread");
    }

    #[test]
    fn a_sender_to_a_dead_pid_says_the_peer_is_gone() {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        assert!(matches!(
            DoorbellSender::new(pid),
            Err(DoorbellError::PeerGone { .. })
        ));
    }
}

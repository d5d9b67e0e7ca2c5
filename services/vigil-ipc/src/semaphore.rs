//! A named POSIX counting semaphore (`sem_open`): how many clips may be
//! written at once, across every process that records.
//!
//! A process that dies holding a slot does not give it back (POSIX named
//! semaphores have no owner); the hub therefore re-creates the semaphore
//! with its full count when it starts ([`NamedSemaphore::create_fresh`]),
//! and the others only open it.

use std::ffi::CString;
use std::time::Duration;

/// What can go wrong with a named semaphore.
#[derive(Debug, thiserror::Error)]
pub enum SemaphoreError {
    #[error("{0:?} is not a semaphore name: one leading slash, no other, at most 251 bytes")]
    BadName(String),
    #[error("sem_open {name}: {source}")]
    Open {
        name: String,
        #[source]
        source: std::io::Error,
    },
}

/// An open named semaphore.
#[derive(Debug)]
pub struct NamedSemaphore {
    name: String,
    sem: *mut libc::sem_t,
}

// SAFETY: a sem_t opened with sem_open is designed to be used from any
// thread of the process (and from other processes): sem_wait/sem_post are
// thread-safe, and the pointer stays valid until sem_close in Drop.
unsafe impl Send for NamedSemaphore {}
// SAFETY: as above; every operation on it is an atomic libc call.
unsafe impl Sync for NamedSemaphore {}

/// One taken slot; given back when dropped.
#[derive(Debug)]
pub struct Permit<'a> {
    sem: &'a NamedSemaphore,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        // SAFETY: the semaphore is open for as long as `self.sem` lives,
        // which outlives the permit by its borrow.
        unsafe {
            libc::sem_post(self.sem.sem);
        }
    }
}

fn c_name(name: &str) -> Result<CString, SemaphoreError> {
    let ok =
        name.len() > 1 && name.len() <= 251 && name.starts_with('/') && !name[1..].contains('/');
    if !ok {
        return Err(SemaphoreError::BadName(name.to_owned()));
    }
    CString::new(name).map_err(|_| SemaphoreError::BadName(name.to_owned()))
}

impl NamedSemaphore {
    /// Removes any old semaphore of this name and creates it with `slots`
    /// free slots (mode 0600: the service user's).
    pub fn create_fresh(name: &str, slots: u32) -> Result<NamedSemaphore, SemaphoreError> {
        let c = c_name(name)?;
        // SAFETY: `c` is a valid NUL-terminated string; unlinking a name that
        // does not exist only returns ENOENT, which is fine here.
        unsafe {
            libc::sem_unlink(c.as_ptr());
        }
        Self::open_with(name, &c, libc::O_CREAT | libc::O_EXCL, slots)
    }

    /// Opens an existing semaphore.
    pub fn open(name: &str) -> Result<NamedSemaphore, SemaphoreError> {
        let c = c_name(name)?;
        Self::open_with(name, &c, 0, 0)
    }

    fn open_with(
        name: &str,
        c: &CString,
        flags: libc::c_int,
        slots: u32,
    ) -> Result<NamedSemaphore, SemaphoreError> {
        // SAFETY: `c` is a valid NUL-terminated name; with O_CREAT, sem_open
        // reads exactly two variadic arguments, a mode_t and an unsigned int,
        // which are what is passed.
        let sem = unsafe {
            libc::sem_open(
                c.as_ptr(),
                flags,
                0o600 as libc::mode_t,
                slots as libc::c_uint,
            )
        };
        if sem == libc::SEM_FAILED {
            return Err(SemaphoreError::Open {
                name: name.to_owned(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(NamedSemaphore {
            name: name.to_owned(),
            sem,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes a slot, waiting at most `timeout`; `None` if none came free.
    /// Blocking: call it from a thread, not an async task.
    pub fn acquire(&self, timeout: Duration) -> Option<Permit<'_>> {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `now` is a valid timespec to write; CLOCK_REALTIME always
        // exists (sem_timedwait measures against it).
        unsafe {
            libc::clock_gettime(libc::CLOCK_REALTIME, &mut now);
        }
        let total_ns = now.tv_nsec as u64 + u64::from(timeout.subsec_nanos());
        let deadline = libc::timespec {
            tv_sec: now.tv_sec
                + timeout.as_secs() as libc::time_t
                + (total_ns / 1_000_000_000) as libc::time_t,
            tv_nsec: (total_ns % 1_000_000_000) as libc::c_long,
        };
        loop {
            // SAFETY: the semaphore is open (closed only in Drop) and
            // `deadline` is a valid, normalised timespec.
            let r = unsafe { libc::sem_timedwait(self.sem, &deadline) };
            if r == 0 {
                return Some(Permit { sem: self });
            }
            match std::io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                _ => return None, // ETIMEDOUT (or EINVAL: treated as none free)
            }
        }
    }

    /// Free slots now (for status and tests).
    pub fn free(&self) -> i32 {
        let mut value: libc::c_int = 0;
        // SAFETY: the semaphore is open and `value` is a valid int to write.
        unsafe {
            libc::sem_getvalue(self.sem, &mut value);
        }
        value
    }
}

impl Drop for NamedSemaphore {
    fn drop(&mut self) {
        // SAFETY: `sem` came from a successful sem_open and is closed once.
        unsafe {
            libc::sem_close(self.sem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_counted_across_handles() {
        let name = format!("/vigil-test-sem-{}", std::process::id());
        let a = NamedSemaphore::create_fresh(&name, 2).expect("create");
        let b = NamedSemaphore::open(&name).expect("open");
        let p1 = a.acquire(Duration::from_millis(10)).expect("slot 1");
        let p2 = b.acquire(Duration::from_millis(10)).expect("slot 2");
        assert!(
            a.acquire(Duration::from_millis(50)).is_none(),
            "both slots taken"
        );
        drop(p1);
        assert_eq!(b.free(), 1);
        let p3 = b.acquire(Duration::from_millis(10)).expect("given back");
        drop((p2, p3));
        assert_eq!(a.free(), 2);
        assert!(NamedSemaphore::open("no-slash").is_err());
        let again = NamedSemaphore::create_fresh(&name, 1).expect("fresh");
        assert_eq!(again.free(), 1, "a fresh semaphore has its full count");
        let c = CString::new(name).expect("name");
        // SAFETY: a valid name; removes the test's semaphore.
        unsafe {
            libc::sem_unlink(c.as_ptr());
        }
    }
}

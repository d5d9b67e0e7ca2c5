//! The hub's two clocks, in one place.
//!
//! Wall-clock time ([`now_ms`]) is for timestamps people read and for
//! files; the alarm's timers run on [`AlarmClock`], which a wall clock that
//! jumps cannot move.

use std::time::Instant;

use vigil_alarm::Millis;

/// Wall-clock time in Unix milliseconds.
pub fn now_ms() -> Millis {
    now_ns() / 1_000_000
}

/// Wall-clock time in Unix nanoseconds.
pub fn now_ns() -> u64 {
    vigil_ipc::unix_ns()
}

/// The alarm's clock: wall-clock time at the engine's start, advanced by
/// the monotonic clock. Delays and the siren run on it, so a wall clock that
/// jumps (a Pi's first network time sync after boot) cannot end an exit
/// delay early or stretch a siren; its readings are still comparable with
/// deadlines persisted by an earlier run.
#[derive(Debug)]
pub struct AlarmClock {
    wall_at_start: Millis,
    started: Instant,
    /// Time added by [`AlarmClock::advance`] (tests only move it).
    skew: Millis,
}

impl AlarmClock {
    pub fn start() -> AlarmClock {
        AlarmClock::at(now_ms())
    }

    /// A clock that reads `wall` now (tests).
    pub fn at(wall: Millis) -> AlarmClock {
        AlarmClock {
            wall_at_start: wall,
            started: Instant::now(),
            skew: 0,
        }
    }

    pub fn now(&self) -> Millis {
        self.wall_at_start + self.skew + self.started.elapsed().as_millis() as Millis
    }

    /// Moves the clock on by `ms`, as if that much time had passed.
    #[cfg(test)]
    pub fn advance(&mut self, ms: Millis) {
        self.skew += ms;
    }

    /// The monotonic instant at which this clock reads `at`.
    pub fn instant_of(&self, at: Millis) -> Instant {
        Instant::now() + std::time::Duration::from_millis(at.saturating_sub(self.now()))
    }
}

//! A camera's recent video in memory: the last N seconds of access units,
//! always starting at a key frame, bounded in time and bytes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_media::AccessUnit;

/// An access unit and when the hub received it.
#[derive(Clone, Debug)]
pub struct Stamped {
    pub at: Instant,
    pub unix_ms: i64,
    pub unit: AccessUnit,
}

/// The ring buffer of one camera.
#[derive(Debug)]
pub struct Ring {
    units: VecDeque<Arc<Stamped>>,
    bytes: usize,
    max_age: Duration,
    max_bytes: usize,
}

impl Ring {
    pub fn new(max_age: Duration, max_bytes: usize) -> Ring {
        Ring {
            units: VecDeque::new(),
            bytes: 0,
            max_age,
            max_bytes,
        }
    }

    /// Adds a unit and drops what is too old or too much, then anything
    /// before the first key frame (a clip must start at one).
    pub fn push(&mut self, unit: Arc<Stamped>) {
        if self.units.is_empty() && !unit.unit.key {
            return; // nothing decodable until a key frame
        }
        self.bytes += unit.unit.data.len();
        let now = unit.at;
        self.units.push_back(unit);
        while let Some(front) = self.units.front() {
            let too_old = now.duration_since(front.at) > self.max_age;
            if !(too_old || self.bytes > self.max_bytes) {
                break;
            }
            self.pop();
            // Trim to the next key frame.
            while self.units.front().is_some_and(|u| !u.unit.key) {
                self.pop();
            }
        }
    }

    fn pop(&mut self) {
        if let Some(u) = self.units.pop_front() {
            self.bytes -= u.unit.data.len();
        }
    }

    /// The units from the last key frame at or before `from` (or the first
    /// one, if the ring starts later) to now.
    pub fn since(&self, from: Instant) -> Vec<Arc<Stamped>> {
        let start = self
            .units
            .iter()
            .rposition(|u| u.unit.key && u.at <= from)
            .unwrap_or(0);
        self.units.range(start..).cloned().collect()
    }

    /// The newest key frame.
    pub fn latest_key(&self) -> Option<Arc<Stamped>> {
        self.units.iter().rev().find(|u| u.unit.key).cloned()
    }

    /// From the newest key frame to now: what a new live viewer starts with.
    pub fn from_latest_key(&self) -> Vec<Arc<Stamped>> {
        match self.units.iter().rposition(|u| u.unit.key) {
            Some(i) => self.units.range(i..).cloned().collect(),
            None => Vec::new(),
        }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn seconds(&self) -> f64 {
        match (self.units.front(), self.units.back()) {
            (Some(a), Some(b)) => b.at.duration_since(a.at).as_secs_f64(),
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(t0: Instant, ms: u64, key: bool, size: usize) -> Arc<Stamped> {
        Arc::new(Stamped {
            at: t0 + Duration::from_millis(ms),
            unix_ms: ms as i64,
            unit: AccessUnit {
                pts_us: ms * 1000,
                key,
                data: Arc::from(vec![0u8; size]),
            },
        })
    }

    #[test]
    fn keeps_the_window_and_starts_at_a_key_frame() {
        let t0 = Instant::now();
        let mut ring = Ring::new(Duration::from_secs(2), 1 << 20);
        ring.push(unit(t0, 0, false, 10)); // before any key frame: dropped
        assert_eq!(ring.bytes(), 0);
        for i in 0..50u64 {
            // 10 fps, a key frame every second.
            ring.push(unit(t0, i * 100, i % 10 == 0, 100));
        }
        let all = ring.since(t0);
        assert!(all[0].unit.key, "starts at a key frame");
        assert!(ring.seconds() <= 2.0, "{}", ring.seconds());
        assert_eq!(all.first().map(|u| u.unix_ms), Some(3000));
        // Pre-roll from 3.5 s: back to the key frame at 3.0 s.
        let pre = ring.since(t0 + Duration::from_millis(3500));
        assert_eq!(pre[0].unix_ms, 3000);
        assert_eq!(ring.latest_key().map(|u| u.unix_ms), Some(4000));
        assert_eq!(ring.from_latest_key().len(), 10);
    }

    #[test]
    fn is_bounded_in_bytes() {
        let t0 = Instant::now();
        let mut ring = Ring::new(Duration::from_secs(60), 1000);
        for i in 0..100u64 {
            ring.push(unit(t0, i * 10, i % 5 == 0, 100));
        }
        assert!(ring.bytes() <= 1000, "{}", ring.bytes());
        assert!(ring.since(t0)[0].unit.key);
    }
}

//! The live event stream: the last [`EVENT_RING`] events in memory and a
//! broadcast of new ones, for WatchEvents. Owned by the hub's loop, which
//! publishes an event only once it is as durable as its kind asks.

use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::broadcast;
use vigil_domain::Event;

/// Events kept in memory for WatchEvents to resume from.
pub const EVENT_RING: usize = 4096;

/// A resume point the ring cannot serve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeError {
    /// Older than the ring: the caller replays the log up to `oldest`
    /// first.
    TooOld {
        /// The oldest event the ring still holds.
        oldest: u64,
    },
    /// Beyond the last event: numbers the client saw from another log
    /// (the hub was reset), or made up.
    BeyondLast { last: u64 },
}

/// A past-and-future view of the event stream.
#[derive(Debug)]
pub struct Subscription {
    pub backlog: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
}

#[derive(Debug)]
pub struct EventStream {
    ring: VecDeque<Arc<Event>>,
    /// New events for every watcher; a watcher that falls more than the
    /// ring behind is told to resume.
    live: broadcast::Sender<Arc<Event>>,
    /// The number of the last event published (or restored at start).
    last_seq: u64,
}

impl EventStream {
    /// A stream whose next event follows `last_seq`.
    pub fn new(last_seq: u64) -> EventStream {
        let (live, _) = broadcast::channel(EVENT_RING);
        EventStream {
            ring: VecDeque::with_capacity(EVENT_RING),
            live,
            last_seq,
        }
    }

    pub fn publish(&mut self, event: Event) {
        self.last_seq = event.seq;
        let event = Arc::new(event);
        if self.ring.len() == EVENT_RING {
            self.ring.pop_front();
        }
        self.ring.push_back(Arc::clone(&event));
        // No receivers is fine: nobody is watching.
        let _ = self.live.send(event);
    }

    /// New events only (`None`), or the kept events after `after_seq` and
    /// then new ones. An `after_seq` older than the ring is
    /// [`ResumeError::TooOld`] (the caller replays the log); one beyond the
    /// last event is [`ResumeError::BeyondLast`].
    pub fn subscribe(&self, after_seq: Option<u64>) -> Result<Subscription, ResumeError> {
        if after_seq.is_some_and(|a| a > self.last_seq) {
            return Err(ResumeError::BeyondLast {
                last: self.last_seq,
            });
        }
        let live = self.live.subscribe();
        let Some(after_seq) = after_seq.filter(|&a| a < self.last_seq) else {
            return Ok(Subscription {
                backlog: Vec::new(),
                live,
            });
        };
        let oldest = self.ring.front().map_or(self.last_seq + 1, |e| e.seq);
        // 0 means "every kept event"; otherwise a gap is data loss.
        if after_seq != 0 && after_seq + 1 < oldest {
            return Err(ResumeError::TooOld { oldest });
        }
        Ok(Subscription {
            backlog: self
                .ring
                .iter()
                .filter(|e| e.seq > after_seq)
                .cloned()
                .collect(),
            live,
        })
    }
}

//! The hub's side of the event log (`<state_dir>/events`, see
//! `docs/event-log.md`): every event of the stream is appended as a
//! `vigil-logrecord` record. The hub's loop decides when to sync
//! (`Hub::apply`): alarm-class events before anyone is told about them,
//! the rest in groups at most `[events] sync_window_ms` later (100 ms
//! unless configured).

use std::path::Path;
use std::time::{Duration, Instant};

use tracing::error;
use vigil_domain::Event;
use vigil_eventlog::{LogError, LogWriter, Options};

// A silent event (a duress disarm) goes to the private log
// (`<state_dir>/events-private`), so that the main log's numbers, which
// watchers see, show no gap where it happened.
use vigil_eventlog::kinds::{
    EVENT as KIND_EVENT, HIDDEN as KIND_HIDDEN, PLACEHOLDER as KIND_PLACEHOLDER,
};

/// Why the log could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("record {seq}: {source}")]
    Record {
        seq: u64,
        source: vigil_logrecord::RecordError,
    },
}

/// The events of the log from `after + 1` up to `until` (the placeholders
/// skipped): how a watcher catches up past the in-memory ring.
pub fn replay(events_dir: &Path, after: u64, until: u64) -> Result<Vec<Event>, ReplayError> {
    let mut reader = vigil_eventlog::LogReader::open(events_dir, after + 1)?;
    let mut events = Vec::new();
    while reader.next_seq() <= until {
        match reader.next_record()? {
            Some(r) if r.kind == KIND_EVENT => {
                let event = vigil_logrecord::decode(&r.payload)
                    .map_err(|source| ReplayError::Record { seq: r.seq, source })?;
                events.push(event);
            }
            Some(_) => {}
            None => break,
        }
    }
    Ok(events)
}

/// Flag bit 0: synced before acknowledged.
const FLAG_SYNCED: u16 = 1;

#[derive(Debug)]
pub struct EventLog {
    writer: LogWriter,
    /// Silent events (duress).
    private: LogWriter,
    /// When the oldest unsynced append happened.
    dirty_since: Option<Instant>,
    /// The longest an appended event waits for its sync.
    sync_window: Duration,
}

impl EventLog {
    pub fn open(state_dir: &Path, sync_window: Duration) -> Result<EventLog, LogError> {
        let (writer, _recovery) = LogWriter::open(&state_dir.join("events"), Options::default())?;
        let small = Options {
            segment_size: 1 << 20,
        };
        let (private, _) = LogWriter::open(&state_dir.join("events-private"), small)?;
        Ok(EventLog {
            writer,
            private,
            dirty_since: None,
            sync_window,
        })
    }

    /// Appends one event to the mapped log; it is synced by [`EventLog::sync`]
    /// (the caller's choice: at once for alarm-class events) or within the
    /// sync window.
    pub fn append(&mut self, event: &Event) {
        let flags = if event.kind.is_alarm_class() {
            FLAG_SYNCED
        } else {
            0
        };
        let payload = vigil_logrecord::encode(event);
        let at = event.unix_ms.saturating_mul(1_000_000);
        if let Err(e) = self.writer.append(KIND_EVENT, flags, at, &payload) {
            error!("the event log refused an event: {e}; it is in the stream but not on disk");
            return;
        }
        self.dirty_since.get_or_insert_with(Instant::now);
    }

    /// Keeps an event that must never be streamed, in the private log,
    /// synced at once.
    pub fn append_hidden(&mut self, event: &Event) {
        let payload = vigil_logrecord::encode(event);
        let at = event.unix_ms.saturating_mul(1_000_000);
        if let Err(e) = self
            .private
            .append_synced(KIND_HIDDEN, FLAG_SYNCED, at, &payload)
        {
            error!("the private event log refused a silent event: {e}");
        }
    }

    /// The sequence number of the last record.
    pub fn last_seq(&self) -> u64 {
        self.writer.next_seq() - 1
    }

    /// Appends empty placeholder records (kind 0) until the last sequence is
    /// `seq`, so that log and stream numbers agree.
    pub fn pad_to(&mut self, seq: u64) {
        let mut padded = 0;
        while self.writer.next_seq() <= seq {
            if let Err(e) = self.writer.append(KIND_PLACEHOLDER, 0, 0, &[]) {
                error!("cannot align the event log with the event stream: {e}");
                return;
            }
            padded += 1;
        }
        if padded > 0 {
            tracing::warn!(
                padded,
                "the event log was behind the event stream (a lost or new log); placeholders \
                 keep their numbers equal"
            );
            self.sync();
        }
    }

    /// When the next group commit is due.
    pub fn next_sync(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + self.sync_window)
    }

    /// Syncs if the group commit is due.
    pub fn sync_if_due(&mut self) {
        if self.next_sync().is_some_and(|t| t <= Instant::now()) {
            self.sync();
        }
    }

    /// Removes old segments as `retention` asks, never one holding
    /// `keep_from` or later (the first record reportd has not indexed).
    pub fn retire(&mut self, retention: &vigil_eventlog::Retention, keep_from: u64) {
        if let Err(e) = self
            .writer
            .retire(retention, keep_from, crate::clock::now_ns())
        {
            error!("cannot remove old event-log segments: {e}; the log keeps growing");
        }
    }

    /// Syncs what is appended.
    pub fn sync(&mut self) {
        if self.dirty_since.is_none() {
            return;
        }
        if let Err(e) = self.writer.sync() {
            error!("the event log cannot sync: {e}; recent events may not survive a power cut");
        }
        self.dirty_since = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use vigil_domain::{AlarmState, ArmedMode, EventKind};

    use super::*;

    fn event(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            unix_ms: 1,
            kind,
            sensor: None,
            sensor_state: None,
            camera: None,
            mode: ArmedMode::Away,
            alarm: AlarmState::Idle,
            user: None,
            source: "test".into(),
            message: format!("event {seq}"),
            trace_id: None,
        }
    }

    #[test]
    fn the_log_keeps_stream_numbers_and_replays_events() {
        let dir = tempfile::tempdir().expect("dir");
        let mut log = EventLog::open(dir.path(), Duration::from_millis(100)).expect("open");
        // A state file ahead of a new log: placeholders align them.
        log.pad_to(3);
        assert_eq!(log.last_seq(), 3);
        for (seq, kind) in [
            (4, EventKind::Armed),
            (5, EventKind::Sensor),
            (6, EventKind::Triggered),
        ] {
            log.append(&event(seq, kind));
        }
        log.sync();
        assert_eq!(log.last_seq(), 6);
        let events = replay(&dir.path().join("events"), 0, 6).expect("replay");
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [4, 5, 6], "placeholders are skipped");
        let later = replay(&dir.path().join("events"), 4, 5).expect("replay");
        assert_eq!(later.len(), 1);
        assert_eq!(later[0].kind, EventKind::Sensor);
    }
}

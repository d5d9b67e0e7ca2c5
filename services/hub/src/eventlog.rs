//! The hub's side of the event log (`<state_dir>/events`, see
//! `docs/event-log.md`): every event of the stream is appended as a
//! prost-encoded `vigil.v1.Event`; alarm-class events are synced before the
//! command or change that caused them is acknowledged, the rest in groups
//! at most [`GROUP_COMMIT`] later.

use std::path::Path;
use std::time::{Duration, Instant};

use prost::Message;
use tracing::error;
use vigil_eventlog::{LogError, LogWriter, Options};

use crate::engine::EventRecord;

/// The longest an appended event waits for its sync.
pub const GROUP_COMMIT: Duration = Duration::from_millis(100);
/// The record kind of an alarm event (payload: `vigil.v1.Event`).
pub const KIND_EVENT: u16 = 1;
/// Flag bit 0: synced before acknowledged.
const FLAG_SYNCED: u16 = 1;

/// Events that must be on disk before anyone is told they happened.
fn alarm_class(kind: &str) -> bool {
    matches!(
        kind,
        "triggered" | "disarmed" | "armed" | "arming" | "tamper" | "lockout" | "entry_delay"
    )
}

#[derive(Debug)]
pub struct EventLog {
    writer: LogWriter,
    /// When the oldest unsynced append happened.
    dirty_since: Option<Instant>,
}

impl EventLog {
    pub fn open(state_dir: &Path) -> Result<EventLog, LogError> {
        let (writer, _recovery) = LogWriter::open(&state_dir.join("events"), Options::default())?;
        Ok(EventLog {
            writer,
            dirty_since: None,
        })
    }

    /// Appends one event (and syncs it now if it is alarm-class).
    pub fn append(&mut self, record: &EventRecord) {
        let payload = crate::grpc::to_pb_event(record).encode_to_vec();
        let synced = alarm_class(record.kind);
        let result = self.writer.append(
            KIND_EVENT,
            if synced { FLAG_SYNCED } else { 0 },
            record.unix_ms.saturating_mul(1_000_000),
            &payload,
        );
        if let Err(e) = result {
            error!("the event log refused an event: {e}; it is in the stream but not on disk");
            return;
        }
        if synced {
            self.sync();
        } else {
            self.dirty_since.get_or_insert_with(Instant::now);
        }
    }

    /// When the next group commit is due.
    pub fn next_sync(&self) -> Option<Instant> {
        self.dirty_since.map(|t| t + GROUP_COMMIT)
    }

    /// Syncs what is appended.
    pub fn sync(&mut self) {
        if let Err(e) = self.writer.sync() {
            error!("the event log cannot sync: {e}; recent events may not survive a power cut");
        }
        self.dirty_since = None;
    }
}

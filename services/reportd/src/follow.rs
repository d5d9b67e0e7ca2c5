//! Following the log: from the checkpoint to the tail, batch by batch.

use std::path::{Path, PathBuf};

use prost::Message;
use tracing::{error, warn};
use vigil_eventlog::{LogError, LogReader, kinds};
use vigil_proto::v1 as pb;
use vigil_reports::Index;

use crate::ReportdError;

/// Reads the log after the index's checkpoint and hands it to the index.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    reader: Option<LogReader>,
    /// The last read error, so that a damaged record is reported once, not
    /// at every poll.
    last_error: Option<String>,
}

/// A `vigil.v1.Event` as the index stores it.
pub fn to_indexed(event: pb::Event) -> vigil_reports::Event {
    // The proto names without their prefix, lower case: `away`,
    // `triggered` (the hub maps them back with `from_str_name`).
    let name = |full: &str, prefix: &str| full.trim_start_matches(prefix).to_ascii_lowercase();
    let mode = name(
        pb::Mode::try_from(event.mode)
            .unwrap_or(pb::Mode::Unspecified)
            .as_str_name(),
        "MODE_",
    );
    let state = name(
        pb::AlarmState::try_from(event.state)
            .unwrap_or(pb::AlarmState::Unspecified)
            .as_str_name(),
        "ALARM_STATE_",
    );
    let some = |s: String| (!s.is_empty()).then_some(s);
    vigil_reports::Event {
        seq: event.seq,
        unix_ms: event.unix_ms,
        kind: event.kind,
        sensor: some(event.sensor),
        mode,
        state,
        user: some(event.user),
        source: event.source,
        message: event.message,
        trace_id: some(event.trace_id),
    }
}

impl Follower {
    pub fn new(events_dir: &Path) -> Follower {
        Follower {
            dir: events_dir.to_owned(),
            reader: None,
            last_error: None,
        }
    }

    fn report(&mut self, problem: String) {
        if self.last_error.as_ref() != Some(&problem) {
            error!("{problem}");
            self.last_error = Some(problem);
        }
    }

    /// Indexes up to `max` records after the checkpoint, in one
    /// transaction; returns how many records it covered (0: caught up, or
    /// the log is not readable yet).
    pub async fn index_available(
        &mut self,
        index: &mut Index,
        max: usize,
    ) -> Result<usize, ReportdError> {
        let checkpoint = index.checkpoint().await?;
        let reader = match self.reader.take() {
            Some(r) if r.next_seq() == checkpoint + 1 => r,
            _ => match LogReader::open(&self.dir, checkpoint + 1) {
                Ok(r) => r,
                Err(LogError::Gone { seq, oldest }) => {
                    // Retention never removes what is not indexed, so this
                    // is a log replaced or pruned by hand: index what is
                    // left and say what is missing.
                    self.report(format!(
                        "events {seq} to {} are no longer in the event log (removed outside \
                         Vigil's retention); they are missing from the reports",
                        oldest - 1
                    ));
                    index.apply(checkpoint, oldest - 1, &[]).await?;
                    return Ok(usize::try_from(oldest - seq).unwrap_or(usize::MAX));
                }
                Err(e) if !self.dir.exists() => {
                    // The hub has not written its first event yet.
                    let _ = e;
                    return Ok(0);
                }
                Err(e) => {
                    self.report(format!("cannot read the event log: {e}; retrying"));
                    return Ok(0);
                }
            },
        };
        let mut reader = reader;
        let mut events = Vec::new();
        let mut through = checkpoint;
        let mut covered = 0;
        while covered < max {
            match reader.next_record() {
                Ok(Some(record)) => {
                    through = record.seq;
                    covered += 1;
                    if record.kind != kinds::EVENT {
                        continue;
                    }
                    match pb::Event::decode(record.payload.as_slice()) {
                        Ok(event) if event.seq == record.seq => events.push(to_indexed(event)),
                        Ok(event) => warn!(
                            record = record.seq,
                            event = event.seq,
                            "an event whose number differs from its record's; not indexed"
                        ),
                        Err(e) => warn!(
                            record = record.seq,
                            "an event record that does not decode ({e}); not indexed"
                        ),
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.report(format!(
                        "cannot read event {} of the log: {e}; retrying",
                        reader.next_seq()
                    ));
                    break;
                }
            }
        }
        if through > checkpoint {
            index.apply(checkpoint, through, &events).await?;
            self.last_error = None;
        }
        self.reader = Some(reader);
        Ok(covered)
    }
}

//! Following the log: from the checkpoint to the tail, batch by batch.
//! Numbers the log cannot give (damage, events never written: a
//! [`vigil_eventlog::Gap`]) are logged once, with what was lost and why,
//! and covered by the checkpoint like any record: indexing, and the hub's
//! retention behind it, step over them and go on.

use std::path::{Path, PathBuf};

use tracing::{error, warn};
use vigil_eventlog::{Entry, LogError, LogReader, kinds};
use vigil_reports::{Batch, Index};

use crate::ReportdError;

/// Reads the log after the index's checkpoint and hands it to the index.
#[derive(Debug)]
pub struct Follower {
    dir: PathBuf,
    reader: Option<LogReader>,
    /// The last read error, so that a damaged record is reported once, not
    /// at every poll.
    last_error: Option<String>,
    /// Numbers stepped over (gaps in the log) since this follower started.
    lost: u64,
}

impl Follower {
    pub fn new(events_dir: &Path) -> Follower {
        Follower {
            dir: events_dir.to_owned(),
            reader: None,
            last_error: None,
            lost: 0,
        }
    }

    /// How many numbers this follower stepped over because the log does not
    /// hold them (damaged, never written, no longer in it).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    fn report(&mut self, problem: String) {
        if self.last_error.as_ref() != Some(&problem) {
            error!("{problem}");
            self.last_error = Some(problem);
        }
    }

    /// Indexes every record the log holds after the index's checkpoint, in
    /// transactions of up to `max` records; returns how many records it
    /// covered (0: caught up, or the log is not readable yet).
    ///
    /// Each batch is read, decoded and encoded on a blocking thread while
    /// the batch before it is written, so reading the log and SQLite's
    /// writing overlap. Only the write moves the checkpoint: after an error
    /// the next call starts again from it.
    pub async fn catch_up(&mut self, index: &mut Index, max: usize) -> Result<usize, ReportdError> {
        let mut after = index.checkpoint().await?;
        let mut covered = 0;
        let mut pending: Option<Batch> = None;
        loop {
            // The blocking thread needs the follower (and its mapped log)
            // by value; it comes back with the result. Cancelled meanwhile,
            // `self` keeps a fresh follower, which reopens the log.
            let dir = self.dir.clone();
            let mut follower = std::mem::replace(self, Follower::new(&dir));
            // A cancelled read leaves a fresh follower: the count stays.
            self.lost = follower.lost;
            let read = tokio::task::spawn_blocking(move || {
                let read = follower.read(after, max);
                (follower, read)
            });
            let write = async {
                match pending.take() {
                    Some(batch) => index.write(batch).await,
                    None => Ok(()),
                }
            };
            let (read, written) = tokio::join!(read, write);
            let (follower, read) = match read {
                Ok(done) => done,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(e) => return Err(ReportdError::Cancelled(e.to_string())),
            };
            *self = follower;
            written?;
            let Some(batch) = read? else {
                return Ok(covered);
            };
            covered += usize::try_from(batch.through() - after).unwrap_or(usize::MAX);
            after = batch.through();
            pending = Some(batch);
        }
    }

    /// Reads up to `max` records after `after` and encodes their events for
    /// the index (the batch covers `after + 1 ..= batch.through()`); `None`
    /// when there is nothing to read (caught up, or the log is not
    /// readable: that is reported here, once).
    fn read(&mut self, after: u64, max: usize) -> Result<Option<Batch>, ReportdError> {
        let reader = match self.reader.take() {
            Some(r) if r.next_seq() == after + 1 => r,
            _ => match LogReader::open(&self.dir, after + 1) {
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
                    self.lost += oldest - seq;
                    return Ok(Some(Batch::new(after, oldest - 1, &[])?));
                }
                Err(e) if !self.dir.exists() => {
                    // The hub has not written its first event yet.
                    let _ = e;
                    return Ok(None);
                }
                Err(e) => {
                    self.report(format!("cannot read the event log: {e}; retrying"));
                    return Ok(None);
                }
            },
        };
        let mut reader = reader;
        let mut events = Vec::new();
        let mut through = after;
        let mut covered = 0;
        while covered < max {
            match reader.next_entry() {
                Ok(Some(Entry::Record(record))) => {
                    through = record.seq;
                    covered += 1;
                    if record.kind != kinds::EVENT {
                        continue;
                    }
                    // The log's own record (vigil-logrecord), which also
                    // reads the `vigil.v1.Event` payloads older logs hold;
                    // a kind this build does not know is kept by name.
                    match vigil_logrecord::decode(&record.payload) {
                        Ok(event) if event.seq == record.seq => events.push(event),
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
                Ok(Some(Entry::Gap(gap))) => {
                    // Met once: the checkpoint moves past it with this
                    // batch.
                    error!(
                        first_lost = gap.first,
                        last_lost = gap.last,
                        segment = %gap.segment.display(),
                        "{gap}; they are missing from the index and the reports, which go on \
                         after them"
                    );
                    self.lost += gap.count();
                    through = gap.last;
                    covered += 1;
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
        self.reader = Some(reader);
        if covered == 0 {
            return Ok(None);
        }
        self.last_error = None;
        Ok(Some(Batch::new(after, through, &events)?))
    }
}

//! Where the event topic stands: the hub's log and the last event handed
//! to the MQTT client. Kept across hub connections in memory, and across
//! the bridge's own restarts in a file beside its credentials
//! (`<hub_credentials>/events-resume`: `<log id> <seq>`), so a bridge that
//! was stopped or killed resumes the event topic where it left off
//! instead of skipping what happened meanwhile.
//!
//! The file is written once a second ([`Resume::tick`]), with the last
//! event of the second before (an event handed to the client a moment ago
//! may still be in its queue when the process dies): after a SIGKILL the
//! topic repeats up to about two seconds of events, each with its `seq`,
//! and misses none. A clean stop writes the latest.

use std::path::PathBuf;
use std::time::Duration;

use tracing::warn;

/// How often the place is written.
pub(crate) const SAVE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Resume {
    pub(crate) log_id: Option<String>,
    pub(crate) last_seq: Option<u64>,
    path: PathBuf,
    /// `last_seq` as of the previous save tick: what the next save writes.
    settled: Option<u64>,
    /// What the file holds.
    written: Option<(String, u64)>,
    /// The last write failed (said once, not at every event).
    failing: bool,
}

impl Resume {
    /// Reads the file (absent or unreadable: from now).
    pub(crate) fn load(path: PathBuf) -> Resume {
        let (log_id, last_seq) = match std::fs::read_to_string(&path) {
            Ok(text) => match text.split_once(' ') {
                Some((log, seq)) if !log.is_empty() => {
                    (Some(log.to_owned()), seq.trim().parse().ok())
                }
                _ => {
                    warn!(path = %path.display(), "ignoring a resume file that is not `<log id> <seq>`");
                    (None, None)
                }
            },
            Err(_) => (None, None),
        };
        Resume {
            log_id,
            last_seq,
            path,
            settled: last_seq,
            written: None,
            failing: false,
        }
    }

    /// Sets the place back to `seq`: the events after it may have been
    /// lost with a connection and are published again.
    pub(crate) fn rewind(&mut self, seq: u64) {
        self.last_seq = Some(seq);
        self.settled = self.settled.map(|s| s.min(seq));
    }

    /// Starts from now on `log_id` (a first start, or a wiped or restored
    /// hub): `seq` is the last event before the stream began (none: an
    /// empty log). Written at once: nothing after it has been published,
    /// so a bridge killed in the next second replays from here rather
    /// than starting from its own start.
    pub(crate) fn start_log(&mut self, log_id: String, seq: Option<u64>) {
        let seq = seq.unwrap_or(0);
        self.log_id = Some(log_id);
        self.last_seq = Some(seq);
        self.settled = Some(seq);
        self.write(Some(seq));
    }

    /// Records that event `seq` was handed to the MQTT client.
    pub(crate) fn published(&mut self, seq: u64) {
        self.last_seq = Some(seq);
    }

    /// Every [`SAVE_EVERY`]: writes what had been handed to the client a
    /// tick ago, and remembers what has been now.
    pub(crate) fn tick(&mut self) {
        let settled = self.settled;
        self.write(settled);
        self.settled = self.last_seq;
    }

    /// Writes the latest (a clean stop: the client has sent its queue).
    pub(crate) fn save(&mut self) {
        let latest = self.last_seq;
        self.write(latest);
    }

    fn write(&mut self, seq: Option<u64>) {
        let (Some(log_id), Some(seq)) = (&self.log_id, seq) else {
            return;
        };
        if self
            .written
            .as_ref()
            .is_some_and(|(l, s)| l == log_id && *s == seq)
        {
            return;
        }
        let tmp = self.path.with_extension("tmp");
        let result = std::fs::write(&tmp, format!("{log_id} {seq}\n"))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        match result {
            Ok(()) => {
                self.failing = false;
                self.written = Some((log_id.clone(), seq));
            }
            Err(e) if !self.failing => {
                self.failing = true;
                warn!(
                    path = %self.path.display(),
                    "cannot keep the event topic's place ({e}); a restarted bridge will start \
                     from its start time"
                );
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_bridge_resumes_from_the_file_and_never_past_what_was_sent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events-resume");
        let mut r = Resume::load(path.clone());
        assert_eq!((r.log_id.as_deref(), r.last_seq), (None, None));
        r.log_id = Some("ab".repeat(16));
        r.published(7);
        // The first tick writes what had settled before it: nothing yet.
        r.tick();
        assert!(!path.exists());
        r.published(9);
        r.tick();
        let back = Resume::load(path.clone());
        assert_eq!(back.last_seq, Some(7), "a second behind the latest");
        r.save();
        let back = Resume::load(path.clone());
        assert_eq!(
            (back.log_id, back.last_seq),
            (Some("ab".repeat(16)), Some(9))
        );
        std::fs::write(&path, "garbage").expect("write");
        assert_eq!(Resume::load(path).last_seq, None);
    }
}

//! The hub's side of the event log (`<state_dir>/events`, see
//! `docs/event-log.md`): every event of the stream is appended as a
//! `vigil-logrecord` record. The hub's loop decides when to sync
//! (`Hub::apply`): alarm-class events before anyone is told about them,
//! the rest in groups at most `[events] sync_window_ms` later (100 ms
//! unless configured).
//!
//! The log's numbers are the stream's. An event the log cannot store (a
//! full disk) is counted, logged and shown in the status's faults, and its
//! number is skipped, never given to a later event: readers see it as a
//! gap. Damage found in the log (at start: the writer's recovery of the
//! newest segment, then a scan of every segment on a thread of its own) is
//! logged and shown in the faults too; [`replay`] shows it to a watcher as
//! a gap event.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::{error, info, warn};
use vigil_domain::{AlarmState, ArmedMode, Event, EventKind};
use vigil_eventlog::{Entry, Gap, GapCause, LogError, LogWriter, Options};

// A silent event (a duress disarm) goes to the private log
// (`<state_dir>/events-private`), so that the main log's numbers, which
// watchers see, show no gap where it happened.
use vigil_eventlog::kinds::{EVENT as KIND_EVENT, HIDDEN as KIND_HIDDEN};

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
/// skipped): how a watcher catches up past the in-memory ring. Numbers the
/// log cannot give (damage, events never written) are one event of kind
/// [`vigil_eventlog::GAP_EVENT_KIND`] each, numbered with the gap's last
/// number (or `until`), whose message says which numbers and why: a gap is
/// never a silent skip.
pub fn replay(events_dir: &Path, after: u64, until: u64) -> Result<Vec<Event>, ReplayError> {
    let mut reader = vigil_eventlog::LogReader::open(events_dir, after + 1)?;
    let mut events = Vec::new();
    // Which of `events` are gaps: their mode and state are their
    // neighbours'.
    let mut gaps = Vec::new();
    while reader.next_seq() <= until {
        match reader.next_entry()? {
            Some(Entry::Record(r)) if r.kind == KIND_EVENT => {
                let event = vigil_logrecord::decode(&r.payload)
                    .map_err(|source| ReplayError::Record { seq: r.seq, source })?;
                events.push(event);
            }
            Some(Entry::Record(_)) => {}
            Some(Entry::Gap(gap)) => {
                gaps.push(events.len());
                events.push(gap_event(&gap, until));
            }
            None => break,
        }
    }
    for i in gaps {
        let neighbour = events[..i]
            .iter()
            .rev()
            .chain(events[i + 1..].iter())
            .find(|e| !is_gap(e))
            .map(|e| (e.unix_ms, e.mode, e.alarm));
        if let Some((unix_ms, mode, alarm)) = neighbour {
            let gap = &mut events[i];
            (gap.unix_ms, gap.mode, gap.alarm) = (unix_ms, mode, alarm);
        }
    }
    Ok(events)
}

fn is_gap(event: &Event) -> bool {
    event.kind.as_str() == vigil_eventlog::GAP_EVENT_KIND
}

/// A gap as one event of the stream (mode, state and time filled in by
/// [`replay`] from the events around it).
fn gap_event(gap: &Gap, until: u64) -> Event {
    Event {
        seq: gap.last.min(until),
        unix_ms: crate::clock::now_ms(),
        kind: EventKind::Other(vigil_eventlog::GAP_EVENT_KIND.to_owned()),
        sensor: None,
        sensor_state: None,
        camera: None,
        mode: ArmedMode::Disarmed,
        alarm: AlarmState::Idle,
        user: None,
        source: vigil_domain::source::SYSTEM.to_owned(),
        message: gap.to_string(),
        trace_id: None,
    }
}

/// A gap as a line of the status's faults.
fn gap_fault(gap: &Gap) -> String {
    let file = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let why = match &gap.cause {
        GapCause::Damaged { .. } => format!("lost to damage in {}", file(&gap.segment)),
        GapCause::Skipped => "never written".to_owned(),
        GapCause::Unreadable { .. } => {
            format!("unreadable: {} has a damaged header", file(&gap.segment))
        }
        GapCause::Missing {
            set_aside: Some(aside),
        } => format!("in {}, set aside", file(aside)),
        GapCause::Missing { set_aside: None } => "in no segment".to_owned(),
    };
    format!("event log: {} {why}", gap.range())
}

/// At most this many gaps are listed in the faults (the hub's log has
/// them all).
const GAP_FAULTS: usize = 5;

/// Flag bit 0: synced before acknowledged.
const FLAG_SYNCED: u16 = 1;

/// Events the log could not store since the hub started.
#[derive(Debug, Default)]
struct Dropped {
    count: u64,
    first: u64,
    last: u64,
    /// Why the last one could not be stored.
    reason: String,
    /// Whether the log is refusing events now (its error was logged).
    refusing: bool,
}

/// What the log's health adds to the status's faults.
#[derive(Debug, Default)]
struct Health {
    /// Events not stored (a full disk).
    dropped: Dropped,
    /// Numbers the log skipped at start: the saved state had numbered
    /// events the log does not hold.
    behind: Option<(u64, u64)>,
    /// What the start-up scan found; `None` until it ends.
    scanned: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct EventLog {
    writer: LogWriter,
    /// Silent events (duress).
    private: LogWriter,
    /// When the oldest unsynced append happened.
    dirty_since: Option<Instant>,
    /// The longest an appended event waits for its sync.
    sync_window: Duration,
    /// Shared with the start-up scan's thread.
    health: Arc<Mutex<Health>>,
    /// Whether the faults changed since [`EventLog::faults_if_changed`]
    /// last gave them.
    faults_changed: Arc<std::sync::atomic::AtomicBool>,
}

impl EventLog {
    /// Opens both logs (recovering their tails, setting aside a newest
    /// segment whose header is damaged) and starts the scan of every
    /// segment. A log without a segment to write in (a full disk) is a
    /// fault in the status, not a reason to stop: the alarm works without
    /// it (a first start on a full disk has stopped before, at the alarm
    /// state's reservation).
    pub fn open(state_dir: &Path, sync_window: Duration) -> Result<EventLog, LogError> {
        let dir = state_dir.join("events");
        let (writer, recovery) = LogWriter::open(&dir, Options::default())?;
        report_recovery(&dir, &recovery);
        let health = Arc::new(Mutex::new(Health::default()));
        if let Some(why) = &recovery.no_segment {
            // The alarm works without its log; the status says so until
            // the log stores again.
            let mut h = health
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            h.dropped.refusing = true;
            h.dropped.reason = why.clone();
        }
        let small = Options {
            segment_size: 1 << 20,
        };
        let private_dir = state_dir.join("events-private");
        let (private, private_recovery) = LogWriter::open(&private_dir, small)?;
        report_recovery(&private_dir, &private_recovery);
        let faults_changed = Arc::new(std::sync::atomic::AtomicBool::new(true));
        spawn_scan(dir, Arc::clone(&health), Arc::clone(&faults_changed));
        Ok(EventLog {
            writer,
            private,
            dirty_since: None,
            sync_window,
            health,
            faults_changed,
        })
    }

    /// Appends one event to the mapped log; it is synced by [`EventLog::sync`]
    /// (the caller's choice: at once for alarm-class events) or within the
    /// sync window. An event that cannot be stored is counted (the status
    /// shows it) and its number is skipped; returns whether it was stored.
    pub fn append(&mut self, event: &Event) -> bool {
        let flags = if event.kind.is_alarm_class() {
            FLAG_SYNCED
        } else {
            0
        };
        // Numbers of events that could not be stored are never given to
        // another record: readers see them as a gap.
        self.writer.skip_to(event.seq);
        let payload = vigil_logrecord::encode(event);
        let at = event.unix_ms.saturating_mul(1_000_000);
        match self.writer.append(KIND_EVENT, flags, at, &payload) {
            Ok(_) => {
                self.dirty_since.get_or_insert_with(Instant::now);
                self.stored();
                true
            }
            Err(e) => {
                self.dropped(event, &e);
                false
            }
        }
    }

    /// An event the log refused: logged with what it was, counted.
    fn dropped(&mut self, event: &Event, e: &LogError) {
        let mut health = self.lock();
        let dropped = &mut health.dropped;
        if !dropped.refusing {
            error!(
                "the event log cannot store events: {e}; events are counted in the status's \
                 faults and logged here until it can"
            );
        }
        dropped.refusing = true;
        if dropped.count == 0 {
            dropped.first = event.seq;
        }
        dropped.count += 1;
        dropped.last = event.seq;
        dropped.reason = match e {
            LogError::NoSpace { dir, .. } => format!("no room on disk for {}", dir.display()),
            other => other.to_string(),
        };
        warn!(
            seq = event.seq,
            kind = %event.kind,
            unix_ms = event.unix_ms,
            "event not stored in the event log: {}",
            event.message
        );
        drop(health);
        self.faults_changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// An event stored: if events were refused before, the log says how
    /// many are missing.
    fn stored(&mut self) {
        let mut health = self.lock();
        if health.dropped.refusing {
            health.dropped.refusing = false;
            self.faults_changed
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let d = &health.dropped;
            if d.count == 0 {
                info!("the event log has a segment to store events in again");
                return;
            }
            warn!(
                dropped = d.count,
                first = d.first,
                last = d.last,
                "the event log stores events again; {} events since the hub started could not be \
                 stored (readers see their numbers as gaps)",
                d.count
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the log adds to the status's faults: events not stored, numbers
    /// the log skipped at start, damage the start-up scan found.
    pub fn faults(&self) -> Vec<String> {
        let health = self.lock();
        let mut faults = Vec::new();
        let d = &health.dropped;
        if d.refusing && d.count == 0 {
            faults.push(format!("event log: cannot store events ({})", d.reason));
        }
        if d.count > 0 {
            faults.push(format!(
                "event log: {} events not stored since the hub started ({}{})",
                d.count,
                d.reason,
                if d.refusing { "" } else { "; storing again" }
            ));
        }
        if let Some((first, last)) = health.behind {
            faults.push(format!(
                "event log: events {first} to {last} are not in the log (not stored before the \
                 last restart)"
            ));
        }
        faults.extend(health.scanned.iter().flatten().cloned());
        faults
    }

    /// [`EventLog::faults`], if they changed since this was last called.
    pub fn faults_if_changed(&mut self) -> Option<Vec<String>> {
        self.faults_changed
            .swap(false, std::sync::atomic::Ordering::Relaxed)
            .then(|| self.faults())
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

    /// Moves the log's numbering on to `seq` when the saved state has
    /// numbered events the log does not hold (events not stored before a
    /// restart, or a log lost): they are a gap for readers, shown in the
    /// status's faults, never filled with stand-ins.
    pub fn skip_to(&mut self, seq: u64) {
        let first = self.writer.next_seq();
        if seq < first {
            return;
        }
        self.writer.skip_to(seq + 1);
        warn!(
            first,
            last = seq,
            "the event log ends before the saved alarm state's last event: events {first} to \
             {seq} are not in the log (not stored, on a full disk, or the log was lost); readers \
             see them as a gap"
        );
        self.lock().behind = Some((first, seq));
        self.faults_changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
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

/// Logs what the writer's recovery did beyond the ordinary (the writer has
/// logged each step).
fn report_recovery(dir: &Path, recovery: &vigil_eventlog::Recovery) {
    let damaged = recovery
        .gaps
        .iter()
        .any(|g| matches!(g.cause, GapCause::Damaged { .. }));
    if recovery.sealed || recovery.set_aside.is_some() || damaged {
        warn!(
            dir = %dir.display(),
            next_seq = recovery.next_seq,
            sealed = recovery.sealed,
            set_aside = recovery.set_aside.is_some(),
            gaps = recovery.gaps.len(),
            "the event log was recovered from damage; the hub goes on (see the lines above)"
        );
    }
}

/// Reads every segment of the log on a thread of its own and puts the gaps
/// it finds into the faults: damage in a segment the recovery does not
/// read (an older one) is reported at every start, not found by chance.
fn spawn_scan(
    dir: PathBuf,
    health: Arc<Mutex<Health>>,
    changed: Arc<std::sync::atomic::AtomicBool>,
) {
    let scan = move || {
        let started = Instant::now();
        let found = match vigil_eventlog::scan(&dir) {
            Ok(gaps) => gaps,
            Err(e) => {
                error!(dir = %dir.display(), "cannot read the whole event log: {e}");
                return;
            }
        };
        for gap in &found {
            error!(
                segment = %gap.segment.display(),
                first_lost = gap.first,
                last_lost = gap.last,
                "{gap}"
            );
        }
        let lost: u64 = found.iter().map(Gap::count).sum();
        info!(
            dir = %dir.display(),
            gaps = found.len(),
            lost,
            took_ms = started.elapsed().as_millis() as u64,
            "event log checked"
        );
        let mut faults: Vec<String> = found.iter().take(GAP_FAULTS).map(gap_fault).collect();
        if found.len() > GAP_FAULTS {
            faults.push(format!(
                "event log: {} more gaps (the hub's log lists them)",
                found.len() - GAP_FAULTS
            ));
        }
        health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .scanned = Some(faults);
        changed.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("vigil-log-scan".into())
        .spawn(scan)
    {
        error!("cannot start the event log's check: {e}");
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

    fn kinds_and_seqs(events: &[Event]) -> Vec<(u64, String)> {
        events
            .iter()
            .map(|e| (e.seq, e.kind.as_str().to_owned()))
            .collect()
    }

    fn gap(seq: u64) -> (u64, String) {
        (seq, vigil_eventlog::GAP_EVENT_KIND.to_owned())
    }

    /// Waits for the start-up check's faults.
    fn scanned_faults(log: &mut EventLog) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(faults) = log.faults_if_changed()
                && log.lock().scanned.is_some()
            {
                return faults;
            }
            assert!(Instant::now() < deadline, "the log's check never ended");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn the_log_keeps_stream_numbers_and_replays_events() {
        let dir = tempfile::tempdir().expect("dir");
        let mut log = EventLog::open(dir.path(), Duration::from_millis(100)).expect("open");
        // A state file ahead of a new log: the numbers it does not hold are
        // a gap, said in the faults and to a watcher, never stand-ins.
        log.skip_to(3);
        assert_eq!(log.last_seq(), 3);
        for (seq, kind) in [
            (4, EventKind::Armed),
            (5, EventKind::Sensor),
            (6, EventKind::Triggered),
        ] {
            assert!(log.append(&event(seq, kind)));
        }
        log.sync();
        assert_eq!(log.last_seq(), 6);
        let events = replay(&dir.path().join("events"), 0, 6).expect("replay");
        assert_eq!(
            kinds_and_seqs(&events),
            [
                gap(3),
                (4, "armed".into()),
                (5, "sensor".into()),
                (6, "triggered".into())
            ]
        );
        assert!(
            events[0].message.contains("records 1 to 3"),
            "{}",
            events[0].message
        );
        // A gap takes the mode and state around it.
        assert_eq!(events[0].mode, ArmedMode::Away);
        let later = replay(&dir.path().join("events"), 4, 5).expect("replay");
        assert_eq!(kinds_and_seqs(&later), [(5, "sensor".into())]);
        let faults = log.faults();
        assert!(
            faults
                .iter()
                .any(|f| f.contains("events 1 to 3 are not in the log")),
            "{faults:?}"
        );
    }

    /// An event the log cannot store (here: larger than a segment; on a
    /// full disk, one for which no segment can be made) is counted in the
    /// faults, its number is never given to another, and a watcher sees
    /// the gap.
    #[test]
    fn an_event_the_log_refuses_is_counted_and_its_number_skipped() {
        let dir = tempfile::tempdir().expect("dir");
        let mut log = EventLog::open(dir.path(), Duration::from_millis(100)).expect("open");
        assert!(log.append(&event(1, EventKind::Armed)));
        let mut huge = event(2, EventKind::Sensor);
        huge.message = "x".repeat(17 << 20);
        assert!(!log.append(&huge));
        let faults = log.faults_if_changed().expect("changed");
        assert!(
            faults
                .iter()
                .any(|f| f.starts_with("event log: 1 events not stored")),
            "{faults:?}"
        );
        assert!(log.append(&event(3, EventKind::Disarmed)));
        log.sync();
        assert_eq!(log.last_seq(), 3);
        let faults = log.faults();
        assert!(
            faults.iter().any(|f| f.contains("storing again")),
            "{faults:?}"
        );
        let events = replay(&dir.path().join("events"), 0, 3).expect("replay");
        assert_eq!(
            kinds_and_seqs(&events),
            [(1, "armed".into()), gap(2), (3, "disarmed".into())]
        );
    }

    /// Damage in an older segment (which recovery does not read) is found
    /// by the start-up check and shown in the faults; a watcher replaying
    /// past it sees it as a gap, and the events after it.
    #[test]
    fn damage_found_at_start_is_a_fault_and_a_gap_in_the_replay() {
        let dir = tempfile::tempdir().expect("dir");
        let events_dir = dir.path().join("events");
        {
            let mut log = EventLog::open(dir.path(), Duration::from_millis(100)).expect("open");
            for seq in 1..=5 {
                assert!(log.append(&event(seq, EventKind::Sensor)));
            }
            log.sync();
        }
        // A flipped bit in record 3's payload.
        let segment = std::fs::read_dir(&events_dir)
            .expect("dir")
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "vlog"))
            .expect("a segment");
        let mut bytes = std::fs::read(&segment).expect("read");
        let mut at = vigil_eventlog::HEADER_LEN;
        for _ in 1..3 {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            at += (len + 7) & !7;
        }
        bytes[at + vigil_eventlog::RECORD_HEADER_LEN + 2] ^= 0x08;
        std::fs::write(&segment, bytes).expect("write");
        let mut log = EventLog::open(dir.path(), Duration::from_millis(100)).expect("open");
        let faults = scanned_faults(&mut log);
        assert!(
            faults
                .iter()
                .any(|f| f.starts_with("event log: record 3 lost to damage in")),
            "{faults:?}"
        );
        assert_eq!(log.last_seq(), 5, "nothing after the damage is lost");
        assert!(log.append(&event(6, EventKind::Sensor)));
        log.sync();
        let events = replay(&events_dir, 1, 6).expect("replay");
        let seqs: Vec<(u64, String)> = kinds_and_seqs(&events);
        assert_eq!(
            seqs,
            [
                (2, "sensor".into()),
                gap(3),
                (4, "sensor".into()),
                (5, "sensor".into()),
                (6, "sensor".into())
            ]
        );
        assert!(
            events[1]
                .message
                .contains("record 3 of the event log is lost")
        );
    }
}

//! `[events]`: the event log's durability and retention.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Checker;
use crate::limits::{LOG_MAX_AGE_DAYS, LOG_MAX_MEGABYTES, SYNC_WINDOW_MS};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsFile {
    sync_window_ms: Option<u64>,
    max_age_days: Option<u64>,
    max_megabytes: Option<u64>,
}

/// The event log's durability and retention (`[events]`).
#[derive(Clone, Debug, PartialEq)]
pub struct EventsConfig {
    /// The longest an ordinary event waits to be synced (alarm-class events
    /// are synced before they are acknowledged): what a power cut can lose.
    pub sync_window: Duration,
    /// Whole segments sealed longer ago go (`None`: kept by age).
    pub max_age: Option<Duration>,
    /// The oldest segments go while the log is larger (`None`: no budget).
    /// Never a segment that reportd has not indexed.
    pub max_bytes: Option<u64>,
}

/// `days` as a duration; 0 means "kept" (`None`).
pub(crate) fn days(days: u64) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(days * 86_400))
}

pub(crate) fn check(c: &mut Checker, e: EventsFile) -> EventsConfig {
    let sync_window_ms = c.bounded("events.sync_window_ms", e.sync_window_ms, &SYNC_WINDOW_MS);
    let max_age_days = c.bounded("events.max_age_days", e.max_age_days, &LOG_MAX_AGE_DAYS);
    let max_megabytes = c.bounded("events.max_megabytes", e.max_megabytes, &LOG_MAX_MEGABYTES);
    EventsConfig {
        sync_window: Duration::from_millis(sync_window_ms),
        max_age: days(max_age_days),
        max_bytes: (max_megabytes > 0).then_some(max_megabytes << 20),
    }
}

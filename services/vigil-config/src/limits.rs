//! Every bounded number of the file, in one table: its default, its range,
//! its unit and what it means (the fix of a refusal says all four). The
//! NixOS module's option types repeat these ranges
//! (`nixos/modules/vigil.nix`); the defaults are checked against the
//! module's by `tests/nixos_defaults.rs`.
//!
//! Ages stop at a hundred years and sizes at 16 TiB: far beyond any real
//! setting, and where their seconds and bytes still fit in a u64.

use std::ops::RangeInclusive;

use vigil_domain::{MAX_ENTRY_DELAY, MAX_EXIT_DELAY, TRIGGER_TIME_RANGE};

/// A bounded number: default, range, unit and meaning.
pub(crate) struct Limit<T> {
    pub(crate) default: T,
    pub(crate) range: RangeInclusive<T>,
    pub(crate) unit: &'static str,
    pub(crate) meaning: &'static str,
}

/// One `NAME: type = default, range, unit, meaning;` line per limit, so that
/// the table reads as one (a macro body with braces is left as written).
macro_rules! limits {
    ($($name:ident: $t:ty = $default:expr, $range:expr, $unit:expr, $meaning:expr;)*) => {
        $(pub(crate) const $name: Limit<$t> = Limit {
            default: $default,
            range: $range,
            unit: $unit,
            meaning: $meaning,
        };)*
    };
}

// A mode's timing defaults to its mode's (ModeTiming::default_for): the
// defaults of EXIT_DELAY_SECS, ENTRY_DELAY_SECS and TRIGGER_SECS stand in
// only after a refusal.
limits! {
    // [[sensors]]
    DEBOUNCE_MS: u64 = 50, 0..=5000, " ms", "how long a new level must hold (50 suits reed switches, 10 PIR outputs)";
    SUPERVISION_SECS: u64 = 86_400, 60..=31_536_000, " s", "a sensor silent this long is a fault";
    // [alarm]
    EXIT_DELAY_SECS: u64 = 0, 0..=MAX_EXIT_DELAY.as_secs(), " s", "the time to leave after arming";
    ENTRY_DELAY_SECS: u64 = 0, 0..=MAX_ENTRY_DELAY.as_secs(), " s", "the time to disarm after an entry door opens (EN 50131 grade 2)";
    TRIGGER_SECS: u64 = 180, TRIGGER_TIME_RANGE.start().as_secs()..=TRIGGER_TIME_RANGE.end().as_secs(), " s", "how long the siren sounds (EN 50131 grade 2: 2 to 15 minutes)";
    DOUBLE_KNOCK_SECS: u64 = 30, 1..=3600, " s", "the window in which two sensors of a double-knock group must activate";
    // [[cameras]]
    WIDTH: u32 = 1280, 16..=3840, " px", "the frame's width, even";
    HEIGHT: u32 = 720, 16..=2160, " px", "the frame's height";
    FRAMERATE: u32 = 15, 1..=60, " fps", "frames per second";
    BITRATE_KBPS: u32 = 2000, 100..=50_000, " kbit/s", "the encoder's target bitrate";
    KEYFRAME_SECS: u32 = 1, 1..=10, " s", "the time between key frames (clips and live view start at one)";
    MOTION_PERCENT: u32 = 2, 1..=100, " %", "how much of the picture must change between key frames to count as motion";
    // [recording]
    RING_SECS: u64 = 30, 1..=60, " s", "seconds of video kept in memory per camera";
    PRE_ROLL_SECS: u64 = 10, 0..=60, " s", "seconds of the ring a clip starts with, at most ring_secs";
    POST_CAPTURE_SECS: u64 = 20, 1..=600, " s", "how long a clip goes on after the trigger";
    OFFLINE_AFTER_SECS: u64 = 10, 1..=600, " s", "no frame and no heartbeat this long: the camera is offline";
    CLIP_MAX_AGE_DAYS: u64 = 30, 0..=36_500, " days", "clips older than this are removed (0 keeps them)";
    MIN_FREE_MEGABYTES: u64 = 500, 0..=16_777_216, " MiB", "the oldest clips go while the disk has less free than this";
    SLOTS: u32 = 2, 1..=16, "", "how many clips may be written at once";
    // [alerts]
    DEPTH: i64 = 256, 1..=65_536, "", "messages the queue holds (fs.mqueue.msg_max must allow as many)";
    MSG_SIZE: i64 = 8192, 256..=1_048_576, " bytes", "the largest alert (fs.mqueue.msgsize_max must allow it)";
    COOLDOWN_SECS: u64 = 60, 0..=86_400, " s", "how long the same alert is not repeated (0: always)";
    HOOK_TIMEOUT_MS: u64 = 5000, 1..=600_000, " ms", "how long a hook may take to read one alert before it is restarted";
    // [events]
    SYNC_WINDOW_MS: u64 = 100, 1..=5000, " ms", "how long an ordinary event may wait to be synced to disk";
    LOG_MAX_AGE_DAYS: u64 = 365, 0..=36_500, " days", "segments older than this go (0 keeps them)";
    LOG_MAX_MEGABYTES: u64 = 1024, 0..=16_777_216, " MiB", "the oldest segments go while the log is larger (0: no limit)";
    // [webhook]
    TIMEOUT_SECS: u64 = 10, 1..=300, " s", "how long one POST may take";
}

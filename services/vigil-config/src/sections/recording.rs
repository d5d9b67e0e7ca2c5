//! `[recording]`: the hub's camera server and recorder (ring, clips and
//! their retention, recording slots, the discovery beacon).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::events::days;
use crate::check::Checker;
use crate::limits::{
    CLIP_MAX_AGE_DAYS, MIN_FREE_MEGABYTES, OFFLINE_AFTER_SECS, POST_CAPTURE_SECS, PRE_ROLL_SECS,
    RING_SECS, SLOTS,
};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RecordingFile {
    listen: Option<String>,
    ring_secs: Option<u64>,
    pre_roll_secs: Option<u64>,
    post_capture_secs: Option<u64>,
    offline_after_secs: Option<u64>,
    max_age_days: Option<u64>,
    min_free_megabytes: Option<u64>,
    slots: Option<u32>,
    semaphore: Option<String>,
    beacon: Option<String>,
}

/// The hub's camera server and recorder (`[recording]`).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingConfig {
    /// Seconds of video kept per camera in memory (at most 60).
    pub ring: Duration,
    /// Of those, how much goes into a clip before the trigger.
    pub pre_roll: Duration,
    /// How long a clip goes on after the trigger.
    pub post_capture: Duration,
    /// Clips older than this are removed (`None`: kept).
    pub max_age: Option<Duration>,
    /// The oldest clips go while the disk has less free than this.
    pub min_free_bytes: u64,
    /// Where the discovery beacon goes (`None`: no beacon).
    pub beacon: Option<SocketAddr>,
    /// Where cameras connect (TCP) and send heartbeats (UDP, same port).
    pub listen: SocketAddr,
    /// No frame and no heartbeat for this long: the camera is offline.
    pub offline_after: Duration,
    /// How many clips may be written at once (a named semaphore).
    pub slots: u32,
    /// The named POSIX semaphore that counts recording slots.
    pub semaphore: String,
}

pub(crate) fn check(c: &mut Checker, r: RecordingFile) -> RecordingConfig {
    let listen = r.listen.as_deref().unwrap_or("[::]:7445");
    let listen = c.socket_addr(
        "recording.listen",
        listen,
        "use a form like \"[::]:7445\" or \"192.168.1.10:7445\"",
    );
    let ring = c.bounded("recording.ring_secs", r.ring_secs, &RING_SECS);
    let pre_roll = c.bounded("recording.pre_roll_secs", r.pre_roll_secs, &PRE_ROLL_SECS);
    // The pre-roll is cut from the ring: it cannot be longer.
    if pre_roll > ring {
        c.report(
            "recording.pre_roll_secs",
            format!("{pre_roll} s is out of range: the ring (ring_secs) holds {ring} s"),
            format!("use 0 s to {ring} s, or a longer ring_secs"),
        );
    }
    let post_capture = c.bounded(
        "recording.post_capture_secs",
        r.post_capture_secs,
        &POST_CAPTURE_SECS,
    );
    let offline_after = c.bounded(
        "recording.offline_after_secs",
        r.offline_after_secs,
        &OFFLINE_AFTER_SECS,
    );
    let max_age_days = c.bounded("recording.max_age_days", r.max_age_days, &CLIP_MAX_AGE_DAYS);
    let min_free_mb = c.bounded(
        "recording.min_free_megabytes",
        r.min_free_megabytes,
        &MIN_FREE_MEGABYTES,
    );
    let semaphore = r.semaphore.unwrap_or_else(|| "/vigil-recording".to_owned());
    c.posix_name("recording.semaphore", &semaphore, "/vigil-recording");
    RecordingConfig {
        listen,
        ring: Duration::from_secs(ring),
        pre_roll: Duration::from_secs(pre_roll),
        post_capture: Duration::from_secs(post_capture),
        offline_after: Duration::from_secs(offline_after),
        max_age: days(max_age_days),
        min_free_bytes: min_free_mb << 20,
        slots: c.bounded("recording.slots", r.slots, &SLOTS),
        semaphore,
        beacon: beacon(c, r.beacon.as_deref()),
    }
}

/// Where the beacon goes: the broadcast address by default, none when "off".
fn beacon(c: &mut Checker, text: Option<&str>) -> Option<SocketAddr> {
    match text {
        None => Some(SocketAddr::from(([255, 255, 255, 255], 7446))),
        Some("") | Some("off") => None,
        Some(text) => Some(c.socket_addr(
            "recording.beacon",
            text,
            "use a broadcast address and port like \"192.168.1.255:7446\", or \"off\"",
        )),
    }
}

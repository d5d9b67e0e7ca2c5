//! Clip files: `<state_dir>/clips/<camera>-<UTC yyyymmddThhmmssZ>-<reason>.mp4`,
//! their listing and their retention (by age, and a free-disk floor).
//!
//! Beside a clip, two optional files of its own, removed with it: a still
//! of its first key frame (`<name>.jpg`, for the app's list) and its record
//! (`<name>.json`, [`ClipRecord`]: the alarm event that made it).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tracing::{info, warn};
use vigil_config::RecordingConfig;

/// A clip as ListClips shows it.
#[derive(Debug, Clone)]
pub struct ClipInfo {
    pub name: String,
    pub camera: String,
    pub reason: String,
    pub unix_ms: i64,
    pub bytes: u64,
    pub seconds: f64,
    /// The "triggered" event that made it, for an alarm's clip.
    pub alarm_seq: Option<u64>,
    pub has_thumbnail: bool,
}

/// What the hub keeps about a clip beside it (a wire type: it derives
/// serde), in `<name>.json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(super) struct ClipRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_seq: Option<u64>,
}

/// The still beside the clip `name`.
pub fn thumbnail_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.jpg"))
}

/// The record beside the clip `name`.
pub(super) fn record_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.json"))
}

/// Removes the clip `name` and what is kept beside it; the clip's own
/// removal decides the answer.
pub fn remove_clip(dir: &Path, name: &str) -> std::io::Result<()> {
    std::fs::remove_file(dir.join(name))?;
    for beside in [thumbnail_path(dir, name), record_path(dir, name)] {
        match std::fs::remove_file(&beside) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                warn!(path = %beside.display(), "cannot remove a clip's companion file: {e}");
            }
            _ => {}
        }
    }
    Ok(())
}

/// The file name of a clip started at `unix_ms`.
pub(super) fn clip_name(camera: &str, unix_ms: i64, reason: &str) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(unix_ms).unwrap_or(0));
    let stamp: String = humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("{camera}-{stamp}-{reason}.mp4")
}

/// Whether `name` has the form of a clip's name: a plain file name (no
/// path, not hidden) of `-`, `_`, `.` and ASCII letters and digits,
/// ending in `.mp4`, at most 255 bytes.
pub fn well_formed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && name.ends_with(".mp4")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The path of the clip called `name`, if it is one ([`well_formed`])
/// that exists.
pub fn clip_path(dir: &Path, name: &str) -> Option<PathBuf> {
    let path = dir.join(name);
    (well_formed(name) && path.is_file()).then_some(path)
}

/// The duration in an MP4's `moov/mvhd` box, in seconds.
fn mp4_seconds(path: &Path) -> Option<f64> {
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut at = 0u64;
    // Top-level boxes: find moov.
    let (moov_start, moov_end) = loop {
        if at + 8 > len {
            return None;
        }
        f.seek(SeekFrom::Start(at)).ok()?;
        let mut h = [0u8; 8];
        f.read_exact(&mut h).ok()?;
        let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let size = if size == 1 {
            let mut big = [0u8; 8];
            f.read_exact(&mut big).ok()?;
            u64::from_be_bytes(big)
        } else if size == 0 {
            len - at
        } else {
            size
        };
        if size < 8 {
            return None;
        }
        if &h[4..8] == b"moov" {
            break (at + 8, (at + size).min(len));
        }
        at += size;
    };
    // Inside moov: mvhd.
    let mut at = moov_start;
    while at + 8 <= moov_end {
        f.seek(SeekFrom::Start(at)).ok()?;
        let mut h = [0u8; 8];
        f.read_exact(&mut h).ok()?;
        let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        if &h[4..8] == b"mvhd" {
            let mut v = [0u8; 4];
            f.read_exact(&mut v).ok()?;
            let (timescale, duration) = if v[0] == 1 {
                let mut b = [0u8; 28];
                f.read_exact(&mut b).ok()?;
                (
                    u32::from_be_bytes([b[16], b[17], b[18], b[19]]),
                    u64::from_be_bytes([b[20], b[21], b[22], b[23], b[24], b[25], b[26], b[27]]),
                )
            } else {
                let mut b = [0u8; 16];
                f.read_exact(&mut b).ok()?;
                (
                    u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
                    u64::from(u32::from_be_bytes([b[12], b[13], b[14], b[15]])),
                )
            };
            return (timescale > 0).then(|| duration as f64 / f64::from(timescale));
        }
        if size < 8 {
            return None;
        }
        at += size;
    }
    None
}

/// What a clip file is.
pub fn describe(dir: &Path, name: &str) -> Option<ClipInfo> {
    let path = clip_path(dir, name)?;
    let stem = name.strip_suffix(".mp4")?;
    let mut parts = stem.rsplitn(3, '-');
    let reason = parts.next()?.to_owned();
    let stamp = parts.next()?;
    let camera = parts.next()?.to_owned();
    let meta = std::fs::metadata(&path).ok()?;
    let unix_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(0))
        .unwrap_or(0);
    let _ = stamp;
    let record: ClipRecord = std::fs::read(record_path(dir, name))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    Some(ClipInfo {
        name: name.to_owned(),
        camera,
        reason,
        unix_ms,
        bytes: meta.len(),
        seconds: mp4_seconds(&path).unwrap_or(0.0),
        alarm_seq: record.alarm_seq,
        has_thumbnail: thumbnail_path(dir, name).is_file(),
    })
}

/// Every clip in `dir`, newest first.
pub fn list_clips(dir: &Path) -> Vec<ClipInfo> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut clips: Vec<ClipInfo> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| describe(dir, &e.file_name().to_string_lossy()))
        .collect();
    clips.sort_by(|a, b| b.unix_ms.cmp(&a.unix_ms).then(b.name.cmp(&a.name)));
    clips
}

fn free_bytes(dir: &Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

/// Removes clips older than the configured age, then the oldest while the
/// disk has less free space than the floor.
pub(super) fn retire(dir: &Path, config: &RecordingConfig) {
    let mut clips = list_clips(dir);
    let now_ms = i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX);
    let remove = |clip: &ClipInfo, why: &str| match remove_clip(dir, &clip.name) {
        Ok(()) => info!(clip = %clip.name, "removed a clip: {why}"),
        Err(e) => warn!(clip = %clip.name, "cannot remove a clip ({why}): {e}"),
    };
    if let Some(max_age) = config.max_age {
        let cutoff = now_ms - i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        clips.retain(|c| {
            let old = c.unix_ms < cutoff;
            if old {
                remove(c, "older than recording.max_age_days");
            }
            !old
        });
    }
    while free_bytes(dir).is_some_and(|f| f < config.min_free_bytes) {
        let Some(oldest) = clips.pop() else { break };
        remove(&oldest, "the disk is below recording.min_free_megabytes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let name = clip_name("porch", 1_795_000_000_000, "alarm");
        assert_eq!(name, "porch-20261118T110640Z-alarm.mp4");
        std::fs::write(dir.path().join(&name), b"x").expect("write");
        assert!(clip_path(dir.path(), &name).is_some());
        for bad in ["../etc/passwd", ".hidden.mp4", "a/b.mp4", "x.txt", ""] {
            assert!(clip_path(dir.path(), bad).is_none(), "{bad}");
            assert!(!well_formed(bad), "{bad}");
        }
        assert!(
            well_formed("porch-20990101T000000Z-alarm.mp4"),
            "absent but well formed"
        );
        let info = describe(dir.path(), &name).expect("describe");
        assert_eq!(
            (info.camera.as_str(), info.reason.as_str()),
            ("porch", "alarm")
        );
        assert_eq!(info.seconds, 0.0, "not an MP4: no duration");
        assert_eq!((info.alarm_seq, info.has_thumbnail), (None, false));
        // Its record and still are read with it, and removed with it.
        std::fs::write(record_path(dir.path(), &name), br#"{"alarm_seq":42}"#).expect("record");
        std::fs::write(thumbnail_path(dir.path(), &name), b"jpeg").expect("still");
        let info = describe(dir.path(), &name).expect("describe");
        assert_eq!((info.alarm_seq, info.has_thumbnail), (Some(42), true));
        remove_clip(dir.path(), &name).expect("remove");
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    fn config(max_age_days: Option<u64>, min_free_bytes: u64) -> RecordingConfig {
        RecordingConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            ring: Duration::from_secs(10),
            pre_roll: Duration::from_secs(2),
            post_capture: Duration::from_secs(2),
            offline_after: Duration::from_secs(2),
            max_age: max_age_days.map(|d| Duration::from_secs(d * 86_400)),
            min_free_bytes,
            slots: 1,
            semaphore: "/unused".into(),
            beacon: None,
        }
    }

    /// A clip file whose time is `days_ago` days back.
    fn clip(dir: &Path, camera: &str, days_ago: u64) -> String {
        let name = clip_name(camera, 1_795_000_000_000 - days_ago as i64, "alarm");
        let file = std::fs::File::create(dir.join(&name)).expect("create");
        let when = SystemTime::now() - Duration::from_secs(days_ago * 86_400);
        file.set_modified(when).expect("mtime");
        name
    }

    #[test]
    fn old_clips_go_by_age_and_the_oldest_go_below_the_free_floor() {
        let dir = tempfile::tempdir().expect("dir");
        let old = clip(dir.path(), "porch", 40);
        let recent = clip(dir.path(), "garden", 1);
        let newest = clip(dir.path(), "gate", 0);
        retire(dir.path(), &config(Some(30), 0));
        assert!(!dir.path().join(&old).exists(), "older than 30 days");
        assert!(dir.path().join(&recent).exists() && dir.path().join(&newest).exists());
        // A floor no disk can meet: clips go oldest first until none is left.
        retire(dir.path(), &config(None, u64::MAX));
        assert!(list_clips(dir.path()).is_empty());
    }
}

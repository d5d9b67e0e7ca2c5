//! Motion on video: each camera that asks (`motion = true`) has its key
//! frames (one a second, or as configured) decoded to a small grey picture
//! and compared with the one before; enough changed pixels is motion. The
//! result is a motion sensor, `<camera>-motion`, in the same sensor table
//! as the wired ones, which the hub writes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc};
use tracing::{debug, info, warn};

use super::CameraHub;

/// A pixel counts as changed when its grey level moves more than this.
const PIXEL_STEP: u8 = 20;
/// Motion ends after this many quiet key frames in a row.
const QUIET_FRAMES: u32 = 3;
/// Key frames closer together than this are not all compared.
const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// Motion from one comparison to the next: active at once, inactive after
/// [`QUIET_FRAMES`] quiet comparisons in a row.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct MotionState {
    active: bool,
    quiet: u32,
}

impl MotionState {
    /// Takes one comparison; returns the new state when it changed.
    pub(super) fn update(&mut self, moving: bool) -> Option<bool> {
        self.quiet = if moving { 0 } else { self.quiet + 1 };
        let active = moving || (self.active && self.quiet < QUIET_FRAMES);
        (active != self.active).then(|| {
            self.active = active;
            active
        })
    }
}

/// A camera's motion sensor changed.
#[derive(Debug, Clone, Copy)]
pub struct MotionChange {
    /// Its slot in the sensor table.
    pub slot: usize,
    pub active: bool,
}

/// Watches `camera`'s key frames for motion for ever, sending changes.
pub async fn watch_motion(
    hub: Arc<CameraHub>,
    camera: String,
    slot: usize,
    percent: u32,
    changes: mpsc::UnboundedSender<MotionChange>,
) {
    let Ok((_, mut live)) = hub.watch(&camera) else {
        return;
    };
    let mut previous: Option<Vec<u8>> = None;
    let mut state = MotionState::default();
    let mut last = Instant::now() - MIN_INTERVAL;
    loop {
        let frame = match live.recv().await {
            Ok(f) if f.unit.key && last.elapsed() >= MIN_INTERVAL => f,
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        };
        last = Instant::now();
        let unit = frame.unit.clone();
        let grey = match tokio::task::spawn_blocking(move || {
            vigil_media::key_frame_to_grey(&unit, Duration::from_secs(2))
        })
        .await
        {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => {
                warn!(%camera, "motion detection skipped a frame: {e}");
                continue;
            }
            Err(_) => return,
        };
        if let Some(before) = previous.replace(grey.clone()) {
            let share = vigil_media::changed_share(&before, &grey, PIXEL_STEP);
            let moving = share * 100.0 >= f64::from(percent);
            debug!(%camera, share, moving, "motion check");
            if let Some(active) = state.update(moving) {
                info!(%camera, share, "motion {}", if active { "seen" } else { "ended" });
                if changes.send(MotionChange { slot, active }).is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn motion_starts_at_once_and_ends_after_three_quiet_frames() {
        let mut m = MotionState::default();
        assert_eq!(m.update(false), None, "still");
        assert_eq!(m.update(true), Some(true), "starts at once");
        assert_eq!(m.update(false), None);
        assert_eq!(m.update(true), None, "a movement restarts the count");
        assert_eq!(m.update(false), None);
        assert_eq!(m.update(false), None);
        assert_eq!(m.update(false), Some(false), "three quiet frames end it");
        assert_eq!(m.update(false), None);
    }
}

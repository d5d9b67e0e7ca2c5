//! The camera commands: `cameras`, `snapshot`, `live`, `record`, `clips`,
//! `clip`, `clip-still`, `clip-delete` and `camera` (start, stop,
//! bitrate). Video and pictures go to files; what is printed describes
//! them.

use std::io::Write;
use std::path::PathBuf;

use serde_json::json;
use vigil_proto::v1 as pb;

use super::list::Row;
use super::{Ask, write_file};
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, Render};

/// Save a JPEG of a camera's newest key frame.
#[derive(Debug, clap::Args)]
pub struct Snapshot {
    pub camera: String,
    /// Where to write the JPEG.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
}

impl Ask for Snapshot {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let camera = self.camera.clone();
        let shot = hub.answer(hub.cameras().snapshot(pb::SnapshotRequest { camera }).await)?;
        let jpeg = shot.jpeg;
        write_file(&self.output, &jpeg)?;
        let path = self.output.display();
        out.say(format_args!("wrote a {} byte JPEG to {path}", jpeg.len()));
        Ok(())
    }
}

/// Watch a camera's live H.264: print each frame (or write the raw
/// Annex B stream to --output, playable with ffplay or gst-play-1.0).
#[derive(Debug, clap::Args)]
pub struct Live {
    pub camera: String,
    /// Stop after this many frames (default: run until Ctrl-C).
    #[arg(long)]
    pub frames: Option<u64>,
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl Ask for Live {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let camera = self.camera.clone();
        let request = pb::WatchLiveRequest { camera };
        let mut stream = hub.answer(hub.cameras().watch_live(request).await)?;
        let mut file = match &self.output {
            Some(path) => Some(std::fs::File::create(path).map_err(|source| Error::Create {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let mut seen = 0u64;
        while self.frames.is_none_or(|n| seen < n) {
            let Some(frame) = hub.next(&mut stream).await? else {
                break;
            };
            seen += 1;
            match file.as_mut() {
                Some(f) => f.write_all(&frame.data).map_err(Error::Stream)?,
                None => out.show(&frame),
            }
        }
        Ok(())
    }
}

impl Render for pb::LiveFrame {
    fn json(&self) -> serde_json::Value {
        json!({"pts_us": self.pts_us, "key": self.key, "bytes": self.data.len()})
    }

    fn text(&self) -> String {
        let kind = if self.key { "KEY  " } else { "delta" };
        format!("{:>12} us {kind} {} bytes\n", self.pts_us, self.data.len())
    }
}

/// Record a clip now (pre-roll and post-capture as configured).
#[derive(Debug, clap::Args)]
pub struct Record {
    pub camera: String,
}

impl Ask for Record {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let request = pb::RecordClipRequest {
            camera: self.camera.clone(),
        };
        out.show(&hub.answer(hub.cameras().record_clip(request).await)?);
        Ok(())
    }
}

/// The clip just recorded: the clip's JSON, and a sentence saying so.
impl Render for pb::RecordClipResponse {
    fn json(&self) -> serde_json::Value {
        self.clip.clone().unwrap_or_default().json()
    }

    fn text(&self) -> String {
        let clip = self.clip.clone().unwrap_or_default();
        let (name, seconds, bytes) = (clip.name, clip.seconds, clip.bytes);
        format!("recorded {name} ({seconds:.1} s, {bytes} bytes)\n")
    }
}

/// Download a clip (MP4).
#[derive(Debug, clap::Args)]
pub struct Clip {
    pub name: String,
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
}

/// How many times a cut download resumes before it gives up.
const CLIP_RESUMES: u32 = 3;

impl Ask for Clip {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        // The hub sends the clip in chunks; the file is written whole, so a
        // broken download leaves no half a clip behind. A stream cut short
        // resumes from the bytes already here (GetClip's offset).
        let mut bytes = Vec::new();
        let mut resumes = 0;
        loop {
            let request = pb::GetClipRequest {
                name: self.name.clone(),
                offset: bytes.len() as u64,
                length: 0,
            };
            let mut stream = hub.answer(hub.cameras().get_clip(request).await)?;
            let mut total = None;
            let cut = loop {
                match hub.next(&mut stream).await {
                    Ok(Some(chunk)) => {
                        total = Some(chunk.total_bytes);
                        bytes.extend_from_slice(&chunk.data);
                    }
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            match cut {
                None if total.is_none_or(|t| bytes.len() as u64 >= t) => break,
                Some(e) if resumes >= CLIP_RESUMES => return Err(e),
                None | Some(_) if resumes >= CLIP_RESUMES => {
                    return Err(Error::Truncated {
                        what: "the clip",
                        got: bytes.len() as u64,
                    });
                }
                _ => resumes += 1,
            }
        }
        write_file(&self.output, &bytes)?;
        out.say(format_args!(
            "wrote {} ({} bytes)",
            self.output.display(),
            bytes.len()
        ));
        Ok(())
    }
}

/// Save the still of a clip's first frame (JPEG).
#[derive(Debug, clap::Args)]
pub struct ClipStill {
    pub name: String,
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
}

impl Ask for ClipStill {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let name = self.name.clone();
        let request = pb::GetClipThumbnailRequest { name };
        let still = hub.answer(hub.cameras().get_clip_thumbnail(request).await)?;
        write_file(&self.output, &still.jpeg)?;
        let path = self.output.display();
        out.say(format_args!(
            "wrote a {} byte JPEG to {path}",
            still.jpeg.len()
        ));
        Ok(())
    }
}

/// Delete a clip and its still (admin; an event records who).
#[derive(Debug, clap::Args)]
pub struct ClipDelete {
    pub name: String,
}

impl Ask for ClipDelete {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let name = self.name.clone();
        hub.answer(
            hub.cameras()
                .delete_clip(pb::DeleteClipRequest { name })
                .await,
        )?;
        out.say(format_args!("deleted {}", self.name));
        Ok(())
    }
}

/// Start or stop a camera's frames, or set its bitrate (admin).
#[derive(Debug, clap::Args)]
pub struct Camera {
    pub camera: String,
    #[command(subcommand)]
    pub action: CameraAction,
}

#[derive(Debug, clap::Subcommand)]
pub enum CameraAction {
    /// Send frames again.
    Start,
    /// Stop sending frames (the camera stays online; no clips from it).
    Stop,
    /// Encode at this many kbit/s (100 to 20000).
    Bitrate { kbps: u32 },
}

impl Ask for Camera {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        use pb::control_camera_request::Action;
        let (action, bitrate_kbps) = match self.action {
            CameraAction::Start => (Action::Start, 0),
            CameraAction::Stop => (Action::Stop, 0),
            CameraAction::Bitrate { kbps } => (Action::SetBitrate, kbps),
        };
        let request = pb::ControlCameraRequest {
            camera: self.camera.clone(),
            action: action as i32,
            bitrate_kbps,
        };
        let answer = hub.answer(hub.cameras().control_camera(request).await)?;
        out.say(format_args!("{}: {}", self.camera, answer.message));
        Ok(())
    }
}

impl Render for pb::Camera {
    fn json(&self) -> serde_json::Value {
        json!({
            "name": self.name, "online": self.online, "width": self.width,
            "height": self.height, "fps": self.fps, "frames": self.frames,
            "last_seen_unix_ms": self.last_seen_unix_ms,
            "buffered_seconds": self.buffered_seconds,
            "buffered_bytes": self.buffered_bytes,
        })
    }

    fn text(&self) -> String {
        format!(
            "{:<16} {:<8} {}x{}@{} {} frames, {:.1} s buffered\n",
            self.name,
            if self.online { "online" } else { "OFFLINE" },
            self.width,
            self.height,
            self.fps,
            self.frames,
            self.buffered_seconds
        )
    }
}

impl Row for pb::Camera {
    const ABOUT: &str = "The cameras and whether they are online";
    async fn fetch(hub: &Hub) -> Result<Vec<Self>, Error> {
        let list = hub.cameras().list_cameras(pb::ListCamerasRequest {}).await;
        Ok(hub.answer(list)?.cameras)
    }
}

impl Render for pb::Clip {
    fn json(&self) -> serde_json::Value {
        json!({
            "name": self.name, "camera": self.camera, "reason": self.reason,
            "unix_ms": self.unix_ms, "bytes": self.bytes, "seconds": self.seconds,
            "alarm_seq": (self.alarm_seq != 0).then_some(self.alarm_seq),
            "has_thumbnail": self.has_thumbnail,
        })
    }

    fn text(&self) -> String {
        format!(
            "{}  {:.1} s  {} bytes\n",
            self.name, self.seconds, self.bytes
        )
    }
}

impl Row for pb::Clip {
    const ABOUT: &str = "The recorded clips, newest first";
    async fn fetch(hub: &Hub) -> Result<Vec<Self>, Error> {
        let list = hub.cameras().list_clips(pb::ListClipsRequest {}).await;
        Ok(hub.answer(list)?.clips)
    }
}

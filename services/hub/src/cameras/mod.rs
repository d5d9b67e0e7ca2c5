//! The hub's camera server: cameras connect over TCP (the camera link,
//! `vigil-camlink`), prove their key, and stream H.264 access units; the
//! hub keeps each camera's last seconds in a [`Ring`], fans frames out to
//! live viewers, records clips with pre-roll on an alarm or on request,
//! and watches for cameras going silent.
//!
//! Must never: re-encode (clips are the camera's own units, muxed), let one
//! camera's bad connection touch another (a task per connection, every read
//! bounded), or write more clips at once than the recording semaphore
//! allows.

mod clips;
mod motion;
mod ring;
mod server;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tracing::{info, warn};
use vigil_camlink::{CommandKind, HeartbeatGuard, Key, Message};
use vigil_config::{Config, RecordingConfig};
use vigil_domain::EventKind;
use vigil_ipc::semaphore::NamedSemaphore;
use vigil_media::AccessUnit;

pub use clips::{
    ClipInfo, clip_path, describe, list_clips, remove_clip, thumbnail_path, well_formed,
};
pub use motion::{MotionChange, watch_motion};
pub use ring::{Ring, Stamped};
pub use server::{beacon, serve};

use crate::commands::{Command, HubHandle, HubRequest};

/// The most memory one camera's ring may take.
const RING_MAX_BYTES: usize = 64 << 20;
/// Frames a live viewer may fall behind before it skips to a key frame.
const LIVE_CAPACITY: usize = 256;
/// How often cameras are checked for silence.
const SUPERVISE_EVERY: Duration = Duration::from_millis(250);

/// What can go wrong with a camera request.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    #[error("no camera named {}", vigil_domain::text::excerpt(.0))]
    Unknown(String),
    #[error("camera {0} is offline")]
    Offline(String),
    #[error("camera {0} sent no key frame in time")]
    NoKeyFrame(String),
    #[error("every recording slot is busy ({0} clips are being written); try again")]
    Busy(u32),
    #[error("{0}")]
    Media(#[from] vigil_media::MediaError),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The live connection of a camera.
#[derive(Debug)]
struct Connection {
    id: u64,
    commands: mpsc::Sender<Message>,
}

/// Everything the hub knows about one camera.
#[derive(Debug)]
struct CameraState {
    key: Option<Key>,
    /// The link its heartbeats must name and the last number taken.
    beats: HeartbeatGuard,
    ring: Ring,
    live: broadcast::Sender<Arc<Stamped>>,
    last_seen: Option<Instant>,
    last_seen_unix_ms: i64,
    /// As last announced (None: not yet, since the hub started).
    online: Option<bool>,
    connection: Option<Connection>,
    acks: HashMap<u32, oneshot::Sender<(bool, String)>>,
    next_command: u32,
    size: (u32, u32, u32),
    frames: u64,
}

/// What a live viewer starts with (the ring from its newest key frame) and
/// the feed of frames after it.
pub type LiveFeed = (Vec<Arc<Stamped>>, broadcast::Receiver<Arc<Stamped>>);

/// A camera as the API shows it.
#[derive(Debug, Clone)]
pub struct CameraView {
    pub name: String,
    pub online: bool,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub frames: u64,
    pub last_seen_unix_ms: i64,
    pub buffered_seconds: f64,
    pub buffered_bytes: u64,
}

/// The camera server's shared state.
#[derive(Debug)]
pub struct CameraHub {
    config: RecordingConfig,
    clips_dir: PathBuf,
    /// Short critical sections only (never held across an await).
    cameras: Mutex<BTreeMap<String, CameraState>>,
    /// Recording slots across processes; `None` if it could not be made
    /// (then clips are not limited, and the log said why).
    slots: Option<Arc<NamedSemaphore>>,
    engine: HubHandle,
    started: Instant,
    next_connection: std::sync::atomic::AtomicU64,
}

fn unix_ms() -> i64 {
    i64::try_from(crate::clock::now_ms()).unwrap_or(i64::MAX)
}

impl CameraHub {
    /// The configured cameras, their keys read now (a camera whose key
    /// cannot be read is refused until the hub restarts, and the log says
    /// why).
    pub fn new(config: &Config, engine: HubHandle) -> Arc<CameraHub> {
        let mut cameras = BTreeMap::new();
        for c in &config.cameras {
            let key = match (&c.key_file, &c.key) {
                (Some(path), _) => Key::from_file(path),
                (None, Some(text)) => Key::new(text),
                (None, None) => Err(vigil_camlink::LinkError::EmptyKey),
            };
            let key = match key {
                Ok(k) => Some(k),
                Err(e) => {
                    warn!(camera = %c.name, "no usable key ({e}): the camera will be refused; set key_file");
                    None
                }
            };
            let (live, _) = broadcast::channel(LIVE_CAPACITY);
            cameras.insert(
                c.name.clone(),
                CameraState {
                    key,
                    beats: HeartbeatGuard::default(),
                    ring: Ring::new(config.recording.ring, RING_MAX_BYTES),
                    live,
                    last_seen: None,
                    last_seen_unix_ms: 0,
                    online: None,
                    connection: None,
                    acks: HashMap::new(),
                    next_command: 1,
                    size: (c.width, c.height, c.framerate),
                    frames: 0,
                },
            );
        }
        let slots =
            match NamedSemaphore::create_fresh(&config.recording.semaphore, config.recording.slots)
            {
                Ok(s) => Some(s),
                Err(e) => {
                    warn!("recording slots are not limited: {e}");
                    None
                }
            };
        Arc::new(CameraHub {
            config: config.recording.clone(),
            clips_dir: config.runtime.state_dir.join("clips"),
            cameras: Mutex::new(cameras),
            slots: slots.map(Arc::new),
            engine,
            started: Instant::now(),
            next_connection: std::sync::atomic::AtomicU64::new(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, CameraState>> {
        // A panic while holding the lock left plain data; go on with it.
        self.cameras.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state of `camera` under the lock (never across an
    /// await); `Unknown` if no camera has that name.
    fn with_camera<T>(
        &self,
        camera: &str,
        f: impl FnOnce(&mut CameraState) -> Result<T, CameraError>,
    ) -> Result<T, CameraError> {
        let mut cameras = self.lock();
        let c = cameras
            .get_mut(camera)
            .ok_or_else(|| CameraError::Unknown(camera.to_owned()))?;
        f(c)
    }

    pub fn clips_dir(&self) -> &std::path::Path {
        &self.clips_dir
    }

    /// Every configured camera that has a key, with it: the handshake
    /// finds a connecting camera by the key that opens its first message.
    fn keys(&self) -> Vec<(String, Key)> {
        self.lock()
            .iter()
            .filter_map(|(name, c)| Some((name.clone(), c.key.clone()?)))
            .collect()
    }

    /// A heartbeat or a frame arrived.
    fn seen(&self, camera: &str) {
        if let Some(c) = self.lock().get_mut(camera) {
            c.last_seen = Some(Instant::now());
            c.last_seen_unix_ms = unix_ms();
        }
    }

    /// A camera connected and proved its key on the connection whose id
    /// (sent in the welcome) is `link`; returns the connection id and its
    /// command channel. A camera that reconnects replaces its old
    /// connection (usually a dead one the hub has not noticed yet, which
    /// then ends), and its heartbeats must name the new link.
    fn connect(
        &self,
        camera: &str,
        size: (u32, u32, u32),
        link: [u8; 32],
    ) -> Option<(u64, mpsc::Receiver<Message>)> {
        let id = self
            .next_connection
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(16);
        let mut cameras = self.lock();
        let c = cameras.get_mut(camera)?;
        c.connection = Some(Connection { id, commands: tx });
        c.beats.linked(link);
        c.size = size;
        c.last_seen = Some(Instant::now());
        c.last_seen_unix_ms = unix_ms();
        Some((id, rx))
    }

    fn disconnect(&self, camera: &str, id: u64) {
        if let Some(c) = self.lock().get_mut(camera)
            && c.connection.as_ref().is_some_and(|k| k.id == id)
        {
            c.connection = None;
            c.acks.clear();
        }
    }

    fn on_frame(&self, camera: &str, unit: AccessUnit) {
        let stamped = Arc::new(Stamped {
            at: Instant::now(),
            unix_ms: unix_ms(),
            unit,
        });
        if let Some(c) = self.lock().get_mut(camera) {
            c.last_seen = Some(stamped.at);
            c.last_seen_unix_ms = stamped.unix_ms;
            c.frames += 1;
            c.ring.push(Arc::clone(&stamped));
            // No viewer is fine.
            let _ = c.live.send(stamped);
        }
    }

    fn on_ack(&self, camera: &str, id: u32, ok: bool, message: String) {
        if let Some(reply) = self.lock().get_mut(camera).and_then(|c| c.acks.remove(&id)) {
            let _ = reply.send((ok, message));
        }
    }

    /// Sends a command to a camera and waits for its acknowledgement.
    pub async fn command(
        &self,
        camera: &str,
        kind: CommandKind,
    ) -> Result<(bool, String), CameraError> {
        let (sender, id, ack) = self.with_camera(camera, |c| {
            let conn = c
                .connection
                .as_ref()
                .ok_or_else(|| CameraError::Offline(camera.to_owned()))?;
            let sender = conn.commands.clone();
            let id = c.next_command;
            c.next_command = c.next_command.wrapping_add(1);
            let (tx, rx) = oneshot::channel();
            c.acks.insert(id, tx);
            Ok((sender, id, rx))
        })?;
        sender
            .send(Message::Command { id, kind })
            .await
            .map_err(|_| CameraError::Offline(camera.to_owned()))?;
        match tokio::time::timeout(Duration::from_secs(3), ack).await {
            Ok(Ok(answer)) => Ok(answer),
            _ => Err(CameraError::Offline(camera.to_owned())),
        }
    }

    /// Every camera, for ListCameras.
    pub fn list(&self) -> Vec<CameraView> {
        let offline_after = self.config.offline_after;
        self.lock()
            .iter()
            .map(|(name, c)| CameraView {
                name: name.clone(),
                online: c.last_seen.is_some_and(|t| t.elapsed() < offline_after),
                width: c.size.0,
                height: c.size.1,
                fps: c.size.2,
                frames: c.frames,
                last_seen_unix_ms: c.last_seen_unix_ms,
                buffered_seconds: c.ring.seconds(),
                buffered_bytes: c.ring.bytes() as u64,
            })
            .collect()
    }

    /// The newest key frame and a live feed from it on.
    pub fn watch(&self, camera: &str) -> Result<LiveFeed, CameraError> {
        // Under one lock: nothing between the backlog and the feed is lost
        // or repeated.
        self.with_camera(camera, |c| {
            Ok((c.ring.from_latest_key(), c.live.subscribe()))
        })
    }

    /// The newest key frame, asking the camera for one if the ring has
    /// none from the last few seconds.
    pub async fn latest_key_frame(&self, camera: &str) -> Result<Arc<Stamped>, CameraError> {
        let (recent, mut live) = self.with_camera(camera, |c| {
            let recent = c
                .ring
                .latest_key()
                .filter(|k| k.at.elapsed() < Duration::from_secs(5));
            Ok((recent, c.live.subscribe()))
        })?;
        if let Some(k) = recent {
            return Ok(k);
        }
        self.command(camera, CommandKind::KeyFrame).await?;
        let wait = async {
            loop {
                match live.recv().await {
                    Ok(u) if u.unit.key => return Some(u),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(3), wait)
            .await
            .ok()
            .flatten()
            .ok_or_else(|| CameraError::NoKeyFrame(camera.to_owned()))
    }

    /// Announces cameras coming and going (events, and alerts: offline is
    /// a fault, back online is info). Runs for ever.
    pub async fn supervise(self: Arc<Self>) {
        let mut every = tokio::time::interval(SUPERVISE_EVERY);
        loop {
            every.tick().await;
            let mut changes = Vec::new();
            {
                let limit = self.config.offline_after;
                let mut cameras = self.lock();
                for (name, c) in cameras.iter_mut() {
                    let online = c.last_seen.is_some_and(|t| t.elapsed() < limit);
                    let announce = match c.online {
                        None => online || self.started.elapsed() >= limit,
                        Some(was) => was != online,
                    };
                    if announce {
                        c.online = Some(online);
                        changes.push((name.clone(), online, c.last_seen.is_some()));
                    }
                }
            }
            for (camera, online, ever) in changes {
                let limit = self.config.offline_after.as_secs();
                let (kind, message) = match (online, ever) {
                    (true, _) => (
                        EventKind::CameraOnline,
                        format!("camera {camera} is online"),
                    ),
                    (false, true) => (
                        EventKind::CameraOffline,
                        format!(
                            "camera {camera} is offline: no frame or heartbeat for {limit} s; \
                             check its power, network and vigil-camd"
                        ),
                    ),
                    (false, false) => (
                        EventKind::CameraOffline,
                        format!(
                            "camera {camera} has not connected in the {limit} s since the hub \
                             started; check vigil-camd on it and its key"
                        ),
                    ),
                };
                if online {
                    info!(%camera, "camera online");
                } else {
                    warn!(%camera, "{message}");
                }
                let command = Command::CameraEvent {
                    kind,
                    camera,
                    message,
                };
                if self.engine.tell(command).await.is_err() {
                    return;
                }
            }
        }
    }

    /// Records a clip of every online camera when the alarm triggers.
    pub async fn record_on_alarm(self: Arc<Self>) {
        let subscription = match self
            .engine
            .ask(|reply| HubRequest::Subscribe {
                after_seq: None,
                reply,
            })
            .await
        {
            Ok(s) => s,
            Err(_) => return,
        };
        let mut events = subscription.live;
        loop {
            match events.recv().await {
                Ok(e) if e.kind == EventKind::Triggered => {
                    let alarm_seq = e.seq;
                    for view in self.list().into_iter().filter(|c| c.online) {
                        let hub = Arc::clone(&self);
                        tokio::spawn(async move {
                            let clip = hub.record(&view.name, "alarm", Some(alarm_seq)).await;
                            if let Err(e) = clip {
                                warn!(camera = %view.name, "no alarm clip: {e}");
                            }
                        });
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    warn!(n, "the recorder fell behind the event stream");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Records a clip now: the pre-roll before this moment (from the last
    /// key frame before it) and the post-capture after it; `alarm_seq` is
    /// the "triggered" event it records, for an alarm's clip. Beside it go
    /// its record and a still of its first key frame (a clip without the
    /// still is still a clip: its failure is only logged).
    pub async fn record(
        &self,
        camera: &str,
        reason: &str,
        alarm_seq: Option<u64>,
    ) -> Result<ClipInfo, CameraError> {
        let now = Instant::now();
        let started_unix_ms = unix_ms();
        let from = now.checked_sub(self.config.pre_roll).unwrap_or(now);
        let (mut units, mut live) =
            self.with_camera(camera, |c| Ok((c.ring.since(from), c.live.subscribe())))?;
        info!(%camera, reason, pre_roll_units = units.len(), "recording a clip");
        let end = tokio::time::Instant::from_std(now + self.config.post_capture);
        loop {
            match tokio::time::timeout_at(end, live.recv()).await {
                Err(_) => break, // post-capture done
                Ok(Ok(u)) => units.push(u),
                Ok(Err(broadcast::error::RecvError::Lagged(n))) => {
                    warn!(%camera, n, "the recorder fell behind; the clip has a gap");
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => break,
            }
        }
        let name = clips::clip_name(camera, started_unix_ms, reason);
        let dir = self.clips_dir.clone();
        let config = self.config.clone();
        let path = dir.join(&name);
        let units: Vec<AccessUnit> = units.iter().map(|s| s.unit.clone()).collect();
        let file_name = name.clone();
        let slots_total = self.config.slots;
        let slots = self.slots.clone();
        let written = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir).map_err(|source| CameraError::Io {
                what: "create",
                path: dir.clone(),
                source,
            })?;
            clips::retire(&dir, &config);
            // The slot is taken on this thread and given back when the
            // write ends, whatever happens.
            let _permit = match &slots {
                Some(s) => Some(
                    s.acquire(Duration::from_secs(30))
                        .ok_or(CameraError::Busy(slots_total))?,
                ),
                None => None,
            };
            let part = path.with_extension("mp4.part");
            let length = vigil_media::write_mp4(&part, &units)?;
            // The record and the still first: a listed clip has its
            // alarm's number and its still.
            if alarm_seq.is_some() {
                let record = clips::ClipRecord { alarm_seq };
                let written = serde_json::to_vec(&record)
                    .map_err(std::io::Error::other)
                    .and_then(|bytes| std::fs::write(clips::record_path(&dir, &file_name), bytes));
                if let Err(e) = written {
                    warn!(clip = %file_name, "cannot write the clip's record: {e}");
                }
            }
            if let Some(key) = units.iter().find(|u| u.key) {
                let still = vigil_media::key_frame_to_jpeg(key, Duration::from_secs(5))
                    .map_err(|e| e.to_string())
                    .and_then(|jpeg| {
                        std::fs::write(clips::thumbnail_path(&dir, &file_name), jpeg)
                            .map_err(|e| e.to_string())
                    });
                if let Err(e) = still {
                    warn!(clip = %file_name, "no still for the clip: {e}");
                }
            }
            std::fs::rename(&part, &path).map_err(|source| CameraError::Io {
                what: "rename",
                path: part.clone(),
                source,
            })?;
            Ok::<_, CameraError>(length)
        })
        .await
        .map_err(|e| CameraError::Io {
            what: "write",
            path: self.clips_dir.join(&name),
            source: std::io::Error::other(e),
        })??;
        let info = clips::describe(&self.clips_dir, &name).ok_or_else(|| CameraError::Io {
            what: "stat",
            path: self.clips_dir.join(&name),
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })?;
        let message = format!(
            "clip {name}: {:.1} s ({reason}, {} bytes)",
            written.as_secs_f64(),
            info.bytes
        );
        info!(%camera, "{message}");
        let _ = self
            .engine
            .tell(Command::CameraEvent {
                kind: EventKind::ClipRecorded,
                camera: camera.to_owned(),
                message,
            })
            .await;
        Ok(info)
    }
}

//! CameraService (`proto/vigil/v1/cameras.proto`) over the camera server.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use vigil_domain::Role;
use vigil_domain::text::excerpt;
use vigil_proto::v1 as pb;
use vigil_proto::v1::camera_service_server::CameraService;

use crate::cameras::{CameraError, CameraHub, ClipInfo, Stamped};
use crate::grpc::{Api, RevocationGuard, RpcResult, Streamed};

/// Bytes per GetClip chunk.
const CHUNK: usize = 64 << 10;

impl From<CameraError> for Status {
    fn from(e: CameraError) -> Status {
        match e {
            CameraError::Unknown(_) => Status::not_found(e.to_string()),
            CameraError::Offline(_) | CameraError::NoKeyFrame(_) => {
                Status::unavailable(e.to_string())
            }
            CameraError::Busy(_) => Status::resource_exhausted(e.to_string()),
            CameraError::Media(_) | CameraError::Io { .. } => Status::internal(e.to_string()),
        }
    }
}

fn to_pb_clip(c: ClipInfo) -> pb::Clip {
    pb::Clip {
        name: c.name,
        camera: c.camera,
        reason: c.reason,
        unix_ms: c.unix_ms,
        bytes: c.bytes,
        seconds: c.seconds,
        alarm_seq: c.alarm_seq.unwrap_or(0),
        has_thumbnail: c.has_thumbnail,
    }
}

/// The path of the clip a request names: INVALID_ARGUMENT for a name
/// that cannot be a clip's (a path, say), NOT_FOUND for one that names no
/// clip.
fn named_clip(hub: &CameraHub, name: &str) -> Result<std::path::PathBuf, Status> {
    if !crate::cameras::well_formed(name) {
        return Err(Status::invalid_argument(format!(
            "{} is not a clip name (<camera>-<UTC time>-<reason>.mp4, as ListClips gives)",
            excerpt(name)
        )));
    }
    crate::cameras::clip_path(hub.clips_dir(), name)
        .ok_or_else(|| Status::not_found(format!("no clip named {}: see ListClips", excerpt(name))))
}

fn frame(s: &Stamped) -> pb::LiveFrame {
    pb::LiveFrame {
        pts_us: s.unit.pts_us,
        key: s.unit.key,
        data: s.unit.data.to_vec(),
    }
}

impl Api {
    /// The camera server, for a caller with `need`.
    fn cameras_for<T>(&self, request: &Request<T>, need: Role) -> Result<&Arc<CameraHub>, Status> {
        self.authorize(request, need)?;
        self.configured_cameras()
    }

    /// The camera server, for a caller already authorized.
    fn configured_cameras(&self) -> Result<&Arc<CameraHub>, Status> {
        self.cameras
            .as_ref()
            .ok_or_else(|| Status::not_found("this hub has no cameras configured"))
    }

    /// [`Api::cameras_for`] a guest, for a stream that lasts (live view, a
    /// clip's download): with the guard that ends it when the client is
    /// revoked, made before the client is checked so that no revocation
    /// falls between the two.
    fn cameras_streaming<T>(
        &self,
        request: &Request<T>,
    ) -> Result<(&Arc<CameraHub>, Option<RevocationGuard>), Status> {
        let guard = self.revocation_guard(request);
        Ok((self.cameras_for(request, Role::Guest)?, guard))
    }
}

#[tonic::async_trait]
impl CameraService for Api {
    type WatchLiveStream = Streamed<pb::LiveFrame>;
    type GetClipStream = Streamed<pb::ClipChunk>;

    async fn list_cameras(
        &self,
        request: Request<pb::ListCamerasRequest>,
    ) -> RpcResult<pb::ListCamerasResponse> {
        self.authorize(&request, Role::Guest)?;
        let cameras = match &self.cameras {
            Some(hub) => hub.list(),
            None => Vec::new(),
        };
        Ok(Response::new(pb::ListCamerasResponse {
            cameras: cameras
                .into_iter()
                .map(|c| pb::Camera {
                    name: c.name,
                    online: c.online,
                    width: c.width,
                    height: c.height,
                    fps: c.fps,
                    frames: c.frames,
                    last_seen_unix_ms: c.last_seen_unix_ms,
                    buffered_seconds: c.buffered_seconds,
                    buffered_bytes: c.buffered_bytes,
                })
                .collect(),
        }))
    }

    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> RpcResult<pb::SnapshotResponse> {
        let hub = self.cameras_for(&request, Role::Guest)?;
        let key = hub.latest_key_frame(&request.into_inner().camera).await?;
        let unix_ms = key.unix_ms;
        let jpeg = tokio::task::spawn_blocking(move || {
            vigil_media::key_frame_to_jpeg(&key.unit, Duration::from_secs(5))
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
        .map_err(CameraError::from)?;
        Ok(Response::new(pb::SnapshotResponse { jpeg, unix_ms }))
    }

    async fn watch_live(
        &self,
        request: Request<pb::WatchLiveRequest>,
    ) -> RpcResult<Self::WatchLiveStream> {
        let (hub, guard) = self.cameras_streaming(&request)?;
        let (backlog, mut live) = hub.watch(&request.into_inner().camera)?;
        let (tx, rx) = mpsc::channel(32);
        tokio::spawn(async move {
            for s in &backlog {
                if tx.send(Ok(frame(s))).await.is_err() {
                    return;
                }
            }
            // A viewer that fell behind waits for the next key frame: a
            // delta frame without its reference would only show garbage.
            let mut need_key = backlog.is_empty();
            loop {
                match live.recv().await {
                    Ok(s) => {
                        if need_key && !s.unit.key {
                            continue;
                        }
                        need_key = false;
                        if tx.send(Ok(frame(&s))).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => need_key = true,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(RevocationGuard::guard(
            guard,
            ReceiverStream::new(rx),
        )))
    }

    async fn record_clip(
        &self,
        request: Request<pb::RecordClipRequest>,
    ) -> RpcResult<pb::RecordClipResponse> {
        let hub = Arc::clone(self.cameras_for(&request, Role::User)?);
        let clip = hub
            .record(&request.into_inner().camera, "request", None)
            .await?;
        Ok(Response::new(pb::RecordClipResponse {
            clip: Some(to_pb_clip(clip)),
        }))
    }

    async fn list_clips(
        &self,
        request: Request<pb::ListClipsRequest>,
    ) -> RpcResult<pb::ListClipsResponse> {
        self.authorize(&request, Role::Guest)?;
        // No cameras, no clips: a list, as ListCameras answers.
        let Some(hub) = &self.cameras else {
            return Ok(Response::new(pb::ListClipsResponse::default()));
        };
        let dir = hub.clips_dir().to_owned();
        let clips = tokio::task::spawn_blocking(move || crate::cameras::list_clips(&dir))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::ListClipsResponse {
            clips: clips.into_iter().map(to_pb_clip).collect(),
        }))
    }

    async fn get_clip(
        &self,
        request: Request<pb::GetClipRequest>,
    ) -> RpcResult<Self::GetClipStream> {
        // A clip takes a while to download: revoking the client ends it.
        let (hub, guard) = self.cameras_streaming(&request)?;
        let pb::GetClipRequest {
            name,
            offset,
            length,
        } = request.into_inner();
        let path = named_clip(hub, &name)?;
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| {
            let message = format!("clip {}: {e}", excerpt(&name));
            match e.kind() {
                // Removed since it was named (retention, a deletion).
                std::io::ErrorKind::NotFound => Status::not_found(message),
                _ => Status::internal(message),
            }
        })?;
        let total_bytes = file
            .metadata()
            .await
            .map_err(|e| Status::internal(format!("clip {}: {e}", excerpt(&name))))?
            .len();
        // Offset 0 of an empty file is its (empty) whole.
        if offset >= total_bytes && offset > 0 {
            return Err(Status::out_of_range(format!(
                "offset {offset} is at or past the end of the clip ({total_bytes} bytes)"
            )));
        }
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(|e| Status::internal(format!("clip {}: {e}", excerpt(&name))))?;
        let end = match length {
            0 => total_bytes,
            n => total_bytes.min(offset.saturating_add(n)),
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let mut buf = vec![0u8; CHUNK];
            let mut at = offset;
            while at < end {
                let want = usize::try_from(end - at).map_or(CHUNK, |left| left.min(CHUNK));
                match file.read(&mut buf[..want]).await {
                    Ok(0) => return,
                    Ok(n) => {
                        let chunk = pb::ClipChunk {
                            data: buf[..n].to_vec(),
                            offset: at,
                            total_bytes,
                        };
                        at += n as u64;
                        if tx.send(Ok(chunk)).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!("reading the clip: {e}"))))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(RevocationGuard::guard(
            guard,
            ReceiverStream::new(rx),
        )))
    }

    async fn get_clip_thumbnail(
        &self,
        request: Request<pb::GetClipThumbnailRequest>,
    ) -> RpcResult<pb::GetClipThumbnailResponse> {
        let hub = self.cameras_for(&request, Role::Guest)?;
        let name = request.into_inner().name;
        named_clip(hub, &name)?;
        let still = crate::cameras::thumbnail_path(hub.clips_dir(), &name);
        let jpeg = tokio::fs::read(&still)
            .await
            .map_err(|_| Status::not_found(format!("clip {} has no still", excerpt(&name))))?;
        Ok(Response::new(pb::GetClipThumbnailResponse { jpeg }))
    }

    async fn delete_clip(
        &self,
        request: Request<pb::DeleteClipRequest>,
    ) -> RpcResult<pb::DeleteClipResponse> {
        let (by, req) = self.by_client(request, Role::Admin)?;
        let hub = self.configured_cameras()?;
        let dir = hub.clips_dir().to_owned();
        let name = req.name;
        named_clip(hub, &name)?;
        let engine = self.engine.clone();
        // Whole, whether or not the client waits: a deletion is never
        // without its record.
        crate::grpc::whole(async move {
            let file = name.clone();
            let camera = tokio::task::spawn_blocking(move || {
                let camera = crate::cameras::describe(&dir, &file).map(|c| c.camera);
                crate::cameras::remove_clip(&dir, &file).map(|()| camera)
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => {
                    Status::not_found(format!("no clip named {}", excerpt(&name)))
                }
                _ => Status::internal(format!("cannot delete clip {}: {e}", excerpt(&name))),
            })?;
            tracing::info!(clip = %name, client = %by.source, "clip deleted");
            // Deleting evidence is on the record, on disk before the
            // answer: who, and which clip.
            let message = format!("clip {name} deleted by {}", by.source);
            engine
                .ask(|reply| crate::commands::Command::Audit {
                    kind: vigil_domain::EventKind::ClipDeleted,
                    camera,
                    by,
                    message,
                    reply,
                })
                .await?;
            Ok(pb::DeleteClipResponse {})
        })
        .await
    }

    async fn control_camera(
        &self,
        request: Request<pb::ControlCameraRequest>,
    ) -> RpcResult<pb::ControlCameraResponse> {
        use pb::control_camera_request::Action;
        let hub = self.cameras_for(&request, Role::Admin)?;
        let req = request.into_inner();
        let kind = match Action::try_from(req.action) {
            Ok(Action::Start) => vigil_camlink::CommandKind::Start,
            Ok(Action::Stop) => vigil_camlink::CommandKind::Stop,
            Ok(Action::SetBitrate) if (100..=20_000).contains(&req.bitrate_kbps) => {
                vigil_camlink::CommandKind::Bitrate(req.bitrate_kbps)
            }
            Ok(Action::SetBitrate) => {
                return Err(Status::invalid_argument(format!(
                    "bitrate_kbps {} is outside 100 to 20000",
                    req.bitrate_kbps
                )));
            }
            _ => {
                return Err(Status::invalid_argument(
                    "action must be ACTION_START, ACTION_STOP or ACTION_SET_BITRATE",
                ));
            }
        };
        let (ok, message) = hub.command(&req.camera, kind).await?;
        if !ok {
            return Err(Status::failed_precondition(format!(
                "camera {} refused: {}",
                excerpt(&req.camera),
                excerpt(&message)
            )));
        }
        Ok(Response::new(pb::ControlCameraResponse { message }))
    }
}

//! GStreamer for Vigil: the camera pipeline (capture, H.264 encode, access
//! units out of an appsink), MP4 clips from stored access units (appsrc,
//! h264parse, mp4mux) and JPEG snapshots from one key frame.
//!
//! Owns: every launch string, the choice of source (libcamerasrc, v4l2src,
//! or videotestsrc for tests and the demo) and of encoder (v4l2h264enc
//! where the board has it, x264enc tuned for low latency where not).
//!
//! Must never: re-encode video (clips and live view carry the camera's own
//! access units; only a snapshot decodes, one key frame), or block an async
//! runtime (every function here that waits is blocking: call it from a
//! thread or `spawn_blocking`).
//!
//! Access units are Annex B with SPS and PPS before every key frame
//! (`h264parse config-interval=-1`), so any key frame decodes on its own.

#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use vigil_config::{CameraConfig, CameraEncoder, CameraSource};

/// Caps on every encoded edge: Annex B, one access unit per buffer.
pub const H264_CAPS: &str = "video/x-h264,stream-format=byte-stream,alignment=au";

/// What can go wrong with a pipeline.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("GStreamer could not start: {0}")]
    Init(String),
    /// A launch string GStreamer refused, usually a missing plugin: the
    /// message names the element (install gstreamer1.0-plugins-good, -bad,
    /// -ugly or -libav).
    #[error("cannot build the pipeline ({0})")]
    Build(String),
    #[error("the pipeline failed: {0}")]
    Pipeline(String),
    #[error("nothing to record: {0}")]
    Empty(&'static str),
    #[error("timed out after {0:?} waiting for the pipeline")]
    Timeout(Duration),
}

/// One encoded access unit.
#[derive(Clone, Debug)]
pub struct AccessUnit {
    /// Presentation time, microseconds from the pipeline's start.
    pub pts_us: u64,
    pub key: bool,
    pub data: Arc<[u8]>,
}

/// Starts GStreamer (once per process; later calls do nothing).
pub fn init() -> Result<(), MediaError> {
    gst::init().map_err(|e| MediaError::Init(e.to_string()))
}

fn pipeline(launch: &str) -> Result<gst::Pipeline, MediaError> {
    gst::parse::launch(launch)
        .map_err(|e| MediaError::Build(e.to_string()))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| MediaError::Build("not a pipeline".into()))
}

fn element<T: IsA<gst::Element>>(p: &gst::Pipeline, name: &str) -> Result<T, MediaError> {
    p.by_name(name)
        .ok_or_else(|| MediaError::Build(format!("no element {name}")))?
        .downcast::<T>()
        .map_err(|_| MediaError::Build(format!("{name} has the wrong type")))
}

fn error_text(msg: &gst::Message, err: &gst::message::Error) -> String {
    format!(
        "{}: {}{}",
        msg.src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default(),
        err.error(),
        err.debug().map(|d| format!(" ({d})")).unwrap_or_default()
    )
}

fn state(p: &gst::Pipeline, s: gst::State) -> Result<(), MediaError> {
    p.set_state(s)
        .map(|_| ())
        .map_err(|e| MediaError::Pipeline(format!("cannot set {s:?}: {e}")))
}

/// Whether this GStreamer has the element (a plugin is installed).
pub fn has_element(name: &str) -> bool {
    gst::ElementFactory::find(name).is_some()
}

/// The camera's launch string: source, I420 at the configured size and
/// rate, the encoder (named `enc`), h264parse, and an appsink named `sink`.
pub fn camera_launch(camera: &CameraConfig) -> String {
    let (w, h, fps) = (camera.width, camera.height, camera.framerate);
    let source = match &camera.source {
        CameraSource::Test => "videotestsrc is-live=true pattern=ball".to_owned(),
        CameraSource::Libcamera => "libcamerasrc".to_owned(),
        CameraSource::V4l2 { device } => {
            format!(
                "v4l2src device={:?} ! videoconvert",
                device.display().to_string()
            )
        }
    };
    let gop = camera.framerate * camera.keyframe_secs;
    let hardware = match camera.encoder {
        CameraEncoder::X264 => false,
        CameraEncoder::V4l2 => true,
        CameraEncoder::Auto => has_element("v4l2h264enc"),
    };
    let encoder = if hardware {
        format!(
            "v4l2h264enc name=enc extra-controls=\"controls,video_bitrate={},h264_i_frame_period={gop}\"",
            camera.bitrate_kbps * 1000
        )
    } else {
        // zerolatency: no B-frames and no lookahead (33 ms, against 1.2 s
        // with the defaults); I420 above keeps the profile baseline.
        format!(
            "x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={}",
            camera.bitrate_kbps
        )
    };
    format!(
        "{source} ! videoconvert ! videoscale ! video/x-raw,format=I420,width={w},height={h},framerate={fps}/1 ! \
         {encoder} ! h264parse config-interval=-1 ! {H264_CAPS} ! \
         appsink name=sink sync=false max-buffers=60 drop=true"
    )
}

/// A running camera pipeline; stops when dropped.
#[derive(Debug)]
pub struct Camera {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    stop: Arc<AtomicBool>,
    bus_thread: Option<std::thread::JoinHandle<()>>,
}

impl Camera {
    /// Starts `launch`; `on_unit` gets every access unit on GStreamer's
    /// streaming thread (keep it short), `on_failure` the reason once if
    /// the pipeline errors or ends (a camera unplugged mid-frame).
    pub fn start(
        launch: &str,
        on_unit: impl Fn(AccessUnit) + Send + 'static,
        on_failure: impl FnOnce(String) + Send + 'static,
    ) -> Result<Camera, MediaError> {
        init()?;
        let pipeline = pipeline(launch)?;
        let sink: gst_app::AppSink = element(&pipeline, "sink")?;
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().ok_or(gst::FlowError::Error)?;
                    let key = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                    // Running time: the encoder's PTS carries a 1000-hour
                    // offset; the segment maps it back to 0-based.
                    let pts = sample
                        .segment()
                        .and_then(|s| s.downcast_ref::<gst::ClockTime>())
                        .and_then(|s| s.to_running_time(buffer.pts()))
                        .or(buffer.pts())
                        .map(|t| t.useconds())
                        .unwrap_or(0);
                    let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
                    on_unit(AccessUnit {
                        pts_us: pts,
                        key,
                        data: Arc::from(map.as_slice()),
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let bus = pipeline
            .bus()
            .ok_or_else(|| MediaError::Build("no bus".into()))?;
        let watching = Arc::clone(&stop);
        let bus_thread = std::thread::Builder::new()
            .name("gst-bus".into())
            .spawn(move || {
                while !watching.load(Ordering::Relaxed) {
                    let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(200)) else {
                        continue;
                    };
                    match msg.view() {
                        gst::MessageView::Eos(..) => {
                            on_failure("the source ended".into());
                            return;
                        }
                        gst::MessageView::Error(err) => {
                            on_failure(error_text(&msg, err));
                            return;
                        }
                        gst::MessageView::Warning(w) => {
                            tracing::warn!("GStreamer: {} ({:?})", w.error(), w.debug());
                        }
                        _ => {}
                    }
                }
            })
            .map_err(|e| MediaError::Pipeline(format!("cannot start the bus thread: {e}")))?;
        state(&pipeline, gst::State::Playing)?;
        Ok(Camera {
            pipeline,
            sink,
            stop,
            bus_thread: Some(bus_thread),
        })
    }

    /// Makes the next access unit a key frame (with SPS and PPS).
    pub fn request_key_frame(&self) -> bool {
        let event = gstreamer_video::UpstreamForceKeyUnitEvent::builder()
            .all_headers(true)
            .build();
        self.sink.send_event(event)
    }

    /// Sets the encoder's bitrate (x264enc; the hardware encoder keeps its
    /// configured one). Returns whether it applied.
    pub fn set_bitrate(&self, kbps: u32) -> bool {
        match self.pipeline.by_name("enc") {
            Some(enc)
                if enc.find_property("bitrate").is_some()
                    && enc.find_property("tune").is_some() =>
            {
                enc.set_property("bitrate", kbps);
                true
            }
            _ => false,
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
    }
}

fn buffer(unit: &AccessUnit, pts: gst::ClockTime, duration: gst::ClockTime) -> gst::Buffer {
    let mut buffer = gst::Buffer::from_slice(Arc::clone(&unit.data));
    if let Some(b) = buffer.get_mut() {
        b.set_pts(pts);
        b.set_dts(pts); // no B-frames: decode order is presentation order
        b.set_duration(duration);
        if !unit.key {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
    }
    buffer
}

fn wait_eos(p: &gst::Pipeline, timeout: Duration) -> Result<(), MediaError> {
    let bus = p.bus().ok_or_else(|| MediaError::Build("no bus".into()))?;
    let msg = bus
        .timed_pop_filtered(
            gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .ok_or(MediaError::Timeout(timeout))?;
    match msg.view() {
        gst::MessageView::Error(err) => Err(MediaError::Pipeline(error_text(&msg, err))),
        _ => Ok(()),
    }
}

/// Writes `units` (from the first key frame on) to an MP4 file at `path`,
/// with times rebased to 0. Blocking. Returns the clip's length.
pub fn write_mp4(path: &Path, units: &[AccessUnit]) -> Result<Duration, MediaError> {
    init()?;
    let first = units
        .iter()
        .position(|u| u.key)
        .ok_or(MediaError::Empty("no key frame"))?;
    let units = &units[first..];
    let base = units[0].pts_us;
    let p = pipeline(&format!(
        "appsrc name=src format=time is-live=false do-timestamp=false caps=\"{H264_CAPS}\" ! \
         h264parse ! mp4mux ! filesink name=out"
    ))?;
    let out: gst::Element = element(&p, "out")?;
    out.set_property("location", path.to_string_lossy().as_ref());
    let src: gst_app::AppSrc = element(&p, "src")?;
    state(&p, gst::State::Playing)?;
    let mut last_step = 33_333;
    let result = (|| {
        for (i, unit) in units.iter().enumerate() {
            let pts = unit.pts_us.saturating_sub(base);
            let step = units
                .get(i + 1)
                .map(|n| n.pts_us.saturating_sub(unit.pts_us))
                .filter(|s| *s > 0)
                .unwrap_or(last_step);
            last_step = step;
            src.push_buffer(buffer(
                unit,
                gst::ClockTime::from_useconds(pts),
                gst::ClockTime::from_useconds(step),
            ))
            .map_err(|e| MediaError::Pipeline(format!("appsrc refused a frame: {e:?}")))?;
        }
        src.end_of_stream()
            .map_err(|e| MediaError::Pipeline(format!("end of stream: {e:?}")))?;
        // mp4mux writes the index (moov) on EOS: without it there is no
        // playable file.
        wait_eos(&p, Duration::from_secs(60))
    })();
    let _ = p.set_state(gst::State::Null);
    result?;
    let span = units
        .last()
        .map(|u| u.pts_us.saturating_sub(base) + last_step)
        .unwrap_or(0);
    Ok(Duration::from_micros(span))
}

/// Decodes one key frame to a JPEG. Blocking.
pub fn key_frame_to_jpeg(unit: &AccessUnit, timeout: Duration) -> Result<Vec<u8>, MediaError> {
    decode_key_frame(unit, "jpegenc quality=85", timeout)
}

/// The width and height of the grey pictures motion detection compares.
pub const GREY_SIZE: (u32, u32) = (64, 36);

/// Decodes one key frame to a small grey picture ([`GREY_SIZE`], one byte
/// per pixel, rows without padding): what motion detection compares.
/// Blocking.
pub fn key_frame_to_grey(unit: &AccessUnit, timeout: Duration) -> Result<Vec<u8>, MediaError> {
    let (w, h) = GREY_SIZE;
    let grey = decode_key_frame(
        unit,
        &format!("videoscale ! video/x-raw,format=GRAY8,width={w},height={h}"),
        timeout,
    )?;
    // GStreamer pads rows to 4 bytes; 64 needs none, but be exact.
    let stride = (w as usize).next_multiple_of(4);
    if grey.len() < stride * h as usize {
        return Err(MediaError::Pipeline(format!(
            "a grey picture of {} bytes, not {w}x{h}",
            grey.len()
        )));
    }
    Ok((0..h as usize)
        .flat_map(|row| {
            grey[row * stride..row * stride + w as usize]
                .iter()
                .copied()
        })
        .collect())
}

/// The share of pixels (0 to 1) that differ by more than `step` between
/// two grey pictures of the same size.
pub fn changed_share(a: &[u8], b: &[u8], step: u8) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return 0.0;
    }
    let changed = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.abs_diff(**y) > step)
        .count();
    changed as f64 / a.len() as f64
}

/// Decodes one key frame through `tail` (elements after videoconvert) into
/// one buffer. Blocking.
fn decode_key_frame(
    unit: &AccessUnit,
    tail: &str,
    timeout: Duration,
) -> Result<Vec<u8>, MediaError> {
    init()?;
    if !unit.key {
        return Err(MediaError::Empty("decoding needs a key frame"));
    }
    let p = pipeline(&format!(
        "appsrc name=src format=time caps=\"{H264_CAPS}\" ! h264parse ! avdec_h264 ! \
         videoconvert ! {tail} ! appsink name=sink sync=false"
    ))?;
    let src: gst_app::AppSrc = element(&p, "src")?;
    let sink: gst_app::AppSink = element(&p, "sink")?;
    state(&p, gst::State::Playing)?;
    let result = (|| {
        src.push_buffer(buffer(
            unit,
            gst::ClockTime::ZERO,
            gst::ClockTime::from_mseconds(33),
        ))
        .map_err(|e| MediaError::Pipeline(format!("appsrc refused the frame: {e:?}")))?;
        // EOS makes the decoder drain its one picture.
        src.end_of_stream()
            .map_err(|e| MediaError::Pipeline(format!("end of stream: {e:?}")))?;
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
            .ok_or(MediaError::Timeout(timeout))?;
        let buffer = sample
            .buffer()
            .ok_or(MediaError::Empty("the decoder gave no picture"))?;
        let map = buffer
            .map_readable()
            .map_err(|e| MediaError::Pipeline(e.to_string()))?;
        Ok(map.as_slice().to_vec())
    })();
    let _ = p.set_state(gst::State::Null);
    result
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn test_camera() -> CameraConfig {
        CameraConfig::test_pattern("test", 320, 240, 15, 500)
    }

    /// The real pipeline: capture 2 s, write a clip, decode a snapshot.
    #[test]
    fn capture_clip_and_snapshot() {
        let units = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&units);
        let camera = Camera::start(
            &camera_launch(&test_camera()),
            move |u| sink.lock().expect("lock").push(u),
            |reason| panic!("the test camera failed: {reason}"),
        )
        .expect("start");
        std::thread::sleep(Duration::from_millis(2200));
        drop(camera);
        let units = units.lock().expect("lock").clone();
        assert!(
            units.len() >= 20,
            "{} frames in 2.2 s at 15 fps",
            units.len()
        );
        assert!(units[0].key, "the first access unit is a key frame");
        assert!(
            units.iter().filter(|u| u.key).count() >= 2,
            "one key frame a second"
        );
        assert!(units.windows(2).all(|w| w[1].pts_us > w[0].pts_us));

        let dir = tempfile::tempdir().expect("dir");
        let clip = dir.path().join("clip.mp4");
        let length = write_mp4(&clip, &units).expect("mp4");
        assert!(length >= Duration::from_millis(1500), "{length:?}");
        let bytes = std::fs::read(&clip).expect("read");
        assert_eq!(&bytes[4..8], b"ftyp", "an MP4 file");
        assert!(bytes.windows(4).any(|w| w == b"moov"), "finalised (moov)");

        let key = units.iter().rev().find(|u| u.key).expect("a key frame");
        let jpeg = key_frame_to_jpeg(key, Duration::from_secs(5)).expect("jpeg");
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "JPEG start");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9], "JPEG end");
        let delta = units.iter().find(|u| !u.key).expect("a delta frame");
        assert!(key_frame_to_jpeg(delta, Duration::from_secs(1)).is_err());

        // The ball moves: two key frames a second apart differ; a frame
        // does not differ from itself.
        let keys: Vec<&AccessUnit> = units.iter().filter(|u| u.key).collect();
        let first = key_frame_to_grey(keys[0], Duration::from_secs(5)).expect("grey");
        let second = key_frame_to_grey(keys[1], Duration::from_secs(5)).expect("grey");
        assert_eq!(first.len(), (GREY_SIZE.0 * GREY_SIZE.1) as usize);
        assert_eq!(changed_share(&first, &first, 20), 0.0);
        assert!(changed_share(&first, &second, 20) > 0.005, "the ball moved");
    }
}

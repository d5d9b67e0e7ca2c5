//! `[[cameras]]`: what each camera captures and how camd encodes it, where
//! it finds the hub, its key, and motion detection on its video.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::{At, Checker, words};
use crate::limits::{BITRATE_KBPS, FRAMERATE, HEIGHT, KEYFRAME_SECS, MOTION_PERCENT, WIDTH};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CameraFile {
    name: Option<String>,
    source: Option<String>,
    device: Option<PathBuf>,
    width: Option<u32>,
    height: Option<u32>,
    framerate: Option<u32>,
    encoder: Option<String>,
    bitrate_kbps: Option<u32>,
    keyframe_secs: Option<u32>,
    hub: Option<String>,
    discovery_port: Option<u16>,
    key_file: Option<PathBuf>,
    key: Option<String>,
    motion: Option<bool>,
    motion_percent: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum CameraSource {
    /// videotestsrc: for tests and the demo.
    Test,
    /// libcamerasrc: the Pi camera.
    Libcamera,
    /// v4l2src on a device node (USB webcams).
    V4l2 { device: PathBuf },
}

/// Which H.264 encoder camd uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraEncoder {
    /// The board's hardware encoder (v4l2h264enc) when GStreamer has it,
    /// else x264.
    Auto,
    /// x264enc, tuned for low latency (software).
    X264,
    /// v4l2h264enc (the Raspberry Pi's hardware encoder).
    V4l2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    pub name: String,
    pub source: CameraSource,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub encoder: CameraEncoder,
    pub bitrate_kbps: u32,
    /// Seconds between key frames (the ring and clips start at one).
    pub keyframe_secs: u32,
    /// The hub's camera port, as camd dials it (`hub.lan:7445`), or
    /// `discover`: wait for the hub's UDP beacon.
    pub hub: String,
    /// Where camd listens for the beacon with `hub = "discover"`.
    pub discovery_port: u16,
    /// The camera's key, shared with the hub (read at run time).
    pub key_file: Option<PathBuf>,
    /// The key inline (tests and the demo only).
    pub key: Option<String>,
    /// Motion detection on the video: adds a motion sensor
    /// `<camera>-motion` to the sensor table.
    pub motion: bool,
    /// How much of the picture must change between key frames, percent.
    pub motion_percent: u32,
}

/// Where camd listens for the hub's beacon by default.
const DISCOVERY_PORT: u16 = 7446;

impl CameraConfig {
    /// A videotestsrc camera encoded with x264, one key frame a second, no
    /// hub, no key: for benchmarks and tests of the pipeline alone.
    pub fn test_pattern(
        name: &str,
        width: u32,
        height: u32,
        framerate: u32,
        bitrate_kbps: u32,
    ) -> CameraConfig {
        CameraConfig {
            name: name.to_owned(),
            source: CameraSource::Test,
            width,
            height,
            framerate,
            encoder: CameraEncoder::X264,
            bitrate_kbps,
            keyframe_secs: 1,
            hub: String::new(),
            discovery_port: DISCOVERY_PORT,
            key_file: None,
            key: None,
            motion: false,
            motion_percent: MOTION_PERCENT.default,
        }
    }
}

/// The source without its device, as a word of the file.
#[derive(Clone, Copy)]
enum SourceKind {
    Libcamera,
    V4l2,
    Test,
}

words! { SourceKind, "camera source", ["libcamera" => SourceKind::Libcamera, "v4l2" => SourceKind::V4l2, "test" => SourceKind::Test] }

words! { CameraEncoder, "encoder", ["auto" => CameraEncoder::Auto, "x264" => CameraEncoder::X264, "v4l2" => CameraEncoder::V4l2] }

pub(crate) fn check(c: &mut Checker, files: Vec<CameraFile>) -> Vec<CameraConfig> {
    c.each("cameras", files, camera)
}

fn camera(c: &mut Checker, at: &At, cam: CameraFile) -> Option<CameraConfig> {
    let name = c.name(&at.key("name"), cam.name, "camera");
    let source = match c.word(
        &at.key("source"),
        cam.source.as_deref(),
        SourceKind::Libcamera,
    ) {
        SourceKind::Libcamera => CameraSource::Libcamera,
        SourceKind::Test => CameraSource::Test,
        SourceKind::V4l2 => CameraSource::V4l2 {
            device: cam.device.unwrap_or_else(|| PathBuf::from("/dev/video0")),
        },
    };
    let encoder = c.word(
        &at.key("encoder"),
        cam.encoder.as_deref(),
        CameraEncoder::Auto,
    );
    let width = c.bounded(&at.key("width"), cam.width, &WIDTH);
    // The H.264 encoders take only even widths (4:2:0 chroma).
    if width % 2 == 1 {
        c.report(
            at.key("width"),
            format!("{width} px is odd"),
            "use an even width",
        );
    }
    if cam.key.is_some() && cam.key_file.is_some() {
        c.report(
            at.key("key"),
            "both key and key_file are set",
            "keep key_file (key is for tests and the demo)",
        );
    }
    Some(CameraConfig {
        height: c.bounded(&at.key("height"), cam.height, &HEIGHT),
        framerate: c.bounded(&at.key("framerate"), cam.framerate, &FRAMERATE),
        bitrate_kbps: c.bounded(&at.key("bitrate_kbps"), cam.bitrate_kbps, &BITRATE_KBPS),
        keyframe_secs: c.bounded(&at.key("keyframe_secs"), cam.keyframe_secs, &KEYFRAME_SECS),
        motion_percent: c.bounded(
            &at.key("motion_percent"),
            cam.motion_percent,
            &MOTION_PERCENT,
        ),
        name: name?,
        source,
        width,
        encoder,
        hub: cam.hub.unwrap_or_else(|| "127.0.0.1:7445".to_owned()),
        discovery_port: cam.discovery_port.unwrap_or(DISCOVERY_PORT),
        key_file: cam.key_file,
        key: cam.key,
        motion: cam.motion.unwrap_or(false),
    })
}

//! camd: one camera.
//!
//! Will own: a GStreamer pipeline (libcamerasrc or v4l2src on a Pi,
//! videotestsrc elsewhere; v4l2h264enc or x264enc) into an appsink, the
//! authenticated TCP link to the hub (camera is the client), UDP beacons,
//! and capture that goes on while the hub is away.
//!
//! Must never: re-encode on the hub's behalf or block capture on the network.

#![forbid(unsafe_code)]

/// What this service will do, printed by its binary until it is built.
pub const PLANNED: &str =
    "capture one camera with GStreamer and stream H.264 to the hub over an authenticated TCP link";

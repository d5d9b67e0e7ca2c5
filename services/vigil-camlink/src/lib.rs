//! The camera link: how a camera (camd) and the hub talk.
//!
//! Owns: the wire format (below, and `docs/camera-link.md`), the key
//! challenge, the UDP heartbeat datagram, and reading and writing frames
//! on any tokio stream with hard limits.
//!
//! Must never: trust a length or a field from the peer without checking it
//! against the reader's limit ([`MAX_HANDSHAKE_FRAME`] until the peer has
//! proven the key, [`MAX_FRAME`] after) and the message's own layout;
//! allocate ahead of the bytes that arrived; accept a camera whose answer
//! to the challenge does not verify, or a heartbeat that does not name the
//! camera's latest link with a number past the last one.
//!
//! Why a pre-shared key and a challenge, not TLS: a camera node is a Pi Zero
//! 2 W encoding video on its four small cores; the link runs on the home
//! LAN; and a per-camera secret file is easy to provision from NixOS (and
//! to revoke: change the file on both sides). The challenges go both ways:
//! the camera proves it holds the key, and the hub proves it too before
//! the camera sends a frame (so a host that answers a discovery beacon or
//! takes the hub's address gets no video); fresh nonces per connection
//! defeat replay. What it does not give is confidentiality:
//! video crosses the LAN unencrypted. Cameras on an untrusted network
//! should use a VPN (WireGuard) until the link grows TLS.
//!
//! ## Frames (both directions)
//!
//! `u32` big-endian length `n` (1 to [`MAX_HANDSHAKE_FRAME`] until the peer
//! has proven the key, then 1 to [`MAX_FRAME`]), then `n` bytes: one type
//! byte and the body. Integers are big-endian; a string is a `u16`
//! length and UTF-8 bytes.
//!
//! | type | direction | body |
//! |---|---|---|
//! | 1 Challenge | hub to camera | version `u8` (1), nonce 32 bytes |
//! | 2 Hello | camera to hub | name (string), width `u16`, height `u16`, fps `u8`, answer 32 bytes: HMAC-SHA256(key, "vigil-cam/1" ‖ hub nonce ‖ name), camera nonce 32 bytes |
//! | 3 Welcome | hub to camera | proof 32 bytes: HMAC-SHA256(key, "vigil-hub/1" ‖ camera nonce ‖ name) |
//! | 4 Refused | hub to camera | reason (string); the hub closes |
//! | 10 Frame | camera to hub | pts µs `u64`, flags `u8` (bit 0: key frame), H.264 access unit (Annex B, SPS/PPS before every key frame): the rest |
//! | 11 Ack | camera to hub | command id `u32`, ok `u8`, message (string) |
//! | 20 Command | hub to camera | command id `u32`, kind `u8` (1 start, 2 stop, 3 key frame now, 4 bitrate), value `u32` (kbit/s for bitrate) |
//!
//! ## Heartbeat (UDP, to the hub's camera port)
//!
//! `VIGIL-CAM/2 <name> <link> <seq> <hex HMAC-SHA256(key, "vigil-heartbeat/2 <name> <link> <seq>")>`
//! once a second, where `<link>` is the hex of the hub's challenge nonce on
//! the camera's latest connection and `<seq>` counts from 1 on that link.
//! The hub takes a heartbeat only if it verifies, names the link of the
//! camera's latest authenticated connection and counts past the last one
//! it took ([`HeartbeatGuard`]): a captured heartbeat cannot be replayed.
//! Version 1 (no link) is no longer accepted.
//!
//! ## Discovery beacon (UDP broadcast from the hub)
//!
//! `VIGIL-HUB/1 <tcp port>` every two seconds to `[recording] beacon`
//! (default `255.255.255.255:7446`); a camera configured with
//! `hub = "discover"` connects to the sender's address and that port.

#![forbid(unsafe_code)]

mod auth;
mod frame;

pub use auth::{
    Heartbeat, HeartbeatGuard, Key, Stale, beacon, heartbeat, is_v1_heartbeat, parse_beacon,
    verify_heartbeat,
};
pub use frame::{
    CommandKind, FrameReader, MAX_FRAME, MAX_HANDSHAKE_FRAME, Message, read_message, write_message,
};

/// What can go wrong on the link.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("the connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the peer closed the connection")]
    Closed,
    /// A frame of length 0, or longer than the reader takes now
    /// ([`MAX_HANDSHAKE_FRAME`] before the peer has proven the key,
    /// [`MAX_FRAME`] after): the peer is not a camera link, or is broken;
    /// the connection is dropped.
    #[error(
        "a frame of {0} bytes is empty or over the limit ({MAX_HANDSHAKE_FRAME} bytes before \
         the key is proven, {MAX_FRAME} after)"
    )]
    BadLength(u32),
    #[error("unknown message type {0}")]
    UnknownType(u8),
    /// A body shorter or longer than its type's layout.
    #[error("a malformed {0} message")]
    Malformed(&'static str),
    /// The name is the peer's: quoted and escaped when shown.
    #[error("the camera's key does not match (camera {})", vigil_domain::text::excerpt(.0))]
    BadKey(String),
    /// The peer welcomed the camera but could not prove it holds the key:
    /// not this camera's hub.
    #[error("the hub could not prove it holds this camera's key: not our hub, nothing sent")]
    HubNotProven,
    /// The reason is the peer's (a host that is not the hub may send one):
    /// quoted and escaped when shown, so it cannot forge a log line.
    #[error("refused by the hub: {}", vigil_domain::text::excerpt(.0))]
    Refused(String),
    #[error("the peer sent {0} where the handshake expects something else")]
    Unexpected(&'static str),
    #[error("the key file {path}: {source}")]
    KeyFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the camera key is empty")]
    EmptyKey,
}

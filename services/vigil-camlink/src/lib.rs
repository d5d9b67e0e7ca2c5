//! The camera link: how a camera (camd) and the hub talk.
//!
//! Owns: the wire format (below, and `docs/camera-link.md`), the encrypted
//! handshake ([`camera_handshake`], [`hub_handshake`]) and the encrypted
//! stream of messages ([`Sealer`], [`Opener`]), the UDP heartbeat
//! datagram, and reading frames with hard limits.
//!
//! Must never: send a byte of a camera's name, video or commands in clear
//! (a peer of the clear-text version 1 is refused, never fallen back to);
//! take a message that does not decrypt (the link is closed); trust a
//! length or a field from the peer without checking it against the
//! reader's limit ([`MAX_HANDSHAKE_FRAME`] until the peer has proven the
//! key, [`MAX_FRAME`] after) and the message's own layout; allocate ahead
//! of the bytes that arrived; or accept a heartbeat that does not name the
//! camera's latest link with a number past the last one.
//!
//! Why Noise keyed by a pre-shared key, not TLS with certificates: a camera
//! node is a Pi Zero 2 W encoding video on its four small cores; a
//! per-camera secret file is easy to provision from NixOS (and to revoke:
//! change the file on both sides); and `NNpsk0` needs nothing else (no
//! certificates, no static keys). Both ends prove the key in the handshake
//! (the hub before the camera sends anything but its first handshake
//! message, the camera with its first encrypted message), the keys of each
//! connection are fresh (ephemeral Diffie-Hellman), and every message is
//! encrypted and authenticated with ChaChaPoly. See [`secure`](crate::secure)
//! for the handshake, step by step.
//!
//! ## Version 2 on the wire
//!
//! The hub's [`BANNER`] (38 bytes, in clear), the Noise handshake (two
//! messages, each a `u16` length and the message), then in each direction
//! Noise transport messages (a `u16` length and up to 65 535 bytes of
//! ciphertext) whose plaintext is the stream of frames below.
//!
//! ## Frames (inside the encrypted link, both directions)
//!
//! `u32` big-endian length `n` (1 to [`MAX_HANDSHAKE_FRAME`] until the peer
//! has proven the key, then 1 to [`MAX_FRAME`]), then `n` bytes: one type
//! byte and the body. Integers are big-endian; a string is a `u16`
//! length and UTF-8 bytes.
//!
//! | type | direction | body |
//! |---|---|---|
//! | 2 Hello | camera to hub, the first message | name (string), width `u16`, height `u16`, fps `u8` |
//! | 3 Welcome | hub to camera | the link's id, 32 random bytes (the heartbeats name it) |
//! | 4 Refused | hub to camera | reason (string); the hub closes |
//! | 10 Frame | camera to hub | pts µs `u64`, flags `u8` (bit 0: key frame), H.264 access unit (Annex B, SPS/PPS before every key frame): the rest |
//! | 11 Ack | camera to hub | command id `u32`, ok `u8`, message (string) |
//! | 20 Command | hub to camera | command id `u32`, kind `u8` (1 start, 2 stop, 3 key frame now, 4 bitrate), value `u32` (kbit/s for bitrate) |
//!
//! Type 1 (version 1's clear-text `Challenge`) is gone; the banner keeps
//! its layout so that a version-1 camera stops at its version byte.
//!
//! ## Heartbeat (UDP, to the hub's camera port)
//!
//! `VIGIL-CAM/2 <name> <link> <seq> <hex HMAC-SHA256(key, "vigil-heartbeat/2 <name> <link> <seq>")>`
//! once a second, where `<link>` is the hex of the link id the hub sent in
//! its `Welcome` on the camera's latest connection and `<seq>` counts from 1 on that link.
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
pub mod secure;

pub use auth::{
    Heartbeat, HeartbeatGuard, Key, Stale, beacon, heartbeat, is_v1_heartbeat, parse_beacon,
    verify_heartbeat,
};
pub use frame::{
    CommandKind, FrameReader, MAX_FRAME, MAX_HANDSHAKE_FRAME, Message, read_message, write_message,
};
pub use secure::{
    BANNER, LINK_VERSION, MAX_CHUNK, NOISE_PROTOCOL, Opener, Sealer, camera_handshake,
    hub_handshake,
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
    /// A transport message did not decrypt: changed on the way, replayed,
    /// reordered, or not from the peer of the handshake.
    #[error(
        "a message on the link did not decrypt (changed or replayed on the way, or not from the \
         peer that made the handshake); the connection is closed"
    )]
    Tampered,
    /// The peer speaks another version of the link: version 1 sent
    /// everything in clear, and a camera never falls back to it.
    #[error(
        "the peer speaks camera link version {0}, which sends video and names in clear text; \
         nothing was sent: update vigil-hub and vigil-camd to the same release"
    )]
    OldVersion(u8),
    /// No configured camera's key opens the peer's first handshake
    /// message: a wrong key, or not a camera of this hub.
    #[error(
        "no configured camera's key opens its handshake: its key_file differs from the hub's, \
         or it is not a camera of this hub"
    )]
    NoKeyOpens,
    /// The Noise library refused an operation (a bug, not the peer).
    #[error("the Noise protocol: {0}")]
    Noise(String),
    #[error("the key file {path}: {source}")]
    KeyFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the camera key is empty")]
    EmptyKey,
}

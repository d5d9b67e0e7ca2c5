//! The key, the Noise pre-shared key derived from it, and the heartbeat's
//! MAC.

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::LinkError;

/// A camera's secret, shared by the camera and the hub.
#[derive(Clone)]
pub struct Key(Vec<u8>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

fn mac(key: &Key, parts: &[&[u8]]) -> [u8; 32] {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(&key.0).expect("HMAC takes keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Key {
    /// A key from its text (surrounding whitespace is not part of it).
    pub fn new(text: &str) -> Result<Key, LinkError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(LinkError::EmptyKey);
        }
        Ok(Key(trimmed.as_bytes().to_vec()))
    }

    /// Reads a key file (created with e.g. `head -c 32 /dev/urandom | base64`).
    pub fn from_file(path: &Path) -> Result<Key, LinkError> {
        let text = std::fs::read_to_string(path).map_err(|source| LinkError::KeyFile {
            path: path.to_owned(),
            source,
        })?;
        Key::new(&text)
    }

    /// The Noise pre-shared key of the camera link: HMAC-SHA256 of the
    /// key over a label, so the key file may hold any text (Noise wants
    /// exactly 32 bytes) and the same secret never keys two protocols
    /// (the heartbeats' MAC uses the key itself).
    pub fn noise_psk(&self) -> [u8; 32] {
        mac(self, &[b"vigil-camlink/2 noise psk"])
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The heartbeat's first word.
const HEARTBEAT_TAG: &str = "VIGIL-CAM/2";

fn heartbeat_text(camera: &str, link: &str, seq: u64) -> String {
    format!("vigil-heartbeat/2 {camera} {link} {seq}")
}

/// The hub's discovery beacon: where its camera port is.
pub fn beacon(tcp_port: u16) -> String {
    format!("VIGIL-HUB/1 {tcp_port}")
}

/// The camera port a beacon announces.
pub fn parse_beacon(datagram: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(datagram).ok()?;
    let port = text.trim_end().strip_prefix("VIGIL-HUB/1 ")?;
    port.parse().ok().filter(|p| *p != 0)
}

/// A heartbeat whose MAC verified: the camera, the link it names (the id
/// the hub's `Welcome` gave the connection the camera last made) and its
/// number on that link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub camera: String,
    pub link: [u8; 32],
    pub seq: u64,
}

/// The heartbeat datagram of `camera`, number `seq` on the link whose id
/// was `link`.
pub fn heartbeat(key: &Key, camera: &str, link: &[u8; 32], seq: u64) -> String {
    let link = hex(link);
    let tag = mac(key, &[heartbeat_text(camera, &link, seq).as_bytes()]);
    format!("{HEARTBEAT_TAG} {camera} {link} {seq} {}", hex(&tag))
}

/// Whether `datagram` is a heartbeat of the first version (no link, so it
/// could be replayed): no longer accepted, but worth telling the operator.
pub fn is_v1_heartbeat(datagram: &[u8]) -> bool {
    datagram.starts_with(b"VIGIL-CAM/1 ")
}

/// Reads a heartbeat datagram: `Some` if it is well formed and its MAC
/// verifies with the key `key_of` gives for its camera. Whether it is
/// fresh is the receiver's [`HeartbeatGuard`]'s to say.
pub fn verify_heartbeat<'k>(
    datagram: &[u8],
    key_of: impl Fn(&str) -> Option<&'k Key>,
) -> Option<Heartbeat> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut words = text.trim_end().split(' ');
    if words.next()? != HEARTBEAT_TAG {
        return None;
    }
    let camera = words.next()?;
    let link_hex = words.next()?;
    let link = unhex32(link_hex)?;
    let seq: u64 = words.next()?.parse().ok()?;
    let tag = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let key = key_of(camera)?;
    let want = hex(&mac(
        key,
        &[heartbeat_text(camera, link_hex, seq).as_bytes()],
    ));
    constant_time_eq(want.as_bytes(), tag.as_bytes()).then(|| Heartbeat {
        camera: camera.to_owned(),
        link,
        seq,
    })
}

/// Why a verified heartbeat was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The camera has not connected since the hub started: no link yet.
    NoLink,
    /// It names another link than the camera's latest connection: from
    /// before a reconnection, or replayed from an older one.
    OtherLink,
    /// Its number is not past the last one taken on this link: a replay
    /// (or a datagram the network delivered late).
    Replayed { seq: u64, last: u64 },
}

/// What the hub remembers to refuse replayed heartbeats: the link of the
/// camera's latest authenticated connection, and the highest number taken
/// on it. A captured heartbeat is worth nothing once a later one arrived,
/// nor after the camera reconnects (a new link), nor after the hub restarts
/// (no link until the camera proves its key again).
#[derive(Clone, Debug, Default)]
pub struct HeartbeatGuard {
    link: Option<[u8; 32]>,
    last: u64,
}

impl HeartbeatGuard {
    /// The camera proved its key on a connection whose link id is `link`:
    /// its heartbeats name that link from now on, counting from 1.
    pub fn linked(&mut self, link: [u8; 32]) {
        self.link = Some(link);
        self.last = 0;
    }

    /// Takes `beat` if it names the current link and counts past the last
    /// one taken.
    pub fn accept(&mut self, beat: &Heartbeat) -> Result<(), Stale> {
        match self.link {
            None => Err(Stale::NoLink),
            Some(link) if link != beat.link => Err(Stale::OtherLink),
            Some(_) if beat.seq <= self.last => Err(Stale::Replayed {
                seq: beat.seq,
                last: self.last,
            }),
            Some(_) => {
                self.last = beat.seq;
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_noise_key_is_the_keys_alone() {
        let key = Key::new(" secret\n").expect("key");
        assert_eq!(
            key.noise_psk(),
            Key::new("secret").expect("key").noise_psk()
        );
        assert_ne!(key.noise_psk(), Key::new("other").expect("key").noise_psk());
        assert!(Key::new("  \n").is_err());
    }

    #[test]
    fn beacons() {
        assert_eq!(parse_beacon(beacon(7445).as_bytes()), Some(7445));
        assert_eq!(parse_beacon(b"VIGIL-HUB/1 0"), None);
        assert_eq!(parse_beacon(b"VIGIL-HUB/2 7445"), None);
        assert_eq!(parse_beacon(b"\xff"), None);
    }

    #[test]
    fn heartbeats_verify_and_forgeries_do_not() {
        let key = Key::new("secret").expect("key");
        let link = [5u8; 32];
        let beat = heartbeat(&key, "porch", &link, 42);
        let lookup = |name: &str| (name == "porch").then_some(&key);
        let porch = |seq| Heartbeat {
            camera: "porch".into(),
            link,
            seq,
        };
        assert_eq!(verify_heartbeat(beat.as_bytes(), lookup), Some(porch(42)));
        let forged = beat.replace(" 42 ", " 43 ");
        assert_eq!(verify_heartbeat(forged.as_bytes(), lookup), None);
        let relinked = beat.replace(&hex(&link), &hex(&[6u8; 32]));
        assert_eq!(verify_heartbeat(relinked.as_bytes(), lookup), None);
        assert_eq!(verify_heartbeat(b"VIGIL-CAM/2 porch 1 00", lookup), None);
        assert_eq!(verify_heartbeat(&[0xff, 0xfe], lookup), None);
        let unknown = heartbeat(&key, "garden", &link, 1);
        assert_eq!(verify_heartbeat(unknown.as_bytes(), lookup), None);
        // The first version is recognised, and never verifies.
        let old = "VIGIL-CAM/1 porch 42 00";
        assert!(is_v1_heartbeat(old.as_bytes()));
        assert_eq!(verify_heartbeat(old.as_bytes(), lookup), None);
    }

    #[test]
    fn a_heartbeat_counts_once_on_the_latest_link_only() {
        let beat = |link: u8, seq| Heartbeat {
            camera: "porch".into(),
            link: [link; 32],
            seq,
        };
        let mut guard = HeartbeatGuard::default();
        assert_eq!(guard.accept(&beat(1, 1)), Err(Stale::NoLink));
        guard.linked([1; 32]);
        assert_eq!(guard.accept(&beat(1, 1)), Ok(()));
        assert_eq!(guard.accept(&beat(1, 2)), Ok(()));
        // Replayed, or delivered out of order: refused.
        assert_eq!(
            guard.accept(&beat(1, 2)),
            Err(Stale::Replayed { seq: 2, last: 2 })
        );
        assert_eq!(
            guard.accept(&beat(1, 1)),
            Err(Stale::Replayed { seq: 1, last: 2 })
        );
        assert_eq!(guard.accept(&beat(1, 10)), Ok(()));
        // The camera reconnects (or restarts): a new link, counting anew;
        // the old link's heartbeats, whatever their number, are refused.
        guard.linked([2; 32]);
        assert_eq!(guard.accept(&beat(1, 11)), Err(Stale::OtherLink));
        assert_eq!(guard.accept(&beat(2, 1)), Ok(()));
    }
}

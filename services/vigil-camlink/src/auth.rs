//! The key, the challenge's MAC and the heartbeat's.

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

    /// The camera's answer to a challenge.
    pub fn answer(&self, nonce: &[u8; 32], camera: &str) -> [u8; 32] {
        mac(self, &[b"vigil-cam/1", nonce, camera.as_bytes()])
    }

    /// The hub's answer to the camera's own challenge: proves to the
    /// camera that it talks to the hub that holds its key.
    pub fn hub_proof(&self, nonce: &[u8; 32], camera: &str) -> [u8; 32] {
        mac(self, &[b"vigil-hub/1", nonce, camera.as_bytes()])
    }

    /// Whether `proof` is the hub's answer to `nonce`.
    pub fn verify_hub_proof(&self, nonce: &[u8; 32], camera: &str, proof: &[u8; 32]) -> bool {
        constant_time_eq(&self.hub_proof(nonce, camera), proof)
    }

    /// Whether `answer` proves the key for this challenge and camera.
    pub fn verify(&self, nonce: &[u8; 32], camera: &str, answer: &[u8; 32]) -> bool {
        constant_time_eq(&self.answer(nonce, camera), answer)
    }
}

fn heartbeat_text(camera: &str, seq: u64) -> String {
    format!("vigil-heartbeat/1 {camera} {seq}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

/// The heartbeat datagram of `camera`, number `seq`.
pub fn heartbeat(key: &Key, camera: &str, seq: u64) -> String {
    let tag = mac(key, &[heartbeat_text(camera, seq).as_bytes()]);
    format!("VIGIL-CAM/1 {camera} {seq} {}", hex(&tag))
}

/// Reads a heartbeat datagram: `Some((camera, seq))` if it is well formed
/// and verifies with the key `key_of` gives for its camera.
pub fn verify_heartbeat<'k>(
    datagram: &[u8],
    key_of: impl Fn(&str) -> Option<&'k Key>,
) -> Option<(String, u64)> {
    let text = std::str::from_utf8(datagram).ok()?;
    let mut words = text.trim_end().split(' ');
    if words.next()? != "VIGIL-CAM/1" {
        return None;
    }
    let camera = words.next()?;
    let seq: u64 = words.next()?.parse().ok()?;
    let tag = words.next()?;
    if words.next().is_some() {
        return None;
    }
    let key = key_of(camera)?;
    let want = hex(&mac(key, &[heartbeat_text(camera, seq).as_bytes()]));
    constant_time_eq(want.as_bytes(), tag.as_bytes()).then(|| (camera.to_owned(), seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_verify_only_with_the_key_nonce_and_name() {
        let key = Key::new(" secret\n").expect("key");
        let other = Key::new("other").expect("key");
        let nonce = [7u8; 32];
        let answer = key.answer(&nonce, "porch");
        assert!(key.verify(&nonce, "porch", &answer));
        assert!(!other.verify(&nonce, "porch", &answer));
        assert!(!key.verify(&[8u8; 32], "porch", &answer), "another nonce");
        assert!(!key.verify(&nonce, "garden", &answer), "another camera");
        assert!(Key::new("  \n").is_err());
        let proof = key.hub_proof(&nonce, "porch");
        assert!(key.verify_hub_proof(&nonce, "porch", &proof));
        assert!(!other.verify_hub_proof(&nonce, "porch", &proof));
        assert_ne!(proof, answer, "the two directions never share a MAC");
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
        let beat = heartbeat(&key, "porch", 42);
        let lookup = |name: &str| (name == "porch").then_some(&key);
        assert_eq!(
            verify_heartbeat(beat.as_bytes(), lookup),
            Some(("porch".into(), 42))
        );
        let forged = beat.replace(" 42 ", " 43 ");
        assert_eq!(verify_heartbeat(forged.as_bytes(), lookup), None);
        assert_eq!(verify_heartbeat(b"VIGIL-CAM/1 porch 1 00", lookup), None);
        assert_eq!(verify_heartbeat(&[0xff, 0xfe], lookup), None);
        let unknown = heartbeat(&key, "garden", 1);
        assert_eq!(verify_heartbeat(unknown.as_bytes(), lookup), None);
    }
}

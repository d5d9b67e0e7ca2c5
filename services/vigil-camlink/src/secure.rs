//! The encrypted link (version 2): a Noise handshake keyed by the camera's
//! key, then every message inside Noise transport messages.
//!
//! On a new connection:
//!
//! 1. hub: [`BANNER`], 38 bytes in clear. It is laid out as a version-1
//!    `Challenge` frame whose version byte says 2, so a camd of version 1
//!    stops at once ("a malformed Challenge (version) message") instead of
//!    sending its name and video in clear; a camera of version 2 that reads
//!    a version-1 challenge there stops too ([`LinkError::OldVersion`]):
//!    neither end ever falls back to clear text.
//! 2. camera: `u16` length, then Noise `NNpsk0` message 1 (`psk, e`,
//!    empty payload: 48 bytes). The hub tries each configured camera's key
//!    on it; which one opens it says which camera this is, without the
//!    camera's name on the wire. None does: the hub answers `u16` 0, a
//!    `u16` length and a reason in clear (it has no key to encrypt with;
//!    the reason holds no secret), and closes.
//! 3. hub: `u16` length, then message 2 (`e, ee`). The camera opens it only
//!    if the hub holds the key: otherwise [`LinkError::HubNotProven`] and
//!    the camera sends nothing more.
//! 4. From then on each direction is a stream of Noise transport messages,
//!    each a `u16` length (17 to 65 535) and the ciphertext of up to
//!    [`MAX_CHUNK`] bytes of plaintext; the plaintext is the version-1
//!    framing (a `u32` length, a type byte, the body), a message longer than
//!    a chunk spanning several. Nonces count from 0 in each direction and
//!    are never sent: a message replayed, dropped, reordered or changed
//!    does not decrypt, and the link is closed ([`LinkError::Tampered`]).
//!    The camera's first message is its `Hello`: the hub takes the key as
//!    proven only when it decrypts (message 1 alone could be a replay; the
//!    transport keys depend on the hub's fresh ephemeral key).
//!
//! Noise `NNpsk0_25519_ChaChaPoly_BLAKE2s`: both ends ephemeral (there are
//! no static keys to provision), the pre-shared key mixed in before
//! anything is sent, so both ends prove it and the transport keys are
//! forward secret (a key stolen later does not open a recording of
//! today's traffic: the ephemeral keys are gone).

use std::sync::Arc;

use snow::StatelessTransportState;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::frame::parse_frame;
use crate::{Key, LinkError, MAX_FRAME, MAX_HANDSHAKE_FRAME, Message};

/// The version of the link this crate speaks.
pub const LINK_VERSION: u8 = 2;

/// The Noise protocol of the link.
pub const NOISE_PROTOCOL: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";

/// Bound into the handshake: a peer of another protocol, or another
/// version, cannot complete it.
const PROLOGUE: &[u8] = b"vigil-camlink/2";

/// The AEAD tag of every Noise message.
const TAG: usize = 16;

/// The longest Noise message.
const MAX_NOISE: usize = 65_535;

/// The most plaintext in one transport message.
pub const MAX_CHUNK: usize = MAX_NOISE - TAG;

/// The hub's first bytes: a version-1 `Challenge` frame (length 34, type 1)
/// with version byte 2 and a zero nonce.
pub const BANNER: [u8; 38] = {
    let mut b = [0u8; 38];
    b[3] = 34;
    b[4] = 1;
    b[5] = LINK_VERSION;
    b
};

/// The longest refusal reason the hub sends in clear.
const MAX_REASON: usize = 256;

fn noise_builder(psk: &[u8; 32]) -> Result<snow::Builder<'_>, LinkError> {
    let params = NOISE_PROTOCOL
        .parse()
        .map_err(|e| LinkError::Noise(format!("{NOISE_PROTOCOL}: {e}")))?;
    snow::Builder::new(params)
        .prologue(PROLOGUE)
        .and_then(|b| b.psk(0, psk))
        .map_err(|e| LinkError::Noise(e.to_string()))
}

fn halves(state: StatelessTransportState) -> (Sealer, Opener) {
    let state = Arc::new(state);
    (
        Sealer {
            state: Arc::clone(&state),
            nonce: 0,
            out: Vec::new(),
        },
        Opener {
            state,
            nonce: 0,
            cipher: Vec::new(),
            plain: Vec::new(),
            start: 0,
            limit: MAX_HANDSHAKE_FRAME,
        },
    )
}

async fn read_u16<R: AsyncRead + Unpin>(read: &mut R) -> Result<u16, LinkError> {
    let mut len = [0u8; 2];
    match read.read_exact(&mut len).await {
        Ok(_) => Ok(u16::from_be_bytes(len)),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(LinkError::Closed),
        Err(e) => Err(e.into()),
    }
}

/// Reads a handshake message: `u16` length (1 to [`MAX_HANDSHAKE_FRAME`],
/// checked before anything is allocated), then the bytes.
async fn read_handshake<R: AsyncRead + Unpin>(read: &mut R) -> Result<Vec<u8>, LinkError> {
    let n = read_u16(read).await?;
    if n == 0 || u32::from(n) > MAX_HANDSHAKE_FRAME {
        return Err(LinkError::BadLength(u32::from(n)));
    }
    let mut message = vec![0u8; usize::from(n)];
    read.read_exact(&mut message).await?;
    Ok(message)
}

async fn write_handshake<W: AsyncWrite + Unpin>(
    write: &mut W,
    message: &[u8],
) -> Result<(), LinkError> {
    let n = u16::try_from(message.len()).map_err(|_| LinkError::BadLength(u32::MAX))?;
    let mut out = n.to_be_bytes().to_vec();
    out.extend_from_slice(message);
    write.write_all(&out).await?;
    Ok(())
}

/// The camera's side of the handshake, on a new connection to the hub:
/// reads the banner, proves `key` and checks that the hub holds it. Sends
/// nothing at all to a peer of another version, and nothing after its
/// first handshake message to a peer that does not hold the key.
pub async fn camera_handshake<R, W>(
    read: &mut R,
    write: &mut W,
    key: &Key,
) -> Result<(Sealer, Opener), LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut banner = [0u8; BANNER.len()];
    match read.read_exact(&mut banner).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(LinkError::Closed),
        Err(e) => return Err(e.into()),
    }
    if banner[..5] != BANNER[..5] {
        return Err(LinkError::Unexpected("not a camera link's banner"));
    }
    if banner[5] != LINK_VERSION {
        return Err(LinkError::OldVersion(banner[5]));
    }
    let psk = key.noise_psk();
    let mut noise = noise_builder(&psk)?
        .build_initiator()
        .map_err(|e| LinkError::Noise(e.to_string()))?;
    let mut buf = [0u8; 128];
    let n = noise
        .write_message(&[], &mut buf)
        .map_err(|e| LinkError::Noise(e.to_string()))?;
    write_handshake(write, &buf[..n]).await?;
    let n = read_u16(read).await?;
    if n == 0 {
        let len = usize::from(read_u16(read).await?);
        if len > MAX_REASON {
            return Err(LinkError::BadLength(len as u32));
        }
        let mut reason = vec![0u8; len];
        read.read_exact(&mut reason).await?;
        return Err(LinkError::Refused(
            String::from_utf8_lossy(&reason).into_owned(),
        ));
    }
    if u32::from(n) > MAX_HANDSHAKE_FRAME {
        return Err(LinkError::BadLength(u32::from(n)));
    }
    let mut message = vec![0u8; usize::from(n)];
    read.read_exact(&mut message).await?;
    // Message 2 opens only with keys derived from the pre-shared key: a
    // peer without it is not our hub.
    noise
        .read_message(&message, &mut buf)
        .map_err(|_| LinkError::HubNotProven)?;
    let state = noise
        .into_stateless_transport_mode()
        .map_err(|e| LinkError::Noise(e.to_string()))?;
    Ok(halves(state))
}

/// The hub's side of the handshake on a new connection: sends the banner,
/// finds the camera among `keys` (name, key) whose key opens the peer's
/// first message, and answers it. Returns that camera's name; its key is
/// proven only once the camera's first transport message (its `Hello`)
/// decrypts. When no key opens it, the hub says so in clear and the error
/// is [`LinkError::NoKeyOpens`].
pub async fn hub_handshake<R, W>(
    read: &mut R,
    write: &mut W,
    keys: &[(String, Key)],
) -> Result<(String, Sealer, Opener), LinkError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    write.write_all(&BANNER).await?;
    let first = read_handshake(read).await?;
    let mut payload = vec![0u8; first.len()];
    let mut opened = None;
    // Every key is tried (a few cameras, a few hashes each): which one
    // opens the message names the camera, so its name is never on the
    // wire in clear.
    for (name, key) in keys {
        let psk = key.noise_psk();
        let mut noise = noise_builder(&psk)?
            .build_responder()
            .map_err(|e| LinkError::Noise(e.to_string()))?;
        if let Ok(0) = noise.read_message(&first, &mut payload) {
            opened = Some((name.clone(), noise));
            break;
        }
    }
    let Some((camera, mut noise)) = opened else {
        let reason = "no camera's key on this hub opens the handshake";
        let mut out = vec![0, 0];
        out.extend_from_slice(&(reason.len() as u16).to_be_bytes());
        out.extend_from_slice(reason.as_bytes());
        let _ = write.write_all(&out).await;
        return Err(LinkError::NoKeyOpens);
    };
    let mut buf = [0u8; 128];
    let n = noise
        .write_message(&[], &mut buf)
        .map_err(|e| LinkError::Noise(e.to_string()))?;
    write_handshake(write, &buf[..n]).await?;
    let state = noise
        .into_stateless_transport_mode()
        .map_err(|e| LinkError::Noise(e.to_string()))?;
    let (sealer, opener) = halves(state);
    Ok((camera, sealer, opener))
}

/// The sending half of an encrypted link: one per connection, owned by
/// its writer.
pub struct Sealer {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    /// Reused for the ciphertext of each message.
    out: Vec<u8>,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("nonce", &self.nonce)
            .finish()
    }
}

impl Sealer {
    /// Encrypts `message` (in chunks of at most [`MAX_CHUNK`] bytes) and
    /// writes it.
    pub async fn send<W: AsyncWrite + Unpin>(
        &mut self,
        write: &mut W,
        message: &Message,
    ) -> Result<(), LinkError> {
        let plain = message.encode();
        self.seal(&plain)?;
        write.write_all(&self.out).await?;
        Ok(())
    }

    /// The ciphertext of `plain` into `self.out`.
    fn seal(&mut self, plain: &[u8]) -> Result<(), LinkError> {
        self.out.clear();
        for chunk in plain.chunks(MAX_CHUNK) {
            let n = chunk.len() + TAG;
            let at = self.out.len();
            self.out.extend_from_slice(&(n as u16).to_be_bytes());
            self.out.resize(at + 2 + n, 0);
            self.state
                .write_message(self.nonce, chunk, &mut self.out[at + 2..])
                .map_err(|e| LinkError::Noise(e.to_string()))?;
            self.nonce += 1;
        }
        Ok(())
    }
}

/// The receiving half of an encrypted link. Its limit on a message's
/// length starts at [`MAX_HANDSHAKE_FRAME`] (and a transport message's at
/// that plus its framing): only a peer whose key is proven
/// ([`Opener::authenticated`]) may send messages up to [`MAX_FRAME`].
pub struct Opener {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    /// One transport message's ciphertext.
    cipher: Vec<u8>,
    /// Decrypted bytes not yet taken as messages, from `start`.
    plain: Vec<u8>,
    start: usize,
    limit: u32,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("nonce", &self.nonce)
            .field("limit", &self.limit)
            .finish()
    }
}

impl Opener {
    /// The peer has proven the key: messages up to [`MAX_FRAME`].
    pub fn authenticated(&mut self) {
        self.limit = MAX_FRAME;
    }

    /// The longest message this reader takes now.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The longest transport message this reader takes now: a whole
    /// message of the limit and its framing, at most a Noise message.
    fn chunk_limit(&self) -> usize {
        (self.limit as usize + 4 + TAG).min(MAX_NOISE)
    }

    /// The next message. A transport message that does not decrypt ends
    /// the link ([`LinkError::Tampered`]); a length over the limit is an
    /// error before anything is allocated, and the buffers grow with the
    /// bytes that arrive; EOF between messages is [`LinkError::Closed`].
    pub async fn read<R: AsyncRead + Unpin>(&mut self, read: &mut R) -> Result<Message, LinkError> {
        loop {
            if let Some((message, used)) = parse_frame(&self.plain[self.start..], self.limit)? {
                self.start += used;
                if self.start == self.plain.len() {
                    self.plain.clear();
                    self.start = 0;
                }
                return Ok(message);
            }
            if self.start > 0 {
                self.plain.drain(..self.start);
                self.start = 0;
            }
            let n = match read_u16(read).await {
                Ok(n) => usize::from(n),
                Err(LinkError::Closed) if !self.plain.is_empty() => {
                    return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
                }
                Err(e) => return Err(e),
            };
            if n <= TAG || n > self.chunk_limit() {
                return Err(LinkError::BadLength(n as u32));
            }
            self.cipher.resize(n, 0);
            read.read_exact(&mut self.cipher).await?;
            let at = self.plain.len();
            self.plain.resize(at + n - TAG, 0);
            self.state
                .read_message(self.nonce, &self.cipher, &mut self.plain[at..])
                .map_err(|_| LinkError::Tampered)?;
            self.nonce += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, split};

    fn key(text: &str) -> Key {
        Key::new(text).expect("key")
    }

    fn cameras() -> Vec<(String, Key)> {
        vec![
            ("garden".into(), key("garden-secret")),
            ("porch".into(), key("porch-secret")),
        ]
    }

    fn frame(n: usize) -> Message {
        Message::Frame {
            pts_us: 42,
            key: true,
            data: (0..n).map(|i| (i % 251) as u8).collect(),
        }
    }

    /// A camera and a hub handshaking over a pipe, the camera with `camera_key`.
    async fn pair(
        camera_key: &str,
    ) -> (
        Result<(Sealer, Opener), LinkError>,
        Result<(String, Sealer, Opener), LinkError>,
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
    ) {
        let (camera_end, hub_end) = duplex(1 << 20);
        let (mut cr, mut cw) = split(camera_end);
        let (mut hr, mut hw) = split(hub_end);
        let keys = cameras();
        let k = key(camera_key);
        let (camera, hub) = tokio::join!(
            camera_handshake(&mut cr, &mut cw, &k),
            hub_handshake(&mut hr, &mut hw, &keys)
        );
        (camera, hub, cr.unsplit(cw), hr.unsplit(hw))
    }

    #[tokio::test]
    async fn messages_cross_encrypted_in_both_directions_and_large_ones_in_chunks() {
        let (camera, hub, mut camera_io, mut hub_io) = pair("porch-secret").await;
        let (mut c_seal, mut c_open) = camera.expect("camera side");
        let (name, mut h_seal, mut h_open) = hub.expect("hub side");
        assert_eq!(name, "porch", "the key says which camera, no name sent");
        let hello = Message::Hello {
            camera: "porch".into(),
            width: 1920,
            height: 1080,
            fps: 30,
        };
        c_seal.send(&mut camera_io, &hello).await.expect("hello");
        assert_eq!(h_open.read(&mut hub_io).await.expect("read"), hello);
        h_open.authenticated();
        // 1 MiB: sixteen Noise messages; and several messages in a row.
        let big = frame(1 << 20);
        let write = async {
            for m in [
                frame(10),
                big.clone(),
                frame(MAX_CHUNK),
                frame(MAX_CHUNK - 13),
            ] {
                c_seal.send(&mut camera_io, &m).await.expect("send");
            }
        };
        let read = async {
            let mut got = Vec::new();
            for _ in 0..4 {
                got.push(h_open.read(&mut hub_io).await.expect("read"));
            }
            got
        };
        let ((), got) = tokio::join!(write, read);
        assert_eq!(got[1], big);
        assert_eq!(got[2], frame(MAX_CHUNK));
        let welcome = Message::Welcome { link: [7; 32] };
        h_seal.send(&mut hub_io, &welcome).await.expect("welcome");
        assert_eq!(c_open.read(&mut camera_io).await.expect("read"), welcome);
    }

    #[tokio::test]
    async fn the_bytes_on_the_wire_show_neither_the_name_nor_the_video() {
        let (camera, _hub, mut camera_io, mut hub_io) = pair("porch-secret").await;
        let (mut seal, _) = camera.expect("camera");
        let hello = Message::Hello {
            camera: "porch".into(),
            width: 1920,
            height: 1080,
            fps: 30,
        };
        let sps = Message::Frame {
            pts_us: 1,
            key: true,
            data: [0, 0, 0, 1, 0x67, 0x42].repeat(100),
        };
        seal.send(&mut camera_io, &hello).await.expect("send");
        seal.send(&mut camera_io, &sps).await.expect("send");
        drop(camera_io);
        let mut wire = Vec::new();
        hub_io.read_to_end(&mut wire).await.expect("read");
        assert!(wire.len() > 600);
        let has = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
        assert!(!has(b"porch"));
        assert!(!has(&[0, 0, 0, 1, 0x67]));
    }

    /// The camera's sealer and the hub's opener of a link whose handshake
    /// went through, the camera's key proven.
    async fn camera_to_proven_hub() -> (Sealer, Opener) {
        let (camera, hub, _c, _h) = pair("porch-secret").await;
        let (seal, _) = camera.expect("camera");
        let (_, _, mut open) = hub.expect("hub");
        open.authenticated();
        (seal, open)
    }

    #[tokio::test]
    async fn a_tampered_message_is_refused_and_ends_the_link() {
        let (mut seal, mut open) = camera_to_proven_hub().await;
        let mut wire = Vec::new();
        seal.send(&mut wire, &frame(100)).await.expect("seal");
        seal.send(&mut wire, &frame(100)).await.expect("seal");
        let mut tampered = wire.clone();
        tampered[40] ^= 1;
        let mut cursor = tampered.as_slice();
        assert!(matches!(
            open.read(&mut cursor).await,
            Err(LinkError::Tampered)
        ));

        // Replayed, or a message dropped on the way: the nonce differs.
        let (mut seal, mut open) = camera_to_proven_hub().await;
        let mut first = Vec::new();
        seal.send(&mut first, &frame(100)).await.expect("seal");
        let mut twice = first.clone();
        twice.extend_from_slice(&first);
        let mut cursor = twice.as_slice();
        assert_eq!(open.read(&mut cursor).await.expect("first"), frame(100));
        assert!(matches!(
            open.read(&mut cursor).await,
            Err(LinkError::Tampered)
        ));
    }

    #[tokio::test]
    async fn a_wrong_key_fails_the_handshake_on_both_sides() {
        let (camera, hub, _c, _h) = pair("not-the-key").await;
        assert!(matches!(camera, Err(LinkError::Refused(_))), "{camera:?}");
        assert!(matches!(hub, Err(LinkError::NoKeyOpens)), "{:?}", hub.err());

        // A peer that takes the hub's place without the key: its second
        // message does not open, and the camera sends nothing more.
        let (camera_end, impostor_end) = duplex(1 << 16);
        let (mut cr, mut cw) = split(camera_end);
        let (mut ir, mut iw) = split(impostor_end);
        let impostor_keys = [("porch".to_owned(), key("guessed"))];
        let k = key("porch-secret");
        let (camera, _) = tokio::join!(camera_handshake(&mut cr, &mut cw, &k), async {
            // It answers with a fresh message 2 of its own key.
            iw.write_all(&BANNER).await.expect("banner");
            let first = read_handshake(&mut ir).await.expect("first");
            let psk = impostor_keys[0].1.noise_psk();
            let mut noise = noise_builder(&psk)
                .and_then(|b| {
                    b.build_responder()
                        .map_err(|e| LinkError::Noise(e.to_string()))
                })
                .expect("noise");
            let mut buf = [0u8; 128];
            // It cannot read message 1 (another key), so it makes up
            // message 2 from a handshake of its own.
            let _ = noise.read_message(&first, &mut buf);
            write_handshake(&mut iw, &[5u8; 48]).await.expect("write");
        });
        assert!(matches!(camera, Err(LinkError::HubNotProven)), "{camera:?}");
        // Both halves gone: the camera's end is closed.
        drop((cr, cw));
        let mut rest = Vec::new();
        ir.read_to_end(&mut rest).await.expect("read");
        assert!(rest.is_empty(), "the camera sent {} bytes more", rest.len());
    }

    #[tokio::test]
    async fn a_clear_text_peer_of_version_1_is_refused_and_nothing_is_sent() {
        // A version-1 hub: its challenge, in clear.
        let mut v1_challenge = vec![0u8, 0, 0, 34, 1, 1];
        v1_challenge.extend_from_slice(&[9u8; 32]);
        let (camera_end, hub_end) = duplex(1 << 16);
        let (mut cr, mut cw) = split(camera_end);
        let (mut hr, mut hw) = split(hub_end);
        hw.write_all(&v1_challenge).await.expect("challenge");
        let result = camera_handshake(&mut cr, &mut cw, &key("porch-secret")).await;
        assert!(
            matches!(result, Err(LinkError::OldVersion(1))),
            "{result:?}"
        );
        assert!(
            result
                .err()
                .is_some_and(|e| e.to_string().contains("clear text")),
            "the error says why"
        );
        // Both halves gone: the camera's end is closed.
        drop((cr, cw));
        let mut sent = Vec::new();
        hr.read_to_end(&mut sent).await.expect("read");
        assert!(
            sent.is_empty(),
            "the camera sent {} bytes in clear",
            sent.len()
        );

        // A version-1 camera reads the hub's banner as a challenge (length
        // 34, type 1) of another version, byte 5, and stops before its
        // hello: "a malformed Challenge (version) message".
        assert_eq!(BANNER[..6], [0, 0, 0, 34, 1, 2]);

        // A version-1 camera's hello sent to a version-2 hub: its u32
        // length reads as an empty handshake message, refused before
        // anything else is read.
        let (camera_end, hub_end) = duplex(1 << 16);
        let (mut cr, mut cw) = split(camera_end);
        let (mut hr, mut hw) = split(hub_end);
        cw.write_all(&[0, 0, 0, 80, 2, 0, 5]).await.expect("hello");
        let hub = hub_handshake(&mut hr, &mut hw, &cameras()).await;
        assert!(
            matches!(hub, Err(LinkError::BadLength(0))),
            "{:?}",
            hub.err()
        );
        let mut banner = [0u8; 38];
        cr.read_exact(&mut banner).await.expect("banner");
        assert_eq!(banner, BANNER);
    }

    #[tokio::test]
    async fn before_the_key_is_proven_only_small_messages() {
        let (camera, hub, _c, _h) = pair("porch-secret").await;
        let (mut seal, _) = camera.expect("camera");
        let (_, _, mut open) = hub.expect("hub");
        let mut wire = Vec::new();
        seal.send(&mut wire, &frame(4000)).await.expect("seal");
        let mut cursor = wire.as_slice();
        assert!(matches!(
            open.read(&mut cursor).await,
            Err(LinkError::BadLength(_))
        ));
        assert!(open.cipher.capacity() == 0 && open.plain.capacity() == 0);
        // A stranger's first handshake message may not be longer either.
        let mut long = &[4u8, 1][..];
        assert!(matches!(
            read_handshake(&mut long).await,
            Err(LinkError::BadLength(1025))
        ));
    }
}

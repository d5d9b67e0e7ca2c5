//! Frames: the messages, their encoding, and reading them with limits.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::LinkError;

/// The largest frame: a 4K key frame at a high bitrate fits several times.
pub const MAX_FRAME: u32 = 4 << 20;

/// The largest frame before the peer has proven the key: a hello with the
/// longest name, or a refusal with its reason, fits several times. Nothing
/// bigger is read, and nothing bigger allocated, for a peer not yet known.
pub const MAX_HANDSHAKE_FRAME: u32 = 1 << 10;

/// What the hub asks of a camera.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// Send frames (the default after Welcome).
    Start,
    /// Stop sending frames (heartbeats go on).
    Stop,
    /// Make the next frame a key frame (for a snapshot or a clip).
    KeyFrame,
    /// Set the encoder's bitrate, kbit/s.
    Bitrate(u32),
}

/// One message of the link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// The camera's first message inside the encrypted link: it proves
    /// the key (it decrypts only with the keys of this handshake).
    Hello {
        camera: String,
        width: u16,
        height: u16,
        fps: u8,
    },
    Welcome {
        /// The link's id, fresh for each connection: the camera's
        /// heartbeats name it.
        link: [u8; 32],
    },
    Refused {
        reason: String,
    },
    Frame {
        pts_us: u64,
        key: bool,
        data: Vec<u8>,
    },
    Ack {
        id: u32,
        ok: bool,
        message: String,
    },
    Command {
        id: u32,
        kind: CommandKind,
    },
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let bytes = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Reads fields from a body, failing on anything short or left over.
struct Body<'a> {
    rest: &'a [u8],
    what: &'static str,
}

impl<'a> Body<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], LinkError> {
        if self.rest.len() < n {
            return Err(LinkError::Malformed(self.what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, LinkError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, LinkError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, LinkError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, LinkError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(a))
    }
    fn array32(&mut self) -> Result<[u8; 32], LinkError> {
        let mut a = [0u8; 32];
        a.copy_from_slice(self.take(32)?);
        Ok(a)
    }
    fn string(&mut self) -> Result<String, LinkError> {
        let n = self.u16()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| LinkError::Malformed(self.what))
    }
    fn end(self) -> Result<(), LinkError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(LinkError::Malformed(self.what))
        }
    }
}

impl Message {
    /// The message's type, for a log line: never its content, which the
    /// peer controls (and a frame's is megabytes).
    pub fn name(&self) -> &'static str {
        match self {
            Message::Hello { .. } => "Hello",
            Message::Welcome { .. } => "Welcome",
            Message::Refused { .. } => "Refused",
            Message::Frame { .. } => "Frame",
            Message::Ack { .. } => "Ack",
            Message::Command { .. } => "Command",
        }
    }

    /// The frame: length, type, body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0, 0, 0, 0];
        match self {
            Message::Hello {
                camera,
                width,
                height,
                fps,
            } => {
                out.push(2);
                put_str(&mut out, camera);
                out.extend_from_slice(&width.to_be_bytes());
                out.extend_from_slice(&height.to_be_bytes());
                out.push(*fps);
            }
            Message::Welcome { link } => {
                out.push(3);
                out.extend_from_slice(link);
            }
            Message::Refused { reason } => {
                out.push(4);
                put_str(&mut out, reason);
            }
            Message::Frame { pts_us, key, data } => {
                out.reserve(9 + data.len());
                out.push(10);
                out.extend_from_slice(&pts_us.to_be_bytes());
                out.push(u8::from(*key));
                out.extend_from_slice(data);
            }
            Message::Ack { id, ok, message } => {
                out.push(11);
                out.extend_from_slice(&id.to_be_bytes());
                out.push(u8::from(*ok));
                put_str(&mut out, message);
            }
            Message::Command { id, kind } => {
                out.push(20);
                out.extend_from_slice(&id.to_be_bytes());
                let (k, v) = match kind {
                    CommandKind::Start => (1, 0),
                    CommandKind::Stop => (2, 0),
                    CommandKind::KeyFrame => (3, 0),
                    CommandKind::Bitrate(kbps) => (4, *kbps),
                };
                out.push(k);
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        let n = (out.len() - 4) as u32;
        out[..4].copy_from_slice(&n.to_be_bytes());
        out
    }

    /// Decodes a frame's content (type and body, without the length).
    pub fn decode(frame: &[u8]) -> Result<Message, LinkError> {
        let (&kind, body) = frame.split_first().ok_or(LinkError::BadLength(0))?;
        let what = match kind {
            2 => "Hello",
            3 => "Welcome",
            4 => "Refused",
            10 => "Frame",
            11 => "Ack",
            20 => "Command",
            other => return Err(LinkError::UnknownType(other)),
        };
        let mut b = Body { rest: body, what };
        let message = match kind {
            2 => Message::Hello {
                camera: b.string()?,
                width: b.u16()?,
                height: b.u16()?,
                fps: b.u8()?,
            },
            3 => Message::Welcome { link: b.array32()? },
            4 => Message::Refused {
                reason: b.string()?,
            },
            10 => {
                let pts_us = b.u64()?;
                let flags = b.u8()?;
                let data = b.take(b.rest.len())?.to_vec();
                if data.is_empty() {
                    return Err(LinkError::Malformed("Frame (empty)"));
                }
                Message::Frame {
                    pts_us,
                    key: flags & 1 == 1,
                    data,
                }
            }
            11 => Message::Ack {
                id: b.u32()?,
                ok: b.u8()? != 0,
                message: b.string()?,
            },
            _ => {
                let id = b.u32()?;
                let k = b.u8()?;
                let v = b.u32()?;
                let kind = match k {
                    1 => CommandKind::Start,
                    2 => CommandKind::Stop,
                    3 => CommandKind::KeyFrame,
                    4 => CommandKind::Bitrate(v),
                    _ => return Err(LinkError::Malformed("Command (kind)")),
                };
                Message::Command { id, kind }
            }
        };
        b.end()?;
        Ok(message)
    }
}

/// Reads frames with a reusable buffer, and a limit on their length that
/// starts at [`MAX_HANDSHAKE_FRAME`]: only a peer that has proven the key
/// ([`FrameReader::authenticated`]) may send frames up to [`MAX_FRAME`].
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    limit: u32,
}

impl Default for FrameReader {
    fn default() -> FrameReader {
        FrameReader {
            buf: Vec::new(),
            limit: MAX_HANDSHAKE_FRAME,
        }
    }
}

impl FrameReader {
    /// The peer has proven the key: frames up to [`MAX_FRAME`] from now on.
    pub fn authenticated(&mut self) {
        self.limit = MAX_FRAME;
    }

    /// The longest frame this reader takes now.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// The next message. A length outside 1..=[`FrameReader::limit`] is an
    /// error before anything is allocated, and the buffer grows with the
    /// bytes that arrive, never to the announced length ahead of them; EOF
    /// between frames is [`LinkError::Closed`], inside one an I/O error.
    pub async fn read<R: AsyncRead + Unpin>(
        &mut self,
        reader: &mut R,
    ) -> Result<Message, LinkError> {
        let mut len = [0u8; 4];
        match reader.read_exact(&mut len).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(LinkError::Closed);
            }
            Err(e) => return Err(e.into()),
        }
        let n = u32::from_be_bytes(len);
        check_length(n, self.limit)?;
        self.buf.clear();
        let got = (&mut *reader)
            .take(u64::from(n))
            .read_to_end(&mut self.buf)
            .await?;
        if got < n as usize {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        Message::decode(&self.buf)
    }
}

/// A frame's length must be 1 to `limit`.
fn check_length(n: u32, limit: u32) -> Result<(), LinkError> {
    if n == 0 || n > limit {
        return Err(LinkError::BadLength(n));
    }
    Ok(())
}

/// The first message in `buf` (the plaintext of an encrypted link) and the
/// bytes it took, or `None` if it has not all arrived yet. Its length is
/// checked against `limit` as soon as the four bytes of it are there.
pub(crate) fn parse_frame(buf: &[u8], limit: u32) -> Result<Option<(Message, usize)>, LinkError> {
    let Some(len) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let n = u32::from_be_bytes(*len);
    check_length(n, limit)?;
    let end = 4 + n as usize;
    if buf.len() < end {
        return Ok(None);
    }
    Ok(Some((Message::decode(&buf[4..end])?, end)))
}

/// Reads one message of the handshake, at most [`MAX_HANDSHAKE_FRAME`]
/// long (see [`FrameReader::read`]).
pub async fn read_message<R: AsyncRead + Unpin>(reader: &mut R) -> Result<Message, LinkError> {
    FrameReader::default().read(reader).await
}

/// Writes one message.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    message: &Message,
) -> Result<(), LinkError> {
    writer.write_all(&message.encode()).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Message> {
        vec![
            Message::Hello {
                camera: "porch".into(),
                width: 1920,
                height: 1080,
                fps: 30,
            },
            Message::Welcome { link: [3; 32] },
            Message::Refused {
                reason: "bad key".into(),
            },
            Message::Frame {
                pts_us: 123_456,
                key: true,
                data: vec![0, 0, 0, 1, 0x67],
            },
            Message::Ack {
                id: 7,
                ok: false,
                message: "no".into(),
            },
            Message::Command {
                id: 8,
                kind: CommandKind::Bitrate(1500),
            },
            Message::Command {
                id: 9,
                kind: CommandKind::KeyFrame,
            },
        ]
    }

    #[test]
    fn a_peers_text_in_an_error_is_escaped() {
        let forged = "x\n2026-12-01T03:00:00Z  INFO disarmed by alice\u{1b}[0m";
        for e in [
            LinkError::Refused(forged.into()),
            LinkError::BadKey(forged.into()),
        ] {
            let shown = e.to_string();
            assert!(
                !shown.contains('\n') && !shown.contains('\u{1b}'),
                "{shown}"
            );
            assert!(shown.contains("\\n"), "{shown}");
        }
    }

    #[tokio::test]
    async fn every_message_survives_the_wire() {
        let mut wire = Vec::new();
        for m in all() {
            write_message(&mut wire, &m).await.expect("write");
        }
        let mut reader = FrameReader::default();
        reader.authenticated();
        let mut cursor = wire.as_slice();
        for want in all() {
            assert_eq!(reader.read(&mut cursor).await.expect("read"), want);
        }
        assert!(matches!(
            reader.read(&mut cursor).await,
            Err(LinkError::Closed)
        ));
    }

    #[tokio::test]
    async fn truncated_oversized_and_garbage_frames_are_errors() {
        let frame = Message::Frame {
            pts_us: 1,
            key: false,
            data: vec![1, 2, 3],
        }
        .encode();
        // Cut anywhere inside: never a message.
        for cut in 1..frame.len() {
            let mut r = &frame[..cut];
            assert!(read_message(&mut r).await.is_err(), "cut at {cut}");
        }
        let mut huge = &(MAX_HANDSHAKE_FRAME + 1).to_be_bytes()[..];
        assert!(matches!(
            read_message(&mut huge).await,
            Err(LinkError::BadLength(_))
        ));
        let mut zero = &[0u8, 0, 0, 0][..];
        assert!(matches!(
            read_message(&mut zero).await,
            Err(LinkError::BadLength(0))
        ));
        let mut unknown = &[0u8, 0, 0, 1, 99][..];
        assert!(matches!(
            read_message(&mut unknown).await,
            Err(LinkError::UnknownType(99))
        ));
        // A Hello whose string length points past the body.
        let mut lying = &[0u8, 0, 0, 3, 2, 0xff, 0xff][..];
        assert!(matches!(
            read_message(&mut lying).await,
            Err(LinkError::Malformed("Hello"))
        ));
        // Trailing bytes after a complete Welcome.
        let mut long = &[0u8, 0, 0, 2, 3, 0][..];
        assert!(matches!(
            read_message(&mut long).await,
            Err(LinkError::Malformed("Welcome"))
        ));
    }

    #[tokio::test]
    async fn before_the_key_only_small_frames_and_no_buffer_ahead_of_the_bytes() {
        // A stranger announcing the largest frame is refused before any
        // allocation.
        let mut reader = FrameReader::default();
        let mut announced = &MAX_FRAME.to_be_bytes()[..];
        assert!(matches!(
            reader.read(&mut announced).await,
            Err(LinkError::BadLength(MAX_FRAME))
        ));
        assert_eq!(reader.buf.capacity(), 0);

        // A proven peer may announce it; the buffer holds what arrived (here
        // 100 bytes), not the 4 MiB announced.
        let mut wire = MAX_FRAME.to_be_bytes().to_vec();
        wire.extend_from_slice(&[10u8; 100]);
        let mut reader = FrameReader::default();
        reader.authenticated();
        assert_eq!(reader.limit(), MAX_FRAME);
        let mut cursor = wire.as_slice();
        assert!(matches!(
            reader.read(&mut cursor).await,
            Err(LinkError::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof
        ));
        assert!(
            reader.buf.capacity() < 64 << 10,
            "{}",
            reader.buf.capacity()
        );

        // A whole large frame still reads.
        let big = Message::Frame {
            pts_us: 5,
            key: true,
            data: vec![7u8; 1 << 20],
        };
        let wire = big.encode();
        let mut cursor = wire.as_slice();
        assert_eq!(reader.read(&mut cursor).await.expect("read"), big);
    }
}

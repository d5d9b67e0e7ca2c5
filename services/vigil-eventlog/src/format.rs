//! The byte format. All integers little-endian. See `docs/event-log.md`.
//!
//! Segment header (64 bytes): magic `VIGILLOG`, version u32, header length
//! u32 (64), first sequence u64, segment size u64, creation time u64 (Unix
//! ns), CRC32C of bytes 0..40 (u32), zeros to 64.
//!
//! Record at an 8-aligned offset: record length u32 (32 + payload; 0 marks
//! the end of the data), CRC32C u32 of bytes 8..record length, sequence
//! u64, time u64 (Unix ns), kind u16, flags u16, payload length u32, the
//! payload, zeros to the next multiple of 8.

pub const MAGIC: &[u8; 8] = b"VIGILLOG";
pub const FORMAT_VERSION: u32 = 1;
pub const HEADER_LEN: usize = 64;
pub const RECORD_HEADER_LEN: usize = 32;
pub(crate) const SEGMENT_SUFFIX: &str = ".vlog";

/// One record, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub unix_ns: u64,
    pub kind: u16,
    pub flags: u16,
    pub payload: Vec<u8>,
}

pub(crate) fn pad8(n: usize) -> usize {
    (n + 7) & !7
}

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// A segment header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) first_seq: u64,
    pub(crate) segment_size: u64,
    pub(crate) created_unix_ns: u64,
}

impl Header {
    pub(crate) fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(MAGIC);
        h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        h[12..16].copy_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        h[16..24].copy_from_slice(&self.first_seq.to_le_bytes());
        h[24..32].copy_from_slice(&self.segment_size.to_le_bytes());
        h[32..40].copy_from_slice(&self.created_unix_ns.to_le_bytes());
        let crc = crc32c::crc32c(&h[0..40]);
        h[40..44].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes; the error says what is wrong (the version separately).
    pub(crate) fn decode(b: &[u8]) -> Result<Header, HeaderProblem> {
        if b.len() < HEADER_LEN {
            return Err(HeaderProblem::Other("shorter than a header".into()));
        }
        if &b[0..8] != MAGIC {
            return Err(HeaderProblem::Other("bad magic".into()));
        }
        let version = u32_at(b, 8);
        if version != FORMAT_VERSION {
            return Err(HeaderProblem::Version(version));
        }
        if crc32c::crc32c(&b[0..40]) != u32_at(b, 40) {
            return Err(HeaderProblem::Other("header checksum mismatch".into()));
        }
        Ok(Header {
            first_seq: u64_at(b, 16),
            segment_size: u64_at(b, 24),
            created_unix_ns: u64_at(b, 32),
        })
    }
}

#[derive(Debug)]
pub(crate) enum HeaderProblem {
    Version(u32),
    Other(String),
}

/// Encodes a record into `out` (cleared first), padded to 8 bytes. The
/// first four bytes (the length) are what the writer stores last.
pub(crate) fn encode_record(
    out: &mut Vec<u8>,
    seq: u64,
    unix_ns: u64,
    kind: u16,
    flags: u16,
    payload: &[u8],
) {
    out.clear();
    let len = RECORD_HEADER_LEN + payload.len();
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&unix_ns.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32c::crc32c(&out[8..len]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out.resize(pad8(len), 0);
}

/// What is at an offset of a segment's bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A valid record and the offset after it.
    Record(Record, usize),
    /// The end of the data (a zero length word, or no room for one).
    End,
    /// Something that is not a valid record, and why.
    Invalid(String),
}

/// Reads the record at `at` of `seg`, where `len` is the record length
/// word already loaded (readers load it atomically), expecting `seq`.
pub(crate) fn read_slot(seg: &[u8], at: usize, len: u32, seq: u64) -> Slot {
    if len == 0 || at + RECORD_HEADER_LEN > seg.len() {
        return Slot::End;
    }
    let len = len as usize;
    if len < RECORD_HEADER_LEN || at + pad8(len) > seg.len() {
        return Slot::Invalid(format!("a record length of {len} does not fit"));
    }
    let r = &seg[at..at + len];
    if crc32c::crc32c(&r[8..]) != u32_at(r, 4) {
        return Slot::Invalid("checksum mismatch".into());
    }
    let payload_len = u32_at(r, 28) as usize;
    if payload_len != len - RECORD_HEADER_LEN {
        return Slot::Invalid("payload length disagrees with the record length".into());
    }
    let found = u64_at(r, 8);
    if found != seq {
        return Slot::Invalid(format!("sequence {found} where {seq} was due"));
    }
    Slot::Record(
        Record {
            seq,
            unix_ns: u64_at(r, 16),
            kind: u16::from_le_bytes([r[24], r[25]]),
            flags: u16::from_le_bytes([r[26], r[27]]),
            payload: r[RECORD_HEADER_LEN..].to_vec(),
        },
        at + pad8(len),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment_with(records: &[(u64, &[u8])]) -> Vec<u8> {
        let mut seg = vec![0u8; 4096];
        let mut at = HEADER_LEN;
        let mut buf = Vec::new();
        for (seq, payload) in records {
            encode_record(&mut buf, *seq, 7, 1, 0, payload);
            seg[at..at + buf.len()].copy_from_slice(&buf);
            at += buf.len();
        }
        seg
    }

    fn len_at(seg: &[u8], at: usize) -> u32 {
        u32_at(seg, at)
    }

    #[test]
    fn records_round_trip_and_the_end_is_zero() {
        let seg = segment_with(&[(1, b"one"), (2, b""), (3, &[9; 100])]);
        let mut at = HEADER_LEN;
        for (seq, want) in [(1u64, b"one".to_vec()), (2, vec![]), (3, vec![9; 100])] {
            match read_slot(&seg, at, len_at(&seg, at), seq) {
                Slot::Record(r, next) => {
                    assert_eq!(r.payload, want);
                    assert_eq!(r.kind, 1);
                    assert_eq!(next % 8, 0);
                    at = next;
                }
                other => panic!("record {seq}: {other:?}"),
            }
        }
        assert_eq!(read_slot(&seg, at, len_at(&seg, at), 4), Slot::End);
    }

    #[test]
    fn every_kind_of_corrupt_tail_is_invalid() {
        let good = segment_with(&[(1, b"first"), (2, b"second record")]);
        let second = HEADER_LEN + pad8(RECORD_HEADER_LEN + 5);
        let check = |seg: &[u8], what: &str| {
            // The first record is untouched by every corruption below.
            assert!(matches!(
                read_slot(seg, HEADER_LEN, len_at(seg, HEADER_LEN), 1),
                Slot::Record(..)
            ));
            let slot = read_slot(seg, second, len_at(seg, second), 2);
            assert!(
                matches!(slot, Slot::Invalid(_) | Slot::End),
                "{what}: {slot:?}"
            );
        };
        // A flipped payload byte, a flipped CRC, a flipped sequence byte.
        for offset in [RECORD_HEADER_LEN + 3, 5, 9] {
            let mut seg = good.clone();
            seg[second + offset] ^= 0x40;
            check(&seg, &format!("flip at +{offset}"));
        }
        // A length pointing past the segment.
        let mut seg = good.clone();
        seg[second..second + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        check(&seg, "huge length");
        // A length shorter than a header.
        let mut seg = good.clone();
        seg[second..second + 4].copy_from_slice(&7u32.to_le_bytes());
        check(&seg, "tiny length");
        // A torn write: the length is there, the rest is still zeros.
        let mut seg = good.clone();
        let len = len_at(&good, second) as usize;
        seg[second + 4..second + len].fill(0);
        check(&seg, "torn");
        // A half-written payload.
        let mut seg = good.clone();
        seg[second + len - 4..second + len].fill(0);
        check(&seg, "half payload");
        // A record whose sequence is not the one due (a stale segment).
        assert!(matches!(
            read_slot(&good, second, len_at(&good, second), 3),
            Slot::Invalid(_)
        ));
        // A segment cut short (a truncated file).
        check(&good[..second + 16], "truncated");
    }

    #[test]
    fn headers_round_trip_and_reject_garbage() {
        let h = Header {
            first_seq: 42,
            segment_size: 1 << 20,
            created_unix_ns: 5,
        };
        let bytes = h.encode();
        assert_eq!(Header::decode(&bytes).expect("decode"), h);
        let mut bad = bytes;
        bad[17] ^= 1;
        assert!(matches!(Header::decode(&bad), Err(HeaderProblem::Other(_))));
        let mut v2 = bytes;
        v2[8] = 2;
        assert!(matches!(
            Header::decode(&v2),
            Err(HeaderProblem::Version(2))
        ));
    }
}

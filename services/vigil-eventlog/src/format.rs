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
/// A segment set aside (its header was damaged) is renamed
/// `<digits>.vlog.broken` (then `.broken.1`, ... if that is taken): no
/// reader takes it for a segment, and it stays for whoever inspects it.
pub(crate) const SET_ASIDE_INFIX: &str = ".vlog.broken";

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

/// What is at an offset of a segment's bytes, whatever sequence number it
/// holds (the caller compares it with the one it expects).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Slot {
    /// A valid record (length, CRC and payload length agree) and the
    /// offset after it.
    Record(Record, usize),
    /// The end of the data (a zero length word, or no room for one).
    End,
    /// Something that is not a valid record, and why.
    Invalid(String),
}

/// The numbers a record or a segment can have: from 1, and never near
/// 2^64 (no log comes near 2^63), so that `seq + 1` and `seq - 1` never
/// overflow. A segment named, or a record numbered, outside it is not ours.
pub(crate) const SEQ_RANGE: std::ops::RangeInclusive<u64> = 1..=i64::MAX as u64;

/// Reads the record at `at` of `seg`, where `len` is the record length
/// word already loaded (readers load it atomically). The record's bytes are
/// copied out first and checked on the copy, so bytes that change while
/// they are read (a damaged region, a record being written) can make a
/// record invalid, never valid with bytes it did not have.
pub(crate) fn read_slot(seg: &[u8], at: usize, len: u32) -> Slot {
    if len == 0 || at + RECORD_HEADER_LEN > seg.len() {
        return Slot::End;
    }
    let len = len as usize;
    if len < RECORD_HEADER_LEN || at + pad8(len) > seg.len() {
        return Slot::Invalid(format!("a record length of {len} does not fit"));
    }
    let mut header = [0u8; RECORD_HEADER_LEN];
    header.copy_from_slice(&seg[at..at + RECORD_HEADER_LEN]);
    let payload = seg[at + RECORD_HEADER_LEN..at + len].to_vec();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&header[8..]), &payload);
    if crc != u32_at(&header, 4) {
        return Slot::Invalid("checksum mismatch".into());
    }
    if u32_at(&header, 28) as usize != payload.len() {
        return Slot::Invalid("payload length disagrees with the record length".into());
    }
    let seq = u64_at(&header, 8);
    if !SEQ_RANGE.contains(&seq) {
        // No log numbers a record there: damage whose checksum happens to
        // match, or a record made by hand. Taken as a record, the writer
        // would number on from it, in a segment no reader lists.
        return Slot::Invalid(format!("a sequence number of {seq}, outside {SEQ_RANGE:?}"));
    }
    Slot::Record(
        Record {
            seq: u64_at(&header, 8),
            unix_ns: u64_at(&header, 16),
            kind: u16::from_le_bytes([header[24], header[25]]),
            flags: u16::from_le_bytes([header[26], header[27]]),
            payload,
        },
        at + pad8(len),
    )
}

/// Where reading resumes after bytes that are not a valid record at
/// `from`: the first 8-aligned offset after it that holds a valid record
/// numbered at least `min_seq` and below `below` (the next segment's first
/// number, when there is one), with that number. `len_at` loads a length
/// word (readers: atomically, see `reader.rs`).
///
/// A candidate is checked on the segment's bytes here; the caller reads it
/// again with [`read_slot`] before it returns it.
pub(crate) fn resync(
    seg: &[u8],
    from: usize,
    min_seq: u64,
    below: u64,
    len_at: impl Fn(usize) -> u32,
) -> Option<(usize, u64)> {
    let mut at = pad8(from.max(HEADER_LEN));
    while at + RECORD_HEADER_LEN <= seg.len() {
        let len = len_at(at) as usize;
        if len >= RECORD_HEADER_LEN && at + pad8(len) <= seg.len() {
            let seq = u64_at(seg, at + 8);
            if seq >= min_seq
                && seq < below
                && matches!(read_slot(seg, at, len as u32), Slot::Record(ref r, _) if r.seq == seq)
            {
                return Some((at, seq));
            }
        }
        at += 8;
    }
    None
}

/// How many records numbered from `seq` on the bytes at `at` had published
/// (their length word stored) before they became unreadable: the record at
/// `at` itself, and each one after it, in the framing its length words give,
/// whose sequence field still reads as the next number. Recovery never gives
/// such a number to another record.
pub(crate) fn published_from(seg: &[u8], at: usize, seq: u64) -> u64 {
    let mut count = 0;
    let mut at = at;
    loop {
        if at + RECORD_HEADER_LEN > seg.len() {
            return count;
        }
        let len = u32_at(seg, at) as usize;
        if len == 0 {
            return count;
        }
        if count > 0 && u64_at(seg, at + 8) != seq + count {
            return count;
        }
        count += 1;
        if len < RECORD_HEADER_LEN || at + pad8(len) > seg.len() {
            return count;
        }
        at += pad8(len);
    }
}

/// The last sequence number of the valid records of a segment's bytes, read
/// from its first record as `first` (its file name's number), stepping over
/// damage: where a segment whose header is damaged ends.
pub(crate) fn last_valid_seq(seg: &[u8], first: u64) -> Option<u64> {
    let mut at = HEADER_LEN;
    let mut seq = first;
    let mut last = None;
    loop {
        let len = if at + 4 <= seg.len() {
            u32_at(seg, at)
        } else {
            0
        };
        match read_slot(seg, at, len) {
            Slot::Record(r, next) if r.seq >= seq => {
                last = Some(r.seq);
                seq = r.seq + 1;
                at = next;
            }
            _ => match resync(seg, at + 8, seq, u64::MAX, |a| u32_at(seg, a)) {
                Some((found, _)) => at = found,
                None => return last,
            },
        }
    }
}

/// The length word at `at` (a plain read: for bytes no one else writes).
pub(crate) fn len_word(seg: &[u8], at: usize) -> u32 {
    if at + 4 <= seg.len() {
        u32_at(seg, at)
    } else {
        0
    }
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

    fn seq_of(slot: &Slot) -> Option<u64> {
        match slot {
            Slot::Record(r, _) => Some(r.seq),
            _ => None,
        }
    }

    #[test]
    fn records_round_trip_and_the_end_is_zero() {
        let seg = segment_with(&[(1, b"one"), (2, b""), (3, &[9; 100])]);
        let mut at = HEADER_LEN;
        for (seq, want) in [(1u64, b"one".to_vec()), (2, vec![]), (3, vec![9; 100])] {
            match read_slot(&seg, at, len_at(&seg, at)) {
                Slot::Record(r, next) => {
                    assert_eq!(r.seq, seq);
                    assert_eq!(r.payload, want);
                    assert_eq!(r.kind, 1);
                    assert_eq!(r.unix_ns, 7);
                    assert_eq!(next % 8, 0);
                    at = next;
                }
                other => panic!("record {seq}: {other:?}"),
            }
        }
        assert_eq!(read_slot(&seg, at, len_at(&seg, at)), Slot::End);
    }

    /// Three records; the offsets of the second and third.
    fn three() -> (Vec<u8>, usize, usize) {
        let seg = segment_with(&[(1, b"first"), (2, b"second record"), (3, b"third")]);
        let second = HEADER_LEN + pad8(RECORD_HEADER_LEN + 5);
        let third = second + pad8(RECORD_HEADER_LEN + 13);
        (seg, second, third)
    }

    #[test]
    fn every_kind_of_damage_is_invalid_and_touches_no_other_record() {
        let (good, second, third) = three();
        let check = |seg: &[u8], what: &str| {
            // The first record is untouched by every corruption below.
            assert_eq!(
                seq_of(&read_slot(seg, HEADER_LEN, len_at(seg, HEADER_LEN))),
                Some(1)
            );
            let slot = read_slot(seg, second, len_at(seg, second));
            assert!(
                matches!(slot, Slot::Invalid(_) | Slot::End),
                "{what}: {slot:?}"
            );
        };
        // A flipped payload byte, a flipped CRC, a flipped byte of the
        // sequence number, of the time, of the kind, of the payload length.
        for offset in [RECORD_HEADER_LEN + 3, 5, 9, 17, 24, 28] {
            let mut seg = good.clone();
            seg[second + offset] ^= 0x40;
            check(&seg, &format!("flip at +{offset}"));
        }
        // A flipped bit in the length word: longer, shorter, zero.
        for (what, len) in [
            ("longer", 45u32 ^ 0x100),
            ("shorter", 45 ^ 0x08),
            ("zero", 0),
        ] {
            let mut seg = good.clone();
            seg[second..second + 4].copy_from_slice(&len.to_le_bytes());
            check(&seg, what);
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
        // A segment cut short (a truncated file).
        check(&good[..second + 16], "truncated");
        // None of it reaches the third record.
        assert_eq!(
            seq_of(&read_slot(&good, third, len_at(&good, third))),
            Some(3)
        );
    }

    #[test]
    fn a_record_reads_with_its_own_number_whatever_was_due() {
        // The caller decides: a greater number is a gap (the writer skipped
        // numbers), a smaller one is not the record due.
        let (good, second, _) = three();
        assert_eq!(
            seq_of(&read_slot(&good, second, len_at(&good, second))),
            Some(2)
        );
    }

    /// Resynchronisation: after every kind of damage to the second record,
    /// reading resumes at the third, and nothing else is taken with it.
    #[test]
    fn reading_resumes_at_the_next_valid_record_after_any_damage() {
        let (good, second, third) = three();
        let mut cases: Vec<(String, Vec<u8>)> = Vec::new();
        for offset in 0..RECORD_HEADER_LEN + 13 {
            for bit in [0x01u8, 0x80] {
                let mut seg = good.clone();
                seg[second + offset] ^= bit;
                cases.push((format!("bit {bit:#x} of byte +{offset}"), seg));
            }
        }
        let mut zeroed = good.clone();
        zeroed[second..third].fill(0);
        cases.push(("the whole record zeroed".into(), zeroed));
        let mut garbage = good.clone();
        for (i, b) in garbage[second..third].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37) | 1;
        }
        cases.push(("the whole record garbage".into(), garbage));
        for (what, seg) in cases {
            let slot = read_slot(&seg, second, len_at(&seg, second));
            if seq_of(&slot) == Some(2) {
                continue; // a flip in the padding: no damage to the record
            }
            assert!(!matches!(slot, Slot::Record(..)), "{what}: {slot:?}");
            assert_eq!(
                resync(&seg, second + 8, 2, u64::MAX, |a| len_at(&seg, a)),
                Some((third, 3)),
                "{what}"
            );
            // Bounded by the next segment's first number: nothing found.
            assert_eq!(
                resync(&seg, second + 8, 2, 3, |a| len_at(&seg, a)),
                None,
                "{what}"
            );
        }
        // Nothing valid after the last record: the end of the data.
        let mut seg = good.clone();
        seg[third + RECORD_HEADER_LEN] ^= 1;
        assert_eq!(
            resync(&seg, third + 8, 3, u64::MAX, |a| len_at(&seg, a)),
            None
        );
    }

    #[test]
    fn a_torn_tail_and_a_segment_without_a_header_are_measured() {
        let (good, second, _) = three();
        // Published records from the second on: 2 and 3.
        assert_eq!(published_from(&good, second, 2), 2);
        let mut seg = good.clone();
        seg[second + RECORD_HEADER_LEN] ^= 1;
        assert_eq!(published_from(&seg, second, 2), 2);
        // A length word never stored: nothing published there.
        assert_eq!(published_from(&good, 2048, 4), 0);
        // The last valid number, stepping over damage, by the name's number.
        assert_eq!(last_valid_seq(&good, 1), Some(3));
        assert_eq!(last_valid_seq(&seg, 1), Some(3));
        assert_eq!(last_valid_seq(&vec![0u8; 4096], 1), None);
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

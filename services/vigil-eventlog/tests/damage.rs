//! Damage in the synced part of the log: every kind of it (a flipped bit in
//! a payload, in a length, in a sequence number, in a checksum, a length
//! zeroed, a whole record garbage), in the newest segment and in an older
//! one. Recovery keeps every valid record and reports what was lost; a
//! reader meets the loss as a gap naming the numbers, then reads on; a
//! damaged header sets the newest segment aside instead of stopping the
//! writer.

use std::path::{Path, PathBuf};

use vigil_eventlog::{
    Entry, GapCause, HEADER_LEN, LogError, LogReader, LogWriter, Options, RECORD_HEADER_LEN,
    Retention, scan,
};

const SEGMENT: u64 = 8 * 1024;

fn options() -> Options {
    Options {
        segment_size: SEGMENT,
    }
}

fn payload(seq: u64) -> Vec<u8> {
    let len = (seq % 41) as usize + 3;
    (0..len).map(|i| (seq as usize * 7 + i) as u8).collect()
}

/// A log of `n` synced records in segments of 8 KiB; the writer dropped.
fn log_of(dir: &Path, n: u64) {
    let (mut log, _) = LogWriter::open(dir, options()).expect("open");
    for seq in 1..=n {
        assert_eq!(log.append(1, 0, seq, &payload(seq)).expect("append"), seq);
    }
    log.sync().expect("sync");
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "vlog"))
        .collect();
    files.sort();
    files
}

/// Where record `seq` is: (file, offset, length word).
fn place_of(dir: &Path, seq: u64) -> (PathBuf, usize, usize) {
    for path in segment_files(dir) {
        let bytes = std::fs::read(&path).expect("read");
        let mut at = HEADER_LEN;
        while at + RECORD_HEADER_LEN <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
            if len < RECORD_HEADER_LEN {
                break;
            }
            let found = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8"));
            if found == seq {
                return (path, at, len);
            }
            at += (len + 7) & !7;
        }
    }
    panic!("record {seq} not found");
}

/// Applies `damage` to the bytes of record `seq` (its offset in the file).
fn damage(dir: &Path, seq: u64, damage: impl FnOnce(&mut [u8], usize, usize)) -> PathBuf {
    let (path, at, len) = place_of(dir, seq);
    let mut bytes = std::fs::read(&path).expect("read");
    damage(&mut bytes, at, len);
    std::fs::write(&path, bytes).expect("write");
    path
}

/// Everything a reader from 1 gives: record numbers, and gaps as
/// (first, last).
#[derive(Debug, Default, PartialEq, Eq)]
struct Read {
    records: Vec<u64>,
    gaps: Vec<(u64, u64)>,
}

fn read_all(dir: &Path, from: u64) -> Read {
    let mut reader = LogReader::open(dir, from).expect("reader");
    let mut read = Read::default();
    while let Some(entry) = reader.next_entry().expect("read") {
        match entry {
            Entry::Record(r) => {
                assert_eq!(
                    r.payload,
                    payload(r.seq),
                    "record {} is the one written",
                    r.seq
                );
                read.records.push(r.seq);
            }
            Entry::Gap(g) => read.gaps.push((g.first, g.last)),
        }
    }
    read
}

fn all_but(n: u64, lost: &[u64]) -> Vec<u64> {
    (1..=n).filter(|s| !lost.contains(s)).collect()
}

type Damage = (&'static str, fn(&mut [u8], usize, usize));

/// Every kind of damage to one record.
const DAMAGES: [Damage; 8] = [
    ("a bit of the payload", |b, at, _| {
        b[at + RECORD_HEADER_LEN + 1] ^= 0x10
    }),
    ("a bit of the length, longer", |b, at, _| b[at + 1] ^= 0x01),
    ("a bit of the length, shorter", |b, at, _| b[at] ^= 0x08),
    ("the length zeroed", |b, at, _| b[at..at + 4].fill(0)),
    ("a bit of the sequence number", |b, at, _| b[at + 8] ^= 0x02),
    ("a bit of the checksum", |b, at, _| b[at + 5] ^= 0x80),
    ("a bit of the time", |b, at, _| b[at + 20] ^= 0x04),
    ("the whole record garbage", |b, at, len| {
        for (i, x) in b[at..at + len].iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(91) | 0x21;
        }
    }),
];

#[test]
fn damage_in_the_newest_segment_loses_that_record_only() {
    for (what, apply) in DAMAGES {
        let dir = tempfile::tempdir().expect("dir");
        log_of(dir.path(), 60);
        let damaged = damage(dir.path(), 30, apply);
        assert_eq!(
            damaged,
            *segment_files(dir.path()).last().expect("a segment")
        );
        // Readers meet it as a gap before the writer comes back (but for a
        // zeroed length in the newest segment, which reads as its end until
        // recovery seals the segment: a reader waits there)...
        let before = read_all(dir.path(), 1);
        if what == "the length zeroed" {
            assert_eq!(before.records, all_but(29, &[]), "{what}");
            assert!(before.gaps.is_empty(), "{what}");
        } else {
            assert_eq!(before.records, all_but(60, &[30]), "{what}");
            assert_eq!(before.gaps, [(30, 30)], "{what}");
        }
        // ...and after: recovery keeps every record after it.
        let (mut log, recovery) = LogWriter::open(dir.path(), options()).expect("recovery");
        assert_eq!(recovery.next_seq, 61, "{what}");
        assert_eq!(recovery.cut, None, "{what}: nothing is cut");
        assert!(recovery.sealed, "{what}: the damaged segment is sealed");
        assert_eq!(recovery.gaps.len(), 1, "{what}");
        let gap = &recovery.gaps[0];
        assert_eq!((gap.first, gap.last), (30, 30), "{what}");
        assert_eq!(gap.segment, damaged);
        assert!(matches!(gap.cause, GapCause::Damaged { .. }), "{what}");
        assert!(
            gap.to_string()
                .contains("record 30 of the event log is lost"),
            "{gap}"
        );
        // New records go to a new segment; the damaged bytes stay as they
        // were found.
        let before_bytes = std::fs::read(&damaged).expect("read");
        for seq in 61..=70 {
            assert_eq!(log.append(1, 0, seq, &payload(seq)).expect("append"), seq);
        }
        log.sync().expect("sync");
        assert_eq!(
            std::fs::read(&damaged).expect("read"),
            before_bytes,
            "{what}"
        );
        let after = read_all(dir.path(), 1);
        assert_eq!(after.records, all_but(70, &[30]), "{what}");
        assert_eq!(after.gaps, [(30, 30)], "{what}");
        // The gap is met once by the whole-log scan.
        let gaps = scan(dir.path()).expect("scan");
        assert_eq!(gaps.len(), 1, "{what}: {gaps:?}");
    }
}

#[test]
fn damage_in_an_older_segment_is_a_gap_and_reading_goes_on() {
    for (what, apply) in DAMAGES {
        let dir = tempfile::tempdir().expect("dir");
        log_of(dir.path(), 400);
        let files = segment_files(dir.path());
        assert!(files.len() >= 3, "{} segments", files.len());
        let damaged = damage(dir.path(), 10, apply);
        assert_eq!(damaged, files[0], "{what}");
        // Recovery looks at the newest segment only; it finds nothing.
        let (_, recovery) = LogWriter::open(dir.path(), options()).expect("recovery");
        assert_eq!(recovery.next_seq, 401);
        assert!(recovery.gaps.is_empty() && !recovery.sealed, "{what}");
        let read = read_all(dir.path(), 1);
        assert_eq!(read.records, all_but(400, &[10]), "{what}");
        assert_eq!(read.gaps, [(10, 10)], "{what}");
        // A reader started inside the damaged segment, or at the gap.
        assert_eq!(read_all(dir.path(), 5).gaps, [(10, 10)], "{what}");
        assert_eq!(read_all(dir.path(), 10).gaps, [(10, 10)], "{what}");
        assert_eq!(read_all(dir.path(), 10).records.first(), Some(&11));
        // next_record says it as an error naming the numbers, then reads on.
        let mut reader = LogReader::open(dir.path(), 9).expect("reader");
        assert_eq!(reader.next_record().expect("9").map(|r| r.seq), Some(9));
        match reader.next_record() {
            Err(LogError::Lost(gap)) => assert_eq!((gap.first, gap.last), (10, 10)),
            other => panic!("{what}: {other:?}"),
        }
        assert_eq!(reader.next_record().expect("11").map(|r| r.seq), Some(11));
        let gaps = scan(dir.path()).expect("scan");
        assert_eq!(gaps.len(), 1, "{what}: {gaps:?}");
        assert_eq!(gaps[0].segment, damaged);
    }
}

#[test]
fn damage_to_the_last_record_of_an_older_segment_ends_at_the_next_segment() {
    let dir = tempfile::tempdir().expect("dir");
    log_of(dir.path(), 300);
    let files = segment_files(dir.path());
    let second = files[1]
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".vlog"))
        .and_then(|n| n.parse::<u64>().ok())
        .expect("a number");
    let last_of_first = second - 1;
    damage(dir.path(), last_of_first, |b, at, _| b[at + 40] ^= 1);
    let read = read_all(dir.path(), 1);
    assert_eq!(read.gaps, [(last_of_first, last_of_first)]);
    assert_eq!(read.records, all_but(300, &[last_of_first]));
}

#[test]
fn damage_to_many_records_in_a_row_is_one_gap() {
    let dir = tempfile::tempdir().expect("dir");
    log_of(dir.path(), 60);
    let (path, from, _) = place_of(dir.path(), 20);
    let (_, to, _) = place_of(dir.path(), 25);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[from..to].fill(0xee);
    std::fs::write(&path, bytes).expect("write");
    let read = read_all(dir.path(), 1);
    assert_eq!(read.gaps, [(20, 24)]);
    assert_eq!(read.records, all_but(60, &[20, 21, 22, 23, 24]));
    let (_, recovery) = LogWriter::open(dir.path(), options()).expect("recovery");
    assert_eq!(recovery.next_seq, 61);
    match &recovery.gaps[..] {
        [gap] => match &gap.cause {
            GapCause::Damaged { offset, bytes, .. } => {
                assert_eq!((*offset, *bytes), (from, to - from));
            }
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

/// A torn tail (nothing valid after it) is still cut; the numbers of records
/// that had been published there are not given again.
#[test]
fn a_torn_tail_is_cut_and_its_published_numbers_are_not_reused() {
    let dir = tempfile::tempdir().expect("dir");
    log_of(dir.path(), 40);
    // A power cut tore the last two records (their length words were
    // stored): nothing valid follows them.
    damage(dir.path(), 39, |b, at, _| b[at + RECORD_HEADER_LEN] ^= 1);
    damage(dir.path(), 40, |b, at, _| b[at + RECORD_HEADER_LEN] ^= 1);
    let (mut log, recovery) = LogWriter::open(dir.path(), options()).expect("recovery");
    let cut = recovery.cut.expect("a cut");
    assert_eq!(cut.published, Some((39, 40)));
    assert_eq!(recovery.next_seq, 41);
    assert!(!recovery.sealed);
    log.append(1, 0, 41, &payload(41)).expect("append");
    log.sync().expect("sync");
    let read = read_all(dir.path(), 1);
    assert_eq!(read.records, all_but(41, &[39, 40]));
    assert_eq!(read.gaps, [(39, 40)]);
    // Bytes written but never published (a writer killed before the length
    // word): cut, and the number is given again.
    let dir = tempfile::tempdir().expect("dir");
    log_of(dir.path(), 10);
    let (path, at, len) = place_of(dir.path(), 10);
    let mut bytes = std::fs::read(&path).expect("read");
    let next = at + ((len + 7) & !7);
    bytes.copy_within(at + 4..at + len, next + 4);
    std::fs::write(&path, bytes).expect("write");
    let (_, recovery) = LogWriter::open(dir.path(), options()).expect("recovery");
    assert_eq!(recovery.cut.expect("cut").published, None);
    assert_eq!(recovery.next_seq, 11);
}

#[test]
fn a_damaged_header_on_the_newest_segment_sets_it_aside() {
    let dir = tempfile::tempdir().expect("dir");
    log_of(dir.path(), 300);
    let files = segment_files(dir.path());
    let newest = files.last().expect("newest").clone();
    let first: u64 = newest
        .file_stem()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .expect("number");
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes[33] ^= 0x40; // the creation time: the header's checksum fails
    std::fs::write(&newest, bytes).expect("write");
    // Before the writer comes back, a reader stops at it with an error
    // naming it (it could be a segment the writer is about to set aside).
    let mut reader = LogReader::open(dir.path(), first).expect("reader");
    assert!(matches!(
        reader.next_entry(),
        Err(LogError::BadSegment { .. })
    ));
    let (mut log, recovery) = LogWriter::open(dir.path(), options()).expect("the writer starts");
    let aside = recovery.set_aside.clone().expect("set aside");
    assert_eq!(aside.segment, newest);
    assert!(aside.problem.contains("checksum"), "{}", aside.problem);
    assert_eq!(aside.records, Some((first, 300)));
    assert!(aside.moved_to.exists() && !newest.exists());
    assert!(aside.moved_to.to_string_lossy().ends_with(".vlog.broken"));
    assert_eq!(recovery.next_seq, 301);
    for seq in 301..=310 {
        log.append(1, 0, seq, &payload(seq)).expect("append");
    }
    log.sync().expect("sync");
    let read = read_all(dir.path(), 1);
    assert_eq!(read.gaps, [(first, 300)]);
    let kept: Vec<u64> = (1..first).chain(301..=310).collect();
    assert_eq!(read.records, kept);
    let gaps = scan(dir.path()).expect("scan");
    match &gaps[0].cause {
        GapCause::Missing {
            set_aside: Some(path),
        } => assert_eq!(path, &aside.moved_to),
        other => panic!("{other:?}"),
    }
    // A reader asking for a number the set-aside segment held gets the
    // gap, not "retired".
    let mut reader = LogReader::open(dir.path(), first + 3).expect("reader");
    match reader.next_entry().expect("gap") {
        Some(Entry::Gap(gap)) => assert_eq!((gap.first, gap.last), (first + 3, 300)),
        other => panic!("{other:?}"),
    }
    // A second damaged header gets a name of its own.
    drop(log);
    let newest = segment_files(dir.path()).last().expect("newest").clone();
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes[0] = b'X';
    std::fs::write(&newest, bytes).expect("write");
    let (_, again) = LogWriter::open(dir.path(), options()).expect("the writer starts");
    assert_eq!(again.next_seq, 311);
    assert!(again.set_aside.expect("set aside").moved_to.exists());
}

/// The only segment set aside: a reader from the start meets the gap, not
/// "retired".
#[test]
fn the_only_segment_set_aside_is_a_gap_from_the_start() {
    let dir = tempfile::tempdir().expect("dir");
    log_of(dir.path(), 20);
    let only = segment_files(dir.path()).remove(0);
    let mut bytes = std::fs::read(&only).expect("read");
    bytes[40] ^= 0xff; // the header's checksum
    std::fs::write(&only, bytes).expect("write");
    let (_, recovery) = LogWriter::open(dir.path(), options()).expect("the writer starts");
    assert_eq!(recovery.next_seq, 21);
    let read = read_all(dir.path(), 1);
    assert_eq!((read.records, read.gaps), (vec![], vec![(1, 20)]));
    assert_eq!(read_all(dir.path(), 2).gaps, [(2, 20)]);
}

#[test]
fn a_damaged_header_on_an_older_segment_is_a_gap_and_retention_goes_on() {
    let dir = tempfile::tempdir().expect("dir");
    log_of(dir.path(), 400);
    let files = segment_files(dir.path());
    let mut bytes = std::fs::read(&files[1]).expect("read");
    bytes[2] ^= 0x01; // the magic
    std::fs::write(&files[1], bytes).expect("write");
    let number = |p: &PathBuf| -> u64 {
        p.file_stem()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("number")
    };
    let (second, third) = (number(&files[1]), number(&files[2]));
    let read = read_all(dir.path(), 1);
    assert_eq!(read.gaps, [(second, third - 1)]);
    let kept: Vec<u64> = (1..second).chain(third..=400).collect();
    assert_eq!(read.records, kept);
    // Started inside it: the rest of the gap.
    assert_eq!(
        read_all(dir.path(), second + 2).gaps,
        [(second + 2, third - 1)]
    );
    // Retention still removes old segments.
    let (mut log, _) = LogWriter::open(dir.path(), options()).expect("open");
    let removed = log
        .retire(
            &Retention {
                max_age: None,
                max_bytes: Some(SEGMENT),
            },
            400,
            0,
        )
        .expect("retire");
    assert!(removed.contains(&files[1]), "{removed:?}");
}

#[test]
fn skipped_numbers_are_a_gap_within_a_segment_and_across_segments() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = LogWriter::open(dir.path(), options()).expect("open");
    for seq in 1..=5 {
        log.append(1, 0, seq, &payload(seq)).expect("append");
    }
    log.skip_to(9);
    assert_eq!(log.append(1, 0, 9, &payload(9)).expect("append"), 9);
    log.sync().expect("sync");
    let read = read_all(dir.path(), 1);
    assert_eq!(read.records, [1, 2, 3, 4, 5, 9]);
    assert_eq!(read.gaps, [(6, 8)]);
    let mut reader = LogReader::open(dir.path(), 6).expect("reader");
    match reader.next_entry().expect("gap") {
        Some(Entry::Gap(gap)) => {
            assert_eq!(gap.cause, GapCause::Skipped);
            assert!(gap.to_string().contains("never written"), "{gap}");
        }
        other => panic!("{other:?}"),
    }
    // Across segments: the first segment full to the brim (169 records of
    // 48 bytes), the next one starts at the number skipped to.
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = LogWriter::open(dir.path(), options()).expect("open");
    for seq in 1..=169 {
        log.append(1, 0, seq, &[7; 16]).expect("append");
    }
    assert_eq!(segment_files(dir.path()).len(), 1);
    log.skip_to(200);
    assert_eq!(log.append(1, 0, 200, &[7; 16]).expect("append"), 200);
    log.sync().expect("sync");
    assert_eq!(segment_files(dir.path()).len(), 2);
    let mut reader = LogReader::open(dir.path(), 160).expect("reader");
    let mut entries = Vec::new();
    while let Some(entry) = reader.next_entry().expect("read") {
        entries.push(match entry {
            Entry::Record(r) => (r.seq, r.seq),
            Entry::Gap(g) => {
                assert!(matches!(g.cause, GapCause::Missing { set_aside: None }));
                (g.first, g.last)
            }
        });
    }
    let want: Vec<(u64, u64)> = (160..=169)
        .map(|s| (s, s))
        .chain([(170, 199), (200, 200)])
        .collect();
    assert_eq!(entries, want);
}

/// A reader following the live tail meets damage in the newest segment:
/// it waits at it (never skips blindly) until the writer's next record
/// shows what lies after it, then reports the gap and reads on.
#[test]
fn a_follower_steps_over_damage_once_the_writer_writes_past_it() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = LogWriter::open(dir.path(), options()).expect("open");
    for seq in 1..=10 {
        log.append(1, 0, seq, &payload(seq)).expect("append");
    }
    log.sync().expect("sync");
    let mut reader = LogReader::open(dir.path(), 1).expect("reader");
    for seq in 1..=9 {
        assert_eq!(
            reader.next_record().expect("read").map(|r| r.seq),
            Some(seq)
        );
    }
    // Record 10 rots under the running writer (the mapping is shared).
    damage(dir.path(), 10, |b, at, _| b[at + RECORD_HEADER_LEN] ^= 1);
    assert_eq!(reader.next_entry().expect("read"), None, "waits");
    log.append(1, 0, 11, &payload(11)).expect("append");
    log.sync().expect("sync");
    match reader.next_entry().expect("read") {
        Some(Entry::Gap(gap)) => assert_eq!((gap.first, gap.last), (10, 10)),
        other => panic!("{other:?}"),
    }
    assert_eq!(reader.next_record().expect("read").map(|r| r.seq), Some(11));
}

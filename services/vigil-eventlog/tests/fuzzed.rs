//! Regression tests for what fuzzing found (`fuzz/`, the
//! `eventlog_recovery` and `eventlog_reader` targets): segment files no
//! writer makes, which the writer and readers must meet without a panic.

use std::path::Path;

use vigil_eventlog::{Entry, LogReader, LogWriter, Options};

const OPTIONS: Options = Options { segment_size: 4096 };

/// A real segment holding one record, renamed and re-headed as starting at
/// `first` (its header's CRC made right again).
fn planted_segment(dir: &Path, first: u64) {
    {
        let (mut log, _) = LogWriter::open(dir, OPTIONS).expect("open");
        log.append(1, 0, 7, b"one").expect("append");
        log.sync().expect("sync");
    }
    let made = dir.join("00000000000000000001.vlog");
    let mut bytes = std::fs::read(&made).expect("read");
    std::fs::remove_file(&made).expect("remove");
    bytes[16..24].copy_from_slice(&first.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..40]);
    bytes[40..44].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(dir.join(format!("{first:020}.vlog")), bytes).expect("write");
}

#[test]
fn a_segment_named_zero_is_not_a_segment() {
    // Fuzzing found: LogWriter::open panicked ("attempt to subtract with
    // overflow") on a file 00000000000000000000.vlog, valid header or not.
    for valid_header in [true, false] {
        let dir = tempfile::tempdir().expect("dir");
        planted_segment(dir.path(), 0);
        if !valid_header {
            let path = dir.path().join("00000000000000000000.vlog");
            let mut bytes = std::fs::read(&path).expect("read");
            bytes[0] ^= 0xff;
            std::fs::write(&path, bytes).expect("write");
        }
        let (mut log, recovery) = LogWriter::open(dir.path(), OPTIONS).expect("open");
        assert_eq!(recovery.next_seq, 1, "valid header: {valid_header}");
        assert_eq!(log.append(1, 0, 8, b"two").expect("append"), 1);
        log.sync().expect("sync");
        let mut reader = LogReader::open(dir.path(), 1).expect("reader");
        let record = reader.next_record().expect("read").expect("a record");
        assert_eq!((record.seq, record.payload.as_slice()), (1, &b"two"[..]));
    }
}

#[test]
fn a_segment_named_past_the_last_sequence_is_not_a_segment() {
    // The other end: a segment at u64::MAX left no number for the record
    // after its first ("attempt to add with overflow" when appending).
    let dir = tempfile::tempdir().expect("dir");
    planted_segment(dir.path(), u64::MAX);
    let (mut log, recovery) = LogWriter::open(dir.path(), OPTIONS).expect("open");
    assert_eq!(recovery.next_seq, 1);
    assert_eq!(log.append(1, 0, 8, b"two").expect("append"), 1);
}

#[test]
fn a_record_numbered_below_the_one_due_is_stepped_over_not_looped_on() {
    // Fuzzing found: in the newest segment, a valid record (right CRC)
    // numbered below the one due, with valid records after it, made
    // `next_entry` loop forever (its "look again" took the record for a
    // rewrite by the writer).
    let dir = tempfile::tempdir().expect("dir");
    {
        let (mut log, _) = LogWriter::open(dir.path(), OPTIONS).expect("open");
        for payload in [&b"one"[..], b"two", b"three"] {
            log.append(1, 0, 7, payload).expect("append");
        }
        log.sync().expect("sync");
    }
    // Record 1 (at byte 64) renumbered 0, its CRC made right.
    let path = dir.path().join("00000000000000000001.vlog");
    let mut bytes = std::fs::read(&path).expect("read");
    let len = u32::from_le_bytes(bytes[64..68].try_into().expect("4 bytes")) as usize;
    bytes[72..80].copy_from_slice(&0u64.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[72..64 + len]);
    bytes[68..72].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");

    let (tx, rx) = std::sync::mpsc::channel();
    let log_dir = dir.path().to_owned();
    std::thread::spawn(move || {
        let mut reader = LogReader::open(&log_dir, 1).expect("reader");
        let mut entries = Vec::new();
        while let Some(entry) = reader.next_entry().expect("read") {
            entries.push(match entry {
                Entry::Record(r) => format!("record {}", r.seq),
                Entry::Gap(g) => format!("gap {}..={}", g.first, g.last),
            });
        }
        let _ = tx.send(entries);
    });
    let entries = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the reader ends within 10 s");
    assert_eq!(entries, ["gap 1..=1", "record 2", "record 3"]);
}

#[test]
fn a_record_numbered_past_the_last_sequence_is_damage_not_a_jump() {
    // The hour-long fuzzing run found: a record with a valid checksum
    // numbered near u64::MAX, after damage in the newest segment, was taken
    // as the writer's numbering moving on. The writer then numbered from
    // there, in a new segment whose name no reader lists: the record
    // appended after recovery could not be read back. Such a record is
    // damage now, on both sides.
    let dir = tempfile::tempdir().expect("dir");
    {
        let (mut log, _) = LogWriter::open(dir.path(), OPTIONS).expect("open");
        log.append(1, 0, 7, b"one").expect("append");
        log.append(1, 0, 7, b"two").expect("append");
        log.sync().expect("sync");
    }
    // The second record renumbered u64::MAX - 5, its checksum made right.
    let path = dir.path().join("00000000000000000001.vlog");
    let mut bytes = std::fs::read(&path).expect("read");
    let first_len = u32::from_le_bytes(bytes[64..68].try_into().expect("4 bytes")) as usize;
    let second = 64 + ((first_len + 7) & !7);
    bytes[second + 8..second + 16].copy_from_slice(&(u64::MAX - 5).to_le_bytes());
    let len = u32::from_le_bytes(bytes[second..second + 4].try_into().expect("4 bytes")) as usize;
    let crc = crc32c::crc32c(&bytes[second + 8..second + len]);
    bytes[second + 4..second + 8].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&path, bytes).expect("write");

    let (mut log, recovery) = LogWriter::open(dir.path(), OPTIONS).expect("open");
    // Numbering goes on after the last valid record (2 or, with the
    // damaged record's number kept as a gap, 3), not from u64::MAX - 4.
    assert!(
        (2..=3).contains(&recovery.next_seq),
        "numbering goes on from {}",
        recovery.next_seq
    );
    let seq = log.append(1, 0, 8, b"after").expect("append");
    log.sync().expect("sync");
    drop(log);
    let mut reader = LogReader::open(dir.path(), 1).expect("reader");
    let mut seen = Vec::new();
    while let Some(entry) = reader.next_entry().expect("read") {
        match entry {
            Entry::Record(r) => seen.push(r.seq),
            Entry::Gap(g) => assert!(g.last < seq, "the appended record inside a gap"),
        }
    }
    assert_eq!(seen.first(), Some(&1));
    assert_eq!(
        seen.last(),
        Some(&seq),
        "the record appended after recovery reads back"
    );
}

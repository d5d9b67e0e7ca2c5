//! A reader follows the writer's tail across segment rotations, and a
//! reader can start anywhere.

use vigil_eventlog::{LogReader, LogWriter, Options};

#[test]
fn a_reader_follows_the_tail_across_segments_and_starts_anywhere() {
    let dir = tempfile::tempdir().expect("dir");
    let options = Options {
        segment_size: 16 * 1024,
    };
    let (mut log, recovery) = LogWriter::open(dir.path(), options).expect("open");
    assert_eq!(recovery.next_seq, 1);
    let mut reader = LogReader::open(dir.path(), 1).expect("reader");
    assert_eq!(
        reader.next_record().expect("read"),
        None,
        "nothing written yet"
    );
    let mut read = 0u64;
    for seq in 1..=3000u64 {
        let payload = seq.to_le_bytes();
        assert_eq!(log.append(7, 0, seq, &payload).expect("append"), seq);
        if seq % 100 == 0 {
            log.sync().expect("sync");
        }
        // Follow the tail as it grows.
        while let Some(r) = reader.next_record().expect("read") {
            read += 1;
            assert_eq!(r.seq, read);
            assert_eq!(r.payload, read.to_le_bytes());
        }
    }
    assert_eq!(read, 3000);
    let segments = std::fs::read_dir(dir.path()).expect("dir").count();
    assert!(segments > 5, "rotated into {segments} segments");

    let mut middle = LogReader::open(dir.path(), 2500).expect("reader");
    assert_eq!(
        middle.next_record().expect("read").map(|r| r.seq),
        Some(2500)
    );

    // A second writer is refused while the first lives.
    assert!(matches!(
        LogWriter::open(dir.path(), options),
        Err(vigil_eventlog::LogError::Locked { .. })
    ));
    // Reopening continues the sequence.
    drop(log);
    let (log, recovery) = LogWriter::open(dir.path(), options).expect("reopen");
    assert_eq!(recovery.next_seq, 3001);
    assert_eq!(recovery.cut, None);
    assert_eq!(log.next_seq(), 3001);
}

#[test]
fn retention_removes_whole_old_segments_but_never_unread_ones() {
    use std::time::Duration;
    use vigil_eventlog::{LogError, Retention};
    let dir = tempfile::tempdir().expect("dir");
    let options = Options { segment_size: 4096 };
    let (mut log, _) = LogWriter::open(dir.path(), options).expect("open");
    for seq in 1..=500u64 {
        log.append(1, 0, seq, &[7; 40]).expect("append");
    }
    log.sync().expect("sync");
    let count = || {
        std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "vlog"))
            .count()
    };
    let before = count();
    assert!(before > 5, "{before} segments");
    let budget = Retention {
        max_age: None,
        max_bytes: Some(3 * 4096),
    };
    // A reader that still needs record 1 holds everything.
    assert!(log.retire(&budget, 1, 0).expect("retire").is_empty());
    // With everything read, the budget keeps the newest three segments.
    let removed = log.retire(&budget, u64::MAX, 0).expect("retire");
    assert_eq!(removed.len(), before - 3);
    assert_eq!(count(), 3);
    // Reading from a retired record says so; the rest still reads.
    assert!(matches!(
        LogReader::open(dir.path(), 1),
        Err(LogError::Gone { seq: 1, .. })
    ));
    // Age: everything sealed is older than a zero age, but the current
    // segment always stays.
    let aged = Retention {
        max_age: Some(Duration::ZERO),
        max_bytes: None,
    };
    log.retire(&aged, u64::MAX, u64::MAX).expect("retire");
    assert_eq!(count(), 1);
    let oldest = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "vlog"))
        .expect("segment");
    let first: u64 = oldest
        .path()
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("name");
    let mut reader = LogReader::open(dir.path(), first).expect("reader");
    assert_eq!(
        reader.next_record().expect("read").map(|r| r.seq),
        Some(first)
    );
    // New appends still work after retirement.
    assert_eq!(log.append(1, 0, 0, b"x").expect("append"), 501);
}

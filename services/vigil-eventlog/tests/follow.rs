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

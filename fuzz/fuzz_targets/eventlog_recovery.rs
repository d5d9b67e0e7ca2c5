//! An event-log segment file of arbitrary bytes, opened by the one writer
//! as the hub opens its log at start (`LogWriter::open`: the header check,
//! then recovery of the newest segment's tail over a read-write mapping).
//! What it recovers must then read back: every number up to one appended
//! after recovery, as a record or inside a reported gap.
//!
//! The input is as for `eventlog_reader` (a control byte, then the file).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_eventlog::{Entry, LogReader, LogWriter, Options};

#[path = "../src/segment.rs"]
mod segment;

/// The writer makes the header's segment size real (it extends the file and
/// reserves its blocks): the harness keeps runs to segments of at most this
/// many bytes so a run cannot fill the disk.
const LARGEST_SEGMENT: u64 = 1 << 20;

fuzz_target!(|data: &[u8]| {
    if data
        .get(1..)
        .and_then(segment::header_segment_size)
        .is_some_and(|size| size > LARGEST_SEGMENT)
    {
        return;
    }
    let Some((dir, first)) = segment::write(data) else {
        return;
    };
    let options = Options { segment_size: 4096 };
    let Ok((mut writer, recovery)) = LogWriter::open(dir.path(), options) else {
        return;
    };
    assert_eq!(recovery.next_seq, writer.next_seq());
    let appended = writer.append(9, 1, 0, b"after recovery");
    let synced = writer.sync();
    drop(writer);
    let (Ok(seq), Ok(_)) = (appended, synced) else {
        return;
    };
    assert_eq!(seq, recovery.next_seq);
    // Every number from the first to the appended record reads back, as a
    // record or inside a gap the reader reports, and the last is the
    // appended record.
    let mut reader = LogReader::open(dir.path(), first).expect("a recovered log opens");
    let mut next = reader.next_seq();
    while next <= seq {
        match reader.next_entry().expect("a recovered log reads") {
            Some(Entry::Record(record)) => {
                assert_eq!(record.seq, next, "a record out of sequence");
                if record.seq == seq {
                    assert_eq!(record.payload, b"after recovery");
                }
                next += 1;
            }
            Some(Entry::Gap(gap)) => {
                assert_eq!(gap.first, next, "a gap out of sequence");
                assert!(gap.last < seq, "the appended record inside a gap");
                next = gap.last + 1;
            }
            None => panic!("record {next} of {seq} is missing after recovery"),
        }
    }
});

//! An event-log segment file of arbitrary bytes, read as reportd, the
//! hub's replay and `vigilctl events` read the log: `LogReader::open`, then
//! every record and every gap it reports. The segment header and every record's framing are checked
//! by the reader over a mapping of the file (the crate's unsafe code).
//!
//! The input: one control byte, then the file. Bit 0 of the control byte
//! puts the right CRC32C into the header and every record the framing walks
//! to (so runs get past the checksums to the fields behind them); bit 1
//! names the file after the first sequence its header claims (otherwise it
//! is `00000000000000000001.vlog`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_eventlog::{Entry, LogReader};

#[path = "../src/segment.rs"]
mod segment;

fuzz_target!(|data: &[u8]| {
    let Some((dir, first)) = segment::write(data) else {
        return;
    };
    let Ok(mut reader) = LogReader::open(dir.path(), first) else {
        return;
    };
    // Records and gaps (damage the reader steps over, reported) follow each
    // other without a hole or an overlap.
    let mut next = reader.next_seq();
    // A segment of n bytes holds at most n / 32 records or gaps.
    for _ in 0..=data.len() / 32 {
        match reader.next_entry() {
            Ok(Some(Entry::Record(record))) => {
                assert_eq!(record.seq, next, "a record out of sequence");
                next += 1;
            }
            Ok(Some(Entry::Gap(gap))) => {
                assert_eq!(gap.first, next, "a gap out of sequence");
                assert!(gap.first <= gap.last, "an empty gap");
                next = gap.last + 1;
            }
            Ok(None) | Err(_) => return,
        }
    }
    panic!(
        "more entries than a segment of {} bytes can hold",
        data.len()
    );
});

//! An event-log segment file of arbitrary bytes, read as reportd, the
//! hub's replay and `vigilctl events` read the log: `LogReader::open`, then
//! every record. The segment header and every record's framing are checked
//! by the reader over a mapping of the file (the crate's unsafe code).
//!
//! The input: one control byte, then the file. Bit 0 of the control byte
//! puts the right CRC32C into the header and every record the framing walks
//! to (so runs get past the checksums to the fields behind them); bit 1
//! names the file after the first sequence its header claims (otherwise it
//! is `00000000000000000001.vlog`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_eventlog::LogReader;

#[path = "../src/segment.rs"]
mod segment;

fuzz_target!(|data: &[u8]| {
    let Some((dir, first)) = segment::write(data) else {
        return;
    };
    let Ok(mut reader) = LogReader::open(dir.path(), first) else {
        return;
    };
    let mut last = None;
    // A segment of n bytes holds at most n / 32 records.
    for _ in 0..=data.len() / 32 {
        match reader.next_record() {
            Ok(Some(record)) => {
                if let Some(prev) = last {
                    assert_eq!(record.seq, prev + 1, "records out of sequence");
                }
                last = Some(record.seq);
            }
            Ok(None) | Err(_) => return,
        }
    }
    panic!(
        "more records than a segment of {} bytes can hold",
        data.len()
    );
});

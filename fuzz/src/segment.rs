//! Shared by the event-log targets: turns a fuzz input into a segment file
//! in a fresh directory.

use std::path::Path;

use tempfile::TempDir;

const HEADER_LEN: usize = vigil_eventlog::HEADER_LEN;
const RECORD_HEADER_LEN: usize = vigil_eventlog::RECORD_HEADER_LEN;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// The header's segment size field, if the file has one.
#[allow(dead_code)] // used by one of the two targets that include this file
pub fn header_segment_size(file: &[u8]) -> Option<u64> {
    file.get(24..32)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
}

/// Writes the segment the input describes (see the targets' docs); returns
/// the directory and the sequence the file's name says it starts at.
pub fn write(data: &[u8]) -> Option<(TempDir, u64)> {
    let (&control, file) = data.split_first()?;
    let mut file = file.to_vec();
    if control & 1 != 0 {
        fix_checksums(&mut file);
    }
    let first = if control & 2 != 0 {
        file.get(16..24)
            .map_or(1, |b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    } else {
        1
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_segment(dir.path(), first, &file);
    Some((dir, first))
}

fn write_segment(dir: &Path, first: u64, file: &[u8]) {
    std::fs::write(dir.join(format!("{first:020}.vlog")), file).expect("write the segment");
}

/// Stores the right CRC32C in the header and in every record the lengths
/// lead to, as a writer would have.
fn fix_checksums(file: &mut [u8]) {
    if file.len() < HEADER_LEN {
        return;
    }
    let crc = crc32c::crc32c(&file[0..40]);
    file[40..44].copy_from_slice(&crc.to_le_bytes());
    let mut at = HEADER_LEN;
    while at + RECORD_HEADER_LEN <= file.len() {
        let len = u32_at(file, at) as usize;
        if len < RECORD_HEADER_LEN || at + len > file.len() {
            return;
        }
        let crc = crc32c::crc32c(&file[at + 8..at + len]);
        file[at + 4..at + 8].copy_from_slice(&crc.to_le_bytes());
        at += (len + 7) & !7;
    }
}

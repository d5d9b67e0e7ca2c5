//! The sensor table's checks (`SensorTable::from_fd`: seals, header, size)
//! over a sealed memfd of arbitrary bytes, as every service maps the table
//! the hub hands it over the bootstrap socket; then every read a service
//! makes of a table that passed (descriptors, sensor slots, the system
//! slot).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_ipc::table::{SensorTable, memfd_for_test};

/// The table's blocks: a 128-byte header, then 128-byte slots whose first
/// word is the seqlock sequence.
const BLOCK: usize = 128;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    // A slot whose sequence is odd is mid-write: a reader retries it for
    // 20 ms before it reports it torn (tested in vigil-ipc). Make every
    // sequence even so each run stays fast and reads every slot's payload.
    let mut at = BLOCK;
    while at < bytes.len() {
        bytes[at] &= !1;
        at += BLOCK;
    }
    // Sealed as the hub seals a table; an empty memfd is refused too.
    let Ok(fd) = memfd_for_test(&bytes, true) else {
        return;
    };
    let Ok(table) = SensorTable::from_fd(fd) else {
        return;
    };
    let _ = table.generation();
    let _ = table.hub_pid();
    let _ = table.created_unix_ns();
    let _ = table.read_system();
    let _ = table.descriptors();
    for slot in 0..=table.slot_count() {
        let _ = table.descriptor(slot);
        let _ = table.read_sensor(slot);
        let _ = table.change_count(slot);
    }
});

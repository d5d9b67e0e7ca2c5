//! The control FIFO's lines (`control_fifo::parse`), as any member of the
//! FIFO's group writes them; the reader hands it each line as
//! `String::from_utf8_lossy` of the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_hub::control_fifo::{ControlLine, parse};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    if let Ok(ControlLine::Disarm { pin }) = parse(&line) {
        // A PIN is one word of the line.
        assert!(!pin.is_empty() && !pin.contains(|c: char| c.is_ascii_whitespace()));
    }
});

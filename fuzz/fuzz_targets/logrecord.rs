//! An event-log record's payload (`vigil_logrecord::decode`, protobuf), as
//! reportd and the hub's replay read it from the log. A payload that
//! decodes re-encodes to one that decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = vigil_logrecord::decode(data) {
        let again = vigil_logrecord::decode(&vigil_logrecord::encode(&event))
            .expect("an encoded event decodes");
        assert_eq!(again, event);
    }
});

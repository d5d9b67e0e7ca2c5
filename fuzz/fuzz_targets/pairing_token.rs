//! The pairing token (`vigilctl pair <token>`, `Token::parse`), which a user
//! pastes or scans from a QR code: `vigil-pair:1:<host:port>:<code>:<ca sha256>`.
//! A token that parses re-encodes to one that parses the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vigilctl::token::Token;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(token) = Token::parse(text) {
        assert_eq!(token.ca_sha256.len(), 64);
        assert_eq!(Token::parse(&token.encode()).ok(), Some(token));
    }
});

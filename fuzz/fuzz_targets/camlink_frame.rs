//! The camera link's frames, as a peer sends them on the camera port (a
//! camera to the hub) or the hub to a camera: the bytes are a TCP stream,
//! read frame by frame with `FrameReader` (length checks, then
//! `Message::decode`). Every message that decodes must encode to a frame
//! that decodes to the same message.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use vigil_camlink::{FrameReader, LinkError, Message};

fuzz_target!(|data: &[u8]| {
    // The reader over the bytes as a stream: a `&[u8]` never waits, so one
    // poll finishes each read.
    let mut stream = data;
    let mut reader = FrameReader::default();
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        let before = stream.len();
        let read = pin!(reader.read(&mut stream)).poll(&mut cx);
        let Poll::Ready(result) = read else {
            panic!("a read over bytes in memory waited");
        };
        match result {
            Ok(message) => check_round_trip(&message),
            Err(LinkError::Closed) => break,
            Err(_) => break,
        }
        assert!(
            stream.len() < before,
            "a frame was read without consuming bytes"
        );
    }
    // The decoder alone, on the whole input as one frame's content. (Not
    // byte for byte: a flags byte or an "ok" byte reads any bit it ignores
    // or any non-zero value as the same message.)
    if let Ok(message) = Message::decode(data) {
        check_round_trip(&message);
    }
});

fn check_round_trip(message: &Message) {
    let frame = message.encode();
    let again = Message::decode(&frame[4..]).expect("an encoded message decodes");
    assert_eq!(&again, message);
}

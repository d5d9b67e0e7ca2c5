//! The camera link's encrypted layer (`vigil_camlink::secure`), from each
//! side, against a peer that does not hold the key: what a stranger on the
//! LAN can send before proving anything.
//!
//! The first byte picks the case:
//! - 0: the hub on its camera port: the bytes are the stranger's first
//!   handshake message (length checks, every camera's key tried);
//! - 1: a camera that reached a stranger posing as the hub: the bytes are
//!   the banner, then a refusal or a second handshake message;
//! - 2: a link whose handshake the two real ends completed (in memory),
//!   then the bytes as the transport stream a man in the middle injects
//!   into each side's `Opener` (lengths checked before any allocation,
//!   every chunk that does not decrypt is the end of the link).
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::sync::OnceLock;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use vigil_camlink::{Key, LinkError, Opener, camera_handshake, hub_handshake};

fn key() -> Key {
    Key::new("the fuzzed camera's key").expect("a key")
}

/// Polls `future` once: over bytes in memory nothing waits.
fn now<F: Future>(future: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut cx) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a read or write over bytes in memory waited"),
    }
}

/// Both real ends' openers after a real handshake, made once (the
/// handshake needs both ends talking at once: a runtime and a duplex).
fn openers() -> (Opener, Opener) {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let runtime = RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime")
    });
    runtime.block_on(async {
        let (camera_end, hub_end) = tokio::io::duplex(4096);
        let (mut camera_read, mut camera_write) = tokio::io::split(camera_end);
        let (mut hub_read, mut hub_write) = tokio::io::split(hub_end);
        let keys = vec![("porch".to_owned(), key())];
        let camera_key = key();
        let (camera, hub) = tokio::join!(
            camera_handshake(&mut camera_read, &mut camera_write, &camera_key),
            hub_handshake(&mut hub_read, &mut hub_write, &keys)
        );
        let (_, camera_opener) = camera.expect("the camera's handshake");
        let (name, _, hub_opener) = hub.expect("the hub's handshake");
        assert_eq!(name, "porch");
        (camera_opener, hub_opener)
    })
}

/// Reads messages until the stream ends or fails; nothing may decrypt.
fn drain(opener: &mut Opener, mut stream: &[u8]) {
    loop {
        match now(opener.read(&mut stream)) {
            Ok(message) => panic!("injected bytes decrypted to {message:?}"),
            Err(LinkError::Closed) => return,
            Err(_) => return,
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&case, bytes)) = data.split_first() else {
        return;
    };
    match case % 3 {
        0 => {
            let keys = vec![("porch".to_owned(), key()), ("garden".to_owned(), key())];
            let mut read = bytes;
            let mut written = Vec::new();
            if let Ok((name, _, _)) = now(hub_handshake(&mut read, &mut written, &keys)) {
                panic!("a stranger's bytes opened the handshake as {name}");
            }
        }
        1 => {
            let mut read = bytes;
            let mut written = Vec::new();
            if now(camera_handshake(&mut read, &mut written, &key())).is_ok() {
                panic!("a stranger's bytes passed for the hub");
            }
        }
        _ => {
            let (mut camera, mut hub) = openers();
            drain(&mut hub, bytes);
            drain(&mut camera, bytes);
        }
    }
});

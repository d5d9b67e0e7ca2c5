//! The encrypted link's cost: sealing and opening H.264 access units
//! (`Sealer::send` into memory, `Opener::read` back: ChaChaPoly, the
//! chunking into Noise messages, the framing), beside the clear-text
//! framing of version 1 (encode, `FrameReader::read`) and a plain copy of
//! the same bytes.
//!
//! `cargo bench -p vigil-camlink --bench seal` (`-- --quick`: a tenth of
//! the rounds).

use std::hint::black_box;
use std::time::{Duration, Instant};

use vigil_camlink::{FrameReader, Key, Message, Opener, Sealer, camera_handshake, hub_handshake};

/// A 1080p30 stream at 4 Mbit/s: the camera path bench's.
const STREAM_BYTES_PER_SECOND: f64 = 4.0e6 / 8.0;

async fn link() -> (Sealer, Opener) {
    let (camera_end, hub_end) = tokio::io::duplex(1 << 16);
    let (mut cr, mut cw) = tokio::io::split(camera_end);
    let (mut hr, mut hw) = tokio::io::split(hub_end);
    let key = Key::new("bench-key").expect("key");
    let keys = vec![("cam".to_owned(), key.clone())];
    let (camera, hub) = tokio::join!(
        camera_handshake(&mut cr, &mut cw, &key),
        hub_handshake(&mut hr, &mut hw, &keys)
    );
    let (sealer, _) = camera.expect("camera");
    let (_, _, mut opener) = hub.expect("hub");
    opener.authenticated();
    (sealer, opener)
}

fn frame(size: usize) -> Message {
    Message::Frame {
        pts_us: 1,
        key: false,
        data: (0..size).map(|i| (i * 7 % 251) as u8).collect(),
    }
}

/// Bytes per second of `f` over `rounds` calls on `bytes` bytes each.
fn rate(bytes: usize, rounds: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..rounds / 10 + 1 {
        f();
    }
    let start = Instant::now();
    for _ in 0..rounds {
        f();
    }
    let took = start.elapsed().max(Duration::from_nanos(1));
    (bytes * rounds) as f64 / took.as_secs_f64()
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("Vigil camera link: sealing and opening access units, one core");
    println!(
        "{:>10} {:>16} {:>16} {:>16} {:>14} {:>22}",
        "unit", "encrypted link", "clear framing", "memcpy", "vs clear", "per 4 Mbit/s stream"
    );
    // A P frame of a 4 Mbit/s 1080p30 stream (about 16 KiB), a key frame
    // (about 160 KiB), and a large one spanning many Noise messages.
    for size in [16 << 10, 160 << 10, 1 << 20] {
        let rounds = ((64 << 20) / size).max(20) / if quick { 10 } else { 1 };
        let message = frame(size);
        let (mut sealer, mut opener) = runtime.block_on(link());
        let mut wire = Vec::with_capacity(size + size / 1000 + 64);
        let encrypted = rate(size, rounds, || {
            runtime.block_on(async {
                wire.clear();
                sealer.send(&mut wire, &message).await.expect("seal");
                let mut cursor = wire.as_slice();
                black_box(opener.read(&mut cursor).await.expect("open"));
            });
        });
        let mut reader = FrameReader::default();
        reader.authenticated();
        let clear = rate(size, rounds, || {
            runtime.block_on(async {
                let bytes = message.encode();
                let mut cursor = bytes.as_slice();
                black_box(reader.read(&mut cursor).await.expect("read"));
            });
        });
        let Message::Frame { data, .. } = &message else {
            unreachable!()
        };
        let mut copy = vec![0u8; size];
        let memcpy = rate(size, rounds, || {
            copy.copy_from_slice(black_box(data));
            black_box(&copy);
        });
        let mb = |r: f64| format!("{:.0} MB/s", r / 1e6);
        println!(
            "{:>7} KiB {:>16} {:>16} {:>16} {:>13.2}x {:>19.3} % of a core",
            size >> 10,
            mb(encrypted),
            mb(clear),
            mb(memcpy),
            clear / encrypted,
            STREAM_BYTES_PER_SECOND / encrypted * 100.0
        );
    }
}

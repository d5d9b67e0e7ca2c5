//! Append throughput against a write(2) baseline of the same bytes, and the
//! latency of a synced append.
//!
//! `cargo bench -p vigil-eventlog --bench append` (`-- --quick`).

use std::io::Write;
use std::time::Instant;

use vigil_eventlog::{LogWriter, Options, RECORD_HEADER_LEN};

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 200_000 } else { 2_000_000 };
    let payload = [0x42u8; 64];
    let record_bytes = (RECORD_HEADER_LEN + payload.len()).next_multiple_of(8);

    let dir = tempfile::tempdir().expect("dir");
    let (mut log, _) = LogWriter::open(
        &dir.path().join("log"),
        Options {
            segment_size: 64 << 20,
        },
    )
    .expect("open");
    let start = Instant::now();
    for i in 0..n {
        log.append(1, 0, i, &payload).expect("append");
    }
    let append = start.elapsed();
    log.sync().expect("sync");

    // The baseline: the same number of bytes, one write(2) per record.
    let mut file = std::fs::File::create(dir.path().join("raw")).expect("raw");
    let chunk = vec![0x42u8; record_bytes];
    let start = Instant::now();
    for _ in 0..n {
        file.write_all(&chunk).expect("write");
    }
    let raw = start.elapsed();

    // Synced appends: msync of the one record each time.
    let samples = if quick { 200 } else { 2000 };
    let mut latencies = Vec::with_capacity(samples);
    for i in 0..samples as u64 {
        let t = Instant::now();
        log.append_synced(1, 1, i, &payload).expect("synced");
        latencies.push(t.elapsed().as_micros() as u64);
    }
    latencies.sort_unstable();
    let q = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];

    let rate = n as f64 / append.as_secs_f64();
    let raw_rate = n as f64 / raw.as_secs_f64();
    println!(
        "Vigil event log ({n} records of {} bytes, {}-byte payload)",
        record_bytes,
        payload.len()
    );
    println!(
        "append, unsynced:        {:>12.0} records/s {:>8.0} MB/s",
        rate,
        rate * record_bytes as f64 / 1e6
    );
    println!(
        "baseline write(2):       {:>12.0} records/s {:>8.0} MB/s",
        raw_rate,
        raw_rate * record_bytes as f64 / 1e6
    );
    println!(
        "ratio append / write(2): {:.1}x (targets: >= 1x and >= 2 000 000 records/s)",
        rate / raw_rate
    );
    println!(
        "synced append (msync), {samples} samples: p50 {} us, p99 {} us, max {} us",
        q(0.5),
        q(0.99),
        latencies[latencies.len() - 1]
    );
}

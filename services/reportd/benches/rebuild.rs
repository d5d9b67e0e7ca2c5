//! reportd's indexing rate from the event log itself: `vigil-reportd
//! --rebuild` over a log of 2 million events (read, CRC-check and decode
//! each record, convert, index), against reading and decoding the same log
//! alone, in the same run.
//!
//! `cargo bench -p vigil-reportd --bench rebuild` (`-- --quick`: 10x fewer).

use std::path::Path;
use std::time::{Duration, Instant};

use vigil_config::Config;
use vigil_domain::{AlarmState, ArmedMode, Event, EventKind, SensorState};
use vigil_eventlog::{LogReader, LogWriter, Options, kinds};

const SENSORS: [&str; 6] = [
    "front-door",
    "back-door",
    "kitchen-window",
    "hall-motion",
    "living-motion",
    "garage-door",
];

/// The mix of the index bench: mostly sensor changes, some arming, a few
/// alarms, faults and tamper; a week of them.
fn event(seq: u64, unix_ms: u64) -> Event {
    let (kind, sensor, user, source) = match seq % 1000 {
        0 => (EventKind::Armed, None, Some("alice"), "grpc:phone"),
        1 => (EventKind::Arming, None, Some("alice"), "grpc:phone"),
        2 => (EventKind::Disarmed, None, Some("bob"), "fifo"),
        3 if seq % 10_000 == 3 => (EventKind::Triggered, Some(SENSORS[0]), None, "sensor"),
        4 if seq % 5000 == 4 => (EventKind::Fault, Some(SENSORS[2]), None, "sensor"),
        5 if seq % 5000 == 5 => (EventKind::Tamper, Some(SENSORS[3]), None, "sensor"),
        n => (
            EventKind::Sensor,
            Some(SENSORS[n as usize % SENSORS.len()]),
            None,
            "sensor",
        ),
    };
    let (open, state) = if seq.is_multiple_of(2) {
        ("open", SensorState::Active)
    } else {
        ("closed", SensorState::Inactive)
    };
    let is_change = kind == EventKind::Sensor;
    let message = if is_change {
        format!("{} {open}", sensor.unwrap_or_default())
    } else {
        format!("{kind} by {}", user.or(sensor).unwrap_or_default())
    };
    Event {
        seq,
        unix_ms,
        kind,
        sensor: sensor.map(Into::into),
        // As the hub logs a sensor change now: with the sensor's new state.
        sensor_state: is_change.then_some(state),
        camera: None,
        mode: ArmedMode::Away,
        alarm: AlarmState::Idle,
        user: user.map(Into::into),
        source: source.into(),
        message,
        trace_id: None,
    }
}

fn write_log(dir: &Path, n: u64, from_ms: u64, span_ms: u64) {
    let (mut log, _) = LogWriter::open(dir, Options::default()).expect("open the log");
    for seq in 1..=n {
        let unix_ms = from_ms + (seq * span_ms) / n;
        let payload = vigil_logrecord::encode(&event(seq, unix_ms));
        let at = log
            .append(kinds::EVENT, 0, unix_ms * 1_000_000, &payload)
            .expect("append");
        assert_eq!(at, seq);
    }
    log.sync().expect("sync");
}

/// The baseline: every record read, checked and decoded, nothing indexed.
fn read_only(dir: &Path) -> (u64, Duration) {
    let start = Instant::now();
    let mut reader = LogReader::open(dir, 1).expect("reader");
    let mut decoded = 0;
    while let Some(record) = reader.next_record().expect("read") {
        let event = vigil_logrecord::decode(&record.payload).expect("decode");
        assert_eq!(event.seq, record.seq);
        decoded += 1;
    }
    (decoded, start.elapsed())
}

/// reportd's part of a config: its runtime and state directories under
/// `root`.
fn config(root: &Path) -> Config {
    let text = format!(
        "[runtime]\nruntime_dir = {:?}\nstate_dir = {:?}\n",
        root.join("run").display().to_string(),
        root.join("state").display().to_string(),
    );
    Config::parse(&text, "the bench's config").expect("valid")
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let n: u64 = if quick { 200_000 } else { 2_000_000 };
    let root = tempfile::tempdir().expect("dir");
    let config = config(root.path());
    let events_dir = vigil_reportd::Paths::new(&config.runtime.state_dir).events;
    std::fs::create_dir_all(&events_dir).expect("mkdir");
    let week_start = 1_795_392_000_000; // Monday 2026-11-23, UTC
    write_log(&events_dir, n, week_start, 7 * 86_400_000 - 1);

    // As vigil_service starts it for reportd.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (mut rebuilds, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let (decoded, read) = read_only(&events_dir);
        assert_eq!(decoded, n);
        reads.push(read);
        let start = Instant::now();
        let through = runtime
            .block_on(vigil_reportd::rebuild(&config))
            .expect("rebuild");
        rebuilds.push(start.elapsed());
        assert_eq!(through, n);
    }
    let rate = |d: &Duration| n as f64 / d.as_secs_f64();
    let median = |mut d: Vec<Duration>| {
        let each: Vec<String> = d.iter().map(|d| format!("{:.0}", rate(d))).collect();
        d.sort();
        (rate(&d[d.len() / 2]), each.join(", "))
    };
    let (rebuild, rebuild_each) = median(rebuilds);
    let (read, read_each) = median(reads);
    println!("vigil-reportd --rebuild over a log of {n} events (median of 3)");
    println!(
        "rebuild (read, decode, index, checkpoint to the file): {rebuild:>9.0} events/s  \
         (rounds: {rebuild_each})"
    );
    println!(
        "baseline: read and decode the log alone:               {read:>9.0} events/s  \
         (rounds: {read_each})"
    );
    println!(
        "the index's share of the time: {:.0} %",
        100.0 * (1.0 - rebuild / read)
    );
}

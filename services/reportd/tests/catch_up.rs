//! reportd catching up on a long log, SIGKILLed (and sometimes stopped
//! with SIGTERM) at random moments while it reads one batch ahead of the
//! batch it writes: every event is indexed exactly once, and the
//! placeholders between them are covered but add no row.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use vigil_config::Config;
use vigil_domain::{AlarmState, ArmedMode, Event, EventKind};
use vigil_eventlog::{LogWriter, Options, kinds};

/// reportd's batch.
const BATCH: u64 = vigil_reportd::BATCH as u64;
/// Six and a half batches.
const RECORDS: u64 = 13 * BATCH / 2;

/// Every seventh record is a placeholder; the rest are events.
fn is_event(seq: u64) -> bool {
    !seq.is_multiple_of(7)
}

fn write_log(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    let (mut log, _) = LogWriter::open(dir, Options::default()).expect("open the log");
    let t0: u64 = 1_795_392_000_000;
    for seq in 1..=RECORDS {
        let unix_ms = t0 + seq * 100;
        let (kind, payload) = if is_event(seq) {
            let event = Event {
                seq,
                unix_ms,
                kind: if seq % 1000 == 1 {
                    EventKind::Armed
                } else {
                    EventKind::Sensor
                },
                sensor: Some(format!("sensor-{}", seq % 5)),
                sensor_state: None,
                camera: None,
                mode: ArmedMode::Away,
                alarm: AlarmState::Idle,
                user: None,
                source: "sensor".into(),
                message: format!("event {seq}"),
                trace_id: None,
            };
            (kinds::EVENT, vigil_logrecord::encode(&event))
        } else {
            (kinds::PLACEHOLDER, Vec::new())
        };
        let at = log
            .append(kind, 0, unix_ms * 1_000_000, &payload)
            .expect("append");
        assert_eq!(at, seq);
    }
    log.sync().expect("sync");
}

/// reportd's part of a house, written to `root/vigil.toml`: its runtime and
/// state directories under `root`.
fn write_config(root: &Path) -> Config {
    let text = format!(
        "[runtime]\nruntime_dir = {:?}\nstate_dir = {:?}\n",
        root.join("run").display().to_string(),
        root.join("state").display().to_string(),
    );
    let path = root.join("vigil.toml");
    std::fs::write(&path, text).expect("write the config");
    Config::load(&path).expect("the test's config")
}

fn start(root: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil-reportd"))
        .arg("--config")
        .arg(root.join("vigil.toml"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start vigil-reportd")
}

/// The index's checkpoint, or 0 while there is no index yet.
fn checkpoint(db: &Path) -> u64 {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row("SELECT last_seq FROM checkpoint", [], |row| {
        row.get::<_, i64>(0)
    })
    .map(|last| last as u64)
    .unwrap_or(0)
}

#[test]
fn every_event_is_indexed_once_across_kills_during_catch_up() {
    let root = tempfile::tempdir().expect("dir");
    let config = write_config(root.path());
    let paths = vigil_reportd::Paths::new(&config.runtime.state_dir);
    write_log(&paths.events);

    // Kill each run a seeded random moment after it has committed a batch
    // of its own, so that every kill lands in the middle of the catch-up:
    // a batch being written, the next being read.
    let mut state: u64 = 0x5eed_1234;
    let mut next_ms = || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % 120
    };
    let mut killed_at = Vec::new();
    let mut last = 0;
    while last + 2 * BATCH < RECORDS && killed_at.len() < 6 {
        let mut reportd = start(root.path());
        let deadline = Instant::now() + Duration::from_secs(60);
        while checkpoint(&paths.database) <= last {
            assert!(Instant::now() < deadline, "reportd made no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(next_ms()));
        // Every third stop is a SIGTERM: a clean stop in the middle of a
        // catch-up, which must exit 0 (the batch in flight rolls back).
        let signal = if killed_at.len() % 3 == 1 {
            Signal::SIGTERM
        } else {
            Signal::SIGKILL
        };
        kill(Pid::from_raw(reportd.id() as i32), signal).expect("kill");
        let status = reportd.wait().expect("wait");
        if signal == Signal::SIGTERM {
            assert!(status.success(), "SIGTERM mid-catch-up: {status}");
        }
        last = checkpoint(&paths.database);
        killed_at.push(last);
    }
    println!("checkpoints after each stop: {killed_at:?}");
    assert!(killed_at.len() >= 2, "{killed_at:?}");

    let mut reportd = start(root.path());
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoint(&paths.database) < RECORDS {
        assert!(Instant::now() < deadline, "reportd never caught up");
        std::thread::sleep(Duration::from_millis(50));
    }
    kill(Pid::from_raw(reportd.id() as i32), Signal::SIGTERM).expect("term");
    let status = reportd.wait().expect("wait");
    assert!(status.success(), "reportd stopped with {status}");

    let conn = rusqlite::Connection::open_with_flags(
        &paths.database,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the index");
    let mut seqs: Vec<u64> = conn
        .prepare("SELECT seq FROM events")
        .expect("prepare")
        .query_map([], |row| row.get::<_, i64>(0))
        .expect("query")
        .map(|seq| seq.expect("seq") as u64)
        .collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=RECORDS).filter(|&seq| is_event(seq)).collect();
    assert_eq!(seqs.len(), expected.len(), "one row per event");
    assert!(seqs == expected, "the rows are exactly the log's events");
    let counted: i64 = conn
        .query_row("SELECT sum(count) FROM buckets", [], |row| row.get(0))
        .expect("buckets");
    assert_eq!(counted as usize, expected.len(), "each event counted once");
    assert_eq!(checkpoint(&paths.database), RECORDS);
}

//! Indexing rate against raw SQLite inserts of the same rows, and a weekly
//! report over 10 million events.
//!
//! `cargo bench -p vigil-reports --bench index` (`-- --quick`: 10x fewer;
//! `VIGIL_BENCH_TRACE_IDS=1`: every event with a trace id).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use vigil_domain::{AlarmState, ArmedMode, Event, EventKind, SensorState};
use vigil_reports::{Batch, Index, Period, PeriodKind, ReadOnly};

/// Events per transaction: reportd's `BATCH`.
const BATCH: usize = 50_000;
const SENSORS: [&str; 12] = [
    "front-door",
    "back-door",
    "garage-door",
    "kitchen-window",
    "bedroom-window",
    "office-window",
    "hall-motion",
    "living-motion",
    "stairs-motion",
    "garage-motion",
    "smoke-upstairs",
    "flood-basement",
];

/// Whether every event carries a trace id, as they do when OpenTelemetry is
/// on (`VIGIL_BENCH_TRACE_IDS=1`); by default none does.
fn with_trace_ids() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("VIGIL_BENCH_TRACE_IDS").is_some())
}

/// A plausible mix: mostly sensor changes, some arming, a few alarms,
/// faults and tamper.
/// Sensor changes carry the sensor's new state, as the hub logs them.
fn event(seq: u64, unix_ms: i64) -> Event {
    let (kind, sensor, user) = match seq % 1000 {
        0 => (EventKind::Armed, None, Some("alice")),
        1 => (EventKind::Arming, None, Some("alice")),
        2 => (EventKind::Disarmed, None, Some("bob")),
        3 if seq % 10_000 == 3 => (EventKind::Triggered, Some(SENSORS[0]), None),
        4 if seq % 5000 == 4 => (EventKind::Fault, Some(SENSORS[10]), None),
        5 if seq % 5000 == 5 => (EventKind::Tamper, Some(SENSORS[3]), None),
        n => (
            EventKind::Sensor,
            Some(SENSORS[n as usize % SENSORS.len()]),
            None,
        ),
    };
    let sensor_state = (kind == EventKind::Sensor).then(|| {
        if (seq / SENSORS.len() as u64).is_multiple_of(2) {
            SensorState::Active
        } else {
            SensorState::Inactive
        }
    });
    Event {
        seq,
        unix_ms: u64::try_from(unix_ms).expect("a time after 1970"),
        message: format!("{} {kind}", sensor.unwrap_or("system")),
        kind,
        sensor: sensor.map(Into::into),
        sensor_state,
        camera: None,
        mode: ArmedMode::Away,
        alarm: AlarmState::Idle,
        user: user.map(Into::into),
        source: "sensor".into(),
        trace_id: with_trace_ids()
            .then(|| format!("{:032x}", u128::from(seq) * 0x9e37_79b9_7f4a_7c15)),
    }
}

/// Events `seqs` of `n` spread evenly over `span_ms` from `from_ms`.
fn events(seqs: std::ops::RangeInclusive<u64>, n: u64, from_ms: i64, span_ms: i64) -> Vec<Event> {
    seqs.map(|seq| event(seq, from_ms + (seq as i64 * span_ms) / n as i64))
        .collect()
}

/// `Index::apply`, batch after batch: encoding each batch, then writing it.
async fn index_sequential(path: &Path, events: &[Event]) -> Duration {
    let mut index = Index::open(path).await.expect("open");
    let start = Instant::now();
    let mut after = 0;
    for batch in events.chunks(BATCH) {
        let through = batch.last().map(|e| e.seq).unwrap_or(after);
        index.apply(after, through, batch).await.expect("apply");
        after = through;
    }
    // Until every row is in the database file, not only in the WAL.
    index.close().await.expect("close");
    start.elapsed()
}

/// Makes batch `i` (1-based sequence numbers, in order), `None` after the
/// last.
type MakeBatch = Arc<dyn Fn(u64) -> Option<Vec<Event>> + Send + Sync>;

/// As reportd drives the index (`Follower::catch_up`): the next batch is
/// made and encoded (`Batch::new`) on a blocking thread while the index
/// writes the one before.
async fn index_pipelined(path: &Path, make: MakeBatch) -> Duration {
    let mut index = Index::open(path).await.expect("open");
    let start = Instant::now();
    let (mut after, mut next) = (0, 0);
    let mut pending: Option<Batch> = None;
    loop {
        let make = make.clone();
        let encode = tokio::task::spawn_blocking(move || {
            let events = make(next)?;
            let through = events.last().map(|e| e.seq).unwrap_or(after);
            Some(Batch::new(after, through, &events).expect("batch"))
        });
        let write = async {
            if let Some(batch) = pending.take() {
                index.write(batch).await.expect("write");
            }
        };
        let (encoded, ()) = tokio::join!(encode, write);
        let Some(batch) = encoded.expect("encoder") else {
            break;
        };
        after = batch.through();
        next += 1;
        pending = Some(batch);
    }
    index.close().await.expect("close");
    start.elapsed()
}

/// How the baseline's WAL gets into the database file.
#[derive(Clone, Copy, PartialEq)]
enum RawCheckpoints {
    /// SQLite's default: the committing connection checkpoints at 1000
    /// pages of WAL.
    Automatic,
    /// As the indexer does it: a passive checkpoint after each commit from
    /// a second connection on a thread of its own.
    Background,
}

/// The baseline: one prepared INSERT per row, into the same schema with the
/// same settings (page size, WAL, synchronous, cache), one transaction per
/// batch, through rusqlite (the same SQLite library).
fn raw_inserts(path: &Path, events: &[Event], checkpoints: RawCheckpoints) -> Duration {
    let mut conn = rusqlite::Connection::open(path).expect("open");
    conn.execute_batch(
        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
         PRAGMA cache_size = -65536;",
    )
    .expect("pragmas");
    for migration in [
        include_str!("../migrations/0001_events.sql"),
        include_str!("../migrations/0002_rare_kinds.sql"),
        include_str!("../migrations/0003_clustered_by_time.sql"),
        include_str!("../migrations/0004_cameras_and_sensor_states.sql"),
    ] {
        conn.execute_batch(migration).expect("schema");
    }
    let checkpointer = (checkpoints == RawCheckpoints::Background).then(|| {
        conn.execute_batch("PRAGMA wal_autocheckpoint = 4096;")
            .expect("pragma");
        let (committed, wake) = std::sync::mpsc::sync_channel::<()>(1);
        let second = rusqlite::Connection::open(path).expect("open");
        let thread = std::thread::spawn(move || {
            while wake.recv().is_ok() {
                second
                    .execute_batch("PRAGMA wal_checkpoint(PASSIVE);")
                    .expect("checkpoint");
            }
        });
        (committed, thread)
    });
    let start = Instant::now();
    for batch in events.chunks(BATCH) {
        let tx = conn.transaction().expect("tx");
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (seq, unix_ms, kind, sensor, camera, sensor_state, mode, \
                     state, user, source, message, trace_id) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                )
                .expect("prepare");
            for e in batch {
                insert
                    .execute(rusqlite::params![
                        e.seq as i64,
                        e.unix_ms as i64,
                        e.kind.as_str(),
                        e.sensor,
                        e.camera,
                        e.sensor_state.map(SensorState::code),
                        e.mode.as_str(),
                        e.alarm.as_str(),
                        e.user,
                        e.source,
                        e.message,
                        e.trace_id
                    ])
                    .expect("insert");
            }
        }
        tx.commit().expect("commit");
        if let Some((committed, _)) = &checkpointer {
            let _ = committed.try_send(());
        }
    }
    if let Some((committed, thread)) = checkpointer {
        drop(committed);
        thread.join().expect("checkpointer");
    }
    // Until every row is in the database file, not only in the WAL.
    conn.close().expect("close");
    start.elapsed()
}

fn remove_database(path: &Path) {
    for ext in ["db", "db-wal", "db-shm"] {
        let _ = std::fs::remove_file(path.with_extension(ext));
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let scale = if quick { 10 } else { 1 };
    let dir = tempfile::tempdir().expect("dir");
    let week = Period::containing(
        PeriodKind::Weekly,
        NaiveDate::from_ymd_opt(2026, 11, 23).expect("date"),
    );
    let span = week.to_unix_ms - week.from_unix_ms - 1;

    // Indexing rate: the same rows, ours both ways and the two baselines
    // in turn, three rounds; the median of each.
    let n = 2_000_000 / scale;
    let rows = Arc::new(events(1..=n, n, week.from_unix_ms, span));
    let mut times: [Vec<Duration>; 4] = Default::default();
    for round in 0..3 {
        let db = dir.path().join(format!("round-{round}.db"));
        let shared = rows.clone();
        let make: MakeBatch = Arc::new(move |i| {
            let batch = shared.chunks(BATCH).nth(i as usize)?;
            // Owned events, as reportd decodes them from the log.
            Some(batch.to_vec())
        });
        times[0].push(index_pipelined(&db, make).await);
        remove_database(&db);
        times[1].push(index_sequential(&db, &rows).await);
        remove_database(&db);
        times[2].push(raw_inserts(&db, &rows, RawCheckpoints::Automatic));
        remove_database(&db);
        times[3].push(raw_inserts(&db, &rows, RawCheckpoints::Background));
        remove_database(&db);
    }
    let rate = |d: &Duration| n as f64 / d.as_secs_f64();
    let [ours, sequential, raw, raw_background] = times.map(|mut rounds| {
        let each: Vec<String> = rounds.iter().map(|d| format!("{:.0}", rate(d))).collect();
        rounds.sort();
        (rate(&rounds[rounds.len() / 2]), each.join(", "))
    });
    println!("Vigil reports index ({n} events, batches of {BATCH}, median of 3 rounds)");
    for (name, (median, each)) in [
        (
            "index, as reportd runs it (next batch encoded beside)",
            &ours,
        ),
        ("index, Index::apply one batch after another", &sequential),
        ("baseline: raw inserts, SQLite's checkpoints", &raw),
        (
            "baseline: raw inserts, background checkpoints",
            &raw_background,
        ),
    ] {
        println!("{name:<54} {median:>8.0} events/s  (rounds: {each})");
    }
    println!(
        "ratio: {:.2}x the first baseline, {:.2}x the second",
        ours.0 / raw.0,
        ours.0 / raw_background.0
    );
    drop(rows);

    // A weekly report over 10 million events.
    let n = 10_000_000 / scale;
    let path = dir.path().join("week.db");
    // Generated batch by batch: holding all 10 million events and freeing
    // them at once would leave glibc's malloc consolidating 40 million
    // small chunks during the first report, under the allocator lock that
    // the SQLite worker thread needs too (it cost 0.8 s there, once).
    let (from_ms, batch) = (week.from_unix_ms, BATCH as u64);
    let make: MakeBatch = Arc::new(move |i| {
        let first = i * batch + 1;
        let last = (first + batch - 1).min(n);
        (first <= n).then(|| events(first..=last, n, from_ms, span))
    });
    let build = index_pipelined(&path, make).await;
    println!(
        "built a week of {n} events in {:.1} s ({:.0} events/s)",
        build.as_secs_f64(),
        n as f64 / build.as_secs_f64()
    );
    if let Ok(keep) = std::env::var("VIGIL_BENCH_KEEP") {
        // For looking at query plans afterwards.
        std::fs::copy(&path, &keep).expect("keep the database");
    }
    if std::env::var("VIGIL_BENCH_SETTLE").is_ok() {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for ext in ["db", "db-wal", "db-shm"] {
        if let Ok(m) = std::fs::metadata(path.with_extension(ext)) {
            println!("{ext}: {} bytes", m.len());
        }
    }
    let opened = Instant::now();
    let mut db = ReadOnly::open(&path).await.expect("ro");
    let first = db.checkpoint().await.expect("checkpoint");
    println!(
        "opening the index and a first query (checkpoint {first}): {:.1} ms",
        opened.elapsed().as_secs_f64() * 1e3
    );
    let mut times = Vec::new();
    let mut report = None;
    for _ in 0..7 {
        let start = Instant::now();
        let r = db
            .report(&week, &["porch".into()], week.to_unix_ms)
            .await
            .expect("report");
        let html = vigil_reports::html(&r);
        times.push(start.elapsed());
        assert!(html.len() > 1000);
        report = Some(r);
    }
    // A second connection: is the first report's cost per connection (the
    // hub opens one per request) or once per file?
    let mut again = ReadOnly::open(&path).await.expect("ro");
    let start = Instant::now();
    again
        .report(&week, &["porch".into()], week.to_unix_ms)
        .await
        .expect("report");
    let second_connection = start.elapsed();
    let first = times[0];
    times.sort();
    let report = report.expect("report");
    assert_eq!(report.totals.events, n, "the report counts every event");
    println!(
        "first report on a new connection: {:.1} ms; first on a second new connection: {:.1} ms",
        first.as_secs_f64() * 1e3,
        second_connection.as_secs_f64() * 1e3
    );
    println!(
        "weekly report over {n} events (build + HTML): median {:.1} ms, max {:.1} ms \
         ({} alarms, {} timeline entries shown, {} omitted)",
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        report.totals.alarms,
        report.timeline.len(),
        report.timeline_omitted
    );
}

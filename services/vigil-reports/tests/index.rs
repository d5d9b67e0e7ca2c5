//! The index and the reports against a real SQLite file.

use chrono::NaiveDate;
use vigil_domain::{AlarmState, ArmedMode, Event, EventKind, SensorState};
use vigil_reports::{EventFilter, Index, Order, Period, PeriodKind, ReadOnly, ReportsError};

fn event(
    seq: u64,
    unix_ms: i64,
    kind: EventKind,
    sensor: Option<&str>,
    user: Option<&str>,
) -> Event {
    Event {
        seq,
        unix_ms: u64::try_from(unix_ms).expect("after 1970"),
        message: format!("{kind} <{seq}>"),
        kind,
        sensor: sensor.map(Into::into),
        sensor_state: None,
        camera: None,
        mode: ArmedMode::Away,
        alarm: AlarmState::Idle,
        user: user.map(Into::into),
        source: "grpc:phone".into(),
        trace_id: None,
    }
}

/// A camera's event, as the hub logs it: the camera in its own field.
fn camera_event(seq: u64, unix_ms: i64, kind: EventKind, camera: &str) -> Event {
    Event {
        camera: Some(camera.into()),
        source: "camera".into(),
        ..event(seq, unix_ms, kind, None, None)
    }
}

fn day() -> Period {
    Period::containing(
        PeriodKind::Daily,
        NaiveDate::from_ymd_opt(2026, 11, 24).expect("date"),
    )
}

#[tokio::test]
async fn batches_commit_with_their_checkpoint_and_only_in_order() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let t0 = day().from_unix_ms + 9 * 3_600_000;
    let mut index = Index::open(&path).await.expect("open");
    assert_eq!(index.checkpoint().await.expect("checkpoint"), 0);
    let batch = [
        event(1, t0, EventKind::Armed, None, Some("alice")),
        event(2, t0 + 60_000, EventKind::Sensor, Some("front-door"), None),
        event(
            3,
            t0 + 61_000,
            EventKind::Triggered,
            Some("front-door"),
            None,
        ),
        event(4, t0 + 90_000, EventKind::Disarmed, None, Some("alice")),
        event(5, t0 + 91_000, EventKind::Sensor, Some("front-door"), None),
    ];
    // Record 6 is a placeholder: covered by the checkpoint, no row.
    index.apply(0, 6, &batch).await.expect("apply");
    assert_eq!(index.checkpoint().await.expect("checkpoint"), 6);

    // The same batch again, or one that skips ahead, is refused and changes
    // nothing.
    let again = index.apply(0, 6, &batch).await.expect_err("twice");
    assert!(
        matches!(
            again,
            ReportsError::NotContiguous {
                checkpoint: 6,
                after: 0
            }
        ),
        "{again}"
    );
    let gap = index
        .apply(7, 8, &[event(8, t0, EventKind::Sensor, None, None)])
        .await;
    assert!(gap.is_err());
    // An event that is not one of the batch's records (seq 5 was indexed
    // already), or events out of order, are refused before anything is
    // written.
    let dup = index
        .apply(6, 7, &[event(5, t0 + 1, EventKind::Sensor, None, None)])
        .await;
    assert!(
        matches!(dup, Err(ReportsError::OutsideBatch { seq: 5, .. })),
        "{dup:?}"
    );
    let unordered = index
        .apply(
            6,
            9,
            &[
                event(8, t0, EventKind::Sensor, None, None),
                event(7, t0, EventKind::Sensor, None, None),
            ],
        )
        .await;
    assert!(
        matches!(unordered, Err(ReportsError::OutsideBatch { seq: 7, .. })),
        "{unordered:?}"
    );
    assert_eq!(index.checkpoint().await.expect("checkpoint"), 6);
    drop(index);

    let mut db = ReadOnly::open(&path).await.expect("read-only");
    assert_eq!(db.checkpoint().await.expect("checkpoint"), 6);
    let all = db
        .query(&EventFilter::default(), Order::OldestFirst, None, 100)
        .await
        .expect("query");
    assert_eq!(all.events, batch, "rows read back field for field");
    assert_eq!(all.next_cursor, None);
}

#[tokio::test]
async fn queries_filter_and_page_both_ways() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let t0 = day().from_unix_ms;
    let mut index = Index::open(&path).await.expect("open");
    let events: Vec<Event> = (1..=25)
        .map(|seq| {
            let sensor = if seq % 2 == 0 { "hall" } else { "door" };
            event(
                seq,
                t0 + seq as i64 * 1000,
                EventKind::Sensor,
                Some(sensor),
                None,
            )
        })
        .collect();
    index.apply(0, 25, &events).await.expect("apply");
    let mut db = ReadOnly::open(&path).await.expect("ro");
    let hall = EventFilter {
        sensor_or_camera: Some("hall".into()),
        ..EventFilter::default()
    };
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .query(&hall, Order::OldestFirst, cursor, 5)
            .await
            .expect("page");
        seen.extend(page.events.iter().map(|e| e.seq));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (2..=24).step_by(2).collect::<Vec<u64>>());
    let newest = db
        .query(&EventFilter::default(), Order::NewestFirst, None, 3)
        .await
        .expect("newest");
    assert_eq!(
        newest.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [25, 24, 23]
    );
    assert_eq!(newest.next_cursor.map(|c| c.seq), Some(23));
    let window = EventFilter {
        from_unix_ms: Some(t0 + 10_000),
        to_unix_ms: Some(t0 + 13_000),
        kinds: vec![EventKind::Sensor, EventKind::Armed],
        ..EventFilter::default()
    };
    let page = db
        .query(&window, Order::OldestFirst, None, 100)
        .await
        .expect("window");
    assert_eq!(
        page.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [10, 11, 12]
    );
    let none = EventFilter {
        kinds: vec![EventKind::Tamper],
        ..EventFilter::default()
    };
    assert!(
        db.query(&none, Order::OldestFirst, None, 100)
            .await
            .expect("none")
            .events
            .is_empty()
    );
}

#[tokio::test]
async fn the_report_tells_the_day() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let period = day();
    let t0 = period.from_unix_ms + 21 * 3_600_000; // 21:00 local
    let mut index = Index::open(&path).await.expect("open");
    index
        .apply(
            0,
            9,
            &[
                event(
                    1,
                    period.from_unix_ms - 1,
                    EventKind::Sensor,
                    Some("hall"),
                    None,
                ), // the day before
                event(2, t0, EventKind::Arming, None, Some("alice")),
                event(3, t0 + 30_000, EventKind::Armed, None, Some("alice")),
                event(4, t0 + 600_000, EventKind::Sensor, Some("front-door"), None),
                event(
                    5,
                    t0 + 630_000,
                    EventKind::Triggered,
                    Some("front-door"),
                    None,
                ),
                event(6, t0 + 700_000, EventKind::Disarmed, None, Some("bob")),
                event(7, t0 + 800_000, EventKind::Tamper, Some("hall"), None),
                camera_event(8, t0 + 900_000, EventKind::CameraOffline, "porch"),
                camera_event(9, t0 + 960_000, EventKind::CameraOnline, "porch"),
            ],
        )
        .await
        .expect("apply");
    let mut db = ReadOnly::open(&path).await.expect("ro");
    let report = db
        .report(
            &period,
            &["porch".into(), "garden".into()],
            period.to_unix_ms,
        )
        .await
        .expect("report");
    assert_eq!(report.label, "2026-11-24");
    assert_eq!(report.indexed_through_seq, 9);
    assert_eq!(report.totals.events, 8, "the day before is not in it");
    assert_eq!(report.totals.alarms, 1);
    assert_eq!((report.totals.arms, report.totals.disarms), (1, 1));
    assert_eq!(report.alarms.len(), 1);
    let alarm = &report.alarms[0];
    assert_eq!(alarm.sensor.as_deref(), Some("front-door"));
    assert_eq!(alarm.disarmed_by.as_deref(), Some("bob"));
    assert_eq!(alarm.disarmed_unix_ms, Some(t0 + 700_000));
    let who: Vec<_> = report
        .timeline
        .iter()
        .map(|e| (e.kind.as_str(), e.user.as_deref()))
        .collect();
    assert_eq!(
        who,
        [
            ("arming", Some("alice")),
            ("armed", Some("alice")),
            ("disarmed", Some("bob"))
        ]
    );
    // Faults and tamper by their alert priority: the tamper loop and the
    // camera gone offline (a fault), not its coming back (info).
    let faults: Vec<_> = report
        .faults
        .iter()
        .map(|f| (f.kind.as_str(), f.sensor.as_deref(), f.camera.as_deref()))
        .collect();
    assert_eq!(
        faults,
        [
            ("tamper", Some("hall"), None),
            ("camera_offline", None, Some("porch"))
        ]
    );
    assert_eq!((report.totals.faults, report.totals.tampers), (1, 1));
    let hall = report
        .sensors
        .iter()
        .find(|s| s.sensor == "hall")
        .expect("hall");
    assert_eq!((hall.tampers, hall.events), (1, 1));
    assert!(
        report.sensors.iter().all(|s| s.sensor != "porch"),
        "a camera is not a sensor: {:?}",
        report.sensors
    );
    assert_eq!(report.by_hour_of_day[21], 8);
    assert_eq!(report.busiest_hours[0].hour, 21);
    let porch = report
        .cameras
        .iter()
        .find(|c| c.camera == "porch")
        .expect("porch");
    assert_eq!((porch.outages, porch.offline_ms), (1, 60_000));
    let garden = report
        .cameras
        .iter()
        .find(|c| c.camera == "garden")
        .expect("garden");
    assert_eq!(garden.uptime_percent, 100.0);

    let html = vigil_reports::html(&report);
    assert!(
        html.contains("<svg") && html.contains("front-door"),
        "charts and names"
    );
    assert!(html.contains("tamper &lt;7&gt;"), "messages are escaped");
    let json = serde_json::to_string(&report).expect("json");
    let back: vigil_reports::Report = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, report);
}

/// Events that share their text (the batch sends it once per shape), trace
/// ids, text that needs escaping in JSON, a clock set back, and counts that
/// two batches add to: everything reads back as it went in.
#[tokio::test]
async fn rows_read_back_exactly_across_batches_and_a_clock_set_back() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let t0 = day().from_unix_ms + 8 * 3_600_000;
    let mut index = Index::open(&path).await.expect("open");
    let mut all = Vec::new();
    for seq in 1..=40u64 {
        let mut e = event(
            seq,
            t0 + seq as i64 * 1000,
            EventKind::Sensor,
            Some("hall"),
            None,
        );
        e.message = if seq % 2 == 0 {
            "hall open"
        } else {
            "hall \"closed\"\n"
        }
        .into();
        e.trace_id = (seq % 3 == 0).then(|| format!("{seq:032x}"));
        e.sensor_state = Some(if seq % 2 == 0 {
            SensorState::Active
        } else {
            SensorState::Inactive
        });
        all.push(e);
    }
    // The clock went back a minute before record 30.
    for e in &mut all[29..] {
        e.unix_ms -= 60_000;
    }
    all[9].kind = EventKind::Armed;
    all[9].user = Some("zoë".into());
    all[9].sensor = None;
    all[9].sensor_state = None;
    all[9].mode = ArmedMode::Night;
    all[9].alarm = AlarmState::Arming;
    all[14] = camera_event(15, t0 + 15_000, EventKind::ClipRecorded, "porch");
    index.apply(0, 20, &all[..20]).await.expect("first batch");
    // Record 21 is a placeholder: no event.
    let second: Vec<Event> = all[21..].to_vec();
    index.apply(20, 40, &second).await.expect("second batch");
    drop(index);

    let mut db = ReadOnly::open(&path).await.expect("ro");
    let page = db
        .query(&EventFilter::default(), Order::OldestFirst, None, 100)
        .await
        .expect("query");
    let mut expected: Vec<Event> = all[..20].iter().chain(&second).cloned().collect();
    expected.sort_by_key(|e| (e.unix_ms, e.seq));
    assert_eq!(page.events, expected, "time order, field for field");
    let report = db
        .report(&day(), &[], day().to_unix_ms)
        .await
        .expect("report");
    assert_eq!(report.totals.events, 39, "each event counted once");
}

/// A file indexed before the table was clustered by time (migrations 0001
/// and 0002 only) keeps every row, and its counts, when a newer reportd
/// opens it.
#[tokio::test]
async fn an_older_file_keeps_its_rows_through_the_migration() {
    use sqlx::ConnectOptions;

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let old = dir.path().join("old-migrations");
    std::fs::create_dir(&old).expect("mkdir");
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for name in ["0001_events.sql", "0002_rare_kinds.sql"] {
        std::fs::copy(migrations.join(name), old.join(name)).expect("copy");
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .expect("connect");
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("old migrations")
        .run(&mut conn)
        .await
        .expect("migrate to 0002");
    drop(conn);
    // Rows as the old indexer wrote them.
    let t0 = day().from_unix_ms + 3_600_000;
    {
        let raw = rusqlite::Connection::open(&path).expect("open");
        raw.execute_batch(&format!(
            "INSERT INTO events VALUES (1, {t0}, 'armed', NULL, 'away', 'idle', 'alice', 'keypad', 'armed away', NULL);
             INSERT INTO events VALUES (2, {}, 'sensor', 'hall', 'away', 'idle', NULL, 'sensor', 'hall open', 'ab');
             INSERT INTO buckets VALUES ({}, 'armed', '', 1), ({}, 'sensor', 'hall', 1);
             UPDATE checkpoint SET last_seq = 2;",
            t0 + 1000,
            t0 / 900_000,
            t0 / 900_000
        ))
        .expect("old rows");
    }

    let mut index = Index::open(&path).await.expect("migrate to the newest");
    assert_eq!(index.checkpoint().await.expect("checkpoint"), 2);
    index
        .apply(
            2,
            3,
            &[event(3, t0 + 2000, EventKind::Disarmed, None, Some("bob"))],
        )
        .await
        .expect("index on");
    index.close().await.expect("close");
    let schema: String = rusqlite::Connection::open(&path)
        .expect("open")
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'events'",
            [],
            |row| row.get(0),
        )
        .expect("schema");
    assert!(schema.contains("WITHOUT ROWID"), "{schema}");
    let mut db = ReadOnly::open(&path).await.expect("ro");
    let all = db
        .query(&EventFilter::default(), Order::OldestFirst, None, 10)
        .await
        .expect("query");
    assert_eq!(
        all.events
            .iter()
            .map(|e| (e.seq, e.kind.as_str(), e.trace_id.as_deref()))
            .collect::<Vec<_>>(),
        [
            (1, "armed", None),
            (2, "sensor", Some("ab")),
            (3, "disarmed", None)
        ]
    );
    let report = db
        .report(&day(), &[], day().to_unix_ms)
        .await
        .expect("report");
    assert_eq!((report.totals.events, report.totals.arms), (3, 1));
}

/// A kind this build does not know (from a newer hub's log) is indexed by
/// its name, found by it, read back as it went in, and counted.
#[tokio::test]
async fn a_kind_this_build_does_not_know_is_indexed_by_its_name() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let t0 = day().from_unix_ms + 3_600_000;
    let newer = EventKind::from_name("doorbell_rang");
    assert_eq!(newer, EventKind::Other("doorbell_rang".into()));
    let events = [
        event(1, t0, newer.clone(), None, None),
        event(2, t0 + 1000, EventKind::Armed, None, Some("alice")),
        event(3, t0 + 2000, newer.clone(), Some("porch-button"), None),
    ];
    let mut index = Index::open(&path).await.expect("open");
    index.apply(0, 3, &events).await.expect("apply");
    index.close().await.expect("close");

    let stored: Vec<String> = rusqlite::Connection::open(&path)
        .expect("open")
        .prepare("SELECT kind FROM events ORDER BY seq")
        .expect("prepare")
        .query_map([], |row| row.get(0))
        .expect("query")
        .map(|kind| kind.expect("kind"))
        .collect();
    assert_eq!(stored, ["doorbell_rang", "armed", "doorbell_rang"]);

    let mut db = ReadOnly::open(&path).await.expect("ro");
    let all = db
        .query(&EventFilter::default(), Order::OldestFirst, None, 10)
        .await
        .expect("all");
    assert_eq!(all.events, events, "read back as it went in");
    let by_kind = EventFilter {
        kinds: vec![newer],
        ..EventFilter::default()
    };
    let found = db
        .query(&by_kind, Order::NewestFirst, None, 10)
        .await
        .expect("by kind");
    assert_eq!(
        found.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [3, 1]
    );
    let report = db
        .report(&day(), &[], day().to_unix_ms)
        .await
        .expect("report");
    assert_eq!(report.totals.events, 3, "counted among the events");
    assert_eq!(
        (
            report.totals.alarms,
            report.totals.faults,
            report.totals.tampers
        ),
        (0, 0, 0),
        "in no class"
    );
}

/// Every kind is found by its kind, whichever statement serves it (the
/// kind index for all but sensor changes, the table for those): the
/// store's rule for which kinds the index holds and the schema's `rare`
/// column agree.
#[tokio::test]
async fn every_kind_is_found_by_its_kind() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let t0 = day().from_unix_ms;
    let kinds: Vec<EventKind> = vigil_domain::KNOWN_KINDS
        .into_iter()
        .chain([EventKind::Other("newer".into())])
        .collect();
    let events: Vec<Event> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| event(i as u64 + 1, t0 + i as i64, kind.clone(), None, None))
        .collect();
    let mut index = Index::open(&path).await.expect("open");
    index
        .apply(0, events.len() as u64, &events)
        .await
        .expect("apply");
    let mut db = ReadOnly::open(&path).await.expect("ro");
    for (kind, expected) in kinds.iter().zip(&events) {
        let filter = EventFilter {
            kinds: vec![kind.clone()],
            ..EventFilter::default()
        };
        for order in [Order::OldestFirst, Order::NewestFirst] {
            let page = db.query(&filter, order, None, 10).await.expect("query");
            assert_eq!(
                page.events,
                std::slice::from_ref(expected),
                "{kind} {order:?}"
            );
        }
    }
}

/// A file indexed before events had their camera and sensor state (the
/// migrations up to 0003): camera events named the camera as the sensor,
/// with their counts under its name. Migration 0004 moves the camera to its
/// column and its counts to no sensor, as a rebuild from the same log would
/// index them, and modes and states read by their names as they were.
#[tokio::test]
async fn an_older_file_gets_its_cameras_out_of_the_sensor_column() {
    use sqlx::ConnectOptions;

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("reports.db");
    let old = dir.path().join("old-migrations");
    std::fs::create_dir(&old).expect("mkdir");
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for name in [
        "0001_events.sql",
        "0002_rare_kinds.sql",
        "0003_clustered_by_time.sql",
    ] {
        std::fs::copy(migrations.join(name), old.join(name)).expect("copy");
    }
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .connect()
        .await
        .expect("connect");
    sqlx::migrate::Migrator::new(old.as_path())
        .await
        .expect("old migrations")
        .run(&mut conn)
        .await
        .expect("migrate to 0003");
    drop(conn);
    // Rows and counts as the indexer of 0003 wrote them.
    let t0 = day().from_unix_ms + 3_600_000;
    let b = t0 / 900_000;
    {
        let raw = rusqlite::Connection::open(&path).expect("open");
        raw.execute_batch(&format!(
            "INSERT INTO events (unix_ms, seq, kind, sensor, mode, state, user, source, message, trace_id) VALUES
                 ({t0}, 1, 'armed', NULL, 'night', 'idle', 'alice', 'fifo', 'armed night', NULL),
                 ({t1}, 2, 'camera_offline', 'porch', 'night', 'idle', NULL, 'camera', 'porch offline', NULL),
                 ({t2}, 3, 'sensor', 'hall', 'night', 'pending', NULL, 'sensor', 'hall motion', 'ab'),
                 ({t3}, 4, 'triggered', 'hall', 'night', 'triggered', NULL, 'sensor', 'alarm', NULL),
                 ({t4}, 5, 'camera_online', 'porch', 'night', 'triggered', NULL, 'camera', 'porch online', NULL);
             INSERT INTO buckets VALUES ({b}, 'armed', '', 1), ({b}, 'camera_offline', 'porch', 1),
                 ({b}, 'sensor', 'hall', 1), ({b}, 'triggered', 'hall', 1),
                 ({b}, 'camera_online', 'porch', 1);
             UPDATE checkpoint SET last_seq = 5;",
            t1 = t0 + 1000,
            t2 = t0 + 2000,
            t3 = t0 + 3000,
            t4 = t0 + 4000,
        ))
        .expect("old rows");
    }

    let mut index = Index::open(&path).await.expect("migrate to the newest");
    assert_eq!(index.checkpoint().await.expect("checkpoint"), 5);
    // A camera event as the hub logs it now, in the same quarter hour.
    let new = camera_event(6, t0 + 5000, EventKind::CameraOffline, "porch");
    index
        .apply(5, 6, std::slice::from_ref(&new))
        .await
        .expect("index on");
    index.close().await.expect("close");

    let counts: Vec<(String, String, i64)> = rusqlite::Connection::open(&path)
        .expect("open")
        .prepare("SELECT kind, sensor, count FROM buckets ORDER BY kind, sensor")
        .expect("prepare")
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .map(|row| row.expect("row"))
        .collect();
    let counts: Vec<_> = counts
        .iter()
        .map(|(k, s, n)| (k.as_str(), s.as_str(), *n))
        .collect();
    assert_eq!(
        counts,
        [
            ("armed", "", 1),
            ("camera_offline", "", 2),
            ("camera_online", "", 1),
            ("sensor", "hall", 1),
            ("triggered", "hall", 1),
        ]
    );

    let mut db = ReadOnly::open(&path).await.expect("ro");
    let all = db
        .query(&EventFilter::default(), Order::OldestFirst, None, 10)
        .await
        .expect("query");
    let read: Vec<_> = all
        .events
        .iter()
        .map(|e| {
            (
                e.seq,
                e.kind.clone(),
                e.sensor.as_deref(),
                e.camera.as_deref(),
                e.mode,
                e.alarm,
            )
        })
        .collect();
    use AlarmState::{Idle, Pending, Triggered};
    use ArmedMode::{Away, Night};
    assert_eq!(
        read,
        [
            (1, EventKind::Armed, None, None, Night, Idle),
            (
                2,
                EventKind::CameraOffline,
                None,
                Some("porch"),
                Night,
                Idle
            ),
            (3, EventKind::Sensor, Some("hall"), None, Night, Pending),
            (
                4,
                EventKind::Triggered,
                Some("hall"),
                None,
                Night,
                Triggered
            ),
            (
                5,
                EventKind::CameraOnline,
                None,
                Some("porch"),
                Night,
                Triggered
            ),
            (6, EventKind::CameraOffline, None, Some("porch"), Away, Idle),
        ]
    );
    assert_eq!(all.events[2].trace_id.as_deref(), Some("ab"));
    assert_eq!(all.events[5], new);
    // The API's sensor filter still finds a camera's events by its name.
    let porch = EventFilter {
        sensor_or_camera: Some("porch".into()),
        ..EventFilter::default()
    };
    let porch = db
        .query(&porch, Order::OldestFirst, None, 10)
        .await
        .expect("porch");
    assert_eq!(
        porch.events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [2, 5, 6]
    );

    let report = db
        .report(&day(), &["porch".into()], day().to_unix_ms)
        .await
        .expect("report");
    let porch = &report.cameras[0];
    assert_eq!(porch.camera, "porch");
    assert_eq!(
        (porch.outages, porch.offline_ms),
        (2, 3000 + (day().to_unix_ms - t0 - 5000))
    );
    assert_eq!(
        report
            .sensors
            .iter()
            .map(|s| s.sensor.as_str())
            .collect::<Vec<_>>(),
        ["hall"]
    );
    assert_eq!(report.alarms[0].mode, "night");
}

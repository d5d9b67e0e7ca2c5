//! Following the log into the index, in-process: records as the hub writes
//! them (vigil-logrecord) come out of the index as the events that went
//! in, a kind this build does not know included; a record that does not
//! decode and a placeholder are covered but add no row.

use vigil_domain::{AlarmState, ArmedMode, Event, EventKind, SensorState};
use vigil_eventlog::{LogWriter, Options, kinds};
use vigil_reportd::Follower;
use vigil_reports::{EventFilter, Index, Order, ReadOnly};

fn event(seq: u64, kind: EventKind) -> Event {
    Event {
        seq,
        unix_ms: 1_795_392_000_000 + seq * 1000,
        kind,
        sensor: None,
        sensor_state: None,
        camera: None,
        mode: ArmedMode::Home,
        alarm: AlarmState::Idle,
        user: None,
        source: "system".into(),
        message: format!("event {seq}"),
        trace_id: None,
    }
}

#[tokio::test]
async fn records_index_as_their_events_and_unknown_kinds_by_name() {
    let root = tempfile::tempdir().expect("dir");
    let events_dir = root.path().join("events");
    std::fs::create_dir_all(&events_dir).expect("mkdir");
    let change = Event {
        sensor: Some("hall".into()),
        sensor_state: Some(SensorState::Active),
        source: "sensor".into(),
        ..event(1, EventKind::Sensor)
    };
    // A kind from a newer hub.
    let newer = Event {
        user: Some("alice".into()),
        ..event(2, EventKind::from_name("doorbell_rang"))
    };
    let camera = Event {
        camera: Some("porch".into()),
        source: "camera".into(),
        ..event(5, EventKind::CameraOffline)
    };
    {
        let (mut log, _) = LogWriter::open(&events_dir, Options::default()).expect("open the log");
        let records: [(u16, Vec<u8>); 5] = [
            (kinds::EVENT, vigil_logrecord::encode(&change)),
            (kinds::EVENT, vigil_logrecord::encode(&newer)),
            (kinds::EVENT, vec![0xff, 0xff, 0xff]),
            (kinds::PLACEHOLDER, Vec::new()),
            (kinds::EVENT, vigil_logrecord::encode(&camera)),
        ];
        for (kind, payload) in &records {
            log.append(*kind, 0, 1_795_392_000_000_000_000, payload)
                .expect("append");
        }
        log.sync().expect("sync");
    }

    let path = root.path().join("reports.db");
    let mut index = Index::open(&path).await.expect("open");
    let mut follower = Follower::new(&events_dir);
    assert_eq!(
        follower.catch_up(&mut index, 100).await.expect("catch up"),
        5
    );
    assert_eq!(index.checkpoint().await.expect("checkpoint"), 5);
    index.close().await.expect("close");

    let mut db = ReadOnly::open(&path).await.expect("ro");
    let all = db
        .query(&EventFilter::default(), Order::OldestFirst, None, 10)
        .await
        .expect("all");
    assert_eq!(all.events, [change, newer.clone(), camera]);
    let by_kind = EventFilter {
        kinds: vec![EventKind::Other("doorbell_rang".into())],
        ..EventFilter::default()
    };
    let found = db
        .query(&by_kind, Order::OldestFirst, None, 10)
        .await
        .expect("by kind");
    assert_eq!(found.events, [newer]);
}

/// Damage in the log is a gap reportd steps over: logged, covered by the
/// checkpoint, and every event after it indexed (the hub's retention,
/// which waits for the checkpoint, goes on too).
#[tokio::test]
async fn a_gap_in_the_log_is_stepped_over_and_indexing_goes_on() {
    let root = tempfile::tempdir().expect("dir");
    let events_dir = root.path().join("events");
    let events: Vec<Event> = (1..=30).map(|s| event(s, EventKind::Sensor)).collect();
    {
        let (mut log, _) = LogWriter::open(&events_dir, Options::default()).expect("open the log");
        for e in &events {
            log.append(
                kinds::EVENT,
                0,
                e.unix_ms * 1_000_000,
                &vigil_logrecord::encode(e),
            )
            .expect("append");
        }
        log.sync().expect("sync");
    }
    // A flipped bit in the payloads of records 10 and 11, as a failing
    // disk would.
    let segment = std::fs::read_dir(&events_dir)
        .expect("dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "vlog"))
        .expect("a segment");
    let mut bytes = std::fs::read(&segment).expect("read");
    let mut at = vigil_eventlog::HEADER_LEN;
    for seq in 1..=11u64 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        if seq >= 10 {
            bytes[at + vigil_eventlog::RECORD_HEADER_LEN + 3] ^= 0x20;
        }
        at += (len + 7) & !7;
    }
    std::fs::write(&segment, bytes).expect("write");

    let path = root.path().join("reports.db");
    let mut index = Index::open(&path).await.expect("open");
    let mut follower = Follower::new(&events_dir);
    let mut covered = 0;
    loop {
        let n = follower.catch_up(&mut index, 7).await.expect("catch up");
        if n == 0 {
            break;
        }
        covered += n;
    }
    assert_eq!(covered, 30);
    assert_eq!(index.checkpoint().await.expect("checkpoint"), 30);
    assert_eq!(follower.lost(), 2);
    index.close().await.expect("close");
    let mut db = ReadOnly::open(&path).await.expect("ro");
    let all = db
        .query(&EventFilter::default(), Order::OldestFirst, None, 100)
        .await
        .expect("all");
    let indexed: Vec<u64> = all.events.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (1..=30).filter(|s| *s != 10 && *s != 11).collect();
    assert_eq!(indexed, want);
}

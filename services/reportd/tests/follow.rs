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

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use vigil_domain::SensorKind;
use vigil_ipc::table::{SensorTable, SlotDescriptor};

use super::*;

const T: Duration = Duration::from_secs(5);

fn uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| std::os::unix::fs::MetadataExt::uid(&m))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_is_welcomed_with_the_table() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sock");
    let rendezvous = Rendezvous::bind(&path, uid()).await.expect("bind");
    let client_path = path.clone();
    let client =
        tokio::task::spawn_blocking(move || connect(&client_path, ServiceRole::Sensord, T));
    let pending = rendezvous
        .accept()
        .await
        .expect("accept")
        .greet()
        .await
        .expect("greet");
    assert_eq!(pending.role, ServiceRole::Sensord);
    assert_eq!(pending.peer_pid, Some(std::process::id()));
    let admitted = pending.admit().await.expect("admit");
    let table = SensorTable::create(
        &[SlotDescriptor {
            name: "front-door".into(),
            kind: SensorKind::Door,
        }],
        1,
    )
    .expect("table");
    admitted.hand_table(table.fd()).expect("hand the table");
    admitted
        .hello
        .reply
        .send(HubMessage::Welcome(Welcome {
            session: 7,
            hub_pid: 1,
            slots: vec!["front-door".into()],
        }))
        .expect("welcome");
    let session = client.await.expect("join").expect("connect");
    assert_eq!(session.welcome.session, 7);
    assert_eq!(session.welcome.slots, ["front-door"]);
    // The client got the hub's own (sealed) table, and it maps.
    let fd = session.table.try_clone().expect("dup");
    let mapped = SensorTable::from_fd(fd).expect("map the table");
    assert_eq!(mapped.descriptor(0).expect("slot 0").name, "front-door");

    // The session reports the other side's departure.
    session
        .to_hub
        .send(ServiceMessage::OutputState {
            output: OutputName::Siren,
            on: true,
        })
        .expect("send");
    assert!(matches!(
        admitted.from_service.recv(),
        Ok(ServiceMessage::OutputState { on: true, .. })
    ));
    drop(session);
    assert!(admitted.from_service.recv().is_err());
}

#[tokio::test]
async fn a_second_hub_is_refused_and_a_stale_socket_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sock");
    let first = Rendezvous::bind(&path, uid()).await.expect("bind");
    assert!(matches!(
        Rendezvous::bind(&path, uid()).await,
        Err(BootstrapError::HubAlreadyRunning { .. })
    ));
    drop(first);
    // A socket file nobody listens on (left by a SIGKILLed hub).
    std::os::unix::net::UnixListener::bind(&path).expect("stale");
    Rendezvous::bind(&path, uid())
        .await
        .expect("rebind over stale");
}

#[test]
fn no_hub_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = connect(&dir.path().join("hub.sock"), ServiceRole::Reader, T).expect_err("no hub");
    assert!(matches!(err, BootstrapError::HubNotRunning { .. }));
    assert!(err.to_string().contains("start vigil-hub"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_lying_clients_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sock");
    let rendezvous = Rendezvous::bind(&path, uid()).await.expect("bind");
    for line in [
        "HELLO WORLD\n".to_owned(),
        format!("{PROTOCOL} wizard 1\n"),
        format!("{PROTOCOL} sensord 1\n"), // not our pid
    ] {
        let p = path.clone();
        let client = tokio::task::spawn_blocking(move || {
            let mut s = UnixStream::connect(p).expect("connect");
            s.write_all(line.as_bytes()).expect("write");
            let mut answer = String::new();
            BufReader::new(s).read_line(&mut answer).expect("read");
            answer
        });
        let incoming = rendezvous.accept().await.expect("accept");
        assert!(incoming.greet().await.is_err());
        let answer = client.await.expect("join");
        assert!(answer.starts_with("ERR "), "{answer}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_at_its_deadline_and_delays_nobody() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sock");
    let rendezvous = Rendezvous::bind(&path, uid()).await.expect("bind");
    // Three clients that connect and say nothing.
    let silent: Vec<UnixStream> = (0..3)
        .map(|_| UnixStream::connect(&path).expect("connect"))
        .collect();
    let mut greetings = Vec::new();
    for _ in 0..3 {
        let incoming = rendezvous.accept().await.expect("accept");
        greetings.push(tokio::spawn(incoming.greet()));
    }
    // A real client behind them is greeted at once.
    let client_path = path.clone();
    let client = tokio::task::spawn_blocking(move || connect(&client_path, ServiceRole::Reader, T));
    let started = std::time::Instant::now();
    let pending = rendezvous
        .accept()
        .await
        .expect("accept")
        .greet()
        .await
        .expect("greet");
    assert!(
        started.elapsed() < FIRST_LINE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    let admitted = pending.admit().await.expect("admit");
    let table = SensorTable::create(&[], 1).expect("table");
    admitted.hand_table(table.fd()).expect("hand the table");
    admitted
        .hello
        .reply
        .send(HubMessage::Welcome(Welcome {
            session: 1,
            hub_pid: 1,
            slots: vec![],
        }))
        .expect("welcome");
    client.await.expect("join").expect("connect");
    // The silent ones time out.
    for greeting in greetings {
        assert!(matches!(
            greeting.await.expect("join"),
            Err(BootstrapError::Timeout { .. })
        ));
    }
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admission_dropped_midway_leaves_no_blocked_thread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("hub.sock");
    let rendezvous = Rendezvous::bind(&path, uid()).await.expect("bind");
    // A client that says its line, then never connects to the ipc server.
    let mut client = UnixStream::connect(&path).expect("connect");
    client
        .write_all(format!("{PROTOCOL} reader {}\n", std::process::id()).as_bytes())
        .expect("write");
    let pending = rendezvous
        .accept()
        .await
        .expect("accept")
        .greet()
        .await
        .expect("greet");
    let admit = tokio::spawn(pending.admit());
    let mut answer = String::new();
    BufReader::new(&client)
        .read_line(&mut answer)
        .expect("read");
    assert!(answer.starts_with("OK "), "{answer}");
    // The hub gives up on it (to make room): the blocking accept is
    // released, so its task ends rather than hanging for ever.
    admit.abort();
    let _ = admit.await;
    let name = answer.trim_end().trim_start_matches("OK ").to_owned();
    // The one-shot server is gone: nobody accepts there any more.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        ipc_channel::ipc::IpcSender::<ServiceMessage>::connect(name).is_err(),
        "the ipc-channel server still accepts"
    );
}

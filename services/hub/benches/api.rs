//! The gRPC API, measured in one run:
//!
//! - GetStatus requests per second and latency over TLS with client
//!   certificates (the hub's real path), beside the same server in
//!   plaintext with no authentication (the baseline: what TLS and the
//!   certificate check cost);
//! - WatchEvents fan-out: 1 000 subscribers on one hub, the time from a
//!   state change (a bypass command) until each subscriber has the event.
//!
//! Server and load generator share this process and the machine's cores.
//! `cargo bench -p vigil-hub --bench api` (`-- --quick` for a short run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::{Barrier, watch};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use vigil_alarm::Actor;
use vigil_alarm::users::Users;
use vigil_config::Config;
use vigil_domain::Role;
use vigil_hub::commands::{Command, HubHandle};
use vigil_hub::engine::Engine;
use vigil_hub::grpc::{self, Api, ApiView, Auth};
use vigil_hub::persist::StateStore;
use vigil_hub::pki::Pki;
use vigil_ipc::table::{SensorTable, SlotDescriptor};
use vigil_proto::v1 as pb;
use vigil_proto::v1::alarm_service_client::AlarmServiceClient;

struct Setup {
    engine: HubHandle,
    view: watch::Receiver<Arc<ApiView>>,
    pki: Arc<Pki>,
    _dir: tempfile::TempDir,
    _view_tx: watch::Sender<Arc<ApiView>>,
}

/// The bench's house: two doors (it bypasses the back door), its files
/// under `dir`.
fn house(dir: &std::path::Path) -> Config {
    let text = format!(
        "[runtime]\nruntime_dir = {:?}\nstate_dir = {:?}\n\
         [[sensors]]\nname = \"front-door\"\nkind = \"door\"\npin = 17\n\
         [[sensors]]\nname = \"back-door\"\nkind = \"door\"\npin = 27\n",
        dir.join("run").display().to_string(),
        dir.join("state").display().to_string(),
    );
    Config::parse(&text, "the bench's house").expect("valid")
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().expect("dir");
    let config = house(dir.path());
    let alarm = vigil_hub::alarm_setup(&config);
    let slots: Vec<SlotDescriptor> = config
        .sensors
        .iter()
        .map(|s| SlotDescriptor {
            name: s.name.clone(),
            kind: s.kind,
        })
        .collect();
    let table = Arc::new(SensorTable::create(&slots, std::process::id()).expect("table"));
    std::fs::create_dir_all(&config.runtime.state_dir).expect("state dir");
    let store = StateStore::new(&config.runtime.state_dir);
    let engine = Engine::new(
        alarm.clone(),
        Users::new(Vec::new(), Default::default()),
        Default::default(),
    );
    // The engine's loop, as in the hub (without the table, log or queue).
    let handle = vigil_hub::spawn_engine(engine, store);
    let (view_tx, view) = watch::channel(Arc::new(ApiView {
        table,
        setup: alarm,
        users: Vec::new(),
        events_dir: None,
        reports_db: None,
        cameras: Vec::new(),
    }));
    let pki = Arc::new(Pki::load_or_create(&config.runtime.state_dir, &[]).expect("pki"));
    Setup {
        engine: handle,
        view,
        pki,
        _dir: dir,
        _view_tx: view_tx,
    }
}

async fn start(setup: &Setup, auth: Auth) -> String {
    let listener = grpc::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let api = Api::new(
        setup.engine.clone(),
        setup.view.clone(),
        auth,
        vigil_hub::identity::HubInfo::ephemeral(),
    );
    tokio::spawn(grpc::serve(listener, api, std::future::pending()));
    addr
}

/// A paired client's TLS settings.
fn client_tls(pki: &Pki) -> ClientTlsConfig {
    let (ca, cert, key) = client_pems(pki);
    tls_from_pems(&ca, &cert, &key)
}

fn tls_from_pems(ca: &str, cert: &str, key: &str) -> ClientTlsConfig {
    ClientTlsConfig::new()
        .domain_name("vigil-hub")
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key))
}

/// A paired client's (CA, certificate, key) in PEM.
fn client_pems(pki: &Pki) -> (String, String, String) {
    let now = vigil_hub::clock::now_ms();
    let (code, _) = pki.create_code(Role::Admin, None, now);
    let key = rcgen::KeyPair::generate().expect("key");
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .expect("params")
        .serialize_request(&key)
        .expect("csr")
        .pem()
        .expect("pem");
    let name = format!("bench-{}", rand_suffix());
    let cert = pki
        .pair(&code, &name, &csr, now)
        .expect("pair")
        .certificate_pem;
    (pki.server_tls().ca_pem.clone(), cert, key.serialize_pem())
}

fn rand_suffix() -> u64 {
    vigil_ipc::monotonic_ns() % 1_000_000
}

/// Opens `subscribers` WatchEvents streams over 10 connections; each task
/// waits at `ready`, then records (seq, CLOCK_MONOTONIC ns) for `changes`
/// events.
async fn subscribe_all(
    addr: &str,
    tls: &ClientTlsConfig,
    subscribers: usize,
    changes: usize,
    ready: Arc<Barrier>,
) -> Vec<tokio::task::JoinHandle<Vec<(u64, u64)>>> {
    let connections = std::env::var("FAN_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let channel = channel(addr, Some(tls)).await;
        for _ in 0..subscribers / connections {
            let mut client = AlarmServiceClient::new(channel.clone());
            let ready = Arc::clone(&ready);
            tasks.push(tokio::spawn(async move {
                let mut stream = client
                    .watch_events(pb::WatchEventsRequest { after_seq: None })
                    .await
                    .expect("watch")
                    .into_inner();
                ready.wait().await;
                let mut got = Vec::with_capacity(changes);
                while got.len() < changes {
                    let event = stream.message().await.expect("stream").expect("event");
                    got.push((event.seq, vigil_ipc::monotonic_ns()));
                }
                got
            }));
        }
    }
    tasks
}

/// The fan-out's subscribers in a process of their own, as phones would
/// be: `--fanout-child ADDR DIR SUBSCRIBERS CHANGES`. Prints "ready", then
/// "<seq> <monotonic ns>" for every delivery.
fn fanout_child(args: &[String]) {
    let (addr, dir) = (&args[0], std::path::Path::new(&args[1]));
    let subscribers: usize = args[2].parse().expect("subscribers");
    let changes: usize = args[3].parse().expect("changes");
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).expect("pem");
    let tls = tls_from_pems(&read("ca.pem"), &read("client.pem"), &read("client.key"));
    let runtime = runtime();
    runtime.block_on(async {
        let ready = Arc::new(Barrier::new(subscribers + 1));
        let tasks = subscribe_all(addr, &tls, subscribers, changes, Arc::clone(&ready)).await;
        ready.wait().await;
        println!("ready");
        let mut out = String::new();
        for t in tasks {
            for (seq, at) in t.await.expect("subscriber") {
                out.push_str(&format!("{seq} {at}\n"));
            }
        }
        print!("{out}");
    });
}

/// Makes `changes` state changes (bypass toggles) 20 ms apart; returns the
/// sequence before the first and the monotonic time of each.
async fn send_changes(setup: &Setup, changes: usize) -> (u64, Vec<u64>) {
    // Let every stream reach the server's broadcast before the first change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let base = setup.engine.status().last_seq;
    let mut sent = Vec::with_capacity(changes);
    for i in 0..changes {
        sent.push(vigil_ipc::monotonic_ns());
        setup
            .engine
            .ask(|reply| Command::Bypass {
                sensor: "back-door".into(),
                on: i % 2 == 0,
                // Disarmed: a bypass needs no PIN.
                pin: None,
                by: Actor::system(),
                reply,
            })
            .await
            .expect("bypass");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (base, sent)
}

/// Latencies in microseconds from each change to each delivery of it.
fn latencies(
    base: u64,
    sent: &[u64],
    deliveries: impl IntoIterator<Item = (u64, u64)>,
) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new(3).expect("histogram");
    for (seq, at) in deliveries {
        if let Some(&t0) = sent.get((seq - base - 1) as usize) {
            h.record((at.saturating_sub(t0) / 1000).max(1))
                .expect("record");
        }
    }
    h
}

/// The fan-out with the subscribers in a child process.
async fn fan_out_process(
    setup: &Setup,
    addr: &str,
    subscribers: usize,
    changes: usize,
) -> Histogram<u64> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let dir = tempfile::tempdir().expect("dir");
    let (ca, cert, key) = client_pems(&setup.pki);
    for (f, pem) in [("ca.pem", ca), ("client.pem", cert), ("client.key", key)] {
        std::fs::write(dir.path().join(f), pem).expect("write");
    }
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .arg("--fanout-child")
        .arg(addr)
        .arg(dir.path())
        .arg(subscribers.to_string())
        .arg(changes.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("child");
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).await.expect("ready");
    let (base, sent) = send_changes(setup, changes).await;
    let mut text = String::new();
    stdout.read_to_string(&mut text).await.expect("results");
    child.wait().await.expect("child");
    let deliveries = text.lines().filter_map(|l| {
        let (seq, at) = l.split_once(' ')?;
        Some((seq.parse().ok()?, at.parse().ok()?))
    });
    latencies(base, &sent, deliveries)
}

/// The fan-out with the subscribers in this process.
async fn fan_out(
    setup: &Setup,
    addr: &str,
    tls: &ClientTlsConfig,
    subscribers: usize,
    changes: usize,
) -> Histogram<u64> {
    let ready = Arc::new(Barrier::new(subscribers + 1));
    let tasks = subscribe_all(addr, tls, subscribers, changes, Arc::clone(&ready)).await;
    ready.wait().await;
    let (base, sent) = send_changes(setup, changes).await;
    let mut deliveries = Vec::new();
    for t in tasks {
        deliveries.extend(t.await.expect("subscriber"));
    }
    latencies(base, &sent, deliveries)
}

async fn channel(addr: &str, tls: Option<&ClientTlsConfig>) -> Channel {
    let endpoint = match tls {
        Some(tls) => Endpoint::from_shared(format!("https://{addr}"))
            .expect("uri")
            .tls_config(tls.clone())
            .expect("tls"),
        None => Endpoint::from_shared(format!("http://{addr}")).expect("uri"),
    };
    endpoint.connect().await.expect("connect")
}

/// Runs GetStatus from `connections` x `per_connection` concurrent callers
/// for `duration`; returns (requests per second, latency histogram in us).
async fn get_status_load(
    addr: &str,
    tls: Option<&ClientTlsConfig>,
    connections: usize,
    per_connection: usize,
    duration: Duration,
) -> (f64, Histogram<u64>) {
    let mut tasks = Vec::new();
    let start = Arc::new(Barrier::new(connections * per_connection));
    for _ in 0..connections {
        let channel = channel(addr, tls).await;
        for _ in 0..per_connection {
            let mut client = AlarmServiceClient::new(channel.clone());
            let start = Arc::clone(&start);
            tasks.push(tokio::spawn(async move {
                let mut h = Histogram::<u64>::new(3).expect("histogram");
                start.wait().await;
                let end = Instant::now() + duration;
                while Instant::now() < end {
                    let t = Instant::now();
                    client
                        .get_status(pb::GetStatusRequest {})
                        .await
                        .expect("GetStatus");
                    h.record(t.elapsed().as_micros() as u64).expect("record");
                }
                h
            }));
        }
    }
    let mut all = Histogram::<u64>::new(3).expect("histogram");
    for t in tasks {
        all.add(t.await.expect("task")).expect("add");
    }
    (all.len() as f64 / duration.as_secs_f64(), all)
}

/// The runtime of the benchmark and of its fan-out child: 2 worker threads.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// One GetStatus load's row: requests per second, p50 and p99 in us.
fn print_load(label: &str, rps: f64, latencies: &Histogram<u64>) {
    println!(
        "{label:<48} {rps:>10.0} {:>10} {:>10}",
        latencies.value_at_quantile(0.5),
        latencies.value_at_quantile(0.99)
    );
}

/// One fan-out's line: its 1 000 subscribers' latencies in ms, then `note`.
fn print_fan_out(place: &str, changes: usize, latencies: &Histogram<u64>, note: &str) {
    let ms = |us: u64| us as f64 / 1000.0;
    println!(
        "WatchEvents to 1 000 subscribers in {place} over TLS ({changes} changes, {} deliveries): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms{note}",
        latencies.len(),
        ms(latencies.value_at_quantile(0.5)),
        ms(latencies.value_at_quantile(0.99)),
        ms(latencies.max())
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--fanout-child") {
        return fanout_child(&args[i + 1..]);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let duration = if quick {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(8)
    };
    let runtime = runtime();
    runtime.block_on(async {
        let setup = setup();
        let tls_addr = start(&setup, Auth::Certificates(Arc::clone(&setup.pki))).await;
        let plain_addr = start(&setup, Auth::OpenForBenchmarks).await;
        let tls = client_tls(&setup.pki);

        println!("Vigil gRPC benchmark ({} s of load each, 2 worker threads, client in the same process)", duration.as_secs());
        let (plain_rps, plain) = get_status_load(&plain_addr, None, 4, 32, duration).await;
        let (tls_rps, secure) = get_status_load(&tls_addr, Some(&tls), 4, 32, duration).await;
        println!(
            "{:<48} {:>10} {:>10} {:>10}",
            "GetStatus, 4 connections x 32 in flight", "req/s", "p50 us", "p99 us"
        );
        print_load("  TLS + client certificate (the hub)", tls_rps, &secure);
        print_load("  plaintext, no auth (baseline)", plain_rps, &plain);
        println!("  TLS / plaintext throughput: {:.2}x (target: TLS >= 30 000 req/s)", tls_rps / plain_rps);

        let changes = if quick { 20 } else { 50 };
        let fan_apart = fan_out_process(&setup, &tls_addr, 1000, changes).await;
        print_fan_out("another process", changes, &fan_apart, " (target p99 <= 10 ms)");
        let fan = fan_out(&setup, &tls_addr, &tls, 1000, changes).await;
        print_fan_out("this process", changes, &fan, "");
    });
}

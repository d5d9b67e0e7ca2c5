//! Vigil on MQTT, measured end to end through a real Mosquitto (TLS, the
//! ACL of docs/mqtt.md) with the real hub, sensord and bridge:
//!
//! - a Zigbee sensor's message (as zigbee2mqtt publishes it) at the broker
//!   until the hub's event for it reaches a WatchEvents client, beside a
//!   bare publish-to-subscribe through the same broker in the same run;
//! - an MQTT arm command (as Home Assistant sends it) until the armed
//!   state is published back on `alarm/state`;
//! - the bridge's resident memory, idle after the runs.
//!
//! cargo build --release --workspace --bins
//! cargo bench -p vigil-e2e --bench mqtt [-- --quick]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use rumqttc::{AsyncClient, Event, Packet, QoS};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use vigil_config::MqttConfig;
use vigil_e2e::mqtt::{Broker, House, User};

use vigil_proto::v1 as pb;

const HOUSE: &str = r#"
[gpio]
backend = "simulated"

[[sensors]]
name = "front-door"
kind = "door"
pin = 17
debounce_ms = 10

[[sensors]]
name = "garage-door"
kind = "door"
source = "zigbee2mqtt"
friendly_name = "garage_contact"
debounce_ms = 0

[alarm.modes.home]
exit_delay_secs = 0

[telemetry]
log_format = "json"
log_filter = "info"
"#;

/// A client of the broker as `user`, and what it receives (with the
/// instant it arrived).
async fn client(
    broker: &Broker,
    dir: &Path,
    user: User,
    subscribe: &[String],
) -> Result<(
    AsyncClient,
    mpsc::UnboundedReceiver<(Instant, String, Vec<u8>)>,
)> {
    let credentials = dir.join(format!("{}.credentials", user.name()));
    std::fs::write(
        &credentials,
        format!("{}:{}\n", user.name(), user.password()),
    )?;
    let config = MqttConfig {
        host: "localhost".into(),
        port: broker.port,
        ca_file: Some(broker.ca_file()),
        client_cert: None,
        credentials_file: Some(credentials),
        base_topic: "vigil".into(),
        discovery_prefix: String::new(),
        zigbee2mqtt_topic: "zigbee2mqtt".into(),
        hub: None,
        hub_credentials: PathBuf::new(),
        keypads: Vec::new(),
    };
    let options = vigil_mqtt::broker::options(&config, &format!("bench-{}", user.name()), None)?;
    let (client, mut eventloop) = vigil_mqtt::broker::client(options, 64);
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let filters = subscribe.to_vec();
    let sub_client = client.clone();
    tokio::spawn(async move {
        let mut ready = Some(ready_tx);
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    for f in &filters {
                        let _ = sub_client.subscribe(f.clone(), QoS::AtMostOnce).await;
                    }
                    if filters.is_empty()
                        && let Some(r) = ready.take()
                    {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let _ = tx.send((Instant::now(), p.topic, p.payload.to_vec()));
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("bench client {}: {e}", user.name());
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("the bench's MQTT client never got ready")??;
    Ok((client, rx))
}

type Received = mpsc::UnboundedReceiver<(Instant, String, Vec<u8>)>;

/// When `seen` next carries `want`.
async fn wait_payload(seen: &mut Received, want: &str) -> Result<Instant> {
    loop {
        let (at, _, payload) = tokio::time::timeout(Duration::from_secs(10), seen.recv())
            .await
            .with_context(|| format!("alarm/state never said {want}"))?
            .context("closed")?;
        if payload == want.as_bytes() {
            return Ok(at);
        }
    }
}

/// When the next event of `kind` arrives.
async fn wait_kind(
    events: &mut mpsc::UnboundedReceiver<(Instant, pb::Event)>,
    kind: &str,
) -> Result<Instant> {
    loop {
        let (at, event) = tokio::time::timeout(Duration::from_secs(10), events.recv())
            .await
            .with_context(|| format!("no {kind} event"))?
            .context("the event stream ended")?;
        if event.kind == kind {
            return Ok(at);
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds")
}

fn row(name: &str, h: &Histogram<u64>) {
    println!(
        "{name:<58} p50 {:>8.1} us  p99 {:>8.1} us  p99.9 {:>8.1} us  max {:>8.1} us  (n = {})",
        h.value_at_quantile(0.5) as f64,
        h.value_at_quantile(0.99) as f64,
        h.value_at_quantile(0.999) as f64,
        h.max() as f64,
        h.len()
    );
}

/// A field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field}"))
}

/// "9.4 MiB (9.9 MB; anonymous 0.8 MiB, the rest the mapped binary and libraries)".
fn rss(pid: u32) -> Result<String> {
    let (total, anon) = (status_kib(pid, "VmRSS")?, status_kib(pid, "RssAnon")?);
    anyhow::ensure!(total > 0, "no RSS");
    Ok(format!(
        "{:.1} MiB ({:.1} MB; anonymous {:.1} MiB, the rest the mapped binary and libraries)",
        total as f64 / 1024.0,
        total as f64 * 1024.0 / 1e6,
        anon as f64 / 1024.0
    ))
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let samples: usize = if quick { 200 } else { 1000 };
    // The house (with TEST_ALARM's alice, PIN 2468) and the bridge.
    let house = House::start(HOUSE, "")?;
    let (broker, stack, hub_id) = (&house.broker, &house.stack, house.hub_id.clone());
    // Idle as at home: connected to both sides, discovery published,
    // nothing happening for 3 s.
    std::thread::sleep(Duration::from_secs(3));
    let idle_before = rss(house.bridge.pid())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let dir = stack.root.path().to_owned();
    let credentials = stack.credentials_dir();
    runtime.block_on(async move {
        let creds = vigilctl::remote::Credentials::locate(Some(credentials));
        let (channel, _) = vigilctl::remote::connect(&creds, None).await?;
        let mut alarm = pb::alarm_service_client::AlarmServiceClient::new(channel);
        let mut stream = alarm
            .watch_events(pb::WatchEventsRequest { after_seq: None })
            .await?
            .into_inner();
        let (events_tx, mut events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(Ok(event)) = stream.next().await {
                let _ = events_tx.send((Instant::now(), event));
            }
        });
        let (z2m, _) = client(broker, &dir, User::Zigbee2mqtt, &[]).await?;
        let baseline_topic = "zigbee2mqtt/bench_baseline".to_owned();
        let (_observer, mut observed) = client(
            broker,
            &dir,
            User::Observer,
            std::slice::from_ref(&baseline_topic),
        )
        .await?;
        let state_topic = format!("vigil/{hub_id}/alarm/state");
        let (ha, mut ha_seen) = client(
            broker,
            &dir,
            User::HomeAssistant,
            std::slice::from_ref(&state_topic),
        )
        .await?;

        // 1. A Zigbee door's message to the hub's event, and the bare
        //    publish-to-subscribe beside it.
        let (mut to_hub, mut bare) = (histogram(), histogram());
        for i in 0..samples * 2 {
            let open = i % 2 == 0;
            let payload = format!(r#"{{"battery":100,"contact":{},"linkquality":120}}"#, !open);
            let sent = Instant::now();
            z2m.publish(
                "zigbee2mqtt/garage_contact",
                QoS::AtMostOnce,
                false,
                payload.clone(),
            )
            .await?;
            let want = if open { 2 } else { 1 };
            loop {
                let (at, event) = tokio::time::timeout(Duration::from_secs(5), events.recv())
                    .await
                    .context("no event for the Zigbee door")?
                    .context("the event stream ended")?;
                if event.kind == "sensor"
                    && event.sensor == "garage-door"
                    && event.sensor_state == want
                {
                    to_hub.record(at.duration_since(sent).as_micros() as u64)?;
                    break;
                }
            }
            let sent = Instant::now();
            z2m.publish(&baseline_topic, QoS::AtMostOnce, false, payload)
                .await?;
            let (at, _, _) = tokio::time::timeout(Duration::from_secs(5), observed.recv())
                .await
                .context("the baseline message never came")?
                .context("closed")?;
            bare.record(at.duration_since(sent).as_micros() as u64)?;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }

        // 2. ARM_HOME (no exit delay) until `armed_home` is published back;
        //    DISARM with the code in between (not measured: a PIN check is
        //    an argon2 hash on purpose).
        let mut arm = histogram();
        let mut arm_at_hub = histogram();
        while events.try_recv().is_ok() {}
        let command = format!("vigil/{hub_id}/alarm/set");
        for _ in 0..samples / 4 {
            let sent = Instant::now();
            ha.publish(
                &command,
                QoS::AtMostOnce,
                false,
                r#"{"action": "ARM_HOME", "code": "None"}"#,
            )
            .await?;
            let at = wait_payload(&mut ha_seen, "armed_home").await?;
            arm.record(at.duration_since(sent).as_micros() as u64)?;
            // Where the time goes: the hub's `armed` event, as a
            // WatchEvents client of its own sees it.
            let hub_at = wait_kind(&mut events, "armed").await?;
            arm_at_hub.record(hub_at.duration_since(sent).as_micros() as u64)?;
            ha.publish(
                &command,
                QoS::AtMostOnce,
                false,
                r#"{"action": "DISARM", "code": "2468"}"#,
            )
            .await?;
            wait_payload(&mut ha_seen, "disarmed").await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        // 3. The same without MQTT: Arm over gRPC until the `armed` event
        //    reaches a WatchEvents client (the hub's own part of 2).
        while events.try_recv().is_ok() {}
        let mut grpc_arm = histogram();
        for _ in 0..samples / 4 {
            let sent = Instant::now();
            alarm
                .arm(pb::ArmRequest {
                    mode: pb::Mode::Home as i32,
                    force: false,
                    pin: String::new(),
                })
                .await?;
            let at = wait_kind(&mut events, "armed").await?;
            grpc_arm.record(at.duration_since(sent).as_micros() as u64)?;
            alarm
                .disarm(pb::DisarmRequest { pin: "2468".into() })
                .await?;
            wait_kind(&mut events, "disarmed").await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        println!(
            "MQTT ({} samples; {})",
            samples,
            if quick { "--quick" } else { "full" }
        );
        row(
            "Zigbee message at the broker -> the hub's event (WatchEvents)",
            &to_hub,
        );
        row("baseline: bare publish -> subscribe, same broker", &bare);
        println!(
            "ratio p50 {:.2}x, p99 {:.2}x",
            to_hub.value_at_quantile(0.5) as f64 / bare.value_at_quantile(0.5).max(1) as f64,
            to_hub.value_at_quantile(0.99) as f64 / bare.value_at_quantile(0.99).max(1) as f64
        );
        row("MQTT ARM_HOME -> armed_home published back", &arm);
        row(
            "  of which: the MQTT command -> the hub's armed event",
            &arm_at_hub,
        );
        row(
            "baseline: gRPC Arm(home) -> the armed event (WatchEvents)",
            &grpc_arm,
        );
        println!(
            "ratio p50 {:.2}x, p99 {:.2}x",
            arm.value_at_quantile(0.5) as f64 / grpc_arm.value_at_quantile(0.5).max(1) as f64,
            arm.value_at_quantile(0.99) as f64 / grpc_arm.value_at_quantile(0.99).max(1) as f64
        );
        anyhow::Ok(())
    })?;
    std::thread::sleep(Duration::from_secs(3));
    println!("vigil-mqttd idle RSS, before the runs: {idle_before}");
    println!(
        "vigil-mqttd idle RSS, 3 s after the runs: {}",
        rss(house.bridge.pid())?
    );
    println!(
        "vigil-sensord RSS (one Zigbee sensor, its MQTT client): {}",
        rss(house.sensord.pid())?
    );
    Ok(())
}

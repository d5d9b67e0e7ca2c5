//! The hub's cost per forwarded camera stream, beside a raw-socket sink of
//! the same bytes; the latency from a camera's write to the hub's fan-out;
//! the memory of a full ring buffer.
//!
//! `cargo bench -p vigil-hub --bench camera` (`-- --quick`: 4 s instead of 12).
//!
//! The frames are real 1080p30 H.264 (videotestsrc through x264enc, encoded
//! once before the run); a child process plays four cameras, each sending
//! them at 30 frames/s with the send time as the timestamp, over the
//! encrypted link (Noise NNpsk0, ChaChaPoly); the baseline's camera sends
//! the same frames unencrypted to a sink that only reads them.

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_alarm::users::Users;
use vigil_camlink::{Key, Message, Sealer, camera_handshake};
use vigil_config::{CameraConfig, Config};
use vigil_hub::cameras::{CameraHub, serve};
use vigil_hub::engine::Engine;
use vigil_hub::persist::StateStore;

const CAMERAS: usize = 4;
const FPS: u64 = 30;
const RING_SECS: u64 = 10;

fn cpu_seconds() -> f64 {
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .expect("getrusage");
    let t = |tv: nix::sys::time::TimeVal| tv.tv_sec() as f64 + tv.tv_usec() as f64 / 1e6;
    t(usage.user_time()) + t(usage.system_time())
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Encodes 1080p30 frames once: (key, bytes) of each access unit.
fn encode_frames() -> Vec<(bool, Vec<u8>)> {
    let camera = CameraConfig::test_pattern("bench", 1920, 1080, 30, 4000);
    let units = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = Arc::clone(&units);
    let pipeline = vigil_media::Camera::start(
        // Noise: as hard to compress as a busy scene, so the encoder runs at
        // its bitrate (the ball pattern would need a tenth of it).
        &vigil_media::camera_launch(&camera).replace("pattern=ball", "pattern=snow"),
        move |u| sink.lock().expect("lock").push((u.key, u.data.to_vec())),
        |reason| eprintln!("encoder: {reason}"),
    )
    .expect("encoder");
    let start = Instant::now();
    while units.lock().expect("lock").len() < 90 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(pipeline);
    units.lock().expect("lock").clone()
}

/// The camera side of the link's handshake, as camera `cam<i>`: the
/// encrypted link's sending half.
async fn handshake(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    i: usize,
) -> Sealer {
    let name = format!("cam{i}");
    let key = Key::new(&format!("key{i}")).expect("key");
    let (mut sealer, mut opener) = camera_handshake(read, write, &key)
        .await
        .expect("handshake");
    let hello = Message::Hello {
        camera: name,
        width: 1920,
        height: 1080,
        fps: 30,
    };
    sealer.send(write, &hello).await.expect("hello");
    let Message::Welcome { .. } = opener.read(read).await.expect("welcome") else {
        panic!("not welcomed")
    };
    sealer
}

/// Reads and drops what the hub sends (no commands are expected).
fn drain(mut read: tokio::net::tcp::OwnedReadHalf) {
    tokio::spawn(async move {
        let mut sink = vec![0u8; 4096];
        while matches!(read.read(&mut sink).await, Ok(n) if n > 0) {}
    });
}

/// The child in live mode: one real camera (videotestsrc, x264enc
/// zerolatency, 720p30) as `cam0`, each frame stamped with the wall-clock
/// time it was captured (the pipeline's start plus its running time), for
/// `seconds`.
fn live_client(port: u16, seconds: u64) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (mut read, mut write) = stream.into_split();
        let mut sealer = handshake(&mut read, &mut write, 0).await;
        drain(read);
        let (units_tx, mut units) = tokio::sync::mpsc::unbounded_channel();
        let camera = CameraConfig::test_pattern("cam0", 1280, 720, 30, 2000);
        let started = now_us();
        let pipeline = vigil_media::Camera::start(
            &vigil_media::camera_launch(&camera),
            move |u| {
                let _ = units_tx.send(u);
            },
            |reason| eprintln!("camera: {reason}"),
        )
        .expect("camera");
        let end = tokio::time::Instant::now() + Duration::from_secs(seconds);
        while let Ok(Some(unit)) = tokio::time::timeout_at(end, units.recv()).await {
            let message = Message::Frame {
                pts_us: started + unit.pts_us,
                key: unit.key,
                data: unit.data.to_vec(),
            };
            sealer.send(&mut write, &message).await.expect("send");
        }
        drop(pipeline);
        write.shutdown().await.ok();
    });
}

/// The child: four cameras sending `frames` at 30 fps for `seconds`.
fn client(port: u16, raw: bool, seconds: u64, frames_file: &str) {
    let mut bytes = Vec::new();
    std::fs::File::open(frames_file)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .expect("frames");
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let n =
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]) as usize;
        frames.push((bytes[at + 4] == 1, bytes[at + 5..at + 5 + n].to_vec()));
        at += 5 + n;
    }
    let frames = Arc::new(frames);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..CAMERAS {
            let frames = Arc::clone(&frames);
            tasks.push(tokio::spawn(async move {
                let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let (mut read, mut write) = stream.into_split();
                // The raw baseline sends the same frames unencrypted.
                let mut sealer = None;
                if !raw {
                    sealer = Some(handshake(&mut read, &mut write, i).await);
                    drain(read);
                }
                let start = tokio::time::Instant::now();
                let total = seconds * FPS;
                for n in 0..total {
                    tokio::time::sleep_until(start + Duration::from_micros(n * 1_000_000 / FPS))
                        .await;
                    let (key, data) = &frames[(n as usize) % frames.len()];
                    let message = Message::Frame {
                        pts_us: now_us(),
                        key: *key,
                        data: data.clone(),
                    };
                    match sealer.as_mut() {
                        Some(sealer) => sealer.send(&mut write, &message).await.expect("send"),
                        None => write.write_all(&message.encode()).await.expect("send"),
                    }
                }
                write.shutdown().await.ok();
            }));
        }
        for t in tasks {
            t.await.expect("camera task");
        }
    });
}

fn spawn_client(
    port: u16,
    raw: bool,
    seconds: u64,
    frames_file: &std::path::Path,
) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--client",
            &port.to_string(),
            if raw { "raw" } else { "hub" },
            &seconds.to_string(),
            &frames_file.display().to_string(),
        ])
        .spawn()
        .expect("client")
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--live") {
        live_client(
            args[i + 1].parse().expect("port"),
            args[i + 2].parse().expect("seconds"),
        );
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--client") {
        client(
            args[i + 1].parse().expect("port"),
            args[i + 2] == "raw",
            args[i + 3].parse().expect("seconds"),
            &args[i + 4],
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let seconds = if quick { 4 } else { 12 };
    let dir = tempfile::tempdir().expect("dir");

    let frames = encode_frames();
    let bytes: usize = frames.iter().map(|(_, d)| d.len()).sum();
    let bitrate = bytes as f64 * 8.0 / (frames.len() as f64 / FPS as f64) / 1e6;
    let frames_file = dir.path().join("frames.bin");
    {
        let mut f = std::fs::File::create(&frames_file).expect("frames file");
        for (key, data) in &frames {
            f.write_all(&(data.len() as u32).to_be_bytes())
                .expect("write");
            f.write_all(&[u8::from(*key)]).expect("write");
            f.write_all(data).expect("write");
        }
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Baseline: a raw TCP sink reading the same bytes.
    let raw_cpu = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let before = cpu_seconds();
        let started = Instant::now();
        let mut child = spawn_client(port, true, seconds, &frames_file);
        let mut readers = Vec::new();
        for _ in 0..CAMERAS {
            let (mut s, _) = listener.accept().await.expect("accept");
            readers.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 64 << 10];
                let mut total = 0usize;
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    total += n;
                }
                total
            }));
        }
        for r in readers {
            r.await.expect("reader");
        }
        child.wait().expect("client");
        (cpu_seconds() - before) / started.elapsed().as_secs_f64()
    });

    // The hub's camera server, in this process.
    let cameras_toml: String = (0..CAMERAS)
        .map(|i| {
            format!(
                "[[cameras]]\nname = \"cam{i}\"\nsource = \"test\"\nwidth = 1920\nheight = 1080\n\
                 framerate = 30\nkey = \"key{i}\"\n"
            )
        })
        .collect();
    let toml = format!(
        "[gpio]\nbackend = \"simulated\"\n{cameras_toml}\n[runtime]\nruntime_dir = {:?}\n\
         state_dir = {:?}\n[recording]\nlisten = \"127.0.0.1:0\"\nring_secs = {RING_SECS}\n\
         pre_roll_secs = 5\nsemaphore = \"/vigil-bench-{}\"\nbeacon = \"off\"\n",
        dir.path().join("run").display().to_string(),
        dir.path().join("state").display().to_string(),
        std::process::id()
    );
    let config = Config::parse(&toml, "bench").expect("config");
    let (hub_cpu, latencies, rings, capture) = runtime.block_on(async {
        std::fs::create_dir_all(&config.runtime.state_dir).expect("state");
        let engine = Engine::new(
            vigil_hub::alarm_setup(&config),
            Users::new(Vec::new(), Default::default()),
            Default::default(),
        );
        let handle = vigil_hub::spawn_engine(engine, StateStore::new(&config.runtime.state_dir));
        let hub = CameraHub::new(&config, handle);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("udp");
        tokio::spawn(serve(
            Arc::clone(&hub),
            listener,
            udp,
            std::future::pending(),
        ));
        // One live viewer per camera: the fan-out is part of the cost, and
        // it measures the latency.
        let latencies = Arc::new(std::sync::Mutex::new(Vec::new()));
        let before = cpu_seconds();
        let started = Instant::now();
        let mut child = spawn_client(port, false, seconds, &frames_file);
        let mut viewers = Vec::new();
        for i in 0..CAMERAS {
            let name = format!("cam{i}");
            // The camera's entry exists from the start; subscribe at once.
            let (_, mut live) = hub.watch(&name).expect("watch");
            let latencies = Arc::clone(&latencies);
            viewers.push(tokio::spawn(async move {
                let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 5);
                while let Ok(Ok(frame)) = tokio::time::timeout_at(deadline, live.recv()).await {
                    let latency = now_us().saturating_sub(frame.unit.pts_us);
                    latencies.lock().expect("lock").push(latency);
                }
            }));
        }
        tokio::task::spawn_blocking(move || child.wait().expect("client"))
            .await
            .expect("join");
        let cpu = (cpu_seconds() - before) / started.elapsed().as_secs_f64();
        for v in viewers {
            v.abort();
        }
        let rings: Vec<(f64, u64)> = hub
            .list()
            .iter()
            .map(|c| (c.buffered_seconds, c.buffered_bytes))
            .collect();
        let mut l = latencies.lock().expect("lock").clone();
        l.sort_unstable();

        // Capture to hub: one real camera process (capture, x264 encode,
        // the link) into the same server, stamped at capture.
        let (_, mut live) = hub.watch("cam0").expect("watch");
        let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
            .args(["--live", &port.to_string(), &seconds.to_string()])
            .spawn()
            .expect("live camera");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds + 10);
        let mut capture = Vec::new();
        let mut first: Option<Instant> = None;
        while let Ok(Ok(frame)) = tokio::time::timeout_at(deadline, live.recv()).await {
            // Skip the encoder's first second (it starts up).
            let since = *first.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_secs(1) {
                capture.push(now_us().saturating_sub(frame.unit.pts_us));
            }
            if capture.len() as u64 >= (seconds - 1) * FPS - 15 {
                break;
            }
        }
        tokio::task::spawn_blocking(move || child.wait().expect("live camera"))
            .await
            .expect("join");
        capture.sort_unstable();
        (cpu, l, rings, capture)
    });

    println!(
        "Vigil camera path: {CAMERAS} cameras x 1080p{FPS} H.264 ({bitrate:.1} Mbit/s each), {seconds} s"
    );
    println!(
        "hub (camera server + one live viewer per camera): {:>6.2} % of one core ({:.2} % per stream)",
        hub_cpu * 100.0,
        hub_cpu * 100.0 / CAMERAS as f64
    );
    println!(
        "baseline, raw TCP sink of the same bytes:         {:>6.2} % of one core",
        raw_cpu * 100.0
    );
    println!("ratio: {:.2}x the raw sink", hub_cpu / raw_cpu.max(1e-9));
    if !latencies.is_empty() {
        println!(
            "camera write -> hub fan-out latency over {} frames: p50 {} us, p99 {} us, max {} us",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            latencies[latencies.len() - 1]
        );
    }
    if !capture.is_empty() {
        println!(
            "capture -> hub (one live 720p30 camera: videotestsrc, x264enc zerolatency, the link) over {} frames: p50 {:.1} ms, p99 {:.1} ms",
            capture.len(),
            percentile(&capture, 0.5) as f64 / 1000.0,
            percentile(&capture, 0.99) as f64 / 1000.0
        );
    }
    // The run's recording semaphore (glibc: /dev/shm/sem.<name>).
    let _ = std::fs::remove_file(format!("/dev/shm/sem.vigil-bench-{}", std::process::id()));
    for (i, (secs, bytes)) in rings.iter().enumerate() {
        println!(
            "ring cam{i}: {secs:.1} s buffered, {:.2} MiB ({:.2} MiB per 10 s)",
            *bytes as f64 / (1 << 20) as f64,
            *bytes as f64 / (1 << 20) as f64 * 10.0 / secs.max(0.1)
        );
    }
}

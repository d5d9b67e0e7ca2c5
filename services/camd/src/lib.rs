//! camd: one camera. Captures and encodes with GStreamer
//! ([`vigil_media::Camera`]) and streams the access units to the hub over
//! the camera link ([`vigil_camlink`]), where the camera is the client.
//!
//! Owns: the camera pipeline (restarted with backoff when it fails, e.g. a
//! camera unplugged mid-frame), the connection to the hub (reconnected with
//! backoff; capture goes on while the hub is away, frames are dropped until
//! it is back), the hub's commands (start, stop, key frame, bitrate) with
//! their acknowledgements, and the signed UDP heartbeat every second, bound
//! to the latest connection the hub accepted and numbered on it (so the hub
//! can refuse a replayed one).
//!
//! Must never: block on the hub (frames go through a bounded queue to the
//! connection's writer; when it is full, frames are dropped and counted),
//! send its key (the Noise handshake proves it), or send anything in clear
//! (a hub of the clear-text version 1 is refused, never fallen back to).

#![forbid(unsafe_code)]

mod error;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vigil_camlink::{CommandKind, Key, LinkError, Message};
use vigil_config::{CameraConfig, Config};
use vigil_media::{AccessUnit, Camera};

pub use crate::error::CamdError;

/// Frames waiting for the connection's writer: about 4 s at 30 fps.
const SEND_QUEUE: usize = 128;
/// `hub = "discover"`: find the hub by its UDP beacon.
pub const DISCOVER: &str = "discover";
/// The heartbeat period.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// The longest wait between reconnection attempts: a camera is back within
/// a second of its hub.
const MAX_BACKOFF: Duration = Duration::from_millis(500);
/// The wait after the hub refused the camera or could not prove its key
/// (a configuration problem: no point in knocking faster).
const REFUSED_BACKOFF: Duration = Duration::from_secs(5);
/// The longest the handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// What camd runs with.
#[derive(Debug, Clone)]
pub struct Setup {
    pub camera: CameraConfig,
    pub key: Key,
}

impl Setup {
    /// Picks the camera and reads its key.
    pub fn from_config(config: &Config, name: Option<&str>) -> Result<Setup, CamdError> {
        let camera = match name {
            Some(n) => config
                .cameras
                .iter()
                .find(|c| c.name == n)
                .ok_or_else(|| CamdError::UnknownCamera(n.to_owned()))?,
            None => match config.cameras.as_slice() {
                [] => return Err(CamdError::NoCamera),
                [one] => one,
                many => {
                    let names: Vec<&str> = many.iter().map(|c| c.name.as_str()).collect();
                    return Err(CamdError::WhichCamera(names.join(", ")));
                }
            },
        };
        let key = match (&camera.key_file, &camera.key) {
            (Some(path), _) => Key::from_file(path),
            (None, Some(text)) => Key::new(text),
            (None, None) => return Err(CamdError::NoKey(camera.name.clone())),
        }
        .map_err(|source| CamdError::Key {
            camera: camera.name.clone(),
            source,
        })?;
        Ok(Setup {
            camera: camera.clone(),
            key,
        })
    }
}

/// What the pipeline and the connection tell the main loop.
enum Input {
    Unit(AccessUnit),
    Failed(String),
}

/// A live connection to the hub.
struct Link {
    /// To the writer task (frames and acks).
    outgoing: mpsc::Sender<Message>,
    /// Whether the hub wants frames (Start/Stop).
    streaming: bool,
    /// The link's id the hub sent in its welcome: the heartbeats name it.
    id: [u8; 32],
}

/// Connects to `hub`, runs the encrypted handshake (the hub proves it
/// holds the key before the camera sends anything but its first handshake
/// message), says hello, and starts the reader and writer. Nothing is ever
/// sent in clear: a hub of the clear-text version 1 is refused.
async fn connect(setup: &Setup, hub: &str) -> Result<(Link, mpsc::Receiver<Message>), LinkError> {
    let stream = tokio::time::timeout(HANDSHAKE, TcpStream::connect(hub))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    let (mut read, mut write) = stream.into_split();
    let handshake = async {
        let (mut sealer, mut opener) =
            vigil_camlink::camera_handshake(&mut read, &mut write, &setup.key).await?;
        let hello = Message::Hello {
            camera: setup.camera.name.clone(),
            width: u16::try_from(setup.camera.width).unwrap_or(u16::MAX),
            height: u16::try_from(setup.camera.height).unwrap_or(u16::MAX),
            fps: u8::try_from(setup.camera.framerate).unwrap_or(u8::MAX),
        };
        sealer.send(&mut write, &hello).await?;
        match opener.read(&mut read).await? {
            Message::Welcome { link } => Ok((link, sealer, opener)),
            Message::Refused { reason } => Err(LinkError::Refused(reason)),
            _ => Err(LinkError::Unexpected("not a welcome")),
        }
    };
    let (id, mut sealer, mut opener) = tokio::time::timeout(HANDSHAKE, handshake)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "handshake timed out"))??;

    let (outgoing, mut to_send) = mpsc::channel::<Message>(SEND_QUEUE);
    tokio::spawn(async move {
        while let Some(m) = to_send.recv().await {
            if let Err(e) = sealer.send(&mut write, &m).await {
                warn!("lost the hub while sending: {e}");
                return;
            }
        }
    });
    let (received, incoming) = mpsc::channel::<Message>(16);
    tokio::spawn(async move {
        loop {
            match opener.read(&mut read).await {
                Ok(m) => {
                    if received.send(m).await.is_err() {
                        return;
                    }
                }
                Err(LinkError::Closed) => return,
                Err(e) => {
                    warn!("the hub's side of the link: {e}");
                    return;
                }
            }
        }
    });
    Ok((
        Link {
            outgoing,
            streaming: true,
            id,
        },
        incoming,
    ))
}

/// Starts the pipeline, feeding `inputs`.
fn start_camera(setup: &Setup, inputs: &mpsc::Sender<Input>) -> Result<Camera, CamdError> {
    let launch = vigil_media::camera_launch(&setup.camera);
    let units = inputs.clone();
    let failures = inputs.clone();
    info!(pipeline = %launch, "starting the camera");
    Ok(Camera::start(
        &launch,
        move |unit| {
            // Full: the main loop is behind; this frame is dropped.
            let _ = units.try_send(Input::Unit(unit));
        },
        move |reason| {
            let _ = failures.blocking_send(Input::Failed(reason));
        },
    )?)
}

/// Runs the camera until `shutdown` resolves.
pub async fn run(setup: Setup, shutdown: impl Future<Output = ()>) -> Result<(), CamdError> {
    vigil_media::init()?;
    let (inputs, mut input_rx) = mpsc::channel::<Input>(64);
    let mut camera = Some(start_camera(&setup, &inputs)?);
    let mut camera_backoff = Duration::from_millis(500);
    let mut camera_retry: Option<tokio::time::Instant> = None;

    let udp = UdpSocket::bind(if setup.camera.hub.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    })
    .await
    .map_err(|source| CamdError::Udp {
        what: "the heartbeat socket".into(),
        source,
    })?;
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    // The link the heartbeats name (the latest connection the hub accepted,
    // kept while reconnecting) and their number on it.
    let mut beat_link: Option<[u8; 32]> = None;
    let mut beat_seq: u64 = 0;

    // Where the hub is: configured, or learnt from its beacon.
    let discover = setup.camera.hub == DISCOVER;
    let mut hub_address: Option<String> = (!discover).then(|| setup.camera.hub.clone());
    let beacons = if discover {
        let port = setup.camera.discovery_port;
        let socket = UdpSocket::bind(("0.0.0.0", port))
            .await
            .map_err(|source| CamdError::Udp {
                what: format!("the discovery port {port} (cameras[].discovery_port)"),
                source,
            })?;
        info!(port, "waiting for the hub's discovery beacon");
        Some(socket)
    } else {
        None
    };
    let mut beacon_buf = vec![0u8; 256];
    let mut link: Option<Link> = None;
    // From the connection's reader task; closed when the connection ends.
    let mut incoming_rx: Option<mpsc::Receiver<Message>> = None;
    let mut link_backoff = Duration::from_millis(100);
    let mut next_connect = tokio::time::Instant::now();
    let mut dropped: u64 = 0;
    tokio::pin!(shutdown);

    loop {
        let incoming = async {
            match incoming_rx.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = &mut shutdown => break,
            input = input_rx.recv() => match input {
                Some(Input::Unit(unit)) => {
                    if let Some(l) = link.as_ref().filter(|l| l.streaming) {
                        let frame = Message::Frame {
                            pts_us: unit.pts_us,
                            key: unit.key,
                            data: unit.data.to_vec(),
                        };
                        if l.outgoing.try_send(frame).is_err() {
                            dropped += 1;
                            if dropped.is_power_of_two() {
                                warn!(dropped, "the hub is not keeping up; dropping frames");
                            }
                        }
                    }
                }
                Some(Input::Failed(reason)) => {
                    error!(
                        camera = %setup.camera.name,
                        "the camera failed: {reason}; restarting it in {camera_backoff:?}"
                    );
                    camera = None;
                    camera_retry = Some(tokio::time::Instant::now() + camera_backoff);
                    camera_backoff = (camera_backoff * 2).min(Duration::from_secs(30));
                }
                None => break,
            },
            message = incoming => match message {
                Some(Message::Command { id, kind }) => {
                    let (ok, text) = match (kind, camera.as_ref(), link.as_mut()) {
                        (_, _, None) => continue,
                        (CommandKind::Start, _, Some(l)) => { l.streaming = true; (true, "streaming".to_owned()) }
                        (CommandKind::Stop, _, Some(l)) => { l.streaming = false; (true, "stopped".to_owned()) }
                        (CommandKind::KeyFrame, Some(c), _) => (c.request_key_frame(), "key frame requested".to_owned()),
                        (CommandKind::Bitrate(kbps), Some(c), _) => {
                            if c.set_bitrate(kbps) { (true, format!("bitrate {kbps} kbit/s")) }
                            else { (false, "this encoder's bitrate is fixed".to_owned()) }
                        }
                        (_, None, _) => (false, "the camera is restarting".to_owned()),
                    };
                    if let Some(l) = link.as_ref() {
                        let _ = l.outgoing.try_send(Message::Ack { id, ok, message: text });
                    }
                }
                Some(other) => warn!(message = other.name(), "unexpected message from the hub; ignored"),
                None => {
                    warn!("lost the connection to the hub; reconnecting (capture goes on)");
                    link = None;
                    incoming_rx = None;
                    next_connect = tokio::time::Instant::now() + link_backoff;
                }
            },
            received = async {
                match beacons.as_ref() {
                    Some(b) => b.recv_from(&mut beacon_buf).await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok((n, from)) = received
                    && let Some(port) = vigil_camlink::parse_beacon(&beacon_buf[..n])
                {
                    let found = SocketAddr::new(from.ip(), port).to_string();
                    if hub_address.as_deref() != Some(found.as_str()) {
                        info!(hub = %found, "found the hub by its beacon");
                        hub_address = Some(found);
                        next_connect = tokio::time::Instant::now();
                    }
                }
            },
            () = tokio::time::sleep_until(next_connect), if link.is_none() && hub_address.is_some() => {
                let hub = hub_address.clone().unwrap_or_default();
                match connect(&setup, &hub).await {
                    Ok((l, rx)) => {
                        info!(%hub, "connected to the hub");
                        beat_link = Some(l.id);
                        beat_seq = 0;
                        incoming_rx = Some(rx);
                        if let Some(c) = &camera {
                            // Let the hub's ring start without waiting a GOP.
                            c.request_key_frame();
                        }
                        link = Some(l);
                        link_backoff = Duration::from_millis(100);
                    }
                    Err(e @ (LinkError::HubNotProven | LinkError::OldVersion(_))) => {
                        error!(%hub, "{e}; retrying in {REFUSED_BACKOFF:?}");
                        link_backoff = REFUSED_BACKOFF;
                        next_connect = tokio::time::Instant::now() + link_backoff;
                    }
                    Err(LinkError::Refused(reason)) => {
                        // The reason is the peer's (not yet proven the hub): escaped.
                        let reason = vigil_domain::text::excerpt(&reason);
                        error!(%hub, "the hub refused this camera: {reason}; check that key_file holds the same secret on both sides");
                        link_backoff = REFUSED_BACKOFF;
                        next_connect = tokio::time::Instant::now() + link_backoff;
                    }
                    Err(e) => {
                        warn!(%hub, "cannot reach the hub: {e}; retrying in {link_backoff:?}");
                        next_connect = tokio::time::Instant::now() + link_backoff;
                        link_backoff = (link_backoff * 2).min(MAX_BACKOFF);
                    }
                }
            },
            () = async { match camera_retry { Some(t) => tokio::time::sleep_until(t).await, None => std::future::pending().await } } => {
                camera_retry = None;
                match start_camera(&setup, &inputs) {
                    Ok(c) => { camera = Some(c); camera_backoff = Duration::from_millis(500); }
                    Err(e) => {
                        error!("cannot restart the camera: {e}; retrying in {camera_backoff:?}");
                        camera_retry = Some(tokio::time::Instant::now() + camera_backoff);
                        camera_backoff = (camera_backoff * 2).min(Duration::from_secs(30));
                    }
                }
            },
            _ = heartbeat.tick() => {
                // None before the first connection: the hub would refuse it.
                let Some(link) = beat_link.as_ref() else { continue };
                beat_seq += 1;
                let beat = vigil_camlink::heartbeat(&setup.key, &setup.camera.name, link, beat_seq);
                // Best effort: a lost heartbeat is what the hub watches for.
                if let Some(hub) = hub_address.as_deref()
                    && let Ok(Some(addr)) = tokio::net::lookup_host(hub).await.map(|mut a| a.next())
                {
                    let _: Result<usize, _> = udp.send_to(beat.as_bytes(), addr).await;
                }
            },
        }
    }
    drop(camera);
    info!("stopped");
    Ok(())
}

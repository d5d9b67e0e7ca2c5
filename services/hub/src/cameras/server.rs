//! The camera link's server side: TCP connections (one task each) and the
//! UDP heartbeats.
//!
//! A connection that has not proven the key is a stranger's: it holds a
//! place in [`CAMERA_HANDSHAKES`] (the oldest goes when they are full), has
//! [`HANDSHAKE`] to prove the key, and may send frames of
//! [`vigil_camlink::MAX_HANDSHAKE_FRAME`] at most. Only then is it a
//! camera's, with frames up to [`vigil_camlink::MAX_FRAME`]; a camera's new
//! connection ends its previous one. A heartbeat counts only if it names
//! the camera's latest link with a number past the last one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{debug, info, warn};
use vigil_camlink::{FrameReader, LinkError, Message, Stale, write_message};
use vigil_domain::text::excerpt;
use vigil_media::AccessUnit;

use super::CameraHub;
use crate::listen::{
    AcceptBackoff, CAMERA_HANDSHAKES, LogBudget, Pool, Ticket, keepalive, peer_of,
};

/// The longest a camera may take to answer the challenge.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// What the server logs at most a few times a minute.
#[derive(Debug, Default)]
struct Logs {
    /// Connections dropped before their key was proven.
    strangers: LogBudget,
    /// Heartbeats refused as replays, or of the old version.
    heartbeats: LogBudget,
}

/// Accepts cameras on `listener` and heartbeats on `udp` until
/// `shutdown` resolves.
pub async fn serve(
    hub: Arc<CameraHub>,
    listener: TcpListener,
    udp: UdpSocket,
    shutdown: impl Future<Output = ()>,
) {
    let logs = Arc::new(Logs::default());
    tokio::select! {
        () = shutdown => {}
        () = accept(Arc::clone(&hub), listener, Arc::clone(&logs)) => {}
        () = heartbeats(&hub, udp, &logs) => {}
    }
}

async fn accept(hub: Arc<CameraHub>, listener: TcpListener, logs: Arc<Logs>) {
    let strangers = Pool::new(CAMERA_HANDSHAKES);
    let mut backoff = AcceptBackoff::new("cameras");
    loop {
        let (stream, peer) = backoff.next(|| listener.accept()).await;
        let Some(ticket) = strangers.admit(peer_of(peer)) else {
            continue;
        };
        let (hub, logs) = (Arc::clone(&hub), Arc::clone(&logs));
        tokio::spawn(async move { connection(hub, stream, peer, ticket, logs).await });
    }
}

async fn heartbeats(hub: &CameraHub, udp: UdpSocket, logs: &Logs) {
    let mut datagram = vec![0u8; 512];
    loop {
        if let Ok((n, peer)) = udp.recv_from(&mut datagram).await {
            heartbeat(hub, &datagram[..n], peer, logs);
        }
    }
}

/// Broadcasts the discovery beacon every two seconds to `to`, announcing
/// `port`, for cameras configured with `hub = "discover"`.
pub async fn beacon(to: SocketAddr, port: u16) {
    let bind: SocketAddr = if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            warn!("no discovery beacon: {e}");
            return;
        }
    };
    if let Err(e) = socket.set_broadcast(true) {
        warn!("no discovery beacon (broadcast refused): {e}");
        return;
    }
    let text = vigil_camlink::beacon(port);
    let mut every = tokio::time::interval(Duration::from_secs(2));
    let mut warned = false;
    loop {
        every.tick().await;
        if let Err(e) = socket.send_to(text.as_bytes(), to).await
            && !warned
        {
            warn!(%to, "cannot send the discovery beacon: {e}; cameras must name the hub");
            warned = true;
        }
    }
}

fn heartbeat(hub: &CameraHub, datagram: &[u8], peer: SocketAddr, logs: &Logs) {
    let taken = {
        let mut cameras = hub.lock();
        let verified = vigil_camlink::verify_heartbeat(datagram, |name| {
            cameras.get(name).and_then(|c| c.key.as_ref())
        });
        verified.map(|beat| {
            let fresh = match cameras.get_mut(&beat.camera) {
                Some(c) => c.beats.accept(&beat),
                None => Err(Stale::NoLink),
            };
            (beat.camera, fresh)
        })
    };
    match taken {
        Some((camera, Ok(()))) => hub.seen(&camera),
        Some((camera, Err(Stale::Replayed { seq, last }))) => {
            if let Some(suppressed) = logs.heartbeats.allow() {
                warn!(
                    %peer,
                    %camera,
                    seq,
                    last,
                    suppressed,
                    "ignored a replayed heartbeat (its number is not past the last one taken)"
                );
            }
        }
        Some((camera, Err(stale))) => {
            debug!(%peer, %camera, ?stale, "ignored a heartbeat of another link");
        }
        None if vigil_camlink::is_v1_heartbeat(datagram) => {
            if let Some(suppressed) = logs.heartbeats.allow() {
                warn!(
                    %peer,
                    suppressed,
                    "ignored a version-1 heartbeat (it could be replayed): update vigil-camd on \
                     this camera"
                );
            }
        }
        None => debug!(%peer, "ignored a datagram that is not a valid heartbeat"),
    }
}

/// Proves the peer's key within [`HANDSHAKE`]: (camera, size, the camera's
/// nonce). Frames stay small until it has.
async fn handshake(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    reader: &mut FrameReader,
    nonce: &[u8; 32],
) -> Result<(String, (u32, u32, u32), [u8; 32], [u8; 32]), LinkError> {
    write_message(write, &Message::Challenge { nonce: *nonce }).await?;
    match reader.read(read).await? {
        Message::Hello {
            camera,
            width,
            height,
            fps,
            answer,
            nonce,
        } => Ok((
            camera,
            (u32::from(width), u32::from(height), u32::from(fps)),
            answer,
            nonce,
        )),
        _ => Err(LinkError::Unexpected("not a hello")),
    }
}

async fn connection(
    hub: Arc<CameraHub>,
    stream: TcpStream,
    peer: SocketAddr,
    stranger: Ticket<std::net::IpAddr>,
    logs: Arc<Logs>,
) {
    let _ = stream.set_nodelay(true);
    keepalive(&stream);
    let (mut read, mut write) = stream.into_split();
    let mut reader = FrameReader::default();
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let dropped = |why: String| {
        if let Some(suppressed) = logs.strangers.allow() {
            warn!(%peer, suppressed, "dropped a camera connection before its hello: {why}");
        }
    };
    let hello = tokio::select! {
        hello = tokio::time::timeout(
            HANDSHAKE,
            handshake(&mut read, &mut write, &mut reader, &nonce),
        ) => hello,
        () = stranger.stopped() => {
            dropped("it made room for newer connections".to_owned());
            return;
        }
    };
    let (camera, size, answer, camera_nonce) = match hello {
        Ok(Ok(hello)) => hello,
        Ok(Err(e)) => {
            dropped(e.to_string());
            return;
        }
        Err(_) => {
            dropped(format!("no hello within {HANDSHAKE:?}"));
            return;
        }
    };
    let refuse = |reason: String| Message::Refused { reason };
    // The name is the peer's until its key is proven: only ever shown as an
    // excerpt (escaped, short), so a newline in it cannot forge a log line.
    let shown = excerpt(&camera);
    let verdict = match hub.key(&camera) {
        None => Err(format!(
            "no camera named {shown} with a key is configured on the hub"
        )),
        Some(key) if !key.verify(&nonce, &camera, &answer) => Err(format!(
            "the key of camera {shown} does not match the hub's"
        )),
        // The hub proves the key in turn, answering the camera's nonce.
        Some(key) => Ok(key.hub_proof(&camera_nonce, &camera)),
    };
    let proof = match verdict {
        Ok(proof) => proof,
        Err(reason) => {
            if let Some(suppressed) = logs.strangers.allow() {
                warn!(%peer, camera = %shown, suppressed, "refused a camera: {reason}");
            }
            let _ = write_message(&mut write, &refuse(reason)).await;
            return;
        }
    };
    // A camera now: its place among strangers is given back, and it may
    // send frames of any size up to the link's limit.
    drop(stranger);
    reader.authenticated();
    let Some((id, mut commands)) = hub.connect(&camera, size, nonce) else {
        return;
    };
    if write_message(&mut write, &Message::Welcome { proof })
        .await
        .is_err()
    {
        hub.disconnect(&camera, id);
        return;
    }
    info!(%peer, %camera, width = size.0, height = size.1, fps = size.2, "camera connected");
    // Ends when the connection is replaced (its command channel closes) or
    // a write fails; either way the connection is over.
    let mut writer = tokio::spawn(async move {
        while let Some(m) = commands.recv().await {
            if write_message(&mut write, &m).await.is_err() {
                return;
            }
        }
    });
    let why = loop {
        let read = tokio::select! {
            read = reader.read(&mut read) => read,
            _ = &mut writer => break "replaced by a newer connection, or not writable".to_owned(),
        };
        match read {
            Ok(Message::Frame { pts_us, key, data }) => hub.on_frame(
                &camera,
                AccessUnit {
                    pts_us,
                    key,
                    data: Arc::from(data),
                },
            ),
            Ok(Message::Ack { id, ok, message }) => hub.on_ack(&camera, id, ok, message),
            Ok(_) => break "a message only the hub sends".to_owned(),
            Err(LinkError::Closed) => break "it closed the connection".to_owned(),
            Err(e) => break e.to_string(),
        }
    };
    writer.abort();
    hub.disconnect(&camera, id);
    warn!(%peer, %camera, "camera disconnected: {why}");
}

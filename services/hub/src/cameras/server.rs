//! The camera link's server side: TCP connections (one task each) and the
//! UDP heartbeats.
//!
//! Every connection is encrypted (Noise, keyed by the camera's key:
//! `vigil_camlink::secure`); the camera is known by the key that opens its
//! handshake, and its hello must name that camera. A connection that has
//! not proven the key is a stranger's: it holds a place in
//! [`CAMERA_HANDSHAKES`] (the oldest goes when they are full), has
//! [`HANDSHAKE`] to prove the key, and may send messages of
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
use vigil_camlink::{Key, LinkError, Message, Opener, Sealer, Stale};
use vigil_domain::text::excerpt;
use vigil_media::AccessUnit;

use super::CameraHub;
use crate::listen::{
    AcceptBackoff, CAMERA_HANDSHAKES, LogBudget, Pool, Ticket, peer_of, tune_accepted,
};

/// The longest a camera may take to make the handshake and say hello.
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

/// The encrypted handshake and the camera's hello, within [`HANDSHAKE`]:
/// (the camera whose key opened the handshake, its hello, the link's
/// halves). Messages stay small until the key is proven.
async fn handshake(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    write: &mut tokio::net::tcp::OwnedWriteHalf,
    keys: &[(String, Key)],
) -> Result<(String, Message, Sealer, Opener), LinkError> {
    let (camera, sealer, mut opener) = vigil_camlink::hub_handshake(read, write, keys).await?;
    // The first transport message decrypts only with this connection's
    // keys (the hub's fresh ephemeral key is in them): it proves the
    // camera's key, where the handshake's first message alone could be
    // replayed.
    let hello = opener.read(read).await?;
    Ok((camera, hello, sealer, opener))
}

async fn connection(
    hub: Arc<CameraHub>,
    stream: TcpStream,
    peer: SocketAddr,
    stranger: Ticket<std::net::IpAddr>,
    logs: Arc<Logs>,
) {
    tune_accepted(&stream);
    let (mut read, mut write) = stream.into_split();
    let dropped = |why: String| {
        if let Some(suppressed) = logs.strangers.allow() {
            warn!(%peer, suppressed, "dropped a camera connection before its hello: {why}");
        }
    };
    let keys = hub.keys();
    let hello = tokio::select! {
        hello = tokio::time::timeout(
            HANDSHAKE,
            handshake(&mut read, &mut write, &keys),
        ) => hello,
        () = stranger.stopped() => {
            dropped("it made room for newer connections".to_owned());
            return;
        }
    };
    let (camera, hello, mut sealer, mut opener) = match hello {
        Ok(Ok(hello)) => hello,
        Ok(Err(LinkError::Closed)) => {
            dropped(
                "it closed the connection before its hello (a vigil-camd of the clear-text link \
                 version 1 closes so on reading this hub's banner: update it)"
                    .to_owned(),
            );
            return;
        }
        Ok(Err(e @ LinkError::NoKeyOpens)) => {
            // Told to the camera too (in clear: there is no key to encrypt
            // with, and the reason holds no secret).
            if let Some(suppressed) = logs.strangers.allow() {
                warn!(%peer, suppressed, "refused a camera: {e}");
            }
            return;
        }
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
    let verdict = match hello {
        Message::Hello {
            camera: named,
            width,
            height,
            fps,
        } => {
            if named == camera {
                Ok((u32::from(width), u32::from(height), u32::from(fps)))
            } else {
                // The name is the peer's: only ever shown as an excerpt
                // (escaped, short), so a newline in it cannot forge a log
                // line.
                Err((
                    excerpt(&named),
                    format!(
                        "it proved the key of camera {camera:?} but calls itself {}",
                        excerpt(&named)
                    ),
                ))
            }
        }
        other => Err((
            excerpt(&camera),
            format!("its first message was a {}, not a hello", other.name()),
        )),
    };
    let size = match verdict {
        Ok(size) => size,
        Err((shown, reason)) => {
            if let Some(suppressed) = logs.strangers.allow() {
                warn!(%peer, camera = %shown, suppressed, "refused a camera: {reason}");
            }
            let _ = sealer.send(&mut write, &refuse(reason)).await;
            return;
        }
    };
    // A camera now: its place among strangers is given back, and it may
    // send frames of any size up to the link's limit.
    drop(stranger);
    opener.authenticated();
    // The link's id, fresh for each connection: the camera's heartbeats
    // name it, so one captured on an older connection is worth nothing.
    let mut link = [0u8; 32];
    rand::rng().fill_bytes(&mut link);
    let Some((id, mut commands)) = hub.connect(&camera, size, link) else {
        return;
    };
    if sealer
        .send(&mut write, &Message::Welcome { link })
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
            if sealer.send(&mut write, &m).await.is_err() {
                return;
            }
        }
    });
    let why = loop {
        let read = tokio::select! {
            read = opener.read(&mut read) => read,
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

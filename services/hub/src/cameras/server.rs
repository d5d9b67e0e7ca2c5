//! The camera link's server side: TCP connections (one task each) and the
//! UDP heartbeats.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand::RngCore;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tracing::{info, warn};
use vigil_camlink::{FrameReader, LinkError, Message, write_message};
use vigil_media::AccessUnit;

use super::CameraHub;

/// The longest a camera may take to answer the challenge.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// Accepts cameras on `listener` and heartbeats on `udp` until
/// `shutdown` resolves.
pub async fn serve(
    hub: Arc<CameraHub>,
    listener: TcpListener,
    udp: UdpSocket,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut datagram = vec![0u8; 512];
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let hub = Arc::clone(&hub);
                    tokio::spawn(async move { connection(hub, stream, peer).await });
                }
                Err(e) => {
                    warn!("camera server: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            received = udp.recv_from(&mut datagram) => {
                if let Ok((n, peer)) = received {
                    heartbeat(&hub, &datagram[..n], peer);
                }
            }
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

fn heartbeat(hub: &CameraHub, datagram: &[u8], peer: SocketAddr) {
    let verified = {
        let cameras = hub.lock();
        vigil_camlink::verify_heartbeat(datagram, |name| {
            cameras.get(name).and_then(|c| c.key.as_ref())
        })
    };
    match verified {
        Some((camera, _seq)) => hub.seen(&camera),
        None => tracing::debug!(%peer, "ignored a datagram that is not a valid heartbeat"),
    }
}

async fn connection(hub: Arc<CameraHub>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut read, mut write) = stream.into_split();
    let mut reader = FrameReader::default();
    let mut nonce = [0u8; 32];
    rand::rng().fill_bytes(&mut nonce);
    let handshake = async {
        write_message(&mut write, &Message::Challenge { nonce }).await?;
        match reader.read(&mut read).await? {
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
    };
    let (camera, size, answer, camera_nonce) =
        match tokio::time::timeout(HANDSHAKE, handshake).await {
            Ok(Ok(hello)) => hello,
            Ok(Err(e)) => {
                warn!(%peer, "dropped a camera connection before its hello: {e}");
                return;
            }
            Err(_) => {
                warn!(%peer, "dropped a camera connection: no hello within {HANDSHAKE:?}");
                return;
            }
        };
    let refuse = |reason: String| Message::Refused { reason };
    let verdict = match hub.key(&camera) {
        None => Err(format!(
            "no camera named {camera:?} with a key is configured on the hub"
        )),
        Some(key) if !key.verify(&nonce, &camera, &answer) => Err(format!(
            "the key of camera {camera:?} does not match the hub's"
        )),
        // The hub proves the key in turn, answering the camera's nonce.
        Some(key) => Ok(key.hub_proof(&camera_nonce, &camera)),
    };
    let proof = match verdict {
        Ok(proof) => proof,
        Err(reason) => {
            warn!(%peer, %camera, "refused a camera: {reason}");
            let _ = write_message(&mut write, &refuse(reason)).await;
            return;
        }
    };
    let Some((id, mut commands)) = hub.connect(&camera, size) else {
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
    let writer = tokio::spawn(async move {
        while let Some(m) = commands.recv().await {
            if write_message(&mut write, &m).await.is_err() {
                return;
            }
        }
    });
    let why = loop {
        match reader.read(&mut read).await {
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

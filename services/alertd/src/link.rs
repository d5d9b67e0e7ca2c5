//! alertd's session with the hub: it joins as `alertd` (which makes the
//! hub post undelivered alerts again) and reports each delivered alert,
//! with the delivery token it read from the queue.
//! Reconnects by itself; reports made while the hub is away are dropped
//! (a restarted hub has nothing in flight to clear).

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;
use tracing::{debug, info};
use vigil_bootstrap::{ServiceMessage, ServiceRole};

use crate::Delivered;

const STEP_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(socket: PathBuf, mut delivered: mpsc::UnboundedReceiver<Delivered>) {
    let mut retry = Duration::from_millis(50);
    loop {
        let path = socket.clone();
        let joined = tokio::task::spawn_blocking(move || {
            vigil_bootstrap::connect(&path, ServiceRole::Alertd, STEP_TIMEOUT)
        })
        .await;
        let session = match joined {
            Ok(Ok(session)) => session,
            Ok(Err(e)) => {
                debug!("cannot join the hub yet: {e}");
                // Drain reports meanwhile: nobody to tell.
                while delivered.try_recv().is_ok() {}
                tokio::time::sleep(retry).await;
                // At most half a second: back within a second of the hub.
                retry = (retry * 2).min(Duration::from_millis(500));
                continue;
            }
            Err(_) => return,
        };
        retry = Duration::from_millis(50);
        info!(session = session.welcome.session, "joined the hub");
        // The hub's end of the session closing is seen on the next send.
        while let Some(Delivered { id, token }) = delivered.recv().await {
            // The send blocks when the hub stops reading (its socket
            // full): on a blocking thread, so that alertd's one thread
            // goes on handing alerts to the hooks meanwhile.
            let to_hub = session.to_hub.clone();
            let sent = tokio::task::spawn_blocking(move || {
                to_hub.send(ServiceMessage::AlertDelivered { id, token })
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                info!("lost the hub; rejoining");
                break;
            }
        }
    }
}

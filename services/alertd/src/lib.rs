//! alertd: alerts into notifications.
//!
//! Owns: the reading end of the hub's POSIX alert queue, dedupe (by the
//! alert's id) and a cooldown per source, the hook programs (each a
//! long-lived child fed JSON lines on its stdin through a pipe, see
//! [`hooks`]), the webhook ([`webhook`]), and telling the hub which alerts
//! are delivered (over its ipc-channel session, [`link`]).
//!
//! Must never: let one slow, hung or crashing hook delay another or the
//! webhook (each has its own task and queue), or lose an alarm-priority
//! alert: an alert is reported delivered only once every hook has it on its
//! stdin and the webhook has answered (or been given up on), and the hub
//! posts undelivered ones again when alertd rejoins.

#![forbid(unsafe_code)]

mod error;
pub mod hooks;
mod link;
pub mod webhook;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::mpsc;
use tracing::{debug, error, info, warn};
use vigil_alerts::AlertMessage;
use vigil_config::Config;
use vigil_domain::AlertPriority;
use vigil_ipc::mqueue::{MessageQueue, QueueError};

pub use crate::error::AlertdError;

/// Ids remembered for dedupe.
const RECENT_IDS: usize = 4096;

/// Counts the deliveries of one alert still outstanding; the last one
/// reports the alert delivered to the hub.
#[derive(Debug)]
pub struct Completion {
    report: Delivered,
    remaining: AtomicUsize,
    delivered: mpsc::UnboundedSender<Delivered>,
}

impl Completion {
    /// One delivery (a hook or the webhook) is done, or given up on.
    pub fn complete(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let _ = self.delivered.send(self.report.clone());
        }
    }
}

/// What alertd tells the hub about one delivered alert: its id and the
/// delivery token read with it from the queue (the hub's proof that the
/// report comes from a reader of the queue).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    pub id: String,
    pub token: String,
}

/// One alert on its way to one destination.
#[derive(Clone, Debug)]
pub struct Delivery {
    pub alert: Arc<AlertMessage>,
    pub done: Arc<Completion>,
    /// The alert's span (a child of the hub's span that raised it, when
    /// traced): every destination's delivery is a child of it.
    pub span: tracing::Span,
}

/// Remembers recent ids and the last delivery per source.
#[derive(Debug, Default)]
struct Filter {
    ids: HashSet<String>,
    order: VecDeque<String>,
    last_by_source: HashMap<(String, String), u64>,
}

impl Filter {
    /// Why `alert` should not be delivered, if it should not.
    fn reject(&mut self, alert: &AlertMessage, cooldown_ms: u64) -> Option<String> {
        if self.ids.contains(&alert.id) {
            return Some("a repeat of an alert already delivered".into());
        }
        self.ids.insert(alert.id.clone());
        self.order.push_back(alert.id.clone());
        if self.order.len() > RECENT_IDS
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        // The cooldown is per sensor and kind; alarms always go through.
        let sensor = alert.sensor.as_ref()?;
        if alert.priority() == AlertPriority::Alarm {
            return None;
        }
        let key = (alert.kind.clone(), sensor.clone());
        let last = self.last_by_source.insert(key, alert.unix_ms);
        match last {
            Some(t) if alert.unix_ms.saturating_sub(t) < cooldown_ms => Some(format!(
                "{} on {sensor} again within the {} s cooldown",
                alert.kind,
                cooldown_ms / 1000
            )),
            _ => None,
        }
    }
}

/// The operator's line for an alert taken from the queue.
fn log_alert(alert: &AlertMessage, destinations: usize) {
    info!(
        id = %alert.id,
        priority = %alert.priority,
        kind = %alert.kind,
        destinations,
        trace_id = alert.trace_id.as_deref().unwrap_or(""),
        "alert: {}",
        alert.title
    );
}

/// Runs alertd until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), AlertdError> {
    tokio::pin!(shutdown);
    // The configuration's own problems (an unreadable webhook secret) are
    // found before waiting for anything: they need the operator, not the
    // hub.
    let webhook = config
        .webhook
        .as_ref()
        .map(webhook::Webhook::new)
        .transpose()?;
    // The hub makes the queue (it owns it); alertd waits for it.
    let mut told = false;
    let queue = loop {
        match MessageQueue::open_existing(
            &config.alerts.queue,
            config.alerts.depth,
            config.alerts.msg_size,
        ) {
            Ok(queue) => break queue,
            Err(QueueError::Missing { .. }) => {
                if !told {
                    info!(queue = %config.alerts.queue, "waiting for the hub to make the alert queue");
                    told = true;
                }
                tokio::select! {
                    () = &mut shutdown => return Ok(()),
                    () = tokio::time::sleep(std::time::Duration::from_millis(200)) => {}
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let (delivered_tx, delivered_rx) = mpsc::unbounded_channel::<Delivered>();
    let link = tokio::spawn(link::run(config.runtime.hub_socket(), delivered_rx));

    let mut destinations: Vec<(String, mpsc::Sender<Delivery>)> = Vec::new();
    let mut runners = Vec::new();
    for hook in &config.hooks {
        let (tx, rx) = mpsc::channel(1024);
        runners.push(tokio::spawn(hooks::run(
            hook.clone(),
            rx,
            config.alerts.hook_timeout,
        )));
        destinations.push((format!("hook {}", hook.name), tx));
    }
    let min_webhook = config.webhook.as_ref().map(|w| w.min_priority);
    let webhook_tx = match webhook {
        Some(sender) => {
            let (tx, rx) = mpsc::channel(1024);
            runners.push(tokio::spawn(sender.run(rx)));
            Some(tx)
        }
        None => None,
    };
    info!(
        queue = %config.alerts.queue,
        hooks = config.hooks.len(),
        webhook = config.webhook.is_some(),
        "alertd ready"
    );

    let cooldown_ms = config.alerts.cooldown.as_millis() as u64;
    let mut filter = Filter::default();
    loop {
        let received = tokio::select! {
            () = &mut shutdown => break,
            r = queue.recv() => r,
        };
        let (_priority, bytes) = match received {
            Ok(m) => m,
            Err(e) => {
                error!("cannot read the alert queue: {e}");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
        };
        let (alert, token) = match AlertMessage::decode(&bytes) {
            // The token goes back to the hub only, never to a hook.
            Ok(mut a) => {
                let token = a.take_delivery_token().unwrap_or_default();
                (Arc::new(a), token)
            }
            Err(e) => {
                warn!("dropped a message from the alert queue: {e}");
                continue;
            }
        };
        let report = Delivered {
            id: alert.id.clone(),
            token,
        };
        if let Some(why) = filter.reject(&alert, cooldown_ms) {
            debug!(id = %alert.id, "not delivered: {why}");
            // Still "delivered" for the hub: it need not post it again.
            let _ = delivered_tx.send(report);
            continue;
        }
        let to_webhook = webhook_tx
            .as_ref()
            .filter(|_| min_webhook.is_some_and(|m| alert.priority() >= m));
        let count = destinations.len() + usize::from(to_webhook.is_some());
        let done = Arc::new(Completion {
            report,
            remaining: AtomicUsize::new(count.max(1)),
            delivered: delivered_tx.clone(),
        });
        if count == 0 {
            done.complete();
            log_alert(&alert, count);
            continue;
        }
        let span = tracing::info_span!("alert", id = %alert.id, kind = %alert.kind);
        if let Some(parent) = alert
            .traceparent
            .as_deref()
            .and_then(vigil_domain::TraceContext::from_traceparent)
        {
            vigil_telemetry::set_remote_parent(&span, parent);
        }
        let delivery = Delivery {
            alert: Arc::clone(&alert),
            done,
            span,
        };
        for (name, tx) in destinations
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .chain(to_webhook.map(|t| ("the webhook", t)))
        {
            // A full per-destination queue means that destination is stuck;
            // the others must not wait for it.
            if let Err(mpsc::error::TrySendError::Full(d) | mpsc::error::TrySendError::Closed(d)) =
                tx.try_send(delivery.clone())
            {
                warn!(id = %alert.id, "{name} is 1024 alerts behind or gone; this alert skips it");
                d.done.complete();
            }
        }
        // The hooks write first (this runtime has one thread: they run while
        // this task yields), the log line after: it is not on the alert path.
        tokio::task::yield_now().await;
        log_alert(&alert, count);
    }

    info!("alertd stopping: closing the hooks' input");
    drop(destinations);
    drop(webhook_tx);
    for runner in runners {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), runner).await;
    }
    link.abort();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, priority: &str, sensor: Option<&str>, at: u64) -> AlertMessage {
        AlertMessage {
            id: id.into(),
            priority: priority.into(),
            kind: "fault".into(),
            title: "t".into(),
            message: "m".into(),
            sensor: sensor.map(Into::into),
            unix_ms: at,
            trace_id: None,
            traceparent: None,
            delivery_token: None,
        }
    }

    #[test]
    fn repeats_are_dropped_and_a_source_cools_down_but_alarms_never() {
        let mut f = Filter::default();
        assert!(
            f.reject(&alert("1", "fault", Some("door"), 0), 60_000)
                .is_none()
        );
        assert!(
            f.reject(&alert("1", "fault", Some("door"), 0), 60_000)
                .is_some()
        );
        assert!(
            f.reject(&alert("2", "fault", Some("door"), 1_000), 60_000)
                .is_some()
        );
        assert!(
            f.reject(&alert("3", "fault", Some("door"), 70_000), 60_000)
                .is_none()
        );
        assert!(
            f.reject(&alert("4", "fault", Some("window"), 70_001), 60_000)
                .is_none()
        );
        assert!(
            f.reject(&alert("5", "alarm", Some("door"), 70_002), 60_000)
                .is_none()
        );
        assert!(
            f.reject(&alert("6", "alarm", Some("door"), 70_003), 60_000)
                .is_none()
        );
        assert!(
            f.reject(&alert("7", "info", None, 70_004), 60_000)
                .is_none()
        );
        assert!(
            f.reject(&alert("8", "info", None, 70_005), 60_000)
                .is_none()
        );
    }
}

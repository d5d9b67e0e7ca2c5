//! Posting alerts on the POSIX message queue to alertd.
//!
//! The engine makes alerts; they wait in an outbox until the queue takes
//! them (it is bounded: `[alerts] depth`). When the queue is full, info
//! alerts waiting in the outbox are dropped first, and counted; nothing of
//! a higher priority is ever dropped — it waits for room, which the queue
//! signals as writability.
//!
//! Delivery is at least once: alarm, tamper and fault alerts stay
//! "in flight" until alertd reports them delivered (over its ipc-channel
//! session), and are posted again, with the same id, whenever an alertd
//! (re)joins. alertd drops repeats of ids it has delivered; hooks get the id
//! to do the same.
//!
//! Those alerts also survive the hub: right after they are posted (posting
//! never waits for the disk), the set of undelivered alarm, tamper and
//! fault alerts is written to `<state_dir>/alerts-pending.json` (synced,
//! then renamed into place), and a hub that starts posts what it finds
//! there again. The journal is written before the alarm state that made
//! the alerts is saved (`Hub::apply`), so no saved alarm is ever without
//! its alert; killed between the two, the next hub posts the alert again
//! and finds the state from before it (at least once, never lost). Killed
//! after the post and before the journal, the alert is already in the
//! kernel's queue, which outlives the hub.
//!
//! The queue is the hub's: made exclusively, reused only if it is this
//! user's and closed to others, refused otherwise
//! ([`MessageQueue::create_owned`]). Each alert gets a random delivery
//! token when it enters the outbox (kept with it in the journal, which is
//! mode 0600); the queued message carries it, and [`AlertPoster::delivered`]
//! takes a report only with that token, so only a reader of the queue can
//! clear an alert, and the hub takes reports only from alertd's session.
//! A process that can open the queue for reading (the hub's user; the
//! group's members when the umask leaves them read access) can read the
//! tokens: that is the limit of this proof.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use tracing::{debug, error, warn};
use vigil_alerts::{AlertMessage, queue_priority};
use vigil_config::AlertsConfig;
use vigil_domain::AlertPriority;
use vigil_ipc::mqueue::{MessageQueue, QueueError};

#[derive(Debug)]
pub struct AlertPoster {
    queue: MessageQueue,
    outbox: VecDeque<AlertMessage>,
    /// Posted, waiting for alertd's "delivered" (never info).
    in_flight: BTreeMap<String, AlertMessage>,
    /// Info alerts dropped because the queue was full.
    dropped_info: u64,
    /// Where undelivered non-info alerts are kept across restarts (none in
    /// tests that do not need it).
    journal: Option<PathBuf>,
}

/// The journal's file name in the state directory.
pub const JOURNAL: &str = "alerts-pending.json";

fn write_journal(path: &Path, alerts: &[&AlertMessage]) -> std::io::Result<()> {
    // Private: the journal holds the alerts' delivery tokens.
    let json = serde_json::to_vec(alerts).map_err(std::io::Error::other)?;
    crate::files::replace_private(path, &path.with_extension("json.tmp"), &json)
}

impl AlertPoster {
    /// Opens the queue, given to `group` (alertd's, when it runs under a
    /// uid of its own) to read. Must be called inside a tokio runtime.
    pub fn open(
        config: &AlertsConfig,
        group: Option<nix::unistd::Gid>,
    ) -> Result<AlertPoster, QueueError> {
        Ok(AlertPoster {
            queue: MessageQueue::create_owned(&config.queue, config.depth, config.msg_size, group)?,
            outbox: VecDeque::new(),
            in_flight: BTreeMap::new(),
            dropped_info: 0,
            journal: None,
        })
    }

    /// Keeps undelivered alerts in `<state_dir>/alerts-pending.json`, and
    /// takes back the ones a previous hub left there (to be posted again,
    /// same ids).
    pub fn with_journal(mut self, state_dir: &Path) -> AlertPoster {
        let path = state_dir.join(JOURNAL);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<Vec<AlertMessage>>(&bytes) {
                Ok(pending) if !pending.is_empty() => {
                    warn!(
                        count = pending.len(),
                        "alerts the last hub had not seen delivered: posting them again (same ids)"
                    );
                    self.outbox.extend(pending.into_iter().map(with_token));
                }
                Ok(_) => {}
                Err(e) => error!(
                    "{} is damaged ({e}); undelivered alerts from before this start are lost",
                    path.display()
                ),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => error!("cannot read {}: {e}", path.display()),
        }
        self.journal = Some(path);
        self
    }

    /// Writes the undelivered non-info alerts to the journal (synced).
    pub fn save_journal(&self) {
        let Some(path) = &self.journal else { return };
        let pending: Vec<&AlertMessage> = self
            .in_flight
            .values()
            .chain(
                self.outbox
                    .iter()
                    .filter(|a| a.priority() > AlertPriority::Info),
            )
            .collect();
        if let Err(e) = write_journal(path, &pending) {
            error!(
                "cannot keep undelivered alerts in {}: {e}; a hub restart now would lose them",
                path.display()
            );
        }
    }

    /// Posts `alerts` at once (what the queue does not take waits in the
    /// outbox); returns whether any must be journaled
    /// ([`AlertPoster::save_journal`]), which the caller does next.
    pub fn post(&mut self, alerts: Vec<AlertMessage>) -> bool {
        if alerts.is_empty() {
            return false;
        }
        let important = alerts.iter().any(|a| a.priority() > AlertPriority::Info);
        self.outbox.extend(alerts.into_iter().map(with_token));
        self.flush();
        important
    }

    /// Whether alerts wait for room in the queue.
    pub fn waiting(&self) -> bool {
        !self.outbox.is_empty()
    }

    pub fn dropped_info(&self) -> u64 {
        self.dropped_info
    }

    /// Posts what the queue takes.
    pub fn flush(&mut self) {
        while let Some(alert) = self.outbox.front() {
            let bytes = match alert.encode(self.queue.msg_size()) {
                Ok(b) => b,
                Err(e) => {
                    error!(id = %alert.id, "cannot post an alert: {e}");
                    self.outbox.pop_front();
                    continue;
                }
            };
            match self
                .queue
                .try_send(queue_priority(alert.priority()), &bytes)
            {
                Ok(Ok(())) => {
                    // The monotonic clock lets the alert-path bench place
                    // the post between the change and the hook.
                    debug!(
                        id = %alert.id,
                        kind = %alert.kind,
                        mono_ns = vigil_ipc::monotonic_ns(),
                        "alert posted"
                    );
                    if let Some(alert) = self.outbox.pop_front()
                        && alert.priority() > AlertPriority::Info
                    {
                        self.in_flight.insert(alert.id.clone(), alert);
                    }
                }
                Ok(Err(_full)) => {
                    let before = self.outbox.len();
                    self.outbox.retain(|a| a.priority() > AlertPriority::Info);
                    let dropped = (before - self.outbox.len()) as u64;
                    if dropped > 0 {
                        self.dropped_info += dropped;
                        warn!(
                            dropped,
                            total_dropped = self.dropped_info,
                            "the alert queue is full (is alertd running?): dropped info alerts; \
                             alarms, tamper and faults wait for room"
                        );
                    }
                    return;
                }
                Err(e) => {
                    error!("cannot post alerts: {e}; they wait in the outbox");
                    return;
                }
            }
        }
    }

    /// Waits until the queue has room.
    pub async fn writable(&self) {
        if let Err(e) = self.queue.writable().await {
            error!("the alert queue cannot be polled: {e}");
            std::future::pending::<()>().await;
        }
    }

    /// alertd reports `id` delivered, proving it read the alert with the
    /// alert's `token`; a report without the right token changes nothing.
    pub fn delivered(&mut self, id: &str, token: &str) {
        let Some(alert) = self.in_flight.get(id) else {
            return;
        };
        let proven = alert
            .delivery_token
            .as_deref()
            .is_some_and(|t| vigil_alerts::tokens_match(t, token));
        if !proven {
            warn!(
                id = %vigil_domain::text::excerpt(id),
                "ignored a delivery report without the alert's delivery token: whoever sent it \
                 did not read the alert from the queue; it stays undelivered"
            );
            return;
        }
        self.in_flight.remove(id);
        self.save_journal();
    }

    /// An alertd (re)joined: post every undelivered alert again, same ids.
    pub fn repost_in_flight(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        warn!(
            count = self.in_flight.len(),
            "alertd rejoined: posting undelivered alerts again (same ids)"
        );
        let again: Vec<AlertMessage> = std::mem::take(&mut self.in_flight).into_values().collect();
        for alert in again.into_iter().rev() {
            self.outbox.push_front(alert);
        }
        self.flush();
    }
}

/// `alert` with a delivery token (a new one unless it has one).
fn with_token(mut alert: AlertMessage) -> AlertMessage {
    if alert.delivery_token.is_none() {
        alert.delivery_token = Some(vigil_alerts::random_hex128());
    }
    alert
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn alert(id: &str, priority: AlertPriority) -> AlertMessage {
        AlertMessage {
            id: id.into(),
            priority: priority.as_str().into(),
            kind: "k".into(),
            title: "t".into(),
            message: "m".into(),
            sensor: None,
            unix_ms: 0,
            trace_id: None,
            traceparent: None,
            delivery_token: None,
        }
    }

    /// A fresh queue `/vigil-hub-<name>-<pid>` of `depth` 1 KiB messages,
    /// with no cooldown or hook.
    fn fresh_queue(name: &str, depth: i64) -> AlertsConfig {
        let config = AlertsConfig {
            queue: format!("/vigil-hub-{name}-{}", std::process::id()),
            depth,
            msg_size: 1024,
            cooldown: Duration::ZERO,
            hook_timeout: Duration::ZERO,
            group: None,
        };
        MessageQueue::unlink(&config.queue);
        config
    }

    #[tokio::test]
    async fn a_full_queue_drops_info_first_and_keeps_alarms_for_later() {
        let config = fresh_queue("test", 2);
        let mut poster = AlertPoster::open(&config, None).expect("open");
        let journal = poster.post(vec![
            alert("i1", AlertPriority::Info),
            alert("i2", AlertPriority::Info),
            alert("a1", AlertPriority::Alarm),
            alert("i3", AlertPriority::Info),
            alert("f1", AlertPriority::Fault),
        ]);
        assert!(journal, "an alarm and a fault are journaled");
        // Two fit; the rest: info dropped and counted, alarm and fault wait.
        assert_eq!(poster.dropped_info(), 1);
        assert!(poster.waiting());
        let reader = MessageQueue::open_existing(&config.queue, 2, 1024).expect("reader");
        for want in ["i1", "i2"] {
            let (_, bytes) = reader.recv().await.expect("recv");
            assert_eq!(AlertMessage::decode(&bytes).expect("alert").id, want);
        }
        poster.writable().await;
        poster.flush();
        assert!(!poster.waiting());
        // The queue hands out the alarm before the fault.
        let ids: Vec<String> = [reader.recv().await, reader.recv().await]
            .into_iter()
            .map(|r| AlertMessage::decode(&r.expect("recv").1).expect("alert").id)
            .collect();
        assert_eq!(ids, ["a1", "f1"]);
        // Undelivered ones are posted again, with the same ids, for a new
        // alertd. A report counts only with the token read from the queue.
        let token = |id: &str| poster.in_flight[id].delivery_token.clone().expect("token");
        let (a1_token, f1_token) = (token("a1"), token("f1"));
        poster.delivered("f1", &a1_token);
        poster.delivered("a1", "");
        poster.delivered("f1", &f1_token);
        assert_eq!(poster.in_flight.keys().collect::<Vec<_>>(), ["a1"]);
        poster.repost_in_flight();
        let (_, bytes) = reader.recv().await.expect("recv");
        let again = AlertMessage::decode(&bytes).expect("alert");
        assert_eq!(again.id, "a1");
        assert_eq!(again.delivery_token, Some(a1_token));
        MessageQueue::unlink(&config.queue);
    }

    #[tokio::test]
    async fn undelivered_alarms_survive_a_restart() {
        let dir = tempfile::tempdir().expect("dir");
        let config = fresh_queue("journal", 4);
        {
            let mut poster = AlertPoster::open(&config, None)
                .expect("open")
                .with_journal(dir.path());
            if poster.post(vec![
                alert("a1", AlertPriority::Alarm),
                alert("i1", AlertPriority::Info),
                alert("t1", AlertPriority::Tamper),
            ]) {
                poster.save_journal();
            }
            let token = poster.in_flight["t1"]
                .delivery_token
                .clone()
                .expect("token");
            poster.delivered("t1", &token);
            // The hub dies here: a1 posted, never delivered.
        }
        MessageQueue::unlink(&config.queue);
        let mut poster = AlertPoster::open(&config, None)
            .expect("open")
            .with_journal(dir.path());
        poster.flush();
        let reader = MessageQueue::open_existing(&config.queue, 4, 1024).expect("reader");
        let (_, bytes) = reader.recv().await.expect("recv");
        assert_eq!(AlertMessage::decode(&bytes).expect("alert").id, "a1");
        assert!(!poster.waiting(), "only a1 was pending");
        MessageQueue::unlink(&config.queue);
    }
}

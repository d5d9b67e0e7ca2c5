//! `[alerts]`: the POSIX queue from the hub to alertd, and alertd's
//! handling of what comes through it.

use std::time::Duration;

use serde::Deserialize;

use crate::check::Checker;
use crate::limits::{COOLDOWN_SECS, DEPTH, HOOK_TIMEOUT_MS, MSG_SIZE};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AlertsFile {
    queue: Option<String>,
    depth: Option<i64>,
    msg_size: Option<i64>,
    cooldown_secs: Option<u64>,
    hook_timeout_ms: Option<u64>,
    group: Option<String>,
}

/// The alert path: the POSIX queue from the hub to alertd, and alertd's
/// handling.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// The queue's name (one global namespace: make it unique per install).
    pub queue: String,
    /// Messages the queue holds (needs fs.mqueue.msg_max at least this).
    pub depth: i64,
    /// The largest alert, in bytes (needs fs.mqueue.msgsize_max).
    pub msg_size: i64,
    /// The same source (kind and sensor) is not repeated within this, but
    /// alarm-priority alerts always are.
    pub cooldown: Duration,
    /// How long a hook may take to take one alert before it is restarted.
    pub hook_timeout: Duration,
    /// The group that may read the queue and join `hub.sock` as alertd
    /// (alertd under a uid of its own: ARCHITECTURE.md, "Users and
    /// groups"). None: only the hub's uid (and root) may, as when every
    /// service shares one uid.
    pub group: Option<String>,
}

pub(crate) fn check(c: &mut Checker, a: AlertsFile) -> AlertsConfig {
    let queue = a.queue.unwrap_or_else(|| "/vigil-alerts".to_owned());
    c.posix_name("alerts.queue", &queue, "/vigil-alerts");
    if let Some(group) = &a.group {
        c.group_name("alerts.group", group);
    }
    AlertsConfig {
        depth: c.bounded("alerts.depth", a.depth, &DEPTH),
        msg_size: c.bounded("alerts.msg_size", a.msg_size, &MSG_SIZE),
        cooldown: Duration::from_secs(c.bounded(
            "alerts.cooldown_secs",
            a.cooldown_secs,
            &COOLDOWN_SECS,
        )),
        hook_timeout: Duration::from_millis(c.bounded(
            "alerts.hook_timeout_ms",
            a.hook_timeout_ms,
            &HOOK_TIMEOUT_MS,
        )),
        queue,
        group: a.group,
    }
}

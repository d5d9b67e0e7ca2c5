//! Hook programs: each a long-lived child process that reads alerts as JSON
//! lines on its stdin (an anonymous pipe, parent to child, one way). Its
//! stderr goes into alertd's log, line by line, under the hook's name.
//!
//! A hook that exits is restarted with backoff (100 ms doubling to 30 s);
//! one that does not take an alert within the per-alert timeout (it hangs,
//! or stopped reading and the pipe is full) is killed and restarted. The
//! alert it did not take is offered again to the new process, up to
//! [`MAX_ATTEMPTS`] times. Each hook runs in its own task, so none of this
//! delays any other hook.

use std::collections::VecDeque;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vigil_config::HookConfig;

use crate::Delivery;

/// How many processes of a hook one alert is offered to.
pub const MAX_ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that lived this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(30);

/// Runs one hook until `deliveries` closes (alertd is stopping).
pub async fn run(hook: HookConfig, mut deliveries: mpsc::Receiver<Delivery>, timeout: Duration) {
    let name = hook.name.clone();
    let mut pending: VecDeque<(Delivery, u32)> = VecDeque::new();
    let mut backoff = FIRST_BACKOFF;
    let mut closed = false;
    loop {
        let started = Instant::now();
        let mut child = match Command::new(&hook.command)
            .args(&hook.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                error!(hook = %name, "cannot start {}: {e}; retrying in {backoff:?}", hook.command.display());
                // A start that fails counts as an attempt at the alert
                // waiting first, so a hook that cannot start does not hold
                // its alerts for ever.
                if let Some((_, attempts)) = pending.front_mut() {
                    *attempts += 1;
                    if *attempts >= MAX_ATTEMPTS
                        && let Some((d, _)) = pending.pop_front()
                    {
                        error!(hook = %name, id = %d.alert.id, "gave up on an alert: the hook cannot start");
                        d.done.complete();
                    }
                }
                if closed && pending.is_empty() {
                    return;
                }
                // Take what arrives meanwhile, so it too is counted.
                while let Ok(d) = deliveries.try_recv() {
                    pending.push_back((d, 0));
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        info!(hook = %name, pid = child.id(), "hook started");
        if let Some(stderr) = child.stderr.take() {
            let name = name.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    warn!(hook = %name, "hook says: {line}");
                }
            });
        }
        let Some(mut stdin) = child.stdin.take() else {
            error!(hook = %name, "no stdin pipe");
            return;
        };
        // Feed the process until it fails or alertd stops.
        let why = loop {
            if let Some((delivery, attempts)) = pending.front_mut() {
                *attempts += 1;
                let line = delivery.alert.json_line();
                let span = tracing::info_span!(parent: &delivery.span, "alert.hook", hook = %name);
                let write = tracing::Instrument::instrument(
                    async {
                        stdin.write_all(line.as_bytes()).await?;
                        stdin.flush().await
                    },
                    span,
                );
                match tokio::time::timeout(timeout, write).await {
                    Ok(Ok(())) => {
                        if let Some((d, _)) = pending.pop_front() {
                            d.done.complete();
                        }
                        continue;
                    }
                    Ok(Err(e)) => break format!("its input closed ({e})"),
                    Err(_) => break format!("it did not take an alert within {timeout:?}"),
                }
            }
            if closed {
                // alertd is stopping and everything is written: close the
                // pipe so the hook sees end of file, and let it finish.
                drop(stdin);
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                return;
            }
            tokio::select! {
                next = deliveries.recv() => match next {
                    Some(d) => pending.push_back((d, 0)),
                    None => closed = true,
                },
                status = child.wait() => {
                    break match status {
                        Ok(s) => format!("it exited ({s})"),
                        Err(e) => format!("waiting for it failed ({e})"),
                    };
                }
            }
        };
        let _ = child.start_kill();
        let _ = child.wait().await;
        // An alert offered to too many processes is given up on.
        if let Some((d, attempts)) = pending.front()
            && *attempts >= MAX_ATTEMPTS
        {
            error!(
                hook = %name,
                id = %d.alert.id,
                "gave up on an alert after {attempts} attempts; fix the hook"
            );
            if let Some((d, _)) = pending.pop_front() {
                d.done.complete();
            }
        }
        if started.elapsed() >= HEALTHY {
            backoff = FIRST_BACKOFF;
        }
        warn!(hook = %name, "restarting the hook in {backoff:?}: {why}");
        if closed && pending.is_empty() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

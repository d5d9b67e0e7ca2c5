//! Hook programs: each a long-lived child process that reads alerts as JSON
//! lines on its stdin (an anonymous pipe, parent to child, one way). Its
//! stderr goes into alertd's log, line by line, under the hook's name.
//!
//! A hook with a `socket` instead of a `command` is run by someone else
//! (NixOS: a systemd socket unit with `Accept=yes`, whose service runs the
//! program as the hook user with the connection as its stdin): alertd
//! connects and writes the same lines; the connection's end is the
//! process's, and closing it is how alertd stops one. The program then has
//! a uid of its own, none of alertd's rights (ARCHITECTURE.md, "Users and
//! groups").
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

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tracing::{error, info, warn};
use vigil_config::{HookConfig, HookTarget};

use crate::Delivery;

/// How many processes of a hook one alert is offered to.
pub const MAX_ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A process that lived this long resets the backoff.
const HEALTHY: Duration = Duration::from_secs(30);

/// One running process of a hook: a child of alertd's, or a connection to
/// a socket whose listener runs the program.
enum Process {
    Child {
        child: Child,
        stdin: ChildStdin,
    },
    Socket {
        read: OwnedReadHalf,
        write: OwnedWriteHalf,
    },
    /// A child whose stdin is closed (it is finishing).
    ChildOnly(Child),
}

impl Process {
    /// Starts the hook's program, or connects to its socket.
    async fn start(hook: &HookConfig) -> std::io::Result<Process> {
        match &hook.target {
            HookTarget::Command { command, args } => {
                let mut child = Command::new(command)
                    .args(args)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()?;
                info!(hook = %hook.name, pid = child.id(), "hook started");
                if let Some(stderr) = child.stderr.take() {
                    tokio::spawn(log_lines(hook.name.clone(), stderr));
                }
                let stdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| std::io::Error::other("no stdin pipe"))?;
                Ok(Process::Child { child, stdin })
            }
            HookTarget::Socket(path) => {
                let (read, write) = UnixStream::connect(path).await?.into_split();
                info!(hook = %hook.name, socket = %path.display(), "hook connected");
                Ok(Process::Socket { read, write })
            }
        }
    }

    /// Where the alerts are written.
    fn input(&mut self) -> Option<&mut (dyn AsyncWrite + Unpin + Send)> {
        match self {
            Process::Child { stdin, .. } => Some(stdin),
            Process::Socket { write, .. } => Some(write),
            Process::ChildOnly(_) => None,
        }
    }

    /// Resolves when the process has ended, saying how. Cancel-safe.
    async fn ended(&mut self) -> String {
        match self {
            Process::Child { child, .. } | Process::ChildOnly(child) => match child.wait().await {
                Ok(s) => format!("it exited ({s})"),
                Err(e) => format!("waiting for it failed ({e})"),
            },
            // Whatever the program writes back (a socket service's stdout
            // may be the connection) is not read by anyone: dropped.
            Process::Socket { read, .. } => {
                let mut buf = [0u8; 512];
                loop {
                    match read.read(&mut buf).await {
                        Ok(0) => return "it closed its connection".to_owned(),
                        Ok(_) => {}
                        Err(e) => return format!("its connection failed ({e})"),
                    }
                }
            }
        }
    }

    /// alertd is stopping and everything is written: closes the input so
    /// the hook sees end of file, and lets it finish (5 s at most).
    async fn finish(self) {
        let mut ended = match self {
            // A child's stdin is closed by dropping it.
            Process::Child { child, stdin } => {
                drop(stdin);
                Process::ChildOnly(child)
            }
            Process::Socket { read, mut write } => {
                let _ = write.shutdown().await;
                Process::Socket { read, write }
            }
            closed @ Process::ChildOnly(_) => closed,
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), ended.ended()).await;
    }

    /// Stops it: a child is killed; a connection is closed (its listener's
    /// program sees end of file, and the next connection gets a new one).
    async fn stop(self) {
        match self {
            Process::Child { mut child, .. } | Process::ChildOnly(mut child) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
            }
            Process::Socket { read, write } => drop((read, write)),
        }
    }
}

/// Logs a hook's stderr, line by line, under its name.
async fn log_lines(name: String, stderr: impl AsyncRead + Unpin) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        warn!(hook = %name, "hook says: {line}");
    }
}

/// Runs one hook until `deliveries` closes (alertd is stopping).
pub async fn run(hook: HookConfig, mut deliveries: mpsc::Receiver<Delivery>, timeout: Duration) {
    let name = hook.name.clone();
    let mut pending: VecDeque<(Delivery, u32)> = VecDeque::new();
    let mut backoff = FIRST_BACKOFF;
    let mut closed = false;
    loop {
        let started = Instant::now();
        let mut process = match Process::start(&hook).await {
            Ok(p) => p,
            Err(e) => {
                error!(hook = %name, "cannot start {}: {e}; retrying in {backoff:?}", hook.describe());
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
        // Feed the process until it fails or alertd stops.
        let why = loop {
            if let Some((delivery, attempts)) = pending.front_mut() {
                *attempts += 1;
                let line = delivery.alert.json_line();
                let span = tracing::info_span!(parent: &delivery.span, "alert.hook", hook = %name);
                let input = process.input();
                let write = tracing::Instrument::instrument(
                    async {
                        let input = input.ok_or_else(|| std::io::Error::other("input closed"))?;
                        input.write_all(line.as_bytes()).await?;
                        input.flush().await
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
                // alertd is stopping and everything is written.
                process.finish().await;
                return;
            }
            tokio::select! {
                next = deliveries.recv() => match next {
                    Some(d) => pending.push_back((d, 0)),
                    None => closed = true,
                },
                why = process.ended() => break why,
            }
        };
        process.stop().await;
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

//! reportd: follows the event log, indexes it into SQLite, writes reports.
//!
//! Owns: `<reports_dir>/reports.db` (the only process that writes it; the
//! hub reads it), `<reports_dir>/reports/` (the daily and weekly reports,
//! HTML and JSON) and `<reports_dir>/reports.lock` (held while it runs, so
//! that a rebuild and a running indexer never meet). `reports_dir` is the
//! state directory unless `[runtime] reports_dir` moves it (NixOS: reportd's
//! own, as it runs under a uid of its own and only reads the event log).
//!
//! Must never: write the event log; index a record twice or skip one (the
//! checkpoint commits with the rows: [`vigil_reports::Index::apply`]);
//! trust a payload (a record that does not decode is logged and skipped,
//! never fatal).
//!
//! The loop: read every record after the checkpoint in batches of up to
//! [`BATCH`], commit each (reading the next batch while one is written:
//! [`Follower::catch_up`]), then poll the tail every [`POLL`]. Reports of
//! the current day and week are rewritten every [`REPORT_EVERY`]; those of
//! the previous day and week once after they end.

#![forbid(unsafe_code)]

mod error;
mod follow;
mod schedule;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tracing::{info, warn};
use vigil_config::Config;
use vigil_reports::Index;

pub use follow::Follower;
pub use schedule::Schedule;

pub use crate::error::ReportdError;

/// Records per transaction while catching up: large enough that SQLite's
/// commit cost is noise (20 000 indexed 6 % slower), small enough that a
/// batch takes under 100 ms and about 12 MiB. Live, batches hold what
/// arrived since the last poll.
pub const BATCH: usize = 50_000;
/// How often the tail is checked when there is nothing new.
pub const POLL: Duration = Duration::from_millis(200);
/// How often the current day's and week's reports are rewritten.
pub const REPORT_EVERY: Duration = Duration::from_secs(300);

/// The paths reportd works with, from the config's state directory.
#[derive(Clone, Debug)]
pub struct Paths {
    pub events: PathBuf,
    pub database: PathBuf,
    pub reports: PathBuf,
    pub lock: PathBuf,
}

impl Paths {
    /// Everything in the state directory (`reports_dir` not set).
    pub fn new(state_dir: &Path) -> Paths {
        Paths::split(state_dir, state_dir)
    }

    /// The log in `state_dir`, reportd's own files in `reports_dir`.
    pub fn split(state_dir: &Path, reports_dir: &Path) -> Paths {
        Paths {
            events: state_dir.join("events"),
            database: reports_dir.join("reports.db"),
            reports: reports_dir.join("reports"),
            lock: reports_dir.join("reports.lock"),
        }
    }

    /// The paths `config` names.
    pub fn of(config: &Config) -> Paths {
        Paths::split(&config.runtime.state_dir, &config.runtime.reports_dir)
    }
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ReportdError {
    let path = path.to_owned();
    move |source| ReportdError::Io { what, path, source }
}

/// Takes `<reports_dir>/reports.lock` for as long as the value lives.
fn lock(paths: &Paths) -> Result<Flock<File>, ReportdError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&paths.lock)
        .map_err(io("open", &paths.lock))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|_| ReportdError::Locked(paths.lock.clone()))
}

/// Runs the indexer and the report schedule until `shutdown` resolves.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ReportdError> {
    let paths = Paths::of(&config);
    std::fs::create_dir_all(&config.runtime.reports_dir)
        .map_err(io("create", &config.runtime.reports_dir))?;
    let _lock = lock(&paths)?;
    let mut index = Index::open(&paths.database).await?;
    let mut follower = Follower::new(&paths.events);
    let cameras: Vec<String> = config.cameras.iter().map(|c| c.name.clone()).collect();
    let mut schedule = Schedule::new(paths.clone(), cameras);
    info!(
        database = %paths.database.display(),
        checkpoint = index.checkpoint().await?,
        "indexing the event log"
    );
    tokio::pin!(shutdown);
    loop {
        let indexed = tokio::select! {
            // Shutdown first: its first poll installs the signal handlers,
            // which must be in place before a long catch-up. A stop during
            // a catch-up drops the batch being written: its transaction
            // rolls back, and the next start reads it again.
            biased;
            _ = &mut shutdown => break,
            indexed = follower.catch_up(&mut index, BATCH) => indexed?,
        };
        if indexed == 0 {
            // Caught up: now is a good time for reports.
            if let Err(e) = schedule.tick(&paths.database).await {
                warn!("cannot write the reports: {e}; will try again");
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }
    let checkpoint = index.checkpoint().await?;
    index.close().await?;
    info!(checkpoint, "stopped");
    Ok(())
}

/// Recreates the database from the event log: builds a new file beside the
/// old one, then moves it into place. Refuses while reportd runs.
pub async fn rebuild(config: &Config) -> Result<u64, ReportdError> {
    let paths = Paths::of(config);
    let _lock = lock(&paths)?;
    let fresh = paths.database.with_extension("db.rebuild");
    for stale in [
        fresh.clone(),
        fresh.with_extension("rebuild-wal"),
        fresh.with_extension("rebuild-shm"),
    ] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &stale)(e)),
        }
    }
    let mut index = Index::open(&fresh).await?;
    let mut follower = Follower::new(&paths.events);
    while follower.catch_up(&mut index, BATCH).await? > 0 {}
    let through = index.checkpoint().await?;
    if follower.lost() > 0 {
        warn!(
            lost = follower.lost(),
            through,
            "the event log has gaps (logged above): {} numbers are missing from the rebuilt \
             index",
            follower.lost()
        );
    }
    index.close_self_contained().await?;
    // The old file's WAL must not outlive it: SQLite would apply it to the
    // new file of the same name.
    for old in ["db-wal", "db-shm"] {
        let path = paths.database.with_extension(old);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &path)(e)),
        }
    }
    std::fs::rename(&fresh, &paths.database).map_err(io("rename", &fresh))?;
    info!(through, database = %paths.database.display(), "rebuilt the reports database from the event log");
    Ok(through)
}

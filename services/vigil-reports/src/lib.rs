//! The SQLite index of the event log, and the reports built from it.
//!
//! Owns: the schema (`migrations/`, applied on open), the one write path
//! ([`Index::apply`], or [`Batch::new`] then [`Index::write`]: rows,
//! per-quarter-hour counts and the checkpoint in one transaction, so that
//! every log record is indexed exactly once), the read-only queries the hub
//! serves ([`ReadOnly::query`], [`ReadOnly::report`]), and the rendering of
//! reports as JSON (a file format, [`Report`], documented in
//! `docs/reports.md`) and as HTML with SVG charts. Events go in and come out
//! as the domain's [`vigil_domain::Event`]; the row type is the store's
//! own, converted in one place each way.
//!
//! Must never: write the event log (the log is the truth; this file can
//! always be rebuilt from it), open the database for writing in the hub,
//! touch data with a statement that is not checked at compile time against
//! the schema (`sqlx::query!`; the offline data is in `.sqlx/`, see
//! `scripts/sqlx-prepare`; only static maintenance pragmas are raw), or
//! classify kinds by their names: [`vigil_domain::EventKind`] does, and a
//! kind a query needs is bound as a parameter (the schema's `rare` column is
//! the one exception, see migration 0004).
//!
//! Time: reports cut days and ISO weeks in local time (the appliance's
//! `TZ`, or `/etc/localtime`); the index stores UTC milliseconds.

#![forbid(unsafe_code)]

mod period;
mod render;
mod report;
mod store;

pub use period::{Period, PeriodKind};
pub use render::html;
pub use report::{
    AlarmEntry, ArmEntry, CameraUptime, DayCount, FaultEntry, HourCount, REPORT_FORMAT, Report,
    SensorCounts, Totals,
};
pub use store::{Batch, Cursor, EventFilter, Index, MAX_PAGE, Order, Page, ReadOnly};

/// What can go wrong with the index.
#[derive(Debug, thiserror::Error)]
pub enum ReportsError {
    /// The database file could not be opened (missing for a reader, a
    /// directory that cannot be written for the indexer, or not SQLite).
    #[error("cannot open the reports database {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        #[source]
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot migrate the reports database {path}: {source}")]
    Migrate {
        path: std::path::PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// A statement failed (disk full, a corrupt file, a sequence number
    /// indexed twice).
    #[error("reports database: {0}")]
    Sql(#[from] sqlx::Error),
    /// A batch handed to [`Index::apply`] does not continue the index.
    #[error(
        "the batch does not continue the index: the checkpoint is {checkpoint}, the batch \
         starts after {after} (a second indexer, or a log replaced under it: run \
         `vigil-reportd --rebuild`)"
    )]
    NotContiguous { checkpoint: u64, after: u64 },
    /// A batch handed to [`Index::apply`] or [`Batch::new`] holds an event
    /// that is not one of its records, or events out of order: a bug in the
    /// caller.
    #[error("event {seq} is not in the batch of records after {after} through {through}, in order")]
    OutsideBatch { seq: u64, after: u64, through: u64 },
    /// A date or period that does not exist.
    #[error("{0}")]
    BadPeriod(String),
}

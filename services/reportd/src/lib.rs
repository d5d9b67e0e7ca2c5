//! reportd: the event log into SQLite, and reports.
//!
//! Will own: following the memory-mapped event log, indexing it exactly once
//! into SQLite (checkpoint in the same transaction), rebuilding the index,
//! and the daily and weekly reports (HTML with SVG charts, JSON).
//!
//! Must never: write the event log.

#![forbid(unsafe_code)]

/// What this service will do, printed by its binary until it is built.
pub const PLANNED: &str = "index the event log into SQLite and write daily and weekly reports";

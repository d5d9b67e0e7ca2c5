//! The low-level IPC primitives of Vigil, and the only crate with `unsafe`.
//!
//! Owns:
//! - [`table`]: the sensor table in shared memory. One fixed slot per sensor
//!   plus a system slot; readers never block (a seqlock per slot); writers
//!   in any process are serialised by a process-shared semaphore that lives
//!   inside the region itself.
//! - [`fdpass`]: handing a descriptor (the table's sealed memfd) to another
//!   process over a Unix stream socket the caller owns (`SCM_RIGHTS`).
//! - [`mqueue`]: a POSIX message queue with priorities, pollable in tokio.
//! - [`process`]: process-wide settings that must precede every thread.
//! - [`doorbell`]: the "slot k changed" wake-up, a queued real-time signal
//!   whose value is the slot index, received by the hub through a signalfd
//!   registered with tokio so its runtime never blocks.
//!
//! Must never: decide policy (what a sensor means, what the alarm does), read
//! the config file, or open sockets (it only passes a descriptor over a
//! connection its caller made). Every `unsafe` block carries a
//! `// SAFETY:` argument; the rest of the workspace is `forbid(unsafe_code)`.
//!
//! Architecture invariant: the table's byte layout is a format with a version
//! ([`table::FORMAT_VERSION`]); a change to the layout bumps it, and a reader
//! of another version gets [`table::TableError::FormatVersion`], never
//! misread data.

pub mod doorbell;
pub mod fdpass;
pub mod mqueue;
pub mod process;
pub mod semaphore;
pub mod table;

mod clock;

pub use clock::{monotonic_ns, unix_ns};

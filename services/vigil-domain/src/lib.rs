//! Vigil's vocabulary: the names every service shares, with no dependency
//! at all (not even serde), so the pure alarm and the unsafe IPC crates can
//! use it without pulling in a parser.
//!
//! Owns: sensors ([`SensorKind`], [`SensorState`], [`Level`], [`Pull`]),
//! modes and alarm states ([`ArmedMode`], [`AlarmState`]), the alarm's
//! settings ([`AlarmConfig`], [`ModeTiming`], [`Response`]), [`Role`],
//! [`AlertPriority`], events ([`EventKind`], [`Event`]) and
//! [`TraceContext`].
//!
//! Must never: do I/O, depend on another crate, or derive serialization.
//! Files and messages have their own wire types (`vigil-config`'s private
//! `file` module, `vigil-bootstrap::wire`, the event log's record) that
//! convert at their boundary.

#![forbid(unsafe_code)]

mod event;
mod sensor;
mod settings;
pub mod text;

pub use event::{Event, EventKind, KNOWN_KINDS, source};
pub use sensor::{AlarmState, ArmedMode, Level, Pull, SensorKind, SensorState, TraceContext};
pub use settings::{
    AlarmConfig, AlertPriority, MAX_ENTRY_DELAY, MAX_EXIT_DELAY, MAX_NAME_LEN, MAX_SENSORS,
    ModeTiming, Response, Role, TRIGGER_TIME_RANGE, is_valid_name,
};

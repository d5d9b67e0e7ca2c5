//! Vigil's vocabulary: the domain types every service shares, and the one
//! configuration file they all read.
//!
//! Owns: [`SensorKind`], [`SensorState`], [`ArmedMode`], [`AlarmState`],
//! [`TraceContext`] and the validated [`config::Config`].
//!
//! Must never: do I/O beyond reading the config file, or derive
//! serialization on a domain type. The TOML file's shape lives in a private
//! `config::file` module and is converted (and validated) at that boundary;
//! the IPC wire types live in `vigil-bootstrap` and `vigil-ipc`.

#![forbid(unsafe_code)]

pub mod config;
mod domain;

pub use domain::{AlarmState, ArmedMode, Level, Pull, SensorKind, SensorState, TraceContext};

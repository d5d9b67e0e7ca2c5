//! One module per table of the file: its shape on disk (serde types, every
//! field optional so that a missing one is reported by key, not by serde),
//! its validated type, and the function that checks one into the other.

pub(crate) mod alarm;
pub(crate) mod alerts;
pub(crate) mod cameras;
pub(crate) mod events;
pub(crate) mod grpc;
pub(crate) mod hooks;
pub(crate) mod mqtt;
pub(crate) mod outputs;
pub(crate) mod recording;
pub(crate) mod runtime;
pub(crate) mod sensors;
pub(crate) mod telemetry;
pub(crate) mod users;
pub(crate) mod webhook;

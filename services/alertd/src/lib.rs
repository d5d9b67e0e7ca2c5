//! alertd: alerts into notifications.
//!
//! Will own: the receiving end of the hub's POSIX message queue (priorities
//! alarm > tamper > fault > info), dedupe and cooldown, hook programs fed
//! JSON lines on their stdin through pipes, and webhooks (ntfy-compatible).
//!
//! Must never: let one slow or dead hook delay another.

#![forbid(unsafe_code)]

/// What this service will do, printed by its binary until it is built.
pub const PLANNED: &str = "read alerts from the hub's POSIX message queue and deliver them to hook programs (JSON lines on a pipe) and webhooks";

//! The status every reader sees: what the engine publishes after each turn
//! of the hub's loop, read by GetStatus without asking the loop.

use vigil_alarm::{Millis, Outputs};
use vigil_domain::{AlarmState, ArmedMode};

/// The alarm's status at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusSnapshot {
    pub mode: ArmedMode,
    pub alarm: AlarmState,
    /// When the running exit or entry delay, or the siren, ends.
    pub deadline_unix_ms: Option<Millis>,
    pub outputs: Outputs,
    pub bypassed: Vec<String>,
    pub open: Vec<String>,
    /// Sensors with a fault, and system faults (a state that cannot be
    /// saved).
    pub faults: Vec<String>,
    pub locked_until_unix_ms: Option<Millis>,
    /// The number of the last event; every event up to it is in the
    /// stream before this status is published.
    pub last_seq: u64,
}

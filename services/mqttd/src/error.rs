//! Why the bridge stops: every error `run` can return, and its exit code
//! ([`ExitError`]): 78 for what the operator must fix in the configuration
//! or a file it names (systemd does not restart), 1 otherwise. A broker or
//! a hub that is away is not an error: the bridge waits for it.

use vigil_mqtt::broker::BrokerSetupError;
use vigil_service::{ExitError, ExitStatus};

#[derive(Debug, thiserror::Error)]
pub enum MqttdError {
    /// Exit 78: the configuration has no `[mqtt]` table.
    #[error(
        "the configuration has no [mqtt] table; add one with the broker's address (docs/mqtt.md)"
    )]
    NoMqtt,
    /// Exit 78: the broker's CA, the client certificate or the credentials
    /// file cannot be used.
    #[error("mqtt: {0}")]
    Broker(#[from] BrokerSetupError),
}

impl ExitError for MqttdError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            MqttdError::NoMqtt | MqttdError::Broker(_) => ExitStatus::Config,
        }
    }
}

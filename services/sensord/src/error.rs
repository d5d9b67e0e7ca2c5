//! Why sensord stops: every error `run` (or `vigil-sensord sim`) can
//! return, and the exit code each one stops the process with
//! ([`ExitError`]; the codes are `vigil_service`'s: 1 a runtime failure,
//! systemd restarts sensord; 78 the configuration, systemd does not).

use vigil_config::ConfigError;
use vigil_service::{ExitError, ExitStatus};

use crate::gpio::GpioError;

/// Why sensord stopped.
#[derive(Debug, thiserror::Error)]
pub enum SensordError {
    /// Exit 78: the configuration cannot be used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Exit 1: the GPIO chip or a pin. Even a chip sensord may not open is
    /// worth a restart: at boot the device can appear before udev gives it
    /// the `gpio` group.
    #[error(transparent)]
    Gpio(#[from] GpioError),
    /// Exit 1: the simulated board's control socket cannot be served.
    #[error("cannot serve the simulator's control socket {path}: {source}")]
    SimSocket {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// Exit 78: the `[mqtt]` broker's files (CA, client certificate,
    /// credentials) cannot be read, so the Zigbee sensors cannot be heard.
    #[error(transparent)]
    Broker(#[from] vigil_mqtt::broker::BrokerSetupError),
    /// Exit 1: a signal handler.
    #[error("cannot install a signal handler: {0}")]
    Signal(std::io::Error),
    /// Exit 1: `vigil-sensord sim`: the simulated board is unreachable or
    /// refused the command (the message says which, and why).
    #[error("{0}")]
    Sim(String),
}

impl ExitError for SensordError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            SensordError::Config(_) | SensordError::Broker(_) => ExitStatus::Config,
            SensordError::Gpio(_)
            | SensordError::SimSocket { .. }
            | SensordError::Signal(_)
            | SensordError::Sim(_) => ExitStatus::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_exits_with_its_documented_code() {
        let io = || std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let cases = [
            (
                SensordError::Config(ConfigError::Syntax {
                    source_name: "vigil.toml".into(),
                    message: "expected `=`".into(),
                }),
                78,
            ),
            (
                SensordError::Gpio(GpioError::Open("permission denied".into())),
                1,
            ),
            (
                SensordError::Gpio(GpioError::Pin {
                    pin: 17,
                    message: "busy".into(),
                }),
                1,
            ),
            (
                SensordError::Gpio(GpioError::NotClaimed {
                    pin: 23,
                    what: "an output",
                }),
                1,
            ),
            (
                SensordError::SimSocket {
                    path: "/run/vigil/sim-gpio.sock".into(),
                    source: io(),
                },
                1,
            ),
            (SensordError::Signal(io()), 1),
            (SensordError::Sim("unknown sensor".into()), 1),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_status().code(), code, "{error:?}");
        }
    }
}

//! Why alertd stops: every error `run` can return, and the exit code each
//! one stops the process with ([`ExitError`]; the codes are
//! `vigil_service`'s: 1 a runtime failure, systemd restarts alertd; 78 the
//! configuration or a file it names, systemd does not).

use std::path::PathBuf;

use vigil_ipc::mqueue::QueueError;
use vigil_service::{ExitError, ExitStatus};

/// Why alertd stopped.
#[derive(Debug, thiserror::Error)]
pub enum AlertdError {
    /// Exit 1: the alert queue, among them kernel limits too small for it
    /// (the message names the sysctl or rlimit and the value to set).
    #[error("the alert queue: {0}")]
    Queue(#[from] QueueError),
    /// Exit 78: the webhook's secret file (`webhook.secret_file`) cannot be
    /// read.
    #[error(
        "webhook.secret_file: cannot read the secret {path}: {source}; fix: put the webhook's \
         HMAC secret there, readable by alertd's user, or point webhook.secret_file at the \
         file that holds it"
    )]
    WebhookSecret {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Exit 1: the webhook's HTTP client cannot be built (its TLS set-up).
    #[error("the webhook's HTTP client: {0}")]
    WebhookClient(String),
}

impl ExitError for AlertdError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            AlertdError::WebhookSecret { .. } => ExitStatus::Config,
            AlertdError::Queue(_) | AlertdError::WebhookClient(_) => ExitStatus::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_exits_with_its_documented_code() {
        let cases = [
            (
                AlertdError::Queue(QueueError::Limits(
                    "fs.mqueue.msg_max is 10; sysctl -w fs.mqueue.msg_max=256".into(),
                )),
                1,
            ),
            (
                AlertdError::Queue(QueueError::Os {
                    name: "/vigil-alerts".into(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                }),
                1,
            ),
            (
                AlertdError::WebhookSecret {
                    path: "/run/credentials/vigil-alertd.service/webhook-secret".into(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                },
                78,
            ),
            (AlertdError::WebhookClient("no TLS backend".into()), 1),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_status().code(), code, "{error:?}");
        }
    }
}

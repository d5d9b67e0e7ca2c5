//! Why reportd stops: every error `run` and `rebuild` can return, and the
//! exit code each one stops the process with ([`ExitError`]; the codes are
//! `vigil_service`'s: 1 a runtime failure, systemd restarts reportd; an
//! invalid configuration, 78, is found before any of these).

use std::path::PathBuf;

use vigil_reports::ReportsError;
use vigil_service::{ExitError, ExitStatus};

/// Errors that stop reportd.
#[derive(Debug, thiserror::Error)]
pub enum ReportdError {
    /// Exit 1: the reports database (open, migrate, a statement; a full
    /// disk among them).
    #[error(transparent)]
    Reports(#[from] ReportsError),
    /// Exit 1: another reportd holds the lock: the service while
    /// `--rebuild` runs, or a rebuild while the service starts (systemd's
    /// restart then succeeds once the rebuild is done).
    #[error("another vigil-reportd holds {0} (stop the service before `vigil-reportd --rebuild`)")]
    Locked(PathBuf),
    /// Exit 1: a file or directory under the state directory.
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Exit 1: the event log (a segment the hub is still creating reads as
    /// not one, and passes).
    #[error("the event log: {0}")]
    Log(#[from] vigil_eventlog::LogError),
    /// Exit 1: the runtime is shutting down under a read of the log.
    #[error("reading the event log was cancelled: {0}")]
    Cancelled(String),
}

impl ExitError for ReportdError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            ReportdError::Reports(_)
            | ReportdError::Locked(_)
            | ReportdError::Io { .. }
            | ReportdError::Log(_)
            | ReportdError::Cancelled(_) => ExitStatus::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_exits_with_its_documented_code() {
        let state = PathBuf::from("/var/lib/vigil");
        let cases = [
            (
                ReportdError::Reports(ReportsError::BadPeriod("no such day".into())),
                1,
            ),
            (ReportdError::Locked(state.join("reports.lock")), 1),
            (
                ReportdError::Io {
                    what: "create",
                    path: state.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::StorageFull),
                },
                1,
            ),
            (
                ReportdError::Log(vigil_eventlog::LogError::BadSegment {
                    path: state.join("events/00000000000000000001.seg"),
                    problem: "bad header".into(),
                }),
                1,
            ),
            (ReportdError::Cancelled("runtime shut down".into()), 1),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_status().code(), code, "{error:?}");
        }
    }
}

//! Exit codes: every error that can stop a daemon knows its own.
//!
//! A service's top-level error implements [`ExitError`], variant by
//! variant (each variant's doc comment names its code); the binary's edge
//! ([`report`], [`finish`](crate::finish)) prints it and turns it into the
//! process's exit code. The phase an error happens in never decides the
//! code: an unreadable PIN hash file found deep in `run` is as much a
//! configuration problem as a typo found while parsing.
//!
//! Why only these codes: systemd has one lever, restart or not
//! (`RestartPreventExitStatus=` in `nixos/modules/vigil.nix`), so a code
//! earns its place only when it changes that or what the operator does
//! next. A runtime failure (1) may pass (a port freed, a device that
//! appears, a disk with room again): the unit restarts forever with
//! back-off and comes back by itself once the cause is gone. A
//! configuration that cannot work (78) never passes by itself, and a new
//! configuration restarts the unit anyway: systemd stops. The sysexits
//! codes weighed and left out, and why: ARCHITECTURE.md, "Exit codes".

use std::convert::Infallible;
use std::fmt;

/// How a Vigil daemon's process ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExitStatus {
    /// 0: stopped by SIGTERM or SIGINT after draining.
    Clean,
    /// 1: a runtime failure (sockets, shared memory, GPIO, the alert
    /// queue, another hub running, the disk). It may pass: systemd restarts
    /// the unit with back-off.
    Failure,
    /// 2 (sysexits' EX_USAGE): bad command-line flags. clap exits with it
    /// itself, before any service code runs.
    Usage,
    /// 78 (sysexits' EX_CONFIG): the configuration cannot work, or a file
    /// it names (a PIN hash, a camera key, a webhook secret) cannot be
    /// read. It never passes by itself: systemd does not restart the unit
    /// (`RestartPreventExitStatus=78`).
    Config,
}

impl ExitStatus {
    /// Every status, for tables and tests.
    pub const ALL: [ExitStatus; 4] = [
        ExitStatus::Clean,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::Config,
    ];

    /// The process's exit code.
    pub const fn code(self) -> u8 {
        match self {
            ExitStatus::Clean => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Config => 78,
        }
    }

    /// What the code means, and what happens or should happen next.
    pub const fn meaning(self) -> &'static str {
        match self {
            ExitStatus::Clean => "stopped cleanly",
            ExitStatus::Failure => {
                "a runtime failure; under systemd the unit restarts with back-off, so \
                 once the cause the message names is gone it comes back by itself"
            }
            ExitStatus::Usage => "bad command-line flags; see --help",
            ExitStatus::Config => {
                "the configuration or a file it names cannot be used; fix what the \
                 message names, then start the service again (systemd does not \
                 restart it on this code)"
            }
        }
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "exit {}: {}", self.code(), self.meaning())
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// An error that knows the exit code it stops its process with.
///
/// Implement it by matching every variant, without a wildcard, so that a
/// new variant cannot be added without deciding its code.
pub trait ExitError: std::error::Error {
    /// The status the process exits with when this error stops it.
    fn exit_status(&self) -> ExitStatus;
}

impl<E: ExitError + ?Sized> ExitError for &E {
    fn exit_status(&self) -> ExitStatus {
        (**self).exit_status()
    }
}

/// Nothing can go wrong: for a `before_threads` step with nothing to do.
impl ExitError for Infallible {
    fn exit_status(&self) -> ExitStatus {
        match *self {}
    }
}

/// The config file: every way it cannot be used (missing, unreadable, not
/// TOML, invalid) is the configuration's. No match on the variants: a new
/// one is the configuration's too, whoever adds it to vigil-config.
impl ExitError for vigil_config::ConfigError {
    fn exit_status(&self) -> ExitStatus {
        ExitStatus::Config
    }
}

/// Telemetry is set up from the config's `[telemetry]` (and `RUST_LOG`).
impl ExitError for vigil_telemetry::TelemetryError {
    fn exit_status(&self) -> ExitStatus {
        use vigil_telemetry::TelemetryError as E;
        match self {
            E::Exporter { .. } | E::Filter { .. } => ExitStatus::Config,
            // A second subscriber in one process: a bug, not the operator's.
            E::AlreadyInstalled => ExitStatus::Failure,
        }
    }
}

/// What [`start`](crate::start) itself can fail at, beyond the config and
/// telemetry. (Display and Error by hand: one variant is not worth a
/// dependency.)
#[derive(Debug)]
pub enum StartError {
    /// Exit 1: the tokio runtime could not start (threads, epoll).
    Runtime(std::io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Runtime(e) => write!(f, "cannot start the runtime: {e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Runtime(e) => Some(e),
        }
    }
}

impl ExitError for StartError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            StartError::Runtime(_) => ExitStatus::Failure,
        }
    }
}

/// Reports `error` as `name`'s last words and gives its exit code: the one
/// way every Vigil main ends on an error.
///
/// Once telemetry is up the error goes to the log (stderr, the journal,
/// and OTLP when configured) with its `exit_code`; before that, straight
/// to stderr as `name: error`. Either way it is followed by what the code
/// means, so the operator reads what to do next. The caller returns the
/// code from `main` (rather than calling `process::exit`), so that the
/// telemetry guard still flushes.
pub fn report<E: ExitError + ?Sized>(name: &str, error: &E) -> std::process::ExitCode {
    let status = error.exit_status();
    if tracing::dispatcher::has_been_set() {
        tracing::error!(exit_code = status.code(), "{error}; {status}");
    } else {
        eprintln!("{name}: {error}\n{name}: {status}");
    }
    status.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_the_documented_ones() {
        let codes: Vec<u8> = ExitStatus::ALL.iter().map(|s| s.code()).collect();
        assert_eq!(codes, [0, 1, 2, 78]);
        // vigilctl and older callers use the constants.
        assert_eq!(crate::EX_CONFIG, ExitStatus::Config.code());
        assert_eq!(crate::EXIT_FAILURE, ExitStatus::Failure.code());
    }

    #[test]
    fn every_config_error_is_78() {
        let errors = [
            vigil_config::ConfigError::Read {
                path: "/nowhere/vigil.toml".into(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            },
            vigil_config::ConfigError::Syntax {
                source_name: "vigil.toml".into(),
                message: "expected `=`".into(),
            },
            vigil_config::ConfigError::Invalid {
                source_name: "vigil.toml".into(),
                problems: Vec::new(),
            },
        ];
        for e in &errors {
            assert_eq!(e.exit_status(), ExitStatus::Config, "{e}");
        }
    }

    #[test]
    fn telemetry_errors() {
        use vigil_telemetry::TelemetryError as E;
        let cases = [
            (
                E::Exporter {
                    endpoint: "http://collector:4318".into(),
                    message: "bad url".into(),
                },
                ExitStatus::Config,
            ),
            (
                E::Filter {
                    filter: "info,,=".into(),
                    message: "invalid".into(),
                },
                ExitStatus::Config,
            ),
            (E::AlreadyInstalled, ExitStatus::Failure),
        ];
        for (e, status) in &cases {
            assert_eq!(e.exit_status(), *status, "{e}");
        }
    }

    #[test]
    fn start_errors_are_runtime_failures() {
        let e = StartError::Runtime(std::io::Error::other("no threads"));
        assert_eq!(e.exit_status(), ExitStatus::Failure);
        // Through a reference too, as `start` and `finish` take them.
        fn status_of(e: impl ExitError) -> ExitStatus {
            e.exit_status()
        }
        assert_eq!(status_of(&e), ExitStatus::Failure);
    }

    #[test]
    fn the_code_is_the_errors() {
        let e = StartError::Runtime(std::io::Error::other("no threads"));
        assert_eq!(report("test", &e), std::process::ExitCode::from(1));
        let e = vigil_config::ConfigError::Syntax {
            source_name: "vigil.toml".into(),
            message: "expected `=`".into(),
        };
        assert_eq!(report("test", &e), std::process::ExitCode::from(78));
    }

    #[test]
    fn the_meaning_says_what_happens_next() {
        assert!(ExitStatus::Config.to_string().starts_with("exit 78: "));
        assert!(ExitStatus::Config.meaning().contains("does not restart"));
        assert!(ExitStatus::Failure.meaning().contains("restarts"));
    }
}

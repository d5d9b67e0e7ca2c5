//! The start and end of every Vigil daemon, done one way.
//!
//! Owns: the common flags (`--config`, `--demo`), loading the config with
//! the right exit code, telemetry set-up, the tokio runtime, the shutdown
//! signal (SIGTERM or SIGINT), and the exit codes.
//!
//! Must never: know what a service does; a main calls [`start`], then its
//! crate's `run`, then [`finish`].
//!
//! Exit codes: 0 after a clean shutdown, 1 ([`EXIT_FAILURE`]) for a runtime
//! failure, 2 for bad flags (clap), 78 ([`EX_CONFIG`]) for an invalid
//! configuration or telemetry set-up.

#![forbid(unsafe_code)]

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use vigil_config::{Config, ConfigSource, DEFAULT_PATH};
use vigil_telemetry::TelemetryGuard;

/// sysexits' EX_CONFIG: the configuration is the problem.
pub const EX_CONFIG: u8 = 78;
/// A runtime failure.
pub const EXIT_FAILURE: u8 = 1;

/// The flags every daemon takes.
#[derive(Clone, Debug, clap::Args)]
pub struct ConfigArgs {
    /// The configuration file.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_PATH)]
    pub config: PathBuf,
    /// Read the demo's house instead: ROOT/vigil.toml, which vigil-demo
    /// writes (with its runtime and state files under ROOT) before it starts
    /// the services; without it, an error says to start vigil-demo first.
    #[arg(long, global = true, value_name = "ROOT")]
    pub demo: Option<PathBuf>,
}

impl ConfigArgs {
    pub fn source(&self) -> ConfigSource {
        ConfigSource::from_flags(Some(self.config.clone()), self.demo.clone())
    }
}

/// A daemon that has its config and telemetry and is ready to run.
#[derive(Debug)]
pub struct Started {
    pub source: ConfigSource,
    pub config: Config,
    pub runtime: tokio::runtime::Runtime,
    /// Flushes traces on drop: keep it until the end of main.
    pub telemetry: TelemetryGuard,
}

/// Loads the config; `before_threads` runs next, while the process still
/// has one thread (signal masks, TMPDIR); then telemetry and the runtime.
/// On failure, prints `name: error` and returns the exit code.
pub fn start(
    name: &'static str,
    args: &ConfigArgs,
    before_threads: impl FnOnce(&Config) -> Result<(), String>,
) -> Result<Started, ExitCode> {
    let source = args.source();
    let config = source.load().map_err(|e| fail(name, EX_CONFIG, e))?;
    before_threads(&config).map_err(|e| fail(name, EXIT_FAILURE, e))?;
    let telemetry =
        vigil_telemetry::init(name, &config.telemetry).map_err(|e| fail(name, EX_CONFIG, e))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| fail(name, EXIT_FAILURE, format!("cannot start the runtime: {e}")))?;
    Ok(Started {
        source,
        config,
        runtime,
        telemetry,
    })
}

/// Prints `name: error` and gives the exit code.
pub fn fail(name: &str, code: u8, error: impl Display) -> ExitCode {
    eprintln!("{name}: {error}");
    ExitCode::from(code)
}

/// The exit code for a service's result, logging the error.
pub fn finish<E: Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Resolves on SIGTERM or SIGINT: the shutdown future every `run` takes.
pub async fn terminated() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without handlers the default actions still stop the process.
        _ => std::future::pending().await,
    }
}

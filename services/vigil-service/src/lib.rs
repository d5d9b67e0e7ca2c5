//! The start and end of every Vigil daemon, done one way.
//!
//! Owns: the common flags (`--config`, `--demo`), loading the config with
//! the right exit code, telemetry set-up, the tokio runtime, the shutdown
//! signal (SIGTERM or SIGINT), and the exit codes.
//!
//! Must never: know what a service does; a main calls [`start`], then its
//! crate's `run`, then [`finish`].
//!
//! Exit codes come from the errors, never from the phase: every error that
//! can stop a daemon implements [`ExitError`] (see [`exit`] for the codes,
//! [`ExitStatus`], and why there are no others); [`report`] prints one and
//! gives its code. 0 after a clean shutdown, 1 ([`EXIT_FAILURE`]) for a
//! runtime failure, 2 for bad flags (clap), 78 ([`EX_CONFIG`]) when the
//! configuration or a file it names cannot be used.

#![forbid(unsafe_code)]

pub mod exit;

use std::convert::Infallible;
use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitCode;

use vigil_config::{Config, ConfigSource, DEFAULT_PATH};
use vigil_telemetry::TelemetryGuard;

pub use exit::{ExitError, ExitStatus, StartError, report};

/// sysexits' EX_CONFIG: the configuration is the problem
/// ([`ExitStatus::Config`]).
pub const EX_CONFIG: u8 = ExitStatus::Config.code();
/// A runtime failure ([`ExitStatus::Failure`]).
pub const EXIT_FAILURE: u8 = ExitStatus::Failure.code();

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

/// The threads a daemon's async runtime runs its tasks on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// One: for a daemon on the alert path whose work is a chain of short
    /// steps (sensord, alertd). A task woken by another runs on the same
    /// thread next, with no wake-up of a second thread between them: on a
    /// Pi's few cores that hop costs more than the step itself.
    One,
    /// Two workers: for a daemon that serves many peers at once or does
    /// long work beside its loop (the hub, camd, reportd).
    Two,
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
/// On failure, [`report`]s the error and returns its exit code.
pub fn start<E: ExitError>(
    name: &'static str,
    args: &ConfigArgs,
    threads: Threads,
    before_threads: impl FnOnce(&Config) -> Result<(), E>,
) -> Result<Started, ExitCode> {
    let source = args.source();
    let config = source.load().map_err(|e| report(name, &e))?;
    before_threads(&config).map_err(|e| report(name, &e))?;
    let telemetry = vigil_telemetry::init(name, &config.telemetry).map_err(|e| report(name, &e))?;
    let mut builder = match threads {
        Threads::One => tokio::runtime::Builder::new_current_thread(),
        Threads::Two => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    let runtime = builder
        .thread_name(name)
        .enable_all()
        .build()
        .map_err(|e| report(name, &StartError::Runtime(e)))?;
    Ok(Started {
        source,
        config,
        runtime,
        telemetry,
    })
}

/// The `before_threads` of a daemon with nothing to do before threads.
pub fn nothing_first(_: &Config) -> Result<(), Infallible> {
    Ok(())
}

/// Prints `name: error` and gives `code`: for a client (vigilctl) whose
/// codes are its own. A daemon [`report`]s an [`ExitError`] instead.
pub fn fail(name: &str, code: u8, error: impl Display) -> ExitCode {
    eprintln!("{name}: {error}");
    ExitCode::from(code)
}

/// A daemon's whole `main` after its flags: [`start`] (nothing to do while
/// single-threaded), `run(config)` on the runtime (its own shutdown future
/// is [`terminated`]), then [`finish`].
pub fn serve<E, Fut>(
    name: &'static str,
    args: &ConfigArgs,
    threads: Threads,
    run: impl FnOnce(Config) -> Fut,
) -> ExitCode
where
    E: ExitError,
    Fut: Future<Output = Result<(), E>>,
{
    let started = match start(name, args, threads, nothing_first) {
        Ok(started) => started,
        Err(code) => return code,
    };
    // `started` (its telemetry guard) lives until the result is reported.
    let result = started.runtime.block_on(run(started.config));
    finish(name, result)
}

/// The exit code for a service's result: 0, or the error's own code after
/// [`report`]ing it.
pub fn finish<E: ExitError>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitStatus::Clean.into(),
        Err(e) => report(name, &e),
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

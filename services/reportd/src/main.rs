//! `vigil-reportd`: parses flags and runs [`vigil_reportd::run`], or with
//! `--rebuild` [`vigil_reportd::rebuild`]. Every error knows its exit code
//! ([`vigil_reportd::ReportdError`]'s variants name theirs): 0 clean, 1
//! runtime failure (among them a rebuild while the service runs: the
//! message says to stop it), 2 bad flags, 78 bad configuration.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigil_service::ConfigArgs;

const NAME: &str = "vigil-reportd";

#[derive(Debug, Parser)]
#[command(
    name = "vigil-reportd",
    version,
    about = "Vigil's reports: indexes the event log into SQLite, writes daily and weekly reports"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// Recreate the reports database from the event log, then exit (stop
    /// the service first).
    #[arg(long)]
    rebuild: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = match vigil_service::start(
        NAME,
        &cli.config,
        vigil_service::Threads::Two,
        vigil_service::nothing_first,
    ) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let result = if cli.rebuild {
        started
            .runtime
            .block_on(vigil_reportd::rebuild(&started.config))
            .map(|through| println!("rebuilt the reports database through event {through}"))
    } else {
        started.runtime.block_on(vigil_reportd::run(
            started.config,
            vigil_service::terminated(),
        ))
    };
    vigil_service::finish(NAME, result)
}

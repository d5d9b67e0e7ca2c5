//! `vigil-alertd`: parses flags and runs [`vigil_alertd::run`]. Exit codes
//! are `vigil_service`'s: 0 clean, 1 runtime failure (among them kernel
//! limits too small for the alert queue: the message says what to set),
//! 78 bad configuration.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigil_service::ConfigArgs;

#[derive(Debug, Parser)]
#[command(
    name = "vigil-alertd",
    version,
    about = "Vigil's alerts: hooks and webhooks"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let started = match vigil_service::start("vigil-alertd", &cli.config, |_| Ok(())) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let result = started.runtime.block_on(vigil_alertd::run(
        started.config,
        vigil_service::terminated(),
    ));
    vigil_service::finish(result)
}

//! `vigil-alertd`: parses flags and runs [`vigil_alertd::run`]. Every error
//! knows its exit code ([`vigil_alertd::AlertdError`]'s variants name
//! theirs): 0 clean, 1 runtime failure (among them kernel limits too small
//! for the alert queue: the message says what to set), 2 bad flags, 78 the
//! configuration or a file it names (the webhook's secret).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigil_service::ConfigArgs;

const NAME: &str = "vigil-alertd";

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
    vigil_service::serve(NAME, &cli.config, vigil_service::Threads::One, |config| {
        vigil_alertd::run(config, vigil_service::terminated())
    })
}

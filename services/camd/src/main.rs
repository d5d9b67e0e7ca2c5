//! `vigil-camd`: parses flags and runs [`vigil_camd::run`] for one camera.
//! Every error knows its exit code ([`vigil_camd::CamdError`]'s variants
//! name theirs): 0 clean, 1 runtime failure (GStreamer missing a plugin:
//! the message names it), 2 bad flags, 78 the configuration or a file it
//! names (an unknown camera, a missing or unreadable key).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigil_service::ConfigArgs;

const NAME: &str = "vigil-camd";

#[derive(Debug, Parser)]
#[command(
    name = "vigil-camd",
    version,
    about = "Vigil's camera: captures, encodes H.264 and streams it to the hub"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// Which [[cameras]] entry this process is (default: the only one).
    #[arg(long)]
    camera: Option<String>,
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
    let setup = match vigil_camd::Setup::from_config(&started.config, cli.camera.as_deref()) {
        Ok(setup) => setup,
        Err(e) => return vigil_service::report(NAME, &e),
    };
    let result = started
        .runtime
        .block_on(vigil_camd::run(setup, vigil_service::terminated()));
    vigil_service::finish(NAME, result)
}

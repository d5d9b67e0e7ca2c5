//! `vigilctl`: parses flags and calls into [`vigilctl`]'s library.
//!
//! Exit codes: 0 success, 1 the hub could not be reached or read, 2 bad
//! flags, 78 an invalid configuration.

#![forbid(unsafe_code)]

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use vigil_service::{ConfigArgs, EX_CONFIG, EXIT_FAILURE};

#[derive(Debug, Parser)]
#[command(name = "vigilctl", version, about = "Command-line client of Vigil")]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the system and every sensor.
    Status {
        /// Read the shared sensor table on this machine directly (needs the
        /// hub's user or root).
        #[arg(long)]
        local: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match cli.config.source().load() {
        Ok(c) => c,
        Err(e) => return vigil_service::fail("vigilctl", EX_CONFIG, e),
    };
    match cli.command {
        Command::Status { local: false } => vigil_service::fail(
            "vigilctl",
            EXIT_FAILURE,
            "this release reads the status only on the hub itself: use `vigilctl status --local`",
        ),
        Command::Status { local: true } => {
            match vigilctl::local_status(&config, Duration::from_secs(5)) {
                Ok(status) if cli.json => {
                    println!("{}", status.to_json());
                    ExitCode::SUCCESS
                }
                Ok(status) => {
                    print!("{}", status.render(SystemTime::now()));
                    ExitCode::SUCCESS
                }
                Err(e) => vigil_service::fail("vigilctl", EXIT_FAILURE, e),
            }
        }
    }
}

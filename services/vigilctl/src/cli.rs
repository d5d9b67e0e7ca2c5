//! vigilctl's global flags and [`run`]: `main` only parses and calls it.
//! The commands and their own flags are in [`crate::commands`].

use std::path::PathBuf;

use clap::{CommandFactory, Parser};
use vigil_service::ConfigArgs;

use crate::commands::{Command, Context};
use crate::error::Error;
use crate::output::Output;
use crate::remote::Credentials;

#[derive(Debug, Parser)]
#[command(
    name = "vigilctl",
    version,
    about = "Command-line client of Vigil",
    after_help = "Exit codes: 0 ok, 1 failed, 2 bad flags, 3 hub unreachable, 4 not paired, \
                  5 wrong PIN or role, 6 locked out, 7 refused by the alarm's rules, 78 bad config"
)]
pub struct Cli {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print JSON instead of text (one object per line for `events`).
    #[arg(long, global = true)]
    pub json: bool,
    /// The hub's address (host:port); default: the one stored at pairing.
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub hub: Option<String>,
    /// The credentials directory; default $VIGIL_CREDENTIALS or ~/.config/vigil.
    #[arg(long, global = true, value_name = "DIR")]
    pub credentials: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// Runs one command; the error knows its exit code.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let Cli {
        config,
        json,
        hub,
        credentials,
        command,
    } = cli;
    let ctx = Context::new(
        Output::new(json),
        Credentials::locate(credentials),
        hub,
        config,
        Cli::command,
    );
    command.run(&ctx).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let e = Cli::try_parse_from(["vigilctl", "arm", "sideways"]).expect_err("no such mode");
        assert_eq!(e.exit_code(), i32::from(crate::error::exit::USAGE));
    }
}

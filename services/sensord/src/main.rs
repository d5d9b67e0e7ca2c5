//! `vigil-sensord`: parses flags and runs [`vigil_sensord::run`], or, as
//! `vigil-sensord sim ...`, drives the simulated board. Every error knows
//! its exit code ([`vigil_sensord::SensordError`]'s variants name theirs):
//! 0 clean, 1 runtime failure, 2 bad flags, 78 bad configuration.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_sensord::SensordError;
use vigil_service::ConfigArgs;

const NAME: &str = "vigil-sensord";

#[derive(Debug, Parser)]
#[command(name = "vigil-sensord", version, about = "Vigil's GPIO sensor service")]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service (the default).
    Run,
    /// Drive the simulated board: `set front-door open`, `get 17`, `outputs`.
    Sim {
        #[arg(required = true, num_args = 1..)]
        words: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Sim { words }) = &cli.command {
        return match sim(&cli.config, words) {
            Ok(answer) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Err(e) => vigil_service::report("vigil-sensord sim", &e),
        };
    }
    let started = match vigil_service::start(
        NAME,
        &cli.config,
        vigil_service::Threads::One,
        vigil_service::nothing_first,
    ) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let result = started.runtime.block_on(vigil_sensord::run(
        started.source,
        started.config,
        vigil_service::terminated(),
    ));
    vigil_service::finish(NAME, result)
}

/// `vigil-sensord sim WORDS`: one command to the simulated board.
fn sim(args: &ConfigArgs, words: &[String]) -> Result<String, SensordError> {
    let config = args.source().load()?;
    let socket = config.runtime.sim_gpio_socket();
    vigil_sensord::sim_control::send(&socket, &words.join(" ")).map_err(SensordError::Sim)
}

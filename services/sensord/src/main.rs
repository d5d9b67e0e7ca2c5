//! `vigil-sensord`: parses flags and runs [`vigil_sensord::run`], or, as
//! `vigil-sensord sim ...`, drives the simulated board. Exit codes are
//! `vigil_service`'s: 0 clean, 1 runtime failure, 78 bad configuration.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_service::{ConfigArgs, EX_CONFIG, EXIT_FAILURE};

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
        let config = match cli.config.source().load() {
            Ok(c) => c,
            Err(e) => return vigil_service::fail("vigil-sensord", EX_CONFIG, e),
        };
        let socket = config.runtime.sim_gpio_socket();
        return match vigil_sensord::sim_control::send(&socket, &words.join(" ")) {
            Ok(answer) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Err(e) => vigil_service::fail("vigil-sensord sim", EXIT_FAILURE, e),
        };
    }
    let started = match vigil_service::start("vigil-sensord", &cli.config, |_| Ok(())) {
        Ok(started) => started,
        Err(code) => return code,
    };
    let result = started.runtime.block_on(vigil_sensord::run(
        started.source,
        started.config,
        vigil_service::terminated(),
    ));
    vigil_service::finish(result)
}

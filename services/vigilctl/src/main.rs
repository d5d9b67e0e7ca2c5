//! `vigilctl`: parses flags and runs [`vigilctl::cli::run`]. Exit codes are
//! listed in `vigilctl --help` and the README; each error carries its own.

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigilctl::cli::{self, Cli};

fn main() -> ExitCode {
    // Bad flags exit 2 here, with clap's usage message.
    let cli = Cli::parse();
    // One thread: a command is one conversation with the hub.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vigil_service::fail("vigilctl", 1, format!("cannot start: {e}")),
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => vigil_service::fail("vigilctl", e.exit_code(), e),
    }
}

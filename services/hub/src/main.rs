//! `vigil-hub`: parses flags and runs [`vigil_hub::run`]. Every error knows
//! its exit code ([`vigil_hub::HubError`]'s variants name theirs): 0 clean,
//! 1 runtime failure, 2 bad flags, 78 the configuration or a file it names
//! (an unreadable PIN hash file among them).

#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::Parser;
use vigil_hub::HubError;
use vigil_service::ConfigArgs;

const NAME: &str = "vigil-hub";

#[derive(Debug, Parser)]
#[command(
    name = "vigil-hub",
    version,
    about = "Vigil's hub: sensor table, alarm and APIs"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArgs,
}

fn main() -> ExitCode {
    // First, before any thread exists: every thread must block the doorbell
    // signal, or the kernel may deliver it to one that does not, and its
    // default action (terminate) would kill the hub.
    if let Err(e) = vigil_ipc::doorbell::block_doorbell_signal() {
        return vigil_service::report(NAME, &HubError::from(e));
    }
    // Also before any thread: PIN lookups (19 MiB each) must give their
    // memory back, or a flood of PINs leaves the hub hundreds of MiB larger.
    if let Err(e) = vigil_ipc::process::return_large_allocations() {
        return vigil_service::report(NAME, &HubError::from(e));
    }
    let cli = Cli::parse();
    let started =
        match vigil_service::start(NAME, &cli.config, vigil_service::Threads::Two, |config| {
            // ipc-channel binds its rendezvous sockets in TMPDIR: keep them in
            // the runtime directory every service shares (systemd may give each
            // unit a private /tmp).
            let dir = &config.runtime.runtime_dir;
            vigil_hub::ensure_runtime_dir(dir)?;
            vigil_ipc::process::set_temp_dir(dir).map_err(HubError::from)
        }) {
            Ok(started) => started,
            Err(code) => return code,
        };
    // The loop runs on this thread, on a one-thread runtime of its own that
    // reads the doorbell itself (no hop from a worker); the servers run on
    // `started.runtime`'s workers, which the loop's fsyncs never hold up.
    let result = match tokio::runtime::Builder::new_current_thread()
        .thread_name(NAME)
        .enable_all()
        .build()
    {
        Ok(loop_runtime) => loop_runtime.block_on(vigil_hub::run(
            started.source,
            started.config,
            vigil_service::terminated(),
            started.runtime.handle().clone(),
        )),
        Err(e) => Err(HubError::Signal(e)),
    };
    vigil_service::finish(NAME, result)
}

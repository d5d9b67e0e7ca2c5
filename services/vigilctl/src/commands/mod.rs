//! vigilctl's commands, one module per group. Each module owns its
//! commands' flags (a clap `Args` struct, whose doc comment is the
//! command's help) and their handler: [`Ask`] for a command that talks to
//! the hub from its start (it is handed the connection), else [`Run`]. A
//! handler prints through [`Output`]; it never reads `--json`, maps a gRPC
//! status or picks an exit code (the error it returns knows its own).
//! A command that only lists what the hub has is a [`list::Row`] type:
//! `List<that type>` is the command.
//!
//! Adding a command: a file here with its `Args` struct and `impl Ask` (or
//! `impl Run`), and one line in the [`commands!`] list below.

use std::io::IsTerminal;
use std::path::Path;

use vigil_config::Config;
use vigil_proto::v1 as pb;
use vigil_service::ConfigArgs;

use crate::error::Error;
use crate::hub::Hub;
use crate::local::LocalError;
use crate::output::Output;
use crate::remote::Credentials;
use list::List;

pub mod alarm;
pub mod cameras;
pub mod clients;
pub mod completions;
pub mod events;
pub mod history;
pub mod list;
pub mod pair;
pub mod report;
pub mod sensors;
pub mod status;
pub mod system;
pub mod users;

/// What a command does with its flags.
pub(crate) trait Run {
    async fn run(&self, ctx: &Context) -> Result<(), Error>;
}

/// A command that talks to the hub from its start: it is handed the
/// connection (made by [`Context::connect`]) and where to print. Commands
/// that must check something first (a flag, a PIN typed in) implement
/// [`Run`] and connect themselves.
pub(crate) trait Ask {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error>;
}

impl<T: Ask> Run for T {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        self.ask(&ctx.connect().await?, ctx.out).await
    }
}

/// Lists the commands: makes the [`Command`] enum clap parses (a variant
/// `HashPin` is the command `hash-pin`) and the dispatch to each one's
/// [`Run`], so the list is written once.
macro_rules! commands {
    ($($name:ident($args:ty),)*) => {
        /// A command and its flags.
        #[derive(Debug, clap::Subcommand)]
        pub enum Command {
            $($name($args),)*
        }

        impl Command {
            pub(crate) async fn run(&self, ctx: &Context) -> Result<(), Error> {
                match self {
                    $(Command::$name(args) => args.run(ctx).await,)*
                }
            }
        }
    };
}

// In the order `vigilctl --help` lists them.
commands! {
    Status(status::Status),
    Arm(alarm::Arm),
    Disarm(alarm::Disarm),
    Panic(alarm::Panic),
    Bypass(alarm::Bypass),
    SirenTest(system::SirenTest),
    System(system::System),
    Sensors(sensors::Sensors),
    Events(events::Events),
    Report(report::Report),
    History(history::History),
    Cameras(List<pb::Camera>),
    Snapshot(cameras::Snapshot),
    Live(cameras::Live),
    Record(cameras::Record),
    Clips(List<pb::Clip>),
    Clip(cameras::Clip),
    ClipStill(cameras::ClipStill),
    ClipDelete(cameras::ClipDelete),
    Camera(cameras::Camera),
    Pair(pair::Pair),
    Clients(List<pb::Client>),
    Revoke(clients::Revoke),
    Invite(clients::Invite),
    Whoami(clients::Whoami),
    Renew(clients::Renew),
    Unpair(clients::Unpair),
    Users(List<pb::User>),
    UserAdd(users::UserAdd),
    UserRemove(users::UserRemove),
    UserPin(users::UserPin),
    HashPin(users::HashPin),
    Completions(completions::Completions),
}

/// What every command gets from the global flags.
#[derive(Debug)]
pub(crate) struct Context {
    /// Where the answer goes, as text or JSON.
    pub(crate) out: Output,
    /// The pairing credentials (`--credentials`, else the default place).
    pub(crate) credentials: Credentials,
    /// `--hub`: overrides the address stored at pairing.
    hub: Option<String>,
    /// `--config` or `--demo`: where the hub machine's config is, for the
    /// views of the hub machine itself.
    config: ConfigArgs,
    /// Makes the whole command line's definition (for `completions`): a
    /// function, so commands need not know the global flags' module and
    /// nothing is built unless asked for.
    pub(crate) cli: fn() -> clap::Command,
}

impl Context {
    pub(crate) fn new(
        out: Output,
        credentials: Credentials,
        hub: Option<String>,
        config: ConfigArgs,
        cli: fn() -> clap::Command,
    ) -> Context {
        Context {
            out,
            credentials,
            hub,
            config,
            cli,
        }
    }

    /// Connects to the hub as the paired client.
    pub(crate) async fn connect(&self) -> Result<Hub, Error> {
        Hub::connect(&self.credentials, self.hub.as_deref()).await
    }

    /// Runs `ask` against the hub on this machine (its socket or its
    /// table, with the config saying where they are). The bootstrap socket
    /// and the table block, so this runs off the async runtime.
    pub(crate) async fn on_hub_machine<T: Send + 'static>(
        &self,
        ask: impl FnOnce(&Config) -> Result<T, LocalError> + Send + 'static,
    ) -> Result<T, Error> {
        let config = self.config.source().load()?;
        let answer = tokio::task::spawn_blocking(move || ask(&config))
            .await
            .map_err(Error::Task)?;
        Ok(answer?)
    }
}

/// Reads a secret: without echo from a terminal, else one line of stdin
/// (so scripts can pipe it in and it never shows in `ps`).
pub(crate) fn read_secret(what: &'static str) -> Result<String, Error> {
    let fail = |source| Error::ReadSecret { what, source };
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(format!("{what}: "))
            .map(|s| s.trim().to_owned())
            .map_err(fail);
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).map_err(fail)?;
    Ok(line.trim().to_owned())
}

/// Writes what the hub sent to the file the person named.
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    std::fs::write(path, bytes).map_err(|source| Error::Write {
        path: path.to_owned(),
        source,
    })
}

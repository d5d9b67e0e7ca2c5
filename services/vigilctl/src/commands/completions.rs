//! `completions`: shell completions, made from the flags themselves.

use super::{Context, Run};
use crate::error::Error;

/// Print shell completions.
#[derive(Debug, clap::Args)]
pub struct Completions {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

impl Run for Completions {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let mut command = (ctx.cli)();
        clap_complete::generate(self.shell, &mut command, "vigilctl", &mut std::io::stdout());
        Ok(())
    }
}

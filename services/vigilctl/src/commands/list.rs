//! The listings: `cameras`, `clips`, `clients` and `users` each ask the
//! hub for one list and print a row per item. [`List`] does that once; a
//! listing is a [`Row`] type, which says how to fetch the rows, how one
//! reads (its [`Render`]) and what the command is for.

use std::future::Future;
use std::marker::PhantomData;

use super::Ask;
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, Render};

/// An item of a listing.
pub trait Row: Render + Sized {
    /// The command's help.
    const ABOUT: &'static str;
    /// Every item, in the hub's order.
    fn fetch(hub: &Hub) -> impl Future<Output = Result<Vec<Self>, Error>>;
}

/// A listing command (no flags of its own).
#[derive(Debug, clap::Args)]
#[command(about = R::ABOUT)]
pub struct List<R: Row> {
    #[arg(skip)]
    rows: PhantomData<R>,
}

impl<R: Row> Ask for List<R> {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        out.rows(R::fetch(hub).await?);
        Ok(())
    }
}

//! The keypad users (admin) and their PINs: `users` and `hash-pin`.

use serde_json::json;
use vigil_proto::v1 as pb;

use super::list::Row;
use super::{Context, Run, read_secret};
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Render, role_name};

/// Print the argon2 hash of a PIN read from standard input, for the config.
#[derive(Debug, clap::Args)]
pub struct HashPin {}

impl Run for HashPin {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let pin = read_secret("PIN")?;
        // Only the hash, whatever --json says: it goes into a file.
        ctx.out.say(vigil_alarm::users::hash_pin(&pin)?);
        Ok(())
    }
}

impl Render for pb::User {
    fn json(&self) -> serde_json::Value {
        json!({"name": self.name, "role": role_name(self.role),
            "has_duress_code": self.has_duress_code})
    }

    fn text(&self) -> String {
        let role = role_name(self.role);
        let duress = if self.has_duress_code {
            " (duress code set)"
        } else {
            ""
        };
        format!("{:<24} {role}{duress}\n", self.name)
    }
}

impl Row for pb::User {
    const ABOUT: &str = "Keypad users (admin)";
    async fn fetch(hub: &Hub) -> Result<Vec<Self>, Error> {
        let list = hub.admin().list_users(pb::ListUsersRequest {}).await;
        Ok(hub.answer(list)?.users)
    }
}

//! The keypad users (admin) and their PINs: `users`, `user-add`,
//! `user-remove`, `user-pin` and `hash-pin`. PINs are read without echo
//! from a terminal, else one per line of standard input, in the order the
//! help says (the admin's PIN first); never from the command line.

use serde_json::json;
use vigil_proto::v1 as pb;

use super::list::Row;
use super::pair::RoleArg;
use super::{Context, Run, read_secret};
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Render, role_name};

/// Add a keypad user (admin). Reads your admin PIN, then the new user's
/// PIN, then with --duress their duress PIN.
#[derive(Debug, clap::Args)]
pub struct UserAdd {
    pub name: String,
    #[arg(long, value_enum, default_value = "user")]
    pub role: RoleArg,
    /// Also set a duress PIN.
    #[arg(long)]
    pub duress: bool,
}

impl Run for UserAdd {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let admin_pin = read_secret("your admin PIN")?;
        let pin = read_secret("the new user's PIN")?;
        let duress_pin = if self.duress {
            read_secret("the new user's duress PIN")?
        } else {
            String::new()
        };
        let hub = ctx.connect().await?;
        let request = pb::AddUserRequest {
            name: self.name.clone(),
            role: self.role.pb() as i32,
            pin,
            duress_pin,
            admin_pin,
        };
        let added = hub.answer(hub.admin().add_user(request).await)?;
        ctx.out.show(&added.user.unwrap_or_default());
        Ok(())
    }
}

/// Remove a user added with user-add, and revoke their clients (admin).
/// Reads your admin PIN.
#[derive(Debug, clap::Args)]
pub struct UserRemove {
    pub name: String,
}

impl Run for UserRemove {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let admin_pin = read_secret("your admin PIN")?;
        let hub = ctx.connect().await?;
        let request = pb::RemoveUserRequest {
            name: self.name.clone(),
            admin_pin,
        };
        let removed = hub.answer(hub.admin().remove_user(request).await)?;
        let revoked = match removed.revoked_clients.as_slice() {
            [] => String::new(),
            clients => format!("; revoked {}", clients.join(", ")),
        };
        ctx.out.say(format_args!("removed {}{revoked}", self.name));
        Ok(())
    }
}

/// Set a user's PIN (admin). Reads your admin PIN, then the new PIN (or
/// with --duress the new duress PIN).
#[derive(Debug, clap::Args)]
pub struct UserPin {
    pub name: String,
    /// Set the duress PIN instead of the PIN.
    #[arg(long, conflicts_with = "clear_duress")]
    pub duress: bool,
    /// Remove the duress PIN.
    #[arg(long)]
    pub clear_duress: bool,
}

impl Run for UserPin {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let admin_pin = read_secret("your admin PIN")?;
        let (pin, duress_pin) = match (self.duress, self.clear_duress) {
            (_, true) => (String::new(), String::new()),
            (true, false) => (String::new(), read_secret("the new duress PIN")?),
            (false, false) => (read_secret("the new PIN")?, String::new()),
        };
        let hub = ctx.connect().await?;
        let request = pb::SetPinRequest {
            name: self.name.clone(),
            pin,
            duress_pin,
            clear_duress: self.clear_duress,
            admin_pin,
        };
        let changed = hub.answer(hub.admin().set_pin(request).await)?;
        ctx.out.show(&changed.user.unwrap_or_default());
        Ok(())
    }
}

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
            "has_duress_code": self.has_duress_code, "source": self.source})
    }

    fn text(&self) -> String {
        let role = role_name(self.role);
        let duress = if self.has_duress_code {
            " (duress code set)"
        } else {
            ""
        };
        format!("{:<24} {role:<6} {:<7}{duress}\n", self.name, self.source)
    }
}

impl Row for pb::User {
    const ABOUT: &str = "Keypad users (admin)";
    async fn fetch(hub: &Hub) -> Result<Vec<Self>, Error> {
        let list = hub.admin().list_users(pb::ListUsersRequest {}).await;
        Ok(hub.answer(list)?.users)
    }
}

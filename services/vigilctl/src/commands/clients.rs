//! The paired clients: `clients` and `revoke` (admin), and `whoami`.

use serde_json::json;
use vigil_proto::v1 as pb;

use super::Ask;
use super::list::Row;
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, Render, role_name, time_text};

/// Forget a paired client (admin).
#[derive(Debug, clap::Args)]
pub struct Revoke {
    pub name: String,
}

impl Ask for Revoke {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let name = self.name.clone();
        hub.answer(
            hub.admin()
                .revoke_client(pb::RevokeClientRequest { name })
                .await,
        )?;
        // The same sentence with --json: there is nothing more to say.
        out.say(format_args!("revoked {}", self.name));
        Ok(())
    }
}

/// This client as the hub knows it: name, role, user, certificate and
/// its expiry.
#[derive(Debug, clap::Args)]
pub struct Whoami {}

impl Ask for Whoami {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let answer = hub.answer(hub.admin().who_am_i(pb::WhoAmIRequest {}).await)?;
        out.show(&answer.client.unwrap_or_default());
        Ok(())
    }
}

impl Render for pb::Client {
    fn json(&self) -> serde_json::Value {
        json!({"name": self.name, "role": role_name(self.role),
            "user": (!self.user.is_empty()).then_some(&self.user),
            "certificate_sha256": self.certificate_sha256,
            "paired_unix_ms": self.paired_unix_ms,
            "expires_unix_ms": (self.expires_unix_ms != 0).then_some(self.expires_unix_ms)})
    }

    fn text(&self) -> String {
        let role = role_name(self.role);
        let user = if self.user.is_empty() {
            "-"
        } else {
            &self.user
        };
        let expires = match self.expires_unix_ms {
            0 => "never".to_owned(),
            at => time_text(at),
        };
        format!(
            "{:<24} {role:<6} {user:<12} expires {expires}  {}\n",
            self.name,
            &self.certificate_sha256[..self.certificate_sha256.len().min(16)]
        )
    }
}

impl Row for pb::Client {
    const ABOUT: &str = "Paired clients (admin)";
    async fn fetch(hub: &Hub) -> Result<Vec<Self>, Error> {
        let list = hub.admin().list_clients(pb::ListClientsRequest {}).await;
        Ok(hub.answer(list)?.clients)
    }
}

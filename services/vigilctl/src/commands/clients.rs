//! The paired clients (admin): `clients` and `revoke`.

use serde_json::json;
use vigil_proto::v1 as pb;

use super::Ask;
use super::list::Row;
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, Render, role_name};

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

impl Render for pb::Client {
    fn json(&self) -> serde_json::Value {
        json!({"name": self.name, "role": role_name(self.role),
            "certificate_sha256": self.certificate_sha256,
            "paired_unix_ms": self.paired_unix_ms})
    }

    fn text(&self) -> String {
        let role = role_name(self.role);
        format!("{:<24} {role:<11} {}\n", self.name, self.certificate_sha256)
    }
}

impl Row for pb::Client {
    const ABOUT: &str = "Paired clients (admin)";
    async fn fetch(hub: &Hub) -> Result<Vec<Self>, Error> {
        let list = hub.admin().list_clients(pb::ListClientsRequest {}).await;
        Ok(hub.answer(list)?.clients)
    }
}

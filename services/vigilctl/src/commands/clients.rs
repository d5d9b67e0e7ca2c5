//! The paired clients: `clients`, `revoke` and `invite` (admin), and this
//! client's own `whoami`, `renew` and `unpair`.

use serde_json::json;
use vigil_proto::v1 as pb;

use super::list::Row;
use super::{Ask, Context, Run};
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

/// Renew this client's certificate (a new key; a year from now).
#[derive(Debug, clap::Args)]
pub struct Renew {}

impl Run for Renew {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let hub = ctx.connect().await?;
        let expires = crate::remote::renew(&ctx.credentials, hub.channel(), hub.address()).await?;
        ctx.out.say(format_args!(
            "renewed; the new certificate expires {}",
            time_text(expires)
        ));
        Ok(())
    }
}

/// Unpair this client: the hub forgets it, and its key and certificate
/// are deleted here.
#[derive(Debug, clap::Args)]
pub struct Unpair {}

impl Run for Unpair {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let hub = ctx.connect().await?;
        hub.answer(hub.admin().revoke_self(pb::RevokeSelfRequest {}).await)?;
        ctx.credentials.forget()?;
        ctx.out.say("unpaired: the hub no longer knows this client");
        Ok(())
    }
}

/// Make a pairing token for a new client, from an admin client anywhere
/// (on the hub machine `pair` does it without pairing first).
#[derive(Debug, clap::Args)]
pub struct Invite {
    /// The role of the new client.
    #[arg(long, value_enum, default_value = "user")]
    pub role: crate::commands::pair::RoleArg,
    /// The keypad user the new client belongs to: what it does is theirs.
    #[arg(long)]
    pub user: Option<String>,
    /// The hub address to put in the token (default: the one this client
    /// uses).
    #[arg(long)]
    pub address: Option<String>,
}

impl Run for Invite {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let address = match &self.address {
            Some(address) => address.clone(),
            None => ctx.credentials.hub()?,
        };
        let hub_address =
            crate::token::HubAddress::parse(&address).map_err(|reason| Error::PairAddress {
                address: address.clone(),
                reason,
            })?;
        let hub = ctx.connect().await?;
        let request = pb::CreatePairingCodeRequest {
            role: self.role.pb() as i32,
            user: self.user.clone().unwrap_or_default(),
        };
        let code = hub.answer(hub.admin().create_pairing_code(request).await)?;
        let offer = crate::commands::pair::Offer::new(
            vigil_bootstrap::PairingCode {
                code: code.code,
                expires_unix_ms: u64::try_from(code.expires_unix_ms).unwrap_or(0),
                ca_sha256: code.ca_sha256,
                grpc_listen: address,
                role: self.role.as_str().to_owned(),
            },
            hub_address,
        )?;
        ctx.out.show(&offer);
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

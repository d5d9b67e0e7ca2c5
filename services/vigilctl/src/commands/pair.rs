//! `pair`: on the hub machine, a one-time pairing token (and with `--here`
//! this machine paired at once); elsewhere, pairing with a token.

use std::path::PathBuf;

use clap::ValueEnum;
use serde_json::json;
use vigil_bootstrap::PairingCode;

use super::{Context, Run};
use crate::error::Error;
use crate::local;
use crate::output::Render;
use crate::remote::{self, Token};

/// Pair a client. On the hub (as its user or root): make a one-time
/// token, and with --here pair this machine too. Elsewhere: --token.
#[derive(Debug, clap::Args)]
pub struct Pair {
    /// The pairing token shown on the hub.
    #[arg(long, conflicts_with_all = ["role", "address"])]
    pub token: Option<String>,
    /// This client's name (with --token or --here).
    #[arg(long)]
    pub name: Option<String>,
    /// The role of the client the token is for.
    #[arg(long, value_enum, default_value = "user")]
    pub role: RoleArg,
    /// The hub address to put in the token (default: this host's name
    /// and the gRPC port).
    #[arg(long)]
    pub address: Option<String>,
    /// Pair this machine right away, under NAME.
    #[arg(long, value_name = "NAME")]
    pub here: Option<String>,
}

/// The roles a pairing token can grant.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum RoleArg {
    Guest,
    User,
    Admin,
}

impl RoleArg {
    /// The role as the hub names it.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleArg::Guest => "guest",
            RoleArg::User => "user",
            RoleArg::Admin => "admin",
        }
    }
}

impl Run for Pair {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        match &self.token {
            Some(token) => self.with_token(ctx, token).await,
            None => self.on_hub(ctx).await,
        }
    }
}

impl Pair {
    /// Pairs this client with the hub named in `token`.
    async fn with_token(&self, ctx: &Context, token: &str) -> Result<(), Error> {
        let name = self.name.clone().ok_or(Error::NoName)?;
        let token = Token::parse(token)?;
        let role = remote::pair(&ctx.credentials, &token, &name).await?;
        ctx.out.show(&Paired {
            name,
            role,
            hub: token.hub,
            credentials: ctx.credentials.dir.clone(),
            here: false,
        });
        Ok(())
    }

    /// Asks the hub on this machine for a pairing code; shows the token,
    /// or with `--here` uses it at once.
    async fn on_hub(&self, ctx: &Context) -> Result<(), Error> {
        let role = self.role.as_str();
        let code = ctx
            .on_hub_machine(move |config| local::request_pairing_code(config, role, local::TIMEOUT))
            .await?;
        let listen: std::net::SocketAddr = code
            .grpc_listen
            .parse()
            .map_err(|_| Error::HubListen(code.grpc_listen.clone()))?;
        // A hub listening everywhere is reached here over loopback, and
        // from elsewhere by this host's name.
        let local = if listen.ip().is_unspecified() {
            format!("127.0.0.1:{}", listen.port())
        } else {
            listen.to_string()
        };
        let public = self.address.clone().unwrap_or_else(|| {
            if listen.ip().is_unspecified() {
                let host = nix::unistd::gethostname()
                    .ok()
                    .and_then(|h| h.into_string().ok())
                    .unwrap_or_else(|| "localhost".into());
                format!("{host}:{}", listen.port())
            } else {
                listen.to_string()
            }
        });
        let token = Token {
            hub: public,
            code: code.code.clone(),
            ca_sha256: code.ca_sha256.clone(),
        };
        let Some(name) = &self.here else {
            ctx.out.show(&Offer { code, token });
            return Ok(());
        };
        let here = Token {
            hub: local,
            ..token
        };
        let role = remote::pair(&ctx.credentials, &here, name).await?;
        ctx.out.show(&Paired {
            name: name.clone(),
            role,
            hub: here.hub,
            credentials: ctx.credentials.dir.clone(),
            here: true,
        });
        Ok(())
    }
}

/// A client just paired.
struct Paired {
    name: String,
    role: String,
    hub: String,
    credentials: PathBuf,
    /// Paired with `--here` on the hub machine (the hub's address then is
    /// only loopback, not worth telling).
    here: bool,
}

impl Render for Paired {
    fn json(&self) -> serde_json::Value {
        json!({"paired": self.name, "role": self.role, "hub": self.hub})
    }

    fn text(&self) -> String {
        let (name, role, dir) = (&self.name, &self.role, self.credentials.display());
        if self.here {
            format!("paired this machine as {name} ({role}); credentials in {dir}\n")
        } else {
            let hub = &self.hub;
            format!("paired as {name} ({role}) with the hub at {hub}; credentials in {dir}\n")
        }
    }
}

/// A pairing code offered for another client to use.
struct Offer {
    code: PairingCode,
    token: Token,
}

impl Render for Offer {
    fn json(&self) -> serde_json::Value {
        let c = &self.code;
        json!({"token": self.token.encode(), "code": c.code, "role": c.role,
               "expires_unix_ms": c.expires_unix_ms, "ca_sha256": c.ca_sha256})
    }

    fn text(&self) -> String {
        let token = self.token.encode();
        let mut out = format!(
            "Pairing code for a {} client, valid for 10 minutes and one use:\n\n  {}\n\n",
            self.code.role, self.code.code
        );
        out.push_str(&format!(
            "On the client:\n\n  vigilctl pair --name NAME --token '{token}'\n\n"
        ));
        if let Some(qr) = remote::qr(&token) {
            out.push_str(&format!("or scan this in the app:\n{qr}\n"));
        }
        out
    }
}

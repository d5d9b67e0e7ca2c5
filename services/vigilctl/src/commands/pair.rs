//! `pair`: on the hub machine, a one-time pairing token (and with `--here`
//! this machine paired at once); elsewhere, pairing with a token.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use clap::ValueEnum;
use serde_json::json;
use vigil_bootstrap::PairingCode;

use super::{Context, Run};
use crate::error::Error;
use crate::local;
use crate::output::Render;
use crate::remote;
use crate::token::{self, Host, HubAddress, Token};

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
    /// The keypad user the client belongs to: what it does is attributed
    /// to them (a shared device, such as a wall keypad, belongs to nobody).
    #[arg(long, conflicts_with = "token")]
    pub user: Option<String>,
    /// The hub address to put in the token, HOST:PORT, an IPv6 address in
    /// brackets (default: the hub's gRPC listening address, or, if that is
    /// a wildcard such as [::], this host's name and the gRPC port).
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
    /// The role as the API has it.
    pub(crate) fn pb(self) -> vigil_proto::v1::Role {
        match self {
            RoleArg::Guest => vigil_proto::v1::Role::Guest,
            RoleArg::User => vigil_proto::v1::Role::User,
            RoleArg::Admin => vigil_proto::v1::Role::Admin,
        }
    }

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
        let token = Token::parse(token).map_err(Error::BadToken)?;
        let role = remote::pair(&ctx.credentials, &token, &name).await?;
        ctx.out.show(&Paired {
            name,
            role,
            hub: token.hub.to_string(),
            credentials: ctx.credentials.dir.clone(),
            here: false,
        });
        Ok(())
    }

    /// Asks the hub on this machine for a pairing code; shows the token,
    /// or with `--here` uses it at once.
    async fn on_hub(&self, ctx: &Context) -> Result<(), Error> {
        let role = self.role.as_str();
        let user = self.user.clone();
        let code = ctx
            .on_hub_machine(move |config| {
                local::request_pairing_code(config, role, user, local::TIMEOUT)
            })
            .await?;
        let listen: SocketAddr = code
            .grpc_listen
            .parse()
            .map_err(|_| Error::HubListen(code.grpc_listen.clone()))?;
        let Some(name) = &self.here else {
            let public = match &self.address {
                Some(address) => {
                    HubAddress::parse(address).map_err(|reason| Error::PairAddress {
                        address: address.clone(),
                        reason,
                    })?
                }
                None => public_address(listen, this_host_name)?,
            };
            let token = hub_token(public, &code)?;
            ctx.out.show(&Offer { code, token });
            return Ok(());
        };
        // A hub listening everywhere is reached here over loopback.
        let local = if listen.ip().is_unspecified() {
            HubAddress::new(Host::Ipv4(Ipv4Addr::LOCALHOST), listen.port())
        } else {
            HubAddress::from_socket(listen)
        }
        .map_err(|reason| Error::MakeToken(format!("the hub listens on {listen}: {reason}")))?;
        let here = hub_token(local, &code)?;
        let role = remote::pair(&ctx.credentials, &here, name).await?;
        ctx.out.show(&Paired {
            name: name.clone(),
            role,
            hub: here.hub.to_string(),
            credentials: ctx.credentials.dir.clone(),
            here: true,
        });
        Ok(())
    }
}

/// What to do when the hub's address cannot go in a token.
const ADDRESS_HINT: &str = "give the address clients reach the hub at with --address HOST:PORT";

/// The token of the hub at `hub` for the code it just made.
fn hub_token(hub: HubAddress, code: &PairingCode) -> Result<Token, Error> {
    Token::new(hub, &code.code, &code.ca_sha256).map_err(|reason| {
        Error::MakeToken(format!(
            "the hub's answer does not fit a token ({reason}): are vigilctl and vigil-hub of \
             one version?"
        ))
    })
}

/// This machine's host name (gethostname(2)).
fn this_host_name() -> Result<String, String> {
    nix::unistd::gethostname()
        .map_err(|e| e.to_string())?
        .into_string()
        .map_err(|name| format!("{name:?} is not text"))
}

/// The address a client elsewhere reaches the hub at, when `--address`
/// does not say: the address the hub listens on, or, for a hub listening
/// on a wildcard (`[::]`, `0.0.0.0`), which no client can connect to, this
/// machine's name (`host_name`) and the hub's port.
fn public_address(
    listen: SocketAddr,
    host_name: impl FnOnce() -> Result<String, String>,
) -> Result<HubAddress, Error> {
    if !listen.ip().is_unspecified() {
        return HubAddress::from_socket(listen).map_err(|reason| {
            Error::MakeToken(format!(
                "the hub listens on {listen}: {reason}; {ADDRESS_HINT}"
            ))
        });
    }
    let name = host_name().map_err(|reason| {
        Error::MakeToken(format!(
            "cannot read this host's name: {reason}; {ADDRESS_HINT}"
        ))
    })?;
    let loopback = name.eq_ignore_ascii_case("localhost")
        || name.to_ascii_lowercase().starts_with("localhost.");
    if loopback {
        return Err(Error::MakeToken(format!(
            "this host is named {name:?}, which other machines cannot reach it by; \
             {ADDRESS_HINT}"
        )));
    }
    HubAddress::new(Host::Name(name), listen.port()).map_err(|reason| {
        Error::MakeToken(format!(
            "this host's name cannot go in a token: {reason}; {ADDRESS_HINT}"
        ))
    })
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
pub(crate) struct Offer {
    code: PairingCode,
    token: Token,
}

impl Offer {
    /// The offer of `code` for the hub at `hub`.
    pub(crate) fn new(code: PairingCode, hub: HubAddress) -> Result<Offer, Error> {
        let token = hub_token(hub, &code)?;
        Ok(Offer { code, token })
    }
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
        if let Some(qr) = token::qr(&token) {
            out.push_str(&format!("or scan this in the app:\n{qr}\n"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("a socket address")
    }

    fn named(name: &'static str) -> impl FnOnce() -> Result<String, String> {
        move || Ok(name.to_owned())
    }

    /// A hub listening on a wildcard puts this host's name in the token,
    /// never the wildcard; one listening on an address puts that address.
    #[test]
    fn the_token_names_an_address_a_client_can_reach() {
        let cases = [
            ("[::]:7443", "vigil", "vigil:7443"),
            ("0.0.0.0:7443", "vigil.home.arpa", "vigil.home.arpa:7443"),
            ("192.168.1.20:7443", "vigil", "192.168.1.20:7443"),
            ("[fd00::20]:8443", "vigil", "[fd00::20]:8443"),
        ];
        for (listen, host, want) in cases {
            let got = public_address(addr(listen), named(host)).expect(listen);
            assert_eq!(got.to_string(), want, "{listen}");
        }
        let names_fail = [
            ("[::]:7443", "localhost"),
            ("[::]:7443", "localhost.localdomain"),
            ("0.0.0.0:7443", "my_hub"),
            ("0.0.0.0:7443", ""),
        ];
        for (listen, host) in names_fail {
            let e = public_address(addr(listen), named(host)).expect_err(host);
            assert!(
                matches!(&e, Error::MakeToken(m) if m.contains("--address")),
                "{host}: {e}"
            );
        }
        let e = public_address(addr("[fe80::1%2]:7443"), named("vigil")).expect_err("zone");
        assert!(e.to_string().contains("zone id"), "{e}");
        let e = public_address(addr("[::]:7443"), || Err("EFAULT".into())).expect_err("no name");
        assert!(e.to_string().contains("EFAULT"), "{e}");
    }
}

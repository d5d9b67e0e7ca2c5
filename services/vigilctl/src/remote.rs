//! vigilctl's gRPC side: credentials on disk, TLS connections to the hub,
//! and pairing.
//!
//! Credentials live in one directory (`--credentials`, `$VIGIL_CREDENTIALS`,
//! or `~/.config/vigil`): `ca.pem` (the hub's CA), `client.pem` and
//! `client.key` (this client's certificate and key, mode 0600) and `hub`
//! (the hub's address). The key is made here and never leaves.

use std::fmt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use vigil_proto::v1 as pb;

/// The name in every hub certificate.
pub const SERVER_NAME: &str = "vigil-hub";
/// The prefix of a pairing token.
pub const TOKEN_PREFIX: &str = "vigil-pair:1:";

/// What went wrong talking to the hub, with the exit code it maps to.
#[derive(Debug)]
pub struct RemoteError {
    pub code: u8,
    pub message: String,
}

impl fmt::Display for RemoteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RemoteError {}

/// Exit codes (also in the README).
pub mod exit {
    /// The hub refused or failed the request for another reason.
    pub const FAILED: u8 = 1;
    /// A malformed argument (as clap's own usage errors).
    pub const USAGE: u8 = 2;
    /// The hub could not be reached.
    pub const UNREACHABLE: u8 = 3;
    /// Not paired, or the pairing was revoked.
    pub const NOT_PAIRED: u8 = 4;
    /// Wrong PIN or not allowed for this client's role.
    pub const DENIED: u8 = 5;
    /// Locked out after too many wrong PINs.
    pub const LOCKED_OUT: u8 = 6;
    /// Refused by the alarm's rules (open sensors, already armed).
    pub const REFUSED: u8 = 7;
}

impl RemoteError {
    fn new(code: u8, message: impl Into<String>) -> RemoteError {
        RemoteError {
            code,
            message: message.into(),
        }
    }

    /// A gRPC status, with the hub's message (already written for people).
    pub fn from_status(status: &tonic::Status, hub: &str) -> RemoteError {
        let message = status.message().to_owned();
        match status.code() {
            Code::Unavailable => RemoteError::new(
                exit::UNREACHABLE,
                format!(
                    "cannot reach the hub at {hub} ({message}); is vigil-hub running, and is \
                     its gRPC port reachable from here?"
                ),
            ),
            Code::Unauthenticated => RemoteError::new(exit::NOT_PAIRED, message),
            Code::PermissionDenied => RemoteError::new(exit::DENIED, message),
            Code::ResourceExhausted => RemoteError::new(exit::LOCKED_OUT, message),
            Code::FailedPrecondition | Code::NotFound | Code::InvalidArgument => {
                RemoteError::new(exit::REFUSED, message)
            }
            _ => RemoteError::new(exit::FAILED, format!("{:?}: {message}", status.code())),
        }
    }
}

/// The credentials directory.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub dir: PathBuf,
}

impl Credentials {
    /// `explicit`, else `$VIGIL_CREDENTIALS`, else `$XDG_CONFIG_HOME/vigil`
    /// or `~/.config/vigil`.
    pub fn locate(explicit: Option<PathBuf>) -> Credentials {
        let dir = explicit
            .or_else(|| std::env::var_os("VIGIL_CREDENTIALS").map(PathBuf::from))
            .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("vigil")))
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/vigil")))
            .unwrap_or_else(|| PathBuf::from(".vigil"));
        Credentials { dir }
    }

    fn read(&self, name: &str) -> Result<String, RemoteError> {
        std::fs::read_to_string(self.dir.join(name)).map_err(|e| {
            RemoteError::new(
                exit::NOT_PAIRED,
                format!(
                    "this client is not paired ({}: {e}); run `vigilctl pair` on the hub for a \
                     token, then `vigilctl pair --token TOKEN --name NAME` here",
                    self.dir.join(name).display()
                ),
            )
        })
    }

    /// The hub's address from pairing.
    pub fn hub(&self) -> Result<String, RemoteError> {
        Ok(self.read("hub")?.trim().to_owned())
    }

    fn write(&self, name: &str, contents: &str, mode: u32) -> Result<(), RemoteError> {
        use std::io::Write;
        let fail = |e: std::io::Error| {
            RemoteError::new(
                exit::FAILED,
                format!("cannot write {}: {e}", self.dir.join(name).display()),
            )
        };
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(self.dir.join(name))
            .map_err(fail)?;
        f.write_all(contents.as_bytes()).map_err(fail)
    }
}

fn endpoint(hub: &str) -> Result<Endpoint, RemoteError> {
    Endpoint::from_shared(format!("https://{hub}"))
        .map(|e| e.connect_timeout(std::time::Duration::from_secs(5)))
        .map_err(|e| RemoteError::new(exit::FAILED, format!("bad hub address {hub:?}: {e}")))
}

/// A mutually authenticated channel to the hub (`hub` overrides the
/// address stored at pairing).
pub async fn connect(
    creds: &Credentials,
    hub: Option<&str>,
) -> Result<(Channel, String), RemoteError> {
    let hub = match hub {
        Some(h) => h.to_owned(),
        None => creds.hub()?,
    };
    let tls = ClientTlsConfig::new()
        .domain_name(SERVER_NAME)
        .ca_certificate(Certificate::from_pem(creds.read("ca.pem")?))
        .identity(Identity::from_pem(
            creds.read("client.pem")?,
            creds.read("client.key")?,
        ));
    let channel = endpoint(&hub)?
        .tls_config(tls)
        .map_err(|e| RemoteError::new(exit::FAILED, format!("TLS set-up: {e}")))?
        .connect()
        .await
        .map_err(|e| {
            RemoteError::new(
                exit::UNREACHABLE,
                format!(
                    "cannot reach the hub at {hub}: {e}; is vigil-hub running, and is its gRPC \
                     port reachable from here?"
                ),
            )
        })?;
    Ok((channel, hub))
}

/// A channel with no client certificate (to show that the hub refuses it).
pub async fn connect_anonymous(ca_pem: &str, hub: &str) -> Result<Channel, RemoteError> {
    let tls = ClientTlsConfig::new()
        .domain_name(SERVER_NAME)
        .ca_certificate(Certificate::from_pem(ca_pem));
    endpoint(hub)?
        .tls_config(tls)
        .map_err(|e| RemoteError::new(exit::FAILED, format!("TLS set-up: {e}")))?
        .connect()
        .await
        .map_err(|e| RemoteError::new(exit::UNREACHABLE, format!("cannot reach {hub}: {e}")))
}

/// A parsed pairing token: `vigil-pair:1:<host:port>:<code>:<ca sha256>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub hub: String,
    pub code: String,
    pub ca_sha256: String,
}

impl Token {
    pub fn encode(&self) -> String {
        format!(
            "{TOKEN_PREFIX}{}:{}:{}",
            self.hub, self.code, self.ca_sha256
        )
    }

    pub fn parse(text: &str) -> Result<Token, RemoteError> {
        let bad = || {
            RemoteError::new(
                exit::FAILED,
                "not a pairing token; it looks like vigil-pair:1:HOST:PORT:CODE:FINGERPRINT (copy \
                 it whole from `vigilctl pair` on the hub)",
            )
        };
        let rest = text.trim().strip_prefix(TOKEN_PREFIX).ok_or_else(bad)?;
        // The hub part may hold colons (IPv6 in brackets): split from the right.
        let mut parts = rest.rsplitn(3, ':');
        let ca_sha256 = parts.next().ok_or_else(bad)?.to_owned();
        let code = parts.next().ok_or_else(bad)?.to_owned();
        let hub = parts.next().ok_or_else(bad)?.to_owned();
        if ca_sha256.len() != 64 || !ca_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Token {
            hub,
            code,
            ca_sha256: ca_sha256.to_ascii_lowercase(),
        })
    }
}

/// Trusts a server only if its chain holds the CA with the pinned SHA-256
/// and the server's certificate verifies against that CA: how a client
/// that has only a pairing token checks it talks to the right hub.
#[derive(Debug)]
struct PinnedCa {
    sha256: String,
    provider: Arc<CryptoProvider>,
}

fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let ca = intermediates
            .iter()
            .find(|c| sha256_hex(c) == self.sha256)
            .ok_or_else(|| {
                rustls::Error::General(
                    "the hub's CA does not match the pairing token's fingerprint: this is not \
                     the hub that made the token"
                        .into(),
                )
            })?;
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("pinned CA: {e}")))?;
        let inner = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::clone(&self.provider),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        inner.verify_server_cert(end_entity, &[], server_name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Pairs this client with the hub named in `token`, storing the
/// credentials; returns the role the hub granted.
pub async fn pair(creds: &Credentials, token: &Token, name: &str) -> Result<String, RemoteError> {
    let key = rcgen::KeyPair::generate()
        .map_err(|e| RemoteError::new(exit::FAILED, format!("cannot make a key: {e}")))?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(|e| RemoteError::new(exit::FAILED, format!("cannot make a CSR: {e}")))?;
    let verifier = Arc::new(PinnedCa {
        sha256: token.ca_sha256.clone(),
        provider: Arc::new(rustls::crypto::ring::default_provider()),
    });
    let channel = endpoint(&token.hub)?
        .tls_config_with_verifier(ClientTlsConfig::new().domain_name(SERVER_NAME), verifier)
        .map_err(|e| RemoteError::new(exit::FAILED, format!("TLS set-up: {e}")))?
        .connect()
        .await
        .map_err(|e| {
            RemoteError::new(
                exit::UNREACHABLE,
                format!("cannot reach the hub at {} securely: {e}", token.hub),
            )
        })?;
    let mut admin = pb::admin_service_client::AdminServiceClient::new(channel);
    let answer = admin
        .pair(pb::PairRequest {
            code: token.code.clone(),
            client_name: name.to_owned(),
            csr_pem: csr,
        })
        .await
        .map_err(|s| RemoteError::from_status(&s, &token.hub))?
        .into_inner();
    creds.write("client.key", &key.serialize_pem(), 0o600)?;
    creds.write("client.pem", &answer.certificate_pem, 0o644)?;
    creds.write("ca.pem", &answer.ca_certificate_pem, 0o644)?;
    creds.write("hub", &format!("{}\n", token.hub), 0o644)?;
    Ok(crate::cli::role_name(answer.role).to_owned())
}

/// The terminal rendering of a QR code of `text`.
pub fn qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_with_ipv6_hosts() {
        let t = Token {
            hub: "[fd00::1]:7443".into(),
            code: "abc23def45gh".into(),
            ca_sha256: "ab".repeat(32),
        };
        assert_eq!(Token::parse(&t.encode()).expect("parse"), t);
        assert!(Token::parse("vigil-pair:1:host:7443:code:short").is_err());
        assert!(Token::parse("hello").is_err());
    }
}

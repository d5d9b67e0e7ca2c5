//! vigilctl's gRPC side: credentials on disk, TLS connections to the hub,
//! and pairing (the token it pairs with is [`crate::token`]'s).
//!
//! Credentials live in one directory (`--credentials`, `$VIGIL_CREDENTIALS`,
//! or `~/.config/vigil`): `ca.pem` (the hub's CA), `client.pem` and
//! `client.key` (this client's certificate and key, mode 0600) and `hub`
//! (the hub's address). The key is made here and never leaves.

use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Arc;

// Short names: the verifier's methods are long lists of these.
use rustls::DigitallySignedStruct as Dss;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer as Der, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use vigil_proto::v1 as pb;

use crate::error::Error;
use crate::token::Token;

/// The name in every hub certificate.
pub const SERVER_NAME: &str = "vigil-hub";

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

    fn read(&self, name: &str) -> Result<String, Error> {
        let path = self.dir.join(name);
        std::fs::read_to_string(&path).map_err(|source| Error::NotPaired { path, source })
    }

    /// The hub's address from pairing.
    pub fn hub(&self) -> Result<String, Error> {
        Ok(self.read("hub")?.trim().to_owned())
    }

    /// Renames the stored file `from` over `to`.
    fn replace(&self, from: &str, to: &str) -> Result<(), Error> {
        let path = self.dir.join(to);
        std::fs::rename(self.dir.join(from), &path).map_err(|source| Error::Write { path, source })
    }

    /// Forgets this client's pairing (after RevokeSelf): the key and
    /// certificate go; the CA and the hub's address stay for pairing again.
    pub fn forget(&self) -> Result<(), Error> {
        for name in ["client.key", "client.pem"] {
            let path = self.dir.join(name);
            match std::fs::remove_file(&path) {
                Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::Write { path, source });
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn write(&self, name: &str, contents: &str, mode: u32) -> Result<(), Error> {
        use std::io::Write;
        let path = self.dir.join(name);
        let fail = |source| Error::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(fail)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(&path)
            .map_err(fail)?;
        f.write_all(contents.as_bytes()).map_err(fail)
    }
}

/// Opens a TLS channel to `hub`. `secure` adds how this client proves
/// itself and checks the hub; `unreachable` says which of the ways to the
/// hub failed, since each tells the person something different.
async fn open(
    hub: &str,
    secure: impl FnOnce(Endpoint) -> Result<Endpoint, tonic::transport::Error>,
    unreachable: impl FnOnce(tonic::transport::Error) -> Error,
) -> Result<Channel, Error> {
    let endpoint = Endpoint::from_shared(format!("https://{hub}"))
        .map_err(|source| Error::BadAddress {
            hub: hub.to_owned(),
            source,
        })?
        .connect_timeout(std::time::Duration::from_secs(5));
    secure(endpoint)
        .map_err(Error::Tls)?
        .connect()
        .await
        .map_err(unreachable)
}

/// A mutually authenticated channel to the hub (`hub` overrides the
/// address stored at pairing), and the address it went to.
pub async fn connect(creds: &Credentials, hub: Option<&str>) -> Result<(Channel, String), Error> {
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
    let channel = open(
        &hub,
        |e| e.tls_config(tls),
        |source| Error::Unreachable {
            hub: hub.clone(),
            source,
        },
    )
    .await?;
    Ok((channel, hub))
}

/// A channel with no client certificate (to show that the hub refuses it).
pub async fn connect_anonymous(ca_pem: &str, hub: &str) -> Result<Channel, Error> {
    let tls = ClientTlsConfig::new()
        .domain_name(SERVER_NAME)
        .ca_certificate(Certificate::from_pem(ca_pem));
    open(
        hub,
        |e| e.tls_config(tls),
        |source| Error::UnreachableAnonymous {
            hub: hub.to_owned(),
            source,
        },
    )
    .await
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

/// What checking a handshake signature answers.
type Verdict = Result<HandshakeSignatureValid, rustls::Error>;

/// One of rustls's signature checks (TLS 1.2 or 1.3).
type SignatureCheck = fn(&[u8], &Der<'_>, &Dss, &WebPkiSupportedAlgorithms) -> Verdict;

impl PinnedCa {
    /// Checks a handshake signature with the provider's algorithms: the
    /// pin only changes which certificates are trusted, not how
    /// signatures are checked.
    fn check(&self, check: SignatureCheck, msg: &[u8], cert: &Der<'_>, dss: &Dss) -> Verdict {
        check(
            msg,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &Der<'_>,
        intermediates: &[Der<'_>],
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

    fn verify_tls12_signature(&self, msg: &[u8], cert: &Der<'_>, dss: &Dss) -> Verdict {
        self.check(rustls::crypto::verify_tls12_signature, msg, cert, dss)
    }

    fn verify_tls13_signature(&self, msg: &[u8], cert: &Der<'_>, dss: &Dss) -> Verdict {
        self.check(rustls::crypto::verify_tls13_signature, msg, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A new key pair (ECDSA P-256) and a CSR for it, as Pair and Renew take.
fn key_and_csr() -> Result<(rcgen::KeyPair, String), Error> {
    let key = rcgen::KeyPair::generate().map_err(Error::Key)?;
    let csr = rcgen::CertificateParams::new(Vec::<String>::new())
        .and_then(|p| p.serialize_request(&key))
        .and_then(|c| c.pem())
        .map_err(Error::Csr)?;
    Ok((key, csr))
}

/// Renews this client's certificate over `channel` (a new key, the same
/// client): the new key and certificate replace the stored ones, the key
/// first written beside, so a failure leaves the old pair usable.
/// Returns the new expiry.
pub async fn renew(creds: &Credentials, channel: Channel, hub: &str) -> Result<i64, Error> {
    let (key, csr) = key_and_csr()?;
    let answer = pb::admin_service_client::AdminServiceClient::new(channel)
        .renew(pb::RenewRequest { csr_pem: csr })
        .await
        .map_err(|s| Error::from_status(&s, hub))?
        .into_inner();
    creds.write("client.key.new", &key.serialize_pem(), 0o600)?;
    creds.write("client.pem.new", &answer.certificate_pem, 0o644)?;
    creds.replace("client.key.new", "client.key")?;
    creds.replace("client.pem.new", "client.pem")?;
    Ok(answer.expires_unix_ms)
}

/// Pairs this client with the hub named in `token`, storing the
/// credentials; returns the role the hub granted.
pub async fn pair(creds: &Credentials, token: &Token, name: &str) -> Result<String, Error> {
    let (key, csr) = key_and_csr()?;
    let verifier = Arc::new(PinnedCa {
        sha256: token.ca_sha256.clone(),
        provider: Arc::new(rustls::crypto::ring::default_provider()),
    });
    let hub = token.hub.to_string();
    let channel = open(
        &hub,
        |e| e.tls_config_with_verifier(ClientTlsConfig::new().domain_name(SERVER_NAME), verifier),
        |source| Error::UnreachableForPairing {
            hub: hub.clone(),
            source,
        },
    )
    .await?;
    let mut admin = pb::admin_service_client::AdminServiceClient::new(channel);
    let answer = admin
        .pair(pb::PairRequest {
            code: token.code.clone(),
            client_name: name.to_owned(),
            csr_pem: csr,
        })
        .await
        .map_err(|s| Error::from_status(&s, &hub))?
        .into_inner();
    creds.write("client.key", &key.serialize_pem(), 0o600)?;
    creds.write("client.pem", &answer.certificate_pem, 0o644)?;
    creds.write("ca.pem", &answer.ca_certificate_pem, 0o644)?;
    creds.write("hub", &format!("{hub}\n"), 0o644)?;
    Ok(crate::output::role_name(answer.role).to_owned())
}

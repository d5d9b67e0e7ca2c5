//! The hub's own certificate authority, its server certificate, pairing
//! codes and the registry of paired clients.
//!
//! On first start the hub makes a CA (ECDSA P-256) and a server certificate
//! for `vigil-hub`, `localhost`, the loopback addresses and the configured
//! hostnames, under `<state_dir>/tls/` (keys mode 0600). A client pairs by
//! sending a one-time code with a CSR; the hub signs it and records the
//! certificate's SHA-256 with the code's role and user. Every later call is
//! authorised by looking the peer certificate's fingerprint up in that
//! registry, so revoking a client is forgetting its fingerprint. Client
//! certificates live [`CLIENT_CERT_LIFETIME`]; a client renews its own
//! ([`Pki::renew`]) and the replaced certificate is honoured for
//! [`RENEWAL_GRACE`] more, in case the answer was lost.
//!
//! The TLS layer accepts any client certificate whose key the peer proves
//! it holds ([`crate::listen::tls_config`]): the registry is what decides,
//! so that a stranger's certificate gets UNAUTHENTICATED with a reason
//! ([`NotPaired`]) rather than a failed handshake an app cannot tell from
//! "hub offline".

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio_rustls::rustls;
use vigil_domain::Role;

/// The name every hub certificate carries; clients verify it.
pub const SERVER_NAME: &str = "vigil-hub";
/// How long a pairing code is valid.
pub const PAIRING_CODE_LIFETIME: Duration = Duration::from_secs(600);
/// How long a client certificate is valid from pairing or renewal: a
/// year, so a lost phone that nobody revoked stops working by itself, and
/// an app that opens now and then renews in time (at two thirds).
pub const CLIENT_CERT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a renewed-away certificate still works.
pub const RENEWAL_GRACE: Duration = Duration::from_secs(600);
/// The least time between two renewals of one client.
pub const RENEWAL_INTERVAL: Duration = Duration::from_secs(60);

/// Why a certificate is not (or no longer) a paired client's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotPaired {
    /// Not issued by this hub's CA: another hub's, or made elsewhere.
    ForeignCa,
    /// Issued here, but revoked (or the registry was reset).
    Unknown,
    /// Its lifetime ended at this moment (Unix ms).
    Expired(u64),
    /// Renewed, and the grace after the renewal is over.
    Replaced,
}

impl NotPaired {
    /// What the client is told (UNAUTHENTICATED).
    pub fn explain(self) -> String {
        match self {
            NotPaired::ForeignCa => "this client certificate was not issued by this hub's CA \
                 (it belongs to another hub, or was made elsewhere): pair with this hub"
                .to_owned(),
            NotPaired::Unknown => "this client's certificate is not paired with this hub \
                 (revoked, or the hub was reset): pair it again"
                .to_owned(),
            NotPaired::Expired(at) => format!(
                "this client's certificate expired at {} (Unix ms): pair it again (renew \
                 before expiry to keep it)",
                at
            ),
            NotPaired::Replaced => "this client's certificate was renewed and replaced: use \
                 the new one, or pair again"
                .to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Io(#[from] crate::files::FileError),
    #[error("certificate error: {0}")]
    Cert(#[from] rcgen::Error),
    #[error("{path} is not a valid client registry: {message}; move it away to start afresh")]
    Registry { path: PathBuf, message: String },
    #[error(
        "the pairing code is unknown, used or expired; make a new one with `vigilctl pair` on the hub"
    )]
    BadCode,
    #[error("the certificate request is not valid: {0}")]
    BadCsr(String),
    #[error(
        "client name {} is not valid: use 1 to 31 of a-z, 0-9, '-' and '_'",
        vigil_domain::text::excerpt(.0)
    )]
    BadName(String),
    #[error(
        "a client named {0:?} is already paired; pick another name, or revoke it first (vigilctl revoke {0})"
    )]
    NameTaken(String),
    #[error("the client is no longer paired")]
    Gone,
    #[error("this client renewed less than a minute ago; try again in {} s", retry_after_ms.div_ceil(1000))]
    TooSoon { retry_after_ms: u64 },
}

/// SHA-256 of DER bytes, lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A paired client's certificate, as stored (a wire type: it derives
/// serde). One record per certificate: a renewed client has two for
/// [`RENEWAL_GRACE`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub name: String,
    pub role: String,
    pub certificate_sha256: String,
    pub paired_unix_ms: u64,
    /// The keypad user the client belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// When the certificate expires; none for certificates issued before
    /// lifetimes were finite (they say 2124).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_unix_ms: Option<u64>,
    /// Set when the certificate was renewed: honoured until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced_until_unix_ms: Option<u64>,
}

impl ClientRecord {
    /// When its certificate was issued (its expiry less its lifetime).
    fn issued_unix_ms(&self) -> u64 {
        self.expires_unix_ms.map_or(self.paired_unix_ms, |e| {
            e.saturating_sub(CLIENT_CERT_LIFETIME.as_millis() as u64)
        })
    }

    /// Whether this certificate is honoured at `now_ms`, and why not.
    fn valid_at(&self, now_ms: u64) -> Result<Role, NotPaired> {
        if let Some(at) = self.expires_unix_ms.filter(|&at| at <= now_ms) {
            return Err(NotPaired::Expired(at));
        }
        if self
            .replaced_until_unix_ms
            .is_some_and(|until| until <= now_ms)
        {
            return Err(NotPaired::Replaced);
        }
        Role::parse(&self.role).ok_or(NotPaired::Unknown)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    pub name: String,
    pub role: Role,
    /// The keypad user it belongs to, if any.
    pub user: Option<String>,
    /// Its certificate's SHA-256.
    pub fingerprint: String,
    pub expires_unix_ms: Option<u64>,
}

/// The PEM material the TLS server needs.
#[derive(Debug)]
pub struct ServerTls {
    /// The server certificate followed by the CA certificate: clients that
    /// pair find the CA in the chain and check its fingerprint.
    pub chain_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

/// The CA, the pairing codes and the client registry.
pub struct Pki {
    ca_key: KeyPair,
    ca_pem: String,
    ca_sha256: String,
    server: ServerTls,
    registry_path: PathBuf,
    clients: Mutex<HashMap<String, ClientRecord>>,
    /// code -> what it pairs.
    codes: Mutex<HashMap<String, PairingCode>>,
    /// The CA as a trust anchor, to tell a foreign certificate from a
    /// revoked one.
    verifier: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    /// Bumped at every revocation: open streams look again whether their
    /// client is still paired, and end at once if not.
    revocations: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("ca_sha256", &self.ca_sha256)
            .finish_non_exhaustive()
    }
}

/// What a pairing code stands for.
#[derive(Clone, Debug)]
struct PairingCode {
    role: Role,
    user: Option<String>,
    expires_unix_ms: u64,
}

/// What pairing made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Paired {
    pub certificate_pem: String,
    pub role: Role,
    pub user: Option<String>,
    pub expires_unix_ms: u64,
}

/// Unix milliseconds as a certificate's time.
fn unix_ms_to_time(ms: u64) -> time::OffsetDateTime {
    let secs = i64::try_from(ms / 1000).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
    let on = crate::files::FileError::on(what, path);
    move |source| PkiError::Io(on(source))
}

fn write_private(path: &Path, contents: &str) -> Result<(), PkiError> {
    crate::files::replace_private(path, &path.with_extension("tmp"), contents.as_bytes())
        .map_err(io("write", path))
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params
        .distinguished_name
        .push(DnType::CommonName, "Vigil hub CA");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = rcgen::date_time_ymd(2024, 1, 1);
    params.not_after = rcgen::date_time_ymd(2124, 1, 1);
    params
}

impl Pki {
    /// Loads the CA and server certificate from `<state_dir>/tls`, making
    /// them on first start; `hostnames` go into the server certificate.
    pub fn load_or_create(state_dir: &Path, hostnames: &[String]) -> Result<Pki, PkiError> {
        let dir = state_dir.join("tls");
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        let (ca_key_path, ca_path) = (dir.join("ca.key"), dir.join("ca.pem"));
        let (ca_key, ca_pem) = if ca_key_path.exists() && ca_path.exists() {
            let key = std::fs::read_to_string(&ca_key_path).map_err(io("read", &ca_key_path))?;
            let pem = std::fs::read_to_string(&ca_path).map_err(io("read", &ca_path))?;
            (KeyPair::from_pem(&key)?, pem)
        } else {
            let key = KeyPair::generate()?;
            let cert = ca_params().self_signed(&key)?;
            write_private(&ca_key_path, &key.serialize_pem())?;
            write_private(&ca_path, &cert.pem())?;
            tracing::info!(dir = %dir.display(), "made the hub's certificate authority");
            (key, cert.pem())
        };
        let ca_der = pem_to_der(&ca_pem)?;
        let ca_sha256 = sha256_hex(&ca_der);

        // The server certificate is cheap: made afresh at every start, so a
        // change of hostnames takes effect without ceremony.
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)?;
        let mut names = vec![SERVER_NAME.to_owned(), "localhost".to_owned()];
        names.extend(
            hostnames
                .iter()
                .filter(|h| h.parse::<IpAddr>().is_err())
                .cloned(),
        );
        let mut params = CertificateParams::new(names)?;
        for ip in ["127.0.0.1", "::1"]
            .iter()
            .map(|s| s.to_string())
            .chain(hostnames.iter().cloned())
        {
            if let Ok(addr) = ip.parse::<IpAddr>() {
                params.subject_alt_names.push(SanType::IpAddress(addr));
            }
        }
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAME);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let server_key = KeyPair::generate()?;
        let server_cert = params.signed_by(&server_key, &issuer)?;
        let server = ServerTls {
            chain_pem: format!("{}{}", server_cert.pem(), ca_pem),
            key_pem: server_key.serialize_pem(),
            ca_pem: ca_pem.clone(),
        };

        let registry_path = state_dir.join("clients.json");
        let clients = if registry_path.exists() {
            let text =
                std::fs::read_to_string(&registry_path).map_err(io("read", &registry_path))?;
            let list: Vec<ClientRecord> =
                serde_json::from_str(&text).map_err(|e| PkiError::Registry {
                    path: registry_path.clone(),
                    message: e.to_string(),
                })?;
            // Certificates issued before lifetimes were finite say 2124:
            // they get a year from now, like a new one.
            let now = crate::clock::now_ms();
            list.into_iter()
                .map(|mut c| {
                    c.expires_unix_ms
                        .get_or_insert(now + CLIENT_CERT_LIFETIME.as_millis() as u64);
                    (c.certificate_sha256.clone(), c)
                })
                .collect()
        } else {
            HashMap::new()
        };
        let verifier = crate::listen::ca_verifier(&ca_pem)
            .map_err(|e| PkiError::BadCsr(format!("the hub's own CA: {e}")))?;
        Ok(Pki {
            verifier,
            ca_key,
            ca_pem,
            ca_sha256,
            server,
            registry_path,
            clients: Mutex::new(clients),
            codes: Mutex::new(HashMap::new()),
            revocations: tokio::sync::watch::Sender::new(0),
        })
    }

    pub fn server_tls(&self) -> &ServerTls {
        &self.server
    }

    pub fn ca_sha256(&self) -> &str {
        &self.ca_sha256
    }

    /// A new one-time pairing code for a client of `role` that belongs to
    /// `user`; returns it and its expiry.
    pub fn create_code(&self, role: Role, user: Option<String>, now_ms: u64) -> (String, u64) {
        // 12 characters of an unambiguous alphabet: about 60 bits.
        const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
        let mut rng = rand::rng();
        let code: String = (0..12)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let expires = now_ms + PAIRING_CODE_LIFETIME.as_millis() as u64;
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|_, c| c.expires_unix_ms > now_ms);
        codes.insert(
            code.clone(),
            PairingCode {
                role,
                user,
                expires_unix_ms: expires,
            },
        );
        (code, expires)
    }

    /// Exchanges a code and a CSR for a signed client certificate. A
    /// refused name or CSR leaves the code as it was.
    pub fn pair(
        &self,
        code: &str,
        name: &str,
        csr_pem: &str,
        now_ms: u64,
    ) -> Result<Paired, PkiError> {
        if !vigil_domain::is_valid_name(name) {
            return Err(PkiError::BadName(name.to_owned()));
        }
        // The code first: a stranger without one learns nothing, not even
        // which names are paired.
        let code = code.trim();
        let known = {
            let codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
            codes.get(code).is_some_and(|c| c.expires_unix_ms > now_ms)
        };
        if !known {
            return Err(PkiError::BadCode);
        }
        if self.name_taken(name) {
            return Err(PkiError::NameTaken(name.to_owned()));
        }
        let csr = Self::parse_csr(csr_pem)?;
        // Used up only now that everything else is right; taken under the
        // lock, so two clients racing with one code cannot both have it.
        let PairingCode { role, user, .. } = {
            let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
            match codes.remove(code) {
                Some(c) if c.expires_unix_ms > now_ms => c,
                _ => return Err(PkiError::BadCode),
            }
        };
        let (certificate_pem, fingerprint, expires_unix_ms) = self.sign(&csr, name, now_ms)?;
        let record = ClientRecord {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            certificate_sha256: fingerprint,
            paired_unix_ms: now_ms,
            user: user.clone(),
            expires_unix_ms: Some(expires_unix_ms),
            replaced_until_unix_ms: None,
        };
        {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            // Again under the lock: two pairings racing for one name.
            if clients.values().any(|c| c.name == name) {
                return Err(PkiError::NameTaken(name.to_owned()));
            }
            clients.insert(record.certificate_sha256.clone(), record);
            self.save(&clients)?;
        }
        Ok(Paired {
            certificate_pem,
            role,
            user,
            expires_unix_ms,
        })
    }

    /// A client certificate for the key of `csr_pem`: checked (a key type
    /// clients may use, a valid self-signature), and everything but the key
    /// replaced by the hub's own choice.
    fn parse_csr(csr_pem: &str) -> Result<CertificateSigningRequestParams, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let algorithm = csr.public_key.algorithm();
        let allowed = [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ];
        if !allowed.contains(&algorithm) {
            return Err(PkiError::BadCsr(
                "the key must be ECDSA P-256 or P-384, or Ed25519".to_owned(),
            ));
        }
        Ok(csr)
    }

    /// Signs `csr` for client `name`: returns the PEM, its fingerprint and
    /// its expiry.
    fn sign(
        &self,
        csr: &CertificateSigningRequestParams,
        name: &str,
        now_ms: u64,
    ) -> Result<(String, String, u64), PkiError> {
        let mut csr = csr.clone();
        // The hub decides what the certificate says, not the client.
        csr.params = CertificateParams::default();
        csr.params
            .distinguished_name
            .push(DnType::CommonName, format!("vigil client {name}"));
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let expires_unix_ms = now_ms + CLIENT_CERT_LIFETIME.as_millis() as u64;
        // A minute of slack for clocks a little behind the hub's.
        csr.params.not_before = unix_ms_to_time(now_ms.saturating_sub(60_000));
        csr.params.not_after = unix_ms_to_time(expires_unix_ms);
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, &self.ca_key)?;
        let cert = csr.signed_by(&issuer)?;
        Ok((cert.pem(), sha256_hex(cert.der()), expires_unix_ms))
    }

    /// Whether a client of this name is paired.
    fn name_taken(&self, name: &str) -> bool {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.values().any(|c| c.name == name)
    }

    /// A new certificate for the client holding the certificate with
    /// `fingerprint`, for the key of `csr_pem`; the old one is honoured for
    /// [`RENEWAL_GRACE`] more. A client has two certificates at most: a
    /// renewal from the old one within its grace (its answer was lost)
    /// replaces the successor it had made. Once per [`RENEWAL_INTERVAL`]
    /// per client: each renewal rewrites the registry.
    pub fn renew(
        &self,
        fingerprint: &str,
        csr_pem: &str,
        now_ms: u64,
    ) -> Result<(String, u64), PkiError> {
        let csr = Self::parse_csr(csr_pem)?;
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let old = clients
            .get(fingerprint)
            .filter(|c| c.valid_at(now_ms).is_ok())
            .cloned()
            .ok_or(PkiError::Gone)?;
        let interval = RENEWAL_INTERVAL.as_millis() as u64;
        // The last renewal's time (pairing does not count: an app may renew
        // right after it pairs).
        if let Some(last) = clients
            .values()
            .filter(|c| c.name == old.name)
            .map(|c| c.issued_unix_ms())
            .filter(|&issued| issued > old.paired_unix_ms)
            .max()
            .filter(|&last| now_ms < last + interval)
        {
            return Err(PkiError::TooSoon {
                retry_after_ms: last + interval - now_ms,
            });
        }
        let (pem, new_fingerprint, expires_unix_ms) = self.sign(&csr, &old.name, now_ms)?;
        let grace_ends = now_ms + RENEWAL_GRACE.as_millis() as u64;
        // The client's other certificates go (an older one in its grace,
        // or the successor whose answer was lost): two at most, this one
        // in its grace and the new one.
        clients.retain(|fp, c| c.name != old.name || fp == fingerprint);
        if let Some(record) = clients.get_mut(fingerprint) {
            let until = record.replaced_until_unix_ms.unwrap_or(grace_ends);
            record.replaced_until_unix_ms = Some(until.min(grace_ends));
        }
        clients.insert(
            new_fingerprint.clone(),
            ClientRecord {
                certificate_sha256: new_fingerprint,
                expires_unix_ms: Some(expires_unix_ms),
                replaced_until_unix_ms: None,
                ..old
            },
        );
        // Certificates past their grace or their life go at each change.
        clients.retain(|_, c| !matches!(c.valid_at(now_ms), Err(NotPaired::Replaced)));
        self.save(&clients)?;
        drop(clients);
        // Streams of the old certificate end with its grace: they look
        // again when it ends (`Pki::honoured_until`).
        self.revocations.send_modify(|generation| *generation += 1);
        Ok((pem, expires_unix_ms))
    }

    /// Until when the certificate with this fingerprint is honoured
    /// (its expiry, or the end of its grace after a renewal); `None` for
    /// one issued before lifetimes were finite.
    pub fn honoured_until(&self, fingerprint: &str) -> Option<u64> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let c = clients.get(fingerprint)?;
        [c.expires_unix_ms, c.replaced_until_unix_ms]
            .into_iter()
            .flatten()
            .min()
    }

    /// Ends when the certificate with `fingerprint` is no longer honoured
    /// (revoked, expired, past its grace after a renewal): it looks again
    /// at every revocation or renewal, and when the certificate's life or
    /// grace runs out. What ends a paired connection and a client's open
    /// streams.
    pub async fn until_dishonoured(self: Arc<Pki>, fingerprint: String) {
        let mut changes = self.revocations();
        loop {
            let now = crate::clock::now_ms();
            if !self.is_paired(&fingerprint, now) {
                return;
            }
            let until = self.honoured_until(&fingerprint);
            let runs_out = async move {
                match until {
                    Some(at) => {
                        let left = at.saturating_sub(now);
                        tokio::time::sleep(Duration::from_millis(left)).await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        // The registry is gone: the hub is stopping.
                        return std::future::pending().await;
                    }
                }
                () = runs_out => {}
            }
        }
    }

    /// Forgets the pairing codes made for `user` (a user removed).
    pub fn cancel_codes_for(&self, user: &str) {
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|_, c| c.user.as_deref() != Some(user));
    }

    /// Whether the certificate with this fingerprint is still honoured.
    pub fn is_paired(&self, fingerprint: &str, now_ms: u64) -> bool {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients
            .get(fingerprint)
            .is_some_and(|c| c.valid_at(now_ms).is_ok())
    }

    /// Changes at every revocation and renewal.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    /// Who holds the certificate with DER `der` at `now_ms`, or why
    /// nobody does.
    pub fn identify(&self, der: &[u8], now_ms: u64) -> Result<ClientIdentity, NotPaired> {
        let fingerprint = sha256_hex(der);
        let found = {
            let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients
                .get(&fingerprint)
                .map(|c| (c.valid_at(now_ms), c.clone()))
        };
        match found {
            Some((Ok(role), c)) => Ok(ClientIdentity {
                name: c.name,
                role,
                user: c.user,
                fingerprint,
                expires_unix_ms: c.expires_unix_ms,
            }),
            Some((Err(why), _)) => Err(why),
            None if self.issued_here(der) => Err(NotPaired::Unknown),
            None => Err(NotPaired::ForeignCa),
        }
    }

    /// Whether `der` looks issued by this hub's CA: the chain check fails
    /// for no reason but the dates (an expired certificate of ours is
    /// ours).
    fn issued_here(&self, der: &[u8]) -> bool {
        use rustls::{CertificateError, Error};
        use rustls_pki_types::{CertificateDer, UnixTime};
        let cert = CertificateDer::from(der.to_vec());
        match self
            .verifier
            .verify_client_cert(&cert, &[], UnixTime::now())
        {
            Ok(_) => true,
            Err(Error::InvalidCertificate(
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. },
            )) => true,
            Err(_) => false,
        }
    }

    /// The record of the certificate with `fingerprint` (an old one in its
    /// grace too).
    pub fn record(&self, fingerprint: &str) -> Option<ClientRecord> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.get(fingerprint).cloned()
    }

    /// One record per client (its newest certificate), by name.
    pub fn clients(&self) -> Vec<ClientRecord> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut newest: HashMap<&str, &ClientRecord> = HashMap::new();
        for c in clients.values() {
            let keep = newest
                .get(c.name.as_str())
                .is_none_or(|seen| seen.replaced_until_unix_ms.is_some());
            if keep {
                newest.insert(&c.name, c);
            }
        }
        let mut list: Vec<ClientRecord> = newest.into_values().cloned().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        list
    }

    /// Forgets the client named `name`; false if there was none.
    pub fn revoke(&self, name: &str) -> Result<bool, PkiError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let before = clients.len();
        clients.retain(|_, c| c.name != name);
        if clients.len() == before {
            return Ok(false);
        }
        self.save(&clients)?;
        drop(clients);
        self.revocations.send_modify(|generation| *generation += 1);
        Ok(true)
    }

    fn save(&self, clients: &HashMap<String, ClientRecord>) -> Result<(), PkiError> {
        let mut list: Vec<&ClientRecord> = clients.values().collect();
        list.sort_by(|a, b| a.name.cmp(&b.name));
        let text = serde_json::to_string_pretty(&list).map_err(|e| PkiError::Registry {
            path: self.registry_path.clone(),
            message: e.to_string(),
        })?;
        write_private(&self.registry_path, &text)
    }
}

/// The DER of the first certificate in `pem`.
pub fn pem_to_der(pem: &str) -> Result<Vec<u8>, PkiError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|_| PkiError::Cert(rcgen::Error::CouldNotParseCertificate))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_with(key: &KeyPair) -> String {
        CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(key)
            .expect("csr")
            .pem()
            .expect("pem")
    }

    fn csr() -> String {
        csr_with(&KeyPair::generate().expect("key"))
    }

    const DAY: u64 = 24 * 3600 * 1000;
    /// Some moment in 2026.
    const NOW: u64 = 1_780_000_000_000;

    #[test]
    fn pairing_signs_a_csr_once_and_identifies_the_client() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::load_or_create(dir.path(), &["hub.lan".into()]).expect("pki");
        let (code, _) = pki.create_code(Role::User, Some("alice".into()), NOW);
        let csr = csr();
        assert!(matches!(
            pki.pair("wrong", "phone", &csr, NOW),
            Err(PkiError::BadCode)
        ));
        // A refused name or CSR leaves the code usable.
        assert!(matches!(
            pki.pair(&code, "Bad Name", &csr, NOW),
            Err(PkiError::BadName(_))
        ));
        assert!(matches!(
            pki.pair(&code, "phone", "not a csr", NOW),
            Err(PkiError::BadCsr(_))
        ));
        let paired = pki.pair(&code, "phone", &csr, NOW).expect("pair");
        assert_eq!(paired.role, Role::User);
        assert_eq!(paired.user.as_deref(), Some("alice"));
        assert_eq!(paired.expires_unix_ms, NOW + 365 * DAY);
        assert!(matches!(
            pki.pair(&code, "tablet", &csr, NOW),
            Err(PkiError::BadCode)
        ));
        // A name is paired once: another code cannot take it over.
        let (second, _) = pki.create_code(Role::Guest, None, NOW);
        assert!(matches!(
            pki.pair(&second, "phone", &csr, NOW),
            Err(PkiError::NameTaken(_))
        ));
        // Without a valid code, a paired name is not told apart from a free
        // one; with one, it is (and the code stays).
        assert!(matches!(
            pki.pair("wrong", "phone", &csr, NOW),
            Err(PkiError::BadCode)
        ));
        let (another, _) = pki.create_code(Role::Guest, None, NOW);
        assert!(matches!(
            pki.pair(&another, "phone", &csr, NOW),
            Err(PkiError::NameTaken(_))
        ));
        let der = pem_to_der(&paired.certificate_pem).expect("der");
        let id = pki.identify(&der, NOW).expect("paired");
        assert_eq!((id.name.as_str(), id.role), ("phone", Role::User));
        assert_eq!(id.user.as_deref(), Some("alice"));
        // The registry and the CA survive a restart.
        let again = Pki::load_or_create(dir.path(), &[]).expect("reload");
        assert_eq!(again.ca_sha256(), pki.ca_sha256());
        assert!(again.identify(&der, NOW).is_ok());
        assert!(again.revoke("phone").expect("revoke"));
        assert_eq!(again.identify(&der, NOW), Err(NotPaired::Unknown));
    }

    #[test]
    fn certificates_expire_and_another_hubs_are_foreign() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        let other_dir = tempfile::tempdir().expect("dir");
        let other = Pki::load_or_create(other_dir.path(), &[]).expect("other hub");
        let now = crate::clock::now_ms();
        let (code, _) = other.create_code(Role::Admin, None, now);
        let theirs = other.pair(&code, "phone", &csr(), now).expect("pair");
        let theirs = pem_to_der(&theirs.certificate_pem).expect("der");
        assert_eq!(pki.identify(&theirs, now), Err(NotPaired::ForeignCa));

        let (code, _) = pki.create_code(Role::Admin, None, now);
        let ours = pki.pair(&code, "tablet", &csr(), now).expect("pair");
        let der = pem_to_der(&ours.certificate_pem).expect("der");
        assert!(pki.identify(&der, ours.expires_unix_ms - 1).is_ok());
        assert_eq!(
            pki.identify(&der, ours.expires_unix_ms),
            Err(NotPaired::Expired(ours.expires_unix_ms))
        );
        // Ours, though revoked: not "foreign".
        pki.revoke("tablet").expect("revoke");
        assert_eq!(pki.identify(&der, now), Err(NotPaired::Unknown));
    }

    #[test]
    fn renewal_replaces_the_certificate_after_a_grace() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        let (code, _) = pki.create_code(Role::User, Some("bob".into()), NOW);
        let first = pki.pair(&code, "phone", &csr(), NOW).expect("pair");
        let old = pem_to_der(&first.certificate_pem).expect("der");
        let later = NOW + 300 * DAY;
        let (pem, expires) = pki.renew(&sha256_hex(&old), &csr(), later).expect("renew");
        assert_eq!(expires, later + 365 * DAY);
        let new = pem_to_der(&pem).expect("der");
        let id = pki.identify(&new, later).expect("renewed");
        assert_eq!(
            (id.name.as_str(), id.role, id.user.as_deref()),
            ("phone", Role::User, Some("bob"))
        );
        let grace = RENEWAL_GRACE.as_millis() as u64;
        assert!(
            matches!(
                pki.renew(&sha256_hex(&new), &csr(), later + 1000),
                Err(PkiError::TooSoon { .. })
            ),
            "once a minute"
        );
        // The answer was lost: the old certificate renews again, and its
        // first successor goes (two certificates at most).
        let minute = RENEWAL_INTERVAL.as_millis() as u64;
        let (retried, _) = pki
            .renew(&sha256_hex(&old), &csr(), later + minute)
            .expect("a retry within the grace");
        let retried = pem_to_der(&retried).expect("der");
        assert!(pki.identify(&new, later + minute).is_err(), "the lost one");
        let new = retried;
        assert!(pki.identify(&old, later + grace - 1).is_ok(), "the grace");
        assert_eq!(pki.identify(&old, later + grace), Err(NotPaired::Replaced));
        // One client, listed once, with its new certificate.
        let listed = pki.clients();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].certificate_sha256, sha256_hex(&new));
        // A replaced certificate cannot renew again; revoking the client
        // ends both.
        assert!(matches!(
            pki.renew(&sha256_hex(&old), &csr(), later + grace),
            Err(PkiError::Gone)
        ));
        assert!(pki.revoke("phone").expect("revoke"));
        assert!(pki.identify(&new, later).is_err());
        assert!(pki.identify(&old, later).is_err());
    }

    #[test]
    fn certificates_of_before_get_a_year_from_the_upgrade() {
        let dir = tempfile::tempdir().expect("dir");
        let record =
            r#"[{"name":"old","role":"user","certificate_sha256":"ab","paired_unix_ms":1}]"#;
        std::fs::write(dir.path().join("clients.json"), record).expect("write");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        let expires = pki.clients()[0].expires_unix_ms.expect("an expiry now");
        let year = CLIENT_CERT_LIFETIME.as_millis() as u64;
        assert!(
            expires > crate::clock::now_ms() + year - 60_000,
            "{expires}"
        );
    }

    #[test]
    fn only_elliptic_curve_and_ed25519_keys_are_signed() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
        ] {
            let key = KeyPair::generate_for(alg).expect("key");
            let (code, _) = pki.create_code(Role::Guest, None, NOW);
            let name = format!("c{}", pki.clients().len());
            assert!(
                pki.pair(&code, &name, &csr_with(&key), NOW).is_ok(),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn expired_codes_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        let (code, expires) = pki.create_code(Role::Admin, None, 0);
        assert!(matches!(
            pki.pair(&code, "late", "", expires),
            Err(PkiError::BadCode)
        ));
    }
}

//! The hub's own certificate authority, its server certificate, pairing
//! codes and the registry of paired clients.
//!
//! On first start the hub makes a CA (ECDSA P-256) and a server certificate
//! for `vigil-hub`, `localhost`, the loopback addresses and the configured
//! hostnames, under `<state_dir>/tls/` (keys mode 0600). A client pairs by
//! sending a one-time code with a CSR; the hub signs it and records the
//! certificate's SHA-256 with the code's role. Every later call is
//! authorised by looking the peer certificate's fingerprint up in that
//! registry, so revoking a client is forgetting its fingerprint.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use vigil_domain::Role;

/// The name every hub certificate carries; clients verify it.
pub const SERVER_NAME: &str = "vigil-hub";
/// How long a pairing code is valid.
pub const PAIRING_CODE_LIFETIME: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot {what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
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
}

/// SHA-256 of DER bytes, lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A paired client, as stored (a wire type: it derives serde).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRecord {
    pub name: String,
    pub role: String,
    pub certificate_sha256: String,
    pub paired_unix_ms: u64,
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdentity {
    pub name: String,
    pub role: Role,
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
    /// code -> (role, expiry in unix ms).
    codes: Mutex<HashMap<String, (Role, u64)>>,
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

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> PkiError {
    let path = path.to_owned();
    move |source| PkiError::Io { what, path, source }
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
            list.into_iter()
                .map(|c| (c.certificate_sha256.clone(), c))
                .collect()
        } else {
            HashMap::new()
        };
        Ok(Pki {
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

    /// A new one-time pairing code for `role`; returns it and its expiry.
    pub fn create_code(&self, role: Role, now_ms: u64) -> (String, u64) {
        // 12 characters of an unambiguous alphabet: about 60 bits.
        const ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
        let mut rng = rand::rng();
        let code: String = (0..12)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        let expires = now_ms + PAIRING_CODE_LIFETIME.as_millis() as u64;
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|_, (_, exp)| *exp > now_ms);
        codes.insert(code.clone(), (role, expires));
        (code, expires)
    }

    /// Exchanges a code and a CSR for a signed client certificate.
    pub fn pair(
        &self,
        code: &str,
        name: &str,
        csr_pem: &str,
        now_ms: u64,
    ) -> Result<(String, Role), PkiError> {
        let valid_name = !name.is_empty()
            && name.len() < 32
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_name {
            return Err(PkiError::BadName(name.to_owned()));
        }
        if self
            .clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|c| c.name == name)
        {
            return Err(PkiError::NameTaken(name.to_owned()));
        }
        let role = {
            let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
            match codes.remove(code.trim()) {
                Some((role, expires)) if expires > now_ms => role,
                _ => return Err(PkiError::BadCode),
            }
        };
        let mut csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        // The hub decides what the certificate says, not the client.
        csr.params = CertificateParams::default();
        csr.params
            .distinguished_name
            .push(DnType::CommonName, format!("vigil client {name}"));
        csr.params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        csr.params.not_before = rcgen::date_time_ymd(2024, 1, 1);
        csr.params.not_after = rcgen::date_time_ymd(2124, 1, 1);
        let issuer = Issuer::from_ca_cert_pem(&self.ca_pem, &self.ca_key)?;
        let cert = csr.signed_by(&issuer)?;
        let record = ClientRecord {
            name: name.to_owned(),
            role: role.as_str().to_owned(),
            certificate_sha256: sha256_hex(cert.der()),
            paired_unix_ms: now_ms,
        };
        {
            let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            clients.insert(record.certificate_sha256.clone(), record);
            self.save(&clients)?;
        }
        Ok((cert.pem(), role))
    }

    /// Who holds the certificate with DER `der`, if paired.
    /// Whether the certificate with this fingerprint is still paired.
    pub fn is_paired(&self, fingerprint: &str) -> bool {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.contains_key(fingerprint)
    }

    /// Changes at every revocation.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.revocations.subscribe()
    }

    pub fn identify(&self, der: &[u8]) -> Option<ClientIdentity> {
        let fingerprint = sha256_hex(der);
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.get(&fingerprint).and_then(|c| {
            Some(ClientIdentity {
                name: c.name.clone(),
                role: Role::parse(&c.role)?,
            })
        })
    }

    pub fn clients(&self) -> Vec<ClientRecord> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<ClientRecord> = clients.values().cloned().collect();
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

    #[test]
    fn pairing_signs_a_csr_once_and_identifies_the_client() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::load_or_create(dir.path(), &["hub.lan".into()]).expect("pki");
        let (code, _) = pki.create_code(Role::User, 1000);
        let key = KeyPair::generate().expect("key");
        let csr = CertificateParams::new(Vec::<String>::new())
            .expect("params")
            .serialize_request(&key)
            .expect("csr")
            .pem()
            .expect("pem");
        assert!(matches!(
            pki.pair("wrong", "phone", &csr, 1000),
            Err(PkiError::BadCode)
        ));
        let (cert_pem, role) = pki.pair(&code, "phone", &csr, 2000).expect("pair");
        assert_eq!(role, Role::User);
        assert!(matches!(
            pki.pair(&code, "tablet", &csr, 2000),
            Err(PkiError::BadCode)
        ));
        // A name is paired once: another code cannot take it over.
        let (second, _) = pki.create_code(Role::Guest, 2000);
        assert!(matches!(
            pki.pair(&second, "phone", &csr, 2000),
            Err(PkiError::NameTaken(_))
        ));
        let der = pem_to_der(&cert_pem).expect("der");
        assert_eq!(
            pki.identify(&der),
            Some(ClientIdentity {
                name: "phone".into(),
                role: Role::User
            })
        );
        // The registry and the CA survive a restart.
        let again = Pki::load_or_create(dir.path(), &[]).expect("reload");
        assert_eq!(again.ca_sha256(), pki.ca_sha256());
        assert!(again.identify(&der).is_some());
        assert!(again.revoke("phone").expect("revoke"));
        assert!(again.identify(&der).is_none());
    }

    #[test]
    fn expired_codes_are_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let pki = Pki::load_or_create(dir.path(), &[]).expect("pki");
        let (code, expires) = pki.create_code(Role::Admin, 0);
        assert!(matches!(
            pki.pair(&code, "late", "", expires),
            Err(PkiError::BadCode)
        ));
    }
}

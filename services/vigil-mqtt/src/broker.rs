//! Connecting to the broker: TLS (the broker's CA pinned from the config,
//! an optional client certificate), the username and password from the
//! credentials file, and the last will that marks the client offline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use vigil_config::MqttConfig;

/// Why the broker's settings cannot be used. Each is the operator's to fix
/// (a bad file): the services map them to EX_CONFIG.
#[derive(Debug, thiserror::Error)]
pub enum BrokerSetupError {
    #[error("cannot read {what} {}: {source}", path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} is not `username:password` on one line; write it so (mosquitto_passwd's usernames \
         hold no colon)",
        .0.display()
    )]
    Credentials(PathBuf),
    #[error("{what} {} holds no usable PEM: {message}", path.display())]
    Pem {
        what: &'static str,
        path: PathBuf,
        message: String,
    },
    #[error("the broker's TLS settings cannot be used: {0}")]
    Tls(String),
}

/// What the last will says, retained, when the connection dies.
#[derive(Clone, Debug)]
pub struct Will {
    pub topic: String,
    pub payload: &'static str,
}

/// The options to connect `client_id` to the configured broker.
///
/// The session is clean: what Vigil publishes after a reconnection is
/// the current state (retained) and the events from where it left off, so
/// it needs nothing the broker kept for it. Keep-alive is 15 s: a dead
/// broker is noticed within about 20 s.
pub fn options(
    config: &MqttConfig,
    client_id: &str,
    will: Option<Will>,
) -> Result<MqttOptions, BrokerSetupError> {
    let mut options = MqttOptions::new(client_id, config.host.clone(), config.port);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_clean_session(true);
    // Incoming: rumqttc drops the connection on a packet over the limit,
    // so the limit is generous (1 MiB, what docs/mqtt.md has the broker
    // accept) and the parsers drop anything over MAX_INBOUND_PAYLOAD: an
    // oversized message from anyone on the broker costs one log line, not
    // a reconnection. Outgoing: a camera's snapshot.
    options.set_max_packet_size(1024 * 1024 + 1024, 4 * 1024 * 1024);
    if let Some(path) = &config.credentials_file {
        let (user, password) = credentials(path)?;
        options.set_credentials(user, password);
    }
    if let Some(will) = will {
        options.set_last_will(LastWill::new(
            will.topic,
            will.payload,
            QoS::AtLeastOnce,
            true,
        ));
    }
    if let Some(ca) = &config.ca_file {
        let tls = tls_config(ca, config.client_cert.as_ref())?;
        options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            Arc::new(tls),
        )));
    }
    Ok(options)
}

/// A client and its event loop for `options`, with `capacity` requests
/// queued at most. Nagle's algorithm is off: Vigil sends small messages
/// in bursts (an event, then the panel's state), and with it on, the
/// second waits for the broker's delayed ACK of the first (tens of ms).
pub fn client(options: MqttOptions, capacity: usize) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let (client, mut eventloop) = rumqttc::AsyncClient::new(options, capacity);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    network.set_connection_timeout(5);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// Whether the broker refused any filter of a SUBSCRIBE (its ACL): the
/// messages of that topic will never come.
pub fn refused(ack: &rumqttc::SubAck) -> bool {
    ack.return_codes
        .iter()
        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
}

/// `username:password` from the credentials file (a trailing newline is
/// not part of the password).
pub fn credentials(path: &Path) -> Result<(String, String), BrokerSetupError> {
    let text = std::fs::read_to_string(path).map_err(|source| BrokerSetupError::Read {
        what: "the MQTT credentials file",
        path: path.to_owned(),
        source,
    })?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    match line.split_once(':') {
        Some((user, password)) if !user.is_empty() && !line.contains('\n') => {
            Ok((user.to_owned(), password.to_owned()))
        }
        _ => Err(BrokerSetupError::Credentials(path.to_owned())),
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, BrokerSetupError> {
    std::fs::read(path).map_err(|source| BrokerSetupError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

fn pem_error(what: &'static str, path: &Path, message: impl ToString) -> BrokerSetupError {
    BrokerSetupError::Pem {
        what,
        path: path.to_owned(),
        message: message.to_string(),
    }
}

/// Only the configured CA is trusted (never the system's roots): the
/// broker is the home's own.
fn tls_config(
    ca_file: &Path,
    client_cert: Option<&(PathBuf, PathBuf)>,
) -> Result<rustls::ClientConfig, BrokerSetupError> {
    const CA: &str = "the broker's CA file";
    let mut roots = rustls::RootCertStore::empty();
    let pem = read(CA, ca_file)?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| pem_error(CA, ca_file, e))?;
        roots.add(cert).map_err(|e| pem_error(CA, ca_file, e))?;
    }
    if roots.is_empty() {
        return Err(pem_error(CA, ca_file, "no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BrokerSetupError::Tls(e.to_string()))?
        .with_root_certificates(roots);
    match client_cert {
        None => Ok(builder.with_no_client_auth()),
        Some((cert_file, key_file)) => {
            const CERT: &str = "the MQTT client certificate";
            const KEY: &str = "the MQTT client key";
            let pem = read(CERT, cert_file)?;
            let chain = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem_error(CERT, cert_file, e))?;
            let key = PrivateKeyDer::from_pem_slice(&read(KEY, key_file)?)
                .map_err(|e| pem_error(KEY, key_file, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| BrokerSetupError::Tls(e.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_split_at_the_first_colon_only() {
        let dir = std::env::temp_dir().join(format!("vigil-mqtt-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("c");
        std::fs::write(&file, "vigil:pa:ss\n").expect("write");
        assert_eq!(
            credentials(&file).expect("ok"),
            ("vigil".to_owned(), "pa:ss".to_owned())
        );
        for bad in ["nocolon\n", ":pw\n", "a:b\nc:d\n"] {
            std::fs::write(&file, bad).expect("write");
            assert!(
                matches!(credentials(&file), Err(BrokerSetupError::Credentials(_))),
                "{bad:?}"
            );
        }
        std::fs::remove_dir_all(&dir).expect("clean");
    }
}

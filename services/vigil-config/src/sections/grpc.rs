//! `[grpc]`: where the hub serves the gRPC API, and the extra names in its
//! certificate.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::check::Checker;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrpcFile {
    listen: Option<String>,
    #[serde(default)]
    hostnames: Vec<String>,
}

/// The gRPC API.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
    /// Extra names and addresses for the hub's certificate (besides
    /// `vigil-hub`, `localhost` and the loopback addresses).
    pub hostnames: Vec<String>,
}

pub(crate) fn check(c: &mut Checker, f: GrpcFile) -> GrpcConfig {
    let listen = f.listen.as_deref().unwrap_or("[::]:7443");
    GrpcConfig {
        listen: c.socket_addr(
            "grpc.listen",
            listen,
            "use a form like \"[::]:7443\" or \"192.168.1.10:7443\"",
        ),
        hostnames: f.hostnames,
    }
}

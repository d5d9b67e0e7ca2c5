//! Why camd stops: every error `Setup::from_config` and `run` can return,
//! and the exit code each one stops the process with ([`ExitError`]; the
//! codes are `vigil_service`'s: 1 a runtime failure, systemd restarts
//! camd; 78 the configuration or a file it names, systemd does not).

use vigil_camlink::LinkError;
use vigil_service::{ExitError, ExitStatus};

/// Errors that stop camd.
#[derive(Debug, thiserror::Error)]
pub enum CamdError {
    /// Exit 78: the config has no `[[cameras]]` entry.
    #[error("no camera is configured: add a [[cameras]] entry")]
    NoCamera,
    /// Exit 78: several cameras and no `--camera` to pick one (under
    /// systemd, the unit passes it: the config was cut wrong).
    #[error("there are several cameras: say which with --camera ({0})")]
    WhichCamera(String),
    /// Exit 78: `--camera` names no `[[cameras]]` entry.
    #[error("no camera named {0:?} in the config")]
    UnknownCamera(String),
    /// Exit 78: the camera has neither `key_file` nor `key`.
    #[error("camera {0}: set key_file (or key) to the secret shared with the hub")]
    NoKey(String),
    /// Exit 78: the camera's key file cannot be read, or the key is empty.
    #[error(
        "camera {camera}: {source}; fix: put the secret shared with the hub in key_file, \
         readable by camd's user"
    )]
    Key {
        camera: String,
        #[source]
        source: LinkError,
    },
    /// Exit 1: a UDP socket (the heartbeat's, or the one that waits for
    /// the hub's beacon on `discovery_port`, which another process may
    /// hold).
    #[error("cannot open {what}: {source}")]
    Udp {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// Exit 1: GStreamer or the camera pipeline (a missing plugin: the
    /// message names it).
    #[error("the camera pipeline: {0}")]
    Media(#[from] vigil_media::MediaError),
}

impl ExitError for CamdError {
    fn exit_status(&self) -> ExitStatus {
        match self {
            CamdError::NoCamera
            | CamdError::WhichCamera(_)
            | CamdError::UnknownCamera(_)
            | CamdError::NoKey(_) => ExitStatus::Config,
            CamdError::Key { source, .. } => match source {
                LinkError::KeyFile { .. } | LinkError::EmptyKey => ExitStatus::Config,
                // Not made by reading a key; here for completeness.
                LinkError::Io(_)
                | LinkError::Closed
                | LinkError::BadLength(_)
                | LinkError::UnknownType(_)
                | LinkError::Malformed(_)
                | LinkError::BadKey(_)
                | LinkError::HubNotProven
                | LinkError::Refused(_)
                | LinkError::Unexpected(_)
                | LinkError::Tampered
                | LinkError::OldVersion(_)
                | LinkError::NoKeyOpens
                | LinkError::Noise(_) => ExitStatus::Failure,
            },
            CamdError::Udp { .. } | CamdError::Media(_) => ExitStatus::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_exits_with_its_documented_code() {
        let cases = [
            (CamdError::NoCamera, 78),
            (CamdError::WhichCamera("porch, garden".into()), 78),
            (CamdError::UnknownCamera("attic".into()), 78),
            (CamdError::NoKey("porch".into()), 78),
            (
                CamdError::Key {
                    camera: "porch".into(),
                    source: LinkError::KeyFile {
                        path: "/run/credentials/vigil-camd@porch.service/key".into(),
                        source: std::io::Error::from(std::io::ErrorKind::NotFound),
                    },
                },
                78,
            ),
            (
                CamdError::Key {
                    camera: "porch".into(),
                    source: LinkError::EmptyKey,
                },
                78,
            ),
            (
                CamdError::Udp {
                    what: "the heartbeat socket".into(),
                    source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
                },
                1,
            ),
            (
                CamdError::Media(vigil_media::MediaError::Build(
                    "no element \"libcamerasrc\"".into(),
                )),
                1,
            ),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_status().code(), code, "{error:?}");
        }
    }
}

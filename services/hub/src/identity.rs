//! Who this hub is, and which event log its sequence numbers come from:
//! the two identities an app keeps beside what it numbered by `seq`, so it
//! can tell "the same hub, more events" from "a reinstalled hub whose
//! numbers started again" (`Status.hub_id`, `Status.log_id`, and the
//! headers of every WatchEvents stream).
//!
//! Owns `<state_dir>/hub-id` and `<state_dir>/events/log-id`: 32 lowercase
//! hex digits each, made at random when missing (a first start; a log dir
//! that was wiped), written durably. Must never change an identity that
//! exists and reads well.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::Rng;

/// Why an identity file cannot be kept.
#[derive(Debug, thiserror::Error)]
#[error("cannot keep the identity file {path}: {source}; is the state directory writable?")]
pub struct IdentityError {
    pub path: PathBuf,
    pub source: std::io::Error,
}

/// What GetSystem and GetStatus say about the hub itself.
#[derive(Clone, Debug)]
pub struct HubInfo {
    pub hub_id: String,
    pub log_id: String,
    /// The hub's version (its crate's).
    pub version: &'static str,
    pub started_unix_ms: u64,
    started: Instant,
}

impl HubInfo {
    /// The identities under `state_dir`, made where missing.
    pub fn load_or_create(state_dir: &Path) -> Result<HubInfo, IdentityError> {
        Ok(HubInfo::new(
            id_file(&state_dir.join("hub-id"))?,
            id_file(&state_dir.join("events").join("log-id"))?,
        ))
    }

    /// Fresh identities kept nowhere: for the benchmark's open server.
    pub fn ephemeral() -> HubInfo {
        HubInfo::new(random_id(), random_id())
    }

    fn new(hub_id: String, log_id: String) -> HubInfo {
        HubInfo {
            hub_id,
            log_id,
            version: env!("CARGO_PKG_VERSION"),
            started_unix_ms: crate::clock::now_ms(),
            started: Instant::now(),
        }
    }

    /// Whole seconds since the hub started.
    pub fn uptime_s(&self) -> u64 {
        self.started.elapsed().as_secs()
    }
}

fn random_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn well_formed(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The id in `path`, or a new one written there when the file is missing
/// or does not hold one (a torn write; the old id is lost either way).
fn id_file(path: &Path) -> Result<String, IdentityError> {
    let fail = |source| IdentityError {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) if well_formed(text.trim()) => return Ok(text.trim().to_owned()),
        Ok(_) => tracing::warn!(
            path = %path.display(),
            "the identity file is damaged; making a new identity (apps will resynchronise)"
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let id = random_id();
    crate::files::replace_private(
        path,
        &path.with_extension("tmp"),
        format!("{id}\n").as_bytes(),
    )
    .map_err(fail)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_persist_and_a_wiped_log_gets_a_new_one() {
        let dir = tempfile::tempdir().expect("dir");
        let first = HubInfo::load_or_create(dir.path()).expect("first");
        assert!(well_formed(&first.hub_id) && well_formed(&first.log_id));
        assert_ne!(first.hub_id, first.log_id);
        let again = HubInfo::load_or_create(dir.path()).expect("again");
        assert_eq!(
            (&again.hub_id, &again.log_id),
            (&first.hub_id, &first.log_id)
        );
        std::fs::remove_dir_all(dir.path().join("events")).expect("wipe the log");
        let wiped = HubInfo::load_or_create(dir.path()).expect("wiped");
        assert_eq!(wiped.hub_id, first.hub_id);
        assert_ne!(wiped.log_id, first.log_id);
        std::fs::write(dir.path().join("hub-id"), "half").expect("damage");
        let damaged = HubInfo::load_or_create(dir.path()).expect("damaged");
        assert_ne!(damaged.hub_id, first.hub_id);
        assert!(well_formed(&damaged.hub_id));
    }
}

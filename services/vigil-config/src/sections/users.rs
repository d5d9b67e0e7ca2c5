//! `[[users]]`: who may arm and disarm, with the argon2 hashes of their PINs.

use std::path::PathBuf;

use serde::Deserialize;
use vigil_domain::Role;

use crate::check::{At, Checker};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserFile {
    name: Option<String>,
    role: Option<String>,
    pin_hash: Option<String>,
    pin_hash_file: Option<PathBuf>,
    duress_pin_hash: Option<String>,
    duress_pin_hash_file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct UserConfig {
    pub name: String,
    pub role: Role,
    /// File holding the argon2 PHC string of the PIN (read at run time so the
    /// hash never lands in a world-readable store).
    pub pin_hash_file: Option<PathBuf>,
    /// The argon2 PHC string inline (for tests and the demo).
    pub pin_hash: Option<String>,
    /// The duress PIN: disarms as asked and raises a silent alert.
    pub duress_pin_hash_file: Option<PathBuf>,
    pub duress_pin_hash: Option<String>,
}

pub(crate) fn check(c: &mut Checker, files: Vec<UserFile>) -> Vec<UserConfig> {
    c.each("users", files, user)
}

fn user(c: &mut Checker, at: &At, u: UserFile) -> Option<UserConfig> {
    let name = c.name(&at.key("name"), u.name, "user");
    let role = c.word(&at.key("role"), u.role.as_deref(), Role::User);
    if u.pin_hash.is_none() && u.pin_hash_file.is_none() {
        c.report(
            at.key("pin_hash_file"),
            "the user has no PIN",
            "set `pin_hash_file` to a file holding the argon2 hash of the PIN",
        );
    }
    Some(UserConfig {
        name: name?,
        role,
        pin_hash: u.pin_hash,
        pin_hash_file: u.pin_hash_file,
        duress_pin_hash: u.duress_pin_hash,
        duress_pin_hash_file: u.duress_pin_hash_file,
    })
}

//! The keypad users added over the API (AddUser, RemoveUser, SetPin),
//! kept in `<state_dir>/users.json` (mode 0600, replaced whole and durably)
//! beside the users of the config file, which stay the config file's.
//!
//! Owns the file and its lock: one change at a time, written before the
//! engine is told, so a hub killed in between starts with the change. A
//! wire type ([`StoredUser`]) holds only names, roles and argon2 hashes;
//! a PIN never reaches this module.
//!
//! Must never: keep a user whose hash does not parse (refused at load,
//! with the file named). (A stored user never shadows a configured one:
//! the engine merges them, the config's names first.)

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use vigil_alarm::users::{User, UserError};
use vigil_domain::Role;

/// A user as stored (a wire type: it derives serde). Its `Debug` leaves
/// the hashes out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredUser {
    pub name: String,
    pub role: String,
    pub pin_hash: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duress_pin_hash: Option<String>,
}

impl std::fmt::Debug for StoredUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredUser")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("has_duress_code", &self.duress_pin_hash.is_some())
            .finish_non_exhaustive()
    }
}

impl StoredUser {
    /// The user with checked hashes.
    pub fn checked(&self) -> Result<User, UserStoreError> {
        let role = Role::parse(&self.role).ok_or_else(|| UserStoreError::Damaged {
            path: PathBuf::new(),
            message: format!("user {}: unknown role {:?}", self.name, self.role),
        })?;
        Ok(User::new(
            &self.name,
            role,
            &self.pin_hash,
            self.duress_pin_hash.as_deref(),
        )?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UserStoreError {
    #[error(transparent)]
    Io(#[from] crate::files::FileError),
    #[error(
        "{path} is not a valid list of users ({message}); restore it from a backup, or move it \
         away to start without the users added over the API"
    )]
    Damaged { path: PathBuf, message: String },
    #[error(transparent)]
    User(#[from] UserError),
}

/// The users added over the API.
#[derive(Debug)]
pub struct UserStore {
    path: PathBuf,
    /// The users as last written; held only to read or replace it.
    users: std::sync::Mutex<Vec<StoredUser>>,
    /// Held across a whole change as the API makes it, from the admin's
    /// confirmation to the engine told: changes are made, and reach the
    /// engine, one at a time and in order.
    changes: tokio::sync::Mutex<()>,
}

impl UserStore {
    /// The store of `state_dir`; empty when the file does not exist yet.
    pub fn load(state_dir: &Path) -> Result<UserStore, UserStoreError> {
        let path = state_dir.join("users.json");
        let users = match std::fs::read(&path) {
            Ok(bytes) => {
                let users: Vec<StoredUser> =
                    serde_json::from_slice(&bytes).map_err(|e| UserStoreError::Damaged {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                for user in &users {
                    user.checked().map_err(|e| UserStoreError::Damaged {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                }
                users
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(crate::files::FileError::on("read", &path)(source).into()),
        };
        Ok(UserStore {
            path,
            users: std::sync::Mutex::new(users),
            changes: tokio::sync::Mutex::new(()),
        })
    }

    /// Waits for the changes before this one to end; the change holds the
    /// guard until it is done (the engine told).
    pub async fn one_change_at_a_time(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.changes.lock().await
    }

    /// The stored users now.
    pub fn list(&self) -> Vec<StoredUser> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Applies `change` to the stored users and writes the result
    /// durably before returning it; an error from `change` or the write
    /// leaves everything as it was. Made under
    /// [`UserStore::one_change_at_a_time`].
    pub async fn change<E: From<UserStoreError>>(
        &self,
        change: impl FnOnce(&mut Vec<StoredUser>) -> Result<(), E>,
    ) -> Result<Vec<StoredUser>, E> {
        let mut next = self.list();
        change(&mut next)?;
        let text = serde_json::to_vec_pretty(&next).map_err(|e| UserStoreError::Damaged {
            path: self.path.clone(),
            message: e.to_string(),
        })?;
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            crate::files::replace_private(&path, &path.with_extension("tmp"), &text)
                .map_err(crate::files::FileError::on("write", &path))
        })
        .await
        .map_err(|e| crate::files::FileError::on("write", &self.path)(std::io::Error::other(e)))
        .and_then(|written| written)
        .map_err(UserStoreError::from)?;
        *self
            .users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = next.clone();
        Ok(next)
    }
}

/// The stored users as the engine takes them (it merges them after the
/// config file's, whose names win); one that is unusable is left out and
/// said (the file was checked at load, so only a bug gets here).
pub fn checked(stored: &[StoredUser]) -> Vec<User> {
    stored
        .iter()
        .filter_map(|s| match s.checked() {
            Ok(user) => Some(user),
            Err(e) => {
                tracing::error!(user = %s.name, "a stored user is unusable: {e}");
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(name: &str) -> StoredUser {
        StoredUser {
            name: name.into(),
            role: "user".into(),
            // argon2's smallest parameters: the tests hash nothing.
            pin_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$9mS1nBhqzC3jJ0XQy3lVtg".into(),
            duress_pin_hash: None,
        }
    }

    #[tokio::test]
    async fn changes_are_kept_across_a_restart_and_a_failed_change_changes_nothing() {
        let dir = tempfile::tempdir().expect("dir");
        let store = UserStore::load(dir.path()).expect("load");
        assert!(store.list().is_empty());
        store
            .change(|users| {
                users.push(stored("bob"));
                Ok::<_, UserStoreError>(())
            })
            .await
            .expect("add");
        let refused = store
            .change(|users| {
                users.clear();
                Err(UserStoreError::Damaged {
                    path: PathBuf::new(),
                    message: "no".into(),
                })
            })
            .await;
        assert!(refused.is_err());
        let again = UserStore::load(dir.path()).expect("reload");
        assert_eq!(again.list(), vec![stored("bob")]);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("users.json"))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_damaged_file_is_refused_with_its_name() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("users.json"), b"[{\"name\":").expect("write");
        let e = UserStore::load(dir.path()).expect_err("damaged");
        assert!(e.to_string().contains("users.json"), "{e}");
    }

    #[test]
    fn stored_users_are_checked() {
        let users = checked(&[stored("alice"), stored("bob")]);
        let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["alice", "bob"]);
    }
}

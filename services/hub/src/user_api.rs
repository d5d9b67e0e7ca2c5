//! AdminService's user management (AddUser, RemoveUser, SetPin) and the
//! list of users: who may change users (an admin client, confirmed by an
//! admin user's PIN through the engine's PIN flow and lockout), the checks
//! on what is asked, the hashing (argon2, on a blocking thread), and the
//! order of effects: the store written durably, then the engine told (with
//! the audit event), then the answer.
//!
//! Concurrency: every change runs whole on a task of its own (a client
//! that goes away mid-change cannot leave the file, the engine and the
//! clients out of step: the gRPC handlers spawn and await it), and one
//! change at a time from its confirmation to the engine told
//! ([`UserStore::one_change_at_a_time`]), so a check ("nobody has this
//! PIN") still holds when its change is made.
//!
//! Must never: log or store a PIN; hash a PIN before the admin's PIN is
//! confirmed (a stranger's flood would cost argon2 time); answer a taken
//! PIN without booking it as a wrong one (or an admin could test every
//! user's PIN for free); change a user of the config file.

use std::sync::Arc;

use tonic::Status;
use vigil_alarm::Actor;
use vigil_alarm::users::{User, hash_pin, lookup, well_formed};
use vigil_domain::text::excerpt;
use vigil_domain::{EventKind, Role};
use vigil_proto::v1 as pb;

use crate::commands::{Command, Confirmed};
use crate::convert::{from_pb_role, to_pb_role};
use crate::grpc::{Api, ApiView};
use crate::users::{StoredUser, UserStore, UserStoreError};

/// Where a user comes from, as ListUsers says it.
const FROM_CONFIG: &str = "config";
const FROM_API: &str = "api";

impl From<UserStoreError> for Status {
    fn from(e: UserStoreError) -> Status {
        Status::internal(e.to_string())
    }
}

/// A user's name: what a client's may be (1 to 31 of a-z 0-9 - _).
fn check_name(name: &str) -> Result<(), Status> {
    if vigil_domain::is_valid_name(name) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "user name {} is not valid: use 1 to 31 of a-z, 0-9, '-' and '_'",
            excerpt(name)
        )))
    }
}

/// A new PIN from a request: INVALID_ARGUMENT unless 4 to 12 digits.
fn check_pin(what: &str, pin: &str) -> Result<(), Status> {
    if well_formed(pin) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "the {what} must be 4 to 12 digits"
        )))
    }
}

/// The new codes of a change, hashed (None: unchanged).
#[derive(Debug)]
struct NewHashes {
    pin: Option<String>,
    duress: Option<String>,
}

/// A new code that someone already has.
#[derive(Debug)]
struct Taken;

/// Hashes the new PIN and duress PIN of `changing` (None: unchanged), off
/// the runtime, after checking that nobody has either: no other user, and
/// not `changing` itself under its other code (a duress PIN equal to the
/// PIN would make every disarm a silent alarm).
async fn hash_new(
    users: Arc<Vec<User>>,
    changing: &str,
    pin: Option<String>,
    duress: Option<String>,
) -> Result<Result<NewHashes, Taken>, Status> {
    let changing = changing.to_owned();
    tokio::task::spawn_blocking(move || {
        let (me, others): (Vec<User>, Vec<User>) =
            users.iter().cloned().partition(|u| u.name == changing);
        // Whether `code` is someone's code that stays: another user's, or
        // this user's other code when that one is not being replaced.
        let taken = |code: &str, replacing_duress: bool| {
            lookup(&others, code).is_some()
                || lookup(&me, code).is_some_and(|f| {
                    if f.duress {
                        !replacing_duress
                    } else {
                        pin.is_none()
                    }
                })
        };
        let pin_taken = pin.as_deref().is_some_and(|p| taken(p, duress.is_some()));
        let duress_taken = duress.as_deref().is_some_and(|d| taken(d, true));
        if pin_taken || duress_taken {
            return Ok(Err(Taken));
        }
        let hash = |code: &Option<String>| {
            code.as_deref()
                .map(|c| hash_pin(c).map_err(|e| Status::internal(e.to_string())))
                .transpose()
        };
        Ok(Ok(NewHashes {
            pin: hash(&pin)?,
            duress: hash(&duress)?,
        }))
    })
    .await
    .map_err(|e| Status::internal(e.to_string()))?
}

impl Api {
    /// Every user, the config file's first.
    pub(crate) fn users(&self, view: &ApiView) -> Vec<pb::User> {
        let mut users: Vec<pb::User> = view
            .users
            .iter()
            .map(|(name, role, duress)| pb::User {
                name: name.clone(),
                role: to_pb_role(*role) as i32,
                has_duress_code: *duress,
                source: FROM_CONFIG.into(),
            })
            .collect();
        if let Some(store) = &self.user_store {
            for stored in store.list() {
                if users.iter().any(|u| u.name == stored.name) {
                    continue;
                }
                users.push(to_pb_user(&stored));
            }
        }
        users
    }

    fn store(&self) -> Result<&Arc<UserStore>, Status> {
        self.user_store
            .as_ref()
            .ok_or_else(|| Status::unimplemented("this server keeps no users"))
    }

    /// A new code someone already has: refused with ALREADY_EXISTS, and
    /// booked as a wrong PIN from this client (toward the lockout, with
    /// its event), so that checking codes this way costs what guessing
    /// them at the keypad does.
    async fn refuse_taken(&self, by: Actor) -> Status {
        let booked = self
            .engine
            .ask(|reply| Command::RefuseTakenPin { by, reply })
            .await;
        match booked {
            Err(crate::commands::CommandError::WrongPin { attempts_left }) => {
                Status::already_exists(format!(
                    "someone already has that PIN (or duress PIN): choose another; counted as a \
                     wrong PIN, {attempts_left} attempts left before a 90 s lockout"
                ))
            }
            Err(e) => e.into(),
            Ok(_) => Status::internal("a taken PIN was not booked"),
        }
    }

    /// The admin client's actor and its admin PIN, confirmed by the engine.
    async fn confirm_admin(
        &self,
        by: Actor,
        admin_pin: String,
    ) -> Result<(Actor, Confirmed), Status> {
        let confirmed = self
            .engine
            .ask(|reply| Command::ConfirmAdmin {
                pin: admin_pin,
                by: by.clone(),
                reply,
            })
            .await?;
        let by = Actor {
            user: Some(confirmed.admin.clone()),
            source: by.source,
        };
        Ok((by, confirmed))
    }

    /// Tells the engine the stored users after a change (it merges them
    /// with the config file's, as they are now), with its audit event.
    async fn publish_users(
        &self,
        stored: &[StoredUser],
        by: Actor,
        audit: (EventKind, String),
    ) -> Result<(), Status> {
        let managed = crate::users::checked(stored);
        self.engine
            .ask(|reply| Command::SetUsers {
                managed,
                by,
                audit,
                reply,
            })
            .await?;
        Ok(())
    }

    /// Refuses a change to a user of the config file.
    fn not_configured(view: &ApiView, name: &str) -> Result<(), Status> {
        if view.users.iter().any(|(user, _, _)| user == name) {
            return Err(Status::failed_precondition(format!(
                "user {name} is in the config file: change them there and reload the hub"
            )));
        }
        Ok(())
    }

    pub(crate) async fn add_user(
        &self,
        by: Actor,
        view: Arc<ApiView>,
        req: pb::AddUserRequest,
    ) -> Result<pb::AddUserResponse, Status> {
        let store = self.store()?;
        check_name(&req.name)?;
        let role = from_pb_role(req.role)
            .ok_or_else(|| Status::invalid_argument("role must be guest, user or admin"))?;
        check_pin("pin", &req.pin)?;
        let duress = (!req.duress_pin.is_empty()).then_some(req.duress_pin);
        if let Some(duress) = &duress {
            check_pin("duress PIN", duress)?;
            if *duress == req.pin {
                return Err(Status::invalid_argument(
                    "the duress PIN must differ from the PIN",
                ));
            }
        }
        Self::not_configured(&view, &req.name)?;
        if store.list().iter().any(|u| u.name == req.name) {
            return Err(Status::already_exists(format!(
                "there is already a user {}",
                req.name
            )));
        }
        let _one_change = store.one_change_at_a_time().await;
        let (by, confirmed) = self.confirm_admin(by, req.admin_pin).await?;
        let hashes = match hash_new(confirmed.users, &req.name, Some(req.pin), duress).await? {
            Ok(hashes) => hashes,
            Err(Taken) => return Err(self.refuse_taken(by).await),
        };
        let user = StoredUser {
            name: req.name.clone(),
            role: role.as_str().to_owned(),
            pin_hash: hashes
                .pin
                .ok_or_else(|| Status::internal("the PIN was not hashed"))?,
            duress_pin_hash: hashes.duress,
        };
        let added = to_pb_user(&user);
        let changed = store
            .change(|users| {
                // Another change may have added the name meanwhile.
                if users.iter().any(|u| u.name == user.name) {
                    return Err(Status::already_exists(format!(
                        "there is already a user {}",
                        user.name
                    )));
                }
                users.push(user);
                Ok(())
            })
            .await?;
        let message = format!(
            "user {} added ({}) by {}",
            req.name,
            role.as_str(),
            by.user.as_deref().unwrap_or("")
        );
        let audit = (EventKind::UserAdded, message);
        self.publish_users(&changed, by, audit).await?;
        tracing::info!(user = %req.name, role = role.as_str(), "user added");
        Ok(pb::AddUserResponse { user: Some(added) })
    }

    pub(crate) async fn remove_user(
        &self,
        by: Actor,
        view: Arc<ApiView>,
        req: pb::RemoveUserRequest,
    ) -> Result<pb::RemoveUserResponse, Status> {
        let store = self.store()?;
        check_name(&req.name)?;
        Self::not_configured(&view, &req.name)?;
        if !store.list().iter().any(|u| u.name == req.name) {
            return Err(Status::not_found(format!("no user named {}", req.name)));
        }
        let _one_change = store.one_change_at_a_time().await;
        let (by, _) = self.confirm_admin(by, req.admin_pin).await?;
        let changed = store
            .change(|users| {
                let before = users.len();
                users.retain(|u| u.name != req.name);
                if users.len() == before {
                    return Err(Status::not_found(format!("no user named {}", req.name)));
                }
                Ok(())
            })
            .await?;
        // A user who is gone has no phones either, nor codes to pair one.
        let mut revoked_clients = Vec::new();
        if let Some(pki) = self.pki() {
            pki.cancel_codes_for(&req.name);
            for client in pki.clients() {
                if client.user.as_deref() == Some(req.name.as_str()) {
                    pki.revoke(&client.name)
                        .map_err(|e| Status::internal(e.to_string()))?;
                    revoked_clients.push(client.name);
                }
            }
        }
        let message = format!(
            "user {} removed by {}{}",
            req.name,
            by.user.as_deref().unwrap_or(""),
            if revoked_clients.is_empty() {
                String::new()
            } else {
                format!("; clients revoked: {}", revoked_clients.join(", "))
            }
        );
        let audit = (EventKind::UserRemoved, message);
        self.publish_users(&changed, by, audit).await?;
        tracing::info!(user = %req.name, "user removed");
        Ok(pb::RemoveUserResponse { revoked_clients })
    }

    pub(crate) async fn set_pin(
        &self,
        by: Actor,
        view: Arc<ApiView>,
        req: pb::SetPinRequest,
    ) -> Result<pb::SetPinResponse, Status> {
        let store = self.store()?;
        check_name(&req.name)?;
        Self::not_configured(&view, &req.name)?;
        let new_pin = (!req.pin.is_empty()).then_some(req.pin);
        let new_duress = (!req.duress_pin.is_empty()).then_some(req.duress_pin);
        for (what, pin) in [("pin", &new_pin), ("duress PIN", &new_duress)] {
            if let Some(pin) = pin {
                check_pin(what, pin)?;
            }
        }
        if new_pin.is_none() && new_duress.is_none() && !req.clear_duress {
            return Err(Status::invalid_argument(
                "nothing to change: give a pin, a duress_pin or clear_duress",
            ));
        }
        if new_duress.is_some() && req.clear_duress {
            return Err(Status::invalid_argument(
                "give a duress_pin or clear_duress, not both",
            ));
        }
        if new_pin.is_some() && new_pin == new_duress {
            return Err(Status::invalid_argument(
                "the duress PIN must differ from the PIN",
            ));
        }
        if !store.list().iter().any(|u| u.name == req.name) {
            return Err(Status::not_found(format!("no user named {}", req.name)));
        }
        let _one_change = store.one_change_at_a_time().await;
        let (by, confirmed) = self.confirm_admin(by, req.admin_pin).await?;
        let hashes = match hash_new(confirmed.users, &req.name, new_pin, new_duress).await? {
            Ok(hashes) => hashes,
            Err(Taken) => return Err(self.refuse_taken(by).await),
        };
        let (pin_hash, duress_hash) = (hashes.pin, hashes.duress);
        let mut updated = None;
        let changed = store
            .change(|users| {
                let user = users
                    .iter_mut()
                    .find(|u| u.name == req.name)
                    .ok_or_else(|| Status::not_found(format!("no user named {}", req.name)))?;
                if let Some(hash) = pin_hash {
                    user.pin_hash = hash;
                }
                if let Some(hash) = duress_hash {
                    user.duress_pin_hash = Some(hash);
                } else if req.clear_duress {
                    user.duress_pin_hash = None;
                }
                updated = Some(to_pb_user(user));
                Ok::<_, Status>(())
            })
            .await?;
        let message = format!(
            "user {}'s PIN changed by {}",
            req.name,
            by.user.as_deref().unwrap_or("")
        );
        let audit = (EventKind::UserPinChanged, message);
        self.publish_users(&changed, by, audit).await?;
        tracing::info!(user = %req.name, "user's PIN changed");
        Ok(pb::SetPinResponse { user: updated })
    }
}

fn to_pb_user(user: &StoredUser) -> pb::User {
    pb::User {
        name: user.name.clone(),
        role: Role::parse(&user.role).map_or(pb::Role::Unspecified, to_pb_role) as i32,
        has_duress_code: user.duress_pin_hash.is_some(),
        source: FROM_API.into(),
    }
}

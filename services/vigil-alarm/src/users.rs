//! Users, their PIN codes (argon2 hashes, never the codes), duress codes,
//! and the keypad lockout of EN 50131 grade 2: after
//! [`LOCKOUT_ATTEMPTS`] wrong codes in a row, every code (right ones too) is
//! refused for [`LOCKOUT_TIME`].

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use vigil_domain::Role;

use crate::Millis;

pub const LOCKOUT_ATTEMPTS: u32 = 10;
/// Milliseconds.
pub const LOCKOUT_TIME: Millis = 90_000;
/// PINs are 4 to 12 digits: at least the 10 000 combinations grade 2 asks.
pub const PIN_DIGITS: std::ops::RangeInclusive<usize> = 4..=12;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("a PIN is {min} to {max} digits", min = PIN_DIGITS.start(), max = PIN_DIGITS.end())]
    BadPin,
    #[error(
        "user {user}: the PIN hash is not an argon2 PHC string ({message}); make one with `vigilctl hash-pin`"
    )]
    BadHash { user: String, message: String },
    #[error("cannot hash the PIN: {0}")]
    Hash(String),
}

/// Hashes a PIN for the config (argon2id, random salt).
pub fn hash_pin(pin: &str) -> Result<String, UserError> {
    if !PIN_DIGITS.contains(&pin.len()) || !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UserError::BadPin);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

/// A hash with argon2's smallest parameters: fast checks for tests only
/// (verification reads the parameters from the hash).
#[cfg(test)]
pub(crate) fn cheap_hash(pin: &str) -> String {
    let params = argon2::Params::new(8, 1, 1, None).expect("params");
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(pin.as_bytes(), &salt)
        .expect("hash")
        .to_string()
}

/// A user with checked hashes.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub role: Role,
    pin_hash: String,
    duress_hash: Option<String>,
}

impl User {
    /// Checks that the hashes parse, so a typo fails at start, not at the
    /// first disarm.
    pub fn new(
        name: &str,
        role: Role,
        pin_hash: &str,
        duress_hash: Option<&str>,
    ) -> Result<User, UserError> {
        for h in std::iter::once(pin_hash).chain(duress_hash) {
            PasswordHash::new(h.trim()).map_err(|e| UserError::BadHash {
                user: name.to_owned(),
                message: e.to_string(),
            })?;
        }
        Ok(User {
            name: name.to_owned(),
            role,
            pin_hash: pin_hash.trim().to_owned(),
            duress_hash: duress_hash.map(|h| h.trim().to_owned()),
        })
    }
}

fn matches(hash: &str, pin: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        Argon2::default()
            .verify_password(pin.as_bytes(), &h)
            .is_ok()
    })
}

/// The result of entering a code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodeCheck {
    Valid {
        user: String,
        role: Role,
        /// The user's duress code: obey, and raise a silent alert.
        duress: bool,
    },
    Wrong {
        attempts_left: u32,
    },
    LockedOut {
        retry_after_ms: Millis,
    },
}

/// The lockout counters; persisted so a restart does not reset them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lockout {
    pub failures: u32,
    pub locked_until: Option<Millis>,
}

/// Every user, and the lockout.
#[derive(Clone, Debug)]
pub struct Users {
    users: Vec<User>,
    pub lockout: Lockout,
}

impl Users {
    pub fn new(users: Vec<User>, lockout: Lockout) -> Users {
        Users { users, lockout }
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Checks a code at `now`: [`Users::lookup`] then [`Users::record`].
    pub fn check(&mut self, pin: &str, now: Millis) -> CodeCheck {
        if let Some(locked) = self.locked(now) {
            return locked;
        }
        let found = lookup(&self.users, pin);
        self.record(found, now)
    }

    /// Whether codes are refused at `now` (checked before the slow part).
    pub fn locked(&self, now: Millis) -> Option<CodeCheck> {
        match self.lockout.locked_until {
            Some(until) if now < until => Some(CodeCheck::LockedOut {
                retry_after_ms: until - now,
            }),
            _ => None,
        }
    }

    /// A copy of the users, for [`lookup`] off the caller's thread.
    pub fn snapshot(&self) -> std::sync::Arc<Vec<User>> {
        std::sync::Arc::new(self.users.clone())
    }

    /// Books the result of a [`lookup`] made for a code entered at `now`.
    /// A lockout that began while the lookup ran still refuses it.
    pub fn record(&mut self, found: Option<Found>, now: Millis) -> CodeCheck {
        if let Some(locked) = self.locked(now) {
            return locked;
        }
        self.lockout.locked_until = None;
        if let Some(found) = found {
            self.lockout.failures = 0;
            return CodeCheck::Valid {
                user: found.user,
                role: found.role,
                duress: found.duress,
            };
        }
        self.lockout.failures += 1;
        if self.lockout.failures >= LOCKOUT_ATTEMPTS {
            self.lockout.failures = 0;
            self.lockout.locked_until = Some(now + LOCKOUT_TIME);
            return CodeCheck::LockedOut {
                retry_after_ms: LOCKOUT_TIME,
            };
        }
        CodeCheck::Wrong {
            attempts_left: LOCKOUT_ATTEMPTS - self.lockout.failures,
        }
    }
}

/// Whose code `pin` is: the slow part (argon2 per hash), pure, so it can
/// run on a blocking thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub user: String,
    pub role: Role,
    pub duress: bool,
}

pub fn lookup(users: &[User], pin: &str) -> Option<Found> {
    users.iter().find_map(|user| {
        let duress = user.duress_hash.as_deref().is_some_and(|h| matches(h, pin));
        (duress || matches(&user.pin_hash, pin)).then(|| Found {
            user: user.name.clone(),
            role: user.role,
            duress,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> Users {
        let pin = cheap_hash("1234");
        let duress = cheap_hash("9999");
        Users::new(
            vec![User::new("alice", Role::Admin, &pin, Some(&duress)).expect("user")],
            Lockout::default(),
        )
    }

    #[test]
    fn right_wrong_and_duress_codes() {
        let mut users = alice();
        assert_eq!(
            users.check("1234", 0),
            CodeCheck::Valid {
                user: "alice".into(),
                role: Role::Admin,
                duress: false
            }
        );
        assert!(matches!(
            users.check("9999", 0),
            CodeCheck::Valid { duress: true, .. }
        ));
        assert_eq!(
            users.check("0000", 0),
            CodeCheck::Wrong { attempts_left: 9 }
        );
    }

    #[test]
    fn ten_wrong_codes_lock_out_even_the_right_one_for_90_s() {
        let mut users = alice();
        for i in 1..LOCKOUT_ATTEMPTS {
            assert_eq!(
                users.check("0000", 0),
                CodeCheck::Wrong {
                    attempts_left: LOCKOUT_ATTEMPTS - i
                }
            );
        }
        assert_eq!(
            users.check("0000", 1_000),
            CodeCheck::LockedOut {
                retry_after_ms: LOCKOUT_TIME
            }
        );
        assert_eq!(
            users.check("1234", 31_000),
            CodeCheck::LockedOut {
                retry_after_ms: 60_000
            }
        );
        assert!(matches!(
            users.check("1234", 1_000 + LOCKOUT_TIME),
            CodeCheck::Valid { .. }
        ));
    }

    #[test]
    fn hash_pin_makes_a_verifiable_argon2id_hash() {
        let hash = hash_pin("123456").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(matches(&hash, "123456"));
        assert!(!matches(&hash, "654321"));
    }

    #[test]
    fn bad_pins_and_hashes_are_refused() {
        assert!(matches!(hash_pin("12"), Err(UserError::BadPin)));
        assert!(matches!(hash_pin("12ab"), Err(UserError::BadPin)));
        assert!(matches!(
            User::new("bob", Role::User, "not-a-hash", None),
            Err(UserError::BadHash { .. })
        ));
    }
}

//! Users, their PIN codes (argon2 hashes, never the codes), duress codes,
//! and the keypad lockout of EN 50131 grade 2: after
//! [`LOCKOUT_ATTEMPTS`] wrong codes in a row, every code (right ones too) is
//! refused for [`LOCKOUT_TIME`].
//!
//! The lockout also counts per source (a paired client, the FIFO): after
//! [`SOURCE_LOCKOUT_ATTEMPTS`] wrong codes in a row from one source, that
//! source alone is refused for [`LOCKOUT_TIME`]. So one client (a lost
//! phone, a teenager guessing) cannot use up the attempts of everyone and
//! lock the owner out; it takes wrong codes from two sources to reach the
//! system-wide lockout.

use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use vigil_domain::Role;

use crate::Millis;

pub const LOCKOUT_ATTEMPTS: u32 = 10;
/// Wrong codes in a row from one source before that source is locked out.
pub const SOURCE_LOCKOUT_ATTEMPTS: u32 = 5;
/// The most sources whose counters are kept; beyond it, the oldest idle
/// ones are forgotten (the system-wide counter still holds).
const MAX_SOURCES: usize = 256;
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

/// A user with checked hashes. Its `Debug` leaves the hashes out: an
/// offline guess at a 4-digit PIN from its hash takes minutes.
#[derive(Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
    pin_hash: String,
    duress_hash: Option<String>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("has_duress_code", &self.duress_hash.is_some())
            .finish_non_exhaustive()
    }
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
        /// Every source is locked out (else only the one that entered it).
        everyone: bool,
        /// This code started the lockout (else it was refused during one).
        began: bool,
    },
}

/// Whether `pin` can be a PIN at all (4 to 12 digits): anything else is
/// refused before it is hashed, and not counted, since no code matches it.
pub fn well_formed(pin: &str) -> bool {
    PIN_DIGITS.contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit())
}

/// The lockout counters; persisted so a restart does not reset them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lockout {
    pub failures: u32,
    pub locked_until: Option<Millis>,
}

/// Every user, and the lockouts.
#[derive(Clone, Debug)]
pub struct Users {
    users: Vec<User>,
    /// System-wide.
    pub lockout: Lockout,
    /// Per source.
    by_source: std::collections::BTreeMap<String, Lockout>,
}

impl Users {
    pub fn new(users: Vec<User>, lockout: Lockout) -> Users {
        Users {
            users,
            lockout,
            by_source: Default::default(),
        }
    }

    /// The per-source counters, to persist.
    pub fn source_lockouts(&self) -> &std::collections::BTreeMap<String, Lockout> {
        &self.by_source
    }

    /// Restores the per-source counters.
    pub fn with_source_lockouts(
        mut self,
        by_source: std::collections::BTreeMap<String, Lockout>,
    ) -> Users {
        self.by_source = by_source;
        self
    }

    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Checks a code from `source` at `now`: [`lookup`] then
    /// [`Users::record`].
    pub fn check(&mut self, pin: &str, source: &str, now: Millis) -> CodeCheck {
        if let Some(locked) = self.locked(source, now) {
            return locked;
        }
        let found = lookup(&self.users, pin);
        self.record(found, source, now)
    }

    /// Whether codes from `source` are refused at `now` (checked before
    /// the slow part).
    pub fn locked(&self, source: &str, now: Millis) -> Option<CodeCheck> {
        let refused = |lockout: &Lockout, everyone| match lockout.locked_until {
            Some(until) if now < until => Some(CodeCheck::LockedOut {
                retry_after_ms: until - now,
                everyone,
                began: false,
            }),
            _ => None,
        };
        refused(&self.lockout, true).or_else(|| refused(self.by_source.get(source)?, false))
    }

    /// A copy of the users, for [`lookup`] off the caller's thread.
    pub fn snapshot(&self) -> std::sync::Arc<Vec<User>> {
        std::sync::Arc::new(self.users.clone())
    }

    /// Books the result of a [`lookup`] made for a code entered from
    /// `source` at `now`. A lockout that began while the lookup ran still
    /// refuses it.
    pub fn record(&mut self, found: Option<Found>, source: &str, now: Millis) -> CodeCheck {
        if let Some(locked) = self.locked(source, now) {
            return locked;
        }
        self.lockout.locked_until = None;
        if let Some(found) = found {
            self.lockout.failures = 0;
            self.by_source.remove(source);
            return CodeCheck::Valid {
                user: found.user,
                role: found.role,
                duress: found.duress,
            };
        }
        self.forget_idle_sources(now);
        let mine = self.by_source.entry(source.to_owned()).or_default();
        mine.locked_until = None;
        mine.failures += 1;
        self.lockout.failures += 1;
        let began = |everyone| CodeCheck::LockedOut {
            retry_after_ms: LOCKOUT_TIME,
            everyone,
            began: true,
        };
        if self.lockout.failures >= LOCKOUT_ATTEMPTS {
            self.lockout = Lockout {
                failures: 0,
                locked_until: Some(now + LOCKOUT_TIME),
            };
            self.by_source.clear();
            return began(true);
        }
        if mine.failures >= SOURCE_LOCKOUT_ATTEMPTS {
            *mine = Lockout {
                failures: 0,
                locked_until: Some(now + LOCKOUT_TIME),
            };
            return began(false);
        }
        CodeCheck::Wrong {
            attempts_left: (SOURCE_LOCKOUT_ATTEMPTS - mine.failures)
                .min(LOCKOUT_ATTEMPTS - self.lockout.failures),
        }
    }

    /// Keeps the per-source counters bounded: past [`MAX_SOURCES`], those
    /// not locked out now are forgotten.
    fn forget_idle_sources(&mut self, now: Millis) {
        if self.by_source.len() >= MAX_SOURCES {
            self.by_source
                .retain(|_, l| l.locked_until.is_some_and(|until| now < until));
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
            users.check("1234", "a", 0),
            CodeCheck::Valid {
                user: "alice".into(),
                role: Role::Admin,
                duress: false
            }
        );
        assert!(matches!(
            users.check("9999", "a", 0),
            CodeCheck::Valid { duress: true, .. }
        ));
        assert_eq!(
            users.check("0000", "a", 0),
            CodeCheck::Wrong { attempts_left: 4 }
        );
    }

    #[test]
    fn ten_wrong_codes_from_several_sources_lock_out_even_the_right_one_for_90_s() {
        let mut users = alice();
        for i in 1..LOCKOUT_ATTEMPTS {
            let source = ["a", "b", "c"][i as usize % 3];
            assert!(
                matches!(users.check("0000", source, 0), CodeCheck::Wrong { .. }),
                "attempt {i}"
            );
        }
        assert_eq!(
            users.check("0000", "a", 1_000),
            CodeCheck::LockedOut {
                retry_after_ms: LOCKOUT_TIME,
                everyone: true,
                began: true,
            }
        );
        assert_eq!(
            users.check("1234", "d", 31_000),
            CodeCheck::LockedOut {
                retry_after_ms: 60_000,
                everyone: true,
                began: false,
            }
        );
        assert!(matches!(
            users.check("1234", "d", 1_000 + LOCKOUT_TIME),
            CodeCheck::Valid { .. }
        ));
    }

    #[test]
    fn one_source_locks_out_only_itself() {
        let mut users = alice();
        for left in (1..SOURCE_LOCKOUT_ATTEMPTS).rev() {
            assert_eq!(
                users.check("0000", "grpc:teen", 0),
                CodeCheck::Wrong {
                    attempts_left: left
                }
            );
        }
        assert_eq!(
            users.check("0000", "grpc:teen", 0),
            CodeCheck::LockedOut {
                retry_after_ms: LOCKOUT_TIME,
                everyone: false,
                began: true,
            }
        );
        // The locked source is refused, even with the right code, without
        // another wrong attempt counted anywhere.
        assert!(matches!(
            users.check("1234", "grpc:teen", 10),
            CodeCheck::LockedOut {
                everyone: false,
                began: false,
                ..
            }
        ));
        // The owner, elsewhere, still disarms.
        assert!(matches!(
            users.check("1234", "grpc:owner", 10),
            CodeCheck::Valid { .. }
        ));
    }

    #[test]
    fn only_well_formed_pins_are_worth_hashing() {
        assert!(well_formed("1234"));
        assert!(well_formed("123456789012"));
        assert!(!well_formed(""));
        assert!(!well_formed("123"));
        assert!(!well_formed("1234567890123"));
        assert!(!well_formed("12a4"));
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

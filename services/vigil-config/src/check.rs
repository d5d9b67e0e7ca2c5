//! The problem collector every section checks with, and the checks that
//! several sections share (a name, a pin, a bounded number, a choice, an
//! address, a POSIX object name).
//!
//! A check reports a [`Problem`] and still returns a value, so that the
//! sections after it are checked too and the operator sees every problem
//! in one pass. The value returned after a problem is never used: any
//! problem makes the whole file invalid. Nothing here clamps a value into
//! range: what is out of range is refused, naming the range.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::net::SocketAddr;

use vigil_domain::{AlertPriority, Level, MAX_NAME_LEN, Pull, Role};

use crate::limits::Limit;
use crate::{GPIO_PINS, Problem};

/// Collects every problem in the file before giving up.
#[derive(Default)]
pub(crate) struct Checker {
    pub(crate) problems: Vec<Problem>,
    /// Pins in use, with the key that took each, for duplicate messages.
    pins: BTreeMap<u8, String>,
}

/// One entry of an array of tables, for its keys.
pub(crate) struct At {
    table: &'static str,
    index: usize,
}

impl At {
    /// The key of `field` in this entry: `sensors[2].pin`.
    pub(crate) fn key(&self, field: &str) -> String {
        format!("{}[{}].{field}", self.table, self.index)
    }
}

/// A key whose value is one of a few words.
pub(crate) trait Word: Copy + 'static {
    /// What the word names, for the problem ("log format").
    const WHAT: &'static str;
    /// The words, as the fix lists them.
    const WORDS: &'static [(&'static str, Self)];
    /// Why one would pick which, for the fix ("" when the words say it).
    const HINT: &'static str = "";

    /// One of [`Word::WORDS`]; a type may take other spellings too.
    fn parse(word: &str) -> Option<Self> {
        Self::WORDS
            .iter()
            .find(|(w, _)| *w == word)
            .map(|(_, v)| *v)
    }
}

impl Checker {
    pub(crate) fn report(
        &mut self,
        key: impl Into<String>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.problems.push(Problem {
            key: key.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }

    pub(crate) fn required<T>(&mut self, key: &str, value: Option<T>, fix: &str) -> Option<T> {
        if value.is_none() {
            self.report(key, "missing", fix);
        }
        value
    }

    /// `value` (or the limit's default when the key is absent), refused
    /// when outside the limit's range: the problem names the value, the fix
    /// the range, its unit and what the key means. After a problem the
    /// default stands in, so that no arithmetic on the refused value can
    /// overflow while the rest of the file is checked.
    pub(crate) fn bounded<T>(&mut self, key: &str, value: Option<T>, limit: &Limit<T>) -> T
    where
        T: PartialOrd + Display + Copy,
    {
        let Some(value) = value else {
            return limit.default;
        };
        if limit.range.contains(&value) {
            return value;
        }
        let (unit, start, end) = (limit.unit, limit.range.start(), limit.range.end());
        self.report(
            key,
            format!("{value}{unit} is out of range"),
            format!("use {start}{unit} to {end}{unit}: {}", limit.meaning),
        );
        limit.default
    }

    /// One of `T`'s words; `default` when the key is absent.
    pub(crate) fn word<T: Word>(&mut self, key: &str, value: Option<&str>, default: T) -> T {
        let Some(word) = value else {
            return default;
        };
        T::parse(word).unwrap_or_else(|| {
            let words: Vec<String> = T::WORDS.iter().map(|(w, _)| format!("{w:?}")).collect();
            let mut fix = format!("use one of {}", words.join(", "));
            if !T::HINT.is_empty() {
                fix = format!("{fix}: {}", T::HINT);
            }
            self.report(key, format!("unknown {} {word:?}", T::WHAT), fix);
            default
        })
    }

    /// Checks every entry of an array of tables (`[[users]]`), each with
    /// the keys of its entry (`users[2].name`).
    pub(crate) fn each<F, T>(
        &mut self,
        table: &'static str,
        files: Vec<F>,
        mut check: impl FnMut(&mut Checker, &At, F) -> Option<T>,
    ) -> Vec<T> {
        (files.into_iter().enumerate())
            .filter_map(|(index, file)| check(self, &At { table, index }, file))
            .collect()
    }

    pub(crate) fn name(&mut self, key: &str, name: Option<String>, what: &str) -> Option<String> {
        let name = self.required(key, name, &format!("give the {what} a `name`"))?;
        if !vigil_domain::is_valid_name(&name) {
            self.report(
                key,
                format!("{name:?} is not a valid name"),
                format!("use 1 to {MAX_NAME_LEN} characters from a-z, 0-9, '-' and '_'"),
            );
            return None;
        }
        Some(name)
    }

    /// Checks a pin number and claims it for `owner`.
    pub(crate) fn pin(&mut self, key: &str, pin: Option<i64>, owner: &str) -> Option<u8> {
        let pin = self.required(key, pin, "set `pin` to the BCM number of the GPIO pin")?;
        let Some(pin) = u8::try_from(pin).ok().filter(|p| GPIO_PINS.contains(p)) else {
            self.report(
                key,
                format!("GPIO {pin} is not a pin of the 40-pin header"),
                format!(
                    "use a BCM number from {} to {}",
                    GPIO_PINS.start(),
                    GPIO_PINS.end()
                ),
            );
            return None;
        };
        if let Some(first) = self.pins.get(&pin) {
            let problem = format!("GPIO {pin} is already used by {first}");
            self.report(key, problem, "give every sensor and output its own pin");
        } else {
            self.pins.insert(pin, format!("{key} ({owner})"));
        }
        Some(pin)
    }

    /// An address and port as `SocketAddr` parses it (no host names).
    pub(crate) fn socket_addr(&mut self, key: &str, text: &str, fix: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|_| {
            self.report(key, format!("{text:?} is not an address and port"), fix);
            SocketAddr::from(([0, 0, 0, 0], 0))
        })
    }

    /// A Unix group's name as useradd takes it (looked up by the service
    /// that uses it, at start).
    pub(crate) fn group_name(&mut self, key: &str, name: &str) {
        let ok = !name.is_empty()
            && name.len() <= 32
            && !name.starts_with('-')
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !ok {
            self.report(
                key,
                format!("{name:?} is not a group name"),
                "use the name of an existing group: 1 to 32 characters from a-z, 0-9, '-', '_' and '.'",
            );
        }
    }

    /// The name of a POSIX queue or semaphore: one leading slash, no other,
    /// at most 255 bytes (the kernel's NAME_MAX).
    pub(crate) fn posix_name(&mut self, key: &str, name: &str, example: &str) {
        let ok = name.len() > 1
            && name.len() <= 255
            && name.starts_with('/')
            && !name[1..].contains('/');
        if !ok {
            self.report(
                key,
                format!("{name:?} is not a POSIX IPC name"),
                format!(
                    "use a name like {example:?}: one leading slash, no other, at most 255 bytes"
                ),
            );
        }
    }
}

/// `impl Word` in one line: `words! { Type, "what", ["word" => value, ...] }`,
/// optionally followed by `hint "..."` and `parse path` (a parser that
/// takes other spellings too).
macro_rules! words {
    ($t:ty, $what:expr, [$($word:expr => $value:expr),+] $(, hint $hint:expr)? $(, parse $parse:path)?) => {
        impl $crate::check::Word for $t {
            const WHAT: &'static str = $what;
            const WORDS: &'static [(&'static str, Self)] = &[$(($word, $value)),+];
            $(const HINT: &'static str = $hint;)?
            $(fn parse(word: &str) -> Option<Self> {
                $parse(word)
            })?
        }
    };
}
pub(crate) use words;

// Level takes "1" and "0", Pull takes "none".
words! { Level, "level", ["high" => Level::High, "low" => Level::Low], parse Level::parse }
words! { Pull, "pull", ["up" => Pull::Up, "down" => Pull::Down, "off" => Pull::Off], parse Pull::parse }
words! { Role, "role", ["admin" => Role::Admin, "user" => Role::User, "guest" => Role::Guest] }
words! { AlertPriority, "priority", ["info" => AlertPriority::Info, "fault" => AlertPriority::Fault, "tamper" => AlertPriority::Tamper, "alarm" => AlertPriority::Alarm] }

//! The alarm's settings and the names of who may do what: values the
//! alarm's rules read, whatever file or message they came from.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ArmedMode;

/// The longest sensor name; the shared table stores names in a fixed field.
pub const MAX_NAME_LEN: usize = 31;

/// Whether `name` is a name Vigil takes for a sensor, a user or a paired
/// client: 1 to [`MAX_NAME_LEN`] of `a-z`, `0-9`, `-` and `_`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
/// The most sensors one table holds.
pub const MAX_SENSORS: usize = 64;
/// The alarm's timing and options.
#[derive(Clone, Debug, PartialEq)]
pub struct AlarmConfig {
    /// Timing of each armed mode.
    pub modes: BTreeMap<ArmedMode, ModeTiming>,
    /// Beep the buzzer when a door or window opens while disarmed.
    pub chime: bool,
    /// Two different sensors of one double-knock group must activate within
    /// this window to trigger.
    pub double_knock_window: Duration,
    /// Whether arming needs a PIN (disarming always does).
    pub require_pin_to_arm: bool,
}

/// EN 50131 grade 2: the longest entry delay.
pub const MAX_ENTRY_DELAY: Duration = Duration::from_secs(45);
/// EN 50131 grade 2: the siren sounds between 2 and 15 minutes.
pub const TRIGGER_TIME_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(120)..=Duration::from_secs(900);
/// The longest exit delay accepted.
pub const MAX_EXIT_DELAY: Duration = Duration::from_secs(300);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModeTiming {
    /// Time to leave after arming.
    pub exit_delay: Duration,
    /// Time to disarm after an entry-delay sensor opens.
    pub entry_delay: Duration,
    /// How long the siren sounds.
    pub trigger_time: Duration,
}

impl ModeTiming {
    /// Defaults in the spirit of Alarmo: time to leave when away, none
    /// when staying in.
    pub fn default_for(mode: ArmedMode) -> ModeTiming {
        let (exit, entry) = match mode {
            ArmedMode::Away | ArmedMode::Vacation | ArmedMode::Custom => (60, 30),
            ArmedMode::Home => (0, 30),
            ArmedMode::Night | ArmedMode::Disarmed => (0, 15),
        };
        ModeTiming {
            exit_delay: Duration::from_secs(exit),
            entry_delay: Duration::from_secs(entry),
            trigger_time: Duration::from_secs(180),
        }
    }
}

/// How a sensor in an armed mode reacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response {
    /// Start the entry delay (doors people come in through).
    EntryDelay,
    /// Trigger at once.
    Instant,
}

/// What a user (and a paired client) may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Status and events only.
    Guest,
    /// Arm, disarm, bypass, panic.
    User,
    /// Everything, including pairing and users.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Guest => "guest",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Admin, Role::User, Role::Guest]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// How urgent an alert is; the alert queue delivers higher first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AlertPriority {
    Info,
    Fault,
    Tamper,
    /// Alarms and duress.
    Alarm,
}

impl AlertPriority {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertPriority::Info => "info",
            AlertPriority::Fault => "fault",
            AlertPriority::Tamper => "tamper",
            AlertPriority::Alarm => "alarm",
        }
    }

    pub fn parse(s: &str) -> Option<AlertPriority> {
        [
            AlertPriority::Info,
            AlertPriority::Fault,
            AlertPriority::Tamper,
            AlertPriority::Alarm,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }
}

//! The configuration: one TOML file (default [`DEFAULT_PATH`]) read by every
//! service, validated once at start (and on SIGHUP) into [`Config`].
//!
//! Owns: the file's shape, its defaults, and its validation. Every
//! validation error names the key (`sensors[2].pin`), what is wrong and the
//! fix, and all problems in the file are reported together so an operator
//! fixes them in one pass. A value out of its range is refused, naming the
//! range, never clamped into it.
//!
//! Must never: do I/O beyond reading the config file ([`Config::load`],
//! [`ConfigSource::load`]); derive serialization on anything but the
//! file's own (private, `Deserialize`-only) types; hold a house of its own:
//! the demo's lives in `vigil-demo`, which writes it to `ROOT/vigil.toml`
//! for `--demo ROOT` to read.
//!
//! Modules:
//! - `file`: the top-level tables and `validate`, which hands each to its
//!   section and gathers the problems;
//! - `check`: the problem collector and the checks sections share (names,
//!   pins, bounded numbers, choices, addresses, POSIX names);
//! - `sections::*`, one per table, each with its file shape, validated type
//!   and check: `runtime` (`[runtime]`, `[gpio]`), `sensors` (with the
//!   cameras' motion sensors), `outputs`, `users`, `cameras`, `recording`,
//!   `hooks`, `alarm`, `grpc`, `alerts`, `events`, `webhook`, `telemetry`, `mqtt`.

#![forbid(unsafe_code)]

mod check;
mod file;
mod limits;
mod sections;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use sections::alerts::AlertsConfig;
pub use sections::cameras::{CameraConfig, CameraEncoder, CameraSource};
pub use sections::events::EventsConfig;
pub use sections::grpc::GrpcConfig;
pub use sections::hooks::{HookConfig, HookTarget};
pub use sections::mqtt::{KeypadConfig, MqttConfig, is_valid_topic};
pub use sections::outputs::{OutputConfig, OutputsConfig};
pub use sections::recording::RecordingConfig;
pub use sections::runtime::{GpioBackendKind, GpioConfig, RuntimeConfig};
pub use sections::sensors::SensorConfig;
pub use sections::telemetry::{LogFormat, TelemetryConfig};
pub use sections::users::UserConfig;
pub use sections::webhook::{WebhookConfig, WebhookFormat};
use vigil_domain::AlarmConfig;

/// Where the services look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/vigil/vigil.toml";
/// The file under a demo root that `--demo ROOT` reads and vigil-demo writes.
pub const DEMO_FILE: &str = "vigil.toml";
/// BCM numbers of the GPIO pins on the Raspberry Pi 40-pin header.
pub const GPIO_PINS: std::ops::RangeInclusive<u8> = 2..=27;

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it came from, for messages ("/etc/vigil/vigil.toml").
    pub source: String,
    pub runtime: RuntimeConfig,
    pub gpio: GpioConfig,
    pub sensors: Vec<SensorConfig>,
    pub outputs: OutputsConfig,
    pub alarm: AlarmConfig,
    pub users: Vec<UserConfig>,
    pub grpc: GrpcConfig,
    pub cameras: Vec<CameraConfig>,
    pub hooks: Vec<HookConfig>,
    pub recording: RecordingConfig,
    pub alerts: AlertsConfig,
    pub events: EventsConfig,
    pub webhook: Option<WebhookConfig>,
    pub telemetry: TelemetryConfig,
    /// The MQTT broker (absent: no MQTT bridge, no Zigbee sensors).
    pub mqtt: Option<MqttConfig>,
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {path}: {source}; create it or pass --config PATH")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `--demo ROOT` without the house vigil-demo writes there.
    #[error(
        "no demo house at {path}: start vigil-demo first (vigil-demo --root ROOT writes it), \
         or pass --config PATH"
    )]
    NoDemo { path: PathBuf },
    /// Not TOML, or a value of the wrong type.
    #[error("{source_name} is not valid: {message}")]
    Syntax {
        source_name: String,
        message: String,
    },
    /// TOML, but not a configuration that can work.
    #[error("{source_name} has {} problem(s):\n{}", .problems.len(), ProblemList(.problems))]
    Invalid {
        source_name: String,
        problems: Vec<Problem>,
    },
}

/// One thing wrong with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The key, as a path: `sensors[2].pin`.
    pub key: String,
    /// What is wrong.
    pub problem: String,
    /// What to do about it.
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}; fix: {}", self.key, self.problem, self.fix)
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl Config {
    /// Reads and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Validates TOML text; `source_name` names it in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Config, ConfigError> {
        let raw: file::ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            source_name: source_name.to_owned(),
            message: e.to_string(),
        })?;
        file::validate(raw, source_name)
    }

    /// The sensor named `name`, with its slot index in the table.
    pub fn sensor(&self, name: &str) -> Option<(usize, &SensorConfig)> {
        self.sensors
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    /// Sensors by pin, for backends that get edges per pin.
    pub fn sensors_by_pin(&self) -> BTreeMap<u8, usize> {
        self.sensors
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_gpio())
            .map(|(i, s)| (s.pin, i))
            .collect()
    }
}

/// Where a service gets its configuration: a file, or the demo's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// The house vigil-demo wrote to `ROOT/`[`DEMO_FILE`] (the root given).
    Demo(PathBuf),
}

impl ConfigSource {
    /// `--demo ROOT` wins over `--config PATH`, which defaults to [`DEFAULT_PATH`].
    pub fn from_flags(config: Option<PathBuf>, demo: Option<PathBuf>) -> ConfigSource {
        match (demo, config) {
            (Some(root), _) => ConfigSource::Demo(root),
            (None, Some(path)) => ConfigSource::File(path),
            (None, None) => ConfigSource::File(PathBuf::from(DEFAULT_PATH)),
        }
    }

    /// The file this source reads.
    pub fn path(&self) -> PathBuf {
        match self {
            ConfigSource::File(path) => path.clone(),
            ConfigSource::Demo(root) => root.join(DEMO_FILE),
        }
    }

    /// Reads and validates the file; for a demo root without its house,
    /// an error that says to start vigil-demo.
    pub fn load(&self) -> Result<Config, ConfigError> {
        let path = self.path();
        match Config::load(&path) {
            Err(ConfigError::Read { source, .. })
                if matches!(self, ConfigSource::Demo(_))
                    && source.kind() == std::io::ErrorKind::NotFound =>
            {
                Err(ConfigError::NoDemo { path })
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests;

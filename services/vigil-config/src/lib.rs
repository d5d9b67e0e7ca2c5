//! The configuration: one TOML file (default [`DEFAULT_PATH`]) read by every
//! service, validated once at start (and on SIGHUP) into [`Config`].
//!
//! Every validation error names the key (`sensors[2].pin`), what is wrong and
//! the fix, and all problems in the file are reported together so an operator
//! fixes them in one pass.

mod file;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vigil_domain::{
    AlarmConfig, AlertPriority, ArmedMode, Level, MAX_ENTRY_DELAY, MAX_EXIT_DELAY, MAX_NAME_LEN,
    MAX_SENSORS, ModeTiming, Pull, Response, Role, SensorKind, TRIGGER_TIME_RANGE,
};

/// Where the services look when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/vigil/vigil.toml";
/// BCM numbers of the GPIO pins on the Raspberry Pi 40-pin header.
pub const GPIO_PINS: std::ops::RangeInclusive<u8> = 2..=27;

/// The validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Where it came from, for messages ("/etc/vigil/vigil.toml", "built-in demo").
    pub source: String,
    pub runtime: RuntimeConfig,
    pub gpio: GpioConfig,
    pub sensors: Vec<SensorConfig>,
    pub outputs: OutputsConfig,
    pub users: Vec<UserConfig>,
    pub cameras: Vec<CameraConfig>,
    pub recording: RecordingConfig,
    pub hooks: Vec<HookConfig>,
    pub alarm: AlarmConfig,
    pub grpc: GrpcConfig,
    pub alerts: AlertsConfig,
    pub events: EventsConfig,
    pub webhook: Option<WebhookConfig>,
    pub telemetry: TelemetryConfig,
}

/// The alert path: the POSIX queue from the hub to alertd, and alertd's
/// handling.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertsConfig {
    /// The queue's name (one global namespace: make it unique per install).
    pub queue: String,
    /// Messages the queue holds (needs fs.mqueue.msg_max at least this).
    pub depth: i64,
    /// The largest alert, in bytes (needs fs.mqueue.msgsize_max).
    pub msg_size: i64,
    /// The same source (kind and sensor) is not repeated within this, but
    /// alarm-priority alerts always are.
    pub cooldown: Duration,
    /// How long a hook may take to take one alert before it is restarted.
    pub hook_timeout: Duration,
}

/// The event log's durability and retention (`[events]`).
#[derive(Clone, Debug, PartialEq)]
pub struct EventsConfig {
    /// The longest an ordinary event waits to be synced (alarm-class events
    /// are synced before they are acknowledged): what a power cut can lose.
    pub sync_window: Duration,
    /// Whole segments sealed longer ago go (`None`: kept by age).
    pub max_age: Option<Duration>,
    /// The oldest segments go while the log is larger (`None`: no budget).
    /// Never a segment that reportd has not indexed.
    pub max_bytes: Option<u64>,
}

/// Where alertd posts alerts over HTTP.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    pub format: WebhookFormat,
    pub min_priority: AlertPriority,
    pub timeout: Duration,
    /// A file holding a secret: the body's HMAC-SHA256 goes in
    /// `X-Vigil-Signature`.
    pub secret_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The alert as a JSON object.
    Json,
    /// ntfy's format: the message as the body, title, priority and tags as
    /// headers.
    Ntfy,
}

/// The gRPC API.
#[derive(Clone, Debug, PartialEq)]
pub struct GrpcConfig {
    pub listen: std::net::SocketAddr,
    /// Extra names and addresses for the hub's certificate (besides
    /// `vigil-hub`, `localhost` and the loopback addresses).
    pub hostnames: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeConfig {
    /// Sockets, the control FIFO and the hub's rendezvous live here (`/run/vigil`).
    pub runtime_dir: PathBuf,
    /// Durable state: the event log, the database, clips (`/var/lib/vigil`).
    pub state_dir: PathBuf,
}

impl RuntimeConfig {
    /// The hub's well-known rendezvous socket.
    pub fn hub_socket(&self) -> PathBuf {
        self.runtime_dir.join("hub.sock")
    }

    /// The simulated GPIO backend's control socket.
    pub fn sim_gpio_socket(&self) -> PathBuf {
        self.runtime_dir.join("sim-gpio.sock")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpioBackendKind {
    /// The Raspberry Pi's GPIO through rppal (`/dev/gpiomem`).
    Rppal,
    /// A simulated board driven through a control socket.
    Simulated,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GpioConfig {
    pub backend: GpioBackendKind,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SensorConfig {
    pub name: String,
    pub kind: SensorKind,
    /// BCM pin number.
    pub pin: u8,
    pub pull: Pull,
    /// The level that means "active" (door open, motion, loop open).
    pub active_level: Level,
    /// A new level must hold this long before it counts.
    pub debounce: Duration,
    /// Modes in which the sensor is armed; 24-hour zones ignore this.
    pub modes: BTreeSet<ArmedMode>,
    /// A sensor with no edge for this long is reported as a fault.
    pub supervision: Option<Duration>,
    /// What it does when it activates in an armed mode.
    pub response: Response,
    /// Open at arming time: armed once it closes (instead of refusing).
    pub arm_after_close: bool,
    /// Open at arming time: bypassed until disarm (instead of refusing).
    pub auto_bypass: bool,
    /// Double-knock group: triggers only with a second sensor of the group.
    pub double_knock: Option<String>,
    /// A fault (silence, unavailability) triggers when armed.
    pub trigger_on_fault: bool,
    /// Not a GPIO input: motion seen on this camera's video (the hub
    /// writes the slot; sensord leaves it alone). Such sensors come after
    /// every GPIO sensor, so GPIO slots keep their numbers.
    pub camera: Option<String>,
}

/// A GPIO output (relay or transistor).
#[derive(Clone, Debug, PartialEq)]
pub struct OutputConfig {
    pub pin: u8,
    pub active_level: Level,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputsConfig {
    pub siren: Option<OutputConfig>,
    pub buzzer: Option<OutputConfig>,
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

#[derive(Clone, Debug, PartialEq)]
pub enum CameraSource {
    /// videotestsrc: for tests and the demo.
    Test,
    /// libcamerasrc: the Pi camera.
    Libcamera,
    /// v4l2src on a device node (USB webcams).
    V4l2 { device: PathBuf },
}

/// Which H.264 encoder camd uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraEncoder {
    /// The board's hardware encoder (v4l2h264enc) when GStreamer has it,
    /// else x264.
    Auto,
    /// x264enc, tuned for low latency (software).
    X264,
    /// v4l2h264enc (the Raspberry Pi's hardware encoder).
    V4l2,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CameraConfig {
    pub name: String,
    pub source: CameraSource,
    pub width: u32,
    pub height: u32,
    pub framerate: u32,
    pub encoder: CameraEncoder,
    pub bitrate_kbps: u32,
    /// Seconds between key frames (the ring and clips start at one).
    pub keyframe_secs: u32,
    /// The hub's camera port, as camd dials it (`hub.lan:7445`), or
    /// `discover`: wait for the hub's UDP beacon.
    pub hub: String,
    /// Where camd listens for the beacon with `hub = "discover"`.
    pub discovery_port: u16,
    /// The camera's key, shared with the hub (read at run time).
    pub key_file: Option<PathBuf>,
    /// The key inline (tests and the demo only).
    pub key: Option<String>,
    /// Motion detection on the video: adds a motion sensor
    /// `<camera>-motion` to the sensor table.
    pub motion: bool,
    /// How much of the picture must change between key frames, percent.
    pub motion_percent: u32,
}

impl CameraConfig {
    /// A videotestsrc camera encoded with x264, one key frame a second, no
    /// hub, no key: for benchmarks and tests of the pipeline alone.
    pub fn test_pattern(
        name: &str,
        width: u32,
        height: u32,
        framerate: u32,
        bitrate_kbps: u32,
    ) -> CameraConfig {
        CameraConfig {
            name: name.to_owned(),
            source: CameraSource::Test,
            width,
            height,
            framerate,
            encoder: CameraEncoder::X264,
            bitrate_kbps,
            keyframe_secs: 1,
            hub: String::new(),
            discovery_port: 7446,
            key_file: None,
            key: None,
            motion: false,
            motion_percent: 2,
        }
    }
}

/// The hub's camera server and recorder (`[recording]`).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingConfig {
    /// Where cameras connect (TCP) and send heartbeats (UDP, same port).
    pub listen: std::net::SocketAddr,
    /// Seconds of video kept per camera in memory (at most 60).
    pub ring: Duration,
    /// Of those, how much goes into a clip before the trigger.
    pub pre_roll: Duration,
    /// How long a clip goes on after the trigger.
    pub post_capture: Duration,
    /// No frame and no heartbeat for this long: the camera is offline.
    pub offline_after: Duration,
    /// Clips older than this are removed (`None`: kept).
    pub max_age: Option<Duration>,
    /// The oldest clips go while the disk has less free than this.
    pub min_free_bytes: u64,
    /// How many clips may be written at once (a named semaphore).
    pub slots: u32,
    /// The named POSIX semaphore that counts recording slots.
    pub semaphore: String,
    /// Where the discovery beacon goes (`None`: no beacon).
    pub beacon: Option<std::net::SocketAddr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct HookConfig {
    pub name: String,
    pub command: PathBuf,
    pub args: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for journald scrapers and tests.
    Json,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint (`http://collector:4317`); traces are exported only when set.
    pub otlp_endpoint: Option<String>,
    pub log_format: LogFormat,
    /// `tracing` filter directives (`info`, `vigil_hub=debug`).
    pub log_filter: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp_endpoint: None,
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
        }
    }
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

    /// The built-in configuration of the demo: a simulated house with a door
    /// on every side, a window, motion, and one of each 24-hour zone, a siren
    /// and a buzzer, and a test-pattern camera. `runtime_root` holds the
    /// runtime and state directories.
    pub fn demo(runtime_root: &Path) -> Config {
        let text = format!(
            "{DEMO_TOML}\n[runtime]\nruntime_dir = {:?}\nstate_dir = {:?}\n",
            runtime_root.join("run").display().to_string(),
            runtime_root.join("state").display().to_string(),
        );
        match Config::parse(&text, "built-in demo config") {
            Ok(config) => config,
            // The demo text is a constant checked by a unit test.
            Err(e) => unreachable!("the built-in demo config is invalid: {e}"),
        }
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
            .map(|(i, s)| (s.pin, i))
            .collect()
    }
}

/// The demo house; see [`Config::demo`].
pub const DEMO_TOML: &str = r#"
[gpio]
backend = "simulated"

[[sensors]]
name = "front-door"
kind = "door"
pin = 17

[[sensors]]
name = "back-door"
kind = "door"
pin = 27

[[sensors]]
name = "living-room-window"
kind = "window"
pin = 22

[[sensors]]
name = "hallway-motion"
kind = "motion"
pin = 5
pull = "down"
active = "high"
debounce_ms = 10

[[sensors]]
name = "siren-box-tamper"
kind = "tamper"
pin = 6

[[sensors]]
name = "panic-button"
kind = "panic"
pin = 13

[[sensors]]
name = "kitchen-smoke"
kind = "smoke"
pin = 19

[[sensors]]
name = "basement-water"
kind = "water"
pin = 26

[outputs]
siren = { pin = 23 }
buzzer = { pin = 24 }

[[cameras]]
name = "porch"
source = "test"
width = 640
height = 360
framerate = 15
bitrate_kbps = 800
hub = "127.0.0.1:7445"
# The demo's camera key. Never use it for real: give key_file instead.
key = "demo-camera-key"

[recording]
listen = "127.0.0.1:7445"
beacon = "off"                 # the demo camera is local: no beacon on the LAN
ring_secs = 20
pre_roll_secs = 5
post_capture_secs = 10

# The demo's PIN is 1234 (duress 9999). Never use these hashes for real.
[[users]]
name = "demo"
role = "admin"
pin_hash = "$argon2id$v=19$m=19456,t=2,p=1$oxxOE2wNjH6I6D1ZNVozYg$yGc3dT8qxoLmCEcHnyShfeCoSIqmin2bqt45qoAVi+c"
duress_pin_hash = "$argon2id$v=19$m=19456,t=2,p=1$sCcCrhao0tKWJxf2S6KSeA$St0o107gtIJlSmzIO1xnFVO1x2QCUuOjaeCaw7dupk0"

[alarm.modes.away]
exit_delay_secs = 10
entry_delay_secs = 10
trigger_secs = 120

[alarm.modes.home]
exit_delay_secs = 0
entry_delay_secs = 10
trigger_secs = 120

[grpc]
listen = "127.0.0.1:7443"

# Eight messages fit the kernel's default fs.mqueue.msg_max, so the demo
# also runs unprivileged.
[alerts]
queue = "/vigil-demo-alerts"
depth = 8

# A hook that writes each alert it reads on its stdin to its stderr, which
# alertd logs.
[[hooks]]
name = "print"
command = "/bin/sh"
args = ["-c", "while read -r alert; do echo \"$alert\" >&2; done"]
"#;

/// Where a service gets its configuration: a file, or the built-in demo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigSource {
    File(PathBuf),
    /// [`Config::demo`] rooted at this directory.
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

    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::File(path) => Config::load(path),
            ConfigSource::Demo(root) => Ok(Config::demo(root)),
        }
    }
}

#[cfg(test)]
mod tests;

//! The TOML file's shape (serde types, all fields optional so that a missing
//! one is reported by key, not by serde) and its conversion into [`Config`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    AlarmConfig, AlertPriority, AlertsConfig, CameraConfig, CameraEncoder, CameraSource, Config,
    ConfigError, EventsConfig, GPIO_PINS, GpioBackendKind, GpioConfig, GrpcConfig, HookConfig,
    LogFormat, MAX_ENTRY_DELAY, MAX_EXIT_DELAY, MAX_NAME_LEN, MAX_SENSORS, ModeTiming,
    OutputConfig, OutputsConfig, Problem, RecordingConfig, Response, Role, RuntimeConfig,
    SensorConfig, TRIGGER_TIME_RANGE, TelemetryConfig, UserConfig, WebhookConfig, WebhookFormat,
};
use vigil_domain::{ArmedMode, Level, Pull, SensorKind};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    runtime: Option<RuntimeFile>,
    gpio: Option<GpioFile>,
    #[serde(default)]
    sensors: Vec<SensorFile>,
    outputs: Option<OutputsFile>,
    #[serde(default)]
    users: Vec<UserFile>,
    #[serde(default)]
    cameras: Vec<CameraFile>,
    #[serde(default)]
    hooks: Vec<HookFile>,
    alarm: Option<AlarmFile>,
    grpc: Option<GrpcFile>,
    alerts: Option<AlertsFile>,
    events: Option<EventsFile>,
    recording: Option<RecordingFile>,
    webhook: Option<WebhookFile>,
    telemetry: Option<TelemetryFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlarmFile {
    chime: Option<bool>,
    double_knock_secs: Option<u64>,
    require_pin_to_arm: Option<bool>,
    #[serde(default)]
    modes: BTreeMap<String, ModeFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModeFile {
    exit_delay_secs: Option<u64>,
    entry_delay_secs: Option<u64>,
    trigger_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsFile {
    queue: Option<String>,
    depth: Option<i64>,
    msg_size: Option<i64>,
    cooldown_secs: Option<u64>,
    hook_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsFile {
    sync_window_ms: Option<u64>,
    max_age_days: Option<u64>,
    max_megabytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookFile {
    url: Option<String>,
    format: Option<String>,
    min_priority: Option<String>,
    timeout_secs: Option<u64>,
    secret_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrpcFile {
    listen: Option<String>,
    #[serde(default)]
    hostnames: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuntimeFile {
    runtime_dir: Option<PathBuf>,
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GpioFile {
    backend: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SensorFile {
    name: Option<String>,
    kind: Option<String>,
    pin: Option<i64>,
    pull: Option<String>,
    active: Option<String>,
    debounce_ms: Option<u64>,
    modes: Option<Vec<String>>,
    supervision_secs: Option<u64>,
    response: Option<String>,
    arm_after_close: Option<bool>,
    auto_bypass: Option<bool>,
    double_knock: Option<String>,
    trigger_on_fault: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputsFile {
    siren: Option<OutputFile>,
    buzzer: Option<OutputFile>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputFile {
    pin: Option<i64>,
    active: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    name: Option<String>,
    role: Option<String>,
    pin_hash: Option<String>,
    pin_hash_file: Option<PathBuf>,
    duress_pin_hash: Option<String>,
    duress_pin_hash_file: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraFile {
    name: Option<String>,
    source: Option<String>,
    device: Option<PathBuf>,
    width: Option<u32>,
    height: Option<u32>,
    framerate: Option<u32>,
    encoder: Option<String>,
    bitrate_kbps: Option<u32>,
    keyframe_secs: Option<u32>,
    hub: Option<String>,
    discovery_port: Option<u16>,
    key_file: Option<PathBuf>,
    key: Option<String>,
    motion: Option<bool>,
    motion_percent: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordingFile {
    listen: Option<String>,
    ring_secs: Option<u64>,
    pre_roll_secs: Option<u64>,
    post_capture_secs: Option<u64>,
    offline_after_secs: Option<u64>,
    max_age_days: Option<u64>,
    min_free_megabytes: Option<u64>,
    slots: Option<u32>,
    semaphore: Option<String>,
    beacon: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HookFile {
    name: Option<String>,
    command: Option<PathBuf>,
    #[serde(default)]
    args: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TelemetryFile {
    otlp_endpoint: Option<String>,
    log_format: Option<String>,
    log_filter: Option<String>,
}

/// Collects every problem in the file before giving up.
struct Checker {
    problems: Vec<Problem>,
    /// Pins in use, with the key that took each, for duplicate messages.
    pins: BTreeMap<u8, String>,
}

impl Checker {
    fn report(
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

    fn required<T>(&mut self, key: &str, value: Option<T>, fix: &str) -> Option<T> {
        if value.is_none() {
            self.report(key, "missing", fix);
        }
        value
    }

    fn name(&mut self, key: &str, name: Option<String>, what: &str) -> Option<String> {
        let name = self.required(key, name, &format!("give the {what} a `name`"))?;
        let valid_chars = name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !valid_chars {
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
    fn pin(&mut self, key: &str, pin: Option<i64>, owner: &str) -> Option<u8> {
        let pin = self.required(key, pin, "set `pin` to the BCM number of the GPIO pin")?;
        let pin = match u8::try_from(pin) {
            Ok(p) if GPIO_PINS.contains(&p) => p,
            _ => {
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
            }
        };
        if let Some(first) = self.pins.get(&pin) {
            let problem = format!("GPIO {pin} is already used by {first}");
            self.report(key, problem, "give every sensor and output its own pin");
        } else {
            self.pins.insert(pin, format!("{key} ({owner})"));
        }
        Some(pin)
    }

    fn level(&mut self, key: &str, level: Option<String>, default: Level) -> Level {
        match level {
            None => default,
            Some(s) => Level::parse(&s).unwrap_or_else(|| {
                self.report(
                    key,
                    format!("unknown level {s:?}"),
                    "use \"high\" or \"low\"",
                );
                default
            }),
        }
    }

    fn sensor(
        &mut self,
        i: usize,
        s: SensorFile,
        names: &mut BTreeSet<String>,
    ) -> Option<SensorConfig> {
        let at = |field: &str| format!("sensors[{i}].{field}");
        let name = self.name(&at("name"), s.name, "sensor");
        if let Some(n) = &name
            && !names.insert(n.clone())
        {
            self.report(
                at("name"),
                format!("a second sensor is named {n:?}"),
                "give every sensor its own name",
            );
        }
        let kind_fix = format!(
            "use one of {}",
            SensorKind::ALL.map(SensorKind::as_str).join(", ")
        );
        let kind = self
            .required(&at("kind"), s.kind, &format!("set `kind`: {kind_fix}"))
            .and_then(|k| {
                let parsed = SensorKind::parse(&k);
                if parsed.is_none() {
                    self.report(at("kind"), format!("unknown sensor kind {k:?}"), &kind_fix);
                }
                parsed
            });
        let pin = self.pin(&at("pin"), s.pin, name.as_deref().unwrap_or("unnamed"));
        let pull = match s.pull.as_deref() {
            None => Pull::Up,
            Some(p) => Pull::parse(p).unwrap_or_else(|| {
                self.report(
                    at("pull"),
                    format!("unknown pull {p:?}"),
                    "use \"up\", \"down\" or \"off\"",
                );
                Pull::Up
            }),
        };
        // A reed switch to ground with a pull-up reads high when it opens.
        let active_level = self.level(&at("active"), s.active, Level::High);
        let debounce = Duration::from_millis(s.debounce_ms.unwrap_or(50));
        if debounce > Duration::from_secs(5) {
            self.report(
                at("debounce_ms"),
                format!("{} ms would hide real openings", debounce.as_millis()),
                "use at most 5000 ms (50 suits reed switches, 10 PIR outputs)",
            );
        }
        let modes = match (kind, s.modes) {
            (Some(k), Some(_)) if k.is_24_hour() => {
                self.report(
                    at("modes"),
                    format!("a {k} sensor is a 24-hour zone and triggers in every mode"),
                    "remove `modes` from this sensor",
                );
                BTreeSet::new()
            }
            (_, Some(list)) => list
                .iter()
                .filter_map(|m| match ArmedMode::parse(m) {
                    Some(ArmedMode::Disarmed) | None => {
                        self.report(
                            at("modes"),
                            format!("{m:?} is not an armed mode"),
                            "list some of \"home\", \"away\", \"night\", \"vacation\", \"custom\"",
                        );
                        None
                    }
                    Some(mode) => Some(mode),
                })
                .collect(),
            // People move about at home and at night; motion arms when away.
            (Some(SensorKind::Motion), None) => [ArmedMode::Away, ArmedMode::Vacation].into(),
            (Some(k), None) if k.is_24_hour() => BTreeSet::new(),
            (_, None) => ArmedMode::ARMED.into(),
        };
        let supervision = s.supervision_secs.map(Duration::from_secs);
        if supervision.is_some_and(|d| d < Duration::from_secs(60)) {
            self.report(
                at("supervision_secs"),
                "a supervision window under 60 s would fault a quiet sensor",
                "use at least 60 (86400 suits a motion sensor in a used room)",
            );
        }
        let response = match s.response.as_deref() {
            None => match kind {
                // People come in through doors; anything else is instant.
                Some(SensorKind::Door) => Response::EntryDelay,
                _ => Response::Instant,
            },
            Some("entry") => Response::EntryDelay,
            Some("instant") => Response::Instant,
            Some(other) => {
                self.report(
                    at("response"),
                    format!("unknown response {other:?}"),
                    "use \"entry\" (start the entry delay) or \"instant\"",
                );
                Response::Instant
            }
        };
        Some(SensorConfig {
            name: name?,
            kind: kind?,
            pin: pin?,
            pull,
            active_level,
            debounce,
            modes,
            supervision,
            response,
            arm_after_close: s.arm_after_close.unwrap_or(false),
            auto_bypass: s.auto_bypass.unwrap_or(false),
            double_knock: s.double_knock,
            trigger_on_fault: s.trigger_on_fault.unwrap_or(false),
            camera: None,
        })
    }

    fn alarm(&mut self, a: AlarmFile) -> AlarmConfig {
        let mut modes: BTreeMap<ArmedMode, ModeTiming> = ArmedMode::ARMED
            .into_iter()
            .map(|m| (m, ModeTiming::default_for(m)))
            .collect();
        for (name, m) in a.modes {
            let at = |field: &str| format!("alarm.modes.{name}.{field}");
            let Some(mode) = ArmedMode::parse(&name).filter(|m| *m != ArmedMode::Disarmed) else {
                self.report(
                    format!("alarm.modes.{name}"),
                    format!("{name:?} is not an armed mode"),
                    "use home, away, night, vacation or custom",
                );
                continue;
            };
            let timing = modes.entry(mode).or_insert(ModeTiming::default_for(mode));
            if let Some(s) = m.exit_delay_secs {
                timing.exit_delay = Duration::from_secs(s);
            }
            if let Some(s) = m.entry_delay_secs {
                timing.entry_delay = Duration::from_secs(s);
            }
            if let Some(s) = m.trigger_secs {
                timing.trigger_time = Duration::from_secs(s);
            }
            let timing = *timing;
            if timing.entry_delay > MAX_ENTRY_DELAY {
                self.report(
                    at("entry_delay_secs"),
                    format!(
                        "{} s is longer than EN 50131 grade 2 allows",
                        timing.entry_delay.as_secs()
                    ),
                    "use at most 45",
                );
            }
            if timing.exit_delay > MAX_EXIT_DELAY {
                self.report(
                    at("exit_delay_secs"),
                    format!(
                        "{} s is an unusually long exit delay",
                        timing.exit_delay.as_secs()
                    ),
                    "use at most 300",
                );
            }
            if !TRIGGER_TIME_RANGE.contains(&timing.trigger_time) {
                self.report(
                    at("trigger_secs"),
                    format!(
                        "a siren of {} s is outside EN 50131 grade 2's 2 to 15 minutes",
                        timing.trigger_time.as_secs()
                    ),
                    "use 120 to 900",
                );
            }
        }
        AlarmConfig {
            modes,
            chime: a.chime.unwrap_or(true),
            double_knock_window: Duration::from_secs(a.double_knock_secs.unwrap_or(30)),
            require_pin_to_arm: a.require_pin_to_arm.unwrap_or(false),
        }
    }

    fn output(&mut self, key: &str, o: Option<OutputFile>) -> Option<OutputConfig> {
        let o = o?;
        let pin = self.pin(&format!("{key}.pin"), o.pin, key);
        let active_level = self.level(&format!("{key}.active"), o.active, Level::High);
        Some(OutputConfig {
            pin: pin?,
            active_level,
        })
    }

    fn user(&mut self, i: usize, u: UserFile) -> Option<UserConfig> {
        let at = |field: &str| format!("users[{i}].{field}");
        let name = self.name(&at("name"), u.name, "user");
        let role = match u.role.as_deref() {
            None | Some("user") => Role::User,
            Some("admin") => Role::Admin,
            Some("guest") => Role::Guest,
            Some(other) => {
                self.report(
                    at("role"),
                    format!("unknown role {other:?}"),
                    "use \"admin\", \"user\" or \"guest\"",
                );
                Role::User
            }
        };
        if u.pin_hash.is_none() && u.pin_hash_file.is_none() {
            self.report(
                at("pin_hash_file"),
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

    fn camera(&mut self, i: usize, cam: CameraFile) -> Option<CameraConfig> {
        let at = |field: &str| format!("cameras[{i}].{field}");
        let name = self.name(&at("name"), cam.name, "camera");
        let source = match cam.source.as_deref() {
            None | Some("libcamera") => Some(CameraSource::Libcamera),
            Some("test") => Some(CameraSource::Test),
            Some("v4l2") => Some(CameraSource::V4l2 {
                device: cam.device.unwrap_or_else(|| PathBuf::from("/dev/video0")),
            }),
            Some(other) => {
                self.report(
                    at("source"),
                    format!("unknown camera source {other:?}"),
                    "use \"libcamera\", \"v4l2\" or \"test\"",
                );
                None
            }
        };
        let encoder = match cam.encoder.as_deref() {
            None | Some("auto") => CameraEncoder::Auto,
            Some("x264") => CameraEncoder::X264,
            Some("v4l2") => CameraEncoder::V4l2,
            Some(other) => {
                self.report(
                    at("encoder"),
                    format!("unknown encoder {other:?}"),
                    "use \"auto\", \"x264\" or \"v4l2\"",
                );
                CameraEncoder::Auto
            }
        };
        let (width, height) = (cam.width.unwrap_or(1280), cam.height.unwrap_or(720));
        if !(16..=3840).contains(&width) || !(16..=2160).contains(&height) || width % 2 == 1 {
            self.report(
                at("width"),
                format!("{width}x{height} is not a camera resolution Vigil records"),
                "use an even width of 16 to 3840 and a height of 16 to 2160",
            );
        }
        let framerate = cam.framerate.unwrap_or(15);
        if !(1..=60).contains(&framerate) {
            self.report(at("framerate"), format!("{framerate} fps"), "use 1 to 60");
        }
        if cam.key.is_some() && cam.key_file.is_some() {
            self.report(
                at("key"),
                "both key and key_file are set".to_owned(),
                "keep key_file (key is for tests and the demo)",
            );
        }
        Some(CameraConfig {
            name: name?,
            source: source?,
            width,
            height,
            framerate: framerate.clamp(1, 60),
            encoder,
            bitrate_kbps: cam.bitrate_kbps.unwrap_or(2000).clamp(100, 50_000),
            keyframe_secs: cam.keyframe_secs.unwrap_or(1).clamp(1, 10),
            hub: cam.hub.unwrap_or_else(|| "127.0.0.1:7445".to_owned()),
            discovery_port: cam.discovery_port.unwrap_or(7446),
            key_file: cam.key_file,
            key: cam.key,
            motion: cam.motion.unwrap_or(false),
            motion_percent: cam.motion_percent.unwrap_or(2).clamp(1, 100),
        })
    }

    fn hook(&mut self, i: usize, h: HookFile) -> Option<HookConfig> {
        let at = |field: &str| format!("hooks[{i}].{field}");
        let name = self.name(&at("name"), h.name, "hook");
        let command = self.required(
            &at("command"),
            h.command,
            "set `command` to the program that reads alerts on its stdin",
        );
        Some(HookConfig {
            name: name?,
            command: command?,
            args: h.args,
        })
    }
}

pub(super) fn validate(raw: ConfigFile, source_name: &str) -> Result<Config, ConfigError> {
    let mut c = Checker {
        problems: Vec::new(),
        pins: BTreeMap::new(),
    };

    let runtime_file = raw.runtime.unwrap_or_default();
    let runtime = RuntimeConfig {
        runtime_dir: runtime_file
            .runtime_dir
            .unwrap_or_else(|| PathBuf::from("/run/vigil")),
        state_dir: runtime_file
            .state_dir
            .unwrap_or_else(|| PathBuf::from("/var/lib/vigil")),
    };
    for (key, dir) in [
        ("runtime.runtime_dir", &runtime.runtime_dir),
        ("runtime.state_dir", &runtime.state_dir),
    ] {
        if !dir.is_absolute() {
            c.report(
                key,
                format!("{} is a relative path", dir.display()),
                "use an absolute path",
            );
        }
    }

    let backend = match raw.gpio.unwrap_or_default().backend.as_deref() {
        None | Some("rppal") => GpioBackendKind::Rppal,
        Some("simulated") => GpioBackendKind::Simulated,
        Some(other) => {
            c.report(
                "gpio.backend",
                format!("unknown backend {other:?}"),
                "use \"rppal\" on a Raspberry Pi or \"simulated\" elsewhere",
            );
            GpioBackendKind::Simulated
        }
    };

    if raw.sensors.len() > MAX_SENSORS {
        c.report(
            "sensors",
            format!("{} sensors configured", raw.sensors.len()),
            format!("configure at most {MAX_SENSORS}"),
        );
    }
    let mut names = BTreeSet::new();
    let sensors: Vec<SensorConfig> = raw
        .sensors
        .into_iter()
        .enumerate()
        .filter_map(|(i, s)| c.sensor(i, s, &mut names))
        .collect();

    let outputs_file = raw.outputs.unwrap_or_default();
    let outputs = OutputsConfig {
        siren: c.output("outputs.siren", outputs_file.siren),
        buzzer: c.output("outputs.buzzer", outputs_file.buzzer),
    };
    let users = (raw.users.into_iter().enumerate())
        .filter_map(|(i, u)| c.user(i, u))
        .collect();
    let cameras: Vec<CameraConfig> = (raw.cameras.into_iter().enumerate())
        .filter_map(|(i, cam)| c.camera(i, cam))
        .collect();
    // Motion on video: one motion sensor per camera that asks, after the
    // GPIO sensors (their slots keep their numbers).
    let mut sensors = sensors;
    for (i, cam) in cameras.iter().enumerate().filter(|(_, c)| c.motion) {
        let name = format!("{}-motion", cam.name);
        if !names.insert(name.clone()) || name.len() > MAX_NAME_LEN {
            c.report(
                format!("cameras[{i}].motion"),
                format!("the motion sensor's name {name:?} is taken or too long"),
                "rename the sensor or the camera (camera names are at most 24 characters here)",
            );
            continue;
        }
        sensors.push(SensorConfig {
            name,
            kind: SensorKind::Motion,
            pin: 0,
            pull: Pull::Off,
            active_level: Level::High,
            debounce: Duration::ZERO,
            modes: [ArmedMode::Away, ArmedMode::Vacation].into_iter().collect(),
            supervision: None,
            response: Response::Instant,
            arm_after_close: false,
            auto_bypass: false,
            double_knock: None,
            trigger_on_fault: false,
            camera: Some(cam.name.clone()),
        });
    }
    if sensors.len() > MAX_SENSORS {
        c.report(
            "cameras",
            format!("{} sensors with the cameras' motion sensors", sensors.len()),
            format!("keep wired sensors plus cameras with motion = true at most {MAX_SENSORS}"),
        );
    }
    let hooks = (raw.hooks.into_iter().enumerate())
        .filter_map(|(i, h)| c.hook(i, h))
        .collect();

    let alarm = c.alarm(raw.alarm.unwrap_or_default());
    let grpc_file = raw.grpc.unwrap_or_default();
    let listen = grpc_file.listen.as_deref().unwrap_or("[::]:7443");
    let grpc = GrpcConfig {
        listen: listen.parse().unwrap_or_else(|_| {
            c.report(
                "grpc.listen",
                format!("{listen:?} is not an address and port"),
                "use a form like \"[::]:7443\" or \"192.168.1.10:7443\"",
            );
            std::net::SocketAddr::from(([0, 0, 0, 0], 7443))
        }),
        hostnames: grpc_file.hostnames,
    };

    let a = raw.alerts.unwrap_or_default();
    let queue = a.queue.unwrap_or_else(|| "/vigil-alerts".to_owned());
    let queue_ok = queue.len() > 1
        && queue.len() <= 255
        && queue.starts_with('/')
        && !queue[1..].contains('/');
    if !queue_ok {
        c.report(
            "alerts.queue",
            format!("{queue:?} is not a POSIX queue name"),
            "use a name like \"/vigil-alerts\": one leading slash, no other",
        );
    }
    let alerts = AlertsConfig {
        queue,
        depth: a.depth.unwrap_or(256).clamp(1, 65_536),
        msg_size: a.msg_size.unwrap_or(8192).clamp(256, 1 << 20),
        cooldown: Duration::from_secs(a.cooldown_secs.unwrap_or(60)),
        hook_timeout: Duration::from_millis(a.hook_timeout_ms.unwrap_or(5000)),
    };
    let r = raw.recording.unwrap_or_default();
    let listen = r.listen.unwrap_or_else(|| "[::]:7445".to_owned());
    let recording_listen = listen.parse().unwrap_or_else(|_| {
        c.report(
            "recording.listen",
            format!("{listen:?} is not an address and port"),
            "use a form like \"[::]:7445\"",
        );
        std::net::SocketAddr::from(([0, 0, 0, 0], 7445))
    });
    let ring = r.ring_secs.unwrap_or(30);
    let pre_roll = r.pre_roll_secs.unwrap_or(10);
    if ring > 60 || ring == 0 || pre_roll > ring {
        c.report(
            "recording.ring_secs",
            format!("ring_secs {ring} with pre_roll_secs {pre_roll}"),
            "keep 1 <= pre_roll_secs <= ring_secs <= 60",
        );
    }
    let semaphore = r.semaphore.unwrap_or_else(|| "/vigil-recording".to_owned());
    let recording = RecordingConfig {
        listen: recording_listen,
        ring: Duration::from_secs(ring.clamp(1, 60)),
        pre_roll: Duration::from_secs(pre_roll.min(ring.clamp(1, 60))),
        post_capture: Duration::from_secs(r.post_capture_secs.unwrap_or(20).clamp(1, 600)),
        offline_after: Duration::from_secs(r.offline_after_secs.unwrap_or(10).clamp(1, 600)),
        max_age: match r.max_age_days.unwrap_or(30) {
            0 => None,
            days => Some(Duration::from_secs(days * 86_400)),
        },
        min_free_bytes: r.min_free_megabytes.unwrap_or(500) << 20,
        slots: r.slots.unwrap_or(2).clamp(1, 16),
        semaphore,
        beacon: match r.beacon.as_deref() {
            None => Some(std::net::SocketAddr::from(([255, 255, 255, 255], 7446))),
            Some("") | Some("off") => None,
            Some(text) => text.parse().map(Some).unwrap_or_else(|_| {
                c.report(
                    "recording.beacon",
                    format!("{text:?} is not an address and port"),
                    "use a broadcast address and port like \"192.168.1.255:7446\", or \"off\"",
                );
                None
            }),
        },
    };
    let e = raw.events.unwrap_or_default();
    let sync_window = e.sync_window_ms.unwrap_or(100);
    if !(1..=5000).contains(&sync_window) {
        c.report(
            "events.sync_window_ms",
            format!("{sync_window} ms is out of range"),
            "use 1 to 5000: how long an ordinary event may wait to be synced to disk",
        );
    }
    let events = EventsConfig {
        sync_window: Duration::from_millis(sync_window.clamp(1, 5000)),
        max_age: match e.max_age_days.unwrap_or(365) {
            0 => None,
            days => Some(Duration::from_secs(days * 86_400)),
        },
        max_bytes: match e.max_megabytes.unwrap_or(1024) {
            0 => None,
            mb => Some(mb << 20),
        },
    };
    let webhook = raw.webhook.and_then(|w| {
        let url = c.required("webhook.url", w.url, "set `url` to http(s)://host/path")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            c.report(
                "webhook.url",
                format!("{url:?} is not an http(s) URL"),
                "use http://... or https://...",
            );
        }
        let format = match w.format.as_deref() {
            None | Some("json") => WebhookFormat::Json,
            Some("ntfy") => WebhookFormat::Ntfy,
            Some(other) => {
                c.report(
                    "webhook.format",
                    format!("unknown format {other:?}"),
                    "use \"json\" or \"ntfy\"",
                );
                WebhookFormat::Json
            }
        };
        let min_priority = match w.min_priority.as_deref() {
            None => AlertPriority::Info,
            Some(p) => AlertPriority::parse(p).unwrap_or_else(|| {
                c.report(
                    "webhook.min_priority",
                    format!("unknown priority {p:?}"),
                    "use info, fault, tamper or alarm",
                );
                AlertPriority::Info
            }),
        };
        Some(WebhookConfig {
            url,
            format,
            min_priority,
            timeout: Duration::from_secs(w.timeout_secs.unwrap_or(10)),
            secret_file: w.secret_file,
        })
    });

    let t = raw.telemetry.unwrap_or_default();
    let log_format = match t.log_format.as_deref() {
        None | Some("text") => LogFormat::Text,
        Some("json") => LogFormat::Json,
        Some(other) => {
            c.report(
                "telemetry.log_format",
                format!("unknown log format {other:?}"),
                "use \"text\" or \"json\"",
            );
            LogFormat::Text
        }
    };
    let telemetry = TelemetryConfig {
        otlp_endpoint: t.otlp_endpoint.filter(|e| !e.is_empty()),
        log_format,
        log_filter: t.log_filter.unwrap_or_else(|| "info".to_owned()),
    };

    if !c.problems.is_empty() {
        return Err(ConfigError::Invalid {
            source_name: source_name.to_owned(),
            problems: c.problems,
        });
    }
    Ok(Config {
        source: source_name.to_owned(),
        runtime,
        gpio: GpioConfig { backend },
        sensors,
        outputs,
        users,
        cameras,
        recording,
        hooks,
        alarm,
        grpc,
        alerts,
        events,
        webhook,
        telemetry,
    })
}

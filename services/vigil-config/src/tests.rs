use super::*;
use vigil_domain::{AlertPriority, ArmedMode, Level, Pull, Response};

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text, "test.toml") {
        Err(ConfigError::Invalid { problems, .. }) => problems,
        other => panic!("expected an invalid config, got {other:?}"),
    }
}

/// A small house: what every table's check sees in a real file.
const HOUSE: &str = r#"
[gpio]
backend = "simulated"

[[sensors]]
name = "front-door"
kind = "door"
pin = 17

[[sensors]]
name = "hall-motion"
kind = "motion"
pin = 5
pull = "down"
debounce_ms = 10

[[sensors]]
name = "kitchen-smoke"
kind = "smoke"
pin = 19

[outputs]
siren = { pin = 23 }

[[cameras]]
name = "porch"
source = "test"
key = "k"
motion = true

[[users]]
name = "alice"
role = "admin"
pin_hash_file = "/run/credentials/vigil-hub.service/pin-alice"

[[hooks]]
name = "log"
command = "/bin/logger"

[webhook]
url = "https://example.org/vigil"
format = "ntfy"
"#;

#[test]
fn a_small_house_is_valid_with_the_kinds_defaults() {
    let config = Config::parse(HOUSE, "house.toml").expect("valid");
    assert_eq!(config.gpio.backend, GpioBackendKind::Simulated);
    let (slot, door) = config.sensor("front-door").expect("front door");
    assert_eq!(slot, 0);
    assert_eq!(door.pull, Pull::Up);
    assert_eq!(door.active_level, Level::High);
    assert_eq!(door.response, Response::EntryDelay);
    assert_eq!(door.modes.len(), 5);
    let (_, motion) = config.sensor("hall-motion").expect("motion");
    assert_eq!(motion.modes, [ArmedMode::Away, ArmedMode::Vacation].into());
    assert_eq!(motion.response, Response::Instant);
    let (_, smoke) = config.sensor("kitchen-smoke").expect("smoke");
    assert!(smoke.modes.is_empty());
    // The camera's motion sensor comes after every wired one.
    let (slot, camera_motion) = config.sensor("porch-motion").expect("camera motion");
    assert_eq!(slot, 3);
    assert_eq!(camera_motion.camera.as_deref(), Some("porch"));
    let webhook = config.webhook.expect("webhook");
    assert_eq!(webhook.format, WebhookFormat::Ntfy);
    assert_eq!(webhook.min_priority, AlertPriority::Info);
}

#[test]
fn empty_file_is_a_valid_config_with_defaults() {
    let config = Config::parse("", "empty.toml").expect("valid");
    assert_eq!(config.runtime.runtime_dir, PathBuf::from("/run/vigil"));
    assert_eq!(config.runtime.state_dir, PathBuf::from("/var/lib/vigil"));
    // reportd's files stay in the state directory unless moved.
    assert_eq!(config.runtime.reports_dir, PathBuf::from("/var/lib/vigil"));
    assert_eq!(config.alerts.group, None);
    assert_eq!(config.gpio.backend, GpioBackendKind::Rppal);
}

#[test]
fn least_privilege_keys_give_alertd_a_group_reportd_a_directory_and_hooks_a_socket() {
    let config = Config::parse(
        "[runtime]\nreports_dir = \"/var/lib/vigil-reportd\"\n\
         [alerts]\ngroup = \"vigil-alerts\"\n\
         [[hooks]]\nname = \"ntfy\"\nsocket = \"/run/vigil-hooks/ntfy.sock\"\n\
         [[hooks]]\nname = \"log\"\ncommand = \"/bin/logger\"\nargs = [\"-t\", \"vigil\"]\n",
        "privilege.toml",
    )
    .expect("valid");
    assert_eq!(
        config.runtime.reports_db(),
        PathBuf::from("/var/lib/vigil-reportd/reports.db")
    );
    assert_eq!(config.alerts.group.as_deref(), Some("vigil-alerts"));
    assert_eq!(
        config.hooks[0].target,
        HookTarget::Socket(PathBuf::from("/run/vigil-hooks/ntfy.sock"))
    );
    assert_eq!(
        config.hooks[1].target,
        HookTarget::Command {
            command: PathBuf::from("/bin/logger"),
            args: vec!["-t".to_owned(), "vigil".to_owned()],
        }
    );
}

#[test]
fn a_hook_needs_a_command_or_a_socket_and_a_group_a_real_name() {
    for (text, key) in [
        ("[[hooks]]\nname = \"a\"\n", "hooks[0].command"),
        (
            "[[hooks]]\nname = \"a\"\ncommand = \"/bin/true\"\nsocket = \"/run/a.sock\"\n",
            "hooks[0].socket",
        ),
        (
            "[[hooks]]\nname = \"a\"\nsocket = \"/run/a.sock\"\nargs = [\"x\"]\n",
            "hooks[0].args",
        ),
        (
            "[[hooks]]\nname = \"a\"\nsocket = \"a.sock\"\n",
            "hooks[0].socket",
        ),
        ("[alerts]\ngroup = \"vigil alerts\"\n", "alerts.group"),
        (
            "[runtime]\nreports_dir = \"reports\"\n",
            "runtime.reports_dir",
        ),
    ] {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{text}: {p:?}");
        assert_eq!(p[0].key, key, "{text}");
    }
}

#[test]
fn unknown_kind_names_the_key_and_the_choices() {
    let p = problems("[[sensors]]\nname = \"garage\"\nkind = \"doorr\"\npin = 4\n");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "sensors[0].kind");
    assert!(p[0].problem.contains("\"doorr\""), "{}", p[0]);
    assert!(p[0].fix.contains("door, window, motion"), "{}", p[0]);
}

#[test]
fn duplicate_pin_names_both_keys() {
    let p = problems(
        "[[sensors]]\nname = \"a\"\nkind = \"door\"\npin = 4\n\
         [[sensors]]\nname = \"b\"\nkind = \"window\"\npin = 4\n",
    );
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].key, "sensors[1].pin");
    assert!(p[0].problem.contains("sensors[0].pin (a)"), "{}", p[0]);
}

#[test]
fn output_on_a_sensor_pin_is_a_duplicate() {
    let p = problems(
        "[[sensors]]\nname = \"a\"\nkind = \"door\"\npin = 23\n[outputs]\nsiren = { pin = 23 }\n",
    );
    assert_eq!(p[0].key, "outputs.siren.pin");
}

#[test]
fn missing_fields_are_named_and_all_reported() {
    let p = problems("[[sensors]]\nname = \"a\"\n[[sensors]]\nkind = \"door\"\npin = 5\n");
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["sensors[0].kind", "sensors[0].pin", "sensors[1].name"]
    );
    assert!(p.iter().all(|p| p.problem == "missing"));
    let message = ConfigError::Invalid {
        source_name: "test.toml".into(),
        problems: p,
    }
    .to_string();
    assert!(
        message.starts_with("test.toml has 3 problem(s):"),
        "{message}"
    );
    assert!(
        message.contains("sensors[0].pin: missing; fix: set `pin`"),
        "{message}"
    );
}

#[test]
fn out_of_range_pin_bad_name_and_modes_on_24h_zone() {
    let p = problems(
        "[[sensors]]\nname = \"Front Door\"\nkind = \"smoke\"\npin = 40\nmodes = [\"away\"]\n",
    );
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        ["sensors[0].name", "sensors[0].pin", "sensors[0].modes"]
    );
}

#[test]
fn unknown_keys_and_wrong_types_are_syntax_errors() {
    for text in [
        "[[sensors]]\nnmae = \"x\"\n",
        "[[sensors]]\npin = \"seventeen\"\n",
    ] {
        match Config::parse(text, "t.toml") {
            Err(ConfigError::Syntax { message, .. }) => assert!(!message.is_empty()),
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }
}

#[test]
fn missing_file_says_how_to_fix() {
    let err = Config::load(Path::new("/nonexistent/vigil.toml")).expect_err("missing");
    assert!(err.to_string().contains("--config"), "{err}");
}

/// A table with what it needs besides the key tested, and its keys' prefix.
type Table = (&'static str, &'static str);
const SENSOR: Table = (
    "[[sensors]]\nname = \"s\"\nkind = \"door\"\npin = 4\n",
    "sensors[0]",
);
const AWAY: Table = ("[alarm.modes.away]\n", "alarm.modes.away");
const ALARM: Table = ("[alarm]\n", "alarm");
const CAMERA: Table = ("[[cameras]]\nname = \"c\"\n", "cameras[0]");
const RECORDING: Table = ("[recording]\n", "recording");
// A ring shorter than the default pre-roll (10 s) needs a shorter pre-roll.
const SHORT_RING: Table = ("[recording]\npre_roll_secs = 0\n", "recording");
const ALERTS: Table = ("[alerts]\n", "alerts");
const EVENTS: Table = ("[events]\n", "events");
const WEBHOOK: Table = ("[webhook]\nurl = \"https://example.org\"\n", "webhook");

/// Every bounded key: its table, its field and its range.
const BOUNDED: &[(Table, &str, u64, u64)] = &[
    (SENSOR, "debounce_ms", 0, 5000),
    (SENSOR, "supervision_secs", 60, 31_536_000),
    (AWAY, "exit_delay_secs", 0, 300),
    (AWAY, "entry_delay_secs", 0, 45),
    (AWAY, "trigger_secs", 120, 900),
    (ALARM, "double_knock_secs", 1, 3600),
    (CAMERA, "width", 16, 3840),
    (CAMERA, "height", 16, 2160),
    (CAMERA, "framerate", 1, 60),
    (CAMERA, "bitrate_kbps", 100, 50_000),
    (CAMERA, "keyframe_secs", 1, 10),
    (CAMERA, "motion_percent", 1, 100),
    (SHORT_RING, "ring_secs", 1, 60),
    (RECORDING, "pre_roll_secs", 0, 30),
    (RECORDING, "post_capture_secs", 1, 600),
    (RECORDING, "offline_after_secs", 1, 600),
    (RECORDING, "max_age_days", 0, 36_500),
    (RECORDING, "min_free_megabytes", 0, 16_777_216),
    (RECORDING, "slots", 1, 16),
    (ALERTS, "depth", 1, 65_536),
    (ALERTS, "msg_size", 256, 1_048_576),
    (ALERTS, "cooldown_secs", 0, 86_400),
    (ALERTS, "hook_timeout_ms", 1, 600_000),
    (EVENTS, "sync_window_ms", 1, 5000),
    (EVENTS, "max_age_days", 0, 36_500),
    (EVENTS, "max_megabytes", 0, 16_777_216),
    (WEBHOOK, "timeout_secs", 1, 300),
];

#[test]
fn every_bounded_key_takes_its_ends_and_refuses_past_them_naming_the_range() {
    for &((table, prefix), field, low, high) in BOUNDED {
        let key = format!("{prefix}.{field}");
        let parse = |value: u64| Config::parse(&format!("{table}{field} = {value}\n"), "t.toml");
        for ok in [low, high] {
            if let Err(e) = parse(ok) {
                panic!("{key} = {ok} should be accepted: {e}");
            }
        }
        for bad in [low.checked_sub(1), Some(high + 1)].into_iter().flatten() {
            let p = match parse(bad) {
                Err(ConfigError::Invalid { problems, .. }) => problems,
                other => panic!("{key} = {bad} should be refused: {other:?}"),
            };
            assert_eq!(p.len(), 1, "{key} = {bad}: {p:?}");
            assert_eq!(p[0].key, key, "{key} = {bad}");
            let problem = &p[0].problem;
            assert!(problem.starts_with(&bad.to_string()), "{}", p[0]);
            assert!(problem.contains("out of range"), "{}", p[0]);
            let names_range =
                p[0].fix.contains(&format!("{low}")) && p[0].fix.contains(&format!("{high}"));
            assert!(names_range, "{key}: the fix names the range: {}", p[0]);
        }
    }
}

#[test]
fn the_ring_refuses_zero_and_a_ring_shorter_than_the_default_pre_roll() {
    let p = problems("[recording]\nring_secs = 0\n");
    assert_eq!(p[0].key, "recording.ring_secs");
    assert!(p[0].fix.contains("1 s to 60 s"), "{}", p[0]);
    let p = problems("[recording]\nring_secs = 5\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "recording.pre_roll_secs");
    assert!(p[0].fix.contains("0 s to 5 s"), "{}", p[0]);
    let config = Config::parse("[recording]\nring_secs = 1\npre_roll_secs = 1\n", "t")
        .expect("a one-second ring");
    assert_eq!(config.recording.ring, std::time::Duration::from_secs(1));
}

#[test]
fn an_odd_width_is_refused() {
    let p = problems("[[cameras]]\nname = \"c\"\nwidth = 641\n");
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "cameras[0].width");
    assert!(p[0].fix.contains("even"), "{}", p[0]);
}

#[test]
fn posix_names_need_one_leading_slash() {
    for (text, key) in [
        ("[alerts]\nqueue = \"vigil\"\n", "alerts.queue"),
        ("[alerts]\nqueue = \"/a/b\"\n", "alerts.queue"),
        ("[recording]\nsemaphore = \"/\"\n", "recording.semaphore"),
    ] {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{text}: {p:?}");
        assert_eq!(p[0].key, key);
        assert!(p[0].fix.contains("one leading slash"), "{}", p[0]);
    }
}

#[test]
fn out_of_range_values_are_all_reported_together() {
    let p = problems(
        "[alerts]\ndepth = 0\nmsg_size = 10\n[events]\nsync_window_ms = 0\n\
         [[cameras]]\nname = \"c\"\nframerate = 0\nbitrate_kbps = 1\n",
    );
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "cameras[0].framerate",
            "cameras[0].bitrate_kbps",
            "alerts.depth",
            "alerts.msg_size",
            "events.sync_window_ms"
        ]
    );
}

#[test]
fn unknown_words_name_the_choices() {
    for (text, key, choice) in [
        (
            "[gpio]\nbackend = \"pi\"\n",
            "gpio.backend",
            "\"simulated\"",
        ),
        (
            "[telemetry]\nlog_format = \"xml\"\n",
            "telemetry.log_format",
            "\"json\"",
        ),
        (
            "[[cameras]]\nname = \"c\"\nencoder = \"h265\"\n",
            "cameras[0].encoder",
            "\"x264\"",
        ),
        (
            "[[sensors]]\nname = \"s\"\nkind = \"door\"\npin = 4\nresponse = \"later\"\n",
            "sensors[0].response",
            "\"entry\"",
        ),
    ] {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{text}: {p:?}");
        assert_eq!(p[0].key, key);
        assert!(p[0].fix.contains(choice), "{}", p[0]);
    }
}

#[test]
fn a_demo_root_without_its_house_says_to_start_vigil_demo() {
    let root = Path::new("/nonexistent/vigil-demo");
    let source = ConfigSource::from_flags(Some(PathBuf::from(DEFAULT_PATH)), Some(root.into()));
    assert_eq!(source.path(), root.join("vigil.toml"));
    let err = source.load().expect_err("no house");
    assert!(matches!(err, ConfigError::NoDemo { .. }), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("/nonexistent/vigil-demo/vigil.toml"),
        "{message}"
    );
    assert!(message.contains("start vigil-demo first"), "{message}");
}

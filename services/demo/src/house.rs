//! The demo's house: a simulated board with a door on every side, a window,
//! motion, one of each 24-hour zone, a siren and a buzzer, a test-pattern
//! camera, a user with PIN 1234, and a hook that prints each alert.
//!
//! vigil-demo writes it to `ROOT/vigil.toml` (with its runtime and state
//! directories under ROOT) before it starts the services, which read it
//! with `--demo ROOT`: the same file a real install has, validated the same
//! way. The configuration library holds no house of its own.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use vigil_config::{Config, ConfigSource, DEMO_FILE};

/// The house, without `[runtime]` (which depends on the root).
const HOUSE: &str = r#"
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

/// The whole file for a house rooted at `root` (an absolute path).
pub(crate) fn config_text(root: &Path) -> Result<String> {
    let dir = |sub: &str| -> Result<String> {
        let path = root.join(sub);
        let text = path
            .to_str()
            .with_context(|| format!("the demo root {} is not UTF-8", root.display()))?;
        // A TOML string, quoted and escaped as TOML wants it.
        Ok(toml::Value::String(text.to_owned()).to_string())
    };
    Ok(format!(
        "{HOUSE}\n[runtime]\nruntime_dir = {}\nstate_dir = {}\n",
        dir("run")?,
        dir("state")?
    ))
}

/// Writes the house to `root/vigil.toml` (replacing any there: the demo's
/// house is its own) and reads it back as the services will.
pub(crate) fn write(root: &Path) -> Result<(PathBuf, Config)> {
    let text = config_text(root)?;
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let path = root.join(DEMO_FILE);
    // Through a temporary file and a rename: a service started by hand at
    // the same moment reads the old house or the new one, never half.
    let tmp = root.join(format!("{DEMO_FILE}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    let config = ConfigSource::Demo(root.to_owned()).load()?;
    Ok((path, config))
}

#[cfg(test)]
mod tests {
    use vigil_config::{ConfigError, GpioBackendKind};
    use vigil_domain::{ArmedMode, Level, Pull};

    use super::*;

    #[test]
    fn the_house_is_written_where_demo_root_reads_it() {
        let root = tempfile::tempdir().expect("dir");
        let source = ConfigSource::Demo(root.path().to_owned());
        assert!(matches!(source.load(), Err(ConfigError::NoDemo { .. })));
        let (path, config) = write(root.path()).expect("write");
        assert_eq!(path, root.path().join("vigil.toml"));
        assert_eq!(source.load().expect("load"), config);
        assert_eq!(config.runtime.runtime_dir, root.path().join("run"));
        assert_eq!(config.runtime.state_dir, root.path().join("state"));
        assert_eq!(config.gpio.backend, GpioBackendKind::Simulated);
        assert_eq!(config.sensors.len(), 8);
        let (slot, door) = config.sensor("front-door").expect("front door");
        assert_eq!(slot, 0);
        assert_eq!(door.pull, Pull::Up);
        assert_eq!(door.active_level, Level::High);
        assert_eq!(door.modes.len(), 5);
        let (_, motion) = config.sensor("hallway-motion").expect("motion");
        assert_eq!(motion.modes, [ArmedMode::Away, ArmedMode::Vacation].into());
        // Written again: the same house.
        assert_eq!(write(root.path()).expect("again").1, config);
    }

    #[test]
    fn odd_roots_are_quoted_as_toml_strings() {
        let text = config_text(Path::new("/tmp/a \"demo\" \\ root")).expect("text");
        let config = Config::parse(&text, "t").expect("valid");
        assert_eq!(
            config.runtime.runtime_dir,
            Path::new("/tmp/a \"demo\" \\ root/run")
        );
    }
}

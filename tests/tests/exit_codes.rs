//! Exit codes across real processes: each daemon exits with its error's
//! own code (ARCHITECTURE.md, "Exit codes"), whatever phase it fails in,
//! and says what to do. 78 (EX_CONFIG) stops systemd from restarting the
//! unit; 1 lets it restart.

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use vigil_e2e::{RunAs, Stack, TEST_SENSORS, json_lines, message};

/// The daemon's last log line (JSON once its telemetry is up), or its
/// plain stderr before that.
struct Ended {
    code: Option<i32>,
    stderr: String,
}

impl Ended {
    fn of(stack: &Stack, binary: &str, args: &[&str]) -> Result<Ended> {
        let out = stack.run(binary, args)?;
        Ok(Ended {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// The error line: the one that carries `exit_code`.
    fn error_line(&self) -> Result<Value> {
        json_lines(&self.stderr)
            .into_iter()
            .find(|l| !l["fields"]["exit_code"].is_null())
            .with_context(|| format!("no error line with an exit_code in:\n{}", self.stderr))
    }
}

/// A user whose PIN hash lives in a file that is not there: the hub finds
/// it only in `run`, after its telemetry and runtime are up, and still
/// exits 78 naming the key, the file and the fix.
#[test]
fn a_missing_pin_hash_file_is_a_configuration_error() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let missing = stack.root.path().join("secrets").join("alice-pin");
    stack.write_config(&format!(
        "{TEST_SENSORS}\n[[users]]\nname = \"alice\"\nrole = \"user\"\npin_hash_file = {:?}\n",
        missing.display().to_string()
    ))?;
    let ended = Ended::of(&stack, "vigil-hub", &[])?;
    ensure!(ended.code == Some(78), "{:?}: {}", ended.code, ended.stderr);
    let line = ended.error_line()?;
    ensure!(line["fields"]["exit_code"] == 78, "{line}");
    let text = message(&line);
    for wanted in [
        "users[0].pin_hash_file: cannot read the PIN hash file",
        &missing.display().to_string(),
        "(user alice)",
        "fix: write the PIN's argon2 hash there (`vigilctl hash-pin",
        "exit 78",
        "does not restart",
    ] {
        ensure!(text.contains(wanted), "wanted {wanted:?} in: {text}");
    }
    Ok(())
}

/// A PIN hash file that holds something else than an argon2 hash: 78, and
/// the message says how to make one.
#[test]
fn a_pin_hash_file_without_a_hash_is_a_configuration_error() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let file = stack.root.path().join("bob-duress");
    std::fs::write(&file, "1357\n")?;
    stack.write_config(&format!(
        "{TEST_SENSORS}\n[[users]]\nname = \"bob\"\nrole = \"admin\"\npin_hash = {:?}\nduress_pin_hash_file = {:?}\n",
        "$argon2id$v=19$m=19456,t=2,p=1$V0vSInmKCPdzimuhwUUwsw$I1CZL27lla/QEjor55VWNTYHRjbEh+TcpiwAhmIy0es",
        file.display().to_string()
    ))?;
    let ended = Ended::of(&stack, "vigil-hub", &[])?;
    ensure!(ended.code == Some(78), "{:?}: {}", ended.code, ended.stderr);
    let text = message(&ended.error_line()?).to_owned();
    ensure!(
        text.contains("user bob: the PIN hash is not an argon2 PHC string")
            && text.contains("vigilctl hash-pin"),
        "{text}"
    );
    Ok(())
}

/// The webhook's secret file named by the config cannot be read: alertd
/// exits 78 naming the key and the file.
#[test]
fn a_missing_webhook_secret_is_a_configuration_error() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let missing = stack.root.path().join("webhook-secret");
    stack.write_config(&format!(
        "{TEST_SENSORS}\n[webhook]\nurl = \"http://127.0.0.1:9/alerts\"\nsecret_file = {:?}\n",
        missing.display().to_string()
    ))?;
    let ended = Ended::of(&stack, "vigil-alertd", &[])?;
    ensure!(ended.code == Some(78), "{:?}: {}", ended.code, ended.stderr);
    let text = message(&ended.error_line()?).to_owned();
    ensure!(
        text.contains("webhook.secret_file: cannot read the secret")
            && text.contains(&missing.display().to_string()),
        "{text}"
    );
    Ok(())
}

/// The MQTT bridge without `[mqtt]`, or with a CA file that is not
/// there: 78, naming what to fix, before it connects to anything.
#[test]
fn the_mqtt_bridge_refuses_a_config_it_cannot_use() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let ended = Ended::of(&stack, "vigil-mqttd", &[])?;
    ensure!(ended.code == Some(78), "{:?}: {}", ended.code, ended.stderr);
    let text = message(&ended.error_line()?).to_owned();
    ensure!(text.contains("no [mqtt] table"), "{text}");

    let missing = stack.root.path().join("mqtt-ca.pem");
    stack.write_config(&format!(
        "{TEST_SENSORS}\n[mqtt]\nbroker = \"127.0.0.1:8883\"\nca_file = {:?}\n",
        missing.display().to_string()
    ))?;
    let ended = Ended::of(&stack, "vigil-mqttd", &[])?;
    ensure!(ended.code == Some(78), "{:?}: {}", ended.code, ended.stderr);
    let text = message(&ended.error_line()?).to_owned();
    ensure!(text.contains(&missing.display().to_string()), "{text}");
    Ok(())
}

/// A camera whose key file is not there: camd exits 78 before it starts
/// GStreamer.
#[test]
fn a_missing_camera_key_file_is_a_configuration_error() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let missing = stack.root.path().join("porch-key");
    stack.write_config(&format!(
        "{TEST_SENSORS}\n[[cameras]]\nname = \"porch\"\nsource = \"test\"\nhub = \"127.0.0.1:9\"\nkey_file = {:?}\n",
        missing.display().to_string()
    ))?;
    let ended = Ended::of(&stack, "vigil-camd", &[])?;
    ensure!(ended.code == Some(78), "{:?}: {}", ended.code, ended.stderr);
    let text = message(&ended.error_line()?).to_owned();
    ensure!(
        text.contains("camera porch:")
            && text.contains(&missing.display().to_string())
            && text.contains("fix: put the secret shared with the hub in key_file"),
        "{text}"
    );
    Ok(())
}

/// Another hub running is a runtime failure (1): under systemd the unit
/// restarts with back-off and comes back once the other one is gone. The
/// running hub is not disturbed.
#[test]
fn a_second_hub_exits_1_and_leaves_the_first_running() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let mut hub = stack.start("vigil-hub")?;
    hub.wait_log(0, "readiness", |l| message(l) == "hub ready")?;
    let ended = Ended::of(&stack, "vigil-hub", &[])?;
    ensure!(ended.code == Some(1), "{:?}: {}", ended.code, ended.stderr);
    let line = ended.error_line()?;
    ensure!(line["fields"]["exit_code"] == 1, "{line}");
    ensure!(
        message(&line).contains("another hub is already running"),
        "{line}"
    );
    ensure!(hub.child.try_wait()?.is_none(), "the first hub stopped");
    stack.local_status()?;
    ensure!(
        hub.terminate()? == Some(0),
        "the first hub did not stop cleanly"
    );
    Ok(())
}

/// An invalid config file is found before telemetry starts: plain stderr,
/// `name: error`, then what 78 means.
#[test]
fn an_invalid_config_file_says_what_78_means() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    std::fs::write(&stack.config_path, "[gpio\n")?;
    for binary in [
        "vigil-hub",
        "vigil-sensord",
        "vigil-alertd",
        "vigil-reportd",
        "vigil-camd",
    ] {
        let ended = Ended::of(&stack, binary, &[])?;
        ensure!(
            ended.code == Some(78),
            "{binary}: {:?}: {}",
            ended.code,
            ended.stderr
        );
        ensure!(
            ended.stderr.contains(&format!("{binary}: exit 78: ")),
            "{binary}: {}",
            ended.stderr
        );
    }
    Ok(())
}

/// `vigilctl events --follow | head -1`: when its reader goes away,
/// vigilctl ends at once, exit 0, with no panic on stderr.
#[test]
fn vigilctl_ends_quietly_when_its_reader_goes_away() -> Result<()> {
    use std::io::{BufRead, Read};
    use std::process::Stdio;
    let (stack, _hub, _sensord) = vigil_e2e::alarm_stack("user")?;
    stack.ctl_json(&["arm", "away"])?;
    let mut follower = stack
        .ctl_command(&["--json", "events", "--follow", "--after", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = follower.stdout.take().context("stdout")?;
    let mut first = String::new();
    std::io::BufReader::new(stdout).read_line(&mut first)?;
    ensure!(first.contains("\"seq\""), "the first event: {first:?}");
    // The reader is gone (dropped with its BufReader); the next events
    // find the pipe closed.
    stack.ctl_json(&["disarm", "--pin", "2468"])?;
    let mut status = None;
    let ended = vigil_e2e::wait_until(
        "vigilctl ending after its reader went away",
        std::time::Duration::from_secs(20),
        || {
            status = follower.try_wait()?;
            Ok(status.is_some())
        },
    );
    let Some(status) = status else {
        let _ = follower.kill();
        return ended;
    };
    let mut stderr = String::new();
    follower
        .stderr
        .take()
        .context("stderr")?
        .read_to_string(&mut stderr)?;
    ensure!(
        status.success() && !stderr.contains("panicked"),
        "vigilctl ended {status}: {stderr}"
    );
    Ok(())
}

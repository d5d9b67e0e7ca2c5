//! The sensor path across real processes: simulated GPIO -> sensord ->
//! shared table + doorbell -> hub, read by a third process (vigilctl).

use std::thread::sleep;
use std::time::Duration;

use anyhow::{Result, ensure};
use nix::sys::signal::Signal;
use serde_json::Value;
use vigil_e2e::{RunAs, Stack, TEST_SENSORS, field, message, sensor};

fn is_change(line: &Value, name: &str, state: &str) -> bool {
    message(line) == "sensor changed"
        && field(line, "sensor") == name
        && field(line, "state") == state
}

fn joined(line: &Value) -> bool {
    message(line) == "service joined" && field(line, "role") == "sensord"
}

/// Opens a door and follows it everywhere, then SIGKILLs the hub and checks
/// that sensord rejoins by itself and fills the new hub's table.
fn door_opens_and_survives_a_hub_crash(run_as: RunAs) -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, run_as)?;
    // Any start order works: sensord first, it waits for the hub.
    let mut sensord = stack.start("vigil-sensord")?;
    sleep(Duration::from_millis(200));
    let mut hub = stack.start("vigil-hub")?;
    let (_, cursor) = hub.wait_log(0, "sensord joining", joined)?;
    stack.wait_status("the front door closed", |s| {
        sensor(s, "front-door")["state"] == "closed"
    })?;

    stack.sim("set front-door open")?;
    let (hub_line, cursor) = hub.wait_log(cursor, "the door opening", |l| {
        is_change(l, "front-door", "open")
    })?;
    let (sensord_line, _) =
        sensord.wait_log(0, "the door opening", |l| message(l) == "front-door open")?;
    // One trace spans both processes: the id travelled in the slot.
    let trace_id = field(&sensord_line, "trace_id");
    ensure!(
        trace_id
            .as_str()
            .is_some_and(|t| t.len() == 32 && t != "0".repeat(32)),
        "sensord logged no trace id: {sensord_line}"
    );
    ensure!(
        field(&hub_line, "trace_id") == trace_id,
        "hub and sensord disagree on the trace: {hub_line} vs {sensord_line}"
    );
    // A third process sees it in the shared table.
    let status = stack.wait_status("the front door open", |s| {
        sensor(s, "front-door")["state"] == "open"
    })?;
    ensure!(status["hub_pid"] == hub.pid(), "{status}");
    ensure!(
        sensor(&status, "front-door")["trace_id"] == *trace_id,
        "{status}"
    );
    ensure!(
        sensor(&status, "back-door")["state"] == "closed",
        "{status}"
    );
    let _ = cursor;

    // The hub dies without a word; a new one starts.
    let sensord_cursor = sensord.log_len()?;
    hub.kill9()?;
    let hub2 = stack.start("vigil-hub")?;
    sensord.wait_log(sensord_cursor, "noticing the hub's death", |l| {
        message(l).starts_with("lost the hub")
    })?;
    let (_, cursor2) = hub2.wait_log(0, "sensord rejoining", joined)?;
    // The new hub's table is filled again from sensord's snapshot.
    stack.wait_status("the new hub's table filled", |s| {
        s["hub_pid"] == hub2.pid() && sensor(s, "front-door")["state"] == "open"
    })?;
    // And changes keep flowing to the new hub.
    stack.sim("set front-door closed")?;
    hub2.wait_log(cursor2, "the door closing", |l| {
        is_change(l, "front-door", "closed")
    })?;

    // SIGTERM drains and exits 0.
    let mut hub2 = hub2;
    ensure!(sensord.terminate()? == Some(0), "sensord exit code");
    ensure!(hub2.terminate()? == Some(0), "hub exit code");
    Ok(())
}

#[test]
fn door_opens_and_survives_a_hub_crash_as_this_user() -> Result<()> {
    door_opens_and_survives_a_hub_crash(RunAs::Me)
}

#[test]
fn door_opens_and_survives_a_hub_crash_unprivileged() -> Result<()> {
    door_opens_and_survives_a_hub_crash(RunAs::unprivileged()?)
}

#[test]
fn forged_doorbells_are_logged_and_ignored() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let mut hub = stack.start("vigil-hub")?;
    let _sensord = stack.start("vigil-sensord")?;
    let (_, cursor) = hub.wait_log(0, "sensord joining", joined)?;

    // A ring sent with kill(1): no value.
    let pid = hub.pid().to_string();
    let signal = format!("{}", vigil_ipc::doorbell::doorbell_signal());
    let killed = std::process::Command::new("kill")
        .args(["-s", &signal, &pid])
        .status()?;
    ensure!(killed.success());
    let (_, cursor) = hub.wait_log(cursor, "the kill(1) doorbell", |l| {
        message(l).starts_with("ignored a doorbell signal sent with kill")
    })?;
    // A queued ring naming a slot that does not exist.
    vigil_ipc::doorbell::DoorbellSender::new(hub.pid())?.ring(4096)?;
    let (line, cursor) = hub.wait_log(cursor, "the out-of-range doorbell", |l| {
        message(l).starts_with("ignored a doorbell for a slot that does not exist")
    })?;
    ensure!(field(&line, "value") == 4096, "{line}");

    // The hub is alive and still sees real changes.
    ensure!(hub.child.try_wait()?.is_none(), "the hub died");
    stack.sim("set back-door open")?;
    hub.wait_log(cursor, "the back door opening", |l| {
        is_change(l, "back-door", "open")
    })?;
    ensure!(hub.terminate()? == Some(0));
    Ok(())
}

#[test]
fn sensord_crash_is_repaired_and_it_rejoins() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let mut sensord = stack.start("vigil-sensord")?;
    let (_, cursor) = hub.wait_log(0, "sensord joining", joined)?;
    stack.sim("set hallway-motion active")?;
    stack.wait_status("motion", |s| {
        sensor(s, "hallway-motion")["state"] == "motion"
    })?;

    sensord.kill9()?;
    let (_, cursor) = hub.wait_log(cursor, "sensord leaving", |l| {
        message(l).starts_with("service left") && field(l, "role") == "sensord"
    })?;
    // While sensord is away the table keeps the last state for readers.
    let status = stack.local_status()?;
    ensure!(
        sensor(&status, "hallway-motion")["state"] == "motion",
        "{status}"
    );

    // A new sensord's board starts at rest: motion has stopped, and the
    // hub learns it from the snapshot.
    let _sensord2 = stack.start("vigil-sensord")?;
    let (_, cursor) = hub.wait_log(cursor, "sensord rejoining", joined)?;
    hub.wait_log(cursor, "the snapshot", |l| {
        is_change(l, "hallway-motion", "still")
    })?;
    Ok(())
}

#[test]
fn sighup_reloads_and_a_new_sensor_gets_a_slot() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let sensord = stack.start("vigil-sensord")?;
    let (_, cursor) = hub.wait_log(0, "sensord joining", joined)?;
    ensure!(sensor(&stack.local_status()?, "garage-door").is_null());

    let garage =
        "\n[[sensors]]\nname = \"garage-door\"\nkind = \"door\"\npin = 22\ndebounce_ms = 10\n";
    stack.write_config(&format!("{TEST_SENSORS}{garage}"))?;
    hub.signal(Signal::SIGHUP)?;
    sensord.signal(Signal::SIGHUP)?;
    hub.wait_log(cursor, "a new table", |l| {
        message(l).starts_with("the sensor list changed")
    })?;
    stack.wait_status("the garage door's slot", |s| {
        sensor(s, "garage-door")["state"] == "closed"
    })?;
    stack.sim("set garage-door open")?;
    stack.wait_status("the garage door open", |s| {
        sensor(s, "garage-door")["state"] == "open"
    })?;

    // A broken config on SIGHUP is refused and the running one kept.
    let cursor = hub.log_len()?;
    std::fs::write(&stack.config_path, "[[sensors]]\nname = \"x\"\n")?;
    hub.signal(Signal::SIGHUP)?;
    hub.wait_log(cursor, "the refusal", |l| {
        message(l).starts_with("configuration not reloaded")
    })?;
    let mut hub = hub;
    ensure!(
        hub.child.try_wait()?.is_none(),
        "the hub died on a bad reload"
    );
    // Still serving the garage door from the running config.
    stack.write_config(&format!("{TEST_SENSORS}{garage}"))?;
    ensure!(sensor(&stack.local_status()?, "garage-door")["state"] == "open");
    Ok(())
}

#[test]
fn bad_configs_exit_78_naming_the_key_and_the_fix() -> Result<()> {
    let stack = Stack::new(TEST_SENSORS, RunAs::Me)?;
    let cases = [
        (
            "[[sensors]]\nname = \"a\"\nkind = \"doorr\"\npin = 4\n",
            "sensors[0].kind: unknown sensor kind \"doorr\"; fix: use one of door, window",
        ),
        (
            "[[sensors]]\nname = \"a\"\nkind = \"door\"\npin = 4\n[[sensors]]\nname = \"b\"\nkind = \"door\"\npin = 4\n",
            "sensors[1].pin: GPIO 4 is already used by sensors[0].pin (a); fix: give every",
        ),
        (
            "[[sensors]]\nname = \"a\"\nkind = \"door\"\n",
            "sensors[0].pin: missing; fix: set `pin` to the BCM number",
        ),
    ];
    for (config, expected) in cases {
        stack.write_config(config)?;
        for binary in ["vigil-hub", "vigil-sensord"] {
            let out = stack.run(binary, &[])?;
            let stderr = String::from_utf8_lossy(&out.stderr);
            ensure!(
                out.status.code() == Some(78),
                "{binary}: {:?} {stderr}",
                out.status
            );
            ensure!(
                stderr.contains(expected),
                "{binary} said:\n{stderr}\nwanted: {expected}"
            );
        }
    }
    Ok(())
}

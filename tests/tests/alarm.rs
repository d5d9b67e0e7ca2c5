//! The alarm across real processes, driven as a homeowner would: through
//! vigilctl over gRPC and TLS, the simulated board's wires, and the control
//! FIFO.

use std::io::Write;
use std::thread::sleep;
use std::time::Duration;

use anyhow::{Result, ensure};
use vigil_e2e::{RunAs, Service, Stack, TEST_ALARM, TEST_SENSORS, message};

fn stack() -> Result<(Stack, Service, Service)> {
    vigil_e2e::alarm_stack("user")
}

fn outputs(stack: &Stack) -> Result<String> {
    stack.sim("outputs")
}

#[test]
fn arm_exit_delay_entry_delay_siren_and_disarm_over_tls() -> Result<()> {
    let (stack, _hub, _sensord) = stack()?;
    let armed = stack.ctl_json(&["arm", "away"])?;
    ensure!(armed["status"]["state"] == "arming", "{armed}");
    ensure!(
        armed["status"]["buzzer"] == true,
        "the exit delay beeps: {armed}"
    );
    stack.wait_alarm("armed away", |s| {
        s["mode"] == "away" && s["state"] == "idle"
    })?;

    stack.sim("set front-door open")?;
    let pending = stack.wait_alarm("the entry delay", |s| s["state"] == "pending")?;
    ensure!(pending["open"][0] == "front-door", "{pending}");
    ensure!(
        outputs(&stack)? == "siren=off buzzer=on",
        "entry delay: buzzer only"
    );

    // Nobody disarms: the entry delay runs out.
    let triggered = stack.wait_alarm("the siren", |s| s["state"] == "triggered")?;
    ensure!(triggered["siren"] == true, "{triggered}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while outputs(&stack)? != "siren=on buzzer=off" {
        ensure!(
            std::time::Instant::now() < deadline,
            "the siren output never came on"
        );
        sleep(Duration::from_millis(50));
    }

    let disarmed = stack.ctl_json(&["disarm", "--pin", "2468"])?;
    ensure!(disarmed["user"] == "alice", "{disarmed}");
    ensure!(disarmed["status"]["mode"] == "disarmed", "{disarmed}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while outputs(&stack)? != "siren=off buzzer=off" {
        ensure!(
            std::time::Instant::now() < deadline,
            "the siren never went off"
        );
        sleep(Duration::from_millis(50));
    }

    // The event stream has every step, attributed.
    let (code, stdout, _) = stack.ctl(&["--json", "events", "--after", "0"])?;
    ensure!(code == 0);
    let kinds: Vec<String> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["kind"].as_str().unwrap_or("").to_owned())
        .collect();
    for want in [
        "arming",
        "armed",
        "sensor",
        "entry_delay",
        "triggered",
        "disarmed",
    ] {
        ensure!(
            kinds.iter().any(|k| k == want),
            "no {want} event in {kinds:?}"
        );
    }
    ensure!(
        stdout.contains("\"user\":\"alice\""),
        "disarm not attributed: {stdout}"
    );
    Ok(())
}

/// Writes `line` to the control FIFO, as a script would.
fn fifo(stack: &Stack, line: &str) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(stack.runtime_dir().join("control"))?;
    f.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}

/// Issue 14, finding 5: one client guessing PINs (a `user`-role phone, a
/// teenager) locks out only itself; the owner disarms from elsewhere.
#[test]
fn one_client_with_wrong_pins_locks_out_only_itself() -> Result<()> {
    let (stack, _hub, _sensord) = stack()?;
    stack.ctl_json(&["arm", "away"])?;
    for left in (1..5).rev() {
        let (code, _, stderr) = stack.ctl(&["disarm", "--pin", "0000"])?;
        ensure!(code == 5, "wrong PIN: exit {code}: {stderr}");
        ensure!(
            stderr.contains(&format!("{left} attempts left")),
            "{stderr}"
        );
    }
    let (code, _, stderr) = stack.ctl(&["disarm", "--pin", "0000"])?;
    ensure!(code == 6, "5th wrong PIN: exit {code}: {stderr}");
    // This client is refused even with the right PIN...
    let (code, _, stderr) = stack.ctl(&["disarm", "--pin", "2468"])?;
    ensure!(
        code == 6,
        "right PIN from the locked client: exit {code}: {stderr}"
    );
    let status = stack.ctl_json(&["status"])?;
    ensure!(
        status["locked_until_unix_ms"].is_null(),
        "not everyone is locked out: {status}"
    );
    // ... and the owner, at the keypad script, disarms.
    fifo(&stack, "disarm 2468")?;
    stack.wait_alarm("disarmed from the FIFO", |s| s["mode"] == "disarmed")?;
    Ok(())
}

/// EN 50131 grade 2's lockout still holds for the system: ten wrong PINs
/// in a row from several sources lock every PIN out for 90 s.
#[test]
fn ten_wrong_pins_from_two_sources_lock_the_keypad_out() -> Result<()> {
    let (stack, hub, _sensord) = stack()?;
    stack.ctl_json(&["arm", "away"])?;
    for _ in 0..4 {
        let (code, _, stderr) = stack.ctl(&["disarm", "--pin", "0000"])?;
        ensure!(code == 5, "wrong PIN: exit {code}: {stderr}");
    }
    let cursor = hub.log_len()?;
    for _ in 0..5 {
        fifo(&stack, "disarm 0000")?;
    }
    let refused =
        |l: &serde_json::Value| message(l).starts_with("control FIFO: disarm **** refused");
    hub.wait_log(cursor, "the FIFO's five wrong PINs", |_| {
        hub.log_lines()
            .map(|lines| lines[cursor..].iter().filter(|l| refused(l)).count() >= 5)
            .unwrap_or(false)
    })?;
    let (code, _, stderr) = stack.ctl(&["disarm", "--pin", "0000"])?;
    ensure!(code == 6, "10th wrong PIN: exit {code}: {stderr}");
    ensure!(stderr.contains("every PIN"), "{stderr}");
    let (code, _, stderr) = stack.ctl(&["disarm", "--pin", "2468"])?;
    ensure!(
        code == 6,
        "right PIN while locked out: exit {code}: {stderr}"
    );
    ensure!(
        stderr.contains("refused for 9") || stderr.contains("refused for 8"),
        "{stderr}"
    );
    let status = stack.ctl_json(&["status"])?;
    ensure!(status["mode"] == "away", "still armed: {status}");
    ensure!(status["locked_until_unix_ms"].is_u64(), "{status}");
    Ok(())
}

/// Issue 14, finding 4: whoever cannot disarm cannot neutralise a zone of
/// an armed system either. Bypassing while armed needs a valid PIN, over
/// gRPC and the FIFO alike, and is an alert; restoring needs none.
#[test]
fn bypassing_while_armed_needs_a_pin() -> Result<()> {
    let (stack, hub, _sensord) = stack()?;
    stack.ctl_json(&["arm", "away"])?;
    stack.wait_alarm("armed away", |s| s["state"] == "idle")?;
    let (code, _, stderr) = stack.ctl(&["bypass", "back-door"])?;
    ensure!(code == 5, "bypass without a PIN: exit {code}: {stderr}");
    ensure!(stderr.contains("needs a PIN"), "{stderr}");
    let cursor = hub.log_len()?;
    fifo(&stack, "bypass back-door")?;
    hub.wait_log(cursor, "the FIFO's bypass refused", |l| {
        message(l).contains("bypass") && message(l).contains("needs a PIN")
    })?;
    // Still armed with the zone live: the door opening starts the entry
    // delay.
    stack.sim("set back-door open")?;
    stack.wait_alarm("the entry delay", |s| s["state"] == "pending")?;
    stack.ctl_json(&["disarm", "--pin", "2468"])?;
    stack.sim("set back-door closed")?;
    // The simulator answers before the hub has seen the door close.
    stack.wait_alarm("the back door closed", |s| {
        s["open"].as_array().is_none_or(|open| open.is_empty())
    })?;
    stack.ctl_json(&["arm", "away"])?;
    stack.wait_alarm("armed away again", |s| s["state"] == "idle")?;
    let (code, _, stderr) = stack.ctl(&["bypass", "back-door", "--pin", "0000"])?;
    ensure!(code == 5, "bypass with a wrong PIN: exit {code}: {stderr}");
    let bypassed = stack.ctl_json(&["bypass", "back-door", "--pin", "2468"])?;
    ensure!(bypassed["bypassed"][0] == "back-door", "{bypassed}");
    let restored = stack.ctl_json(&["bypass", "back-door", "--off"])?;
    ensure!(
        restored["bypassed"].as_array().is_none_or(|b| b.is_empty()),
        "{restored}"
    );
    let (_, stdout, _) = stack.ctl(&["events", "--after", "0"])?;
    ensure!(
        stdout.contains("back-door bypassed by alice"),
        "the bypass is attributed to the PIN's user: {stdout}"
    );
    Ok(())
}

#[test]
fn a_duress_code_disarms_and_raises_a_silent_alert() -> Result<()> {
    let (stack, hub, _sensord) = stack()?;
    stack.ctl_json(&["arm", "away"])?;
    let cursor = hub.log_len()?;
    let disarmed = stack.ctl_json(&["disarm", "--pin", "1357"])?;
    ensure!(disarmed["status"]["mode"] == "disarmed", "{disarmed}");
    ensure!(
        disarmed["user"] == "alice",
        "looks like a normal disarm: {disarmed}"
    );
    hub.wait_log(cursor, "the silent duress alert", |l| {
        message(l).starts_with("DURESS code used")
    })?;
    // Silent: nothing in the event stream tells a watcher.
    let (_, stdout, _) = stack.ctl(&["--json", "events", "--after", "0"])?;
    ensure!(!stdout.to_lowercase().contains("duress"), "{stdout}");
    ensure!(
        !stack.logged_event_kinds()?.iter().any(|k| k == "duress"),
        "duress in the streamable log"
    );
    // Kept for the record in the private log.
    let private = stack.logged_kinds_in("events-private")?;
    ensure!(private == ["duress"], "{private:?}");
    Ok(())
}

#[test]
fn a_hub_killed_while_triggered_comes_back_triggered() -> Result<()> {
    let (stack, mut hub, _sensord) = stack()?;
    stack.ctl_json(&["arm", "away"])?;
    stack.wait_alarm("armed", |s| s["state"] == "idle")?;
    stack.sim("set back-door open")?;
    stack.wait_alarm("the siren", |s| s["state"] == "triggered")?;
    let before = stack.ctl_json(&["status"])?;

    hub.kill9()?;
    // The alarm was on disk before anyone was told: the log has it.
    let logged = stack.logged_event_kinds()?;
    ensure!(logged.iter().any(|k| k == "triggered"), "{logged:?}");
    let hub2 = stack.start("vigil-hub")?;
    hub2.wait_log(0, "sensord rejoining", |l| message(l) == "service joined")?;
    let after = stack.wait_alarm("triggered after the restart", |s| s["state"] == "triggered")?;
    ensure!(after["mode"] == "away", "{after}");
    // The siren's deadline did not move: timers resume with the time left.
    ensure!(
        after["deadline_unix_ms"] == before["deadline_unix_ms"],
        "{before} vs {after}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while outputs(&stack)? != "siren=on buzzer=off" {
        ensure!(
            std::time::Instant::now() < deadline,
            "the siren is not sounding after the restart"
        );
        sleep(Duration::from_millis(50));
    }
    stack.ctl_json(&["disarm", "--pin", "2468"])?;
    Ok(())
}

#[test]
fn clients_without_a_paired_certificate_are_refused() -> Result<()> {
    let (stack, _hub, _sensord) = stack()?;
    // No credentials at all.
    let empty = stack.root.path().join("nobody-credentials");
    let (code, _, stderr) = stack.ctl(&[
        "--credentials",
        empty.to_str().unwrap_or_default(),
        "status",
    ])?;
    ensure!(code == 4, "exit {code}: {stderr}");
    ensure!(stderr.contains("not paired"), "{stderr}");

    // A TLS client that trusts the hub but shows no certificate.
    let creds = stack.root.path().join("credentials");
    let ca = std::fs::read_to_string(creds.join("ca.pem"))?;
    let hub = std::fs::read_to_string(creds.join("hub"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let status = runtime.block_on(async {
        let channel = vigilctl::remote::connect_anonymous(&ca, hub.trim()).await?;
        let mut client = vigil_proto::v1::alarm_service_client::AlarmServiceClient::new(channel);
        anyhow::Ok(
            client
                .get_status(vigil_proto::v1::GetStatusRequest {})
                .await
                .expect_err("refused"),
        )
    })?;
    ensure!(status.code() == tonic::Code::Unauthenticated, "{status:?}");
    ensure!(status.message().contains("pair"), "{status:?}");

    // A revoked client is refused too.
    let admin = stack.root.path().join("admin-credentials");
    let admin_dir = admin.to_str().unwrap_or_default();
    let (code, _, stderr) = stack.ctl(&[
        "--credentials",
        admin_dir,
        "pair",
        "--here",
        "admin",
        "--role",
        "admin",
    ])?;
    ensure!(code == 0, "{stderr}");
    let (code, _, stderr) = stack.ctl(&["--credentials", admin_dir, "revoke", "e2e"])?;
    ensure!(code == 0, "{stderr}");
    let (code, _, stderr) = stack.ctl(&["status"])?;
    ensure!(code == 4, "revoked client: exit {code}: {stderr}");

    // A guest may look but not disarm.
    let guest = stack.root.path().join("guest-credentials");
    let guest_dir = guest.to_str().unwrap_or_default();
    stack.ctl(&[
        "--credentials",
        guest_dir,
        "pair",
        "--here",
        "guest",
        "--role",
        "guest",
    ])?;
    let (code, _, _) = stack.ctl(&["--credentials", guest_dir, "status"])?;
    ensure!(code == 0);
    let (code, _, stderr) = stack.ctl(&["--credentials", guest_dir, "disarm", "--pin", "2468"])?;
    ensure!(
        code == 5 && stderr.contains("guest"),
        "exit {code}: {stderr}"
    );
    Ok(())
}

#[test]
fn pairing_with_a_token_checks_the_hub_fingerprint() -> Result<()> {
    let (stack, _hub, _sensord) = stack()?;
    let made = stack.ctl_json(&["pair", "--role", "user", "--address", "127.0.0.1:1"])?;
    let token = made["token"].as_str().unwrap_or_default().to_owned();
    let code = made["code"].as_str().unwrap_or_default().to_owned();
    let fingerprint = made["ca_sha256"].as_str().unwrap_or_default().to_owned();
    let hub = std::fs::read_to_string(stack.root.path().join("credentials/hub"))?;
    let hub = hub.trim();
    ensure!(
        token.contains(&code) && token.contains(&fingerprint),
        "{made}"
    );

    // A token whose fingerprint is not this hub's CA is refused before the
    // code is sent.
    let forged = format!("vigil-pair:1:{hub}:{code}:{}", "0".repeat(64));
    let phone = stack.root.path().join("phone");
    let phone = phone.to_str().unwrap_or_default();
    let (exit, _, stderr) = stack.ctl(&[
        "--credentials",
        phone,
        "pair",
        "--name",
        "phone",
        "--token",
        &forged,
    ])?;
    ensure!(exit != 0, "a forged fingerprint paired");
    ensure!(
        stderr.contains("fingerprint") || stderr.contains("securely"),
        "{stderr}"
    );

    // The real token (with the right address) pairs, once.
    let real = format!("vigil-pair:1:{hub}:{code}:{fingerprint}");
    let (exit, _, stderr) = stack.ctl(&[
        "--credentials",
        phone,
        "pair",
        "--name",
        "phone",
        "--token",
        &real,
    ])?;
    ensure!(exit == 0, "{stderr}");
    let (exit, _, _) = stack.ctl(&["--credentials", phone, "status"])?;
    ensure!(exit == 0);
    let again = stack.root.path().join("phone2");
    let again = again.to_str().unwrap_or_default();
    let (exit, _, stderr) = stack.ctl(&[
        "--credentials",
        again,
        "pair",
        "--name",
        "phone2",
        "--token",
        &real,
    ])?;
    ensure!(
        exit == 5 && stderr.contains("unknown, used or expired"),
        "exit {exit}: {stderr}"
    );
    Ok(())
}

#[test]
fn the_control_fifo_obeys_and_survives_garbage() -> Result<()> {
    let (stack, hub, _sensord) = stack()?;
    let fifo = stack.runtime_dir().join("control");
    let cursor = hub.log_len()?;
    let write = |text: &[u8]| -> Result<()> {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo)?;
        f.write_all(text)?;
        Ok(())
    };
    // Garbage, an oversized line, a line cut short by a writer that went
    // away: each is logged and ignored.
    write(b"make coffee\n")?;
    write(&[b'x'; 600])?;
    write(b"\n")?;
    write(b"arm aw")?; // the writer closes mid-line
    hub.wait_log(cursor, "the partial line dropped", |l| {
        message(l).contains("dropped a partial line")
    })?;
    write(b"arm away\n")?;
    stack.wait_alarm("armed by the FIFO", |s| s["mode"] == "away")?;
    write(b"Disarm 2468\n")?; // misspelt: refused, and its PIN not logged
    write(b"disarm 2468\n")?;
    stack.wait_alarm("disarmed by the FIFO", |s| s["mode"] == "disarmed")?;
    let lines = hub.log_lines()?;
    ensure!(
        lines
            .iter()
            .any(|l| message(l).contains("ignored \"make (+1 words)\"")),
        "garbage not logged"
    );
    ensure!(
        !lines.iter().any(|l| l.to_string().contains("2468")),
        "a PIN reached the log"
    );
    // Attributed to the FIFO in the event stream.
    let (_, stdout, _) = stack.ctl(&["events", "--after", "0"])?;
    ensure!(stdout.contains("arming away by fifo"), "{stdout}");
    Ok(())
}

#[test]
fn arming_with_a_duress_pin_arms_and_raises_the_silent_alert() -> Result<()> {
    let config = format!("{TEST_SENSORS}{TEST_ALARM}\n[alarm]\nrequire_pin_to_arm = true\n");
    let stack = Stack::new(&config, RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let _sensord = stack.start("vigil-sensord")?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    stack.pair_here("user")?;
    let (code, _, stderr) = stack.ctl(&["arm", "away"])?;
    ensure!(
        code == 5 && stderr.contains("PIN"),
        "arming without a PIN: {code} {stderr}"
    );
    let armed = stack.ctl_json(&["arm", "away", "--pin", "1357"])?;
    ensure!(armed["status"]["state"] == "arming", "{armed}");
    hub.wait_log(0, "the silent alert", |l| {
        message(l).starts_with("DURESS code used: armed away")
    })?;
    ensure!(stack.logged_kinds_in("events-private")? == ["duress"]);
    Ok(())
}

#[test]
fn a_state_that_cannot_be_saved_is_a_visible_fault_and_the_alarm_goes_on() -> Result<()> {
    let (stack, _hub, _sensord) = stack()?;
    // Something in the way of the save: a directory where the spare the
    // save writes into should be (a full disk no longer is: the state's
    // space is reserved, see tests/tests/faults.rs).
    let blocker = stack.root.path().join("state/alarm-state.json.spare");
    std::fs::remove_file(&blocker)?;
    std::fs::create_dir_all(&blocker)?;
    let armed = stack.ctl_json(&["arm", "away"])?;
    ensure!(
        armed["status"]["state"] == "arming",
        "the alarm still arms: {armed}"
    );
    let faults = armed["status"]["faults"].to_string();
    ensure!(faults.contains("state not saved"), "{armed}");
    // Once saving works again, the fault clears.
    std::fs::remove_dir(&blocker)?;
    let disarmed = stack.ctl_json(&["disarm", "--pin", "2468"])?;
    ensure!(
        disarmed["status"]["faults"] == serde_json::json!([]),
        "{disarmed}"
    );
    Ok(())
}

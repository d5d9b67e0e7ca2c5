//! Issue 14, findings 8 to 10: the local IPC boundaries (the alert queue,
//! the sensor table, the control FIFO) against another local user and
//! against misbehaving processes of the services' own user, across the
//! real processes.

use std::io::Write;

use anyhow::{Context, Result, ensure};
use vigil_e2e::{RunAs, Service, Stack, TEST_ALARM, TEST_SENSORS, message};

fn stack() -> Result<(Stack, Service, Service)> {
    vigil_e2e::alarm_stack("user")
}

/// A field of /proc/<pid>/status, in kB.
fn proc_status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .context("no value")?
        .parse()?)
}

// ---- finding 10: the control FIFO ----

#[test]
fn a_400_mib_line_on_the_control_fifo_is_discarded_in_bounded_memory() -> Result<()> {
    let (stack, hub, _sensord) = stack()?;
    let fifo = stack.runtime_dir().join("control");
    let before = proc_status_kb(hub.pid(), "VmHWM:")?;
    {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fifo)?;
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..400 {
            f.write_all(&chunk)?;
        }
        f.write_all(b"\n")?;
    }
    // The FIFO still obeys after it.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)?
        .write_all(b"arm away\n")?;
    stack.wait_alarm("armed by the FIFO", |s| s["mode"] == "away")?;
    let after = proc_status_kb(hub.pid(), "VmHWM:")?;
    // Before the fix the hub held the whole line: +416 MiB. A bound far
    // below the line and far above any buffer the reader needs.
    ensure!(
        after < before + 64 * 1024,
        "the hub's peak RSS grew from {before} kB to {after} kB for a 400 MiB line"
    );
    ensure!(
        hub.log_lines()?
            .iter()
            .any(|l| message(l).contains("ignored a line longer than")),
        "the long line was not reported"
    );
    Ok(())
}

#[test]
fn a_half_line_held_on_the_control_fifo_never_joins_another_writers_command() -> Result<()> {
    let (stack, hub, _sensord) = stack()?;
    let fifo = stack.runtime_dir().join("control");
    let cursor = hub.log_len()?;
    // One writer starts a disarm and holds the FIFO open mid-line.
    let mut holder = std::fs::OpenOptions::new().write(true).open(&fifo)?;
    holder.write_all(b"disarm 24")?;
    hub.wait_log(cursor, "the half line dropped", |l| {
        message(l).contains("dropped a partial line")
    })?;
    // Another script's command, written whole, runs.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)?
        .write_all(b"arm away\n")?;
    stack.wait_alarm("armed by the second writer", |s| s["mode"] == "away")?;
    // The first writer finishes its line: "68" alone is garbage, so the
    // half-written "disarm 2468" never runs.
    holder.write_all(b"68\n")?;
    drop(holder);
    hub.wait_log(cursor, "the rest of the half line ignored", |l| {
        message(l).contains("ignored \"68\"")
    })?;
    let status = stack.ctl_json(&["status"])?;
    ensure!(status["mode"] == "away", "the half line ran: {status}");
    Ok(())
}

// ---- finding 8: the alert queue ----

/// A second local user, made for the test (needs root; CI runs as root).
fn other_user() -> Result<nix::unistd::User> {
    const NAME: &str = "vigil-e2e-other";
    if let Some(user) = nix::unistd::User::from_name(NAME)? {
        return Ok(user);
    }
    let out = std::process::Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            NAME,
        ])
        .output()?;
    // A parallel test may have made it first.
    if let Some(user) = nix::unistd::User::from_name(NAME)? {
        return Ok(user);
    }
    anyhow::bail!(
        "useradd {NAME} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Makes queue `name` as `owner` would (depth 8 of 2048 bytes, the
/// stack's attributes), with `mode`, holding `forged` alerts.
fn plant_queue(name: &str, owner: &nix::unistd::User, mode: u32, forged: &[&str]) -> Result<()> {
    use nix::mqueue::{MQ_OFlag, MqAttr, mq_open, mq_send};
    use nix::sys::stat::Mode;
    use std::os::fd::AsFd;
    let attr = MqAttr::new(0, 8, 2048, 0);
    let mqd = mq_open(
        name,
        MQ_OFlag::O_CREAT | MQ_OFlag::O_EXCL | MQ_OFlag::O_WRONLY,
        Mode::from_bits_truncate(0o600),
        Some(&attr),
    )?;
    for alert in forged {
        mq_send(&mqd, alert.as_bytes(), 30)?;
    }
    // What the other user's own mq_open would have left: its owner, its mode.
    nix::unistd::fchown(mqd.as_fd(), Some(owner.uid), Some(owner.gid))?;
    nix::sys::stat::fchmod(mqd.as_fd(), Mode::from_bits_truncate(mode))?;
    Ok(())
}

fn forged_alarm(id: &str) -> String {
    format!(
        "{{\"id\":\"{id}\",\"priority\":\"alarm\",\"kind\":\"panic\",\"title\":\"FORGED\",\
         \"message\":\"FORGED\",\"unix_ms\":1}}"
    )
}

#[test]
fn another_users_alert_queue_is_refused_by_name_with_the_fix() -> Result<()> {
    ensure!(
        nix::unistd::geteuid().is_root(),
        "this test makes a second local user: run it as root (CI does)"
    );
    let other = other_user()?;
    for mode in [0o666, 0o600] {
        let stack = Stack::new(
            &format!("{TEST_SENSORS}{TEST_ALARM}"),
            RunAs::unprivileged()?,
        )?;
        let queue = stack.alert_queue();
        plant_queue(&queue, &other, mode, &[&forged_alarm("forged-1")])?;
        // Before the fix the hub ran on it: then it does not end here.
        let mut refused = stack.start("vigil-hub")?;
        let status = refused.wait_exit()?;
        let stderr = std::fs::read_to_string(&refused.log)?;
        ensure!(
            !status.success(),
            "the hub accepted another user's queue (mode {mode:o}): {stderr}"
        );
        ensure!(
            stderr.contains(&format!("alert queue {queue}"))
                && stderr.contains(&format!("rm /dev/mqueue{queue}")),
            "mode {mode:o}: the refusal does not name the queue and the fix: {stderr}"
        );
        // Whose it is, when the hub could open it to see (a 0600 queue of
        // another user cannot even be opened without /dev/mqueue mounted).
        if mode == 0o666 {
            ensure!(
                stderr.contains(&format!("uid {} ({})", other.uid, other.name)),
                "the refusal does not name the owner: {stderr}"
            );
        }
        // The fix: remove it; the hub makes its own and runs.
        nix::mqueue::mq_unlink(queue.as_str())?;
        let hub = stack.start("vigil-hub")?;
        let _sensord = stack.start("vigil-sensord")?;
        hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    }
    Ok(())
}

/// A hook that appends what it reads to `file`.
fn recorder(file: &std::path::Path) -> String {
    format!(
        "[[hooks]]\nname = \"recorder\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"cat >> {}\"]\n",
        file.display()
    )
}

fn hook_lines(file: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_hook(
    file: &std::path::Path,
    what: &str,
    want: impl Fn(&[serde_json::Value]) -> bool,
) -> Result<Vec<serde_json::Value>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let got = hook_lines(file);
        if want(&got) {
            return Ok(got);
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!("{what} never reached the hook; it has: {got:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The ids an attacker who saw alert id `seen` would post in advance to
/// catch the next ones: with `<boot ms>-<n>` ids, the next numbers; with
/// random ids, its best guesses are as good as any.
fn predicted_ids(seen: &str) -> Vec<String> {
    match seen.rsplit_once('-') {
        Some((boot, n)) if n.parse::<u64>().is_ok() => {
            let n: u64 = n.parse().unwrap_or(0);
            (1..=4).map(|k| format!("{boot}-{}", n + k)).collect()
        }
        _ => {
            let n = u128::from_str_radix(seen, 16).unwrap_or(0);
            (1..=4)
                .map(|k| format!("{:032x}", n.wrapping_add(k)))
                .collect()
        }
    }
}

#[test]
fn alert_ids_posted_in_advance_do_not_make_a_real_alarm_vanish() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hook_file = dir.path().join("hook.jsonl");
    let stack = Stack::new(
        &format!("{TEST_SENSORS}{TEST_ALARM}{}", recorder(&hook_file)),
        RunAs::Me,
    )?;
    let hub = stack.start("vigil-hub")?;
    let _sensord = stack.start("vigil-sensord")?;
    let _alertd = stack.start("vigil-alertd")?;
    hub.wait_log(0, "alertd joining", |l| {
        message(l) == "service joined" && l["fields"]["role"] == "alertd"
    })?;
    stack.pair_here("user")?;
    // A first alarm and its disarm, as a hook (or anyone who sees one
    // alert) sees them.
    stack.ctl_json(&["panic"])?;
    stack.ctl_json(&["disarm", "--pin", "2468"])?;
    let got = wait_hook(&hook_file, "the first panic and its disarm", |l| {
        l.iter().any(|a| a["kind"] == "triggered") && l.iter().any(|a| a["kind"] == "disarmed")
    })?;
    ensure!(
        got.iter().all(|a| a.get("delivery_token").is_none()),
        "a hook saw a delivery token: {got:?}"
    );
    let seen = got
        .last()
        .and_then(|a| a["id"].as_str())
        .context("no id")?
        .to_owned();
    // A process of the services' user posts alerts under the ids it
    // expects the next alarms to have.
    let forged = predicted_ids(&seen);
    {
        use nix::mqueue::{MQ_OFlag, mq_open, mq_send};
        let mqd = mq_open(
            stack.alert_queue().as_str(),
            MQ_OFlag::O_WRONLY,
            nix::sys::stat::Mode::empty(),
            None,
        )?;
        for id in &forged {
            mq_send(&mqd, forged_alarm(id).as_bytes(), 30)?;
        }
    }
    wait_hook(&hook_file, "the forged alerts", |l| {
        l.iter().filter(|a| a["title"] == "FORGED").count() == forged.len()
    })?;
    // The next real alarm still reaches the hook.
    stack.ctl_json(&["panic"])?;
    wait_hook(&hook_file, "the second, real panic alarm", |l| {
        l.iter()
            .filter(|a| a["kind"] == "triggered" && a["title"] != "FORGED")
            .count()
            == 2
    })?;
    Ok(())
}

/// The ids of the alerts the hub's journal holds as not yet delivered.
fn journaled_ids(stack: &Stack) -> Result<Vec<String>> {
    let path = stack.state_dir().join("alerts-pending.json");
    let alerts: Vec<serde_json::Value> = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    Ok(alerts
        .iter()
        .filter_map(|a| a["id"].as_str().map(str::to_owned))
        .collect())
}

/// Finding 8's last part: any process of the services' user could report
/// any alert as delivered.
#[test]
fn a_forged_delivery_report_leaves_the_alarm_undelivered() -> Result<()> {
    use vigil_bootstrap::{ServiceMessage, ServiceRole};
    // No alertd yet: the panic's alert waits in the queue and the journal.
    let (stack, hub, _sensord) = stack()?;
    stack.ctl_json(&["panic"])?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let id = loop {
        if let Some(id) = journaled_ids(&stack)?.into_iter().next() {
            break id;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "the panic's alert never reached the journal"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    // A process of the services' user that joins as a reader, then one
    // that joins as alertd without having read the queue, each report the
    // alarm as delivered; the hub says why it ignores each.
    let hub_sock = stack.runtime_dir().join("hub.sock");
    let mut forgers = Vec::new();
    for (role, ignored) in [
        (
            ServiceRole::Reader,
            "ignored a delivery report from a session that is not alertd",
        ),
        (
            ServiceRole::Alertd,
            "ignored a delivery report without the alert's delivery token",
        ),
    ] {
        let session = vigil_bootstrap::connect(&hub_sock, role, std::time::Duration::from_secs(5))?;
        session.to_hub.send(ServiceMessage::AlertDelivered {
            id: id.clone(),
            token: "0".repeat(32),
        })?;
        hub.wait_log(0, ignored, |l| message(l).contains(ignored))?;
        forgers.push(session);
    }
    ensure!(
        journaled_ids(&stack)?.contains(&id),
        "a forged report cleared alert {id} from the journal"
    );
    drop(forgers);
    // The real alertd reads it from the queue and reports it with its
    // token: only then is it delivered.
    let _alertd = stack.start("vigil-alertd")?;
    loop {
        if !journaled_ids(&stack)?.contains(&id) {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline + std::time::Duration::from_secs(10),
            "alertd's own report never cleared alert {id}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Ok(())
}

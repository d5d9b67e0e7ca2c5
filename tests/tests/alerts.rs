//! Alerts across real processes: hub -> POSIX message queue -> alertd ->
//! hook programs (pipes) and a webhook (HTTP on loopback).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use vigil_e2e::{HttpRequest, HttpSink, RunAs, Service, Stack, TEST_ALARM, TEST_SENSORS, message};

/// A hook that appends what it reads to `file`.
fn recorder(name: &str, file: &Path) -> String {
    format!(
        "[[hooks]]\nname = \"{name}\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"cat >> {}\"]\n",
        file.display()
    )
}

/// A stack whose one hook appends every alert to the returned file (in a
/// directory that lives as long as the returned guard).
fn recorded_stack() -> Result<(tempfile::TempDir, PathBuf, Stack)> {
    let dir = tempfile::tempdir()?;
    let hook_file = dir.path().join("hook.jsonl");
    let config = format!(
        "{TEST_SENSORS}{TEST_ALARM}{}",
        recorder("recorder", &hook_file)
    );
    let stack = Stack::new(&config, RunAs::Me)?;
    Ok((dir, hook_file, stack))
}

fn lines(file: &Path) -> Vec<Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn wait_lines(file: &Path, what: &str, want: impl Fn(&[Value]) -> bool) -> Result<Vec<Value>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = lines(file);
        if want(&got) {
            return Ok(got);
        }
        if Instant::now() > deadline {
            bail!("{what} never arrived; the hook has: {got:?}");
        }
        sleep(Duration::from_millis(20));
    }
}

fn start_all(stack: &Stack) -> Result<(Service, Service, Service)> {
    start_all_with(stack, &[])
}

/// [`start_all`], the hub with `hub_env` in its environment.
fn start_all_with(stack: &Stack, hub_env: &[(&str, &str)]) -> Result<(Service, Service, Service)> {
    let hub = stack.start_with_env("vigil-hub", hub_env)?;
    let sensord = stack.start("vigil-sensord")?;
    let alertd = stack.start("vigil-alertd")?;
    hub.wait_log(0, "sensord joining", |l| {
        message(l) == "service joined" && l["fields"]["role"] == "sensord"
    })?;
    hub.wait_log(0, "alertd joining", |l| {
        message(l) == "service joined" && l["fields"]["role"] == "alertd"
    })?;
    stack.pair_here("user")?;
    Ok((hub, sensord, alertd))
}

#[test]
fn an_alarm_reaches_a_hook_on_its_stdin_and_the_webhook() -> Result<()> {
    let sink = HttpSink::start()?;
    let port = sink.port;
    let dir = tempfile::tempdir()?;
    let hook_file = dir.path().join("hook.jsonl");
    let config = format!(
        "{TEST_SENSORS}{TEST_ALARM}{}\n[webhook]\nurl = \"http://127.0.0.1:{port}/alerts\"\n",
        recorder("recorder", &hook_file)
    );
    let stack = Stack::new(&config, RunAs::Me)?;
    let (_hub, _sensord, _alertd) = start_all(&stack)?;

    stack.ctl_json(&["arm", "away"])?;
    stack.wait_alarm("armed", |s| s["state"] == "idle")?;
    stack.sim("set front-door open")?;
    let got = wait_lines(&hook_file, "the alarm alert", |l| {
        l.iter().any(|a| a["kind"] == "triggered")
    })?;
    let alarm = got
        .iter()
        .find(|a| a["kind"] == "triggered")
        .context("alarm")?;
    ensure!(alarm["priority"] == "alarm", "{alarm}");
    ensure!(alarm["sensor"] == "front-door", "{alarm}");
    ensure!(
        alarm["id"].as_str().is_some_and(|i| !i.is_empty()),
        "{alarm}"
    );
    // The entry delay came first, as an info alert.
    ensure!(
        got.iter()
            .any(|a| a["kind"] == "entry_delay" && a["priority"] == "info"),
        "{got:?}"
    );

    // The webhook got the same alert, id in a header.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let HttpRequest { head, body, .. } = sink
            .requests
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .context("no webhook request for the alarm")?;
        let posted: Value = serde_json::from_slice(&body)?;
        if posted["kind"] == "triggered" {
            ensure!(posted["id"] == alarm["id"], "{posted} vs {alarm}");
            ensure!(head.starts_with("POST /alerts "), "{head}");
            ensure!(
                head.to_ascii_lowercase().contains("x-vigil-alert-id"),
                "{head}"
            );
            break;
        }
    }
    stack.ctl_json(&["disarm", "--pin", "2468"])?;
    Ok(())
}

#[test]
fn alertd_killed_while_alerts_are_posted_loses_no_alarm() -> Result<()> {
    let (_dir, hook_file, stack) = recorded_stack()?;
    let (hub, _sensord, mut alertd) = start_all(&stack)?;
    let cycles = 8;
    for i in 0..cycles {
        if i == 2 || i == 5 {
            alertd.kill9()?;
        }
        stack.ctl_json(&["panic"])?;
        stack.ctl_json(&["disarm", "--pin", "2468"])?;
        if i == 3 || i == 6 {
            alertd = stack.start("vigil-alertd")?;
        }
    }
    let _ = &hub;
    // Every alarm the hub raised reaches the hook at least once.
    let got = wait_lines(&hook_file, "every alarm", |l| {
        l.iter()
            .filter(|a| a["kind"] == "triggered")
            .map(|a| a["id"].to_string())
            .collect::<BTreeSet<_>>()
            .len()
            >= cycles
    })?;
    // A repeat carries the same id and the same content.
    let mut by_id: BTreeMap<String, &Value> = BTreeMap::new();
    for a in &got {
        let id = a["id"].as_str().unwrap_or_default().to_owned();
        if let Some(first) = by_id.get(&id) {
            ensure!(*first == a, "a repeat differs: {first} vs {a}");
        }
        by_id.insert(id, a);
    }
    let triggered = by_id.values().filter(|a| a["kind"] == "triggered").count();
    ensure!(
        triggered == cycles,
        "{triggered} alarms for {cycles} panics: {got:?}"
    );
    Ok(())
}

/// The hub posts an alarm's alert before it waits for any disk: killed
/// right after the post (`VIGIL_FAILPOINT=alert-posted`), before the alert
/// is journaled or the alarm saved, the alert is already in the kernel's
/// queue, and alertd delivers it.
#[test]
fn a_hub_killed_right_after_posting_an_alarm_still_delivers_its_alert() -> Result<()> {
    let (_dir, hook_file, stack) = recorded_stack()?;
    let (mut hub, _sensord, _alertd) =
        start_all_with(&stack, &[("VIGIL_FAILPOINT", "alert-posted")])?;
    // A 24-hour zone: the tamper triggers at once, and nothing was posted
    // or saved since the hub started.
    stack.sim("set siren-box-tamper open")?;
    let ended = hub.wait_exit()?;
    ensure!(!ended.success(), "the failpoint stops the hub: {ended}");
    let saved =
        std::fs::read_to_string(stack.state_dir().join("alarm-state.json")).unwrap_or_default();
    ensure!(
        !saved.contains("\"triggered\""),
        "saved before the post: {saved}"
    );
    wait_lines(&hook_file, "the alarm from the dead hub", |l| {
        l.iter().any(|a| a["kind"] == "triggered")
    })?;
    Ok(())
}

/// Killed after the alarm is saved (`VIGIL_FAILPOINT=state-saved`): the
/// alert was posted and journaled first, so the saved alarm has its alert;
/// the next hub posts the journaled alert again with the same id, and
/// alertd, which delivered it once, does not deliver it twice.
#[test]
fn a_hub_killed_right_after_saving_an_alarm_delivers_its_alert_once() -> Result<()> {
    let (_dir, hook_file, stack) = recorded_stack()?;
    let (mut hub, _sensord, _alertd) =
        start_all_with(&stack, &[("VIGIL_FAILPOINT", "state-saved")])?;
    stack.sim("set siren-box-tamper open")?;
    let ended = hub.wait_exit()?;
    ensure!(!ended.success(), "the failpoint stops the hub: {ended}");
    let saved = std::fs::read_to_string(stack.state_dir().join("alarm-state.json"))?;
    ensure!(saved.contains("\"triggered\""), "{saved}");
    let journal: Vec<Value> = serde_json::from_slice(&std::fs::read(
        stack.state_dir().join("alerts-pending.json"),
    )?)?;
    ensure!(
        journal.iter().any(|a| a["kind"] == "triggered"),
        "the saved alarm's alert is not journaled: {journal:?}"
    );

    let _hub = stack.start("vigil-hub")?;
    stack.wait_alarm("triggered after the restart", |s| s["state"] == "triggered")?;
    let got = wait_lines(&hook_file, "the alarm after the restart", |l| {
        l.iter().any(|a| a["kind"] == "triggered")
    })?;
    let alarms: Vec<&Value> = got.iter().filter(|a| a["kind"] == "triggered").collect();
    let ids: BTreeSet<String> = alarms.iter().map(|a| a["id"].to_string()).collect();
    ensure!(
        ids.len() == alarms.len(),
        "an alarm delivered twice: {alarms:?}"
    );
    Ok(())
}

#[test]
fn a_hung_hook_and_a_crashing_hook_do_not_delay_the_third() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let hook_file = dir.path().join("hook.jsonl");
    let config = format!(
        "{TEST_SENSORS}{TEST_ALARM}\
         [[hooks]]\nname = \"sleeper\"\ncommand = \"/bin/sleep\"\nargs = [\"100000\"]\n\
         [[hooks]]\nname = \"crasher\"\ncommand = \"/bin/sh\"\nargs = [\"-c\", \"exit 3\"]\n\
         {}\n[alerts]\nqueue = \"/{}\"\ndepth = 8\nmsg_size = 2048\nhook_timeout_ms = 500\n",
        recorder("recorder", &hook_file),
        dir.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    );
    let stack = Stack::new(&config, RunAs::Me)?;
    let (_hub, _sensord, alertd) = start_all(&stack)?;
    for i in 0..5 {
        let before = Instant::now();
        stack.ctl_json(&["panic"])?;
        wait_lines(&hook_file, "the alarm", |l| {
            l.iter().filter(|a| a["kind"] == "triggered").count() > i
        })?;
        let took = before.elapsed();
        ensure!(
            took < Duration::from_secs(2),
            "alarm {i} took {took:?} to reach the recorder"
        );
        stack.ctl_json(&["disarm", "--pin", "2468"])?;
    }
    // The crasher was restarted (with backoff), its exits logged.
    let restarts = alertd
        .log_lines()?
        .iter()
        .filter(|l| {
            message(l).starts_with("restarting the hook") && l["fields"]["hook"] == "crasher"
        })
        .count();
    ensure!(
        restarts >= 2,
        "the crashing hook was restarted {restarts} times"
    );
    let _ = std::fs::remove_file(format!(
        "/dev/mqueue/{}",
        dir.path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    Ok(())
}

#[test]
fn too_small_a_msg_max_for_an_unprivileged_hub_says_what_to_set() -> Result<()> {
    let msg_max: i64 = std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")?
        .trim()
        .parse()?;
    let stack = Stack::new(
        &format!(
            "{TEST_SENSORS}\n[alerts]\nqueue = \"/vigil-e2e-limits-{}\"\ndepth = 256\n",
            std::process::id()
        ),
        RunAs::unprivileged()?,
    )?;
    let out = stack.run("vigil-hub", &[])?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if msg_max >= 256 {
        // This machine's limit is high enough: nothing to show.
        return Ok(());
    }
    ensure!(out.status.code() == Some(1), "{:?}: {stderr}", out.status);
    ensure!(
        stderr.contains(&format!("fs.mqueue.msg_max is {msg_max}"))
            && stderr.contains("sysctl -w fs.mqueue.msg_max=256"),
        "{stderr}"
    );
    Ok(())
}

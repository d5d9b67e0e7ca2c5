//! "A command is persisted before its reply", for every command, across a
//! real hub killed at the exact moments that matter:
//!
//! - `VIGIL_FAILPOINT=answered`: the hub dies 200 ms after it answered
//!   (the answer has reached vigilctl). The restarted hub must be in the
//!   state the client was told.
//! - `VIGIL_FAILPOINT=state-saved`: the hub dies after saving, before it
//!   answers. The client was told nothing (an error); the restarted hub has
//!   the command's result, so a retry finds it done.
//!
//! Each case first brings the stack to its starting state with a hub that
//! has no failpoint, then restarts the hub with one.

use anyhow::{Result, ensure};
use serde_json::Value;
use vigil_e2e::{Service, Stack, message};

/// A hub, sensord and a paired vigilctl (role user).
fn stack() -> Result<(Stack, Service, Service)> {
    vigil_e2e::alarm_stack("user")
}

/// Replaces the running hub with one whose `VIGIL_FAILPOINT` is `point`.
fn with_failpoint(stack: &Stack, hub: &mut Service, point: &str) -> Result<()> {
    ensure!(hub.terminate()? == Some(0), "the hub stops cleanly");
    *hub = stack.start_with_env("vigil-hub", &[("VIGIL_FAILPOINT", point)])?;
    hub.wait_log(0, "sensord rejoining", |l| message(l) == "service joined")?;
    Ok(())
}

/// Waits for the failpoint to stop the hub, then starts a plain one.
fn restart_after_failpoint(stack: &Stack, hub: &mut Service) -> Result<()> {
    let ended = hub.wait_exit()?;
    ensure!(!ended.success(), "the failpoint stops the hub: {ended}");
    *hub = stack.start("vigil-hub")?;
    Ok(())
}

/// One command: how to bring the stack to where it starts, the vigilctl
/// arguments, and what the status must show once it is done.
struct Case {
    name: &'static str,
    before: &'static [&'static [&'static str]],
    command: &'static [&'static str],
    done: fn(&Value) -> bool,
    /// A command that must be refused as locked out (exit 6) after the
    /// restart, for what the status does not show.
    then_locked_out: Option<&'static [&'static str]>,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "arm",
            before: &[],
            command: &["arm", "away"],
            done: |s| s["mode"] == "away",
            then_locked_out: None,
        },
        Case {
            name: "disarm",
            before: &[&["arm", "away"]],
            command: &["disarm", "--pin", "2468"],
            done: |s| s["mode"] == "disarmed",
            then_locked_out: None,
        },
        Case {
            name: "duress disarm",
            before: &[&["arm", "away"]],
            command: &["disarm", "--pin", "1357"],
            done: |s| s["mode"] == "disarmed",
            then_locked_out: None,
        },
        Case {
            name: "panic",
            before: &[],
            command: &["panic"],
            done: |s| s["state"] == "triggered" && s["siren"] == true,
            then_locked_out: None,
        },
        Case {
            name: "bypass",
            before: &[],
            command: &["bypass", "back-door"],
            done: |s| s["bypassed"][0] == "back-door",
            then_locked_out: None,
        },
        Case {
            name: "the PIN that locks this client out",
            before: &[
                &["disarm", "--pin", "0000"],
                &["disarm", "--pin", "0000"],
                &["disarm", "--pin", "0000"],
                &["disarm", "--pin", "0000"],
            ],
            command: &["disarm", "--pin", "0000"],
            done: |_| true,
            then_locked_out: Some(&["disarm", "--pin", "2468"]),
        },
    ]
}

fn run_case(case: &Case, point: &str) -> Result<()> {
    let (stack, mut hub, _sensord) = stack()?;
    for args in case.before {
        stack.ctl(args)?;
    }
    with_failpoint(&stack, &mut hub, point)?;
    let (code, stdout, stderr) = stack.ctl(case.command)?;
    let told_done = match point {
        // The lockout is answered as a refusal (exit 6) and is still a
        // change of state the client was told about.
        "answered" => code == 0 || (case.then_locked_out.is_some() && code == 6),
        _ => false,
    };
    if point == "answered" {
        ensure!(
            told_done,
            "{}: the client was told: exit {code}, {stdout}{stderr}",
            case.name
        );
    } else {
        ensure!(
            code != 0,
            "{}: answered although the hub died before answering: {stdout}",
            case.name
        );
    }
    restart_after_failpoint(&stack, &mut hub)?;
    let status = stack.wait_alarm("the hub back", |_| true)?;
    ensure!(
        (case.done)(&status),
        "{} ({point}): after the restart the status is {status}",
        case.name
    );
    if let Some(args) = case.then_locked_out {
        let (code, _, stderr) = stack.ctl(args)?;
        ensure!(
            code == 6,
            "{} ({point}): after the restart {args:?} exits {code}: {stderr}",
            case.name
        );
    }
    Ok(())
}

#[test]
fn every_command_answered_is_what_a_restarted_hub_finds() -> Result<()> {
    for case in cases() {
        run_case(&case, "answered")?;
    }
    Ok(())
}

#[test]
fn every_command_saved_but_not_answered_is_done_after_a_restart() -> Result<()> {
    for case in cases() {
        run_case(&case, "state-saved")?;
    }
    Ok(())
}

//! Issue 14, findings 8 to 10: the local IPC boundaries (the alert queue,
//! the sensor table, the control FIFO) against another local user and
//! against misbehaving processes of the services' own user, across the
//! real processes.

use std::io::Write;

use anyhow::{Context, Result, ensure};
use vigil_e2e::{RunAs, Service, Stack, TEST_ALARM, TEST_SENSORS, message};

fn stack() -> Result<(Stack, Service, Service)> {
    let stack = Stack::new(&format!("{TEST_SENSORS}{TEST_ALARM}"), RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let sensord = stack.start("vigil-sensord")?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    stack.pair_here("user")?;
    Ok((stack, hub, sensord))
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

//! Issue 14, finding 9: the sensor table no longer trusts its writers. A
//! writer lock held by someone else delays a change but never loses it, a
//! slot left mid-write by a writer that died is not torn for good, and no
//! holder of the table can truncate it (which killed the hub with SIGBUS).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use vigil_bootstrap::ServiceRole;
use vigil_e2e::{RunAs, Service, Stack, TEST_SENSORS, field, message, sensor};
use vigil_ipc::table::{MEMFD_NAME, SensorTable};

fn joined(line: &Value) -> bool {
    message(line) == "service joined" && field(line, "role") == "sensord"
}

fn door_change(line: &Value, state: &str) -> bool {
    message(line) == "sensor changed"
        && field(line, "sensor") == "front-door"
        && field(line, "state") == state
}

/// A hub and sensord with the front door closed in the table.
fn running_stack() -> Result<(Stack, Service, Service, usize)> {
    let stack = Stack::new(TEST_SENSORS, RunAs::unprivileged()?)?;
    let hub = stack.start("vigil-hub")?;
    let sensord = stack.start("vigil-sensord")?;
    let (_, cursor) = hub.wait_log(0, "sensord joining", joined)?;
    stack.wait_status("the front door closed", |s| {
        sensor(s, "front-door")["state"] == "closed"
    })?;
    Ok((stack, hub, sensord, cursor))
}

/// Joins the hub as a reader, as vigilctl does, and maps its table: any
/// process of the services' user can, which is what the finding is about.
fn map_table(stack: &Stack) -> Result<(vigil_bootstrap::Session, SensorTable, usize)> {
    let session = vigil_bootstrap::connect(
        &stack.runtime_dir().join("hub.sock"),
        ServiceRole::Reader,
        Duration::from_secs(5),
    )?;
    let table = SensorTable::from_fd(session.table.try_clone()?)?;
    let slot = table
        .descriptors()?
        .iter()
        .position(|d| d.name == "front-door")
        .context("the table has no front-door slot")?;
    Ok((session, table, slot))
}

/// Another process holds the writer lock while the door opens: sensord
/// must keep the change and write it once the lock is free (before, it gave
/// up after 250 ms and the opening was lost for good).
#[test]
fn a_door_opening_behind_a_held_writer_lock_is_not_lost() -> Result<()> {
    let (stack, hub, sensord, cursor) = running_stack()?;
    let (_session, table, _) = map_table(&stack)?;

    let held = table.hold_writer_lock_for_test()?;
    stack.sim("set front-door open")?;
    sensord.wait_log(0, "the door opening", |l| message(l) == "front-door open")?;
    // sensord met the held lock (with the fix it says it keeps the change;
    // without it, it gave up on it): only then is the lock released. It
    // writes the table before it logs the change, so this line may come
    // first.
    let (line, after) =
        sensord.wait_log(0, "meeting the held lock", |l| message(l).contains("lock"))?;
    let status = stack.local_status()?;
    ensure!(
        sensor(&status, "front-door")["state"] == "closed",
        "nothing can be written while the lock is held: {status}"
    );
    drop(held);

    stack.wait_status("the front door open", |s| {
        sensor(s, "front-door")["state"] == "open"
    })?;
    hub.wait_log(cursor, "the door opening", |l| door_change(l, "open"))?;
    sensord.wait_log(after, "the held-back write landing", |l| {
        message(l).contains("wrote the held-back sensor changes")
    })?;
    ensure!(
        line["level"] == "WARN",
        "a held lock is a warning, not a lost change: {line}"
    );
    Ok(())
}

/// A writer died mid-write and left the door's slot odd: the next change
/// completes it, the hub and a third process see it, and it stays readable.
#[test]
fn a_slot_left_mid_write_is_not_torn_for_good() -> Result<()> {
    let (stack, hub, _sensord, cursor) = running_stack()?;
    let (_session, table, slot) = map_table(&stack)?;

    table.abandon_write_for_test(slot)?;
    ensure!(table.read_sensor(slot).is_err(), "the slot should be torn");

    stack.sim("set front-door open")?;
    let (_, cursor) = hub.wait_log(cursor, "the door opening", |l| door_change(l, "open"))?;
    stack.wait_status("the front door open", |s| {
        sensor(s, "front-door")["state"] == "open"
    })?;
    stack.sim("set front-door closed")?;
    hub.wait_log(cursor, "the door closing", |l| door_change(l, "closed"))?;
    stack.wait_status("the front door closed again", |s| {
        sensor(s, "front-door")["state"] == "closed"
    })?;
    Ok(())
}

/// The hub's table as `/proc/<hub>/fd/N`: the path any process of the
/// hub's user can reopen the memfd through.
fn hub_table_path(hub: &Service) -> Result<PathBuf> {
    let dir = PathBuf::from(format!("/proc/{}/fd", hub.pid()));
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        let Ok(target) = std::fs::read_link(&path) else {
            continue;
        };
        if target
            .to_string_lossy()
            .starts_with(&format!("/memfd:{MEMFD_NAME}"))
        {
            return Ok(path);
        }
    }
    anyhow::bail!(
        "the hub holds no memfd named {MEMFD_NAME} in {}",
        dir.display()
    )
}

/// The finding's attacker: a process of the services' user reopens the
/// hub's table through /proc and truncates it to 0 (before, the hub died of
/// SIGBUS at its next read of the table, with no log line). The memfd is
/// sealed against shrinking and growing: the truncation is refused with
/// EPERM, through /proc and through a reader's own descriptor, the hub
/// lives, and a door opening still reaches it.
#[test]
fn truncating_the_table_is_refused_and_the_hub_lives() -> Result<()> {
    let (stack, mut hub, _sensord, cursor) = running_stack()?;
    let path = hub_table_path(&hub)?;
    let size = std::fs::metadata(&path)?.len();
    ensure!(size > 0, "the table is empty before the attack");

    let mut attacker = Command::new("truncate");
    attacker.arg("--no-create").arg("--size=0").arg(&path);
    if let RunAs::User { uid, gid, .. } = &stack.run_as {
        attacker.uid(*uid).gid(*gid);
    }
    let out = attacker.output().context("running truncate")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && stderr.contains("Operation not permitted"),
        "truncate as the services' user should be refused with EPERM: {:?} {stderr}",
        out.status
    );

    // The descriptor every service gets from the hub is sealed too.
    let (session, _table, _) = map_table(&stack)?;
    let err = std::fs::File::from(session.table.try_clone()?)
        .set_len(0)
        .err()
        .context("a reader truncated the table")?;
    ensure!(
        err.raw_os_error() == Some(nix::errno::Errno::EPERM as i32),
        "ftruncate by a reader: {err}"
    );
    ensure!(
        std::fs::metadata(&path)?.len() == size,
        "the table changed size"
    );
    ensure!(
        hub.child.try_wait()?.is_none(),
        "the hub died after the truncation attempt"
    );

    stack.sim("set front-door open")?;
    hub.wait_log(cursor, "the door opening", |l| door_change(l, "open"))?;
    stack.wait_status("the front door open", |s| {
        sensor(s, "front-door")["state"] == "open"
    })?;
    ensure!(hub.child.try_wait()?.is_none(), "the hub died");
    Ok(())
}

//! The event log's damage across real processes (issue 14, findings 15 and
//! 16): a real hub's log is damaged on disk while the hub is stopped (a
//! flipped byte in a synced record of the newest segment, then of an older
//! one; a damaged header on the newest segment), and the hub starts again.
//! The hub starts and says what was lost (its log, the status's faults);
//! `vigilctl events --after N` shows the gap as an item naming the numbers;
//! reportd indexes past it, live and in a rebuild. The full disk (finding
//! 17) is in the fault suite (`faults.rs`), which mounts a small tmpfs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use vigil_e2e::{Service, Stack, json_lines, message, wait_until};

const GAP: &str = "log_gap";

/// A hub and sensord, and vigilctl paired (role user).
fn start() -> Result<(Stack, Service, Service)> {
    vigil_e2e::alarm_stack("user")
}

fn last_seq(stack: &Stack) -> Result<u64> {
    stack.ctl_json(&["status"])?["last_event_seq"]
        .as_u64()
        .context("no last_event_seq")
}

/// Opens and closes the back door until the hub has numbered `n` more
/// events; returns the last number.
fn events(stack: &Stack, n: u64) -> Result<u64> {
    let want = last_seq(stack)? + n;
    let mut open = true;
    while last_seq(stack)? < want {
        stack.sim(&format!(
            "set back-door {}",
            if open { "open" } else { "closed" }
        ))?;
        open = !open;
        std::thread::sleep(Duration::from_millis(30));
    }
    // Closed at the end, and every change on disk (the group commit).
    if !open {
        stack.sim("set back-door closed")?;
    }
    std::thread::sleep(Duration::from_millis(300));
    last_seq(stack)
}

/// A clean stop, as systemd would.
fn stop(service: &mut Service) -> Result<()> {
    ensure!(
        service.terminate()? == Some(0),
        "{} stops cleanly",
        service.name
    );
    Ok(())
}

fn segments(stack: &Stack) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(stack.state_dir().join("events"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "vlog"))
        .collect();
    files.sort();
    Ok(files)
}

/// Flips one bit of record `seq`'s payload, wherever it is.
fn flip_record(stack: &Stack, seq: u64) -> Result<PathBuf> {
    for path in segments(stack)? {
        let mut bytes = std::fs::read(&path)?;
        let mut at = vigil_eventlog::HEADER_LEN;
        while at + vigil_eventlog::RECORD_HEADER_LEN <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at..at + 4].try_into()?) as usize;
            if len < vigil_eventlog::RECORD_HEADER_LEN {
                break;
            }
            if u64::from_le_bytes(bytes[at + 8..at + 16].try_into()?) == seq {
                bytes[at + vigil_eventlog::RECORD_HEADER_LEN + 4] ^= 0x10;
                std::fs::write(&path, bytes)?;
                return Ok(path);
            }
            at += (len + 7) & !7;
        }
    }
    bail!("record {seq} is in no segment")
}

/// `vigilctl --json events --after N` (up to the newest event).
fn events_after(stack: &Stack, after: u64) -> Result<Vec<Value>> {
    let (code, out, err) = stack.ctl(&["--json", "events", "--after", &after.to_string()])?;
    ensure!(code == 0, "vigilctl events --after {after}: {code} {err}");
    Ok(json_lines(&out))
}

/// The numbers `events` holds, gaps as `(seq, true)`.
fn numbers(events: &[Value]) -> Vec<(u64, bool)> {
    events
        .iter()
        .map(|e| (e["seq"].as_u64().unwrap_or(0), e["kind"] == GAP))
        .collect()
}

fn expected(after: u64, last: u64, gaps: &[u64]) -> Vec<(u64, bool)> {
    (after + 1..=last).map(|s| (s, gaps.contains(&s))).collect()
}

/// Waits for the status's faults to hold a line with `text`.
fn wait_fault(stack: &Stack, text: &str) -> Result<Value> {
    let mut status = Value::Null;
    wait_until(
        &format!("the fault {text:?}"),
        Duration::from_secs(10),
        || {
            status = stack.ctl_json(&["status"])?;
            Ok(status["faults"].as_array().is_some_and(|f| {
                f.iter()
                    .any(|f| f.as_str().is_some_and(|f| f.contains(text)))
            }))
        },
    )?;
    Ok(status)
}

/// Waits for reportd's index to cover `last` (as the weekly report says).
fn wait_indexed(stack: &Stack, last: u64) -> Result<()> {
    wait_until("the index to catch up", Duration::from_secs(20), || {
        let (code, out, _) = stack.ctl(&["--json", "report", "--weekly"])?;
        Ok(code == 0
            && serde_json::from_str::<Value>(out.trim())?["indexed_through_seq"].as_u64()
                >= Some(last))
    })
}

/// `vigil-reportd --rebuild`: exits 0, through the newest event, and logs
/// every gap it stepped over.
fn rebuild(stack: &Stack, last: u64, gaps: &[u64]) -> Result<()> {
    let out = stack.run("vigil-reportd", &["--rebuild"])?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(out.status.success(), "rebuild: {stdout}{stderr}");
    ensure!(
        stdout.contains(&format!("through event {last}")),
        "the rebuild stops before {last}: {stdout}"
    );
    for seq in gaps {
        ensure!(
            stderr.contains(&format!("record {seq} of the event log is lost")),
            "the rebuild does not say record {seq} is lost: {stderr}"
        );
    }
    Ok(())
}

/// Finding 15: a flipped bit in a synced record, first of the newest
/// segment, then of an older one.
#[test]
fn a_damaged_record_is_a_gap_the_hub_reports_and_everyone_steps_over() -> Result<()> {
    let (stack, mut hub, _sensord) = start()?;
    let first = events(&stack, 40)?;
    ensure!(first >= 40, "{first} events");
    // Record 20, synced, in the newest (the only) segment.
    stop(&mut hub)?;
    let newest = flip_record(&stack, 20)?;
    ensure!(segments(&stack)? == std::slice::from_ref(&newest));
    let hub = stack.start("vigil-hub")?;
    hub.wait_log(0, "readiness", |l| message(l) == "hub ready")?;
    // It says what was lost, where: the recovery, then the whole-log check.
    let (line, _) = hub.wait_log(0, "the damage", |l| {
        message(l).starts_with("record 20 of the event log is lost")
    })?;
    ensure!(line["level"] == "ERROR", "{line}");
    ensure!(
        message(&line).contains("00000000000000000001.vlog"),
        "{line}"
    );
    hub.wait_log(0, "the check", |l| {
        message(l) == "event log checked" && l["fields"]["gaps"] == 1
    })?;
    wait_fault(
        &stack,
        "event log: record 20 lost to damage in 00000000000000000001.vlog",
    )?;
    // Nothing after it was lost: the hub numbers on after the last record.
    let status = stack.ctl_json(&["status"])?;
    ensure!(status["last_event_seq"].as_u64() >= Some(first), "{status}");
    hub.wait_log(0, "sensord rejoining", |l| message(l) == "service joined")?;

    // reportd, started now, indexes past the gap and logs it.
    let reportd = stack.start("vigil-reportd")?;
    let second = events(&stack, 10)?;
    wait_indexed(&stack, second)?;
    reportd.wait_log(0, "the gap", |l| {
        message(l).starts_with("record 20 of the event log is lost")
    })?;
    // The damaged segment is sealed: the new events are in a new one.
    ensure!(segments(&stack)?.len() == 2, "{:?}", segments(&stack)?);

    // A watcher replaying from 10 sees 11 to 19, the gap, and everything
    // after it.
    let replayed = events_after(&stack, 10)?;
    ensure!(
        numbers(&replayed) == expected(10, second, &[20]),
        "{replayed:#?}"
    );
    let gap = &replayed[9];
    ensure!(
        gap["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("record 20 of the event log is lost")),
        "{gap}"
    );

    // Now record 30, in what is an older segment.
    let mut hub = hub;
    stop(&mut hub)?;
    let older = flip_record(&stack, 30)?;
    ensure!(older == newest, "record 30 is in the older segment");
    let hub = stack.start("vigil-hub")?;
    hub.wait_log(0, "readiness", |l| message(l) == "hub ready")?;
    hub.wait_log(0, "the check", |l| {
        message(l) == "event log checked" && l["fields"]["gaps"] == 2
    })?;
    hub.wait_log(0, "the damage", |l| {
        message(l).starts_with("record 30 of the event log is lost")
    })?;
    let status = wait_fault(&stack, "event log: record 30 lost to damage")?;
    ensure!(
        status["faults"].to_string().contains("record 20 lost"),
        "{status}"
    );
    hub.wait_log(0, "sensord rejoining", |l| message(l) == "service joined")?;
    let third = events(&stack, 4)?;
    let replayed = events_after(&stack, 10)?;
    ensure!(
        numbers(&replayed) == expected(10, third, &[20, 30]),
        "{replayed:#?}"
    );
    // reportd had indexed 30 before it was damaged; a rebuild from the log
    // steps over both gaps and reaches the newest event.
    let mut reportd = reportd;
    wait_indexed(&stack, third)?;
    stop(&mut reportd)?;
    rebuild(&stack, third, &[20, 30])?;
    let _reportd = stack.start("vigil-reportd")?;
    let fourth = events(&stack, 2)?;
    wait_indexed(&stack, fourth)?;
    Ok(())
}

/// Finding 16: a damaged header on the newest segment. The hub starts, sets
/// the segment aside (kept for inspection) and says so; its records are a
/// gap for every reader; new events go on.
#[test]
fn a_damaged_header_on_the_newest_segment_is_set_aside_and_the_hub_starts() -> Result<()> {
    let (stack, mut hub, _sensord) = start()?;
    let before = events(&stack, 12)?;
    stop(&mut hub)?;
    let newest = segments(&stack)?.pop().context("a segment")?;
    let mut bytes = std::fs::read(&newest)?;
    bytes[41] ^= 0x01; // the header's checksum
    std::fs::write(&newest, bytes)?;

    let hub = stack.start("vigil-hub")?;
    hub.wait_log(0, "readiness", |l| message(l) == "hub ready")?;
    let (line, _) = hub.wait_log(0, "the segment set aside", |l| {
        message(l).starts_with("set aside the newest event-log segment")
    })?;
    let aside = Path::new(line["fields"]["moved_to"].as_str().context("moved_to")?).to_owned();
    ensure!(
        aside.exists() && !newest.exists(),
        "{} is kept, {} is gone",
        aside.display(),
        newest.display()
    );
    ensure!(
        message(&line).contains(&format!("its records 1 to {before} are no longer read")),
        "{line}"
    );
    wait_fault(
        &stack,
        &format!("event log: records 1 to {before} in 00000000000000000001.vlog.broken, set aside"),
    )?;
    hub.wait_log(0, "sensord rejoining", |l| message(l) == "service joined")?;
    let after = events(&stack, 3)?;
    ensure!(after > before, "numbering goes on: {after} after {before}");
    // Every reader meets the gap: a watcher...
    let replayed = events_after(&stack, 1)?;
    ensure!(
        numbers(&replayed).first() == Some(&(before, true)),
        "{replayed:#?}"
    );
    ensure!(
        replayed[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("set aside as") && m.contains(".vlog.broken")),
        "{}",
        replayed[0]
    );
    ensure!(
        numbers(&replayed[1..]) == expected(before, after, &[]),
        "{replayed:#?}"
    );
    // ...and reportd, which indexes past it.
    let reportd = stack.start("vigil-reportd")?;
    wait_indexed(&stack, after)?;
    reportd.wait_log(0, "the gap", |l| {
        message(l).starts_with(&format!(
            "records 1 to {before} of the event log are not in it"
        ))
    })?;
    Ok(())
}

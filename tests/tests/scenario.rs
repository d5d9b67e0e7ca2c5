//! The whole scenario across every process: hub, sensord, alertd (a hook on
//! a pipe and a webhook), reportd and camd, driven through vigilctl and the
//! simulated board, with an OTLP collector and a WatchEvents follower
//! listening from the start.
//!
//! arm away, exit delay, the front door, entry delay, triggered, siren on;
//! the hook and the webhook get the alarm; a clip with pre-roll is
//! recorded; the event log has every step; the weekly report shows it;
//! WatchEvents streamed all of it; one trace runs from the GPIO edge
//! (sensord) through the hub to the hook (alertd).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::Value;
use vigil_e2e::{
    HttpSink, RunAs, Stack, TEST_ALARM, TEST_SENSORS, field, free_port, json_lines, message,
    recording_hook, test_camera, wait_until,
};

#[test]
fn the_whole_scenario_across_every_process() -> Result<()> {
    let collector = HttpSink::start()?;
    let webhook = HttpSink::start()?;
    let camera_port = free_port()?;
    let dir = tempfile::tempdir()?;
    let hook_file = dir.path().join("hook.jsonl");
    let sensors = TEST_SENSORS.replace(
        "[telemetry]\n",
        &format!(
            "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{}\"\n",
            collector.port
        ),
    );
    let config = format!(
        "{sensors}{TEST_ALARM}{}{}\n[webhook]\nurl = \"http://127.0.0.1:{}/alerts\"\n",
        recording_hook("phone", &hook_file),
        test_camera(camera_port, "porch-key", "scenario"),
        webhook.port
    );
    let stack = Stack::new(&config, RunAs::Me)?;
    let mut hub = stack.start("vigil-hub")?;
    let mut sensord = stack.start("vigil-sensord")?;
    let mut alertd = stack.start("vigil-alertd")?;
    let mut reportd = stack.start("vigil-reportd")?;
    let mut camd = stack.start("vigil-camd")?;
    hub.wait_log(0, "sensord", |l| {
        message(l) == "service joined" && field(l, "role") == "sensord"
    })?;
    hub.wait_log(0, "alertd", |l| {
        message(l) == "service joined" && field(l, "role") == "alertd"
    })?;
    hub.wait_log(0, "the camera", |l| message(l) == "camera connected")?;
    stack.pair_here("user")?;
    let stream_file = dir.path().join("stream.jsonl");
    let mut watch = stack.follow_events(&stream_file)?;
    // The ring needs its pre-roll before the alarm.
    std::thread::sleep(Duration::from_secs(3));

    // Arm away: the exit delay (1 s), then armed.
    let armed = stack.ctl_json(&["arm", "away"])?;
    ensure!(armed["status"]["state"] == "arming", "{armed}");
    stack.wait_alarm("armed", |s| s["mode"] == "away" && s["state"] == "idle")?;
    // The door: entry delay (2 s), nobody disarms, the siren.
    stack.sim("set front-door open")?;
    let (door, _) = sensord.wait_log(0, "the door edge", |l| message(l) == "front-door open")?;
    let trace_id = field(&door, "trace_id")
        .as_str()
        .context("sensord logs the trace id of the edge")?
        .to_owned();
    stack.wait_alarm("the entry delay", |s| s["state"] == "pending")?;
    stack.wait_alarm("triggered", |s| s["state"] == "triggered")?;
    wait_until("the siren output", Duration::from_secs(5), || {
        Ok(stack.sim("outputs")? == "siren=on buzzer=off")
    })?;

    // The hook got the alarm on its pipe, with the edge's trace.
    let mut alarm = Value::Null;
    wait_until("the alarm at the hook", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&hook_file).unwrap_or_default();
        if let Some(a) = json_lines(&text)
            .into_iter()
            .find(|a| a["kind"] == "triggered")
        {
            alarm = a;
            return Ok(true);
        }
        Ok(false)
    })?;
    ensure!(
        alarm["priority"] == "alarm" && alarm["sensor"] == "front-door",
        "{alarm}"
    );
    ensure!(
        alarm["trace_id"] == trace_id.as_str(),
        "{alarm} vs {trace_id}"
    );
    // The webhook got the same alert.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let request = webhook
            .requests
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .context("no webhook request for the alarm")?;
        let posted: Value = serde_json::from_slice(&request.body)?;
        if posted["kind"] == "triggered" {
            ensure!(posted["id"] == alarm["id"], "{posted}");
            ensure!(
                request.head.to_ascii_lowercase().contains("traceparent"),
                "the webhook request carries the trace: {}",
                request.head
            );
            break;
        }
    }

    // A clip with pre-roll.
    let clip = stack.wait_clip("alarm")?;
    ensure!(
        clip["seconds"].as_f64() >= Some(3.8),
        "pre-roll 2 s + post 2 s: {clip}"
    );

    // Alice disarms.
    let disarmed = stack.ctl_json(&["disarm", "--pin", "2468"])?;
    ensure!(disarmed["user"] == "alice", "{disarmed}");
    stack.sim("set front-door closed")?;
    let last = stack.ctl_json(&["status"])?["last_event_seq"]
        .as_u64()
        .unwrap_or(0);

    // The event log has every step, in order.
    let logged = stack.logged_event_kinds()?;
    let steps = ["arming", "armed", "entry_delay", "triggered", "disarmed"];
    let mut at = 0;
    for step in steps {
        match logged[at..].iter().position(|k| k == step) {
            Some(i) => at += i + 1,
            None => bail!("the log lacks {step} after position {at}: {logged:?}"),
        }
    }
    for kind in ["camera_online", "clip_recorded", "sensor"] {
        ensure!(logged.iter().any(|k| k == kind), "no {kind}: {logged:?}");
    }

    // The weekly report shows it.
    let mut report = Value::Null;
    wait_until(
        "the report to cover the scenario",
        Duration::from_secs(20),
        || {
            let (code, out, _) = stack.ctl(&["--json", "report", "--weekly"])?;
            if code == 0 {
                report = serde_json::from_str(out.trim())?;
                return Ok(report["indexed_through_seq"].as_u64() >= Some(last));
            }
            Ok(false)
        },
    )?;
    ensure!(report["totals"]["alarms"] == 1, "{}", report["totals"]);
    ensure!(
        report["alarms"][0]["disarmed_by"] == "alice",
        "{}",
        report["alarms"]
    );
    ensure!(
        report["cameras"][0]["camera"] == "porch",
        "{}",
        report["cameras"]
    );

    // WatchEvents streamed every event, in order, with nothing missing.
    wait_until("the stream to catch up", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&stream_file).unwrap_or_default();
        Ok(json_lines(&text)
            .last()
            .and_then(|e| e["seq"].as_u64())
            .is_some_and(|s| s >= last))
    })?;
    let streamed = json_lines(&std::fs::read_to_string(&stream_file)?);
    let seqs: Vec<u64> = streamed.iter().filter_map(|e| e["seq"].as_u64()).collect();
    ensure!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "gaps or repeats: {seqs:?}"
    );
    let kinds: Vec<&str> = streamed
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    // Read the log again: events after `last` (the door closing) may have
    // been streamed since it was first read.
    let logged = stack.logged_event_kinds()?;
    ensure!(
        logged.len() >= kinds.len(),
        "streamed {} events, the log has {}",
        kinds.len(),
        logged.len()
    );
    ensure!(
        kinds
            == logged[..kinds.len()]
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        "the stream and the log disagree:\n{kinds:?}\n{logged:?}"
    );
    let _ = watch.kill();
    let _ = watch.wait();

    // One trace from the GPIO edge to the hook: stopping flushes the
    // exporters, then the collector must hold spans of that trace from
    // sensord, the hub and alertd.
    for service in [&mut camd, &mut reportd, &mut alertd, &mut sensord, &mut hub] {
        ensure!(
            service.terminate()? == Some(0),
            "{} did not stop cleanly",
            service.name
        );
    }
    let seen = collector.services_with_trace(
        &trace_id,
        &["vigil-sensord", "vigil-hub", "vigil-alertd"],
        Duration::from_secs(5),
    )?;
    ensure!(
        seen.len() == 3,
        "spans of trace {trace_id} came only from {seen:?}"
    );
    Ok(())
}

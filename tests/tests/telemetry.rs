//! One trace across processes, exported over OTLP: the trace id sensord
//! logs for a door opening is in the spans both sensord and the hub send
//! to a collector (a minimal OTLP/HTTP receiver in this test).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use vigil_e2e::{ExportedSpan, HttpSink, RunAs, Stack, TEST_ALARM, TEST_SENSORS, field, message};

#[test]
fn a_door_opening_is_one_trace_exported_by_sensord_and_the_hub() -> Result<()> {
    let sink = HttpSink::start()?;
    let port = sink.port;
    let config = TEST_SENSORS.replace(
        "[telemetry]\n",
        &format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n"),
    );
    let stack = Stack::new(&config, RunAs::Me)?;
    let mut hub = stack.start("vigil-hub")?;
    let mut sensord = stack.start("vigil-sensord")?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    stack.sim("set front-door open")?;
    let (line, _) = sensord.wait_log(0, "the door", |l| message(l) == "front-door open")?;
    let trace_id = field(&line, "trace_id")
        .as_str()
        .context("trace id")?
        .to_owned();
    hub.wait_log(0, "the door at the hub", |l| {
        message(l) == "sensor changed" && field(l, "trace_id") == trace_id.as_str()
    })?;
    // Stopping flushes the exporters.
    ensure!(sensord.terminate()? == Some(0));
    ensure!(hub.terminate()? == Some(0));
    let services = sink.services_with_trace(
        &trace_id,
        &["vigil-hub", "vigil-sensord"],
        Duration::from_secs(10),
    )?;
    ensure!(
        services.len() == 2,
        "the trace {trace_id} was exported by {services:?}, wanted both services"
    );
    Ok(())
}

/// Parentage, not only trace ids: a tamper loop opening triggers the alarm,
/// and alertd's span for delivering that alarm is a child of the hub's span
/// for the sensor change, which is a child of sensord's span for the edge.
#[test]
fn the_alerts_delivery_span_is_a_child_of_the_hubs_span_for_the_change() -> Result<()> {
    let sink = HttpSink::start()?;
    let port = sink.port;
    let dir = tempfile::tempdir()?;
    let hook_file = dir.path().join("hook.jsonl");
    let config = format!(
        "{}{TEST_ALARM}[[hooks]]\nname = \"recorder\"\ncommand = \"/bin/sh\"\n\
         args = [\"-c\", \"cat >> {}\"]\n",
        TEST_SENSORS.replace(
            "[telemetry]\n",
            &format!("[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n"),
        ),
        hook_file.display()
    );
    let stack = Stack::new(&config, RunAs::Me)?;
    let mut hub = stack.start("vigil-hub")?;
    let mut sensord = stack.start("vigil-sensord")?;
    let mut alertd = stack.start("vigil-alertd")?;
    for role in ["sensord", "alertd"] {
        hub.wait_log(0, role, |l| {
            message(l) == "service joined" && l["fields"]["role"] == role
        })?;
    }
    stack.sim("set siren-box-tamper open")?;
    let (line, _) = sensord.wait_log(0, "the tamper", |l| {
        field(l, "trace_id").is_string() && message(l).starts_with("siren-box-tamper")
    })?;
    let trace_id = field(&line, "trace_id")
        .as_str()
        .context("trace id")?
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !std::fs::read_to_string(&hook_file)
        .unwrap_or_default()
        .contains("\"triggered\"")
    {
        ensure!(
            std::time::Instant::now() < deadline,
            "the alarm never reached the hook"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stopping flushes the exporters.
    ensure!(alertd.terminate()? == Some(0));
    ensure!(sensord.terminate()? == Some(0));
    ensure!(hub.terminate()? == Some(0));

    let in_trace = |spans: &[ExportedSpan], service: &str, name: &str| {
        spans
            .iter()
            .filter(|s| s.trace_id == trace_id && s.service == service && s.name == name)
            .cloned()
            .collect::<Vec<_>>()
    };
    let spans = sink.spans(
        |spans| {
            !in_trace(spans, "vigil-alertd", "alert").is_empty()
                && !in_trace(spans, "vigil-hub", "hub.sensor_change").is_empty()
        },
        Duration::from_secs(10),
    )?;
    let change = in_trace(&spans, "vigil-hub", "hub.sensor_change");
    let delivery = in_trace(&spans, "vigil-alertd", "alert");
    ensure!(
        change.len() == 1 && !delivery.is_empty(),
        "the trace {trace_id} has hub changes {change:?} and deliveries {delivery:?}; all: {spans:?}"
    );
    let sensord_spans: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.trace_id == trace_id && s.service == "vigil-sensord")
        .collect();
    ensure!(
        sensord_spans
            .iter()
            .any(|s| s.span_id == change[0].parent_span_id),
        "the hub's span {:?} is not a child of sensord's {sensord_spans:?}",
        change[0]
    );
    for d in &delivery {
        ensure!(
            d.parent_span_id == change[0].span_id,
            "alertd's delivery {d:?} is not a child of the hub's span for the change {:?}",
            change[0]
        );
    }
    Ok(())
}

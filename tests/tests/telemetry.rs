//! One trace across processes, exported over OTLP: the trace id sensord
//! logs for a door opening is in the spans both sensord and the hub send
//! to a collector (a minimal OTLP/HTTP receiver in this test).

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use vigil_e2e::{HttpSink, RunAs, Stack, TEST_SENSORS, field, message};

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

//! The event log to reports across real processes: the hub writes the log,
//! reportd indexes it into SQLite, the hub serves reports and history from
//! that file read-only, and vigilctl asks over gRPC and TLS.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use serde_json::Value;
use vigil_e2e::{RunAs, Stack, TEST_ALARM, TEST_SENSORS, json_lines, message};

/// Every row of the index, in a stable order, as text.
fn dump(db: &std::path::Path) -> Result<Vec<String>> {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut rows = Vec::new();
    for (table, order) in [
        ("events", "seq"),
        ("buckets", "bucket, kind, sensor"),
        ("checkpoint", "id"),
    ] {
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
        let columns = stmt.column_count();
        let mut query = stmt.query([])?;
        while let Some(row) = query.next()? {
            let mut line = format!("{table}:");
            for i in 0..columns {
                let value: rusqlite::types::Value = row.get(i)?;
                line.push_str(&format!(" {value:?}"));
            }
            rows.push(line);
        }
    }
    Ok(rows)
}

fn history(stack: &Stack, args: &[&str]) -> Result<Vec<Value>> {
    let mut all = vec!["--json", "history"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = stack.ctl(&all)?;
    ensure!(
        code == 0,
        "vigilctl history {args:?} exited {code}: {stderr}"
    );
    Ok(json_lines(&stdout))
}

#[test]
fn an_alarm_appears_in_the_weekly_report_and_history_and_a_rebuild_is_identical() -> Result<()> {
    let stack = Stack::new(&format!("{TEST_SENSORS}{TEST_ALARM}"), RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let _sensord = stack.start("vigil-sensord")?;
    let mut reportd = stack.start("vigil-reportd")?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    stack.pair_here("user")?;

    // The scenario: arm away, a door during the armed period, the entry
    // delay runs out, alice disarms.
    stack.ctl_json(&["arm", "away"])?;
    stack.wait_alarm("armed away", |s| {
        s["mode"] == "away" && s["state"] == "idle"
    })?;
    stack.sim("set front-door open")?;
    stack.wait_alarm("the siren", |s| s["state"] == "triggered")?;
    stack.ctl_json(&["disarm", "--pin", "2468"])?;
    stack.sim("set front-door closed")?;
    // The simulator answers once the pin changed, not once the hub has
    // logged the change: wait for the hub to see the door closed.
    let last = stack.wait_alarm("the front door closed", |s| {
        !s["open"].to_string().contains("front-door")
    })?["last_event_seq"]
        .as_u64()
        .unwrap_or(0);

    // reportd catches up with the log.
    let deadline = Instant::now() + Duration::from_secs(20);
    let report = loop {
        let (code, stdout, stderr) = stack.ctl(&["--json", "report", "--weekly"])?;
        if code == 0 {
            let report: Value = serde_json::from_str(stdout.trim())?;
            if report["indexed_through_seq"].as_u64().unwrap_or(0) >= last {
                break report;
            }
        }
        if Instant::now() > deadline {
            bail!("the report never covered event {last}: {code} {stdout} {stderr}");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    ensure!(report["period"] == "weekly", "{report}");
    ensure!(report["totals"]["alarms"] == 1, "{}", report["totals"]);
    let alarm = &report["alarms"][0];
    ensure!(alarm["sensor"] == "front-door", "{alarm}");
    ensure!(alarm["disarmed_by"] == "alice", "{alarm}");
    let timeline: Vec<(String, String)> = report["timeline"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_owned(),
                e["user"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    ensure!(
        timeline.contains(&("disarmed".into(), "alice".into()))
            && timeline.iter().any(|(k, _)| k == "armed")
            && timeline.iter().any(|(k, _)| k == "arming"),
        "{timeline:?}"
    );
    let front = report["sensors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["sensor"] == "front-door");
    ensure!(
        front.is_some_and(|s| s["changes"].as_u64() >= Some(2)),
        "{}",
        report["sensors"]
    );

    // The HTML page, with its charts.
    let page = stack.state_dir().join("week.html");
    let page_arg = page.display().to_string();
    let (code, _, stderr) = stack.ctl(&["report", "--weekly", "--html", &page_arg])?;
    ensure!(code == 0, "{stderr}");
    let html = std::fs::read_to_string(&page)?;
    ensure!(html.contains("<svg") && html.contains("front-door") && html.contains("alice"));

    // QueryEvents: filtered, and every step of the scenario in order.
    let triggered = history(&stack, &["--kind", "triggered"])?;
    ensure!(triggered.len() == 1, "{triggered:?}");
    ensure!(triggered[0]["sensor"] == "front-door");
    let alarm_steps = history(
        &stack,
        &["--kind", "arming,armed,entry_delay,triggered,disarmed"],
    )?;
    let kinds: Vec<&str> = alarm_steps
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    ensure!(
        kinds == ["arming", "armed", "entry_delay", "triggered", "disarmed"],
        "{kinds:?}"
    );
    // A limit takes the first events of the same order.
    let all = history(&stack, &["--limit", "1000"])?;
    ensure!(all.len() >= 5);
    let first = history(&stack, &["--limit", "3"])?;
    ensure!(first[..] == all[..3], "{first:?}");
    let newest = history(&stack, &["--newest-first", "--limit", "1"])?;
    ensure!(newest[0] == all[all.len() - 1], "{newest:?}");

    // reportd wrote the current reports to the state directory.
    let daily = stack.state_dir().join("reports").join("daily");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_dir(&daily).is_ok_and(|d| d.count() >= 2) {
        ensure!(
            Instant::now() < deadline,
            "no daily report in {}",
            daily.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // A rebuild while reportd runs is refused, and harms nothing.
    let refused = stack.run("vigil-reportd", &["--rebuild"])?;
    ensure!(refused.status.code() == Some(1), "{refused:?}");
    ensure!(
        String::from_utf8_lossy(&refused.stderr).contains("stop the service"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Stopped, then rebuilt from the log: the same database, row for row.
    ensure!(reportd.terminate()? == Some(0));
    let db = stack.state_dir().join("reports.db");
    let before = dump(&db)?;
    ensure!(before.iter().filter(|r| r.starts_with("events:")).count() as u64 >= 5);
    let rebuilt = stack.run("vigil-reportd", &["--rebuild"])?;
    ensure!(rebuilt.status.success(), "{rebuilt:?}");
    let after = dump(&db)?;
    ensure!(
        before == after,
        "the rebuild differs:\nbefore {before:#?}\nafter {after:#?}"
    );
    // And the hub serves from the rebuilt file.
    ensure!(history(&stack, &["--kind", "triggered"])?.len() == 1);
    Ok(())
}

/// History that lines up with the live stream (issue 15): QueryEvents'
/// `after_seq` starts where a WatchEvents client left off, one beyond the
/// log's end is OUT_OF_RANGE, and a page token works only with the filters
/// it was given for.
#[test]
fn history_resumes_after_a_sequence_number_and_page_tokens_keep_their_filters() -> Result<()> {
    use vigil_proto::v1 as pb;
    use vigil_proto::v1::report_service_client::ReportServiceClient;

    let stack = Stack::new(&format!("{TEST_SENSORS}{TEST_ALARM}"), RunAs::Me)?;
    let hub = stack.start("vigil-hub")?;
    let _sensord = stack.start("vigil-sensord")?;
    let _reportd = stack.start("vigil-reportd")?;
    hub.wait_log(0, "sensord joining", |l| message(l) == "service joined")?;
    stack.pair_here("user")?;
    for _ in 0..3 {
        stack.sim("set front-door open")?;
        stack.wait_alarm("the door open", |s| {
            s["open"].to_string().contains("front-door")
        })?;
        stack.sim("set front-door closed")?;
        stack.wait_alarm("the door closed", |s| {
            !s["open"].to_string().contains("front-door")
        })?;
    }
    let last = stack.ctl_json(&["status"])?["last_event_seq"]
        .as_u64()
        .unwrap_or(0);
    ensure!(last >= 6, "six sensor events at least: {last}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while history(&stack, &["--limit", "1000"])?.len() < last as usize {
        ensure!(
            Instant::now() < deadline,
            "reportd did not index {last} events"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let creds = vigilctl::remote::Credentials {
        dir: stack.credentials_dir(),
    };
    let runtime = tokio::runtime::Runtime::new()?;
    let (channel, _) = runtime.block_on(vigilctl::remote::connect(&creds, None))?;
    let mut reports = ReportServiceClient::new(channel);
    let mut query = |request: pb::QueryEventsRequest| {
        runtime
            .block_on(reports.query_events(request))
            .map(tonic::Response::into_inner)
    };
    let after = last - 3;
    let page = query(pb::QueryEventsRequest {
        after_seq: after,
        ..Default::default()
    })?;
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    ensure!(
        seqs == ((after + 1)..=last).collect::<Vec<_>>(),
        "the events after {after}: {seqs:?}"
    );
    // The same through vigilctl.
    let by_ctl = history(&stack, &["--after-seq", &after.to_string()])?;
    ensure!(by_ctl.len() == 3, "{by_ctl:?}");

    let beyond = query(pb::QueryEventsRequest {
        after_seq: last + 100,
        ..Default::default()
    })
    .expect_err("beyond the last event");
    ensure!(beyond.code() == tonic::Code::OutOfRange, "{beyond:?}");

    // A token for sensor events, replayed for every kind: refused.
    let first = query(pb::QueryEventsRequest {
        kinds: vec!["sensor".into()],
        page_size: 2,
        ..Default::default()
    })?;
    ensure!(!first.next_page_token.is_empty(), "more than one page");
    let next = query(pb::QueryEventsRequest {
        kinds: vec!["sensor".into()],
        page_size: 2,
        page_token: first.next_page_token.clone(),
        ..Default::default()
    })?;
    ensure!(
        next.events.first().map(|e| e.seq) > first.events.last().map(|e| e.seq),
        "the next page follows"
    );
    let other = query(pb::QueryEventsRequest {
        page_size: 2,
        page_token: first.next_page_token,
        ..Default::default()
    })
    .expect_err("other filters");
    ensure!(
        other.code() == tonic::Code::InvalidArgument && other.message().contains("other filters"),
        "{other:?}"
    );
    Ok(())
}

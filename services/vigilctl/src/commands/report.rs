//! `report`: a daily or weekly report from the hub (reportd's), as a text
//! summary, the hub's JSON as it is, or the HTML page written to a file.

use std::path::PathBuf;

use vigil_proto::v1 as pb;

use super::{Ask, write_file};
use crate::error::Error;
use crate::hub::Hub;
use crate::output::{Output, time_text};

/// A daily or weekly report (alarms, who armed and disarmed, sensors,
/// faults, cameras, busiest hours), as text, JSON or an HTML page.
#[derive(Debug, clap::Args)]
pub struct Report {
    /// The ISO week instead of the day.
    #[arg(long)]
    pub weekly: bool,
    /// A day in the period (YYYY-MM-DD, or YYYY-Www); default: today.
    #[arg(long, default_value = "")]
    pub date: String,
    /// Write the HTML page (with charts) to this file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

impl Ask for Report {
    async fn ask(&self, hub: &Hub, out: Output) -> Result<(), Error> {
        let period = if self.weekly {
            pb::ReportPeriod::Weekly
        } else {
            pb::ReportPeriod::Daily
        };
        let format = if self.html.is_some() {
            pb::ReportFormat::Html
        } else {
            pb::ReportFormat::Json
        };
        let request = pb::GetReportRequest {
            period: period.into(),
            date: self.date.clone(),
            format: format.into(),
        };
        let response = hub.answer(hub.reports().get_report(request).await)?;
        if let Some(path) = &self.html {
            // The page is the answer; what is printed only says where it went.
            write_file(path, &response.body)?;
            out.say(format_args!(
                "wrote the report {} to {}",
                response.label,
                path.display()
            ));
            return Ok(());
        }
        // The JSON is the hub's own text (docs/reports.md), passed on as
        // it is rather than parsed and written again in another key order.
        let body = String::from_utf8_lossy(&response.body);
        out.either(|| Ok(body.to_string()), || summary(&response, &body))
    }
}

/// The report's totals, alarms and who armed and disarmed, for a person.
fn summary(response: &pb::GetReportResponse, body: &str) -> Result<String, Error> {
    let report: serde_json::Value = serde_json::from_str(body).map_err(Error::BadReport)?;
    let totals = &report["totals"];
    let mut out = format!(
        "Report {} (indexed through event {})\n",
        response.label, response.indexed_through_seq
    );
    out.push_str(&format!(
        "events {}  alarms {}  armed {}  disarmed {}  faults {}  tamper {}\n",
        totals["events"],
        totals["alarms"],
        totals["arms"],
        totals["disarms"],
        totals["faults"],
        totals["tampers"]
    ));
    // A field the hub left out reads as empty rather than failing the
    // summary: the JSON is still there for the whole of it.
    let text = |entry: &serde_json::Value, key: &str, missing: &'static str| {
        entry[key].as_str().unwrap_or(missing).to_owned()
    };
    let when = |entry: &serde_json::Value| time_text(entry["unix_ms"].as_i64().unwrap_or(0));
    for alarm in report["alarms"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "ALARM at {}: {} (disarmed by {})\n",
            when(alarm),
            text(alarm, "message", ""),
            text(alarm, "disarmed_by", "nobody yet")
        ));
    }
    for entry in report["timeline"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{}  {:<9} {:<8} by {} ({})\n",
            when(entry),
            text(entry, "kind", ""),
            text(entry, "mode", ""),
            text(entry, "user", "-"),
            text(entry, "source", "")
        ));
    }
    Ok(out)
}

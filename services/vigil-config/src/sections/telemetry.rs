//! `[telemetry]`: logs (format and filter) and where traces go.

use serde::Deserialize;

use crate::check::{Checker, words};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TelemetryFile {
    otlp_endpoint: Option<String>,
    log_format: Option<String>,
    log_filter: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for journald scrapers and tests.
    Json,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryConfig {
    /// OTLP/gRPC endpoint (`http://collector:4317`); traces are exported only when set.
    pub otlp_endpoint: Option<String>,
    pub log_format: LogFormat,
    /// `tracing` filter directives (`info`, `vigil_hub=debug`).
    pub log_filter: String,
}

words! { LogFormat, "log format", ["text" => LogFormat::Text, "json" => LogFormat::Json] }

impl Default for TelemetryConfig {
    fn default() -> Self {
        check(&mut Checker::default(), TelemetryFile::default())
    }
}

pub(crate) fn check(c: &mut Checker, t: TelemetryFile) -> TelemetryConfig {
    let log_format = c.word(
        "telemetry.log_format",
        t.log_format.as_deref(),
        LogFormat::Text,
    );
    TelemetryConfig {
        // An empty endpoint is how a generated file says "none".
        otlp_endpoint: t.otlp_endpoint.filter(|e| !e.is_empty()),
        log_format,
        log_filter: t.log_filter.unwrap_or_else(|| "info".to_owned()),
    }
}

//! Logging and tracing for every Vigil service.
//!
//! Owns: the `tracing` subscriber (text or JSON lines on stderr, filtered by
//! the config's `log_filter` or `RUST_LOG`), the OpenTelemetry tracer (OTLP
//! over HTTP/protobuf when `otlp_endpoint` is set), and the conversion
//! between a `tracing` span and the [`TraceContext`] that rides across
//! process hops (in the sensor table, in ipc messages); and
//! [`LogBudget`], how often a line about one recurring thing is written.
//!
//! Must never: decide what to log; block a caller on export (spans are
//! exported in batches from a background thread).
//!
//! Spans always get OpenTelemetry ids, exporter or not, so the trace id in
//! a service's log lines is the same id a collector would show, and logs of
//! two processes can be joined on it.

#![forbid(unsafe_code)]

mod log_budget;

pub use crate::log_budget::LogBudget;

use std::io::IsTerminal;

use opentelemetry::trace::{
    SpanContext, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry::{Context, SpanId};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};
use vigil_config::{LogFormat, TelemetryConfig};
use vigil_domain::TraceContext;

/// Overrides the config's log format (`text` or `json`).
pub const LOG_FORMAT_ENV: &str = "VIGIL_LOG_FORMAT";

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP exporter for {endpoint}: {message}")]
    Exporter { endpoint: String, message: String },
    #[error("invalid log filter {filter:?}: {message}; use tracing directives such as \"info\"")]
    Filter { filter: String, message: String },
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Flushes and shuts down the exporter when dropped: keep it alive in main.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Exports what is still batched; errors have nowhere left to go.
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber for `service` ("vigil-hub", ...).
pub fn init(
    service: &'static str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let mut provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build());
    if let Some(endpoint) = &config.otlp_endpoint {
        // The HTTP client's TLS (for https collectors) uses rustls with ring,
        // installed once per process; a second install is a no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let traces_url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
        let exporter = SpanExporter::builder()
            .with_http()
            .with_endpoint(traces_url)
            .build()
            .map_err(|e| TelemetryError::Exporter {
                endpoint: endpoint.clone(),
                message: e.to_string(),
            })?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let tracer = provider.tracer(service);

    let filter_text = std::env::var("RUST_LOG").unwrap_or_else(|_| config.log_filter.clone());
    let filter = EnvFilter::try_new(&filter_text).map_err(|e| TelemetryError::Filter {
        filter: filter_text.clone(),
        message: e.to_string(),
    })?;
    let format = match std::env::var(LOG_FORMAT_ENV).as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("text") => LogFormat::Text,
        _ => config.log_format,
    };
    let fmt_layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .with_current_span(true)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .try_init()
        .map_err(|_| TelemetryError::AlreadyInstalled)?;
    Ok(TelemetryGuard { provider })
}

/// The trace context of `span`, to send along with what it caused.
pub fn trace_context_of(span: &tracing::Span) -> TraceContext {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    if !sc.is_valid() {
        return TraceContext::default();
    }
    TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    }
}

/// Makes `span` a child of the remote span `parent` (from another
/// process). Does nothing for an empty context.
pub fn set_remote_parent(span: &tracing::Span, parent: TraceContext) {
    if !parent.is_valid() {
        return;
    }
    let sc = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        TraceState::default(),
    );
    let _ = span.set_parent(Context::new().with_remote_span_context(sc));
}

//! `[webhook]`: where alertd posts alerts over HTTP (absent: nowhere).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use vigil_domain::AlertPriority;

use crate::check::{Checker, words};
use crate::limits::TIMEOUT_SECS;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookFile {
    url: Option<String>,
    format: Option<String>,
    min_priority: Option<String>,
    timeout_secs: Option<u64>,
    secret_file: Option<PathBuf>,
}

/// Where alertd posts alerts over HTTP.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub url: String,
    pub format: WebhookFormat,
    pub min_priority: AlertPriority,
    pub timeout: Duration,
    /// A file holding a secret: the body's HMAC-SHA256 goes in
    /// `X-Vigil-Signature`.
    pub secret_file: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// The alert as a JSON object.
    Json,
    /// ntfy's format: the message as the body, title, priority and tags as
    /// headers.
    Ntfy,
}

words! { WebhookFormat, "format", ["json" => WebhookFormat::Json, "ntfy" => WebhookFormat::Ntfy] }

pub(crate) fn check(c: &mut Checker, w: WebhookFile) -> Option<WebhookConfig> {
    let url = c.required("webhook.url", w.url, "set `url` to http(s)://host/path");
    if let Some(url) = &url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        c.report(
            "webhook.url",
            format!("{url:?} is not an http(s) URL"),
            "use http://... or https://...",
        );
    }
    let format = c.word("webhook.format", w.format.as_deref(), WebhookFormat::Json);
    let priority = w.min_priority.as_deref();
    let min_priority = c.word("webhook.min_priority", priority, AlertPriority::Info);
    let timeout_secs = c.bounded("webhook.timeout_secs", w.timeout_secs, &TIMEOUT_SECS);
    Some(WebhookConfig {
        url: url?,
        format,
        min_priority,
        timeout: Duration::from_secs(timeout_secs),
        secret_file: w.secret_file,
    })
}

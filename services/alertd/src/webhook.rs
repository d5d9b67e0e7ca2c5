//! The webhook: an HTTP POST per alert, as JSON or in ntfy's format
//! (message as the body; `Title`, `Priority` 5/4/3/2 for alarm, tamper,
//! fault, info, and `Tags` as headers). With a secret, the body's
//! HMAC-SHA256 is sent as `X-Vigil-Signature: sha256=<hex>`; the alert's id
//! is always in `X-Vigil-Alert-Id`, for dedupe. A failed post is retried
//! three times (1, 2, 4 s) and then given up on.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::mpsc;
use tracing::{debug, error, warn};
use vigil_config::{WebhookConfig, WebhookFormat};
use vigil_domain::AlertPriority;

use crate::{AlertdError, Delivery};

#[derive(Debug)]
pub struct Webhook {
    client: reqwest::Client,
    url: String,
    format: WebhookFormat,
    secret: Option<Vec<u8>>,
}

impl Webhook {
    /// Reads the secret and builds the client: an unreadable secret is
    /// the configuration's ([`AlertdError::WebhookSecret`], exit 78).
    pub fn new(config: &WebhookConfig) -> Result<Webhook, AlertdError> {
        // rustls with ring: installed once for the process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let secret = match &config.secret_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|source| AlertdError::WebhookSecret {
                        path: path.clone(),
                        source,
                    })?
                    .trim_ascii()
                    .to_vec(),
            ),
            None => None,
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| AlertdError::WebhookClient(e.to_string()))?;
        Ok(Webhook {
            client,
            url: config.url.clone(),
            format: config.format,
            secret,
        })
    }

    fn request(&self, d: &Delivery) -> reqwest::RequestBuilder {
        let a = &d.alert;
        let (body, mut request) = match self.format {
            WebhookFormat::Json => (
                serde_json::to_vec(&**a).unwrap_or_default(),
                self.client
                    .post(&self.url)
                    .header("Content-Type", "application/json"),
            ),
            WebhookFormat::Ntfy => {
                let priority = match a.priority() {
                    AlertPriority::Alarm => "5",
                    AlertPriority::Tamper => "4",
                    AlertPriority::Fault => "3",
                    AlertPriority::Info => "2",
                };
                let mut tags = vec![a.priority.clone(), a.kind.clone()];
                if a.priority() == AlertPriority::Alarm {
                    tags.insert(0, "rotating_light".into());
                }
                (
                    a.message.clone().into_bytes(),
                    self.client
                        .post(&self.url)
                        .header("Title", &a.title)
                        .header("Priority", priority)
                        .header("Tags", tags.join(",")),
                )
            }
        };
        request = request.header("X-Vigil-Alert-Id", &a.id);
        // The receiver can join the trace: the delivery span's context.
        let context = vigil_telemetry::trace_context_of(&tracing::Span::current());
        if context.is_valid() {
            request = request.header("traceparent", context.traceparent());
        }
        if let Some(secret) = &self.secret
            && let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret)
        {
            mac.update(&body);
            let hex: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            request = request.header("X-Vigil-Signature", format!("sha256={hex}"));
        }
        request.body(body)
    }

    /// Posts one alert, retrying with backoff.
    async fn deliver(&self, d: &Delivery) {
        let mut wait = Duration::from_secs(1);
        for attempt in 1..=4 {
            match self.request(d).send().await {
                Ok(r) if r.status().is_success() => {
                    debug!(id = %d.alert.id, status = %r.status(), "webhook delivered");
                    break;
                }
                Ok(r) => warn!(id = %d.alert.id, attempt, "webhook answered {}", r.status()),
                Err(e) => warn!(id = %d.alert.id, attempt, "webhook failed: {e}"),
            }
            if attempt == 4 {
                error!(id = %d.alert.id, url = %self.url, "gave up on the webhook for this alert");
            } else {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
    }

    /// Posts every delivery until the channel closes.
    pub async fn run(self, mut deliveries: mpsc::Receiver<Delivery>) {
        while let Some(d) = deliveries.recv().await {
            let span = tracing::info_span!(parent: &d.span, "alert.webhook");
            tracing::Instrument::instrument(self.deliver(&d), span).await;
            d.done.complete();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    use vigil_alerts::AlertMessage;

    use super::*;
    use crate::{Completion, Delivered};

    #[test]
    fn ntfy_mode_maps_priority_title_and_tags_and_signs_the_body() {
        let dir = std::env::temp_dir().join(format!("vigil-webhook-{}", std::process::id()));
        std::fs::write(&dir, "secret\n").expect("secret");
        let hook = Webhook::new(&WebhookConfig {
            url: "http://127.0.0.1:9/x".into(),
            format: WebhookFormat::Ntfy,
            min_priority: AlertPriority::Info,
            timeout: Duration::from_secs(1),
            secret_file: Some(dir.clone()),
        })
        .expect("webhook");
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let delivery = Delivery {
            alert: Arc::new(AlertMessage {
                id: "abc-1".into(),
                priority: "alarm".into(),
                kind: "triggered".into(),
                title: "ALARM: front-door".into(),
                message: "ALARM: front-door; siren on".into(),
                sensor: None,
                unix_ms: 0,
                trace_id: None,
                traceparent: None,
                delivery_token: None,
            }),
            done: Arc::new(Completion {
                report: Delivered {
                    id: "abc-1".into(),
                    token: "t".into(),
                },
                remaining: AtomicUsize::new(1),
                delivered: tx,
            }),
            span: tracing::Span::none(),
        };
        let request = hook.request(&delivery).build().expect("request");
        let h = request.headers();
        assert_eq!(h["Title"], "ALARM: front-door");
        assert_eq!(h["Priority"], "5");
        assert_eq!(h["Tags"], "rotating_light,alarm,triggered");
        assert_eq!(h["X-Vigil-Alert-Id"], "abc-1");
        let body = request.body().and_then(|b| b.as_bytes()).expect("body");
        assert_eq!(body, b"ALARM: front-door; siren on");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").expect("mac");
        mac.update(body);
        let expected: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(h["X-Vigil-Signature"], format!("sha256={expected}"));
        let _ = std::fs::remove_file(dir);
    }
}

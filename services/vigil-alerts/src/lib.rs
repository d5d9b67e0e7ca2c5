//! The alert: one message on the hub's POSIX queue, and one JSON line on
//! every hook's stdin.
//!
//! Owns: the alert's wire format ([`AlertMessage`], JSON) and how a priority
//! maps to a queue priority. Must never: hold delivery logic (the hub posts,
//! alertd delivers).
//!
//! # The format (stable; hooks and webhook receivers parse it)
//! ```json
//! {"id":"18c3f2a9b10-7","priority":"alarm","kind":"triggered",
//!  "title":"ALARM: front-door","message":"ALARM: front-door; siren on",
//!  "sensor":"front-door","unix_ms":1795000000000,"trace_id":"4bf9..."}
//! ```
//! `id` is the idempotency key: delivery is at least once, and a repeat of
//! an alert carries the same id, so a hook can drop it. Ids are 128 random
//! bits (32 hex digits) from the OS: nobody can post an alert in advance
//! under the id of an alarm to come.
//!
//! On the queue only, the message also carries `delivery_token`: 128 random
//! bits the hub made for this alert, which alertd sends back with its
//! "delivered" report to prove it read the alert. alertd takes it out
//! ([`AlertMessage::take_delivery_token`]) before anything reaches a hook
//! or the webhook, so no hook ever sees one. `priority` is one of
//! `alarm` (alarms and duress), `tamper`, `fault`, `info`. `sensor` and
//! `trace_id` may be absent.

#![forbid(unsafe_code)]

use serde::{Deserialize, Serialize};
use vigil_domain::AlertPriority;

/// An alert on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertMessage {
    pub id: String,
    pub priority: String,
    pub kind: String,
    pub title: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sensor: Option<String>,
    pub unix_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The W3C `traceparent` of the span that caused the alert, so that
    /// alertd's delivery spans join the same trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The proof of reading this alert from the queue (see the module
    /// docs); never shown to a hook or the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_token: Option<String>,
}

/// 128 random bits from the OS as 32 hex digits: an alert id or a delivery
/// token.
pub fn random_hex128() -> String {
    let mut bytes = [0u8; 16];
    // The OS's generator (getrandom(2)); failing it means the system has no
    // randomness at all, and no id that must not be guessed can be made.
    getrandom::fill(&mut bytes).expect("the OS random number generator failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two tokens in time that does not depend on where they differ.
pub fn tokens_match(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("an alert of {len} bytes does not fit the queue's {max}-byte messages")]
    TooLarge { len: usize, max: usize },
    #[error("not an alert: {0}")]
    Malformed(String),
}

/// The POSIX queue priority of an alert priority: higher is delivered first.
pub fn queue_priority(p: AlertPriority) -> u32 {
    match p {
        AlertPriority::Alarm => 30,
        AlertPriority::Tamper => 20,
        AlertPriority::Fault => 10,
        AlertPriority::Info => 0,
    }
}

impl AlertMessage {
    /// The priority, `Info` if unknown.
    pub fn priority(&self) -> AlertPriority {
        AlertPriority::parse(&self.priority).unwrap_or(AlertPriority::Info)
    }

    /// JSON bytes, checked against the queue's message size; a too-long
    /// message text is shortened rather than the alert lost.
    pub fn encode(&self, max: usize) -> Result<Vec<u8>, AlertError> {
        let bytes = serde_json::to_vec(self).map_err(|e| AlertError::Malformed(e.to_string()))?;
        if bytes.len() <= max {
            return Ok(bytes);
        }
        let mut short = self.clone();
        let cut = short.message.len().saturating_sub(bytes.len() - max + 3);
        let mut end = cut;
        while !short.message.is_char_boundary(end) {
            end -= 1;
        }
        short.message.truncate(end);
        short.message.push_str("...");
        let bytes = serde_json::to_vec(&short).map_err(|e| AlertError::Malformed(e.to_string()))?;
        if bytes.len() <= max {
            Ok(bytes)
        } else {
            Err(AlertError::TooLarge {
                len: bytes.len(),
                max,
            })
        }
    }

    /// Takes the delivery token out, so what is left can go to hooks and
    /// the webhook.
    pub fn take_delivery_token(&mut self) -> Option<String> {
        self.delivery_token.take()
    }

    pub fn decode(bytes: &[u8]) -> Result<AlertMessage, AlertError> {
        serde_json::from_slice(bytes).map_err(|e| AlertError::Malformed(e.to_string()))
    }

    /// One line of JSON for a hook's stdin.
    pub fn json_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned());
        line.push('\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(message: &str) -> AlertMessage {
        AlertMessage {
            id: "a-1".into(),
            priority: "alarm".into(),
            kind: "triggered".into(),
            title: "ALARM".into(),
            message: message.into(),
            sensor: Some("front-door".into()),
            unix_ms: 1,
            trace_id: None,
            traceparent: None,
            delivery_token: None,
        }
    }

    #[test]
    fn round_trips_and_long_messages_are_shortened_not_lost() {
        let a = alert("door");
        assert_eq!(
            AlertMessage::decode(&a.encode(8192).expect("enc")).expect("dec"),
            a
        );
        let long = alert(&"é".repeat(5000));
        let bytes = long.encode(1024).expect("shortened");
        assert!(bytes.len() <= 1024);
        let back = AlertMessage::decode(&bytes).expect("dec");
        assert!(back.message.ends_with("..."));
        assert_eq!(back.id, "a-1");
        assert!(AlertMessage::decode(b"{\"id\":1}").is_err());
        assert_eq!(queue_priority(AlertPriority::Alarm), 30);
        assert!(!a.json_line().contains("trace_id"));
    }

    #[test]
    fn ids_are_random_and_tokens_travel_only_on_the_queue() {
        let (a, b) = (random_hex128(), random_hex128());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(tokens_match(&a, &a.clone()) && !tokens_match(&a, &b) && !tokens_match(&a, ""));
        let mut queued = alert("door");
        queued.delivery_token = Some(a.clone());
        let mut read = AlertMessage::decode(&queued.encode(8192).expect("enc")).expect("dec");
        assert_eq!(read.take_delivery_token(), Some(a.clone()));
        assert!(!read.json_line().contains(&a));
        assert!(!read.json_line().contains("delivery_token"));
    }
}

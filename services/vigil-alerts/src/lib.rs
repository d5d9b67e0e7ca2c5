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
//! an alert carries the same id, so a hook can drop it. `priority` is one of
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
}

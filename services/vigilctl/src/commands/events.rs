//! `events`: the event stream, and how an event reads (also for
//! `history`).

use std::time::Duration;

use serde_json::json;
use vigil_proto::v1 as pb;

use super::{Context, Run, status};
use crate::error::Error;
use crate::output::{Render, mode_word, state_name, time_text};

/// The event stream.
#[derive(Debug, clap::Args)]
pub struct Events {
    /// Keep following new events (resumes by itself after a hub restart).
    #[arg(long)]
    pub follow: bool,
    /// Start after this sequence number (older events come from the
    /// hub's event log; 0: every event the hub keeps in memory).
    /// Default: the last 20 without --follow, only new ones with it.
    #[arg(long)]
    pub after: Option<u64>,
}

/// How long to wait before the first retry of a broken stream; doubled on
/// each failure up to [`MAX_BACKOFF`], so a restarting hub is not hammered.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Without `follow`: the events after `after` (default: the last 20) up to
/// now. With `follow`: from `after` on, for ever, reconnecting and resuming
/// after the last event seen whenever the stream ends (a hub restart, or
/// falling behind).
impl Run for Events {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        let mut last = self.after;
        let mut until = None;
        if !self.follow {
            let hub = ctx.connect().await?;
            let newest = status::get(&hub).await?.last_event_seq;
            let start = self.after.unwrap_or(newest.saturating_sub(20));
            if start >= newest {
                return Ok(());
            }
            last = Some(start);
            until = Some(newest);
        }
        let mut backoff = FIRST_BACKOFF;
        loop {
            match watch(ctx, &mut last, until, &mut backoff).await {
                Ok(()) if !self.follow => return Ok(()),
                Err(e) if !self.follow || e.is_final() => return Err(e),
                _ => {
                    eprintln!(
                        "vigilctl: event stream interrupted; resuming after {}",
                        last.map_or("now".to_owned(), |l| l.to_string())
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// One connection's worth of the stream: prints events after `last`
/// (keeping it up to date) until the stream ends or passes `until`.
async fn watch(
    ctx: &Context,
    last: &mut Option<u64>,
    until: Option<u64>,
    backoff: &mut Duration,
) -> Result<(), Error> {
    let hub = ctx.connect().await?;
    let request = pb::WatchEventsRequest { after_seq: *last };
    let mut stream = hub.answer(hub.alarm().watch_events(request).await)?;
    // The hub answered: whatever broke before is over.
    *backoff = FIRST_BACKOFF;
    while let Some(event) = hub.next(&mut stream).await? {
        *last = Some(event.seq);
        ctx.out.show(&event);
        if until.is_some_and(|u| event.seq >= u) {
            break;
        }
    }
    Ok(())
}

/// A sensor event's state ("active", "inactive", "unknown"); none for
/// other events.
fn sensor_state_word(state: i32) -> Option<&'static str> {
    match pb::SensorState::try_from(state) {
        Ok(pb::SensorState::Active) => Some("active"),
        Ok(pb::SensorState::Inactive) => Some("inactive"),
        Ok(pb::SensorState::Unknown) => Some("unknown"),
        Ok(pb::SensorState::Unspecified) | Err(_) => None,
    }
}

impl Render for pb::Event {
    fn json(&self) -> serde_json::Value {
        let given = |s: &String| (!s.is_empty()).then(|| s.clone());
        json!({
            "seq": self.seq,
            "unix_ms": self.unix_ms,
            "kind": self.kind,
            "sensor": given(&self.sensor),
            "sensor_state": sensor_state_word(self.sensor_state),
            "camera": given(&self.camera),
            "mode": mode_word(self.mode),
            "state": state_name(self.state),
            "user": given(&self.user),
            "source": self.source,
            "message": self.message,
            "trace_id": given(&self.trace_id),
        })
    }

    fn text(&self) -> String {
        let at = time_text(self.unix_ms);
        format!("{:>6}  {at}  {}\n", self.seq, self.message)
    }
}

//! `history`: past events from the hub's index (reportd's), filtered and
//! paged through up to a limit.

use vigil_proto::v1 as pb;

use super::{Context, Run};
use crate::error::Error;

/// Past events from the hub's index, filtered, oldest first.
#[derive(Debug, clap::Args)]
pub struct History {
    /// Since (RFC 3339 time, or a duration ago such as 2h or 7days).
    #[arg(long)]
    pub since: Option<String>,
    /// Until (RFC 3339 time, or a duration ago).
    #[arg(long)]
    pub until: Option<String>,
    /// Only these kinds (repeat, or comma-separate): triggered, armed...
    #[arg(long, value_delimiter = ',')]
    pub kind: Vec<String>,
    #[arg(long)]
    pub sensor: Option<String>,
    #[arg(long)]
    pub user: Option<String>,
    /// Newest first.
    #[arg(long)]
    pub newest_first: bool,
    /// Only events numbered after this one (as `events --after-seq`).
    #[arg(long, default_value_t = 0)]
    pub after_seq: u64,
    /// At most this many events (all pages are fetched up to it).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
}

/// The most events the hub is asked for in one page.
const PAGE: usize = 1000;

impl Run for History {
    async fn run(&self, ctx: &Context) -> Result<(), Error> {
        // The times are checked before connecting: a typo exits 2 at once.
        let mut request = pb::QueryEventsRequest {
            from_unix_ms: unix_ms(self.since.as_deref())?,
            to_unix_ms: unix_ms(self.until.as_deref())?,
            kinds: self.kind.clone(),
            sensor: self.sensor.clone().unwrap_or_default(),
            user: self.user.clone().unwrap_or_default(),
            newest_first: self.newest_first,
            page_size: 0,
            page_token: String::new(),
            after_seq: self.after_seq,
        };
        let hub = ctx.connect().await?;
        let mut printed = 0;
        while printed < self.limit {
            request.page_size = u32::try_from((self.limit - printed).min(PAGE)).unwrap_or(1000);
            let page = hub.answer(hub.reports().query_events(request.clone()).await)?;
            ctx.out.rows(&page.events);
            printed += page.events.len();
            if page.next_page_token.is_empty() {
                break;
            }
            request.page_token = page.next_page_token;
        }
        Ok(())
    }
}

/// A time flag as Unix milliseconds; 0 (no bound) when not given.
fn unix_ms(flag: Option<&str>) -> Result<i64, Error> {
    flag.map(parse_when)
        .transpose()
        .map(Option::unwrap_or_default)
}

/// A time given on the command line: RFC 3339, or a duration ago.
fn parse_when(text: &str) -> Result<i64, Error> {
    let bad = || Error::BadTime {
        text: text.to_owned(),
    };
    let at = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| bad())?;
            std::time::SystemTime::now()
                .checked_sub(ago)
                .ok_or_else(bad)?
        }
    };
    let ms = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_millis();
    i64::try_from(ms).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_duration_ago() {
        assert_eq!(parse_when("1970-01-01T00:00:01Z").expect("rfc 3339"), 1000);
        assert!(parse_when("2h").expect("ago") > 0);
        let bad = parse_when("garbage").expect_err("not a time");
        assert_eq!(bad.exit_code(), crate::error::exit::USAGE);
        assert_eq!(unix_ms(None).expect("no bound"), 0);
    }
}

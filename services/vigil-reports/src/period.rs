//! Report periods: a local calendar day, or an ISO week (Monday to Sunday).

use chrono::{DateTime, Datelike, Days, Local, NaiveDate, TimeZone, Timelike, Weekday};

use crate::ReportsError;

/// How long a report's period is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeriodKind {
    Daily,
    Weekly,
}

impl PeriodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PeriodKind::Daily => "daily",
            PeriodKind::Weekly => "weekly",
        }
    }
}

/// One day or one ISO week, in local time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    pub kind: PeriodKind,
    /// The day, or the Monday of the week.
    pub first_day: NaiveDate,
    /// `2026-11-24` or `2026-W48`.
    pub label: String,
    /// Local midnight that starts the period, as UTC milliseconds.
    pub from_unix_ms: i64,
    /// Local midnight that ends it (exclusive).
    pub to_unix_ms: i64,
}

/// Local midnight starting `day` (or the first instant of the day where a
/// DST change skips midnight).
pub(crate) fn local_midnight_ms(day: NaiveDate) -> i64 {
    for hour in 0..3 {
        if let Some(t) = day
            .and_hms_opt(hour, 0, 0)
            .and_then(|t| Local.from_local_datetime(&t).earliest())
        {
            return t.timestamp_millis();
        }
    }
    // No local time zone skips three hours; fall back to UTC midnight.
    day.and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc().timestamp_millis())
        .unwrap_or(0)
}

/// The local date and hour of day of a UTC instant.
pub(crate) fn local_day_hour(unix_ms: i64) -> Option<(NaiveDate, u32)> {
    let t: DateTime<Local> = Local.timestamp_millis_opt(unix_ms).single()?;
    Some((t.date_naive(), t.hour()))
}

/// The local UTC offset at an instant, `+01:00`.
pub(crate) fn utc_offset(unix_ms: i64) -> String {
    Local
        .timestamp_millis_opt(unix_ms)
        .single()
        .map(|t| t.format("%:z").to_string())
        .unwrap_or_else(|| "+00:00".into())
}

impl Period {
    /// The period of `kind` that contains `day`.
    pub fn containing(kind: PeriodKind, day: NaiveDate) -> Period {
        let first_day = match kind {
            PeriodKind::Daily => day,
            PeriodKind::Weekly => day
                .checked_sub_days(Days::new(u64::from(day.weekday().num_days_from_monday())))
                .unwrap_or(day),
        };
        let after = first_day
            .checked_add_days(Days::new(match kind {
                PeriodKind::Daily => 1,
                PeriodKind::Weekly => 7,
            }))
            .unwrap_or(first_day);
        let label = match kind {
            PeriodKind::Daily => first_day.format("%Y-%m-%d").to_string(),
            PeriodKind::Weekly => {
                let week = first_day.iso_week();
                format!("{}-W{:02}", week.year(), week.week())
            }
        };
        Period {
            kind,
            first_day,
            label,
            from_unix_ms: local_midnight_ms(first_day),
            to_unix_ms: local_midnight_ms(after),
        }
    }

    /// Today's day or week.
    pub fn current(kind: PeriodKind) -> Period {
        Period::containing(kind, Local::now().date_naive())
    }

    /// The period before this one.
    pub fn previous(&self) -> Period {
        let day = self
            .first_day
            .checked_sub_days(Days::new(1))
            .unwrap_or(self.first_day);
        Period::containing(self.kind, day)
    }

    /// Parses what a user names a period by: empty (the current one), a
    /// date `YYYY-MM-DD` (the period containing it) or, for weeks,
    /// `YYYY-Www`.
    pub fn parse(kind: PeriodKind, text: &str) -> Result<Period, ReportsError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(Period::current(kind));
        }
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Period::containing(kind, day));
        }
        if let Some((year, week)) = text.split_once("-W")
            && let (Ok(year), Ok(week)) = (year.parse::<i32>(), week.parse::<u32>())
            && let Some(monday) = NaiveDate::from_isoywd_opt(year, week, Weekday::Mon)
        {
            return Ok(Period::containing(kind, monday));
        }
        Err(ReportsError::BadPeriod(format!(
            "{text:?} is not a date: give YYYY-MM-DD (or YYYY-Www for a week), or nothing for \
             the current {}",
            match kind {
                PeriodKind::Daily => "day",
                PeriodKind::Weekly => "week",
            }
        )))
    }

    /// The days of the period.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.first_day
            .iter_days()
            .take(match self.kind {
                PeriodKind::Daily => 1,
                PeriodKind::Weekly => 7,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_start_on_monday_and_are_labelled_by_iso_week() {
        let thursday = NaiveDate::from_ymd_opt(2026, 11, 26).expect("date");
        let week = Period::containing(PeriodKind::Weekly, thursday);
        assert_eq!(
            week.first_day,
            NaiveDate::from_ymd_opt(2026, 11, 23).expect("date")
        );
        assert_eq!(week.label, "2026-W48");
        assert_eq!(week.days().len(), 7);
        assert_eq!(
            Period::parse(PeriodKind::Weekly, "2026-W48").expect("parse"),
            week
        );
        assert_eq!(
            Period::parse(PeriodKind::Weekly, "2026-11-29").expect("parse"),
            week
        );
        assert_eq!(week.previous().label, "2026-W47");
        // A week is 7 x 24 hours except across a DST change.
        let hours = (week.to_unix_ms - week.from_unix_ms) / 3_600_000;
        assert!((167..=169).contains(&hours), "{hours}");
    }

    #[test]
    fn days_and_bad_input() {
        let day = Period::parse(PeriodKind::Daily, "2026-02-28").expect("parse");
        assert_eq!(day.label, "2026-02-28");
        assert_eq!(day.previous().label, "2026-02-27");
        let err = Period::parse(PeriodKind::Daily, "yesterday").expect_err("bad");
        assert!(err.to_string().contains("YYYY-MM-DD"), "{err}");
        assert!(Period::parse(PeriodKind::Weekly, "2026-W60").is_err());
    }
}

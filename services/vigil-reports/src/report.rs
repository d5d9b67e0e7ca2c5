//! The report: what happened in a period, built from the index. [`Report`]
//! is a file format (the `.json` reports reportd writes, and the JSON body
//! of `GetReport`), documented in `docs/reports.md`; only it derives
//! serialization.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::period::{local_day_hour, utc_offset};
use crate::store::{BUCKET_MS, Event, ReadOnly};
use crate::{Period, ReportsError};

/// The version of the JSON format; a reader refuses a newer one.
pub const REPORT_FORMAT: u32 = 1;

/// How many entries a list keeps; the rest are counted in `*_omitted`.
const LIST_CAP: u32 = 500;

/// Kinds of event that mark a camera going away and coming back.
const CAMERA_OFFLINE: &str = "camera_offline";
const CAMERA_ONLINE: &str = "camera_online";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: u32,
    /// `daily` or `weekly`.
    pub period: String,
    /// `2026-11-24` or `2026-W48`.
    pub label: String,
    pub from_unix_ms: i64,
    pub to_unix_ms: i64,
    /// The local UTC offset at the start of the period, `+01:00`.
    pub utc_offset: String,
    pub generated_unix_ms: i64,
    /// The last log sequence number indexed when the report was built:
    /// events after it are not in the report yet.
    pub indexed_through_seq: u64,
    pub totals: Totals,
    /// Every alarm (the `triggered` events), with who ended it.
    pub alarms: Vec<AlarmEntry>,
    pub alarms_omitted: u64,
    /// Arming, armed and disarmed, with who and from where.
    pub timeline: Vec<ArmEntry>,
    pub timeline_omitted: u64,
    /// Events per sensor, most active first.
    pub sensors: Vec<SensorCounts>,
    /// Faults, fault clearances and tamper.
    pub faults: Vec<FaultEntry>,
    pub faults_omitted: u64,
    pub cameras: Vec<CameraUptime>,
    /// Events in each local hour of the day, 0 to 23, summed over the days.
    pub by_hour_of_day: Vec<u64>,
    /// The three busiest hours of the day, busiest first.
    pub busiest_hours: Vec<HourCount>,
    /// Events per local day.
    pub by_day: Vec<DayCount>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub events: u64,
    pub alarms: u64,
    pub arms: u64,
    pub disarms: u64,
    pub faults: u64,
    pub tampers: u64,
    pub sensor_changes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmEntry {
    pub seq: u64,
    pub unix_ms: i64,
    /// The sensor that caused it (none for a panic).
    pub sensor: Option<String>,
    pub mode: String,
    pub message: String,
    /// When the alarm was disarmed, and by whom (none: not yet).
    pub disarmed_unix_ms: Option<i64>,
    pub disarmed_by: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmEntry {
    pub seq: u64,
    pub unix_ms: i64,
    /// `arming`, `armed` or `disarmed`.
    pub kind: String,
    pub mode: String,
    /// The user whose PIN it was (none: a paired client without a PIN).
    pub user: Option<String>,
    /// Where the command came from (`grpc:<client>`, `fifo`, `schedule`).
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorCounts {
    pub sensor: String,
    /// Opened, closed, motion seen and cleared.
    pub changes: u64,
    pub faults: u64,
    pub tampers: u64,
    /// Every event that named the sensor.
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultEntry {
    pub seq: u64,
    pub unix_ms: i64,
    /// `fault`, `fault_cleared` or `tamper`.
    pub kind: String,
    pub sensor: Option<String>,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CameraUptime {
    pub camera: String,
    /// Share of the period (up to now, for the current one) it was online.
    pub uptime_percent: f64,
    pub offline_ms: i64,
    /// How many times it went offline.
    pub outages: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourCount {
    pub hour: u32,
    pub events: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayCount {
    /// `YYYY-MM-DD`, local.
    pub date: String,
    pub events: u64,
}

fn count(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

impl ReadOnly {
    /// Builds the report of `period` as of `now_unix_ms`; `cameras` are the
    /// configured ones (a camera that never went offline has no events).
    pub async fn report(
        &mut self,
        period: &Period,
        cameras: &[String],
        now_unix_ms: i64,
    ) -> Result<Report, ReportsError> {
        let (from, to) = (period.from_unix_ms, period.to_unix_ms);
        let indexed_through_seq = self.checkpoint().await?;

        // Counts, from the per-quarter-hour table: a week is at most
        // 672 quarters times the kinds and sensors seen, never the rows.
        let (first_bucket, end_bucket) = (from.div_euclid(BUCKET_MS), to.div_euclid(BUCKET_MS));
        let buckets = sqlx::query!(
            r#"SELECT bucket AS "bucket!", kind AS "kind!", sensor AS "sensor!", count AS "count!"
               FROM buckets WHERE bucket >= ?1 AND bucket < ?2"#,
            first_bucket,
            end_bucket
        )
        .fetch_all(&mut self.conn)
        .await?;
        let mut totals = Totals::default();
        let mut by_sensor: BTreeMap<String, SensorCounts> = BTreeMap::new();
        let mut by_hour = vec![0u64; 24];
        let mut by_day: BTreeMap<chrono::NaiveDate, u64> =
            period.days().into_iter().map(|d| (d, 0)).collect();
        for b in &buckets {
            let n = count(b.count);
            totals.events += n;
            match b.kind.as_str() {
                "triggered" => totals.alarms += n,
                "armed" => totals.arms += n,
                "disarmed" => totals.disarms += n,
                "fault" => totals.faults += n,
                "tamper" => totals.tampers += n,
                "sensor" => totals.sensor_changes += n,
                _ => {}
            }
            if !b.sensor.is_empty() {
                let s = by_sensor
                    .entry(b.sensor.clone())
                    .or_insert_with(|| SensorCounts {
                        sensor: b.sensor.clone(),
                        changes: 0,
                        faults: 0,
                        tampers: 0,
                        events: 0,
                    });
                s.events += n;
                match b.kind.as_str() {
                    "sensor" => s.changes += n,
                    "fault" => s.faults += n,
                    "tamper" => s.tampers += n,
                    _ => {}
                }
            }
            if let Some((day, hour)) = local_day_hour(b.bucket * BUCKET_MS) {
                by_hour[hour as usize] += n;
                if let Some(d) = by_day.get_mut(&day) {
                    *d += n;
                }
            }
        }
        let mut sensors: Vec<SensorCounts> = by_sensor.into_values().collect();
        sensors.sort_by(|a, b| b.events.cmp(&a.events).then(a.sensor.cmp(&b.sensor)));
        let mut busiest_hours: Vec<HourCount> = by_hour
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(hour, &events)| HourCount {
                hour: hour as u32,
                events,
            })
            .collect();
        busiest_hours.sort_by(|a, b| b.events.cmp(&a.events).then(a.hour.cmp(&b.hour)));
        busiest_hours.truncate(3);

        // Lists, from the rows of the few kinds they need: an ordered walk
        // of the (kind, time) index per kind, stopping at the cap.
        let triggered = self
            .first_of_kinds(&["triggered"], from, to, LIST_CAP)
            .await?;
        let mut alarms = Vec::with_capacity(triggered.len());
        for e in triggered {
            let at = e.unix_ms;
            let disarm = sqlx::query!(
                r#"SELECT unix_ms AS "unix_ms!", user, source AS "source!" FROM events
                   WHERE kind = 'disarmed' AND kind <> 'sensor' AND unix_ms >= ?1
                   ORDER BY unix_ms LIMIT 1"#,
                at
            )
            .fetch_optional(&mut self.conn)
            .await?;
            alarms.push(AlarmEntry {
                seq: e.seq,
                unix_ms: e.unix_ms,
                sensor: e.sensor,
                mode: e.mode,
                message: e.message,
                disarmed_unix_ms: disarm.as_ref().map(|d| d.unix_ms),
                disarmed_by: disarm.map(|d| d.user.unwrap_or(d.source)),
            });
        }
        let timeline: Vec<ArmEntry> = self
            .first_of_kinds(&["arming", "armed", "disarmed"], from, to, LIST_CAP)
            .await?
            .into_iter()
            .map(|e| ArmEntry {
                seq: e.seq,
                unix_ms: e.unix_ms,
                kind: e.kind,
                mode: e.mode,
                user: e.user,
                source: e.source,
            })
            .collect();
        let faults: Vec<FaultEntry> = self
            .first_of_kinds(&["fault", "fault_cleared", "tamper"], from, to, LIST_CAP)
            .await?
            .into_iter()
            .map(|e| FaultEntry {
                seq: e.seq,
                unix_ms: e.unix_ms,
                kind: e.kind,
                sensor: e.sensor,
                message: e.message,
            })
            .collect();
        let kind_total = |kinds: &[&str]| -> u64 {
            buckets
                .iter()
                .filter(|b| kinds.contains(&b.kind.as_str()))
                .map(|b| count(b.count))
                .sum()
        };
        let omitted = |total: u64, shown: usize| total.saturating_sub(shown as u64);
        let alarms_omitted = omitted(totals.alarms, alarms.len());
        let timeline_omitted =
            omitted(kind_total(&["arming", "armed", "disarmed"]), timeline.len());
        let faults_omitted = omitted(
            kind_total(&["fault", "fault_cleared", "tamper"]),
            faults.len(),
        );

        let cameras = self
            .camera_uptime(from, to.min(now_unix_ms.max(from)), cameras)
            .await?;

        Ok(Report {
            format: REPORT_FORMAT,
            period: period.kind.as_str().to_owned(),
            label: period.label.clone(),
            from_unix_ms: from,
            to_unix_ms: to,
            utc_offset: utc_offset(from),
            generated_unix_ms: now_unix_ms,
            indexed_through_seq,
            totals,
            alarms,
            alarms_omitted,
            timeline,
            timeline_omitted,
            sensors,
            faults,
            faults_omitted,
            cameras,
            by_hour_of_day: by_hour,
            busiest_hours,
            by_day: by_day
                .into_iter()
                .map(|(d, events)| DayCount {
                    date: d.format("%Y-%m-%d").to_string(),
                    events,
                })
                .collect(),
        })
    }

    /// Each camera's time online between `from` and `until`, from its
    /// offline and online events (and the last one before `from`).
    async fn camera_uptime(
        &mut self,
        from: i64,
        until: i64,
        configured: &[String],
    ) -> Result<Vec<CameraUptime>, ReportsError> {
        // Online unless the last event before the period says otherwise.
        let before = sqlx::query!(
            r#"SELECT sensor AS "camera!", kind AS "kind!", max(unix_ms) AS "unix_ms!: i64"
               FROM events INDEXED BY events_by_kind
               WHERE kind IN ('camera_offline', 'camera_online') AND kind <> 'sensor'
                 AND unix_ms < ?1 AND sensor IS NOT NULL
               GROUP BY sensor"#,
            from
        )
        .fetch_all(&mut self.conn)
        .await?;
        let mut offline_since: BTreeMap<String, Option<i64>> =
            configured.iter().map(|c| (c.clone(), None)).collect();
        for row in before {
            let state = (row.kind == CAMERA_OFFLINE).then_some(from);
            offline_since.insert(row.camera, state);
        }
        let changes = self
            .first_of_kinds(&[CAMERA_OFFLINE, CAMERA_ONLINE], from, until, 10_000)
            .await?;
        let mut offline_ms: BTreeMap<String, (i64, u64)> = BTreeMap::new();
        for Event {
            sensor,
            kind,
            unix_ms,
            ..
        } in changes
        {
            let Some(camera) = sensor else { continue };
            let since = offline_since.entry(camera.clone()).or_insert(None);
            let totals = offline_ms.entry(camera).or_insert((0, 0));
            match (kind.as_str(), *since) {
                (CAMERA_OFFLINE, None) => {
                    *since = Some(unix_ms);
                    totals.1 += 1;
                }
                (CAMERA_ONLINE, Some(start)) => {
                    totals.0 += unix_ms - start;
                    *since = None;
                }
                _ => {}
            }
        }
        let span = (until - from).max(1);
        Ok(offline_since
            .into_iter()
            .map(|(camera, since)| {
                let (mut offline, outages) = offline_ms.get(&camera).copied().unwrap_or((0, 0));
                if let Some(start) = since {
                    offline += until - start;
                }
                let offline = offline.clamp(0, span);
                CameraUptime {
                    camera,
                    uptime_percent: 100.0 * (span - offline) as f64 / span as f64,
                    offline_ms: offline,
                    outages,
                }
            })
            .collect())
    }
}

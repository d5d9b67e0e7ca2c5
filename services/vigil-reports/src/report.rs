//! The report: what happened in a period, built from the index. [`Report`]
//! is a file format (the `.json` reports reportd writes, and the JSON body
//! of `GetReport`), documented in `docs/reports.md`; only it derives
//! serialization.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_domain::{AlertPriority, Event, EventKind, KNOWN_KINDS};

use crate::period::{local_day_hour, utc_offset};
use crate::store::{BUCKET_MS, ReadOnly, unix_ms};
use crate::{Period, ReportsError};

/// The version of the JSON format; a reader refuses a newer one.
pub const REPORT_FORMAT: u32 = 1;

/// How many entries a list keeps; the rest are counted in `*_omitted`.
const LIST_CAP: u32 = 500;

/// What the report counts and lists as an alarm: `triggered` only, not
/// every kind of alarm priority. Deliberately: the other one, a duress code,
/// is a silent alarm, and a report is readable by guests and left in files;
/// it is kept in the private log, not in this index, and a report must not
/// show it even if it were.
fn is_alarm(kind: &EventKind) -> bool {
    *kind == EventKind::Triggered
}

/// Faults: the kinds alerted at fault priority (a sensor's fault, a camera
/// gone offline).
fn is_fault(kind: &EventKind) -> bool {
    kind.priority() == Some(AlertPriority::Fault)
}

/// Tamper: the kinds alerted at tamper priority (a tamper loop, a keypad
/// lockout).
fn is_tamper(kind: &EventKind) -> bool {
    kind.priority() == Some(AlertPriority::Tamper)
}

/// The faults list: faults and tamper, and also the fault clearances (info
/// priority, listed so that a reader sees when a fault ended).
fn in_fault_list(kind: &EventKind) -> bool {
    is_fault(kind) || is_tamper(kind) || *kind == EventKind::FaultCleared
}

/// The arming timeline: these three kinds. No class of `EventKind` names
/// them (alarm-class events also hold alarms, tamper and entry delays).
const ARM_CHANGES: [EventKind; 3] = [EventKind::Arming, EventKind::Armed, EventKind::Disarmed];

/// The kinds this build knows that `pick` holds, for the lists' walks of
/// the kind index.
fn kinds(pick: fn(&EventKind) -> bool) -> Vec<EventKind> {
    KNOWN_KINDS.into_iter().filter(pick).collect()
}

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
    /// Every alarm (the `triggered` events: see `is_alarm`), with who ended
    /// it.
    pub alarms: Vec<AlarmEntry>,
    pub alarms_omitted: u64,
    /// Arming, armed and disarmed, with who and from where.
    pub timeline: Vec<ArmEntry>,
    pub timeline_omitted: u64,
    /// Events per sensor, most active first.
    pub sensors: Vec<SensorCounts>,
    /// Faults, fault clearances and tamper (see `in_fault_list`).
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
    /// `triggered`.
    pub alarms: u64,
    /// `armed`.
    pub arms: u64,
    /// `disarmed`.
    pub disarms: u64,
    /// Events of fault priority.
    pub faults: u64,
    /// Events of tamper priority.
    pub tampers: u64,
    /// `sensor`.
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
    /// `fault`, `fault_cleared`, `tamper`, `camera_offline`, `lockout`
    /// (see `in_fault_list`).
    pub kind: String,
    pub sensor: Option<String>,
    /// The camera, for a camera's fault (absent in reports written before
    /// cameras had their own field).
    #[serde(default)]
    pub camera: Option<String>,
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
        // Each count's kind, once: the lists' omitted counts add them again.
        let kinds_of: Vec<EventKind> = buckets
            .iter()
            .map(|b| EventKind::from_name(&b.kind))
            .collect();
        for (b, kind) in buckets.iter().zip(&kinds_of) {
            let n = count(b.count);
            totals.events += n;
            let add = |total: &mut u64, yes: bool| *total += if yes { n } else { 0 };
            add(&mut totals.alarms, is_alarm(kind));
            add(&mut totals.arms, *kind == EventKind::Armed);
            add(&mut totals.disarms, *kind == EventKind::Disarmed);
            add(&mut totals.faults, is_fault(kind));
            add(&mut totals.tampers, is_tamper(kind));
            add(&mut totals.sensor_changes, *kind == EventKind::Sensor);
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
                add(&mut s.changes, *kind == EventKind::Sensor);
                add(&mut s.faults, is_fault(kind));
                add(&mut s.tampers, is_tamper(kind));
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
            .first_of_kinds(&kinds(is_alarm), from, to, LIST_CAP)
            .await?;
        let mut alarms = Vec::with_capacity(triggered.len());
        let disarmed = EventKind::Disarmed.as_str();
        for e in triggered {
            let at = unix_ms(&e);
            let disarm = sqlx::query!(
                r#"SELECT unix_ms AS "unix_ms!", user, source AS "source!"
                   FROM events INDEXED BY events_by_kind
                   WHERE kind = ?2 AND rare AND unix_ms >= ?1
                   ORDER BY unix_ms LIMIT 1"#,
                at,
                disarmed
            )
            .fetch_optional(&mut self.conn)
            .await?;
            alarms.push(AlarmEntry {
                seq: e.seq,
                unix_ms: at,
                sensor: e.sensor,
                mode: e.mode.as_str().to_owned(),
                message: e.message,
                disarmed_unix_ms: disarm.as_ref().map(|d| d.unix_ms),
                disarmed_by: disarm.map(|d| d.user.unwrap_or(d.source)),
            });
        }
        let timeline: Vec<ArmEntry> = self
            .first_of_kinds(&ARM_CHANGES, from, to, LIST_CAP)
            .await?
            .into_iter()
            .map(|e| ArmEntry {
                seq: e.seq,
                unix_ms: unix_ms(&e),
                kind: e.kind.as_str().to_owned(),
                mode: e.mode.as_str().to_owned(),
                user: e.user,
                source: e.source,
            })
            .collect();
        let faults: Vec<FaultEntry> = self
            .first_of_kinds(&kinds(in_fault_list), from, to, LIST_CAP)
            .await?
            .into_iter()
            .map(|e| FaultEntry {
                seq: e.seq,
                unix_ms: unix_ms(&e),
                kind: e.kind.as_str().to_owned(),
                sensor: e.sensor,
                camera: e.camera,
                message: e.message,
            })
            .collect();
        let kind_total = |pick: &dyn Fn(&EventKind) -> bool| -> u64 {
            buckets
                .iter()
                .zip(&kinds_of)
                .filter(|(_, kind)| pick(kind))
                .map(|(b, _)| count(b.count))
                .sum()
        };
        let omitted = |total: u64, shown: usize| total.saturating_sub(shown as u64);
        let alarms_omitted = omitted(totals.alarms, alarms.len());
        let timeline_omitted = omitted(
            kind_total(&|k: &EventKind| ARM_CHANGES.contains(k)),
            timeline.len(),
        );
        let faults_omitted = omitted(kind_total(&in_fault_list), faults.len());

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
        let (went_offline, came_online) = (EventKind::CameraOffline, EventKind::CameraOnline);
        let (offline_name, online_name) = (went_offline.as_str(), came_online.as_str());
        let before = sqlx::query!(
            r#"SELECT camera AS "camera!", kind AS "kind!", max(unix_ms) AS "unix_ms!: i64"
               FROM events INDEXED BY events_by_kind
               WHERE kind IN (?2, ?3) AND rare AND unix_ms < ?1 AND camera IS NOT NULL
               GROUP BY camera"#,
            from,
            offline_name,
            online_name
        )
        .fetch_all(&mut self.conn)
        .await?;
        let mut offline_since: BTreeMap<String, Option<i64>> =
            configured.iter().map(|c| (c.clone(), None)).collect();
        for row in before {
            let state = (EventKind::from_name(&row.kind) == went_offline).then_some(from);
            offline_since.insert(row.camera, state);
        }
        let changes = self
            .first_of_kinds(&[went_offline, came_online], from, until, 10_000)
            .await?;
        let mut offline_ms: BTreeMap<String, (i64, u64)> = BTreeMap::new();
        for e in changes {
            let at = unix_ms(&e);
            let Event { camera, kind, .. } = e;
            let Some(camera) = camera else { continue };
            let since = offline_since.entry(camera.clone()).or_insert(None);
            let totals = offline_ms.entry(camera).or_insert((0, 0));
            match (kind, *since) {
                (EventKind::CameraOffline, None) => {
                    *since = Some(at);
                    totals.1 += 1;
                }
                (EventKind::CameraOnline, Some(start)) => {
                    totals.0 += at - start;
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

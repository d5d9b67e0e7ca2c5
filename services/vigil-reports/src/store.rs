//! The database: the indexer's read-write handle and the hub's read-only one.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use foldhash::HashMap;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vigil_domain::{AlarmState, ArmedMode, Event, EventKind, SensorState};

use crate::ReportsError;

/// Whether events of `kind` are in the kind index (`events_by_kind`): every
/// kind but plain sensor changes, the most frequent by far. The mirror of
/// the schema's `rare` column (migration 0004), which queries that walk the
/// kind index state as `AND rare`.
pub(crate) fn in_kind_index(kind: &EventKind) -> bool {
    *kind != EventKind::Sensor
}

/// The most events one [`ReadOnly::query`] page returns.
pub const MAX_PAGE: u32 = 1000;

/// Which events a query wants; every field that is set must match.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    /// At or after this time.
    pub from_unix_ms: Option<i64>,
    /// Before this time.
    pub to_unix_ms: Option<i64>,
    /// Any of these kinds (empty: all).
    pub kinds: Vec<EventKind>,
    /// The name of a sensor or of a camera: the events that concern it
    /// (the API carries both in `Event.sensor`).
    pub sensor_or_camera: Option<String>,
    pub user: Option<String>,
    /// Only events numbered after this one.
    pub after_seq: Option<u64>,
}

/// The order of a query's events, by sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    OldestFirst,
    NewestFirst,
}

/// Where a page ends: the time and sequence number of its last event. Pages
/// are in time order (ties by sequence number), the order a person reads a
/// history in; a clock set back shows as events out of sequence order, not
/// as missing ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub unix_ms: i64,
    pub seq: u64,
}

impl Cursor {
    /// As a page token: `<unix_ms>:<seq>`.
    pub fn to_token(self) -> String {
        format!("{}:{}", self.unix_ms, self.seq)
    }

    /// Reads a page token; `None` if it is not one.
    pub fn from_token(token: &str) -> Option<Cursor> {
        let (ms, seq) = token.split_once(':')?;
        Some(Cursor {
            unix_ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

/// One page of a query.
#[derive(Debug, Default)]
pub struct Page {
    pub events: Vec<Event>,
    /// Where the next page starts, or `None` when this is the last page.
    pub next_cursor: Option<Cursor>,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The time of an event as the index and the API hold it (signed
/// milliseconds).
pub(crate) fn unix_ms(event: &Event) -> i64 {
    to_i64(event.unix_ms)
}

/// The indexer's handle (reportd): the only writer of the file.
#[derive(Debug)]
pub struct Index {
    path: PathBuf,
    conn: SqliteConnection,
    /// Copies committed pages from the WAL into the file, on a connection
    /// (and so a thread) of its own; stopped when the index is dropped.
    checkpointer: Checkpointer,
}

/// WAL pages (16 KiB) after which the indexer checkpoints itself, should
/// the checkpointer fall behind or fail: 64 MiB of WAL at most, in the
/// normal case.
const WAL_SAFETY_PAGES: &str = "4096";

/// Checkpoints the WAL after each commit of the indexer, from its own
/// connection. SQLite's automatic checkpoint runs inside the commit that
/// crosses the threshold, so the indexer would stop for the copy and its
/// fsyncs; here the copy runs beside the next batch. A passive checkpoint
/// never blocks the indexer or a reader; what it cannot copy yet waits for
/// the next one.
#[derive(Debug)]
struct Checkpointer {
    /// A commit happened (capacity 1: commits during a checkpoint make
    /// one more). Dropping it ends the loop, which closes its connection.
    committed: mpsc::Sender<()>,
    task: JoinHandle<()>,
}

impl Checkpointer {
    async fn start(options: &SqliteConnectOptions) -> Result<Checkpointer, sqlx::Error> {
        let mut conn = options.connect().await?;
        let (committed, mut wake) = mpsc::channel(1);
        let task = tokio::spawn(async move {
            while wake.recv().await.is_some() {
                // Static text, no table: nothing to check at compile time.
                if let Err(error) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(&mut conn)
                    .await
                {
                    // The indexer's own automatic checkpoint takes over.
                    tracing::warn!(%error, "reports database: background checkpoint failed; \
                        the indexer checkpoints itself from now on");
                    break;
                }
            }
            let _ = conn.close().await;
        });
        Ok(Checkpointer { committed, task })
    }

    fn committed(&self) {
        // Full: a checkpoint is already due, which will copy this commit too.
        let _ = self.committed.try_send(());
    }

    /// Ends the loop and waits until its connection is closed.
    async fn stop(self) {
        drop(self.committed);
        let _ = self.task.await;
    }
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

impl Index {
    /// Opens (creating it if missing) and migrates the database at `path`,
    /// in WAL mode so that the hub reads while this writes.
    pub async fn open(path: &Path) -> Result<Index, ReportsError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a power cut may lose the last transactions but
            // never corrupts the file, and the log still has those events:
            // the checkpoint is lost with them, so they are indexed again.
            .synchronous(SqliteSynchronous::Normal)
            // 16 KiB pages for a new file (an existing one keeps its own):
            // fewer, fuller B-tree pages to split and write per batch. The
            // rows are small and read in ranges, never one at a time.
            .page_size(16_384)
            // 64 MiB of page cache: the indexes take inserts all over
            // their pages, and evicting them costs more than the memory.
            .pragma("cache_size", "-65536")
            .busy_timeout(Duration::from_secs(5));
        let open_error = |source| ReportsError::Open {
            path: path.to_owned(),
            source,
        };
        let mut conn = options
            .clone()
            .pragma("wal_autocheckpoint", WAL_SAFETY_PAGES)
            .connect()
            .await
            .map_err(open_error)?;
        MIGRATOR
            .run(&mut conn)
            .await
            .map_err(|source| ReportsError::Migrate {
                path: path.to_owned(),
                source,
            })?;
        let checkpointer = Checkpointer::start(&options).await.map_err(open_error)?;
        Ok(Index {
            path: path.to_owned(),
            conn,
            checkpointer,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last sequence number indexed (0: none).
    pub async fn checkpoint(&mut self) -> Result<u64, ReportsError> {
        checkpoint(&mut self.conn).await
    }

    /// Indexes the log records after `after` up to and including `through`:
    /// `events` are the ones among them that are events, in sequence order
    /// (placeholders and other kinds of record are skipped but still
    /// covered by the checkpoint). Rows, counts and checkpoint commit
    /// together or not at all; a batch that does not start at the
    /// checkpoint, or holds an event outside its range, is refused.
    ///
    /// The same as [`Batch::new`] then [`Index::write`].
    pub async fn apply(
        &mut self,
        after: u64,
        through: u64,
        events: &[Event],
    ) -> Result<(), ReportsError> {
        self.write(Batch::new(after, through, events)?).await
    }

    /// Writes a batch made by [`Batch::new`]: rows, counts and checkpoint
    /// in one transaction, refused unless the batch starts at the
    /// checkpoint.
    pub async fn write(&mut self, batch: Batch) -> Result<(), ReportsError> {
        let Batch {
            after,
            through,
            events,
            ..
        } = batch;
        let mut tx = self.conn.begin().await?;
        let checkpoint = checkpoint(&mut tx).await?;
        if checkpoint != after {
            return Err(ReportsError::NotContiguous { checkpoint, after });
        }
        if events > 0 {
            // One statement for the whole batch (see `Batch`): sqlx runs
            // each statement on its connection's worker thread, so a
            // statement per row would cost a thread hand-off per event.
            // CROSS JOIN keeps the rows as the outer loop, so that SQLite
            // indexes the few shapes rather than scanning the rows once
            // per shape.
            let first_seq = to_i64(after.saturating_add(1));
            sqlx::query!(
                "WITH shapes AS MATERIALIZED ( \
                     SELECT key AS shape, value ->> 0 AS kind, value ->> 1 AS sensor, \
                         value ->> 2 AS camera, value ->> 3 AS sensor_state, \
                         value ->> 4 AS mode, value ->> 5 AS state, value ->> 6 AS user, \
                         value ->> 7 AS source, value ->> 8 AS message \
                     FROM jsonb_each(?2)) \
                 INSERT INTO events (unix_ms, seq, kind, sensor, camera, sensor_state, mode, \
                     state, user, source, message, trace_id) \
                 SELECT e.value ->> 0, ?3 + e.key, s.kind, s.sensor, s.camera, \
                     s.sensor_state, s.mode, s.state, s.user, s.source, s.message, \
                     e.value ->> 2 \
                 FROM jsonb_each(?1) AS e CROSS JOIN shapes AS s ON s.shape = e.value ->> 1 \
                 WHERE e.type = 'array'",
                batch.rows,
                batch.shapes,
                first_seq
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query!(
                "INSERT INTO buckets (bucket, kind, sensor, count) \
                 SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3 \
                 FROM jsonb_each(?1) WHERE true \
                 ON CONFLICT (bucket, kind, sensor) DO UPDATE SET count = count + excluded.count",
                batch.buckets
            )
            .execute(&mut *tx)
            .await?;
        }
        let through = to_i64(through);
        sqlx::query!("UPDATE checkpoint SET last_seq = ?1 WHERE id = 1", through)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.checkpointer.committed();
        Ok(())
    }

    /// Stops the checkpointer and closes the file: the last connection to
    /// close copies the rest of the WAL into it. Dropping the index instead
    /// does the same in the background, where a reader opening the file
    /// meanwhile may have to wait for it.
    pub async fn close(self) -> Result<(), ReportsError> {
        self.checkpointer.stop().await;
        self.conn.close().await?;
        Ok(())
    }

    /// Leaves the file self-contained (no `-wal` beside it) and closes it:
    /// what a rebuild does before it moves the new file into place.
    pub async fn close_self_contained(mut self) -> Result<(), ReportsError> {
        // Leaving WAL mode needs the only connection to the file.
        self.checkpointer.stop().await;
        // Pragmas touch no table, so there is nothing to check them
        // against at compile time: static text, no input.
        sqlx::raw_sql("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
            .execute(&mut self.conn)
            .await?;
        self.conn.close().await?;
        Ok(())
    }
}

/// The length of a quarter hour: the unit of the `buckets` table (every
/// time zone in use is a whole number of quarter hours from UTC).
pub(crate) const BUCKET_MS: i64 = 900_000;

/// A batch of events as SQLite takes it in one statement: JSON arrays,
/// which `jsonb_each` parses once into SQLite's binary JSON and walks in C,
/// handing each row on as binary JSON, so no row is parsed again.
///
/// Events repeat themselves: a door's "open" and "closed", the same mode
/// and state, the same source. So the text columns go once per distinct
/// combination (a shape: kind, sensor, mode, state, user, source, message)
/// and each row carries only what is its own: time, its shape's index and
/// trace id; its sequence number is its place in the array. SQLite
/// extracts three values per event instead of ten, which is most of the
/// cost of the insert.
///
/// Making one is CPU work that touches no database, so a caller can make
/// the next batch while [`Index::write`] writes this one.
#[derive(Debug)]
pub struct Batch {
    /// The records covered: after this one...
    after: u64,
    /// ...through this one.
    through: u64,
    /// How many of them are events (rows).
    events: usize,
    /// `[[unix_ms, shape, trace_id], ...]`, element `i` for record
    /// `after + 1 + i` (its sequence number is its place): `null` for a
    /// record that is not an event, and nothing after the last event.
    rows: String,
    /// `[[kind, sensor, camera, sensor_state, mode, state, user, source,
    /// message], ...]`: the columns of [`Row`] but time, sequence number and
    /// trace id, by their stored names (see [`Shape`]).
    shapes: String,
    /// The batch's counts per quarter hour, kind and sensor ('' for none):
    /// `[[bucket, kind, sensor, count], ...]`, added to `buckets`.
    buckets: String,
}

/// The text columns of an event as stored: the kind's, the mode's and the
/// alarm state's domain names (`as_str`), the sensor state's domain code
/// (`SensorState::code`, the table's stable number).
type Shape<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<u8>,
    &'static str,
    &'static str,
    Option<&'a str>,
    &'a str,
    &'a str,
);

/// An event's [`Shape`]: the one conversion from a domain event to the
/// stored columns (time, sequence number and trace id go in its row).
fn shape(e: &Event) -> Shape<'_> {
    (
        e.kind.as_str(),
        e.sensor.as_deref(),
        e.camera.as_deref(),
        e.sensor_state.map(SensorState::code),
        e.mode.as_str(),
        e.alarm.as_str(),
        e.user.as_deref(),
        &e.source,
        &e.message,
    )
}

impl Batch {
    /// Checks and encodes the events of the log records after `after`
    /// through `through` (see [`Index::apply`]).
    pub fn new(after: u64, through: u64, events: &[Event]) -> Result<Batch, ReportsError> {
        // Every sequence number is indexed once: the batch continues the
        // checkpoint (checked when it is written) and its events lie
        // inside it, in order. The table's key is (time, seq), so this
        // check is what keeps a sequence number from appearing twice.
        let mut previous = after;
        for event in events {
            if event.seq <= previous || event.seq > through {
                return Err(ReportsError::OutsideBatch {
                    seq: event.seq,
                    after,
                    through,
                });
            }
            previous = event.seq;
        }
        Batch::encode(after, through, events)
    }

    /// The last record the batch covers.
    pub fn through(&self) -> u64 {
        self.through
    }

    fn encode(after: u64, through: u64, events: &[Event]) -> Result<Batch, ReportsError> {
        // foldhash: the keys are our own events, not an attacker's, and
        // SipHash would be a tenth of the batch's time.
        let mut shape_of: HashMap<Shape<'_>, usize> = HashMap::default();
        let mut shapes: Vec<Shape<'_>> = Vec::new();
        // Counted per (quarter hour, shape) first: hashing two integers is
        // cheaper than two strings, and shapes are fewer than events.
        let mut per_shape: HashMap<(i64, usize), i64> = HashMap::default();
        let mut rows = Vec::with_capacity(events.len());
        let mut next_seq = after.saturating_add(1);
        for e in events {
            let shape = shape(e);
            let index = *shape_of.entry(shape).or_insert_with(|| {
                shapes.push(shape);
                shapes.len() - 1
            });
            let unix_ms = unix_ms(e);
            *per_shape
                .entry((unix_ms.div_euclid(BUCKET_MS), index))
                .or_default() += 1;
            // Records between events (placeholders) hold their places.
            while next_seq < e.seq {
                rows.push(None);
                next_seq += 1;
            }
            rows.push(Some((unix_ms, index, e.trace_id.as_deref())));
            next_seq += 1;
        }
        let mut counts: HashMap<(i64, &str, &str), i64> = HashMap::default();
        for ((bucket, index), n) in per_shape {
            let (kind, sensor, ..) = shapes[index];
            *counts
                .entry((bucket, kind, sensor.unwrap_or("")))
                .or_default() += n;
        }
        let buckets: Vec<_> = counts
            .into_iter()
            .map(|((bucket, kind, sensor), count)| (bucket, kind, sensor, count))
            .collect();
        Ok(Batch {
            after,
            through,
            events: events.len(),
            rows: json(&rows)?,
            shapes: json(&shapes)?,
            buckets: json(&buckets)?,
        })
    }
}

fn json(value: &impl serde::Serialize) -> Result<String, ReportsError> {
    serde_json::to_string(value).map_err(|e| ReportsError::Sql(sqlx::Error::Encode(e.into())))
}

async fn checkpoint(conn: &mut SqliteConnection) -> Result<u64, ReportsError> {
    let last = sqlx::query_scalar!("SELECT last_seq FROM checkpoint WHERE id = 1")
        .fetch_one(conn)
        .await?;
    Ok(to_u64(last))
}

/// The hub's handle: opened read-only for each request, so that it always
/// sees the current file (a rebuild replaces it) and can never write.
#[derive(Debug)]
pub struct ReadOnly {
    pub(crate) conn: SqliteConnection,
}

impl ReadOnly {
    /// Opens the database at `path` read-only; it must exist.
    pub async fn open(path: &Path) -> Result<ReadOnly, ReportsError> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(|source| ReportsError::Open {
                path: path.to_owned(),
                source,
            })?
            .read_only(true)
            .busy_timeout(Duration::from_secs(2));
        let conn = options
            .connect()
            .await
            .map_err(|source| ReportsError::Open {
                path: path.to_owned(),
                source,
            })?;
        Ok(ReadOnly { conn })
    }

    /// The last sequence number indexed (0: none).
    pub async fn checkpoint(&mut self) -> Result<u64, ReportsError> {
        checkpoint(&mut self.conn).await
    }

    /// One page of the events that match `filter`, in `order`, after
    /// `cursor` (a previous page's [`Page::next_cursor`]); at most `limit`
    /// (1 to [`MAX_PAGE`]) events.
    ///
    /// Every variant reads one range of a B-tree: the kind index when kinds
    /// are given and all are in it (a separate statement, because SQLite
    /// cannot use an index behind `?kinds IS NULL OR ...`), else the table
    /// itself, which is ordered by time and sequence number.
    pub async fn query(
        &mut self,
        filter: &EventFilter,
        order: Order,
        cursor: Option<Cursor>,
        limit: u32,
    ) -> Result<Page, ReportsError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let mut from = filter.from_unix_ms.unwrap_or(i64::MIN);
        let mut to = filter.to_unix_ms.unwrap_or(i64::MAX);
        // The cursor narrows the time range (so the index skips what was
        // read) and breaks ties by sequence number.
        let (cursor_ms, cursor_seq) = match (order, cursor) {
            (Order::OldestFirst, Some(c)) => {
                from = from.max(c.unix_ms);
                (c.unix_ms, to_i64(c.seq))
            }
            (Order::NewestFirst, Some(c)) => {
                to = to.min(c.unix_ms.saturating_add(1));
                (c.unix_ms, to_i64(c.seq))
            }
            (Order::OldestFirst, None) => (i64::MIN, 0),
            (Order::NewestFirst, None) => (i64::MAX, i64::MAX),
        };
        let names: Vec<&str> = filter.kinds.iter().map(EventKind::as_str).collect();
        let kinds = json(&names)?;
        let by_kind = !filter.kinds.is_empty() && filter.kinds.iter().all(in_kind_index);
        let kinds_or_all = (!filter.kinds.is_empty()).then_some(kinds.as_str());
        let (sensor, user) = (filter.sensor_or_camera.as_deref(), filter.user.as_deref());
        let after = filter.after_seq.map(to_i64);
        // One more than asked: whether there is a next page.
        let fetch = i64::from(limit) + 1;
        let conn = &mut self.conn;
        let rows: Vec<Row> = match (order, by_kind) {
            (Order::OldestFirst, false) => {
                sqlx::query_as!(
                    Row,
                    r#"SELECT seq AS "seq!", unix_ms AS "unix_ms!", kind AS "kind!",
                       sensor, camera, sensor_state, mode AS "mode!", state AS "state!", user,
                       source AS "source!", message AS "message!", trace_id
                       FROM events
                       WHERE unix_ms >= ?1 AND unix_ms < ?2 AND (unix_ms, seq) > (?3, ?4)
                         AND (?5 IS NULL OR sensor = ?5 OR camera = ?5)
                         AND (?6 IS NULL OR user = ?6)
                         AND (?8 IS NULL OR kind IN (SELECT value FROM json_each(?8)))
                         AND (?9 IS NULL OR seq > ?9)
                       ORDER BY unix_ms ASC, seq ASC LIMIT ?7"#,
                    from,
                    to,
                    cursor_ms,
                    cursor_seq,
                    sensor,
                    user,
                    fetch,
                    kinds_or_all,
                    after
                )
                .fetch_all(conn)
                .await?
            }
            (Order::NewestFirst, false) => {
                sqlx::query_as!(
                    Row,
                    r#"SELECT seq AS "seq!", unix_ms AS "unix_ms!", kind AS "kind!",
                       sensor, camera, sensor_state, mode AS "mode!", state AS "state!", user,
                       source AS "source!", message AS "message!", trace_id
                       FROM events
                       WHERE unix_ms >= ?1 AND unix_ms < ?2 AND (unix_ms, seq) < (?3, ?4)
                         AND (?5 IS NULL OR sensor = ?5 OR camera = ?5)
                         AND (?6 IS NULL OR user = ?6)
                         AND (?8 IS NULL OR kind IN (SELECT value FROM json_each(?8)))
                         AND (?9 IS NULL OR seq > ?9)
                       ORDER BY unix_ms DESC, seq DESC LIMIT ?7"#,
                    from,
                    to,
                    cursor_ms,
                    cursor_seq,
                    sensor,
                    user,
                    fetch,
                    kinds_or_all,
                    after
                )
                .fetch_all(conn)
                .await?
            }
            (Order::OldestFirst, true) => {
                sqlx::query_as!(
                    Row,
                    r#"SELECT seq AS "seq!", unix_ms AS "unix_ms!", kind AS "kind!",
                       sensor, camera, sensor_state, mode AS "mode!", state AS "state!", user,
                       source AS "source!", message AS "message!", trace_id
                       FROM events INDEXED BY events_by_kind
                       WHERE kind IN (SELECT value FROM json_each(?1)) AND rare
                         AND unix_ms >= ?2 AND unix_ms < ?3
                         AND (unix_ms, seq) > (?4, ?5)
                         AND (?6 IS NULL OR sensor = ?6 OR camera = ?6)
                         AND (?7 IS NULL OR user = ?7)
                         AND (?9 IS NULL OR seq > ?9)
                       ORDER BY unix_ms ASC, seq ASC LIMIT ?8"#,
                    kinds,
                    from,
                    to,
                    cursor_ms,
                    cursor_seq,
                    sensor,
                    user,
                    fetch,
                    after
                )
                .fetch_all(conn)
                .await?
            }
            (Order::NewestFirst, true) => {
                sqlx::query_as!(
                    Row,
                    r#"SELECT seq AS "seq!", unix_ms AS "unix_ms!", kind AS "kind!",
                       sensor, camera, sensor_state, mode AS "mode!", state AS "state!", user,
                       source AS "source!", message AS "message!", trace_id
                       FROM events INDEXED BY events_by_kind
                       WHERE kind IN (SELECT value FROM json_each(?1)) AND rare
                         AND unix_ms >= ?2 AND unix_ms < ?3
                         AND (unix_ms, seq) < (?4, ?5)
                         AND (?6 IS NULL OR sensor = ?6 OR camera = ?6)
                         AND (?7 IS NULL OR user = ?7)
                         AND (?9 IS NULL OR seq > ?9)
                       ORDER BY unix_ms DESC, seq DESC LIMIT ?8"#,
                    kinds,
                    from,
                    to,
                    cursor_ms,
                    cursor_seq,
                    sensor,
                    user,
                    fetch,
                    after
                )
                .fetch_all(conn)
                .await?
            }
        };
        let mut events: Vec<Event> = rows.into_iter().map(Row::into_event).collect();
        let more = events.len() > limit as usize;
        events.truncate(limit as usize);
        let next_cursor = if more {
            events.last().map(|e| Cursor {
                unix_ms: unix_ms(e),
                seq: e.seq,
            })
        } else {
            None
        };
        Ok(Page {
            events,
            next_cursor,
        })
    }
}

impl ReadOnly {
    /// The first `limit` events of one kind in `[from, to)`, in time order:
    /// one ordered walk of the covering kind index that stops at `limit`,
    /// however many there are, and never touches the rows. Nothing for a
    /// kind that is not in that index ([`EventKind::Sensor`]).
    pub async fn first_of_kind(
        &mut self,
        kind: &EventKind,
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<Event>, ReportsError> {
        let limit = i64::from(limit);
        let name = kind.as_str();
        let rows = sqlx::query_as!(
            Row,
            r#"SELECT seq AS "seq!", unix_ms AS "unix_ms!", kind AS "kind!",
               sensor, camera, sensor_state, mode AS "mode!", state AS "state!", user,
               source AS "source!", message AS "message!", trace_id
               FROM events INDEXED BY events_by_kind
               WHERE kind = ?1 AND rare AND unix_ms >= ?2 AND unix_ms < ?3
               ORDER BY unix_ms ASC, seq ASC LIMIT ?4"#,
            name,
            from,
            to,
            limit
        )
        .fetch_all(&mut self.conn)
        .await?;
        Ok(rows.into_iter().map(Row::into_event).collect())
    }

    /// The first `limit` events of any of `kinds` in `[from, to)`, in time
    /// order: a walk per kind, merged.
    pub async fn first_of_kinds(
        &mut self,
        kinds: &[EventKind],
        from: i64,
        to: i64,
        limit: u32,
    ) -> Result<Vec<Event>, ReportsError> {
        let mut all = Vec::new();
        for kind in kinds {
            all.extend(self.first_of_kind(kind, from, to, limit).await?);
        }
        all.sort_by_key(|e| (e.unix_ms, e.seq));
        all.truncate(limit as usize);
        Ok(all)
    }
}

/// A row of `events` as sqlx reads it: the wire type, private to the
/// store; [`Row::into_event`] is its one conversion (and [`shape`] the one
/// the other way).
pub(crate) struct Row {
    pub(crate) seq: i64,
    pub(crate) unix_ms: i64,
    pub(crate) kind: String,
    pub(crate) sensor: Option<String>,
    pub(crate) camera: Option<String>,
    pub(crate) sensor_state: Option<i64>,
    pub(crate) mode: String,
    pub(crate) state: String,
    pub(crate) user: Option<String>,
    pub(crate) source: String,
    pub(crate) message: String,
    pub(crate) trace_id: Option<String>,
}

/// Every alarm state, to read one by name (the domain has `as_str` for
/// them but no `parse`, unlike `ArmedMode`).
const ALARM_STATES: [AlarmState; 4] = [
    AlarmState::Idle,
    AlarmState::Arming,
    AlarmState::Pending,
    AlarmState::Triggered,
];

impl Row {
    /// The event a row holds. Names are the domain's; a mode or state name
    /// this build does not know (never written: migration 0004) reads as
    /// disarmed / idle and an unknown sensor state code as none, as the log
    /// record reads unknown codes; an unknown kind is kept by name.
    pub(crate) fn into_event(self) -> Event {
        Event {
            seq: to_u64(self.seq),
            unix_ms: to_u64(self.unix_ms),
            kind: EventKind::from_name(&self.kind),
            sensor: self.sensor,
            sensor_state: self
                .sensor_state
                .and_then(|code| u8::try_from(code).ok())
                .and_then(SensorState::from_code),
            camera: self.camera,
            mode: ArmedMode::parse(&self.mode).unwrap_or(ArmedMode::Disarmed),
            alarm: ALARM_STATES
                .into_iter()
                .find(|s| s.as_str() == self.state)
                .unwrap_or(AlarmState::Idle),
            user: self.user,
            source: self.source,
            message: self.message,
            trace_id: self.trace_id,
        }
    }
}

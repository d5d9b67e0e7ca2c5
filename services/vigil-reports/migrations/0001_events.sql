-- The index of the event log (docs/reports.md). One row per event record of
-- the log; the log is the source of truth and `vigil-reportd --rebuild`
-- recreates this file from it.

-- Every event, keyed by its log sequence number.
CREATE TABLE events (
    seq      INTEGER PRIMARY KEY NOT NULL,
    unix_ms  INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    sensor   TEXT,
    mode     TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    user     TEXT,
    source   TEXT    NOT NULL,
    message  TEXT    NOT NULL,
    trace_id TEXT
);
CREATE INDEX events_by_time ON events (unix_ms);
CREATE INDEX events_by_kind ON events (kind, unix_ms);

-- Events per quarter hour (unix_ms / 900 000: every time zone in use is
-- a whole number of quarter hours from UTC), kind and sensor ('' for none),
-- kept in the same transaction as the rows: the reports read these, not
-- millions of rows.
CREATE TABLE buckets (
    bucket INTEGER NOT NULL,
    kind   TEXT    NOT NULL,
    sensor TEXT    NOT NULL,
    count  INTEGER NOT NULL,
    PRIMARY KEY (bucket, kind, sensor)
) WITHOUT ROWID;

-- The last log sequence number indexed (0: none). Written in the same
-- transaction as the rows it covers, so that every record is indexed
-- exactly once.
CREATE TABLE checkpoint (
    id       INTEGER PRIMARY KEY NOT NULL CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO checkpoint (id, last_seq) VALUES (1, 0);

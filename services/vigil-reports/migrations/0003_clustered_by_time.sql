-- The rows in the order they are read: by time, then sequence number (the
-- order of QueryEvents' pages and of every report list). One B-tree per
-- event instead of two (the rowid table and a time index): new events
-- append at its end, and a page of history is one range of it.
--
-- Sequence numbers stay unique without a key of their own: a batch covers
-- the records after the checkpoint, its events lie inside it (checked
-- before the insert), and the checkpoint moves in the same transaction.
CREATE TABLE events_clustered (
    unix_ms  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    sensor   TEXT,
    mode     TEXT    NOT NULL,
    state    TEXT    NOT NULL,
    user     TEXT,
    source   TEXT    NOT NULL,
    message  TEXT    NOT NULL,
    trace_id TEXT,
    PRIMARY KEY (unix_ms, seq)
) WITHOUT ROWID;
INSERT INTO events_clustered
    (unix_ms, seq, kind, sensor, mode, state, user, source, message, trace_id)
    SELECT unix_ms, seq, kind, sensor, mode, state, user, source, message, trace_id
    FROM events;
-- Drops the old time index and the kind index with the old table.
DROP TABLE events;
ALTER TABLE events_clustered RENAME TO events;
-- As in 0002: every event that is not a plain sensor change, every column.
CREATE INDEX events_by_kind ON events
    (kind, unix_ms, seq, sensor, mode, state, user, source, message, trace_id)
    WHERE kind <> 'sensor';

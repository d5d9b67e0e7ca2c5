-- Lists in reports (alarms, the arm/disarm timeline, faults) read only the
-- rare kinds, and must not fetch rows scattered over the whole file: a
-- partial index that covers every column of every event that is not a
-- plain sensor change. Sensor changes (most rows) skip it, which also
-- makes them cheaper to insert; queries for them use the time index.
DROP INDEX events_by_kind;
CREATE INDEX events_by_kind ON events
    (kind, unix_ms, seq, sensor, mode, state, user, source, message, trace_id)
    WHERE kind <> 'sensor';

-- Rows hold the event as the log record now reads (vigil-logrecord, the
-- domain's `Event`): the camera in a column of its own and, for a sensor
-- change, the sensor's new state.
--
-- Modes and alarm states need no rewrite: the names stored so far (the
-- proto's names without their prefix, lower case) are the domain's names
-- (`ArmedMode::as_str`, `AlarmState::as_str`) for every mode and state.
-- The only other name was the one for a record without a mode or state
-- ('unspecified', before that 'unknown'), which no hub ever wrote; such a
-- row would read as disarmed / idle, as the log record reads a missing code.

-- The camera concerned (camera events); NULL for the rest.
ALTER TABLE events ADD COLUMN camera TEXT;
-- `SensorState::code` (0 unknown, 1 inactive, 2 active) for a sensor
-- change whose record says; NULL otherwise (every record written before
-- the log kept it, so every row indexed before this migration).
ALTER TABLE events ADD COLUMN sensor_state INTEGER;

-- Camera events used to name the camera in `sensor` (with source
-- 'camera'); the log record reads those as the camera (`from_record` in
-- vigil-logrecord), and so does a rebuild: so here. Found through the kind
-- index (camera events are not sensor changes).
UPDATE events SET camera = sensor, sensor = NULL
    WHERE kind IN ('camera_online', 'camera_offline', 'clip_recorded')
      AND kind <> 'sensor' AND source = 'camera' AND sensor IS NOT NULL;
-- Their counts were kept under the camera's name as the sensor; a camera
-- is not a sensor: counted under '' (no sensor), as new ones are.
INSERT INTO buckets (bucket, kind, sensor, count)
    SELECT bucket, kind, '', sum(count) FROM buckets
    WHERE kind IN ('camera_online', 'camera_offline', 'clip_recorded') AND sensor <> ''
    GROUP BY bucket, kind
    ON CONFLICT (bucket, kind, sensor) DO UPDATE SET count = count + excluded.count;
DELETE FROM buckets
    WHERE kind IN ('camera_online', 'camera_offline', 'clip_recorded') AND sensor <> '';

-- Whether the row is in the kind index: every kind but plain sensor
-- changes. The one place the index's SQL names a kind: a partial index's
-- condition must be a constant, and a query uses the index only if it
-- states that condition itself, so queries say `AND rare` (a term SQLite
-- matches to the index) where they would otherwise repeat the literal.
ALTER TABLE events ADD COLUMN rare INTEGER GENERATED ALWAYS AS (kind <> 'sensor') VIRTUAL;

-- As in 0002 and 0003, every column of every rare event, now with the new
-- ones; `rare` itself too, so that `AND rare` is answered from the index
-- (a virtual column is computed from the row otherwise).
DROP INDEX events_by_kind;
CREATE INDEX events_by_kind ON events
    (kind, unix_ms, seq, rare, sensor, camera, sensor_state, mode, state, user, source,
     message, trace_id)
    WHERE rare;

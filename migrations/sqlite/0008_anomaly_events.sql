-- Anomaly events from the edge's models (wire format v3,
-- docs/specs/anomaly-models.md §6) and alarm rules of kind 'anomaly'
-- (docs/specs/alarms.md). Keep equivalent to
-- migrations/postgres/0008_anomaly_events.sql.

-- Stored in the ingest transaction of the batch that carried them, so
-- exactly once with it. `asset` is the edge's asset name; alarms resolve it
-- to the cloud asset of that name linked to a point of the same gateway.
CREATE TABLE anomaly_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway_id      TEXT    NOT NULL REFERENCES gateways (id),
    -- The `sequence` of the batch that carried it.
    batch_sequence  INTEGER NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('raised', 'cleared')),
    asset           TEXT    NOT NULL,
    asset_class     TEXT    NOT NULL,
    model_id        TEXT    NOT NULL,
    model_version   TEXT    NOT NULL,
    ts_ms           INTEGER NOT NULL,
    window_start_ms INTEGER NOT NULL,
    score           REAL,
    raise_level     REAL,
    summary         TEXT    NOT NULL,
    -- JSON array: feature, unit, share, value, expected, text; largest share first.
    explanation     TEXT    NOT NULL,
    received_ms     INTEGER NOT NULL
);
CREATE INDEX anomaly_events_asset ON anomaly_events (gateway_id, asset, ts_ms);

-- alarm_rules.kind gains 'anomaly': SQLite cannot alter a CHECK, so the
-- table is rebuilt under its own name. Foreign keys (alarms,
-- alarm_eval_state → alarm_rules) are checked at commit: the DROP counts
-- the children as orphans and re-inserting their rules into the new
-- alarm_rules counts them back (SQLite counts deferred violations, it
-- does not re-scan, so the rows must go into the table of the final name).
PRAGMA defer_foreign_keys = ON;
CREATE TABLE alarm_rules_copy AS SELECT * FROM alarm_rules;
DROP TABLE alarm_rules;
CREATE TABLE alarm_rules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    -- Scope: one point, or every point linked with `point_role` to an asset of `asset_class`.
    point_id        INTEGER REFERENCES points (id),
    asset_class     TEXT,
    point_role      TEXT,
    kind            TEXT    NOT NULL CHECK (kind IN ('threshold', 'rate_of_change', 'anomaly')),
    -- JSON: the condition ({"type": "threshold", "op": ">", ...}).
    condition       TEXT    NOT NULL,
    severity        INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
    auto_work_order INTEGER NOT NULL,
    priority        INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 5),
    energy_weighted INTEGER NOT NULL,
    active          INTEGER NOT NULL,
    -- Samples older than from_ms minus the look-back are never evaluated.
    from_ms         INTEGER NOT NULL,
    -- Automatic work orders are created by this user (audit actor system:alarms).
    owner_id        INTEGER NOT NULL REFERENCES users (id),
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    CHECK ((point_id IS NOT NULL AND asset_class IS NULL AND point_role IS NULL)
        OR (point_id IS NULL AND asset_class IS NOT NULL AND point_role IS NOT NULL))
);
INSERT INTO alarm_rules SELECT * FROM alarm_rules_copy;
DROP TABLE alarm_rules_copy;

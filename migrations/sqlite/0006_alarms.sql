-- Alarms raised from ingested telemetry (docs/specs/alarms.md): rules,
-- alarms (at most one ACTIVE per rule and asset), and the evaluator's
-- per-target progress. Times are integer Unix milliseconds (UTC).
-- Keep equivalent to migrations/postgres/0006_alarms.sql.

CREATE TABLE alarm_rules (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    name            TEXT    NOT NULL,
    -- Scope: one point, or every point linked with `point_role` to an asset of `asset_class`.
    point_id        INTEGER REFERENCES points (id),
    asset_class     TEXT,
    point_role      TEXT,
    kind            TEXT    NOT NULL CHECK (kind IN ('threshold', 'rate_of_change')),
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

CREATE TABLE alarms (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id         INTEGER NOT NULL REFERENCES alarm_rules (id),
    site_id         INTEGER NOT NULL REFERENCES sites (id),
    asset_id        INTEGER NOT NULL REFERENCES assets (id),
    point_id        INTEGER NOT NULL REFERENCES points (id),
    severity        INTEGER NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'cleared')),
    acknowledged    INTEGER NOT NULL,
    acknowledged_by INTEGER REFERENCES users (id),
    acknowledged_ms INTEGER,
    -- Timestamp of the sample that raised / cleared it.
    raised_ms       INTEGER NOT NULL,
    cleared_ms      INTEGER,
    trigger_value   REAL,
    last_value      REAL,
    last_ms         INTEGER,
    work_order_id   INTEGER REFERENCES work_orders (id),
    repair_verified INTEGER NOT NULL,
    note            TEXT,
    -- JSON: rule snapshot, asset, telemetry window, energy estimate.
    evidence        TEXT    NOT NULL,
    created_ms      INTEGER NOT NULL,
    updated_ms      INTEGER NOT NULL,
    version         INTEGER NOT NULL
);
-- Deduplication: at most one ACTIVE alarm per rule and asset.
CREATE UNIQUE INDEX alarms_one_active ON alarms (rule_id, asset_id) WHERE state = 'active';
CREATE INDEX alarms_site_state ON alarms (site_id, state, id);
CREATE INDEX alarms_work_order ON alarms (work_order_id);

-- The evaluator's progress per rule, asset and point: samples with
-- ts_ms <= watermark_ms have been evaluated; pending_since_ms is the start
-- of a threshold breach not yet held for `for_s`.
CREATE TABLE alarm_eval_state (
    rule_id          INTEGER NOT NULL REFERENCES alarm_rules (id),
    asset_id         INTEGER NOT NULL,
    point_id         INTEGER NOT NULL,
    watermark_ms     INTEGER NOT NULL,
    pending_since_ms INTEGER,
    PRIMARY KEY (rule_id, asset_id, point_id)
);

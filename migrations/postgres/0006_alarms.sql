-- Alarms raised from ingested telemetry (docs/specs/alarms.md): rules,
-- alarms (at most one ACTIVE per rule and asset), and the evaluator's
-- per-target progress. Times are integer Unix milliseconds (UTC).
-- Keep equivalent to migrations/sqlite/0006_alarms.sql.

CREATE TABLE alarm_rules (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT    NOT NULL,
    -- Scope: one point, or every point linked with `point_role` to an asset of `asset_class`.
    point_id        BIGINT  REFERENCES points (id),
    asset_class     TEXT,
    point_role      TEXT,
    kind            TEXT    NOT NULL CHECK (kind IN ('threshold', 'rate_of_change')),
    -- JSON: the condition ({"type": "threshold", "op": ">", ...}).
    condition       TEXT    NOT NULL,
    severity        BIGINT  NOT NULL CHECK (severity BETWEEN 1 AND 4),
    auto_work_order BOOLEAN  NOT NULL,
    priority        BIGINT  NOT NULL CHECK (priority BETWEEN 1 AND 5),
    energy_weighted BOOLEAN  NOT NULL,
    active          BOOLEAN  NOT NULL,
    -- Samples older than from_ms minus the look-back are never evaluated.
    from_ms         BIGINT  NOT NULL,
    -- Automatic work orders are created by this user (audit actor system:alarms).
    owner_id        BIGINT  NOT NULL REFERENCES users (id),
    created_ms      BIGINT  NOT NULL,
    updated_ms      BIGINT  NOT NULL,
    version         BIGINT  NOT NULL,
    CHECK ((point_id IS NOT NULL AND asset_class IS NULL AND point_role IS NULL)
        OR (point_id IS NULL AND asset_class IS NOT NULL AND point_role IS NOT NULL))
);

CREATE TABLE alarms (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rule_id         BIGINT  NOT NULL REFERENCES alarm_rules (id),
    site_id         BIGINT  NOT NULL REFERENCES sites (id),
    asset_id        BIGINT  NOT NULL REFERENCES assets (id),
    point_id        BIGINT  NOT NULL REFERENCES points (id),
    severity        BIGINT  NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('active', 'cleared')),
    acknowledged    BOOLEAN  NOT NULL,
    acknowledged_by BIGINT  REFERENCES users (id),
    acknowledged_ms BIGINT,
    -- Timestamp of the sample that raised / cleared it.
    raised_ms       BIGINT  NOT NULL,
    cleared_ms      BIGINT,
    trigger_value   DOUBLE PRECISION,
    last_value      DOUBLE PRECISION,
    last_ms         BIGINT,
    work_order_id   BIGINT  REFERENCES work_orders (id),
    repair_verified BOOLEAN  NOT NULL,
    note            TEXT,
    -- JSON: rule snapshot, asset, telemetry window, energy estimate.
    evidence        TEXT    NOT NULL,
    created_ms      BIGINT  NOT NULL,
    updated_ms      BIGINT  NOT NULL,
    version         BIGINT  NOT NULL
);
-- Deduplication: at most one ACTIVE alarm per rule and asset.
CREATE UNIQUE INDEX alarms_one_active ON alarms (rule_id, asset_id) WHERE state = 'active';
CREATE INDEX alarms_site_state ON alarms (site_id, state, id);
CREATE INDEX alarms_work_order ON alarms (work_order_id);

-- The evaluator's progress per rule, asset and point: samples with
-- ts_ms <= watermark_ms have been evaluated; pending_since_ms is the start
-- of a threshold breach not yet held for `for_s`.
CREATE TABLE alarm_eval_state (
    rule_id          BIGINT  NOT NULL REFERENCES alarm_rules (id),
    asset_id         BIGINT  NOT NULL,
    point_id         BIGINT  NOT NULL,
    watermark_ms     BIGINT  NOT NULL,
    pending_since_ms BIGINT,
    PRIMARY KEY (rule_id, asset_id, point_id)
);

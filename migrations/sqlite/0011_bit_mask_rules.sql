-- Alarm rules of kind 'bit_mask': a condition on a register of event or
-- status bits (docs/specs/alarms.md). Keep equivalent to
-- migrations/postgres/0011_bit_mask_rules.sql.

-- SQLite cannot alter a CHECK: the table is rebuilt under its own name, as
-- in 0008 (see there why foreign keys are deferred and the rows go back
-- into a table of the final name).
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
    kind            TEXT    NOT NULL CHECK (kind IN ('threshold', 'rate_of_change', 'anomaly', 'bit_mask')),
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

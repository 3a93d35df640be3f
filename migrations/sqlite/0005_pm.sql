-- Preventive maintenance: plans (calendar, RRULE or meter schedules) and
-- the occurrences generated from them (docs/specs/preventive-maintenance.md).
-- Times are integer Unix milliseconds (UTC).
-- Keep equivalent to migrations/postgres/0005_pm.sql.

CREATE TABLE pm_plans (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id      INTEGER NOT NULL REFERENCES sites (id),
    asset_id     INTEGER REFERENCES assets (id),
    title        TEXT    NOT NULL,
    description  TEXT    NOT NULL,
    kind         TEXT    NOT NULL CHECK (kind IN ('preventive', 'inspection')),
    priority     INTEGER NOT NULL CHECK (priority BETWEEN 1 AND 5),
    -- JSON: {"type": "calendar" | "rrule" | "meter", ...}.
    schedule     TEXT    NOT NULL,
    horizon_days INTEGER NOT NULL,
    grace_days   INTEGER NOT NULL,
    active       INTEGER NOT NULL,
    -- Occurrences before this instant are neither generated nor counted
    -- (set on create, on reactivation and on a schedule change).
    from_ms      INTEGER NOT NULL,
    -- Generated work orders are created by this user (audit actor system:pm).
    owner_id     INTEGER NOT NULL REFERENCES users (id),
    created_ms   INTEGER NOT NULL,
    updated_ms   INTEGER NOT NULL,
    version      INTEGER NOT NULL
);
CREATE INDEX pm_plans_site ON pm_plans (site_id, id);

-- One row per occurrence ever considered: `generated` (with its work order)
-- or `missed` (catch-up after downtime: no work order). The unique key is
-- what makes generation idempotent across concurrent generators:
-- calendar plans key by the occurrence time (ms), meter plans by ordinal.
CREATE TABLE pm_occurrences (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    plan_id        INTEGER NOT NULL REFERENCES pm_plans (id),
    occurrence_key INTEGER NOT NULL,
    due_ms         INTEGER NOT NULL,
    -- The plan's grace at generation, so later edits do not rewrite history.
    grace_ms       INTEGER NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('generated', 'missed')),
    work_order_id  INTEGER REFERENCES work_orders (id),
    -- Meter plans: the reading that triggered it.
    meter_value    REAL,
    created_ms     INTEGER NOT NULL,
    UNIQUE (plan_id, occurrence_key)
);
CREATE INDEX pm_occurrences_due ON pm_occurrences (due_ms);

-- Work-order detail: crews, checklists (tasks with recorded results),
-- comments, SLA due time, follow-up links; and outgoing webhooks with their
-- delivery outbox. Times are integer Unix milliseconds (UTC).
-- Keep equivalent to migrations/postgres/0007_work_order_detail.sql.

CREATE TABLE crews (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    site_id    INTEGER NOT NULL REFERENCES sites (id),
    name       TEXT    NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    UNIQUE (site_id, name)
);

CREATE TABLE crew_members (
    crew_id INTEGER NOT NULL REFERENCES crews (id),
    user_id INTEGER NOT NULL REFERENCES users (id),
    PRIMARY KEY (crew_id, user_id)
);
CREATE INDEX crew_members_user ON crew_members (user_id);

ALTER TABLE work_orders ADD COLUMN crew_id INTEGER REFERENCES crews (id);
-- The work order whose failed checklist item raised this one.
ALTER TABLE work_orders ADD COLUMN parent_id INTEGER REFERENCES work_orders (id);
-- created_ms + the SLA of the priority (docs/specs/work-order-lifecycle.md).
ALTER TABLE work_orders ADD COLUMN sla_due_ms INTEGER;
-- Existing orders get the SLA of their priority too.
UPDATE work_orders SET sla_due_ms = created_ms + CASE priority
    WHEN 1 THEN 14400000 WHEN 2 THEN 86400000 WHEN 3 THEN 259200000
    WHEN 4 THEN 604800000 ELSE 2592000000 END;
CREATE INDEX work_orders_sla ON work_orders (sla_due_ms);
CREATE INDEX work_orders_parent ON work_orders (parent_id);

CREATE TABLE work_order_tasks (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id     INTEGER NOT NULL REFERENCES work_orders (id),
    position          INTEGER NOT NULL,
    text              TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('pass_fail', 'number', 'text')),
    unit              TEXT,
    min_value         REAL,
    max_value         REAL,
    required          INTEGER NOT NULL,
    follow_up_on_fail INTEGER NOT NULL,
    -- The recorded result (JSON value), NULL until answered.
    value_json        TEXT,
    passed            INTEGER,
    note              TEXT    NOT NULL,
    result_by         INTEGER REFERENCES users (id),
    result_ms         INTEGER,
    follow_up_id      INTEGER REFERENCES work_orders (id),
    created_ms        INTEGER NOT NULL,
    updated_ms        INTEGER NOT NULL,
    version           INTEGER NOT NULL,
    UNIQUE (work_order_id, position)
);

CREATE TABLE work_order_comments (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    work_order_id INTEGER NOT NULL REFERENCES work_orders (id),
    user_id       INTEGER NOT NULL REFERENCES users (id),
    body          TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL
);
CREATE INDEX work_order_comments_wo ON work_order_comments (work_order_id, id);

CREATE TABLE webhook_subscriptions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    url        TEXT    NOT NULL,
    -- HMAC key; never returned after creation.
    secret     TEXT    NOT NULL,
    -- JSON array of event types.
    events     TEXT    NOT NULL,
    active     INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    version    INTEGER NOT NULL
);

-- The outbox: one row per (event, subscription), written in the
-- transaction of the change; the delivery task works it off.
CREATE TABLE webhook_deliveries (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id INTEGER NOT NULL REFERENCES webhook_subscriptions (id),
    event           TEXT    NOT NULL,
    -- The exact body sent (and signed).
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_ms      INTEGER NOT NULL,
    delivered_ms    INTEGER
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);
CREATE INDEX webhook_deliveries_sub ON webhook_deliveries (subscription_id, id);

-- Work-order detail: crews, checklists (tasks with recorded results),
-- comments, SLA due time, follow-up links; and outgoing webhooks with their
-- delivery outbox. Times are integer Unix milliseconds (UTC).
-- Keep equivalent to migrations/sqlite/0007_work_order_detail.sql.

CREATE TABLE crews (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id    BIGINT  NOT NULL REFERENCES sites (id),
    name       TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL,
    updated_ms BIGINT  NOT NULL,
    version    BIGINT  NOT NULL,
    UNIQUE (site_id, name)
);

CREATE TABLE crew_members (
    crew_id BIGINT  NOT NULL REFERENCES crews (id),
    user_id BIGINT  NOT NULL REFERENCES users (id),
    PRIMARY KEY (crew_id, user_id)
);
CREATE INDEX crew_members_user ON crew_members (user_id);

ALTER TABLE work_orders ADD COLUMN crew_id BIGINT REFERENCES crews (id);
-- The work order whose failed checklist item raised this one.
ALTER TABLE work_orders ADD COLUMN parent_id BIGINT REFERENCES work_orders (id);
-- created_ms + the SLA of the priority (docs/specs/work-order-lifecycle.md).
ALTER TABLE work_orders ADD COLUMN sla_due_ms BIGINT;
-- Existing orders get the SLA of their priority too.
UPDATE work_orders SET sla_due_ms = created_ms + CASE priority
    WHEN 1 THEN 14400000 WHEN 2 THEN 86400000 WHEN 3 THEN 259200000
    WHEN 4 THEN 604800000 ELSE 2592000000 END;
CREATE INDEX work_orders_sla ON work_orders (sla_due_ms);
CREATE INDEX work_orders_parent ON work_orders (parent_id);

CREATE TABLE work_order_tasks (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id     BIGINT  NOT NULL REFERENCES work_orders (id),
    position          BIGINT  NOT NULL,
    text              TEXT    NOT NULL,
    kind              TEXT    NOT NULL CHECK (kind IN ('pass_fail', 'number', 'text')),
    unit              TEXT,
    min_value         DOUBLE PRECISION,
    max_value         DOUBLE PRECISION,
    required          BOOLEAN NOT NULL,
    follow_up_on_fail BOOLEAN NOT NULL,
    -- The recorded result (JSON value), NULL until answered.
    value_json        TEXT,
    passed            BOOLEAN,
    note              TEXT    NOT NULL,
    result_by         BIGINT REFERENCES users (id),
    result_ms         BIGINT,
    follow_up_id      BIGINT REFERENCES work_orders (id),
    created_ms        BIGINT  NOT NULL,
    updated_ms        BIGINT  NOT NULL,
    version           BIGINT  NOT NULL,
    UNIQUE (work_order_id, position)
);

CREATE TABLE work_order_comments (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id BIGINT  NOT NULL REFERENCES work_orders (id),
    user_id       BIGINT  NOT NULL REFERENCES users (id),
    body          TEXT    NOT NULL,
    created_ms    BIGINT  NOT NULL
);
CREATE INDEX work_order_comments_wo ON work_order_comments (work_order_id, id);

CREATE TABLE webhook_subscriptions (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    url        TEXT    NOT NULL,
    -- HMAC key; never returned after creation.
    secret     TEXT    NOT NULL,
    -- JSON array of event types.
    events     TEXT    NOT NULL,
    active     BOOLEAN NOT NULL,
    created_ms BIGINT  NOT NULL,
    updated_ms BIGINT  NOT NULL,
    version    BIGINT  NOT NULL
);

-- The outbox: one row per (event, subscription), written in the
-- transaction of the change; the delivery task works it off.
CREATE TABLE webhook_deliveries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscription_id BIGINT  NOT NULL REFERENCES webhook_subscriptions (id),
    event           TEXT    NOT NULL,
    -- The exact body sent (and signed).
    body            TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        BIGINT  NOT NULL,
    next_attempt_ms BIGINT  NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    created_ms      BIGINT  NOT NULL,
    delivered_ms    BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_ms);
CREATE INDEX webhook_deliveries_sub ON webhook_deliveries (subscription_id, id);

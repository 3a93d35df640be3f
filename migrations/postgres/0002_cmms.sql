-- CMMS core, part 1: users and tokens, sites and assets (with links to
-- telemetry points), work orders with their status history, and the
-- hash-chained audit log. Times are integer Unix milliseconds (UTC).
-- Every updatable row has `version`, bumped on each change (optimistic
-- concurrency: a client sends back the version it read).
-- Keep equivalent to migrations/sqlite/0002_cmms.sql.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL,
    -- argon2id PHC string; never returned by the API.
    password_hash TEXT    NOT NULL,
    active        BOOLEAN  NOT NULL,
    created_ms    BIGINT    NOT NULL,
    updated_ms    BIGINT    NOT NULL,
    version       BIGINT    NOT NULL
);

-- Login sessions and integration API tokens; only a SHA-256 of the secret
-- is kept (the token is random, so a slow hash buys nothing).
CREATE TABLE tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT    NOT NULL REFERENCES users (id),
    kind         TEXT    NOT NULL CHECK (kind IN ('session', 'api')),
    name         TEXT    NOT NULL,
    secret_sha256 TEXT   NOT NULL UNIQUE,
    created_ms   BIGINT    NOT NULL,
    expires_ms   BIGINT ,
    revoked_ms   BIGINT 
);

CREATE TABLE sites (
    id                    BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code                  TEXT    NOT NULL UNIQUE,
    name                  TEXT    NOT NULL,
    kind                  TEXT    NOT NULL CHECK (kind IN ('solar', 'wind', 'bess', 'hybrid')),
    ac_capacity_kw        DOUBLE PRECISION  NOT NULL,
    dc_capacity_kwp       DOUBLE PRECISION,
    latitude              DOUBLE PRECISION  NOT NULL,
    longitude             DOUBLE PRECISION  NOT NULL,
    time_zone             TEXT    NOT NULL,
    grid_connection_point TEXT    NOT NULL,
    created_ms            BIGINT    NOT NULL,
    updated_ms            BIGINT    NOT NULL,
    version               BIGINT    NOT NULL
);

-- site -> asset -> component, any depth (parent_id NULL = directly under the site).
CREATE TABLE assets (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id         BIGINT    NOT NULL REFERENCES sites (id),
    parent_id       BIGINT    REFERENCES assets (id),
    name            TEXT    NOT NULL,
    class           TEXT    NOT NULL,
    make            TEXT    NOT NULL,
    model           TEXT    NOT NULL,
    serial          TEXT    NOT NULL,
    -- JSON object of nameplate ratings, e.g. {"rated_power_kw": 100}.
    nameplate       TEXT    NOT NULL,
    commissioned_on TEXT,
    criticality     BIGINT    NOT NULL CHECK (criticality BETWEEN 1 AND 5),
    -- JSON array of strings.
    tags            TEXT    NOT NULL,
    created_ms      BIGINT    NOT NULL,
    updated_ms      BIGINT    NOT NULL,
    version         BIGINT    NOT NULL
);
CREATE INDEX assets_site ON assets (site_id, id);
CREATE INDEX assets_parent ON assets (parent_id);

-- Telemetry points (from the gateway registry) that describe an asset.
CREATE TABLE asset_points (
    asset_id BIGINT  NOT NULL REFERENCES assets (id),
    point_id BIGINT  NOT NULL REFERENCES points (id),
    role     TEXT  NOT NULL,
    PRIMARY KEY (asset_id, point_id)
);

CREATE TABLE work_orders (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id       BIGINT    NOT NULL REFERENCES sites (id),
    asset_id      BIGINT    REFERENCES assets (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('corrective', 'preventive', 'predictive', 'inspection')),
    title         TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    priority      BIGINT    NOT NULL CHECK (priority BETWEEN 1 AND 5),
    status        TEXT    NOT NULL,
    status_reason TEXT,
    assignee_id   BIGINT    REFERENCES users (id),
    due_ms        BIGINT ,
    created_by    BIGINT    NOT NULL REFERENCES users (id),
    created_ms    BIGINT    NOT NULL,
    updated_ms    BIGINT    NOT NULL,
    version       BIGINT    NOT NULL
);
CREATE INDEX work_orders_site_status ON work_orders (site_id, status, id);
CREATE INDEX work_orders_assignee ON work_orders (assignee_id, status);

CREATE TABLE work_order_history (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    work_order_id BIGINT    NOT NULL REFERENCES work_orders (id),
    at_ms         BIGINT    NOT NULL,
    user_id       BIGINT    NOT NULL REFERENCES users (id),
    from_status   TEXT,
    to_status     TEXT    NOT NULL,
    reason        TEXT,
    comment       TEXT    NOT NULL
);
CREATE INDEX work_order_history_wo ON work_order_history (work_order_id, id);

-- Append-only: every change, who/what/when, before and after, chained by
-- SHA-256 so an edited or deleted row is detectable (`dcmms-cloud audit verify`).
CREATE TABLE audit_log (
    seq         BIGINT    PRIMARY KEY,
    at_ms       BIGINT    NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    entity      TEXT    NOT NULL,
    entity_id   TEXT    NOT NULL,
    before_json TEXT,
    after_json  TEXT,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL
);

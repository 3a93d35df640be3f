-- Gateways, exactly-once batch ledger, point registry and raw samples.
-- Times are integer Unix milliseconds (UTC) on both databases.

CREATE TABLE gateways (
    id            TEXT    PRIMARY KEY,
    name          TEXT    NOT NULL,
    secret_sha256 TEXT    NOT NULL,
    created_ms    INTEGER NOT NULL,
    last_seen_ms  INTEGER,
    last_sequence INTEGER
);

CREATE TABLE ingested_batches (
    gateway_id   TEXT    NOT NULL REFERENCES gateways (id),
    sequence     INTEGER NOT NULL,
    received_ms  INTEGER NOT NULL,
    sample_count INTEGER NOT NULL,
    PRIMARY KEY (gateway_id, sequence)
);

CREATE TABLE points (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway_id TEXT    NOT NULL REFERENCES gateways (id),
    device     TEXT    NOT NULL,
    point      TEXT    NOT NULL,
    unit       TEXT    NOT NULL,
    UNIQUE (gateway_id, device, point)
);

CREATE TABLE samples (
    point_id INTEGER NOT NULL REFERENCES points (id),
    ts_ms    INTEGER NOT NULL,
    value    REAL,
    quality  INTEGER NOT NULL
);

CREATE INDEX samples_point_ts ON samples (point_id, ts_ms);

-- Gateways, exactly-once batch ledger, point registry and raw samples.
-- Times are integer Unix milliseconds (UTC) on both databases.

CREATE TABLE gateways (
    id            TEXT   PRIMARY KEY,
    name          TEXT   NOT NULL,
    secret_sha256 TEXT   NOT NULL,
    created_ms    BIGINT NOT NULL,
    last_seen_ms  BIGINT,
    last_sequence BIGINT
);

CREATE TABLE ingested_batches (
    gateway_id   TEXT   NOT NULL REFERENCES gateways (id),
    sequence     BIGINT NOT NULL,
    received_ms  BIGINT NOT NULL,
    sample_count BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, sequence)
);

CREATE TABLE points (
    id         BIGSERIAL PRIMARY KEY,
    gateway_id TEXT      NOT NULL REFERENCES gateways (id),
    device     TEXT      NOT NULL,
    point      TEXT      NOT NULL,
    unit       TEXT      NOT NULL,
    UNIQUE (gateway_id, device, point)
);

CREATE TABLE samples (
    point_id BIGINT           NOT NULL REFERENCES points (id),
    ts_ms    BIGINT           NOT NULL,
    value    DOUBLE PRECISION,
    quality  SMALLINT         NOT NULL
);

CREATE INDEX samples_point_ts ON samples (point_id, ts_ms);

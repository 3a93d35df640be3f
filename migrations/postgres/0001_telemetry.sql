-- Gateways, exactly-once batch ledger, point registry, raw samples, rollups
-- maintained on ingest, and the data loss gateways report.
-- Times are integer Unix milliseconds (UTC) on both databases.
-- Keep equivalent to migrations/sqlite/0001_telemetry.sql.

CREATE TABLE gateways (
    id                TEXT   PRIMARY KEY,
    name              TEXT   NOT NULL,
    secret_sha256     TEXT   NOT NULL,
    created_ms        BIGINT NOT NULL,
    last_seen_ms      BIGINT,
    -- Highest `sequence` stored.
    last_sequence     BIGINT,
    -- Highest `polled_through_ms` (watermark) of any stored batch.
    polled_through_ms BIGINT
);

-- One row per stored batch, covering sequences first_sequence..=sequence.
-- The key is (gateway_id, sequence) so identical concurrent deliveries
-- serialise on it; stored ranges of one gateway never overlap (checked on
-- ingest under the gateway row lock).
CREATE TABLE ingested_batches (
    gateway_id     TEXT   NOT NULL REFERENCES gateways (id),
    first_sequence BIGINT NOT NULL,
    sequence       BIGINT NOT NULL,
    received_ms    BIGINT NOT NULL,
    sample_count   BIGINT NOT NULL,
    PRIMARY KEY (gateway_id, sequence),
    CHECK (first_sequence <= sequence)
);

CREATE TABLE points (
    id         BIGSERIAL PRIMARY KEY,
    gateway_id TEXT      NOT NULL REFERENCES gateways (id),
    device     TEXT      NOT NULL,
    point      TEXT      NOT NULL,
    unit       TEXT      NOT NULL,
    UNIQUE (gateway_id, device, point)
);

-- Partitioned by day of ts_ms; the service creates partitions
-- samples_pYYYYMMDD (UTC) FOR VALUES FROM (day start) TO (next day start)
-- on demand and drops whole partitions for retention.
-- No foreign key to points: ids come only from the (never deleted) registry,
-- and a per-row check would dominate the cost of COPY.
CREATE TABLE samples (
    point_id BIGINT           NOT NULL,
    ts_ms    BIGINT           NOT NULL,
    value    DOUBLE PRECISION,
    quality  SMALLINT         NOT NULL
) PARTITION BY RANGE (ts_ms);

CREATE INDEX samples_point_ts ON samples (point_id, ts_ms);

-- Per point and bucket: `samples` counts every sample, `count` those with a
-- value (non-finite values are stored as NULL and not aggregated); `sum`,
-- `min`, `max` are over the values (min/max NULL while count = 0).
CREATE TABLE rollups_1m (
    point_id  BIGINT           NOT NULL,
    bucket_ms BIGINT           NOT NULL,
    samples   BIGINT           NOT NULL,
    count     BIGINT           NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    min       DOUBLE PRECISION,
    max       DOUBLE PRECISION,
    PRIMARY KEY (point_id, bucket_ms)
);

CREATE TABLE rollups_15m (
    point_id  BIGINT           NOT NULL,
    bucket_ms BIGINT           NOT NULL,
    samples   BIGINT           NOT NULL,
    count     BIGINT           NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    min       DOUBLE PRECISION,
    max       DOUBLE PRECISION,
    PRIMARY KEY (point_id, bucket_ms)
);

-- Drop reports, stored once with the batch that carried them
-- (batch_sequence). One row per dropped span; a drop without spans (a
-- corrupt chunk) is one row with device, point, from_ms and to_ms NULL.
-- from_ms and to_ms are inclusive.
CREATE TABLE dropped_ranges (
    id             BIGSERIAL PRIMARY KEY,
    gateway_id     TEXT   NOT NULL,
    batch_sequence BIGINT NOT NULL,
    first_sequence BIGINT NOT NULL,
    last_sequence  BIGINT NOT NULL,
    reason         TEXT   NOT NULL CHECK (reason IN ('capacity', 'age', 'corrupt')),
    device         TEXT,
    point          TEXT,
    from_ms        BIGINT,
    to_ms          BIGINT,
    samples        BIGINT NOT NULL,
    reported_ms    BIGINT NOT NULL,
    FOREIGN KEY (gateway_id, batch_sequence) REFERENCES ingested_batches (gateway_id, sequence),
    CHECK (first_sequence <= last_sequence)
);

CREATE INDEX dropped_ranges_point ON dropped_ranges (gateway_id, device, point, from_ms);

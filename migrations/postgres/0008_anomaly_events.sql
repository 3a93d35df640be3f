-- Anomaly events from the edge's models (wire format v3,
-- docs/specs/anomaly-models.md §6) and alarm rules of kind 'anomaly'
-- (docs/specs/alarms.md). Keep equivalent to
-- migrations/sqlite/0008_anomaly_events.sql.

-- Stored in the ingest transaction of the batch that carried them, so
-- exactly once with it. `asset` is the edge's asset name; alarms resolve it
-- to the cloud asset of that name linked to a point of the same gateway.
CREATE TABLE anomaly_events (
    id              BIGSERIAL PRIMARY KEY,
    gateway_id      TEXT    NOT NULL REFERENCES gateways (id),
    -- The `sequence` of the batch that carried it.
    batch_sequence  BIGINT  NOT NULL,
    kind            TEXT    NOT NULL CHECK (kind IN ('raised', 'cleared')),
    asset           TEXT    NOT NULL,
    asset_class     TEXT    NOT NULL,
    model_id        TEXT    NOT NULL,
    model_version   TEXT    NOT NULL,
    ts_ms           BIGINT  NOT NULL,
    window_start_ms BIGINT  NOT NULL,
    score           DOUBLE PRECISION,
    raise_level     DOUBLE PRECISION,
    summary         TEXT    NOT NULL,
    -- JSON array: feature, unit, share, value, expected, text; largest share first.
    explanation     TEXT    NOT NULL,
    received_ms     BIGINT  NOT NULL
);
CREATE INDEX anomaly_events_asset ON anomaly_events (gateway_id, asset, ts_ms);

ALTER TABLE alarm_rules DROP CONSTRAINT alarm_rules_kind_check;
ALTER TABLE alarm_rules ADD CONSTRAINT alarm_rules_kind_check
    CHECK (kind IN ('threshold', 'rate_of_change', 'anomaly'));

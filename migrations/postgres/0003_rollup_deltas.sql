-- Rollup deltas: each batch's samples aggregated per point and 1-minute
-- bucket, appended in the batch's transaction (binary COPY, no index, so
-- concurrent batches never wait on each other's rollup rows). The service
-- folds them into rollups_1m and rollups_15m every few seconds (summing per
-- bucket, then deleting them in the same transaction); reads add the deltas
-- not folded yet. Columns as in rollups_1m.
-- Keep equivalent to migrations/sqlite/0003_rollup_deltas.sql.
CREATE TABLE rollup_deltas (
    point_id  BIGINT           NOT NULL,
    bucket_ms BIGINT           NOT NULL,
    samples   BIGINT           NOT NULL,
    count     BIGINT           NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    min       DOUBLE PRECISION,
    max       DOUBLE PRECISION
);

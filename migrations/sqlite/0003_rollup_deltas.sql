-- Rollup deltas: each batch's samples aggregated per point and 1-minute
-- bucket, appended in the batch's transaction (no index). The service folds
-- them into rollups_1m and rollups_15m every few seconds (summing per
-- bucket, then deleting them in the same transaction); reads add the deltas
-- not folded yet. Columns as in rollups_1m.
-- Keep equivalent to migrations/postgres/0003_rollup_deltas.sql.
CREATE TABLE rollup_deltas (
    point_id  INTEGER NOT NULL,
    bucket_ms INTEGER NOT NULL,
    samples   INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL    NOT NULL,
    min       REAL,
    max       REAL
);

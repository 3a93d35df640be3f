//! Rollups: per point and 1-minute / 15-minute bucket, the sample count,
//! the value count, sum, min and max.
//!
//! Ingest does not update `rollups_1m` / `rollups_15m` itself. It aggregates
//! each batch in memory into 1-minute *deltas* and appends them to
//! `rollup_deltas` in the batch's transaction (binary `COPY` on Postgres):
//! plain inserts into a table without indexes, so concurrent batches touching
//! the same buckets never wait on each other's row locks, and a batch costs
//! one delta row per point and minute instead of two upserts.
//!
//! [`fold`] moves every committed delta into `rollups_1m` and `rollups_15m`
//! (one upsert per bucket for all the deltas folded at once) and deletes it,
//! in one transaction; the retention task runs it every [`FOLD_INTERVAL`].
//! Readers add the deltas not folded yet to the rollup rows of the same
//! buckets, in the same statement (so the same snapshot): a delta is counted
//! either in `rollup_deltas` or in the rollups, never both, never neither.
//! Aggregates are therefore exact as soon as the batch is committed; folding
//! only bounds how many deltas a read has to add.

use crate::db::{Caches, Db};
use crate::on_db;
use std::collections::BTreeMap;
use std::time::Duration;

/// Bucket sizes and their tables.
pub const TABLES: [(&str, i64); 2] = [("rollups_1m", 60_000), ("rollups_15m", 900_000)];

/// Bucket of the deltas (the finest rollup).
pub const DELTA_BUCKET_MS: i64 = 60_000;

/// Rows per multi-row delta `INSERT` on SQLite (7 parameters each).
pub const ROWS_PER_INSERT: usize = 20;

/// Time between folds by the background task.
pub const FOLD_INTERVAL: Duration = Duration::from_secs(2);

/// `COPY` statement for [`crate::ingest::pgcopy::push_delta`].
pub const COPY_DELTAS: &str = "COPY rollup_deltas (point_id, bucket_ms, samples, count, sum, min, max) \
     FROM STDIN (FORMAT binary)";

/// One bucket's aggregate. `count`, `sum`, `min`, `max` are over finite values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Agg {
    pub samples: i64,
    pub count: i64,
    pub sum: f64,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Agg {
    pub const EMPTY: Agg = Agg {
        samples: 0,
        count: 0,
        sum: 0.0,
        min: None,
        max: None,
    };

    fn add(&mut self, v: Option<f64>) {
        self.samples += 1;
        if let Some(v) = v {
            self.count += 1;
            self.sum += v;
            self.min = Some(self.min.map_or(v, |m| m.min(v)));
            self.max = Some(self.max.map_or(v, |m| m.max(v)));
        }
    }
}

/// Start of the bucket holding `ts_ms` (floor, also for negative times).
pub fn bucket_start(ts_ms: i64, bucket_ms: i64) -> i64 {
    ts_ms.div_euclid(bucket_ms) * bucket_ms
}

/// Aggregates `(point_id, ts_ms, value)` into buckets, keyed and ordered by
/// `(point_id, bucket_ms)`.
pub fn aggregate(
    samples: impl Iterator<Item = (i64, i64, Option<f64>)>,
    bucket_ms: i64,
) -> BTreeMap<(i64, i64), Agg> {
    let mut out: BTreeMap<(i64, i64), Agg> = BTreeMap::new();
    for (pid, ts, v) in samples {
        out.entry((pid, bucket_start(ts, bucket_ms)))
            .or_insert(Agg::EMPTY)
            .add(v);
    }
    out
}

/// Multi-row `INSERT` of `rows` deltas (SQLite; Postgres uses `COPY`).
pub fn insert_deltas_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(100 + rows * 40);
    sql.push_str(
        "INSERT INTO rollup_deltas (point_id, bucket_ms, samples, count, sum, min, max) VALUES ",
    );
    for r in 0..rows {
        let b = r * 7;
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&format!(
            "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
            b + 1,
            b + 2,
            b + 3,
            b + 4,
            b + 5,
            b + 6,
            b + 7
        ));
    }
    sql
}

/// Folds every delta into `table` (one of [`TABLES`]), summed per bucket.
/// `WHERE true` keeps SQLite from reading `ON` as a join constraint.
fn fold_sql(table: &str, bucket_ms: i64) -> String {
    format!(
        "INSERT INTO {t} (point_id, bucket_ms, samples, count, sum, min, max) \
         SELECT point_id, (bucket_ms / {b}) * {b}, SUM(samples), SUM(count), SUM(sum), \
                MIN(min), MAX(max) \
         FROM rollup_deltas WHERE true GROUP BY point_id, (bucket_ms / {b}) * {b} \
         ON CONFLICT (point_id, bucket_ms) DO UPDATE SET \
         samples = {t}.samples + excluded.samples, \
         count = {t}.count + excluded.count, \
         sum = {t}.sum + excluded.sum, \
         min = CASE WHEN {t}.min IS NULL OR excluded.min < {t}.min THEN excluded.min ELSE {t}.min END, \
         max = CASE WHEN {t}.max IS NULL OR excluded.max > {t}.max THEN excluded.max ELSE {t}.max END",
        t = table,
        b = bucket_ms
    )
}

/// Moves every committed delta into the rollup tables, in one transaction;
/// returns the number of deltas folded.
///
/// The transaction reads one snapshot (Postgres: `REPEATABLE READ`; SQLite
/// transactions are serializable), so the deltas it sums are exactly those it
/// deletes; deltas committed meanwhile stay for the next fold. Two folds at
/// once cannot count a delta twice: on Postgres the later one fails with a
/// serialization error and is rolled back (retried at the next tick); folds
/// of one process queue on a mutex.
pub async fn fold(db: &Db, caches: &Caches) -> Result<u64, sqlx::Error> {
    let _fold = caches.fold_lock.lock().await;
    let _writer = match db {
        Db::Sqlite(_) => Some(caches.sqlite_writer.lock().await),
        Db::Postgres(_) => None,
    };
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        if let Db::Postgres(_) = db {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx).await?;
        }
        for (table, bucket) in TABLES {
            sqlx::query(sqlx::AssertSqlSafe(fold_sql(table, bucket)))
                .execute(&mut *tx).await?;
        }
        let n = sqlx::query("DELETE FROM rollup_deltas").execute(&mut *tx).await?.rows_affected();
        tx.commit().await?;
        Ok(n)
    })
}

/// The aggregate buckets of one point with `from <= bucket_ms < to`
/// (`from`, `to` aligned to `bucket_ms`, one of the [`TABLES`] sizes):
/// `(bucket_ms, min, avg, max, count)`, oldest first, at most `limit`.
/// Folded rollups plus the deltas not folded yet, in one statement.
pub fn read_sql(table: &str, bucket_ms: i64) -> String {
    format!(
        "SELECT bucket_ms, MIN(min), \
                CASE WHEN SUM(count) > 0 THEN SUM(sum) / CAST(SUM(count) AS BIGINT) END, \
                MAX(max), CAST(SUM(count) AS BIGINT) \
         FROM (SELECT bucket_ms, count, sum, min, max FROM {table} \
                WHERE point_id = $1 AND bucket_ms >= $2 AND bucket_ms < $3 \
               UNION ALL \
               SELECT (bucket_ms / {bucket_ms}) * {bucket_ms}, count, sum, min, max \
                FROM rollup_deltas WHERE point_id = $1 AND bucket_ms >= $2 AND bucket_ms < $3) u \
         GROUP BY bucket_ms ORDER BY bucket_ms LIMIT $4"
    )
}

/// Runs [`fold`] every [`FOLD_INTERVAL`] until `shutdown` (started by
/// [`crate::retention::spawn`]). Failures are logged and retried.
pub async fn fold_forever(
    db: Db,
    caches: std::sync::Arc<Caches>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(FOLD_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(e) = fold(&db, &caches).await {
            tracing::warn!(error = %e, "rollup fold failed; retrying");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregates_finite_values_per_bucket() {
        let rows = [
            (1, 0, Some(2.0)),
            (1, 59_999, Some(-1.0)),
            (1, 60_000, None),
            (2, -1, Some(5.0)),
        ];
        let a = aggregate(rows.into_iter(), 60_000);
        let keys: Vec<_> = a.keys().copied().collect();
        assert_eq!(keys, vec![(1, 0), (1, 60_000), (2, -60_000)]);
        assert_eq!(
            a[&(1, 0)],
            Agg {
                samples: 2,
                count: 2,
                sum: 1.0,
                min: Some(-1.0),
                max: Some(2.0)
            }
        );
        assert_eq!(
            a[&(1, 60_000)],
            Agg {
                samples: 1,
                ..Agg::EMPTY
            }
        );
    }

    #[test]
    fn delta_insert_numbers_placeholders() {
        let sql = insert_deltas_sql(2);
        assert!(sql.ends_with("($1, $2, $3, $4, $5, $6, $7),($8, $9, $10, $11, $12, $13, $14)"));
    }

    #[test]
    fn fold_groups_deltas_into_the_table_buckets() {
        let sql = fold_sql("rollups_15m", 900_000);
        assert!(sql.contains("GROUP BY point_id, (bucket_ms / 900000) * 900000"));
        assert!(sql.contains("count = rollups_15m.count + excluded.count"));
    }
}

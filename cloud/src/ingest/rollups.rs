//! Rollups maintained on ingest: per point and 1-minute / 15-minute bucket,
//! the sample count, the value count, sum, min and max, aggregated per batch
//! in memory and merged into `rollups_1m` / `rollups_15m` with one upsert
//! text valid on both databases.

use std::collections::BTreeMap;

/// Bucket sizes and their tables.
pub const TABLES: [(&str, i64); 2] = [("rollups_1m", 60_000), ("rollups_15m", 900_000)];

/// Rows per multi-row upsert (7 parameters each).
pub const ROWS_PER_UPSERT: usize = 500;

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
    const EMPTY: Agg = Agg {
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
/// `(point_id, bucket_ms)`: the upsert then locks rows in one global order,
/// so concurrent batches touching the same buckets wait, never deadlock.
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

/// The upsert for `rows` rows into `table` (one of [`TABLES`]).
pub fn upsert_sql(table: &str, rows: usize) -> String {
    let mut sql = String::with_capacity(400 + rows * 40);
    sql.push_str("INSERT INTO ");
    sql.push_str(table);
    sql.push_str(" (point_id, bucket_ms, samples, count, sum, min, max) VALUES ");
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
    sql.push_str(&format!(
        " ON CONFLICT (point_id, bucket_ms) DO UPDATE SET \
         samples = {t}.samples + excluded.samples, \
         count = {t}.count + excluded.count, \
         sum = {t}.sum + excluded.sum, \
         min = CASE WHEN {t}.min IS NULL OR excluded.min < {t}.min THEN excluded.min ELSE {t}.min END, \
         max = CASE WHEN {t}.max IS NULL OR excluded.max > {t}.max THEN excluded.max ELSE {t}.max END",
        t = table
    ));
    sql
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
    fn upsert_numbers_placeholders() {
        let sql = upsert_sql("rollups_1m", 2);
        assert!(sql.contains("($1, $2, $3, $4, $5, $6, $7),($8, $9, $10, $11, $12, $13, $14)"));
        assert!(sql.contains("count = rollups_1m.count + excluded.count"));
    }
}

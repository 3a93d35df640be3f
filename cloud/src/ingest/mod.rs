//! Ingest: authenticate a gateway, decode its batch, store it exactly once.
//!
//! A batch covers sequences `first_sequence..=sequence`. Exactly-once rests
//! on one ledger row per batch in `ingested_batches`, keyed by
//! `(gateway_id, sequence)` and inserted first in the same transaction as
//! everything else the batch brings:
//!
//! 1. ledger row, `ON CONFLICT (gateway_id, sequence) DO NOTHING`. A
//!    conflict means an earlier delivery: the same `first_sequence` is a
//!    duplicate (nothing written), another one a [`StoreError::SequenceConflict`].
//!    A concurrent identical delivery waits on the first one's key, then
//!    sees the conflict.
//! 2. points not in the in-memory cache: one multi-row upsert (sorted);
//! 3. samples: binary `COPY` on Postgres (into daily partitions created
//!    before the transaction, see [`crate::partitions`]), multi-row `INSERT`s
//!    on SQLite;
//! 4. rollup deltas: the batch aggregated in memory per point and minute,
//!    appended to `rollup_deltas` (binary `COPY` on Postgres); they are
//!    folded into `rollups_1m` / `rollups_15m` in the background and read
//!    together with them, so aggregates are exact once the batch commits
//!    (see [`rollups`]);
//! 5. drop reports into `dropped_ranges`;
//! 6. the gateway row (`last_seen_ms`, max `last_sequence`, max
//!    `polled_through_ms`), which row-locks it until commit, so every
//!    batch of one gateway runs step 7 one at a time;
//! 7. overlap check: another stored range intersecting this one is a
//!    [`StoreError::SequenceConflict`] and everything is rolled back.
//!
//! The HTTP answer is sent only after `COMMIT` returned; point ids are cached
//! only after the commit that made them.

pub mod handler;
pub mod pgcopy;
pub mod phases;
pub mod rollups;

pub use handler::{IngestAck, IngestStatus, ingest};

use crate::db::{CachedPoint, Caches, Db};
use crate::gateways::now_ms;
use crate::on_db;
use crate::partitions;
use dcmms_shared::Batch;
use phases::{Phase, record};
use sqlx::Row;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use thiserror::Error;

/// Rows per multi-row sample `INSERT` on SQLite (4 parameters each).
const SAMPLE_ROWS_PER_INSERT: usize = 20;
/// Rows per multi-row point upsert (4 parameters each).
const POINT_ROWS_PER_UPSERT: usize = 500;
/// Rows per multi-row drop report `INSERT` (11 parameters each).
const DROP_ROWS_PER_INSERT: usize = 200;
/// Bytes of `COPY` data buffered before they are sent.
const COPY_CHUNK_BYTES: usize = 64 << 10;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sequence {0} exceeds the largest storable sequence (2^63 - 1)")]
    SequenceOutOfRange(u64),
    #[error("first_sequence {first} is above sequence {last}")]
    SequenceOrder { first: u64, last: u64 },
    #[error(
        "sequences {first}..={last} overlap the stored batch {stored_first}..={stored_last}; \
         a batch must cover exactly the sequences of an earlier delivery or none of them"
    )]
    SequenceConflict {
        first: u64,
        last: u64,
        stored_first: i64,
        stored_last: i64,
    },
    #[error(
        "sample of {device}/{point} at {ts_ms} ms is outside the storable time range \
         (1970-01-01 to 9999-12-31 UTC)"
    )]
    TimestampOutOfRange {
        device: String,
        point: String,
        ts_ms: i64,
    },
    #[error("anomaly event of asset {asset:?}: {problem}")]
    InvalidEvent { asset: String, problem: String },
    #[error("drop report {first}..={last}: {problem}")]
    InvalidDrop {
        first: u64,
        last: u64,
        problem: &'static str,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the batch itself is at fault (a 4xx), not the database.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, StoreError::Db(_))
    }
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Newly committed, with this many samples.
    Stored { samples: usize },
    /// This gateway already delivered this sequence range; nothing was written.
    Duplicate,
}

fn seq(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::SequenceOutOfRange(v))
}

/// One drop report row: `(first, last, reason, device, point, from, to, samples)`.
type DropRow<'a> = (
    i64,
    i64,
    &'static str,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
    i64,
);

/// A batch checked against what the store can hold.
struct Checked<'a> {
    first: i64,
    last: i64,
    samples: usize,
    days: BTreeSet<i64>,
    drops: Vec<DropRow<'a>>,
}

fn check(batch: &Batch) -> Result<Checked<'_>, StoreError> {
    let first = seq(batch.first_sequence)?;
    let last = seq(batch.sequence)?;
    if first > last {
        return Err(StoreError::SequenceOrder {
            first: batch.first_sequence,
            last: batch.sequence,
        });
    }
    let mut days = BTreeSet::new();
    for s in &batch.series {
        for x in &s.samples {
            if !(0..=partitions::MAX_TS_MS).contains(&x.ts_ms) {
                return Err(StoreError::TimestampOutOfRange {
                    device: s.device.clone(),
                    point: s.point.clone(),
                    ts_ms: x.ts_ms,
                });
            }
            days.insert(partitions::day_of(x.ts_ms));
        }
    }
    let mut drops = Vec::new();
    for d in &batch.drops {
        let bad = |problem| StoreError::InvalidDrop {
            first: d.first_sequence,
            last: d.last_sequence,
            problem,
        };
        let (df, dl) = (seq(d.first_sequence)?, seq(d.last_sequence)?);
        if df > dl {
            return Err(bad("first_sequence is above last_sequence"));
        }
        let reason = d.reason.as_str();
        if d.spans.is_empty() {
            drops.push((df, dl, reason, None, None, None, None, 0));
        }
        for sp in &d.spans {
            if sp.from_ms > sp.to_ms {
                return Err(bad("a span's from_ms is after its to_ms"));
            }
            let n =
                i64::try_from(sp.samples).map_err(|_| bad("a span's sample count is too large"))?;
            drops.push((
                df,
                dl,
                reason,
                Some(sp.device.as_str()),
                Some(sp.point.as_str()),
                Some(sp.from_ms),
                Some(sp.to_ms),
                n,
            ));
        }
    }
    Ok(Checked {
        first,
        last,
        samples: batch.sample_count(),
        days,
        drops,
    })
}

/// Stores a decoded batch at most once, without caches (every point is
/// upserted, every partition checked). Returns only after commit. Prefer
/// [`store_batch_with`] wherever batches arrive repeatedly.
pub async fn store_batch(db: &Db, batch: &Batch) -> Result<StoreOutcome, StoreError> {
    store_batch_with(db, &Caches::default(), batch).await
}

/// Stores a decoded batch at most once, using and filling `caches` (which
/// must belong to this database: one `Caches` per opened [`Db`], shared with
/// the retention task). Returns only after commit.
///
/// This is the whole ingest path after authentication and decoding; a
/// benchmark can call it directly with a [`Db`] from [`Db::connect`].
pub async fn store_batch_with(
    db: &Db,
    caches: &Caches,
    batch: &Batch,
) -> Result<StoreOutcome, StoreError> {
    let t = std::time::Instant::now();
    let c = check(batch)?;
    if let Db::Postgres(pool) = db {
        partitions::ensure(pool, caches, c.days.iter().copied()).await?;
    }
    record(Phase::Prepare, t);
    let _writer = match db {
        Db::Sqlite(_) => Some(caches.sqlite_writer.lock().await),
        Db::Postgres(_) => None,
    };
    let res = store_checked(db, caches, batch, &c).await;
    if let (Err(StoreError::Db(_)), Db::Postgres(_)) = (&res, db) {
        // Perhaps retention dropped a cached partition under us: check again next time.
        for d in &c.days {
            caches.forget_partition(*d);
        }
    }
    res
}

async fn store_checked(
    db: &Db,
    caches: &Caches,
    batch: &Batch,
    c: &Checked<'_>,
) -> Result<StoreOutcome, StoreError> {
    let gw = batch.gateway_id.as_str();
    let now = now_ms();
    on_db!(db, pool => {
        let t = std::time::Instant::now();
        let mut tx = pool.begin().await?;

        // 1. The ledger row.
        let fresh = sqlx::query(
            "INSERT INTO ingested_batches \
             (gateway_id, first_sequence, sequence, received_ms, sample_count) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gateway_id, sequence) DO NOTHING")
            .bind(gw).bind(c.first).bind(c.last).bind(now).bind(c.samples as i64)
            .execute(&mut *tx).await?.rows_affected();
        if fresh == 0 {
            let stored_first: i64 = sqlx::query(
                "SELECT first_sequence FROM ingested_batches WHERE gateway_id = $1 AND sequence = $2")
                .bind(gw).bind(c.last).fetch_one(&mut *tx).await?.try_get(0)?;
            tx.rollback().await?;
            if stored_first == c.first {
                return Ok(StoreOutcome::Duplicate);
            }
            return Err(StoreError::SequenceConflict {
                first: batch.first_sequence,
                last: batch.sequence,
                stored_first,
                stored_last: c.last,
            });
        }

        let t = record(Phase::Ledger, t);
        // 2. Point ids: cached, else one upsert per chunk of missing points.
        let mut ids: Vec<Option<i64>> = caches.points(gw, batch.series.iter()
            .map(|s| (s.device.as_str(), s.point.as_str(), s.unit.as_str())));
        let mut missing: BTreeMap<(&str, &str), &str> = BTreeMap::new();
        for (s, id) in batch.series.iter().zip(&ids) {
            if id.is_none() {
                missing.insert((s.device.as_str(), s.point.as_str()), s.unit.as_str());
            }
        }
        // device → point → id, as returned by the upserts.
        let mut fresh_points: HashMap<String, HashMap<String, i64>> = HashMap::new();
        let missing: Vec<((&str, &str), &str)> = missing.into_iter().collect();
        for chunk in missing.chunks(POINT_ROWS_PER_UPSERT) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(upsert_points_sql(chunk.len())));
            for ((device, point), unit) in chunk {
                q = q.bind(gw).bind(*device).bind(*point).bind(*unit);
            }
            for r in &q.fetch_all(&mut *tx).await? {
                let (id, device, point): (i64, String, String) =
                    (r.try_get(0)?, r.try_get(1)?, r.try_get(2)?);
                fresh_points.entry(device).or_default().insert(point, id);
            }
        }
        for (s, id) in batch.series.iter().zip(ids.iter_mut()) {
            if id.is_none() {
                *id = fresh_points.get(&s.device).and_then(|m| m.get(&s.point)).copied();
            }
        }
        let ids: Vec<i64> = ids.into_iter().map(|id| id.ok_or(sqlx::Error::RowNotFound))
            .collect::<Result<_, _>>()?;

        let t = record(Phase::Points, t);
        // 3. Samples, and 4. rollup deltas (folded into the rollups later,
        // see [`rollups`]); the deltas are aggregated while the database
        // takes the samples.
        let deltas = WriteSamples::write_samples(&mut *tx, batch, &ids).await?;
        let t = record(Phase::Samples, t);
        WriteSamples::write_deltas(&mut *tx, &deltas).await?;
        let t = record(Phase::Rollups, t);
        // 5. Drop reports.
        for chunk in c.drops.chunks(DROP_ROWS_PER_INSERT) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_drops_sql(chunk.len())));
            for (df, dl, reason, device, point, from, to, n) in chunk {
                q = q.bind(gw).bind(c.last).bind(*df).bind(*dl).bind(*reason).bind(*device)
                    .bind(*point).bind(*from).bind(*to).bind(*n).bind(now);
            }
            q.execute(&mut *tx).await?;
        }

        // 5b. Anomaly events (wire v3), with the batch: exactly once.
        for e in &batch.events {
            let invalid = |problem: String| StoreError::InvalidEvent { asset: e.asset.clone(), problem };
            if !(0..=partitions::MAX_TS_MS).contains(&e.ts_ms)
                || !(0..=partitions::MAX_TS_MS).contains(&e.window_start_ms) {
                return Err(invalid(format!(
                    "ts_ms {} / window_start_ms {} outside 1970-01-01 to 9999-12-31 UTC",
                    e.ts_ms, e.window_start_ms
                )));
            }
            let explanation = serde_json::to_string(&e.explanation)
                .map_err(|err| invalid(format!("explanation: {err}")))?;
            sqlx::query(
                "INSERT INTO anomaly_events (gateway_id, batch_sequence, kind, asset, asset_class, model_id, \
                 model_version, ts_ms, window_start_ms, score, raise_level, summary, explanation, received_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
                .bind(gw).bind(c.last).bind(e.kind.as_str()).bind(&e.asset).bind(&e.asset_class)
                .bind(&e.model_id).bind(&e.model_version).bind(e.ts_ms).bind(e.window_start_ms)
                .bind(e.score.is_finite().then_some(e.score))
                .bind(e.raise_level.is_finite().then_some(e.raise_level))
                .bind(&e.summary).bind(&explanation).bind(now)
                .execute(&mut *tx).await?;
        }

        // 6. The gateway row (locks it until commit).
        sqlx::query(
            "UPDATE gateways SET last_seen_ms = $1, \
             last_sequence = CASE WHEN last_sequence IS NULL OR last_sequence < $2 \
                             THEN $2 ELSE last_sequence END, \
             polled_through_ms = CASE WHEN polled_through_ms IS NULL OR polled_through_ms < $3 \
                                 THEN $3 ELSE polled_through_ms END \
             WHERE id = $4")
            .bind(now).bind(c.last).bind(batch.polled_through_ms).bind(gw)
            .execute(&mut *tx).await?;

        // 7. Overlap. Stored ranges are disjoint, so in `sequence` order the
        // first one ending at or after our start is the only candidate.
        let next = sqlx::query(
            "SELECT first_sequence, sequence FROM ingested_batches \
             WHERE gateway_id = $1 AND sequence >= $2 AND sequence <> $3 \
             ORDER BY sequence LIMIT 1")
            .bind(gw).bind(c.first).bind(c.last).fetch_optional(&mut *tx).await?;
        if let Some(r) = next {
            let (stored_first, stored_last): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
            if stored_first <= c.last {
                tx.rollback().await?;
                return Err(StoreError::SequenceConflict {
                    first: batch.first_sequence,
                    last: batch.sequence,
                    stored_first,
                    stored_last,
                });
            }
        }

        let t = record(Phase::Finish, t);
        tx.commit().await?;
        record(Phase::Commit, t);
        remember_points(caches, batch, &ids);
        Ok(StoreOutcome::Stored { samples: c.samples })
    })
}

/// Caches the ids of a committed batch's points.
fn remember_points(caches: &Caches, batch: &Batch, ids: &[i64]) {
    caches.remember_points(
        &batch.gateway_id,
        batch.series.iter().zip(ids).map(|(s, id)| {
            (
                s.device.as_str(),
                s.point.as_str(),
                CachedPoint {
                    id: *id,
                    unit: s.unit.clone(),
                },
            )
        }),
    );
}

/// Every sample as stored: `(point_id, ts_ms, value, quality)`; SQLite
/// cannot store NaN, so non-finite values become NULL on both databases.
fn sample_rows<'a>(
    batch: &'a Batch,
    ids: &'a [i64],
) -> impl Iterator<Item = (i64, i64, Option<f64>, i16)> + 'a {
    batch.series.iter().zip(ids).flat_map(|(s, pid)| {
        s.samples.iter().map(move |x| {
            (
                *pid,
                x.ts_ms,
                x.value.is_finite().then_some(x.value),
                i16::from(x.quality.code()),
            )
        })
    })
}

/// How each database takes a batch's samples.
trait WriteSamples {
    /// Writes the samples; returns the batch's rollup deltas.
    async fn write_samples(&mut self, batch: &Batch, ids: &[i64]) -> Result<Deltas, sqlx::Error>;
    async fn write_deltas(&mut self, deltas: &Deltas) -> Result<(), sqlx::Error>;
}

/// A batch's rollup deltas, by `(point_id, bucket_ms)`.
type Deltas = BTreeMap<(i64, i64), rollups::Agg>;

fn deltas(rows: impl Iterator<Item = (i64, i64, Option<f64>, i16)>) -> Deltas {
    rollups::aggregate(rows.map(|(p, t, v, _)| (p, t, v)), rollups::DELTA_BUCKET_MS)
}

impl WriteSamples for sqlx::PgConnection {
    /// Binary `COPY`, sorted by `(point_id, ts_ms)` and streamed in chunks of
    /// [`COPY_CHUNK_BYTES`], so the server inserts one chunk while the next
    /// is encoded; the deltas are aggregated before `COPY` ends.
    async fn write_samples(&mut self, batch: &Batch, ids: &[i64]) -> Result<Deltas, sqlx::Error> {
        if batch.sample_count() == 0 {
            return Ok(Deltas::new());
        }
        // In index order: consecutive rows land on the same index leaf and,
        // for reads, a point's samples share heap pages.
        let mut rows: Vec<_> = sample_rows(batch, ids).collect();
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        let mut copy = self.copy_in_raw(pgcopy::COPY_SAMPLES).await?;
        let mut buf = Vec::with_capacity(COPY_CHUNK_BYTES + 64);
        pgcopy::push_header(&mut buf);
        for (pid, ts, v, q) in &rows {
            pgcopy::push_tuple(&mut buf, *pid, *ts, *v, *q);
            if buf.len() >= COPY_CHUNK_BYTES {
                copy.send(buf.as_slice()).await?;
                buf.clear();
            }
        }
        pgcopy::push_trailer(&mut buf);
        copy.send(buf.as_slice()).await?;
        let deltas = deltas(rows.iter().copied());
        copy.finish().await?;
        Ok(deltas)
    }

    /// Binary `COPY`, in one message (a few hundred KiB at most).
    async fn write_deltas(&mut self, deltas: &Deltas) -> Result<(), sqlx::Error> {
        if deltas.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity(32 + deltas.len() * pgcopy::DELTA_LEN);
        pgcopy::push_header(&mut buf);
        for ((pid, bucket), a) in deltas {
            pgcopy::push_delta(&mut buf, *pid, *bucket, a);
        }
        pgcopy::push_trailer(&mut buf);
        let mut copy = self.copy_in_raw(rollups::COPY_DELTAS).await?;
        copy.send(buf.as_slice()).await?;
        copy.finish().await?;
        Ok(())
    }
}

impl WriteSamples for sqlx::SqliteConnection {
    /// Multi-row `INSERT`s; full chunks share one statement text, which sqlx
    /// prepares once per connection and reuses.
    async fn write_samples(&mut self, batch: &Batch, ids: &[i64]) -> Result<Deltas, sqlx::Error> {
        // In index order, as on Postgres.
        let mut rows: Vec<_> = sample_rows(batch, ids).collect();
        rows.sort_unstable_by_key(|r| (r.0, r.1));
        for chunk in ladder(&rows, SAMPLE_ROWS_PER_INSERT) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_samples_sql(chunk.len())));
            for (pid, ts, v, qual) in chunk {
                q = q.bind(*pid).bind(*ts).bind(*v).bind(*qual);
            }
            q.execute(&mut *self).await?;
        }
        Ok(deltas(rows.into_iter()))
    }

    async fn write_deltas(&mut self, deltas: &Deltas) -> Result<(), sqlx::Error> {
        let rows: Vec<_> = deltas.iter().collect();
        for chunk in ladder(&rows, rollups::ROWS_PER_INSERT) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(rollups::insert_deltas_sql(chunk.len())));
            for ((pid, b), a) in chunk {
                q = q
                    .bind(*pid)
                    .bind(*b)
                    .bind(a.samples)
                    .bind(a.count)
                    .bind(a.sum)
                    .bind(a.min)
                    .bind(a.max);
            }
            q.execute(&mut *self).await?;
        }
        Ok(())
    }
}

/// Splits `rows` into chunks of `max` rows, then the rest into chunks of
/// `max / 10`, `max / 100`, … 1 rows: a handful of statement texts in all,
/// so SQLite's prepared statements are reused instead of a new multi-row
/// statement being prepared for every batch's odd remainder.
fn ladder<T>(rows: &[T], max: usize) -> Vec<&[T]> {
    let mut out = Vec::new();
    let mut rest = rows;
    let mut size = max.max(1);
    while !rest.is_empty() {
        while rest.len() >= size {
            let (head, tail) = rest.split_at(size);
            out.push(head);
            rest = tail;
        }
        size = (size / 10).max(1);
    }
    out
}

fn values_list(sql: &mut String, rows: usize, cols: usize) {
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!("${}", r * cols + c + 1));
        }
        sql.push(')');
    }
}

fn insert_samples_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * 24);
    sql.push_str("INSERT INTO samples (point_id, ts_ms, value, quality) VALUES ");
    values_list(&mut sql, rows, 4);
    sql
}

fn upsert_points_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(200 + rows * 24);
    sql.push_str("INSERT INTO points (gateway_id, device, point, unit) VALUES ");
    values_list(&mut sql, rows, 4);
    sql.push_str(
        " ON CONFLICT (gateway_id, device, point) DO UPDATE SET unit = excluded.unit \
         RETURNING id, device, point",
    );
    sql
}

fn insert_drops_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(200 + rows * 60);
    sql.push_str(
        "INSERT INTO dropped_ranges (gateway_id, batch_sequence, first_sequence, last_sequence, \
         reason, device, point, from_ms, to_ms, samples, reported_ms) VALUES ",
    );
    values_list(&mut sql, rows, 11);
    sql
}

#[cfg(test)]
mod tests {
    #[test]
    fn ladder_uses_few_chunk_sizes() {
        let rows: Vec<usize> = (0..1234).collect();
        let sizes: Vec<usize> = super::ladder(&rows, 500).iter().map(|c| c.len()).collect();
        assert_eq!(
            sizes,
            vec![500, 500, 50, 50, 50, 50, 5, 5, 5, 5, 5, 5, 1, 1, 1, 1]
        );
        let back: Vec<usize> = super::ladder(&rows, 500).concat();
        assert_eq!(back, rows);
        assert!(super::ladder(&rows[..0], 500).is_empty());
    }

    #[test]
    fn insert_sql_numbers_placeholders_in_order() {
        assert_eq!(
            super::insert_samples_sql(2),
            "INSERT INTO samples (point_id, ts_ms, value, quality) VALUES \
             ($1, $2, $3, $4),($5, $6, $7, $8)"
        );
        assert!(
            super::insert_drops_sql(2)
                .ends_with("$11),($12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)")
        );
    }
}

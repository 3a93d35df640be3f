//! Ingest: authenticate a gateway, decode its batch, store it exactly once.
//!
//! Exactly-once rests on one row per `(gateway_id, sequence)` in
//! `ingested_batches`, inserted in the same transaction as the samples. A
//! replay finds the row and is acknowledged without writing; a concurrent
//! replay waits on the first transaction's key and then sees the conflict.
//! The HTTP answer is sent only after `COMMIT` returned.

pub mod handler;

pub use handler::{IngestAck, IngestStatus, ingest};

use crate::db::Db;
use crate::gateways::now_ms;
use crate::on_db;
use dcmms_shared::Batch;
use sqlx::Row;
use thiserror::Error;

/// Rows per multi-row `INSERT` (4 parameters each; well under both databases' limits).
const SAMPLE_ROWS_PER_INSERT: usize = 500;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sequence {0} exceeds the largest storable sequence (2^63 - 1)")]
    SequenceOutOfRange(u64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What storing a batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Newly committed, with this many samples.
    Stored { samples: usize },
    /// This gateway already delivered this sequence; nothing was written.
    Duplicate,
}

/// Stores a decoded batch at most once. Returns only after commit.
pub async fn store_batch(db: &Db, batch: &Batch) -> Result<StoreOutcome, StoreError> {
    let sequence = i64::try_from(batch.sequence)
        .map_err(|_| StoreError::SequenceOutOfRange(batch.sequence))?;
    let samples = batch.sample_count();
    let now = now_ms();
    on_db!(db, pool => {
        let mut tx = pool.begin().await?;
        let fresh = sqlx::query(
            "INSERT INTO ingested_batches (gateway_id, sequence, received_ms, sample_count) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (gateway_id, sequence) DO NOTHING")
            .bind(&batch.gateway_id).bind(sequence).bind(now).bind(samples as i64)
            .execute(&mut *tx).await?.rows_affected();
        if fresh == 0 {
            tx.rollback().await?;
            return Ok(StoreOutcome::Duplicate);
        }
        let mut rows: Vec<(i64, i64, Option<f64>, i16)> = Vec::with_capacity(samples);
        for s in &batch.series {
            let point_id: i64 = sqlx::query(
                "INSERT INTO points (gateway_id, device, point, unit) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (gateway_id, device, point) DO UPDATE SET unit = excluded.unit \
                 RETURNING id")
                .bind(&batch.gateway_id).bind(&s.device).bind(&s.point).bind(&s.unit)
                .fetch_one(&mut *tx).await?.try_get(0)?;
            rows.extend(s.samples.iter().map(|x| {
                // SQLite cannot store NaN; non-finite values become NULL on both sides.
                let v = x.value.is_finite().then_some(x.value);
                (point_id, x.ts_ms, v, i16::from(x.quality.code()))
            }));
        }
        for chunk in rows.chunks(SAMPLE_ROWS_PER_INSERT) {
            let sql = insert_samples_sql(chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (pid, ts, v, qual) in chunk {
                q = q.bind(*pid).bind(*ts).bind(*v).bind(*qual);
            }
            q.execute(&mut *tx).await?;
        }
        sqlx::query(
            "UPDATE gateways SET last_seen_ms = $1, \
             last_sequence = CASE WHEN last_sequence IS NULL OR last_sequence < $2 \
                             THEN $2 ELSE last_sequence END \
             WHERE id = $3")
            .bind(now).bind(sequence).bind(&batch.gateway_id)
            .execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(StoreOutcome::Stored { samples })
    })
}

fn insert_samples_sql(rows: usize) -> String {
    let mut sql = String::with_capacity(64 + rows * 24);
    sql.push_str("INSERT INTO samples (point_id, ts_ms, value, quality) VALUES ");
    for r in 0..rows {
        let b = r * 4;
        if r > 0 {
            sql.push(',');
        }
        sql.push_str(&format!("(${}, ${}, ${}, ${})", b + 1, b + 2, b + 3, b + 4));
    }
    sql
}

#[cfg(test)]
mod tests {
    #[test]
    fn insert_sql_numbers_placeholders_in_order() {
        assert_eq!(
            super::insert_samples_sql(2),
            "INSERT INTO samples (point_id, ts_ms, value, quality) VALUES \
             ($1, $2, $3, $4),($5, $6, $7, $8)"
        );
    }
}

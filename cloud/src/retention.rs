//! Retention of raw telemetry: `retention_days` (0 = keep forever).
//!
//! The horizon is `now − retention_days`; the cut is the start of the UTC day
//! holding the horizon, so on both databases exactly the days that lie
//! entirely before the horizon go:
//!
//! - Postgres: whole `samples` partitions ending at or before the cut are
//!   dropped ([`partitions::drop_before`]); the partitions for today and
//!   tomorrow are created ahead of time so ingest rarely creates one;
//! - SQLite: `samples` rows before the cut are deleted point by point in
//!   chunks of [`DELETE_CHUNK`] rows, each its own short transaction, so
//!   ingest is never blocked for long.
//!
//! On both, the rollup deltas are folded first (so `rollups_15m` has them),
//! then `rollups_1m` buckets before the cut are deleted the same way
//! (by windows of [`ROLLUP_WINDOW_MS`]). `rollups_15m`, the batch ledger and
//! drop reports are kept: they are small, and the ledger is what makes
//! ingest exactly-once.
//!
//! [`run_pass`] is one pass (called by tests directly); [`spawn`] runs it
//! hourly until shutdown.

use crate::db::{Caches, Db};
use crate::on_db;
use crate::partitions::{self, DAY_MS};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Rows per `DELETE` of raw samples on SQLite.
pub const DELETE_CHUNK: i64 = 5_000;
/// Span of `rollups_1m` buckets per `DELETE` (one week: ≤ 10 080 rows a point).
pub const ROLLUP_WINDOW_MS: i64 = 7 * DAY_MS;
/// Time between passes of the background task.
pub const INTERVAL: Duration = Duration::from_secs(3600);

#[derive(Debug, Error)]
pub enum RetentionError {
    #[error("retention pass failed: {0}")]
    Db(#[from] sqlx::Error),
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Data before this instant (Unix ms) was removed; `None` when retention
    /// is off (`retention_days = 0`).
    pub cut_ms: Option<i64>,
    /// Postgres partitions dropped.
    pub partitions_dropped: Vec<String>,
    /// SQLite sample rows deleted.
    pub samples_deleted: u64,
    /// `rollups_1m` rows deleted.
    pub rollups_deleted: u64,
}

/// The cut for `retention_days` at `now_ms`: the start of the UTC day of the
/// horizon. `None` for 0 (keep forever).
pub fn cut_ms(retention_days: u32, now_ms: i64) -> Option<i64> {
    if retention_days == 0 {
        return None;
    }
    let horizon = now_ms.saturating_sub(i64::from(retention_days).saturating_mul(DAY_MS));
    Some(partitions::day_of(horizon).saturating_mul(DAY_MS))
}

/// One retention pass as of `now_ms`.
///
/// `caches` MUST be the ones ingest uses for this database, so a dropped
/// partition is forgotten there.
pub async fn run_pass(
    db: &Db,
    caches: &Caches,
    retention_days: u32,
    now_ms: i64,
) -> Result<RetentionReport, RetentionError> {
    let mut report = RetentionReport::default();
    if let Db::Postgres(pool) = db {
        let today = partitions::day_of(now_ms);
        partitions::ensure(pool, caches, [today, today + 1]).await?;
    }
    let Some(cut) = cut_ms(retention_days, now_ms) else {
        return Ok(report);
    };
    report.cut_ms = Some(cut);
    // Deltas before the cut go into rollups_15m (kept) before their 1-minute
    // rollups are deleted.
    crate::ingest::rollups::fold(db, caches).await?;
    match db {
        Db::Postgres(pool) => {
            report.partitions_dropped = partitions::drop_before(pool, caches, cut).await?;
        }
        Db::Sqlite(pool) => {
            for pid in point_ids(db).await? {
                loop {
                    let n = sqlx::query(
                        "DELETE FROM samples WHERE rowid IN (SELECT rowid FROM samples \
                         WHERE point_id = $1 AND ts_ms < $2 LIMIT $3)",
                    )
                    .bind(pid)
                    .bind(cut)
                    .bind(DELETE_CHUNK)
                    .execute(pool)
                    .await?
                    .rows_affected();
                    report.samples_deleted += n;
                    if n < DELETE_CHUNK as u64 {
                        break;
                    }
                }
            }
        }
    }
    for pid in point_ids(db).await? {
        let oldest: Option<i64> = on_db!(db, p => sqlx::query(
            "SELECT MIN(bucket_ms) FROM rollups_1m WHERE point_id = $1")
            .bind(pid).fetch_one(p).await?.try_get(0)?);
        let Some(mut from) = oldest else { continue };
        while from < cut {
            let to = from.saturating_add(ROLLUP_WINDOW_MS).min(cut);
            report.rollups_deleted += on_db!(db, p => sqlx::query(
                "DELETE FROM rollups_1m WHERE point_id = $1 AND bucket_ms >= $2 AND bucket_ms < $3")
                .bind(pid).bind(from).bind(to).execute(p).await?.rows_affected());
            from = to;
        }
    }
    if !report.partitions_dropped.is_empty()
        || report.samples_deleted > 0
        || report.rollups_deleted > 0
    {
        tracing::info!(
            cut_ms = cut,
            partitions = ?report.partitions_dropped,
            samples = report.samples_deleted,
            rollups = report.rollups_deleted,
            "retention pass removed old telemetry"
        );
    }
    Ok(report)
}

async fn point_ids(db: &Db) -> Result<Vec<i64>, sqlx::Error> {
    on_db!(db, p => {
        let rows = sqlx::query("SELECT id FROM points ORDER BY id").fetch_all(p).await?;
        rows.iter().map(|r| r.try_get(0)).collect()
    })
}

/// Runs [`run_pass`] now and then every [`INTERVAL`] until `shutdown`, and
/// alongside it the rollup fold ([`crate::ingest::rollups::fold_forever`]),
/// which stops with it. Failures are logged and retried at the next pass.
pub fn spawn(
    db: Db,
    caches: Arc<Caches>,
    retention_days: u32,
    shutdown: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let folder = tokio::spawn(crate::ingest::rollups::fold_forever(
            db.clone(),
            caches.clone(),
            shutdown.clone(),
        ));
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            let pass = run_pass(&db, &caches, retention_days, crate::gateways::now_ms());
            tokio::select! {
                () = shutdown.cancelled() => break,
                res = pass => {
                    if let Err(e) = res {
                        tracing::warn!(error = %e, "retention pass failed; retrying in an hour");
                    }
                }
            }
        }
        if let Err(e) = folder.await {
            tracing::warn!(error = %e, "rollup fold task ended abnormally");
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_is_the_start_of_the_horizon_day() {
        assert_eq!(cut_ms(0, 1_000 * DAY_MS), None);
        assert_eq!(cut_ms(400, 1_000 * DAY_MS + 5), Some(600 * DAY_MS));
        assert_eq!(cut_ms(1, DAY_MS - 1), Some(-DAY_MS));
    }
}

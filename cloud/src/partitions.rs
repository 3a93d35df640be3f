//! Daily partitions of `samples` on Postgres.
//!
//! `samples` is `PARTITION BY RANGE (ts_ms)`; the partition for UTC day `d`
//! (days since the Unix epoch) is `samples_pYYYYMMDD`, `FOR VALUES FROM (d ×
//! 86 400 000) TO ((d + 1) × 86 400 000)`.
//!
//! Partitions are created on demand *before* the ingest transaction begins,
//! each creation in its own short transaction holding a transaction-level
//! advisory lock ([`LOCK_KEY`]), so concurrent creators serialise instead of
//! racing on the catalog, and the `ACCESS EXCLUSIVE` lock `CREATE TABLE …
//! PARTITION OF` takes on `samples` is never requested by a transaction that
//! already holds other locks (no deadlock with concurrent ingest: the creator
//! only waits for in-flight ingest transactions to finish). Retention drops
//! partitions under the same advisory lock. Existing partitions are cached in
//! [`Caches`] after commit and forgotten before they are dropped.

use crate::db::Caches;
use sqlx::{PgPool, Row};

pub const DAY_MS: i64 = 86_400_000;

/// Advisory lock serialising partition DDL (ASCII "dcmmsprt").
pub const LOCK_KEY: i64 = 0x6463_6d6d_7370_7274;

/// The latest storable timestamp: 9999-12-31T23:59:59.999Z (partition names
/// have four-digit years). The earliest is the Unix epoch.
pub const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Longest a partition DDL statement waits for its table locks.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '10s'";

/// The UTC day of a timestamp.
pub fn day_of(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(DAY_MS)
}

/// Civil date (year, month, day) of a day number (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number of a civil date (inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `samples_pYYYYMMDD` for a day within 1970..=9999, else `None`.
pub fn partition_name(day: i64) -> Option<String> {
    if !(0..=day_of(MAX_TS_MS)).contains(&day) {
        return None;
    }
    let (y, m, d) = civil_from_days(day);
    Some(format!("samples_p{y:04}{m:02}{d:02}"))
}

/// The day a partition name stands for (`None` for other tables).
pub fn day_of_partition(name: &str) -> Option<i64> {
    let digits = name.strip_prefix("samples_p")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = digits[..4].parse().ok()?;
    let m: i64 = digits[4..6].parse().ok()?;
    let d: i64 = digits[6..].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let day = days_from_civil(y, m, d);
    (partition_name(day).as_deref() == Some(name)).then_some(day)
}

/// Makes sure the partitions for `days` exist; creates the missing ones.
/// Days outside 1970..=9999 are skipped (ingest rejects such timestamps).
pub async fn ensure(
    pool: &PgPool,
    caches: &Caches,
    days: impl IntoIterator<Item = i64>,
) -> Result<(), sqlx::Error> {
    let missing: Vec<(i64, String)> = days
        .into_iter()
        .filter(|d| !caches.has_partition(*d))
        .filter_map(|d| partition_name(d).map(|n| (d, n)))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *tx)
        .await?;
    for (day, name) in &missing {
        // `name` is built from a number by `partition_name`, never from input text.
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {name} PARTITION OF samples \
             FOR VALUES FROM ({}) TO ({})",
            day * DAY_MS,
            (day + 1) * DAY_MS
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    for (day, _) in &missing {
        caches.remember_partition(*day);
    }
    Ok(())
}

/// The partitions of `samples` that exist, as `(day, name)`, oldest first.
pub async fn list(pool: &PgPool) -> Result<Vec<(i64, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = 'samples'::regclass",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let name: String = r.try_get(0)?;
        if let Some(day) = day_of_partition(&name) {
            out.push((day, name));
        }
    }
    out.sort();
    Ok(out)
}

/// Drops every partition whose whole day ends at or before `cut_ms`.
/// Returns the names dropped.
pub async fn drop_before(
    pool: &PgPool,
    caches: &Caches,
    cut_ms: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let mut dropped = Vec::new();
    for (day, name) in list(pool).await? {
        if (day + 1).saturating_mul(DAY_MS) > cut_ms {
            continue;
        }
        let mut tx = pool.begin().await?;
        sqlx::query(LOCK_TIMEOUT).execute(&mut *tx).await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(LOCK_KEY)
            .execute(&mut *tx)
            .await?;
        // Forget first: an ingest that misses the cache re-creates the
        // partition after this commit; one that hit it just before fails its
        // COPY, forgets the day and is retried by the gateway.
        caches.forget_partition(day);
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {name}")))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        dropped.push(name);
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(partition_name(0).as_deref(), Some("samples_p19700101"));
        // 1_782_000_000_000 ms is 2026-06-21.
        let d = day_of(1_782_000_000_000);
        assert_eq!(partition_name(d).as_deref(), Some("samples_p20260621"));
        assert_eq!(
            partition_name(day_of(MAX_TS_MS)).as_deref(),
            Some("samples_p99991231")
        );
        assert_eq!(partition_name(-1), None);
        assert_eq!(partition_name(day_of(MAX_TS_MS) + 1), None);
        for day in [0, 59, 60, 365, 11_016, 20_625, d, day_of(MAX_TS_MS)] {
            let n = partition_name(day).unwrap_or_default();
            assert_eq!(day_of_partition(&n), Some(day), "{n}");
        }
        assert_eq!(day_of_partition("samples_p20260231"), None);
        assert_eq!(day_of_partition("samples_point_ts"), None);
        assert_eq!(day_of(-1), -1);
    }
}

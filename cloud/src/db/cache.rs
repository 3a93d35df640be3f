//! In-memory caches shared by the ingest path and the retention task. One
//! `Caches` belongs to one database; never share it between databases.
//!
//! Both hold only facts that are committed in the database: a point id is
//! cached after the transaction that inserted it committed, a partition after
//! the transaction that created it committed. A cache miss costs one query; a
//! stale entry would cost correctness, so entries are removed before the
//! database object they describe is dropped.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// A point id as committed, with the unit it was committed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedPoint {
    pub id: i64,
    pub unit: String,
}

/// gateway id → device → point → committed id and unit.
type PointMap = HashMap<String, HashMap<String, HashMap<String, CachedPoint>>>;

#[derive(Debug, Default)]
pub struct Caches {
    points: Mutex<PointMap>,
    /// Postgres: days (Unix ms / 86 400 000) whose `samples` partition exists.
    partitions: Mutex<HashSet<i64>>,
    /// SQLite has one writer at a time: ingest transactions queue here,
    /// fairly, instead of spinning on `SQLITE_BUSY` until the busy timeout.
    pub sqlite_writer: tokio::sync::Mutex<()>,
    /// Postgres: CMMS write transactions ([`crate::db::Db::write`]) open at
    /// once. Audited writes serialise on the audit log's advisory lock
    /// anyway; waiting here instead of inside the database keeps them from
    /// holding pool connections that reads need (docs/adr/0006).
    pub pg_writers: PgWriters,
    /// Rollup folds of this process run one at a time
    /// (see [`crate::ingest::rollups::fold`]).
    pub fold_lock: tokio::sync::Mutex<()>,
    /// Wakes the alarm evaluator (`alarms::evaluate::spawn`) after a
    /// committed ingest batch or a rule change.
    pub alarm_wake: tokio::sync::Notify,
}

/// How many CMMS write transactions may be open at once on Postgres
/// (the pool has 16 connections; the rest stay free for reads and ingest).
pub const PG_WRITE_SLOTS: usize = 4;

/// The permits behind [`Caches::pg_writers`].
#[derive(Debug)]
pub struct PgWriters(pub tokio::sync::Semaphore);

impl Default for PgWriters {
    fn default() -> Self {
        PgWriters(tokio::sync::Semaphore::new(PG_WRITE_SLOTS))
    }
}

/// A poisoned cache mutex only means another thread panicked while holding
/// it; the maps are always left consistent, so keep using them.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Caches {
    /// The committed id of a point, if cached with this exact unit.
    pub fn point(&self, gateway: &str, device: &str, point: &str, unit: &str) -> Option<i64> {
        let map = lock(&self.points);
        let p = map.get(gateway)?.get(device)?.get(point)?;
        (p.unit == unit).then_some(p.id)
    }

    /// [`Caches::point`] for many points under one lock.
    pub fn points<'a>(
        &self,
        gateway: &str,
        points: impl Iterator<Item = (&'a str, &'a str, &'a str)>,
    ) -> Vec<Option<i64>> {
        let map = lock(&self.points);
        let gw = map.get(gateway);
        points
            .map(|(device, point, unit)| {
                let p = gw?.get(device)?.get(point)?;
                (p.unit == unit).then_some(p.id)
            })
            .collect()
    }

    /// Records point ids whose insert (or unit update) has committed.
    pub fn remember_points<'a>(
        &self,
        gateway: &str,
        points: impl IntoIterator<Item = (&'a str, &'a str, CachedPoint)>,
    ) {
        let mut map = lock(&self.points);
        let gw = map.entry(gateway.to_string()).or_default();
        for (device, point, p) in points {
            gw.entry(device.to_string())
                .or_default()
                .insert(point.to_string(), p);
        }
    }

    pub fn has_partition(&self, day: i64) -> bool {
        lock(&self.partitions).contains(&day)
    }

    pub fn remember_partition(&self, day: i64) {
        lock(&self.partitions).insert(day);
    }

    pub fn forget_partition(&self, day: i64) {
        lock(&self.partitions).remove(&day);
    }
}

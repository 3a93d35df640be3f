//! Wall time spent per phase of the ingest path, summed over all requests
//! since start (process-wide). Cheap enough to keep on: one `Instant::now()`
//! and one atomic add per phase and batch. `dcmms-bench` prints them to show
//! where ingest time goes; concurrent requests overlap, so the sums may
//! exceed the elapsed wall time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The phases, in the order a batch goes through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Credential check (hash + gateway lookup).
    Auth,
    /// Wire-format decode (zstd + columns).
    Decode,
    /// Range checks and partition creation (before the transaction).
    Prepare,
    /// `BEGIN` and the ledger row.
    Ledger,
    /// Point id lookup / upsert.
    Points,
    /// Raw samples (`COPY` / `INSERT`).
    Samples,
    /// Rollup deltas (written; aggregated during `Samples`).
    Rollups,
    /// Drop reports, gateway row, overlap check.
    Finish,
    /// `COMMIT`.
    Commit,
}

const N: usize = 9;

/// Names of the phases, index = `Phase as usize`.
pub const NAMES: [&str; N] = [
    "auth", "decode", "prepare", "ledger", "points", "samples", "rollups", "finish", "commit",
];

static NANOS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

/// Adds the time since `since` to `phase` and returns now.
pub fn record(phase: Phase, since: Instant) -> Instant {
    let now = Instant::now();
    let ns = u64::try_from(now.duration_since(since).as_nanos()).unwrap_or(u64::MAX);
    NANOS[phase as usize].fetch_add(ns, Ordering::Relaxed);
    now
}

/// `(name, seconds)` per phase since start.
pub fn snapshot() -> Vec<(&'static str, f64)> {
    NAMES
        .iter()
        .zip(&NANOS)
        .map(|(n, a)| (*n, a.load(Ordering::Relaxed) as f64 / 1e9))
        .collect()
}

//! A write transaction on either database, for the CMMS stores: one type
//! that handlers pass to the audit log and to each other, plus the
//! [`on_tx!`](crate::on_tx) macro that runs one query text on it.
//!
//! On SQLite the transaction holds [`Caches::sqlite_writer`] for its whole
//! life: SQLite has one writer, and a deferred transaction that read before
//! another committed would fail with `SQLITE_BUSY_SNAPSHOT` instead of
//! waiting.

use super::{Caches, Db};
use sqlx::{Postgres, Sqlite, Transaction};

/// An open transaction on one of the two databases.
#[derive(Debug)]
pub enum Tx {
    Postgres(Transaction<'static, Postgres>),
    Sqlite(Transaction<'static, Sqlite>),
}

/// A write transaction plus, on SQLite, the in-process writer lock.
#[derive(Debug)]
pub struct WriteTx<'a> {
    pub tx: Tx,
    _writer: Option<tokio::sync::MutexGuard<'a, ()>>,
    /// Postgres: one of [`Caches::pg_writers`]'s permits.
    _slot: Option<tokio::sync::SemaphorePermit<'a>>,
}

/// Runs `$body` with `$conn` bound to the transaction's connection
/// (`&mut PgConnection` or `&mut SqliteConnection`).
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match &mut $tx.tx {
            $crate::db::Tx::Postgres(t) => {
                let $conn = &mut **t;
                $body
            }
            $crate::db::Tx::Sqlite(t) => {
                let $conn = &mut **t;
                $body
            }
        }
    };
}

impl Db {
    /// Begins a write transaction (queued behind other writers on SQLite).
    pub async fn write<'a>(&self, caches: &'a Caches) -> Result<WriteTx<'a>, sqlx::Error> {
        Ok(match self {
            Db::Postgres(p) => {
                // Wait for a slot before taking a pool connection. The
                // semaphore is never closed, so acquire cannot fail; if it
                // ever did, go ahead without a slot.
                let slot = caches.pg_writers.0.acquire().await.ok();
                WriteTx {
                    tx: Tx::Postgres(p.begin().await?),
                    _writer: None,
                    _slot: slot,
                }
            }
            Db::Sqlite(p) => {
                let guard = caches.sqlite_writer.lock().await;
                WriteTx {
                    tx: Tx::Sqlite(p.begin().await?),
                    _writer: Some(guard),
                    _slot: None,
                }
            }
        })
    }
}

impl WriteTx<'_> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self.tx {
            Tx::Postgres(t) => t.commit().await,
            Tx::Sqlite(t) => t.commit().await,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self.tx, Tx::Postgres(_))
    }
}

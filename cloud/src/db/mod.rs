//! The database behind one narrow type: [`Db`] is either a Postgres or a
//! SQLite pool, and every query is written once with `$n` placeholders and run
//! on whichever pool is present (see [`on_db!`](crate::on_db)). [`Caches`]
//! are the in-memory facts about one database (committed point ids, existing
//! partitions) that the ingest path and the retention task share; whoever
//! opens a [`Db`] keeps one `Caches` next to it (see `http::AppState`).

mod cache;
mod tx;

pub use cache::{CachedPoint, Caches};
pub use tx::{Tx, WriteTx};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};
use std::str::FromStr;
use std::time::Duration;
use thiserror::Error;

/// Errors opening or migrating the database.
#[derive(Debug, Error)]
pub enum DbError {
    #[error(
        "database URL must start with postgres://, postgresql:// or sqlite: (got scheme {0:?})"
    )]
    UnknownScheme(String),
    #[error("invalid database URL: {0}")]
    BadUrl(sqlx::Error),
    #[error("cannot create the directory {path} for the SQLite file: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// A pool on either database.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// Runs `$body` with `$pool` bound to the concrete pool, so one query text
/// serves both databases while each keeps its native driver.
#[macro_export]
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Postgres($pool) => $body,
            $crate::db::Db::Sqlite($pool) => $body,
        }
    };
}

impl Db {
    /// Opens the database named by `url` and brings its schema up to date.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        let scheme = url.split(':').next().unwrap_or_default();
        let db = match scheme {
            "postgres" | "postgresql" => {
                let opts = PgConnectOptions::from_str(url).map_err(DbError::BadUrl)?;
                let pool = PgPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts)
                    .await
                    .map_err(DbError::Connect)?;
                Db::Postgres(pool)
            }
            "sqlite" => {
                let opts = SqliteConnectOptions::from_str(url)
                    .map_err(DbError::BadUrl)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // FULL: a 2xx to a gateway means the batch survives a power cut.
                    .synchronous(SqliteSynchronous::Full)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_secs(10));
                if let Some(parent) = opts.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|source| DbError::CreateDir {
                        path: parent.display().to_string(),
                        source,
                    })?;
                }
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(opts)
                    .await
                    .map_err(DbError::Connect)?;
                Db::Sqlite(pool)
            }
            other => return Err(DbError::UnknownScheme(other.to_string())),
        };
        db.migrate().await?;
        Ok(db)
    }

    async fn migrate(&self) -> Result<(), DbError> {
        match self {
            Db::Postgres(p) => sqlx::migrate!("../migrations/postgres").run(p).await?,
            Db::Sqlite(p) => sqlx::migrate!("../migrations/sqlite").run(p).await?,
        }
        Ok(())
    }

    /// `postgres` or `sqlite`, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Db::Postgres(_) => "postgres",
            Db::Sqlite(_) => "sqlite",
        }
    }

    /// Cheap liveness check for `/healthz`.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on_db!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))
    }

    pub async fn close(&self) {
        on_db!(self, p => p.close().await)
    }
}

/// Hides a password in a database URL, for logs and `Debug` output.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_the_password_only() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(redact_url("postgres://app@db/x"), "postgres://app@db/x");
        assert_eq!(redact_url("sqlite://a.sqlite"), "sqlite://a.sqlite");
    }
}

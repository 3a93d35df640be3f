//! The dCMMS cloud service: gateway registry, exactly-once telemetry ingest,
//! telemetry read API, on Postgres or SQLite.
//!
//! # Layout
//!
//! - [`config`]: configuration (defaults → TOML file → `DCMMS_…` env → flags).
//! - [`db`]: the [`db::Db`] enum over the Postgres and SQLite pools, the
//!   [`on_db!`] macro that runs one query text on either, and migrations
//!   (from `migrations/{postgres,sqlite}` at the workspace root).
//! - [`gateways`]: gateway registry and per-gateway credentials (hashed).
//! - [`ingest`]: `POST /api/v1/ingest`: authenticate, decode, store once.
//! - [`telemetry`]: devices, points, and samples raw or aggregated.
//! - [`testing`]: helpers for tests against a real database.
//! - [`http`]: router ([`http::app`]), state, pagination, problem+json
//!   errors, query parsing, Prometheus metrics, the OpenAPI document.
//!
//! [`start`] binds the listener and serves until the shutdown token fires;
//! `dcmms-cloud serve`, the demo and the tests all go through it.

pub mod config;
pub mod db;
pub mod gateways;
pub mod http;
pub mod ingest;
pub mod telemetry;
pub mod testing;

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::CloudConfig;
pub use db::Db;

/// Errors starting the service.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Db(#[from] db::DbError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running cloud service.
#[derive(Debug)]
pub struct RunningCloud {
    /// Where it actually listens (useful with port 0).
    pub addr: SocketAddr,
    pub db: Db,
    pub metrics: Arc<http::metrics::CloudMetrics>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningCloud {
    /// `http://ADDR`, the base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server has stopped (after the shutdown token fired),
    /// then closes the database pool.
    pub async fn wait(self) -> std::io::Result<()> {
        let res = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        self.db.close().await;
        res
    }
}

/// Opens the database, binds the listener and serves until `shutdown`.
pub async fn start(
    cfg: &CloudConfig,
    shutdown: CancellationToken,
) -> Result<RunningCloud, StartError> {
    let db = Db::connect(&cfg.database_url).await?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let metrics = Arc::new(http::metrics::CloudMetrics::default());
    let state = http::AppState {
        db: db.clone(),
        metrics: metrics.clone(),
    };
    let router = http::app(state, cfg.max_batch_bytes);
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    tracing::info!(%addr, database = db.kind(), "cloud listening");
    Ok(RunningCloud {
        addr,
        db,
        metrics,
        task,
    })
}

//! The dCMMS cloud service: gateway registry, exactly-once telemetry ingest,
//! telemetry read API, on Postgres or SQLite.
//!
//! # Layout
//!
//! - [`auth`]: roles and the permission matrix (docs/specs/rbac.md).
//! - [`config`]: configuration (defaults → TOML file → `DCMMS_…` env → flags).
//! - [`db`]: the [`db::Db`] enum over the Postgres and SQLite pools, the
//!   [`on_db!`] macro that runs one query text on either, migrations (from
//!   `migrations/{postgres,sqlite}` at the workspace root), and
//!   [`db::Caches`] (committed point ids, existing partitions; one per
//!   opened database, held in [`http::AppState`]).
//! - [`gateways`]: gateway registry and per-gateway credentials (hashed).
//! - [`ingest`]: `POST /api/v1/ingest`: authenticate, decode, store once per
//!   sequence range (samples by binary `COPY` on Postgres, rollups, drop
//!   reports, all in one transaction; 409 on a partial overlap).
//! - [`partitions`]: the daily `samples` partitions on Postgres.
//! - [`retention`]: `retention_days`: the hourly pass that removes old days.
//! - [`telemetry`]: devices, points, and samples raw or aggregated (from the
//!   rollups maintained on ingest).
//! - [`completeness`]: `GET /api/v1/gateways/{id}/completeness`: received,
//!   dropped and in-flight sequences, per-point counts and dropped spans
//!   (docs/specs/completeness.md).
//! - [`work_orders`]: the work-order lifecycle
//!   (docs/specs/work-order-lifecycle.md).
//! - [`inventory`]: parts catalogue, stores, stock (never negative),
//!   reservations consumed on COMPLETE and released on CANCEL, reorder
//!   notifications (docs/specs/inventory-and-costs.md).
//! - [`costs`]: labour time entries, external costs, the per-work-order
//!   cost rollup; locked once the order is CLOSED.
//! - [`pm`]: preventive maintenance: plans, generation ahead over a
//!   horizon (background task every 10 min), compliance
//!   (docs/specs/preventive-maintenance.md).
//! - [`webhooks`]: signed outgoing webhooks for work-order and alarm
//!   events: an outbox written with the change, a delivery task with
//!   retries, backoff and dead letters (docs/specs/webhooks.md).
//! - [`alarms`]: alarm rules (threshold, rate of change), alarms raised
//!   from ingested telemetry by a background evaluator woken after each
//!   committed batch, automatic corrective work orders with evidence,
//!   repair verification (docs/specs/alarms.md).
//! - [`models`]: the anomaly model registry: upload, assignment to
//!   gateways or asset classes, rollback, the gateways' model sync (what
//!   they run, drift reports, drift notices) (docs/specs/model-registry.md).
//! - [`seed`]: the demo's users, site, asset tree and work orders.
//! - [`testing`]: helpers for tests against a real database.
//! - [`http`]: router ([`http::app`]), state, pagination, problem+json
//!   errors, query parsing, Prometheus metrics, the OpenAPI document.
//!
//! [`start`] binds the listener and serves until the shutdown token fires;
//! `dcmms-cloud serve`, the demo and the tests all go through it.

pub mod alarms;
pub mod assets;
pub mod audit;
pub mod auth;
pub mod completeness;
pub mod config;
pub mod costs;
pub mod db;
pub mod gateways;
pub mod http;
pub mod ingest;
pub mod inventory;
pub mod models;
pub mod partitions;
pub mod pm;
pub mod retention;
pub mod seed;
pub mod telemetry;
pub mod testing;
pub mod webhooks;
pub mod work_orders;

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
    /// The caches (and SQLite writer queue) the server uses with `db`;
    /// in-process writers such as the demo's seeding must share them.
    pub caches: Arc<db::Caches>,
    pub metrics: Arc<http::metrics::CloudMetrics>,
    task: JoinHandle<std::io::Result<()>>,
    retention: JoinHandle<()>,
    pm: JoinHandle<()>,
    webhooks: JoinHandle<()>,
    alarms: JoinHandle<()>,
}

impl RunningCloud {
    /// `http://ADDR`, the base URL of the API.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Waits until the server and the retention task have stopped (after the
    /// shutdown token fired), then closes the database pool.
    pub async fn wait(self) -> std::io::Result<()> {
        let res = match self.task.await {
            Ok(r) => r,
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let Err(e) = self.retention.await {
            tracing::warn!(error = %e, "retention task ended abnormally");
        }
        if let Err(e) = self.pm.await {
            tracing::warn!(error = %e, "PM generation task ended abnormally");
        }
        if let Err(e) = self.webhooks.await {
            tracing::warn!(error = %e, "webhook delivery task ended abnormally");
        }
        if let Err(e) = self.alarms.await {
            tracing::warn!(error = %e, "alarm evaluator ended abnormally");
        }
        self.db.close().await;
        res
    }
}

/// Opens the database, binds the listener and serves until `shutdown`;
/// runs the retention task ([`retention::spawn`]) and PM generation
/// ([`pm::generate::spawn`]) and the alarm evaluator
/// ([`alarms::evaluate::spawn`]) alongside.
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
    let state = http::AppState::new(db.clone(), metrics.clone());
    let caches = state.caches.clone();
    let router = http::app(state, cfg.max_batch_bytes);
    let retention = retention::spawn(
        db.clone(),
        caches.clone(),
        cfg.retention_days,
        shutdown.clone(),
    );
    let pm = pm::generate::spawn(db.clone(), caches.clone(), shutdown.clone());
    let webhooks = webhooks::delivery::spawn(
        db.clone(),
        caches.clone(),
        webhooks::delivery::Settings::default(),
        shutdown.clone(),
    );
    let alarms = alarms::evaluate::spawn(db.clone(), caches.clone(), shutdown.clone());
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    });
    tracing::info!(%addr, database = db.kind(), retention_days = cfg.retention_days, "cloud listening");
    Ok(RunningCloud {
        addr,
        db,
        caches,
        metrics,
        task,
        retention,
        pm,
        webhooks,
        alarms,
    })
}

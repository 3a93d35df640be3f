//! The dCMMS edge agent: polls field devices, buffers every sample durably,
//! and forwards batches to the cloud, deleting them only once acknowledged.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration, validated as a whole before start.
//! - [`drivers`]: the driver interface ([`drivers::Reading`]) and one folder
//!   per protocol, each behind a cargo feature (`drivers/modbus`,
//!   `drivers/mqtt`, `drivers/opcua`, `drivers/dnp3`).
//! - [`pipeline`]: the batcher that seals readings into batches within the
//!   durability window, and taps them for the anomaly engine.
//! - [`anomaly`]: anomaly models (feature `anomaly`, tract-onnx): per-asset
//!   features over rolling windows, autoencoder scores with hysteresis,
//!   explained events sent ahead of all other data, hot swap, the model
//!   sync with the cloud's registry and drift statistics.
//! - [`buffer`]: the store-and-forward buffer: sled for fresh batches and
//!   the index, append-only segment files for merged backlog.
//! - [`forwarder`]: uploads batches to the cloud's ingest endpoint.
//! - [`metrics`]: Prometheus metrics and the status counters.
//! - [`http`]: `/metrics`, `/healthz`, `/api/v1/status`.
//!
//! Data path: driver task per device → channel → batcher (→ anomaly engine
//! → event batches) → buffer (flushed) → forwarder → cloud → 2xx → delete.

pub mod anomaly;
pub mod buffer;
pub mod config;
pub mod drivers;
pub mod forwarder;
pub mod http;
pub mod metrics;
pub mod pipeline;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use config::EdgeConfig;
pub use metrics::{EdgeMetrics, Status};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the buffer at {path}: {source}")]
    Buffer {
        path: String,
        source: buffer::BufferError,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("anomaly models: {0}")]
    Anomaly(String),
    #[error(
        "device {0} uses a protocol this build does not include (cargo features modbus, mqtt, opcua, dnp3)"
    )]
    ProtocolDisabled(String),
}

/// A running edge agent.
#[derive(Debug)]
pub struct RunningEdge {
    /// Where `/metrics` and `/api/v1/status` are served.
    pub http_addr: SocketAddr,
    pub metrics: EdgeMetrics,
    buffer: Arc<buffer::Buffer>,
    drivers: JoinSet<()>,
    batcher: tokio::task::JoinHandle<()>,
    sealing_done: CancellationToken,
    others: JoinSet<()>,
}

impl RunningEdge {
    pub fn status(&self) -> Status {
        self.metrics.status()
    }

    /// Waits for a clean stop after `shutdown` fired: drivers stop, the batcher
    /// seals and flushes what they read, the forwarder drains the buffer
    /// within its grace period, then the buffer is flushed.
    pub async fn wait(mut self) {
        while self.drivers.join_next().await.is_some() {}
        let _ = self.batcher.await;
        self.sealing_done.cancel();
        while self.others.join_next().await.is_some() {}
        if let Err(e) = self.buffer.flush().await {
            tracing::error!(error = %e, "final buffer flush failed");
        }
    }
}

/// Starts every component of the agent; they run until `shutdown`.
pub async fn start(
    cfg: EdgeConfig,
    shutdown: CancellationToken,
) -> Result<RunningEdge, StartError> {
    let cfg = Arc::new(cfg);
    let metrics = EdgeMetrics::default();
    let buffer = Arc::new(
        buffer::Buffer::open(
            &cfg.buffer.path,
            cfg.buffer.cache_capacity_bytes,
            buffer::Limits {
                max_bytes: cfg.buffer.max_bytes,
                max_age_ms: cfg.buffer.max_age_hours as i64 * 3_600_000,
                compact_after_ms: cfg.buffer.compact_after_ms as i64,
                ..buffer::Limits::default()
            },
            &cfg.gateway_id,
            metrics.clone(),
        )
        .map_err(|source| StartError::Buffer {
            path: cfg.buffer.path.display().to_string(),
            source,
        })?,
    );
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.http.listen,
            source,
        })?;
    let http_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.http.listen,
        source,
    })?;

    // Models are loaded and checked before anything polls.
    #[cfg(feature = "anomaly")]
    let (tap, control): (
        Option<Box<dyn pipeline::Tap>>,
        Option<Arc<anomaly::engine::Registry>>,
    ) = if cfg.anomaly.is_empty() {
        (None, None)
    } else {
        let mut acfg = cfg.anomaly.clone();
        if acfg.models_dir.is_none() {
            // `models` beside the buffer directory.
            acfg.models_dir = Some(cfg.buffer.path.with_file_name("models"));
        }
        let registry = Arc::new(
            anomaly::engine::Registry::load(&acfg)
                .map_err(|e| StartError::Anomaly(e.to_string()))?,
        );
        let engine = anomaly::engine::Engine::new(&cfg.anomaly.assets, registry.clone())
            .map_err(|e| StartError::Anomaly(e.to_string()))?;
        (Some(Box::new(engine)), Some(registry))
    };
    #[cfg(not(feature = "anomaly"))]
    let tap: Option<Box<dyn pipeline::Tap>> = if cfg.anomaly.is_empty() {
        None
    } else {
        return Err(StartError::Anomaly(
            "this build has no anomaly support (cargo feature `anomaly`)".into(),
        ));
    };

    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    let sealed = Arc::new(tokio::sync::Notify::new());
    // `mut` is unused only in a build without any driver feature.
    #[cfg_attr(
        not(any(
            feature = "modbus",
            feature = "mqtt",
            feature = "opcua",
            feature = "dnp3"
        )),
        allow(unused_mut)
    )]
    let mut drivers = JoinSet::new();
    let n = cfg.devices.len().max(1) as u64;
    for (i, d) in cfg.devices.iter().enumerate() {
        let stagger = Duration::from_millis(d.poll_interval_ms * i as u64 / n);
        if d.modbus_tcp.is_some() || d.modbus_rtu.is_some() {
            #[cfg(feature = "modbus")]
            drivers.spawn(drivers::modbus::run_device(
                i,
                d.clone(),
                stagger,
                tx.clone(),
                metrics.clone(),
                shutdown.clone(),
            ));
            #[cfg(not(feature = "modbus"))]
            {
                let _ = stagger;
                return Err(StartError::ProtocolDisabled(d.name.clone()));
            }
        }
        if d.mqtt.is_some() {
            // Event-driven: no poll to stagger.
            #[cfg(feature = "mqtt")]
            drivers.spawn(drivers::mqtt::run_device(
                i,
                d.clone(),
                tx.clone(),
                metrics.clone(),
                shutdown.clone(),
            ));
            #[cfg(not(feature = "mqtt"))]
            return Err(StartError::ProtocolDisabled(d.name.clone()));
        }
        if d.opcua.is_some() {
            // Event-driven (subscriptions): no poll to stagger.
            #[cfg(feature = "opcua")]
            drivers.spawn(drivers::opcua::run_device(
                i,
                d.clone(),
                tx.clone(),
                metrics.clone(),
                shutdown.clone(),
            ));
            #[cfg(not(feature = "opcua"))]
            return Err(StartError::ProtocolDisabled(d.name.clone()));
        }
        if d.dnp3.is_some() {
            // The library runs the polls on its own schedule: no stagger.
            #[cfg(feature = "dnp3")]
            drivers.spawn(drivers::dnp3::run_device(
                i,
                d.clone(),
                tx.clone(),
                metrics.clone(),
                shutdown.clone(),
            ));
            #[cfg(not(feature = "dnp3"))]
            return Err(StartError::ProtocolDisabled(d.name.clone()));
        }
    }
    drop(tx);
    let batcher = tokio::spawn(pipeline::run_batcher(
        cfg.clone(),
        rx,
        buffer.clone(),
        sealed.clone(),
        metrics.clone(),
        tap,
    ));
    let mut others = JoinSet::new();
    #[cfg(feature = "anomaly")]
    if let Some(registry) = control.clone()
        && cfg.anomaly.watch_interval_ms > 0
    {
        // Hot swap of changed model files; loading runs off the runtime.
        let (sd, every) = (
            shutdown.clone(),
            Duration::from_millis(cfg.anomaly.watch_interval_ms),
        );
        others.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = sd.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let r = registry.clone();
                if let Err(e) = tokio::task::spawn_blocking(move || r.reload_changed()).await {
                    tracing::error!(error = %e, "anomaly model watcher failed");
                }
            }
        });
    }
    #[cfg(feature = "anomaly")]
    if let Some(registry) = control.clone()
        && cfg.anomaly.sync_interval_ms > 0
    {
        others.spawn(anomaly::sync::run(
            cfg.cloud.clone(),
            registry,
            Duration::from_millis(cfg.anomaly.sync_interval_ms),
            shutdown.clone(),
        ));
    }
    #[cfg(feature = "anomaly")]
    let control: Option<Arc<dyn anomaly::ModelControl>> =
        control.map(|r| r as Arc<dyn anomaly::ModelControl>);
    #[cfg(not(feature = "anomaly"))]
    let control: Option<Arc<dyn anomaly::ModelControl>> = None;
    let sealing_done = CancellationToken::new();
    others.spawn(forwarder::run_forwarder(
        cfg.cloud.clone(),
        buffer.clone(),
        sealed,
        metrics.clone(),
        shutdown.clone(),
        sealing_done.clone(),
    ));
    // Housekeeping: age cap and backlog compaction, every few seconds.
    let (buf, sd) = (buffer.clone(), shutdown.clone());
    let every = Duration::from_millis((cfg.buffer.compact_after_ms / 3).clamp(1000, 60_000));
    others.spawn(async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = sd.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = buf.maintain(drivers::now_ms()).await {
                tracing::error!(error = %e, "buffer maintenance failed");
            }
        }
    });
    let router = http::app(metrics.clone(), control);
    let sd = shutdown.clone();
    others.spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(sd.cancelled_owned())
            .await
        {
            tracing::error!(error = %e, "edge HTTP server failed");
        }
    });
    tracing::info!(%http_addr, devices = cfg.devices.len(), gateway = %cfg.gateway_id, "edge agent started");
    Ok(RunningEdge {
        http_addr,
        metrics,
        buffer,
        drivers,
        batcher,
        sealing_done,
        others,
    })
}

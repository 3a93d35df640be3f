//! Anomaly detection in the data path (docs/specs/anomaly-models.md):
//! small autoencoders (ONNX, run by tract) score rolling windows of
//! physically meaningful features per asset; a score past the model's
//! raise level for long enough raises an explained anomaly event, which the
//! batcher seals into a batch the forwarder sends before anything else.
//!
//! - [`config`]: the `[anomaly]` section (models, asset → role bindings).
//!   Always built.
//! - [`features`]: the feature sets (`wind_turbine/1`), pure. Always built.
//! - `model` (feature `anomaly`): metadata, load + optimise + check, score,
//!   explanation.
//! - `detector` (feature `anomaly`): per-asset rows, windows, hysteresis;
//!   pure, shared with the evaluation program.
//! - `engine` (feature `anomaly`): the model registry (atomic hot swap,
//!   file watching, installs from the cloud, drift counts, status) and the
//!   engine the batcher feeds.
//! - `drift` (feature `anomaly`): reference bins and PSI, pure.
//! - `sync` (feature `anomaly`): the model sync with the cloud
//!   (docs/specs/model-registry.md): report, fetch, install.

pub mod config;
#[cfg(feature = "anomaly")]
pub mod detector;
#[cfg(feature = "anomaly")]
pub mod drift;
#[cfg(feature = "anomaly")]
pub mod engine;
pub mod features;
#[cfg(feature = "anomaly")]
pub mod model;
#[cfg(feature = "anomaly")]
pub mod sync;

pub use config::{AnomalyAssetConfig, AnomalyConfig, AnomalyModelConfig};

/// What the HTTP API needs from the model registry.
pub trait ModelControl: Send + Sync + std::fmt::Debug {
    /// Reloads a model from its files; `Err` leaves the old one running.
    fn reload(&self, model_id: &str) -> Result<serde_json::Value, ReloadError>;
    /// The `anomaly` part of `/api/v1/status`.
    fn status(&self) -> serde_json::Value;
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("no model has id {0:?}")]
    UnknownModel(String),
    #[error("{0}")]
    Rejected(String),
}

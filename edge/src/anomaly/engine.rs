//! The model registry (loading at start, atomic hot swap, file watching,
//! status) and the engine the batcher feeds with every reading.
//!
//! The batcher owns the [`Engine`] and calls it inline: features and
//! inference cost microseconds per window, so no sample waits on a queue
//! and none can be dropped by one. A reload builds and checks the new model
//! on the caller's thread, then swaps one `Arc` under a write lock; the
//! next window the engine scores uses it. Asset state (rows, windows,
//! hysteresis) belongs to the engine, not to the model, so it survives.

use super::config::{AnomalyAssetConfig, AnomalyConfig};
use super::detector::{AssetWindow, Hysteresis, WindowReady, score_window};
use super::model::{Model, metadata_path};
use super::{ModelControl, ReloadError};
use crate::config::EdgeConfig;
use crate::drivers::Reading;
use dcmms_shared::{AnomalyEvent, AnomalyKind, Sample};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

/// Why the anomaly section cannot start; names the file or field.
#[derive(Debug, thiserror::Error)]
pub enum AnomalyStartError {
    #[error(transparent)]
    Model(#[from] super::model::ModelError),
    #[error("{0}")]
    Binding(String),
}

#[derive(Debug, Default)]
struct SlotInfo {
    loaded_ms: i64,
    reloads: u64,
    last_error: Option<String>,
    /// Modification times of (.onnx, .json) last tried.
    seen: (Option<SystemTime>, Option<SystemTime>),
}

#[derive(Debug)]
struct Slot {
    id: String,
    path: PathBuf,
    model: RwLock<Arc<Model>>,
    info: Mutex<SlotInfo>,
}

/// Counters shown in `/api/v1/status`.
#[derive(Debug, Default)]
pub struct Counters {
    pub windows_scored: AtomicU64,
    pub raised: AtomicU64,
    pub cleared: AtomicU64,
    pub inference_errors: AtomicU64,
}

/// Events kept for `/api/v1/status` (a technician's view with the cloud down).
pub const RECENT_EVENTS: usize = 20;

/// Every configured model, each replaceable atomically.
#[derive(Debug)]
pub struct Registry {
    slots: Vec<Slot>,
    pub counters: Counters,
    recent: Mutex<std::collections::VecDeque<AnomalyEvent>>,
}

#[derive(Debug, Serialize)]
pub struct ModelStatus {
    pub model_id: String,
    pub version: String,
    pub path: String,
    pub loaded_ms: i64,
    pub reloads: u64,
    pub last_error: Option<String>,
}

fn mtimes(onnx: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let m = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (m(onnx), m(&metadata_path(onnx)))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Registry {
    /// Loads and checks every configured model (spec §1).
    pub fn load(cfg: &AnomalyConfig) -> Result<Registry, AnomalyStartError> {
        let mut slots = Vec::new();
        for m in &cfg.models {
            let seen = mtimes(&m.path);
            let model = Model::load(&m.path)?;
            if model.meta.model_id != m.id {
                return Err(AnomalyStartError::Binding(format!(
                    "{}: model_id is {:?} but the configuration calls it {:?}",
                    metadata_path(&m.path).display(),
                    model.meta.model_id,
                    m.id
                )));
            }
            tracing::info!(model = %m.id, version = %model.meta.version, path = %m.path.display(), "anomaly model loaded");
            slots.push(Slot {
                id: m.id.clone(),
                path: m.path.clone(),
                model: RwLock::new(Arc::new(model)),
                info: Mutex::new(SlotInfo {
                    loaded_ms: crate::drivers::now_ms(),
                    seen,
                    ..SlotInfo::default()
                }),
            });
        }
        Ok(Registry {
            slots,
            counters: Counters::default(),
            recent: Mutex::new(std::collections::VecDeque::new()),
        })
    }

    fn slot_index(&self, id: &str) -> Option<usize> {
        self.slots.iter().position(|s| s.id == id)
    }

    /// The model in slot `i` now.
    pub fn current(&self, i: usize) -> Option<Arc<Model>> {
        let s = self.slots.get(i)?;
        Some(s.model.read().unwrap_or_else(|e| e.into_inner()).clone())
    }

    /// Loads the slot's files again and swaps the model in if it passes
    /// every check and fits the running one (same id, feature set, roles
    /// and sample period). On failure the old model keeps running and the
    /// error is recorded for the status.
    pub fn reload_slot(&self, i: usize) -> Result<ModelStatus, ReloadError> {
        let Some(slot) = self.slots.get(i) else {
            return Err(ReloadError::UnknownModel(i.to_string()));
        };
        let seen = mtimes(&slot.path);
        let result = Model::load(&slot.path)
            .map_err(|e| e.to_string())
            .and_then(|new| {
                let old = self.current(i).ok_or("slot vanished")?;
                let (a, b) = (&old.meta, &new.meta);
                if b.model_id != slot.id {
                    return Err(format!(
                        "{}: model_id {:?} is not {:?}",
                        metadata_path(&slot.path).display(),
                        b.model_id,
                        slot.id
                    ));
                }
                if b.feature_set != a.feature_set
                    || b.window.sample_period_ms != a.window.sample_period_ms
                {
                    return Err(format!(
                        "{}: feature set {} / sample period {} ms differ from the running model's {} / {} ms",
                        metadata_path(&slot.path).display(),
                        b.feature_set,
                        b.window.sample_period_ms,
                        a.feature_set,
                        a.window.sample_period_ms
                    ));
                }
                Ok(new)
            });
        let mut info = lock(&slot.info);
        info.seen = seen;
        match result {
            Ok(new) => {
                let version = new.meta.version.clone();
                *slot.model.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
                info.loaded_ms = crate::drivers::now_ms();
                info.reloads += 1;
                info.last_error = None;
                tracing::info!(model = %slot.id, %version, "anomaly model reloaded");
                drop(info);
                self.slot_status(i)
                    .ok_or_else(|| ReloadError::UnknownModel(slot.id.clone()))
            }
            Err(problem) => {
                tracing::error!(model = %slot.id, error = %problem, "anomaly model reload failed; the previous model keeps running");
                info.last_error = Some(problem.clone());
                Err(ReloadError::Rejected(problem))
            }
        }
    }

    /// Reloads every model whose files changed since they were last tried.
    pub fn reload_changed(&self) {
        for (i, slot) in self.slots.iter().enumerate() {
            let now = mtimes(&slot.path);
            let changed = lock(&slot.info).seen != now;
            if changed {
                let _ = self.reload_slot(i);
            }
        }
    }

    fn slot_status(&self, i: usize) -> Option<ModelStatus> {
        let slot = self.slots.get(i)?;
        let model = self.current(i)?;
        let info = lock(&slot.info);
        Some(ModelStatus {
            model_id: slot.id.clone(),
            version: model.meta.version.clone(),
            path: slot.path.display().to_string(),
            loaded_ms: info.loaded_ms,
            reloads: info.reloads,
            last_error: info.last_error.clone(),
        })
    }

    /// Remembers an event for the status (newest last).
    pub fn record(&self, e: &AnomalyEvent) {
        let mut r = lock(&self.recent);
        r.push_back(e.clone());
        while r.len() > RECENT_EVENTS {
            r.pop_front();
        }
    }

    /// The most recent events, newest last.
    pub fn recent_events(&self) -> Vec<AnomalyEvent> {
        lock(&self.recent).iter().cloned().collect()
    }

    pub fn models(&self) -> Vec<ModelStatus> {
        (0..self.slots.len())
            .filter_map(|i| self.slot_status(i))
            .collect()
    }
}

impl ModelControl for Registry {
    fn reload(&self, model_id: &str) -> Result<serde_json::Value, ReloadError> {
        let i = self
            .slot_index(model_id)
            .ok_or_else(|| ReloadError::UnknownModel(model_id.to_string()))?;
        let s = self.reload_slot(i)?;
        Ok(serde_json::to_value(s).unwrap_or_default())
    }

    fn status(&self) -> serde_json::Value {
        let c = &self.counters;
        serde_json::json!({
            "models": self.models(),
            "windows_scored": c.windows_scored.load(Ordering::Relaxed),
            "raised": c.raised.load(Ordering::Relaxed),
            "cleared": c.cleared.load(Ordering::Relaxed),
            "inference_errors": c.inference_errors.load(Ordering::Relaxed),
            "recent_events": self.recent_events(),
        })
    }
}

#[derive(Debug)]
struct AssetRt {
    name: String,
    slot: usize,
    window: AssetWindow,
    hyst: Hysteresis,
}

/// Per-asset scoring, fed by the batcher.
#[derive(Debug)]
pub struct Engine {
    registry: Arc<Registry>,
    assets: Vec<AssetRt>,
    /// `(device, point)` name → the `(asset, role)` pairs it feeds.
    by_name: HashMap<(String, String), Vec<(usize, usize)>>,
    /// The same by `(device index, point index)`, filled on first sight.
    by_index: HashMap<(usize, usize), Vec<(usize, usize)>>,
    windows: Vec<(usize, WindowReady)>,
}

impl Engine {
    /// Binds every configured asset to its model's roles; every role must
    /// be mapped and no other key is allowed.
    pub fn new(
        assets: &[AnomalyAssetConfig],
        registry: Arc<Registry>,
    ) -> Result<Engine, AnomalyStartError> {
        let mut rts = Vec::new();
        let mut by_name: HashMap<(String, String), Vec<(usize, usize)>> = HashMap::new();
        for (i, a) in assets.iter().enumerate() {
            let slot = registry.slot_index(&a.model).ok_or_else(|| {
                AnomalyStartError::Binding(format!(
                    "anomaly.assets[{i}].model: no model has id {:?}",
                    a.model
                ))
            })?;
            let model = registry
                .current(slot)
                .ok_or_else(|| AnomalyStartError::Binding("model slot missing".into()))?;
            let roles = model.set.roles();
            for key in a.points.keys() {
                if !roles.iter().any(|(r, _)| r == key) {
                    return Err(AnomalyStartError::Binding(format!(
                        "anomaly.assets[{i}].points.{key}: model {} has no role {key:?} (roles: {})",
                        a.model,
                        roles.iter().map(|(r, _)| *r).collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            for (r, (role, _)) in roles.iter().enumerate() {
                let binding = a.points.get(*role).ok_or_else(|| {
                    AnomalyStartError::Binding(format!(
                        "anomaly.assets[{i}].points: role {role:?} of model {} is not mapped",
                        a.model
                    ))
                })?;
                let (d, p) = AnomalyAssetConfig::split(binding).ok_or_else(|| {
                    AnomalyStartError::Binding(format!(
                        "anomaly.assets[{i}].points.{role}: {binding:?} must be \"device/point\""
                    ))
                })?;
                by_name
                    .entry((d.to_string(), p.to_string()))
                    .or_default()
                    .push((i, r));
            }
            rts.push(AssetRt {
                name: a.asset.clone(),
                slot,
                window: AssetWindow::new(roles.len()),
                hyst: Hysteresis::default(),
            });
        }
        Ok(Engine {
            registry,
            assets: rts,
            by_name,
            by_index: HashMap::new(),
            windows: Vec::new(),
        })
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Feeds one driver reading; returns the events it caused.
    pub fn on_reading(&mut self, cfg: &EdgeConfig, r: &Reading) -> Vec<AnomalyEvent> {
        let mut events = Vec::new();
        for (point, s) in &r.samples {
            let key = (r.device, *point);
            if !self.by_index.contains_key(&key) {
                let targets = cfg
                    .devices
                    .get(r.device)
                    .and_then(|d| {
                        let (p, _) = d.point_name_unit(*point)?;
                        self.by_name.get(&(d.name.clone(), p.to_string())).cloned()
                    })
                    .unwrap_or_default();
                self.by_index.insert(key, targets);
            }
            // Taken out and put back: no allocation per sample.
            let targets = self
                .by_index
                .get_mut(&key)
                .map(std::mem::take)
                .unwrap_or_default();
            for &(asset, role) in &targets {
                self.push(asset, role, s, &mut events);
            }
            if let Some(slot) = self.by_index.get_mut(&key) {
                *slot = targets;
            }
        }
        events
    }

    /// Feeds one sample of `device/point` (by name).
    pub fn on_sample(&mut self, device: &str, point: &str, s: &Sample) -> Vec<AnomalyEvent> {
        let mut events = Vec::new();
        let targets = self
            .by_name
            .get(&(device.to_string(), point.to_string()))
            .cloned()
            .unwrap_or_default();
        for (asset, role) in targets {
            self.push(asset, role, s, &mut events);
        }
        events
    }

    fn push(&mut self, asset: usize, role: usize, s: &Sample, events: &mut Vec<AnomalyEvent>) {
        let Some(a) = self.assets.get_mut(asset) else {
            return;
        };
        let Some(model) = self.registry.current(a.slot) else {
            return;
        };
        let windows = &mut self.windows;
        a.window.push(
            role,
            s.ts_ms,
            s.value,
            s.quality,
            model.meta.window,
            model.set,
            &model.params,
            &mut |w| windows.push((asset, w)),
        );
        for (_, w) in self.windows.drain(..) {
            match score_window(&model, &a.name, &mut a.hyst, &w) {
                Ok((_, event)) => {
                    self.registry
                        .counters
                        .windows_scored
                        .fetch_add(1, Ordering::Relaxed);
                    if let Some(mut e) = event {
                        let c = match e.kind {
                            AnomalyKind::Raised => &self.registry.counters.raised,
                            AnomalyKind::Cleared => &self.registry.counters.cleared,
                        };
                        c.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(asset = %e.asset, kind = e.kind.as_str(), score = e.score, summary = %e.summary, "anomaly");
                        fit_strings(&mut e);
                        self.registry.record(&e);
                        events.push(e);
                    }
                }
                Err(err) => {
                    self.registry
                        .counters
                        .inference_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::error!(asset = %a.name, error = %err, "anomaly scoring failed");
                }
            }
        }
    }

    /// True while the asset's anomaly is raised.
    pub fn is_anomalous(&self, asset: &str) -> Option<bool> {
        self.assets
            .iter()
            .find(|a| a.name == asset)
            .map(|a| a.hyst.anomalous)
    }
}

/// Cuts every string to the wire format's 255 bytes at a char boundary.
fn fit_strings(e: &mut AnomalyEvent) {
    fn cut(s: &mut String) {
        if s.len() > 255 {
            let mut end = 255;
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            s.truncate(end);
        }
    }
    cut(&mut e.summary);
    cut(&mut e.asset_class);
    cut(&mut e.model_id);
    cut(&mut e.model_version);
    for c in &mut e.explanation {
        cut(&mut c.feature);
        cut(&mut c.unit);
        cut(&mut c.text);
    }
}

//! The model registry (loading at start, atomic hot swap, file watching,
//! installs from the cloud, drift counts, status) and the engine the
//! batcher feeds with every reading.
//!
//! The batcher owns the [`Engine`] and calls it inline: features and
//! inference cost microseconds per window, so no sample waits on a queue
//! and none can be dropped by one. A reload builds and checks the new model
//! on the caller's thread, then swaps one `Arc` under a write lock; the
//! next window the engine scores uses it. Asset state (rows, windows,
//! hysteresis) belongs to the engine, not to the model, so it survives.

use super::config::{AnomalyAssetConfig, AnomalyConfig};
use super::detector::{AssetWindow, Hysteresis, WindowReady, score_window};
use super::drift::DriftCounter;
use super::model::{Model, metadata_path};
use super::{ModelControl, ReloadError};
use crate::config::EdgeConfig;
use crate::drivers::Reading;
use dcmms_shared::api::{DriftReport, FeatureDrift, RunningModel};
use dcmms_shared::{AnomalyEvent, AnomalyKind, Sample};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
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
    /// `version@sha256` of an assignment that failed; not tried again.
    failed: Option<String>,
}

#[derive(Debug)]
struct Slot {
    id: String,
    /// The files in use: the configured ones, or the copy installed from
    /// the cloud (`models_dir/<id>.onnx`).
    path: Mutex<PathBuf>,
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
/// Completed drift reports kept while the cloud is unreachable.
pub const MAX_PENDING_DRIFT: usize = 1000;

/// Drift of one asset: the running count and the last result.
#[derive(Debug)]
struct AssetDrift {
    model_id: String,
    counter: DriftCounter,
    last: Option<DriftReport>,
}

/// Every configured model, each replaceable atomically.
#[derive(Debug)]
pub struct Registry {
    slots: Vec<Slot>,
    models_dir: Option<PathBuf>,
    pub counters: Counters,
    recent: Mutex<std::collections::VecDeque<AnomalyEvent>>,
    drift: Mutex<BTreeMap<String, AssetDrift>>,
    pending_drift: Mutex<Vec<DriftReport>>,
}

#[derive(Debug, Serialize)]
pub struct ModelStatus {
    pub model_id: String,
    pub version: String,
    pub onnx_sha256: String,
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

fn failure_key(version: &str, sha: &str) -> String {
    format!("{version}@{}", sha.to_ascii_lowercase())
}

/// Whether `new` may replace `old` in slot `id` (spec §7).
fn fits(id: &str, old: &Model, new: &Model, path: &Path) -> Result<(), String> {
    let (a, b) = (&old.meta, &new.meta);
    if b.model_id != id {
        return Err(format!(
            "{}: model_id {:?} is not {:?}",
            metadata_path(path).display(),
            b.model_id,
            id
        ));
    }
    if b.feature_set != a.feature_set || b.window.sample_period_ms != a.window.sample_period_ms {
        return Err(format!(
            "{}: feature set {} / sample period {} ms differ from the running model's {} / {} ms",
            metadata_path(path).display(),
            b.feature_set,
            b.window.sample_period_ms,
            a.feature_set,
            a.window.sample_period_ms
        ));
    }
    Ok(())
}

impl Registry {
    /// Loads and checks every configured model (spec §1). A copy installed
    /// from the cloud (`models_dir/<id>.onnx`) is preferred when it loads;
    /// when it does not, the configured file runs and the error is shown.
    pub fn load(cfg: &AnomalyConfig) -> Result<Registry, AnomalyStartError> {
        let mut slots = Vec::new();
        for m in &cfg.models {
            let mut last_error = None;
            let installed = cfg
                .models_dir
                .as_ref()
                .map(|d| d.join(format!("{}.onnx", m.id)))
                .filter(|p| p.exists());
            let from_installed = installed.and_then(|p| match Model::load(&p) {
                Ok(model) if model.meta.model_id == m.id => Some((p, model)),
                Ok(model) => {
                    last_error = Some(format!(
                        "{}: model_id {:?} is not {:?}; running the configured file",
                        p.display(),
                        model.meta.model_id,
                        m.id
                    ));
                    None
                }
                Err(e) => {
                    last_error = Some(format!("{e}; running the configured file"));
                    None
                }
            });
            if let Some(e) = &last_error {
                tracing::error!(model = %m.id, error = %e, "installed anomaly model unusable");
            }
            let (path, model) = match from_installed {
                Some(x) => x,
                None => (m.path.clone(), Model::load(&m.path)?),
            };
            if model.meta.model_id != m.id {
                return Err(AnomalyStartError::Binding(format!(
                    "{}: model_id is {:?} but the configuration calls it {:?}",
                    metadata_path(&path).display(),
                    model.meta.model_id,
                    m.id
                )));
            }
            tracing::info!(model = %m.id, version = %model.meta.version, path = %path.display(), "anomaly model loaded");
            slots.push(Slot {
                id: m.id.clone(),
                model: RwLock::new(Arc::new(model)),
                info: Mutex::new(SlotInfo {
                    loaded_ms: crate::drivers::now_ms(),
                    seen: mtimes(&path),
                    last_error,
                    ..SlotInfo::default()
                }),
                path: Mutex::new(path),
            });
        }
        Ok(Registry {
            slots,
            models_dir: cfg.models_dir.clone(),
            counters: Counters::default(),
            recent: Mutex::new(std::collections::VecDeque::new()),
            drift: Mutex::new(BTreeMap::new()),
            pending_drift: Mutex::new(Vec::new()),
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

    /// Swaps `new` (already checked) into slot `i`.
    fn swap_in(&self, i: usize, new: Model, path: PathBuf) -> Option<ModelStatus> {
        let slot = self.slots.get(i)?;
        let version = new.meta.version.clone();
        *slot.model.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(new);
        {
            let mut info = lock(&slot.info);
            info.seen = mtimes(&path);
            info.loaded_ms = crate::drivers::now_ms();
            info.reloads += 1;
            info.last_error = None;
            info.failed = None;
        }
        *lock(&slot.path) = path;
        tracing::info!(model = %slot.id, %version, "anomaly model replaced");
        self.slot_status(i)
    }

    fn fail(&self, i: usize, problem: String, assignment: Option<String>) -> ReloadError {
        if let Some(slot) = self.slots.get(i) {
            tracing::error!(model = %slot.id, error = %problem, "anomaly model replacement failed; the previous model keeps running");
            let mut info = lock(&slot.info);
            info.last_error = Some(problem.clone());
            if assignment.is_some() {
                info.failed = assignment;
            }
        }
        ReloadError::Rejected(problem)
    }

    /// Loads the slot's files again and swaps the model in if it passes
    /// every check and fits the running one (same id, feature set, roles
    /// and sample period). On failure the old model keeps running and the
    /// error is recorded for the status.
    pub fn reload_slot(&self, i: usize) -> Result<ModelStatus, ReloadError> {
        let Some(slot) = self.slots.get(i) else {
            return Err(ReloadError::UnknownModel(i.to_string()));
        };
        let path = lock(&slot.path).clone();
        lock(&slot.info).seen = mtimes(&path);
        let result = Model::load(&path)
            .map_err(|e| e.to_string())
            .and_then(|new| {
                let old = self.current(i).ok_or("slot vanished")?;
                fits(&slot.id, &old, &new, &path).map(|()| new)
            });
        match result {
            Ok(new) => self
                .swap_in(i, new, path)
                .ok_or_else(|| ReloadError::UnknownModel(slot.id.clone())),
            Err(problem) => Err(self.fail(i, problem, None)),
        }
    }

    /// Installs a model received from the cloud: writes both files under
    /// temporary names in `models_dir`, loads and checks them, and only then
    /// renames them to `<id>.onnx` / `<id>.json` and swaps the model in.
    /// On any failure the running model stays and the error is recorded
    /// (and this assignment, `version` with these bytes, is not tried again
    /// until it changes).
    pub fn install(
        &self,
        model_id: &str,
        version: &str,
        metadata: &[u8],
        onnx: &[u8],
    ) -> Result<ModelStatus, ReloadError> {
        let i = self
            .slot_index(model_id)
            .ok_or_else(|| ReloadError::UnknownModel(model_id.to_string()))?;
        let key = Some(failure_key(version, &hex::encode(Sha256::digest(onnx))));
        let Some(dir) = &self.models_dir else {
            return Err(self.fail(i, "no anomaly.models_dir to install into".into(), key));
        };
        let tmp = dir.join(format!("{model_id}.new.onnx"));
        let fin = dir.join(format!("{model_id}.onnx"));
        let result = (|| {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(&tmp, onnx).map_err(|e| format!("{}: {e}", tmp.display()))?;
            std::fs::write(metadata_path(&tmp), metadata)
                .map_err(|e| format!("{}: {e}", metadata_path(&tmp).display()))?;
            let new = Model::load(&tmp).map_err(|e| e.to_string())?;
            let old = self.current(i).ok_or("slot vanished")?;
            fits(model_id, &old, &new, &tmp)?;
            // Metadata first: a crash between the renames leaves a pair whose
            // hashes disagree, which the next start refuses (and runs the
            // configured file).
            std::fs::rename(metadata_path(&tmp), metadata_path(&fin))
                .map_err(|e| format!("{}: {e}", metadata_path(&fin).display()))?;
            std::fs::rename(&tmp, &fin).map_err(|e| format!("{}: {e}", fin.display()))?;
            Ok::<Model, String>(new)
        })();
        match result {
            Ok(mut new) => {
                new.onnx_path = fin.clone();
                self.swap_in(i, new, fin)
                    .ok_or_else(|| ReloadError::UnknownModel(model_id.to_string()))
            }
            Err(problem) => {
                let _ = std::fs::remove_file(&tmp);
                let _ = std::fs::remove_file(metadata_path(&tmp));
                Err(self.fail(i, problem, key))
            }
        }
    }

    /// Records a failed download of an assignment (not retried).
    pub fn note_failure(&self, model_id: &str, problem: String, version: &str, sha: &str) {
        if let Some(i) = self.slot_index(model_id) {
            let _ = self.fail(i, problem, Some(failure_key(version, sha)));
        }
    }

    /// True when this assignment of `model_id` failed before and should not
    /// be retried.
    pub fn failed_before(&self, model_id: &str, version: &str, sha: &str) -> bool {
        let key = failure_key(version, sha);
        self.slot_index(model_id)
            .and_then(|i| self.slots.get(i))
            .is_some_and(|s| lock(&s.info).failed.as_deref() == Some(key.as_str()))
    }

    /// Reloads every model whose files changed since they were last tried.
    pub fn reload_changed(&self) {
        for (i, slot) in self.slots.iter().enumerate() {
            let now = mtimes(&lock(&slot.path));
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
            onnx_sha256: model.meta.onnx_sha256.to_ascii_lowercase(),
            path: lock(&slot.path).display().to_string(),
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

    /// What the model sync reports as running.
    pub fn running(&self) -> Vec<RunningModel> {
        self.models()
            .into_iter()
            .map(|m| RunningModel {
                model_id: m.model_id,
                version: m.version,
                onnx_sha256: m.onnx_sha256,
                last_error: m.last_error,
            })
            .collect()
    }

    /// Counts a scored window of `asset` for drift (models with a `drift`
    /// section only); completes a report every `min_windows`.
    pub fn observe_drift(&self, asset: &str, model: &Model, x: &[f64], ts_ms: i64) {
        let Some(meta) = &model.meta.drift else {
            return;
        };
        let z: Vec<f64> = x
            .iter()
            .zip(&model.meta.features)
            .map(|(v, f)| (v - f.mean) / f.std)
            .collect();
        let mut all = lock(&self.drift);
        let d = all.entry(asset.to_string()).or_insert_with(|| AssetDrift {
            model_id: model.meta.model_id.clone(),
            counter: DriftCounter::new(&model.meta.version, z.len()),
            last: None,
        });
        if d.counter.model_version != model.meta.version || d.model_id != model.meta.model_id {
            // A swapped model: its reference differs, so start again.
            d.model_id = model.meta.model_id.clone();
            d.counter = DriftCounter::new(&model.meta.version, z.len());
        }
        d.counter.observe(meta, &z, ts_ms);
        if d.counter.windows >= meta.min_windows {
            let psi = d.counter.psi(meta);
            let mut features: Vec<FeatureDrift> = model
                .meta
                .features
                .iter()
                .zip(psi)
                .map(|(f, psi)| FeatureDrift {
                    feature: f.name.clone(),
                    psi,
                })
                .collect();
            features.sort_by(|a, b| b.psi.total_cmp(&a.psi));
            let report = DriftReport {
                asset: asset.to_string(),
                model_id: model.meta.model_id.clone(),
                model_version: model.meta.version.clone(),
                windows: d.counter.windows,
                from_ms: d.counter.from_ms,
                to_ms: d.counter.to_ms,
                features,
                threshold: meta.notice_psi,
            };
            if report
                .features
                .first()
                .is_some_and(|f| f.psi >= meta.notice_psi)
            {
                tracing::warn!(asset, model = %report.model_id, psi = report.features.first().map_or(0.0, |f| f.psi), "feature drift past the model's notice level");
            }
            d.last = Some(report.clone());
            d.counter = DriftCounter::new(&model.meta.version, z.len());
            drop(all);
            let mut p = lock(&self.pending_drift);
            p.push(report);
            if p.len() > MAX_PENDING_DRIFT {
                let extra = p.len() - MAX_PENDING_DRIFT;
                p.drain(..extra);
            }
        }
    }

    /// Completed drift reports not yet sent (the sync takes them).
    pub fn take_drift(&self) -> Vec<DriftReport> {
        std::mem::take(&mut *lock(&self.pending_drift))
    }

    /// Puts back reports a failed sync could not deliver (oldest first).
    pub fn restore_drift(&self, mut reports: Vec<DriftReport>) {
        let mut p = lock(&self.pending_drift);
        reports.append(&mut p);
        if reports.len() > MAX_PENDING_DRIFT {
            let extra = reports.len() - MAX_PENDING_DRIFT;
            reports.drain(..extra);
        }
        *p = reports;
    }

    /// Per asset: windows counted now and the last report.
    fn drift_status(&self) -> serde_json::Value {
        let all = lock(&self.drift);
        serde_json::Value::Array(
            all.iter()
                .map(|(asset, d)| {
                    serde_json::json!({
                        "asset": asset,
                        "model_id": d.model_id,
                        "model_version": d.counter.model_version,
                        "windows_counted": d.counter.windows,
                        "last": d.last,
                    })
                })
                .collect(),
        )
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
            "drift": self.drift_status(),
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
                    self.registry
                        .observe_drift(&a.name, &model, &w.features, w.end_ms);
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

//! One anomaly model: its metadata (docs/specs/anomaly-models.md §2), the
//! optimised tract plan, and the pure arithmetic around it (normalise,
//! score, explain). Loading checks everything §1 lists; a bad file is an
//! [`ModelError`] naming it, never a panic.

use super::features::{FeatureSet, Params};
use dcmms_shared::Contribution;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

pub const FORMAT: &str = "dcmms-anomaly-model/1";

/// Why a model could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid metadata: {problem}")]
    Metadata { path: PathBuf, problem: String },
    #[error("{path}: SHA-256 {actual} differs from the metadata's onnx_sha256 {expected}")]
    Hash {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: not a usable ONNX model: {problem}")]
    Onnx { path: PathBuf, problem: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleMeta {
    pub role: String,
    pub unit: String,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WindowMeta {
    pub sample_period_ms: u64,
    pub length: usize,
    pub step: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureMeta {
    pub name: String,
    pub unit: String,
    pub mean: f64,
    pub std: f64,
    /// Typical reconstruction error of this feature on the training data,
    /// in normalised units: the score's per-feature scale.
    pub error_scale: f64,
    pub template: String,
    pub decimals: u8,
    /// An operating-point input (a rack's current or state of charge):
    /// its error counts in the score and it is listed in the explanation,
    /// but the event's summary names the largest non-context feature
    /// (docs/specs/anomaly-models.md §2, §6). Default false.
    #[serde(default)]
    pub context: bool,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreMeta {
    pub raise: f64,
    pub clear: f64,
    pub raise_count: u32,
    pub clear_count: u32,
}

/// The metadata file, as written by `edge/models/train.py`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub format: String,
    pub model_id: String,
    pub version: String,
    pub asset_class: String,
    pub feature_set: String,
    pub onnx_sha256: String,
    pub roles: Vec<RoleMeta>,
    pub params: serde_json::Value,
    pub window: WindowMeta,
    pub features: Vec<FeatureMeta>,
    pub score: ScoreMeta,
    /// Provenance (data hash, seeds, …); kept as is.
    pub training: serde_json::Value,
    /// The training data's feature distribution, for drift
    /// (docs/specs/model-registry.md §4). Optional.
    #[serde(default)]
    pub drift: Option<super::drift::DriftMeta>,
}

impl Metadata {
    /// Checks everything that does not need the ONNX file; returns the
    /// feature set and its parsed parameters.
    pub fn check(&self) -> Result<(FeatureSet, Params), String> {
        if self.format != FORMAT {
            return Err(format!("format is {:?}, expected {FORMAT:?}", self.format));
        }
        if self.model_id.is_empty() || self.version.is_empty() {
            return Err("model_id and version must not be empty".into());
        }
        if !matches!(
            self.asset_class.as_str(),
            "wind_turbine" | "pv_inverter" | "bess_rack"
        ) {
            return Err(format!("unknown asset_class {:?}", self.asset_class));
        }
        let set = FeatureSet::from_name(&self.feature_set)
            .ok_or_else(|| format!("unknown feature_set {:?}", self.feature_set))?;
        let roles: Vec<(&str, &str)> = self
            .roles
            .iter()
            .map(|r| (r.role.as_str(), r.unit.as_str()))
            .collect();
        if roles != set.roles() {
            return Err(format!(
                "roles {roles:?} are not those of {} {:?}",
                set.name(),
                set.roles()
            ));
        }
        let feats: Vec<(&str, &str)> = self
            .features
            .iter()
            .map(|f| (f.name.as_str(), f.unit.as_str()))
            .collect();
        if feats != set.features() {
            return Err(format!(
                "features {feats:?} are not those of {} {:?}",
                set.name(),
                set.features()
            ));
        }
        for f in &self.features {
            if !(f.std.is_finite()
                && f.std > 0.0
                && f.mean.is_finite()
                && f.error_scale.is_finite()
                && f.error_scale > 0.0)
            {
                return Err(format!(
                    "feature {}: mean must be finite, std and error_scale positive",
                    f.name
                ));
            }
        }
        let s = self.score;
        if !(s.clear.is_finite() && s.raise.is_finite() && 0.0 < s.clear && s.clear < s.raise) {
            return Err("score: need 0 < clear < raise".into());
        }
        if s.raise_count == 0 || s.clear_count == 0 {
            return Err("score: raise_count and clear_count must be at least 1".into());
        }
        let w = self.window;
        if w.sample_period_ms == 0 || w.length < 2 || w.step == 0 || w.length > 100_000 {
            return Err(
                "window: sample_period_ms ≥ 1, 2 ≤ length ≤ 100000 and step ≥ 1 required".into(),
            );
        }
        if let Some(d) = &self.drift {
            d.check(self.features.len())?;
        }
        let params = set.params(&self.params)?;
        if let Params::Bess(p) = &params
            && (p.sample_period_s * 1000.0 - w.sample_period_ms as f64).abs() > 1e-6
        {
            return Err(format!(
                "params.sample_period_s {} does not match window.sample_period_ms {}",
                p.sample_period_s, w.sample_period_ms
            ));
        }
        Ok((set, params))
    }
}

/// A loaded, optimised and checked model.
#[derive(Debug)]
pub struct Model {
    pub meta: Metadata,
    pub set: FeatureSet,
    pub params: Params,
    pub onnx_path: PathBuf,
    plan: std::sync::Arc<TypedRunnableModel>,
}

/// The metadata path of a model: the `.onnx` path with `.json`.
pub fn metadata_path(onnx: &Path) -> PathBuf {
    onnx.with_extension("json")
}

impl Model {
    /// Loads `<stem>.onnx` and `<stem>.json` and checks them (spec §1).
    pub fn load(onnx_path: &Path) -> Result<Model, ModelError> {
        let meta_path = metadata_path(onnx_path);
        let meta_bytes = std::fs::read(&meta_path).map_err(|source| ModelError::Read {
            path: meta_path.clone(),
            source,
        })?;
        let meta: Metadata =
            serde_json::from_slice(&meta_bytes).map_err(|e| ModelError::Metadata {
                path: meta_path.clone(),
                problem: e.to_string(),
            })?;
        let (set, params) = meta.check().map_err(|problem| ModelError::Metadata {
            path: meta_path.clone(),
            problem,
        })?;
        let bytes = std::fs::read(onnx_path).map_err(|source| ModelError::Read {
            path: onnx_path.to_path_buf(),
            source,
        })?;
        let actual = hex::encode(Sha256::digest(&bytes));
        if !actual.eq_ignore_ascii_case(&meta.onnx_sha256) {
            return Err(ModelError::Hash {
                path: onnx_path.to_path_buf(),
                expected: meta.onnx_sha256.clone(),
                actual,
            });
        }
        let onnx_err = |problem: String| ModelError::Onnx {
            path: onnx_path.to_path_buf(),
            problem,
        };
        let n = meta.features.len();
        let plan = build_plan(&bytes, n).map_err(|e| onnx_err(format!("{e:#}")))?;
        let model = Model {
            meta,
            set,
            params,
            onnx_path: onnx_path.to_path_buf(),
            plan,
        };
        let probe = model
            .reconstruct(&vec![0.0; n])
            .map_err(|e| onnx_err(e.to_string()))?;
        if probe.iter().any(|v| !v.is_finite()) {
            return Err(onnx_err("a zero input gives non-finite output".into()));
        }
        Ok(model)
    }

    pub fn feature_count(&self) -> usize {
        self.meta.features.len()
    }

    /// Runs the network: normalised features in, reconstruction out.
    pub fn reconstruct(&self, z: &[f32]) -> Result<Vec<f32>, InferError> {
        let n = self.feature_count();
        if z.len() != n {
            return Err(InferError(format!("{} inputs for {n} features", z.len())));
        }
        let input = Tensor::from_shape(&[1, n], z).map_err(|e| InferError(e.to_string()))?;
        let out = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| InferError(e.to_string()))?;
        let first = out.first().ok_or_else(|| InferError("no output".into()))?;
        let view = first
            .to_plain_array_view::<f32>()
            .map_err(|e| InferError(e.to_string()))?;
        if view.len() != n {
            return Err(InferError(format!(
                "{} outputs for {n} features",
                view.len()
            )));
        }
        Ok(view.iter().copied().collect())
    }

    /// Scores a feature vector: `(score, z, reconstruction)`.
    pub fn score(&self, x: &[f64]) -> Result<Scored, InferError> {
        let z: Vec<f32> = x
            .iter()
            .zip(&self.meta.features)
            .map(|(v, f)| ((v - f.mean) / f.std) as f32)
            .collect();
        let rec = self.reconstruct(&z)?;
        let sq: Vec<f64> = z
            .iter()
            .zip(&rec)
            .zip(&self.meta.features)
            .map(|((a, b), f)| {
                let d = (f64::from(*a) - f64::from(*b)) / f.error_scale;
                d * d
            })
            .collect();
        let score = sq.iter().sum::<f64>() / sq.len().max(1) as f64;
        Ok(Scored {
            score,
            x: x.to_vec(),
            rec,
            sq,
        })
    }

    /// Features ranked by share of the reconstruction error, with their
    /// sentences (spec §4).
    pub fn explain(&self, s: &Scored) -> Vec<Contribution> {
        let total: f64 = s.sq.iter().sum();
        let mut out: Vec<Contribution> = self
            .meta
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let value = s.x.get(i).copied().unwrap_or(f64::NAN);
                let expected =
                    f64::from(s.rec.get(i).copied().unwrap_or(f32::NAN)) * f.std + f.mean;
                let share = if total > 0.0 { s.sq[i] / total } else { 0.0 };
                Contribution {
                    feature: f.name.clone(),
                    unit: f.unit.clone(),
                    share,
                    value,
                    expected,
                    text: phrase(&f.template, f.decimals, value, expected),
                }
            })
            .collect();
        out.sort_by(|a, b| b.share.total_cmp(&a.share));
        out
    }
}

/// The result of scoring one window.
#[derive(Debug, Clone)]
pub struct Scored {
    pub score: f64,
    pub x: Vec<f64>,
    pub rec: Vec<f32>,
    /// Per feature: squared error in units of the feature's `error_scale`.
    pub sq: Vec<f64>,
}

#[derive(Debug, thiserror::Error)]
#[error("inference failed: {0}")]
pub struct InferError(pub String);

fn build_plan(bytes: &[u8], n: usize) -> TractResult<std::sync::Arc<TypedRunnableModel>> {
    let mut reader = bytes;
    let model = tract_onnx::onnx()
        .model_for_read(&mut reader)?
        .with_input_fact(0, f32::fact([1, n]).into())?
        .into_optimized()?;
    let outputs = model.output_outlets()?.len();
    if model.input_outlets()?.len() != 1 || outputs != 1 {
        return Err(TractError::msg(format!(
            "expected one input and one output, found {outputs} outputs"
        )));
    }
    let fact = model.output_fact(0)?;
    let shape: Option<Vec<usize>> = fact.shape.as_concrete().map(|s| s.to_vec());
    if shape.as_deref() != Some(&[1, n][..]) {
        return Err(TractError::msg(format!(
            "output shape {:?} is not [1, {n}]",
            fact.shape
        )));
    }
    model.into_runnable()
}

/// Fills a template: `{abs_delta}`, `{direction}`, `{value}`, `{expected}`.
pub fn phrase(template: &str, decimals: u8, value: f64, expected: f64) -> String {
    let d = usize::from(decimals.min(6));
    let delta = value - expected;
    let abs = format!("{:.d$}", delta.abs());
    let direction = if delta >= 0.0 { "above" } else { "below" };
    template
        .replace("{abs_delta}", &abs)
        .replace("{direction}", direction)
        .replace("{value}", &format!("{value:.d$}"))
        .replace("{expected}", &format!("{expected:.d$}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn phrases_read_like_a_technician_talks() {
        let t = "gearbox temperature {abs_delta} °C {direction} expected for this power";
        assert_eq!(
            phrase(t, 0, 62.2, 48.0),
            "gearbox temperature 14 °C above expected for this power"
        );
        assert_eq!(
            phrase(
                "power {abs_delta} kW {direction} ({value} vs {expected})",
                1,
                10.0,
                12.26
            ),
            "power 2.3 kW below (10.0 vs 12.3)"
        );
    }
}

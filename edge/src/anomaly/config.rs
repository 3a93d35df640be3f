//! The `[anomaly]` section: which model files to load and how each
//! asset's points feed a model's roles (docs/specs/anomaly-models.md §3).
//! Always built, so every build validates it.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    #[serde(default)]
    pub models: Vec<AnomalyModelConfig>,
    #[serde(default)]
    pub assets: Vec<AnomalyAssetConfig>,
    /// How often to look for changed model files (0 = never; reload then
    /// only through `POST /api/v1/anomaly/models/{id}/reload`).
    #[serde(default = "d_watch")]
    pub watch_interval_ms: u64,
    /// How often to sync models with the cloud: report what runs and the
    /// drift, fetch assignments (docs/specs/model-registry.md; 0 = never).
    #[serde(default = "d_sync")]
    pub sync_interval_ms: u64,
    /// Where models installed from the cloud are kept (default: `models`
    /// beside the buffer directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models_dir: Option<PathBuf>,
}

fn d_sync() -> u64 {
    60_000
}

fn d_watch() -> u64 {
    5000
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyModelConfig {
    /// The model's `model_id`; the metadata must say the same.
    pub id: String,
    /// The `.onnx` file; the metadata is the same path with `.json`.
    pub path: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyAssetConfig {
    /// The asset's name, as events and the cloud know it.
    pub asset: String,
    /// The `id` of one of `[[anomaly.models]]`.
    pub model: String,
    /// Role → `"device/point"`.
    pub points: BTreeMap<String, String>,
}

impl AnomalyAssetConfig {
    /// `(device, point)` of a binding value.
    pub fn split(binding: &str) -> Option<(&str, &str)> {
        let (d, p) = binding.split_once('/')?;
        (!d.is_empty() && !p.is_empty()).then_some((d, p))
    }
}

impl AnomalyConfig {
    pub fn is_empty(&self) -> bool {
        self.models.is_empty() && self.assets.is_empty()
    }

    /// Checks what can be checked without the model files: returns the
    /// field path and the problem. `point_known(device, point)` is `None`
    /// when no device has that name, `Some(false)` when the device's points
    /// are known and do not include it.
    pub fn validate(
        &self,
        point_known: &dyn Fn(&str, &str) -> Option<bool>,
    ) -> Result<(), (String, String)> {
        let mut ids = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            if m.id.is_empty() || !ids.insert(m.id.as_str()) {
                return Err((
                    format!("anomaly.models[{i}].id"),
                    format!("{:?} is empty or used by another model", m.id),
                ));
            }
            if m.path.extension().and_then(|e| e.to_str()) != Some("onnx") {
                return Err((
                    format!("anomaly.models[{i}].path"),
                    "must name a .onnx file (the metadata is the same path with .json)".into(),
                ));
            }
        }
        let mut assets = HashSet::new();
        for (i, a) in self.assets.iter().enumerate() {
            if a.asset.is_empty() || a.asset.len() > 255 || !assets.insert(a.asset.as_str()) {
                return Err((
                    format!("anomaly.assets[{i}].asset"),
                    format!("{:?} is empty, too long or used by another asset", a.asset),
                ));
            }
            if !ids.contains(a.model.as_str()) {
                return Err((
                    format!("anomaly.assets[{i}].model"),
                    format!("no [[anomaly.models]] entry has id {:?}", a.model),
                ));
            }
            let mut seen = HashSet::new();
            for (role, binding) in &a.points {
                let field = format!("anomaly.assets[{i}].points.{role}");
                let Some((device, point)) = Self::split_binding(binding) else {
                    return Err((field, format!("{binding:?} must be \"device/point\"")));
                };
                match point_known(device, point) {
                    None => return Err((field, format!("no device is named {device:?}"))),
                    Some(false) => {
                        return Err((field, format!("device {device:?} has no point {point:?}")));
                    }
                    Some(true) => {}
                }
                if !seen.insert(binding.as_str()) {
                    return Err((field, format!("{binding:?} already feeds another role")));
                }
            }
        }
        if self.watch_interval_ms != 0 && self.watch_interval_ms < 100 {
            return Err((
                "anomaly.watch_interval_ms".into(),
                "must be 0 (off) or at least 100".into(),
            ));
        }
        Ok(())
    }

    fn split_binding(b: &str) -> Option<(&str, &str)> {
        AnomalyAssetConfig::split(b)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::EdgeConfig;

    const BASE: &str = r#"gateway_id = "gw"
[cloud]
url = "http://127.0.0.1:1"
credential = "gw.00"
[[devices]]
name = "t1"
poll_interval_ms = 1000
[devices.modbus_tcp]
host = "127.0.0.1"
port = 1
unit_id = 1
[[devices.points]]
name = "WindSpeed"
address = 0
type = "u16"
"#;

    fn check(anomaly: &str) -> Result<EdgeConfig, crate::config::ConfigError> {
        EdgeConfig::from_toml(&format!("{BASE}{anomaly}"), "edge.toml")
    }

    const OK: &str = r#"[anomaly]
[[anomaly.models]]
id = "m"
path = "models/m.onnx"
[[anomaly.assets]]
asset = "WTG-01"
model = "m"
[anomaly.assets.points]
wind_speed = "t1/WindSpeed"
"#;

    #[test]
    fn anomaly_section_errors_name_the_field() {
        let cfg = check(OK).unwrap();
        assert_eq!(cfg.anomaly.watch_interval_ms, 5000);
        let cases = [
            (
                OK.replace("model = \"m\"", "model = \"x\""),
                "anomaly.assets[0].model",
            ),
            (
                OK.replace("\"t1/WindSpeed\"", "\"t2/WindSpeed\""),
                "anomaly.assets[0].points.wind_speed",
            ),
            (
                OK.replace("\"t1/WindSpeed\"", "\"WindSpeed\""),
                "anomaly.assets[0].points.wind_speed",
            ),
            (OK.replace("m.onnx", "m.json"), "anomaly.models[0].path"),
            (
                OK.replace("\"t1/WindSpeed\"", "\"t1/Windspeed\""),
                "anomaly.assets[0].points.wind_speed",
            ),
            (
                format!("{OK}active_power = \"t1/WindSpeed\"\n"),
                "anomaly.assets[0].points.wind_speed",
            ),
        ];
        for (text, field) in cases {
            let e = check(&text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
        }
        let e = check(&OK.replace("[anomaly]", "[anomaly]\nbogus = 1")).unwrap_err();
        assert!(e.problem.contains("bogus"), "{e}");
    }
}

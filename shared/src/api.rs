//! Constants and types of the edge ↔ cloud contract: the uplink
//! (batches) and the model sync (docs/specs/model-registry.md).

use serde::{Deserialize, Serialize};

/// Path of the cloud's ingest endpoint.
pub const INGEST_PATH: &str = "/api/v1/ingest";

/// Media type of an encoded batch (see `docs/specs/wire-format.md`).
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.dcmms.batch";

/// Media type of every error body the cloud returns (RFC 9457).
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// Builds the bearer credential a gateway presents: `<gateway_id>.<secret>`.
pub fn gateway_credential(gateway_id: &str, secret: &str) -> String {
    format!("{gateway_id}.{secret}")
}

/// Splits a gateway credential into gateway id and secret.
///
/// The secret is everything after the last `.`, so gateway ids may contain dots.
pub fn split_gateway_credential(credential: &str) -> Option<(&str, &str)> {
    let (id, secret) = credential.rsplit_once('.')?;
    if id.is_empty() || secret.is_empty() {
        return None;
    }
    Some((id, secret))
}

/// Path of the model sync: a gateway reports what it runs (and its drift
/// reports) and gets its model assignments back.
pub const MODEL_SYNC_PATH: &str = "/api/v1/gateway/models/sync";

/// Prefix of a model's files for gateways:
/// `{MODEL_FILES_PATH}/{model_id}/{version}/metadata` (JSON) and
/// `…/onnx` (bytes).
pub const MODEL_FILES_PATH: &str = "/api/v1/gateway/models";

/// Body of a model sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ModelSyncRequest {
    /// Every configured model, as the gateway runs it now.
    pub running: Vec<RunningModel>,
    /// Drift reports completed since the previous sync.
    #[serde(default)]
    pub drift: Vec<DriftReport>,
}

/// A model a gateway runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunningModel {
    pub model_id: String,
    pub version: String,
    pub onnx_sha256: String,
    /// The last failed replacement (download or check), if any since the
    /// running model was loaded.
    pub last_error: Option<String>,
}

/// Population stability of one asset's features over `windows` scored
/// windows, against the model's training data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DriftReport {
    pub asset: String,
    pub model_id: String,
    pub model_version: String,
    pub windows: u64,
    /// Time of the first and last window counted.
    pub from_ms: i64,
    pub to_ms: i64,
    /// Every feature, largest PSI first.
    pub features: Vec<FeatureDrift>,
    /// The model's notice level (metadata `drift.notice_psi`).
    pub threshold: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FeatureDrift {
    pub feature: String,
    pub psi: f64,
}

/// The cloud's answer to a model sync.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelSyncResponse {
    /// The version each model should run (gateway assignments first, then
    /// asset-class ones); models not listed keep what they run.
    pub assignments: Vec<AssignedModel>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssignedModel {
    pub model_id: String,
    pub version: String,
    pub onnx_sha256: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_round_trips_with_dotted_gateway_ids() {
        let c = gateway_credential("site.a.gw1", "s3cret");
        assert_eq!(split_gateway_credential(&c), Some(("site.a.gw1", "s3cret")));
    }

    #[test]
    fn credential_without_separator_or_parts_is_rejected() {
        assert_eq!(split_gateway_credential("nodot"), None);
        assert_eq!(split_gateway_credential(".secret"), None);
        assert_eq!(split_gateway_credential("gw."), None);
    }
}

//! The anomaly model registry (docs/specs/model-registry.md): models
//! uploaded with their metadata, assigned to gateways or to asset classes
//! (each change a row, so a rollback knows the version before), the sync
//! through which a gateway reports what it runs and its drift and learns
//! its assignments, and drift notices.
//!
//! - this file: the store;
//! - [`handlers`]: `/api/v1/models…` for users, `/api/v1/gateway/models…`
//!   for gateways.
//!
//! The cloud checks the metadata and that the file's SHA-256 is the one the
//! metadata names; the graph itself is checked by the gateway, which keeps
//! its running model when a replacement fails and reports the error here.

pub mod handlers;

use crate::assets::text;
use crate::audit;
use crate::db::{Caches, Db};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::{on_db, on_tx};
use base64::Engine as _;
use dcmms_shared::api::{AssignedModel, DriftReport, ModelSyncRequest, ModelSyncResponse};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The metadata format the edge reads (docs/specs/anomaly-models.md §2).
pub const FORMAT: &str = "dcmms-anomaly-model/1";
/// Asset classes a model may serve.
pub const ASSET_CLASSES: [&str; 3] = ["wind_turbine", "pv_inverter", "bess_rack"];
/// Largest ONNX file accepted.
pub const MAX_ONNX_BYTES: usize = 16 << 20;
/// Notice level when a report names none usable.
pub const DEFAULT_NOTICE_PSI: f64 = 0.25;
const MAX_TEXT: usize = 255;

/// An upload: the metadata file's JSON and the ONNX file in base64.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewModel {
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    pub onnx_base64: String,
}

/// A registered model (without its bytes).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct ModelInfo {
    pub model_id: String,
    pub version: String,
    pub asset_class: String,
    pub feature_set: String,
    pub onnx_sha256: String,
    pub onnx_bytes: i64,
    pub uploaded_by: String,
    pub uploaded_ms: i64,
}

/// Whom an assignment is for.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// A gateway id; or
    pub gateway_id: Option<String>,
    /// every gateway, for models of this asset class.
    pub asset_class: Option<String>,
}

/// Assign `model_id` at `version` to a target.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssignment {
    pub target: Target,
    pub model_id: String,
    pub version: String,
}

/// Go back to the version assigned before the current one.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rollback {
    pub target: Target,
    pub model_id: String,
}

/// An assignment in force.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Assignment {
    pub id: i64,
    /// `gateway` or `asset_class`.
    pub target_kind: String,
    pub target: String,
    pub model_id: String,
    pub version: String,
    pub onnx_sha256: String,
    /// `assign` or `rollback`.
    pub action: String,
    pub assigned_by: String,
    pub assigned_ms: i64,
}

/// What a gateway runs against what it is assigned.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct GatewayModel {
    pub gateway_id: String,
    pub model_id: String,
    pub running_version: String,
    pub running_sha256: String,
    /// The version in force for this gateway, if any.
    pub assigned_version: Option<String>,
    /// Runs what it is assigned, same version and file (or nothing is assigned).
    pub in_sync: bool,
    pub last_error: Option<String>,
    pub reported_ms: i64,
}

/// A stored drift report.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Drift {
    pub id: i64,
    pub gateway_id: String,
    pub asset: String,
    pub model_id: String,
    pub model_version: String,
    pub windows: i64,
    pub from_ms: i64,
    pub to_ms: i64,
    #[schema(value_type = Object)]
    pub features: serde_json::Value,
    pub max_psi: f64,
    pub threshold: f64,
    /// `max_psi >= threshold`: raised as a notice (and webhook `model.drift`).
    pub notice: bool,
    pub received_ms: i64,
}

fn id_text(field: &str, v: &str) -> Result<(), AppError> {
    text(field, v, 64)?;
    if !v
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(AppError::bad_field(
            field,
            format!("{v:?}: letters, digits, '.', '_' and '-' only"),
        ));
    }
    Ok(())
}

fn meta_str<'a>(m: &'a serde_json::Value, key: &str) -> Result<&'a str, AppError> {
    m.get(key)
        .and_then(|v| v.as_str())
        .ok_or_else(|| AppError::bad_field(format!("metadata.{key}"), "missing or not a string"))
}

/// Registers a model; `409` if `(model_id, version)` exists.
pub async fn upload(
    db: &Db,
    caches: &Caches,
    actor: &str,
    n: &NewModel,
) -> Result<ModelInfo, AppError> {
    let onnx = base64::engine::general_purpose::STANDARD
        .decode(n.onnx_base64.trim())
        .map_err(|e| AppError::bad_field("onnx_base64", format!("not base64: {e}")))?;
    if onnx.is_empty() || onnx.len() > MAX_ONNX_BYTES {
        return Err(AppError::bad_field(
            "onnx_base64",
            format!(
                "the file has {} bytes; 1 to {MAX_ONNX_BYTES} allowed",
                onnx.len()
            ),
        ));
    }
    let m = &n.metadata;
    if !m.is_object() {
        return Err(AppError::bad_field("metadata", "must be a JSON object"));
    }
    let format = meta_str(m, "format")?;
    if format != FORMAT {
        return Err(AppError::bad_field(
            "metadata.format",
            format!("{format:?}; expected {FORMAT:?}"),
        ));
    }
    let model_id = meta_str(m, "model_id")?;
    id_text("metadata.model_id", model_id)?;
    let version = meta_str(m, "version")?;
    id_text("metadata.version", version)?;
    let asset_class = meta_str(m, "asset_class")?;
    if !ASSET_CLASSES.contains(&asset_class) {
        return Err(AppError::bad_field(
            "metadata.asset_class",
            format!("{asset_class:?}: one of {}", ASSET_CLASSES.join(", ")),
        ));
    }
    let feature_set = meta_str(m, "feature_set")?;
    text("metadata.feature_set", feature_set, 64)?;
    let named = meta_str(m, "onnx_sha256")?;
    let actual = hex::encode(Sha256::digest(&onnx));
    if !named.eq_ignore_ascii_case(&actual) {
        return Err(AppError::bad_field(
            "metadata.onnx_sha256",
            format!("the metadata names {named} but the uploaded file's SHA-256 is {actual}"),
        ));
    }
    let now = now_ms();
    let info = ModelInfo {
        model_id: model_id.to_string(),
        version: version.to_string(),
        asset_class: asset_class.to_string(),
        feature_set: feature_set.to_string(),
        onnx_sha256: actual,
        onnx_bytes: onnx.len() as i64,
        uploaded_by: actor.to_string(),
        uploaded_ms: now,
    };
    let mut tx = db.write(caches).await?;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO anomaly_models (model_id, version, asset_class, feature_set, metadata_json, onnx, onnx_sha256, uploaded_by, uploaded_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&info.model_id).bind(&info.version).bind(&info.asset_class).bind(&info.feature_set)
        .bind(m.to_string()).bind(&onnx).bind(&info.onnx_sha256).bind(actor).bind(now)
        .execute(c).await.map(|_| ()))
        .map_err(|e| crate::assets::conflict_if_duplicate(e, "metadata.version"))?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor,
            action: "upload",
            entity: "anomaly_model",
            entity_id: &format!("{model_id}@{version}"),
            before: None,
            after: serde_json::to_value(&info).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(info)
}

type InfoRow = (String, String, String, String, String, i64, String, i64);

const INFO_COLS: &str = "SELECT model_id, version, asset_class, feature_set, onnx_sha256, \
     CAST(LENGTH(onnx) AS BIGINT), uploaded_by, uploaded_ms FROM anomaly_models";

fn info_of(r: InfoRow) -> ModelInfo {
    ModelInfo {
        model_id: r.0,
        version: r.1,
        asset_class: r.2,
        feature_set: r.3,
        onnx_sha256: r.4,
        onnx_bytes: r.5,
        uploaded_by: r.6,
        uploaded_ms: r.7,
    }
}

/// Registered models, by id then upload time.
pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<Vec<ModelInfo>, AppError> {
    let sql = format!("{INFO_COLS} ORDER BY model_id, uploaded_ms, version LIMIT $1 OFFSET $2");
    let rows: Vec<InfoRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(limit).bind(offset).fetch_all(p).await)?;
    Ok(rows.into_iter().map(info_of).collect())
}

pub async fn get(db: &Db, model_id: &str, version: &str) -> Result<Option<ModelInfo>, AppError> {
    let sql = format!("{INFO_COLS} WHERE model_id = $1 AND version = $2");
    let row: Option<InfoRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(model_id).bind(version).fetch_optional(p).await)?;
    Ok(row.map(info_of))
}

/// The metadata file of a model.
pub async fn metadata(
    db: &Db,
    model_id: &str,
    version: &str,
) -> Result<Option<serde_json::Value>, AppError> {
    let row: Option<(String,)> = on_db!(db, p => sqlx::query_as(
        "SELECT metadata_json FROM anomaly_models WHERE model_id = $1 AND version = $2")
        .bind(model_id).bind(version).fetch_optional(p).await)?;
    row.map(|(s,)| serde_json::from_str(&s).map_err(|e| AppError::Internal(anyhow::anyhow!(e))))
        .transpose()
}

/// The ONNX file of a model.
pub async fn onnx(db: &Db, model_id: &str, version: &str) -> Result<Option<Vec<u8>>, AppError> {
    let row: Option<(Vec<u8>,)> = on_db!(db, p => sqlx::query_as(
        "SELECT onnx FROM anomaly_models WHERE model_id = $1 AND version = $2")
        .bind(model_id).bind(version).fetch_optional(p).await)?;
    Ok(row.map(|(b,)| b))
}

/// `(kind, target)` of a target; checks it exists.
async fn target_of(db: &Db, t: &Target) -> Result<(&'static str, String), AppError> {
    match (&t.gateway_id, &t.asset_class) {
        (Some(g), None) => {
            let known: Option<(String,)> = on_db!(db, p => sqlx::query_as(
                "SELECT id FROM gateways WHERE id = $1").bind(g).fetch_optional(p).await)?;
            if known.is_none() {
                return Err(AppError::bad_field(
                    "target.gateway_id",
                    format!("no gateway {g:?}"),
                ));
            }
            Ok(("gateway", g.clone()))
        }
        (None, Some(c)) => {
            if !ASSET_CLASSES.contains(&c.as_str()) {
                return Err(AppError::bad_field(
                    "target.asset_class",
                    format!("{c:?}: one of {}", ASSET_CLASSES.join(", ")),
                ));
            }
            Ok(("asset_class", c.clone()))
        }
        _ => Err(AppError::bad_field(
            "target",
            "give exactly one of gateway_id and asset_class",
        )),
    }
}

type AssignmentRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    String,
    i64,
);

const ASSIGNMENT_COLS: &str = "SELECT a.id, a.target_kind, a.target, a.model_id, a.version, m.onnx_sha256, \
     a.action, a.assigned_by, a.assigned_ms FROM model_assignments a \
     JOIN anomaly_models m ON m.model_id = a.model_id AND m.version = a.version";

fn assignment_of(r: AssignmentRow) -> Assignment {
    Assignment {
        id: r.0,
        target_kind: r.1,
        target: r.2,
        model_id: r.3,
        version: r.4,
        onnx_sha256: r.5,
        action: r.6,
        assigned_by: r.7,
        assigned_ms: r.8,
    }
}

async fn insert_assignment(
    db: &Db,
    caches: &Caches,
    actor: &str,
    (kind, target): (&str, &str),
    (model_id, version): (&str, &str),
    action: &str,
    before: Option<&Assignment>,
) -> Result<Assignment, AppError> {
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO model_assignments (target_kind, target, model_id, version, action, assigned_by, assigned_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id")
        .bind(kind).bind(target).bind(model_id).bind(version).bind(action).bind(actor).bind(now)
        .fetch_one(c).await)?;
    let sql = format!("{ASSIGNMENT_COLS} WHERE a.id = $1");
    let row: AssignmentRow =
        on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_one(c).await)?;
    let a = assignment_of(row);
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor,
            action: if action == "rollback" {
                "rollback_model"
            } else {
                "assign_model"
            },
            entity: "model_assignment",
            entity_id: &format!("{kind}:{target}:{model_id}"),
            before: before.and_then(|b| serde_json::to_value(b).ok()),
            after: serde_json::to_value(&a).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(a)
}

/// The assignment history of one target and model, newest first.
async fn history(
    db: &Db,
    kind: &str,
    target: &str,
    model_id: &str,
) -> Result<Vec<Assignment>, AppError> {
    let sql = format!(
        "{ASSIGNMENT_COLS} WHERE a.target_kind = $1 AND a.target = $2 AND a.model_id = $3 ORDER BY a.id DESC"
    );
    let rows: Vec<AssignmentRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(kind).bind(target).bind(model_id).fetch_all(p).await)?;
    Ok(rows.into_iter().map(assignment_of).collect())
}

/// Assigns a registered model version to a gateway or an asset class.
pub async fn assign(
    db: &Db,
    caches: &Caches,
    actor: &str,
    n: &NewAssignment,
) -> Result<Assignment, AppError> {
    let (kind, target) = target_of(db, &n.target).await?;
    let Some(model) = get(db, &n.model_id, &n.version).await? else {
        return Err(AppError::bad_field(
            "version",
            format!("no model {}@{} is registered", n.model_id, n.version),
        ));
    };
    if kind == "asset_class" && model.asset_class != target {
        return Err(AppError::bad_field(
            "target.asset_class",
            format!(
                "model {} serves {}, not {target}",
                n.model_id, model.asset_class
            ),
        ));
    }
    let before = history(db, kind, &target, &n.model_id).await?;
    insert_assignment(
        db,
        caches,
        actor,
        (kind, &target),
        (&n.model_id, &n.version),
        "assign",
        before.first(),
    )
    .await
}

/// Assigns again the newest earlier version that differs from the current
/// one; `409` when there is none.
pub async fn rollback(
    db: &Db,
    caches: &Caches,
    actor: &str,
    r: &Rollback,
) -> Result<Assignment, AppError> {
    let (kind, target) = target_of(db, &r.target).await?;
    let h = history(db, kind, &target, &r.model_id).await?;
    let Some(current) = h.first() else {
        return Err(AppError::Conflict {
            kind: "nothing-to-roll-back",
            detail: format!("{} has no assignment for {target}", r.model_id),
            field: Some("model_id".into()),
        });
    };
    let Some(previous) = h.iter().find(|a| a.version != current.version) else {
        return Err(AppError::Conflict {
            kind: "nothing-to-roll-back",
            detail: format!(
                "{} has only ever been assigned version {} for {target}",
                r.model_id, current.version
            ),
            field: Some("model_id".into()),
        });
    };
    insert_assignment(
        db,
        caches,
        actor,
        (kind, &target),
        (&r.model_id, &previous.version),
        "rollback",
        Some(current),
    )
    .await
}

/// Every assignment in force (the newest row per target and model).
pub async fn current_assignments(db: &Db) -> Result<Vec<Assignment>, AppError> {
    let sql = format!(
        "{ASSIGNMENT_COLS} WHERE a.id IN (SELECT MAX(id) FROM model_assignments GROUP BY target_kind, target, model_id) \
         ORDER BY a.target_kind, a.target, a.model_id"
    );
    let rows: Vec<AssignmentRow> =
        on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(p).await)?;
    Ok(rows.into_iter().map(assignment_of).collect())
}

/// The version each model should run on `gateway`: its own assignment, else
/// the assignment of the model's asset class.
pub fn effective(all: &[Assignment], gateway: &str) -> Vec<AssignedModel> {
    let mut out: BTreeMap<&str, &Assignment> = BTreeMap::new();
    for a in all.iter().filter(|a| a.target_kind == "asset_class") {
        out.insert(&a.model_id, a);
    }
    for a in all
        .iter()
        .filter(|a| a.target_kind == "gateway" && a.target == gateway)
    {
        out.insert(&a.model_id, a);
    }
    out.into_values()
        .map(|a| AssignedModel {
            model_id: a.model_id.clone(),
            version: a.version.clone(),
            onnx_sha256: a.onnx_sha256.clone(),
        })
        .collect()
}

fn cut(s: &str) -> String {
    s.chars().take(MAX_TEXT).collect()
}

fn check_report(i: usize, d: &DriftReport) -> Result<(), AppError> {
    let f = |name: &str| format!("drift[{i}].{name}");
    text(&f("asset"), &d.asset, MAX_TEXT)?;
    text(&f("model_id"), &d.model_id, 64)?;
    text(&f("model_version"), &d.model_version, 64)?;
    if d.features.is_empty() || d.features.len() > 256 {
        return Err(AppError::bad_field(f("features"), "1 to 256 features"));
    }
    for (j, x) in d.features.iter().enumerate() {
        text(&format!("drift[{i}].features[{j}].feature"), &x.feature, 64)?;
        if !(x.psi.is_finite() && x.psi >= 0.0) {
            return Err(AppError::bad_field(
                format!("drift[{i}].features[{j}].psi"),
                "must be a finite number ≥ 0",
            ));
        }
    }
    if d.from_ms > d.to_ms {
        return Err(AppError::bad_field(f("from_ms"), "after to_ms"));
    }
    Ok(())
}

/// A gateway's sync: records what it runs and its drift reports (a notice
/// and a `model.drift` webhook for every report past its threshold), and
/// answers with its assignments.
pub async fn sync(
    db: &Db,
    caches: &Caches,
    gateway: &str,
    req: &ModelSyncRequest,
) -> Result<ModelSyncResponse, AppError> {
    if req.running.len() > 256 || req.drift.len() > 10_000 {
        return Err(AppError::bad_field(
            "running",
            "at most 256 models and 10000 drift reports per sync",
        ));
    }
    for (i, d) in req.drift.iter().enumerate() {
        check_report(i, d)?;
    }
    for (i, r) in req.running.iter().enumerate() {
        text(&format!("running[{i}].model_id"), &r.model_id, 64)?;
    }
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    for r in &req.running {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO gateway_models (gateway_id, model_id, version, onnx_sha256, last_error, reported_ms) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (gateway_id, model_id) DO UPDATE SET \
             version = excluded.version, onnx_sha256 = excluded.onnx_sha256, \
             last_error = excluded.last_error, reported_ms = excluded.reported_ms")
            .bind(gateway).bind(cut(&r.model_id)).bind(cut(&r.version)).bind(cut(&r.onnx_sha256))
            .bind(r.last_error.as_deref().map(cut)).bind(now)
            .execute(c).await.map(|_| ()))?;
    }
    for d in &req.drift {
        let mut features = d.features.clone();
        features.sort_by(|a, b| b.psi.total_cmp(&a.psi));
        let max_psi = features.first().map_or(0.0, |f| f.psi);
        let threshold = if d.threshold.is_finite() && d.threshold > 0.0 {
            d.threshold
        } else {
            DEFAULT_NOTICE_PSI
        };
        let notice = max_psi >= threshold;
        let features_json =
            serde_json::to_string(&features).map_err(|e| AppError::Internal(anyhow::anyhow!(e)))?;
        let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
            "INSERT INTO model_drift (gateway_id, asset, model_id, model_version, windows, from_ms, to_ms, features, max_psi, threshold, notice, received_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id")
            .bind(gateway).bind(cut(&d.asset)).bind(&d.model_id).bind(&d.model_version)
            .bind(i64::try_from(d.windows).unwrap_or(i64::MAX)).bind(d.from_ms).bind(d.to_ms)
            .bind(features_json).bind(max_psi).bind(threshold).bind(notice).bind(now)
            .fetch_one(c).await)?;
        if notice {
            tracing::warn!(gateway, asset = %d.asset, model = %d.model_id, max_psi, threshold, "model drift notice");
            crate::webhooks::enqueue(
                &mut tx,
                "model.drift",
                serde_json::json!({
                    "drift_id": id, "gateway_id": gateway, "asset": d.asset,
                    "model_id": d.model_id, "model_version": d.model_version,
                    "max_psi": max_psi, "threshold": threshold, "features": features,
                    "windows": d.windows, "from_ms": d.from_ms, "to_ms": d.to_ms,
                }),
                now,
            )
            .await?;
        }
    }
    tx.commit().await?;
    let all = current_assignments(db).await?;
    Ok(ModelSyncResponse {
        assignments: effective(&all, gateway),
    })
}

/// What every gateway reports it runs, against its assignment.
pub async fn gateway_models(db: &Db) -> Result<Vec<GatewayModel>, AppError> {
    let rows: Vec<(String, String, String, String, Option<String>, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT gateway_id, model_id, version, onnx_sha256, last_error, reported_ms FROM gateway_models \
         ORDER BY gateway_id, model_id")
        .fetch_all(p).await)?;
    let all = current_assignments(db).await?;
    Ok(rows
        .into_iter()
        .map(|(g, m, v, sha, err, at)| {
            let assigned = effective(&all, &g).into_iter().find(|a| a.model_id == m);
            GatewayModel {
                in_sync: assigned
                    .as_ref()
                    .is_none_or(|a| a.version == v && a.onnx_sha256 == sha),
                assigned_version: assigned.map(|a| a.version),
                gateway_id: g,
                model_id: m,
                running_version: v,
                running_sha256: sha,
                last_error: err,
                reported_ms: at,
            }
        })
        .collect())
}

type DriftRow = (
    i64,
    String,
    String,
    String,
    String,
    i64,
    i64,
    i64,
    String,
    f64,
    f64,
    bool,
    i64,
);

/// Drift reports, newest first; `notice_only` keeps those past their threshold.
pub async fn drift(
    db: &Db,
    notice_only: bool,
    limit: i64,
    offset: i64,
) -> Result<Vec<Drift>, AppError> {
    let rows: Vec<DriftRow> = on_db!(db, p => sqlx::query_as(
        "SELECT id, gateway_id, asset, model_id, model_version, windows, from_ms, to_ms, features, max_psi, threshold, notice, received_ms \
         FROM model_drift WHERE (notice OR NOT $1) ORDER BY id DESC LIMIT $2 OFFSET $3")
        .bind(notice_only).bind(limit).bind(offset).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|r| Drift {
            id: r.0,
            gateway_id: r.1,
            asset: r.2,
            model_id: r.3,
            model_version: r.4,
            windows: r.5,
            from_ms: r.6,
            to_ms: r.7,
            features: serde_json::from_str(&r.8).unwrap_or_default(),
            max_psi: r.9,
            threshold: r.10,
            notice: r.11,
            received_ms: r.12,
        })
        .collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn a(id: i64, kind: &str, target: &str, model: &str, version: &str) -> Assignment {
        Assignment {
            id,
            target_kind: kind.into(),
            target: target.into(),
            model_id: model.into(),
            version: version.into(),
            onnx_sha256: format!("sha-{version}"),
            action: "assign".into(),
            assigned_by: "user:1".into(),
            assigned_ms: 0,
        }
    }

    #[test]
    fn a_gateway_assignment_beats_its_asset_class() {
        let all = [
            a(1, "asset_class", "wind_turbine", "wt", "1.0"),
            a(2, "gateway", "gw-a", "wt", "1.1"),
            a(3, "asset_class", "pv_inverter", "pv", "2.0"),
            a(4, "gateway", "gw-b", "wt", "0.9"),
        ];
        let got: Vec<(String, String)> = effective(&all, "gw-a")
            .into_iter()
            .map(|x| (x.model_id, x.version))
            .collect();
        assert_eq!(
            got,
            [("pv".into(), "2.0".into()), ("wt".into(), "1.1".into())]
        );
        let got: Vec<String> = effective(&all, "gw-c")
            .into_iter()
            .map(|x| x.version)
            .collect();
        assert_eq!(got, ["2.0", "1.0"]);
    }
}

//! `/api/v1/models…` (users: `read`, and `manage_models` to change) and
//! `/api/v1/gateway/models…` (gateways, with their credential).

use super::{
    Assignment, Drift, GatewayModel, ModelInfo, NewAssignment, NewModel, Rollback, Target,
};
use crate::auth::{Permission, Principal};
use crate::gateways;
use crate::http::json::JsonBody;
use crate::http::params::Params;
use crate::http::problem::{AppError, Problem};
use crate::http::{AppState, Page, page};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use dcmms_shared::api::{
    AssignedModel, DriftReport, FeatureDrift, ModelSyncRequest, ModelSyncResponse, RunningModel,
};
use std::collections::HashMap;
use utoipa::OpenApi;

/// The model routes, merged into [`crate::http::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/models", get(list).post(upload))
        .route("/api/v1/models/assignments", put(assign).get(assignments))
        .route("/api/v1/models/assignments/rollback", post(rollback))
        .route("/api/v1/models/gateways", get(gateway_models))
        .route("/api/v1/models/drift", get(drift))
        .route("/api/v1/models/{model_id}/{version}", get(get_one))
        .route(dcmms_shared::api::MODEL_SYNC_PATH, post(sync))
        .route(
            "/api/v1/gateway/models/{model_id}/{version}/{file}",
            get(gateway_file),
        )
}

#[derive(OpenApi)]
#[openapi(
    paths(
        upload,
        list,
        get_one,
        assign,
        assignments,
        rollback,
        gateway_models,
        drift,
        sync,
        gateway_file
    ),
    components(schemas(
        NewModel,
        ModelInfo,
        Target,
        NewAssignment,
        Rollback,
        Assignment,
        GatewayModel,
        Drift,
        ModelSyncRequest,
        ModelSyncResponse,
        RunningModel,
        DriftReport,
        FeatureDrift,
        AssignedModel
    ))
)]
#[derive(Debug)]
pub struct ModelsApi;

/// Merges [`ModelsApi`] into the main document (an `ApiDoc` modifier).
#[derive(Debug)]
pub struct ModelsDoc;

impl utoipa::Modify for ModelsDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(ModelsApi::openapi());
    }
}

/// Register a model: its metadata file and its ONNX file (base64).
#[utoipa::path(post, path = "/api/v1/models", tag = "models", request_body = NewModel,
    responses((status = 201, body = ModelInfo), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn upload(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(n): JsonBody<NewModel>,
) -> Result<(StatusCode, Json<ModelInfo>), AppError> {
    who.require(Permission::ManageModels)?;
    let m = super::upload(&st.db, &st.caches, &who.actor(), &n).await?;
    Ok((StatusCode::CREATED, Json(m)))
}

/// Registered models (without their files).
#[utoipa::path(get, path = "/api/v1/models", tag = "models",
    params(("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<ModelInfo>)))]
pub async fn list(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<ModelInfo>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["limit", "offset"])?;
    let (limit, offset) = q.page()?;
    Ok(Json(page(
        super::list(&st.db, limit + 1, offset).await?,
        limit,
        offset,
    )))
}

/// One model version.
#[utoipa::path(get, path = "/api/v1/models/{model_id}/{version}", tag = "models",
    responses((status = 200, body = ModelInfo), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(st): State<AppState>,
    who: Principal,
    Path((model_id, version)): Path<(String, String)>,
) -> Result<Json<ModelInfo>, AppError> {
    who.require(Permission::Read)?;
    super::get(&st.db, &model_id, &version)
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound {
            detail: format!("no model {model_id}@{version}"),
        })
}

/// Assign a model version to a gateway or to every gateway's models of an
/// asset class.
#[utoipa::path(put, path = "/api/v1/models/assignments", tag = "models", request_body = NewAssignment,
    responses((status = 200, body = Assignment), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn assign(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(n): JsonBody<NewAssignment>,
) -> Result<Json<Assignment>, AppError> {
    who.require(Permission::ManageModels)?;
    Ok(Json(
        super::assign(&st.db, &st.caches, &who.actor(), &n).await?,
    ))
}

/// The assignments in force.
#[utoipa::path(get, path = "/api/v1/models/assignments", tag = "models",
    responses((status = 200, body = Vec<Assignment>)))]
pub async fn assignments(
    State(st): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<Assignment>>, AppError> {
    who.require(Permission::Read)?;
    Ok(Json(super::current_assignments(&st.db).await?))
}

/// Go back to the version assigned before the current one.
#[utoipa::path(post, path = "/api/v1/models/assignments/rollback", tag = "models", request_body = Rollback,
    responses((status = 200, body = Assignment), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn rollback(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(r): JsonBody<Rollback>,
) -> Result<Json<Assignment>, AppError> {
    who.require(Permission::ManageModels)?;
    Ok(Json(
        super::rollback(&st.db, &st.caches, &who.actor(), &r).await?,
    ))
}

/// What each gateway runs, against what it is assigned.
#[utoipa::path(get, path = "/api/v1/models/gateways", tag = "models",
    responses((status = 200, body = Vec<GatewayModel>)))]
pub async fn gateway_models(
    State(st): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<GatewayModel>>, AppError> {
    who.require(Permission::Read)?;
    Ok(Json(super::gateway_models(&st.db).await?))
}

/// Drift reports, newest first (`notice=true`: only those past their
/// threshold, the drift notices).
#[utoipa::path(get, path = "/api/v1/models/drift", tag = "models",
    params(("notice" = Option<bool>, Query, description = "true: only drift notices"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Drift>)))]
pub async fn drift(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Drift>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["notice", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let notice = q.parse::<bool>("notice", "true or false")?.unwrap_or(false);
    Ok(Json(page(
        super::drift(&st.db, notice, limit + 1, offset).await?,
        limit,
        offset,
    )))
}

/// A gateway reports the models it runs and its drift reports, and gets
/// its assignments (gateway credential).
#[utoipa::path(post, path = "/api/v1/gateway/models/sync", tag = "gateway", request_body = ModelSyncRequest,
    responses((status = 200, body = ModelSyncResponse), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn sync(
    State(st): State<AppState>,
    headers: HeaderMap,
    JsonBody(req): JsonBody<ModelSyncRequest>,
) -> Result<Json<ModelSyncResponse>, AppError> {
    let gateway = gateways::from_headers(&st.db, &headers).await?;
    Ok(Json(super::sync(&st.db, &st.caches, &gateway, &req).await?))
}

/// A model's `metadata` (JSON) or `onnx` (bytes), for gateways.
#[utoipa::path(get, path = "/api/v1/gateway/models/{model_id}/{version}/{file}", tag = "gateway",
    params(("file" = String, Path, description = "`metadata` or `onnx`")),
    responses((status = 200, description = "The file"), (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn gateway_file(
    State(st): State<AppState>,
    headers: HeaderMap,
    Path((model_id, version, file)): Path<(String, String, String)>,
) -> Result<Response, AppError> {
    gateways::from_headers(&st.db, &headers).await?;
    let missing = || AppError::NotFound {
        detail: format!("no model {model_id}@{version}"),
    };
    match file.as_str() {
        "metadata" => Ok(Json(
            super::metadata(&st.db, &model_id, &version)
                .await?
                .ok_or_else(missing)?,
        )
        .into_response()),
        "onnx" => Ok((
            [(header::CONTENT_TYPE, "application/octet-stream")],
            super::onnx(&st.db, &model_id, &version)
                .await?
                .ok_or_else(missing)?,
        )
            .into_response()),
        other => Err(AppError::NotFound {
            detail: format!("{other:?}: a model has `metadata` and `onnx`"),
        }),
    }
}

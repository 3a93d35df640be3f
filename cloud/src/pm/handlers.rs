//! `/api/v1/pm/…`: plans, their occurrences, generation now, compliance.

use super::compliance::Compliance;
use super::generate::GenerateReport;
use super::{Occurrence, Plan, PlanFields, PlanKind, Schedule, Unit};
use crate::auth::{Permission, Principal};
use crate::gateways::now_ms;
use crate::http::json::JsonBody;
use crate::http::params::{Bind, Filters, Params};
use crate::http::problem::{AppError, Problem};
use crate::http::{AppState, Page, page, with_etag};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::HashMap;
use utoipa::OpenApi;

/// The PM routes, merged into [`crate::http::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/pm/plans", get(list_plans).post(create_plan))
        .route("/api/v1/pm/plans/{id}", get(get_plan).patch(update_plan))
        .route("/api/v1/pm/plans/{id}/occurrences", get(occurrences))
        .route("/api/v1/pm/generate", post(generate))
        .route("/api/v1/pm/compliance", get(compliance))
}

/// The PM part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        create_plan,
        list_plans,
        get_plan,
        update_plan,
        occurrences,
        generate,
        compliance
    ),
    components(schemas(
        Plan,
        PlanFields,
        PlanKind,
        Schedule,
        Unit,
        Occurrence,
        GenerateReport,
        Compliance
    ))
)]
#[derive(Debug)]
pub struct PmApi;

/// Merges [`PmApi`] into the main document (an `ApiDoc` modifier).
#[derive(Debug)]
pub struct PmDoc;

impl utoipa::Modify for PmDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(PmApi::openapi());
    }
}

/// Create a PM plan.
#[utoipa::path(post, path = "/api/v1/pm/plans", tag = "preventive maintenance", request_body = PlanFields,
    responses((status = 201, body = Plan), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create_plan(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(f): JsonBody<PlanFields>,
) -> Result<(StatusCode, Json<Plan>), AppError> {
    who.require(Permission::ManagePreventivePlans)?;
    let p = super::create_plan(&st.db, &st.caches, &who, &f).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// PM plans, filtered by `site_id`, `asset_id`.
#[utoipa::path(get, path = "/api/v1/pm/plans", tag = "preventive maintenance",
    params(("site_id" = Option<i64>, Query, description = "Only this site's plans"),
           ("asset_id" = Option<i64>, Query, description = "Only this asset's plans"),
           ("sort" = Option<String>, Query, description = "id, title or created_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Plan>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_plans(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Plan>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["site_id", "asset_id", "sort", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["id", "title", "created_ms"], ("id", false))?;
    let mut f = Filters::default();
    f.eq("site_id", q.parse("site_id", "an integer")?.map(Bind::Int));
    f.eq(
        "asset_id",
        q.parse("asset_id", "an integer")?.map(Bind::Int),
    );
    let items = super::list_plans(&st.db, &f, sort, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One PM plan; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/pm/plans/{id}", tag = "preventive maintenance",
    responses((status = 200, body = Plan), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_plan(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let p = super::get_plan(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("PM plan", id))?;
    Ok(with_etag(p.version, Json(p)))
}

/// Change a PM plan. Send the `version` you read; a stale one is 409.
#[utoipa::path(patch, path = "/api/v1/pm/plans/{id}", tag = "preventive maintenance", request_body = PlanFields,
    responses((status = 200, body = Plan), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_plan(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(f): JsonBody<PlanFields>,
) -> Result<Response, AppError> {
    who.require(Permission::ManagePreventivePlans)?;
    let p = super::update_plan(&st.db, &st.caches, &who, id, &f).await?;
    Ok(with_etag(p.version, Json(p)))
}

/// The occurrences of a plan (generated and missed), by due time.
#[utoipa::path(get, path = "/api/v1/pm/plans/{id}/occurrences", tag = "preventive maintenance",
    params(("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Occurrence>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn occurrences(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Occurrence>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["limit", "offset"])?;
    let (limit, offset) = q.page()?;
    if super::get_plan(&st.db, id).await?.is_none() {
        return Err(AppError::not_found("PM plan", id));
    }
    let items = super::occurrences(&st.db, id, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// Run PM generation now (it also runs every 10 minutes).
#[utoipa::path(post, path = "/api/v1/pm/generate", tag = "preventive maintenance",
    responses((status = 200, body = GenerateReport), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn generate(
    State(st): State<AppState>,
    who: Principal,
) -> Result<Json<GenerateReport>, AppError> {
    who.require(Permission::ManagePreventivePlans)?;
    Ok(Json(
        super::generate::generate(&st.db, &st.caches, now_ms()).await?,
    ))
}

/// PM compliance (SMRP 5.4.1) over `[from, to)` (Unix ms).
#[utoipa::path(get, path = "/api/v1/pm/compliance", tag = "preventive maintenance",
    params(("site_id" = Option<i64>, Query, description = "Only this site's plans"),
           ("from" = i64, Query, description = "Start of the period, Unix ms (inclusive)"),
           ("to" = i64, Query, description = "End of the period, Unix ms (exclusive)")),
    responses((status = 200, body = Compliance), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn compliance(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Compliance>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["site_id", "from", "to"])?;
    let from: i64 = q
        .parse("from", "a Unix ms time")?
        .ok_or_else(|| AppError::bad_field("from", "missing"))?;
    let to: i64 = q
        .parse("to", "a Unix ms time")?
        .ok_or_else(|| AppError::bad_field("to", "missing"))?;
    if to <= from {
        return Err(AppError::bad_field("to", "must be after from"));
    }
    let site = q.parse("site_id", "an integer")?;
    Ok(Json(
        super::compliance::compute(&st.db, site, from, to).await?,
    ))
}

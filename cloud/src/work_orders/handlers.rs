//! `/api/v1/work-orders…`.

use super::lifecycle::Action;
use super::store::{self, HistoryEntry, Kind, NewWorkOrder, WorkOrder, WorkOrderEdit};
use crate::auth::{Permission, Principal};
use crate::http::json::JsonBody;
use crate::http::params::{Bind, Filters, Params};
use crate::http::problem::{AppError, Problem};
use crate::http::{AppState, Page, page, with_etag};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::ToSchema;

const STATUSES: &[&str] = &[
    "REQUESTED",
    "APPROVED",
    "SCHEDULED",
    "WAITING",
    "IN_PROGRESS",
    "ON_HOLD",
    "COMPLETED",
    "CLOSED",
    "CANCELLED",
];

/// Raise a work order (status REQUESTED).
#[utoipa::path(post, path = "/api/v1/work-orders", tag = "work orders", request_body = NewWorkOrder,
    responses((status = 201, body = WorkOrder), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(n): JsonBody<NewWorkOrder>,
) -> Result<(StatusCode, Json<WorkOrder>), AppError> {
    who.require(Permission::RequestWorkOrder)?;
    let wo = store::create(&st.db, &st.caches, &who, &n).await?;
    Ok((StatusCode::CREATED, Json(wo)))
}

/// Work orders, filtered and sorted.
#[utoipa::path(get, path = "/api/v1/work-orders", tag = "work orders",
    params(("site_id" = Option<i64>, Query, description = "Only this site"),
           ("asset_id" = Option<i64>, Query, description = "Only this asset"),
           ("assignee_id" = Option<i64>, Query, description = "Only this assignee"),
           ("status" = Option<String>, Query, description = "Only this status, e.g. IN_PROGRESS"),
           ("kind" = Option<String>, Query, description = "corrective, preventive, predictive or inspection"),
           ("crew_id" = Option<i64>, Query, description = "Only this crew's"),
           ("parent_id" = Option<i64>, Query, description = "Only follow-ups of this work order"),
           ("sla_breached" = Option<bool>, Query, description = "true: only SLA-breached; false: only not breached"),
           ("sort" = Option<String>, Query, description = "id, priority, due_ms, created_ms or updated_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<WorkOrder>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<WorkOrder>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(
        raw,
        &[
            "site_id",
            "asset_id",
            "assignee_id",
            "status",
            "kind",
            "crew_id",
            "parent_id",
            "sla_breached",
            "sort",
            "limit",
            "offset",
        ],
    )?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(
        &["id", "priority", "due_ms", "created_ms", "updated_ms"],
        ("id", true),
    )?;
    let mut f = Filters::default();
    f.eq("site_id", q.parse("site_id", "an integer")?.map(Bind::Int));
    f.eq(
        "asset_id",
        q.parse("asset_id", "an integer")?.map(Bind::Int),
    );
    f.eq(
        "assignee_id",
        q.parse("assignee_id", "an integer")?.map(Bind::Int),
    );
    if let Some(s) = q.str("status") {
        if !STATUSES.contains(&s) {
            return Err(AppError::bad_field(
                "status",
                format!("{s:?}: one of {}", STATUSES.join(", ")),
            ));
        }
        f.eq("status", Some(Bind::Text(s.to_string())));
    }
    if let Some(k) = q.str("kind") {
        if Kind::parse(k).is_none() {
            return Err(AppError::bad_field(
                "kind",
                format!("{k:?}: corrective, preventive, predictive or inspection"),
            ));
        }
        f.eq("kind", Some(Bind::Text(k.to_string())));
    }
    f.eq("crew_id", q.parse("crew_id", "an integer")?.map(Bind::Int));
    f.eq(
        "parent_id",
        q.parse("parent_id", "an integer")?.map(Bind::Int),
    );
    if let Some(b) = q.parse::<bool>("sla_breached", "true or false")? {
        f.binds.push(Bind::Int(crate::gateways::now_ms()));
        f.clauses.push(super::sla::filter_sql(b, f.binds.len()));
    }
    let items = store::list(&st.db, &f, sort, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One work order; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/work-orders/{id}", tag = "work orders",
    responses((status = 200, body = WorkOrder), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let wo = store::get(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", id))?;
    Ok(with_etag(wo.version, Json(wo)))
}

/// Edit title, description, priority, assignee or due date. Send the `version` you read.
#[utoipa::path(patch, path = "/api/v1/work-orders/{id}", tag = "work orders", request_body = WorkOrderEdit,
    responses((status = 200, body = WorkOrder), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn edit(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(e): JsonBody<WorkOrderEdit>,
) -> Result<Response, AppError> {
    who.require(Permission::EditWorkOrder)?;
    let wo = store::edit(&st.db, &st.caches, &who, id, &e).await?;
    Ok(with_etag(wo.version, Json(wo)))
}

/// A lifecycle action: `{"version": 3, "action": "hold", "reason": "weather", "comment": "…"}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TransitionRequest {
    pub version: i64,
    #[serde(flatten)]
    pub action: Action,
    #[serde(default)]
    pub comment: String,
}

/// Move a work order through its lifecycle (docs/specs/work-order-lifecycle.md).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/transitions", tag = "work orders", request_body = TransitionRequest,
    responses((status = 200, body = WorkOrder), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn transition(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(t): JsonBody<TransitionRequest>,
) -> Result<Response, AppError> {
    // The lifecycle checks the permission of this particular action.
    let wo = store::apply(
        &st.db, &st.caches, &who, id, t.version, t.action, &t.comment,
    )
    .await?;
    Ok(with_etag(wo.version, Json(wo)))
}

/// The status history of a work order, oldest first.
#[utoipa::path(get, path = "/api/v1/work-orders/{id}/history", tag = "work orders",
    responses((status = 200, body = Vec<HistoryEntry>)))]
pub async fn history(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Vec<HistoryEntry>>, AppError> {
    who.require(Permission::Read)?;
    Ok(Json(store::history_of(&st.db, id).await?))
}

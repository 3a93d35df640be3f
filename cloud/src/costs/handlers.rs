//! Time entries, external costs and the cost rollup of a work order.

use super::{
    CostRollup, EXTERNAL_COLS, ExternalCost, NewExternalCost, NewTimeEntry, TIME_COLS, TimeEntry,
};
use crate::auth::{Permission, Principal};
use crate::http::json::JsonBody;
use crate::http::params::{Bind, Filters, Params};
use crate::http::problem::{AppError, Problem};
use crate::http::{AppState, Page, page};
use crate::inventory::list_of;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use std::collections::HashMap;

/// Log time on a work order (a technician: their own time, on work orders assigned to them).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/time-entries", tag = "costs", request_body = NewTimeEntry,
    responses((status = 201, body = TimeEntry), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, description = "work-order-final", content_type = "application/problem+json")))]
pub async fn add_time_entry(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(n): JsonBody<NewTimeEntry>,
) -> Result<(StatusCode, Json<TimeEntry>), AppError> {
    who.require(Permission::ExecuteWorkOrder)?;
    let e = super::add_time_entry(&st.db, &st.caches, &who, id, &n).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// Time entries, filtered by `work_order_id`, `user_id`.
#[utoipa::path(get, path = "/api/v1/time-entries", tag = "costs",
    params(("work_order_id" = Option<i64>, Query, description = "Only this work order"),
           ("user_id" = Option<i64>, Query, description = "Only this technician"),
           ("sort" = Option<String>, Query, description = "id, created_ms or minutes; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<TimeEntry>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_time_entries(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<TimeEntry>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(
        raw,
        &["work_order_id", "user_id", "sort", "limit", "offset"],
    )?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["id", "created_ms", "minutes"], ("id", false))?;
    let mut f = Filters::default();
    for name in ["work_order_id", "user_id"] {
        f.eq(name, q.parse(name, "an integer")?.map(Bind::Int));
    }
    let items = list_of(&st.db, TIME_COLS, &f, sort, "id", limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// Remove a time entry (a technician: only their own); refused once the order is CLOSED.
#[utoipa::path(delete, path = "/api/v1/time-entries/{id}", tag = "costs",
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_time_entry(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    who.require(Permission::ExecuteWorkOrder)?;
    super::delete_time_entry(&st.db, &st.caches, &who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a vendor's charge to a work order.
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/external-costs", tag = "costs", request_body = NewExternalCost,
    responses((status = 201, body = ExternalCost), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, description = "work-order-final", content_type = "application/problem+json")))]
pub async fn add_external(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(n): JsonBody<NewExternalCost>,
) -> Result<(StatusCode, Json<ExternalCost>), AppError> {
    who.require(Permission::EditWorkOrder)?;
    let x = super::add_external(&st.db, &st.caches, &who, id, &n).await?;
    Ok((StatusCode::CREATED, Json(x)))
}

/// External costs, filtered by `work_order_id`, `vendor`.
#[utoipa::path(get, path = "/api/v1/external-costs", tag = "costs",
    params(("work_order_id" = Option<i64>, Query, description = "Only this work order"),
           ("vendor" = Option<String>, Query, description = "Only this vendor"),
           ("sort" = Option<String>, Query, description = "id, created_ms or amount_paise; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<ExternalCost>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_external(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<ExternalCost>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["work_order_id", "vendor", "sort", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["id", "created_ms", "amount_paise"], ("id", false))?;
    let mut f = Filters::default();
    f.eq(
        "work_order_id",
        q.parse("work_order_id", "an integer")?.map(Bind::Int),
    );
    f.eq("vendor", q.str("vendor").map(|v| Bind::Text(v.into())));
    let items = list_of(&st.db, EXTERNAL_COLS, &f, sort, "id", limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// Remove an external cost; refused once the order is CLOSED.
#[utoipa::path(delete, path = "/api/v1/external-costs/{id}", tag = "costs",
    responses((status = 204), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete_external(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, AppError> {
    who.require(Permission::EditWorkOrder)?;
    super::delete_external(&st.db, &st.caches, &who, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What a work order cost: labour + consumed parts + external, in paise (INR).
#[utoipa::path(get, path = "/api/v1/work-orders/{id}/costs", tag = "costs",
    responses((status = 200, body = CostRollup), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn rollup(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<CostRollup>, AppError> {
    who.require(Permission::Read)?;
    Ok(Json(super::rollup(&st.db, id).await?))
}

//! `/api/v1/parts…`, `/api/v1/stores…`, `/api/v1/stock…`, reservations
//! and notifications.

use super::{
    Adjustment, NOTIFICATION_COLS, NewPart, NewReservation, NewStore, Notification, PART_COLS,
    Part, PartEdit, RESERVATION_COLS, Receipt, Reservation, STOCK_COLS, STORE_COLS, Stock,
    StockSettings, Store, list_of,
};
use crate::auth::{Permission, Principal};
use crate::http::json::JsonBody;
use crate::http::params::{Bind, Filters, Params};
use crate::http::problem::{AppError, Problem};
use crate::http::{AppState, Page, page, with_etag};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use std::collections::HashMap;

type Raw = Query<HashMap<String, String>>;

fn int_filter(q: &Params, f: &mut Filters, name: &str) -> Result<(), AppError> {
    f.eq(name, q.parse(name, "an integer")?.map(Bind::Int));
    Ok(())
}

/// Add a part to the catalogue.
#[utoipa::path(post, path = "/api/v1/parts", tag = "inventory", request_body = NewPart,
    responses((status = 201, body = Part), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_part(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(n): JsonBody<NewPart>,
) -> Result<(StatusCode, Json<Part>), AppError> {
    who.require(Permission::ManageInventory)?;
    let p = super::create_part(&st.db, &st.caches, &who.actor(), &n).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// The parts catalogue.
#[utoipa::path(get, path = "/api/v1/parts", tag = "inventory",
    params(("part_number" = Option<String>, Query, description = "Only this part number"),
           ("unit" = Option<String>, Query, description = "Only parts counted in this unit"),
           ("sort" = Option<String>, Query, description = "part_number, name, unit_cost_paise or created_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Part>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_parts(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Raw,
) -> Result<Json<Page<Part>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["part_number", "unit", "sort", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(
        &["part_number", "name", "unit_cost_paise", "created_ms"],
        ("part_number", false),
    )?;
    let mut f = Filters::default();
    f.eq(
        "part_number",
        q.str("part_number").map(|s| Bind::Text(s.into())),
    );
    f.eq("unit", q.str("unit").map(|s| Bind::Text(s.into())));
    let items = list_of(&st.db, PART_COLS, &f, sort, "id", limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One part; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/parts/{id}", tag = "inventory",
    responses((status = 200, body = Part), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_part(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let p = super::get_part(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("part", id))?;
    Ok(with_etag(p.version, Json(p)))
}

/// Change a part's name, unit or unit cost. Send the `version` you read.
#[utoipa::path(patch, path = "/api/v1/parts/{id}", tag = "inventory", request_body = PartEdit,
    responses((status = 200, body = Part), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_part(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(e): JsonBody<PartEdit>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageInventory)?;
    let p = super::update_part(&st.db, &st.caches, &who.actor(), id, &e).await?;
    Ok(with_etag(p.version, Json(p)))
}

/// Create a store at a site.
#[utoipa::path(post, path = "/api/v1/stores", tag = "inventory", request_body = NewStore,
    responses((status = 201, body = Store), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create_store(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(n): JsonBody<NewStore>,
) -> Result<(StatusCode, Json<Store>), AppError> {
    who.require(Permission::ManageInventory)?;
    let s = super::create_store(&st.db, &st.caches, &who.actor(), &n).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Stores, filtered by `site_id`.
#[utoipa::path(get, path = "/api/v1/stores", tag = "inventory",
    params(("site_id" = Option<i64>, Query, description = "Only this site's stores"),
           ("sort" = Option<String>, Query, description = "name or created_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Store>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_stores(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Raw,
) -> Result<Json<Page<Store>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["site_id", "sort", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["name", "created_ms"], ("name", false))?;
    let mut f = Filters::default();
    int_filter(&q, &mut f, "site_id")?;
    let items = list_of(&st.db, STORE_COLS, &f, sort, "id", limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One store.
#[utoipa::path(get, path = "/api/v1/stores/{id}", tag = "inventory",
    responses((status = 200, body = Store), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_store(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Store>, AppError> {
    who.require(Permission::Read)?;
    Ok(Json(
        super::get_store(&st.db, id)
            .await?
            .ok_or_else(|| AppError::not_found("store", id))?,
    ))
}

/// Receive goods into a store (audited).
#[utoipa::path(post, path = "/api/v1/stores/{id}/receipts", tag = "inventory", request_body = Receipt,
    responses((status = 200, body = Stock), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn receive(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(r): JsonBody<Receipt>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageInventory)?;
    let s = super::receive(&st.db, &st.caches, &who.actor(), id, &r).await?;
    Ok(with_etag(s.version, Json(s)))
}

/// Correct stock after a count (audited); never below zero or below what is reserved.
#[utoipa::path(post, path = "/api/v1/stores/{id}/adjustments", tag = "inventory", request_body = Adjustment,
    responses((status = 200, body = Stock), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn adjust(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(a): JsonBody<Adjustment>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageInventory)?;
    let s = super::adjust(&st.db, &st.caches, &who.actor(), id, &a).await?;
    Ok(with_etag(s.version, Json(s)))
}

/// Stock rows, filtered by `store_id`, `part_id`, `below_reorder=true`.
#[utoipa::path(get, path = "/api/v1/stock", tag = "inventory",
    params(("store_id" = Option<i64>, Query, description = "Only this store"),
           ("part_id" = Option<i64>, Query, description = "Only this part"),
           ("below_reorder" = Option<bool>, Query, description = "true: only rows at or below their reorder point"),
           ("sort" = Option<String>, Query, description = "on_hand, reserved, updated_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Stock>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_stock(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Raw,
) -> Result<Json<Page<Stock>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(
        raw,
        &[
            "store_id",
            "part_id",
            "below_reorder",
            "sort",
            "limit",
            "offset",
        ],
    )?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["on_hand", "reserved", "updated_ms"], ("updated_ms", true))?;
    let mut f = Filters::default();
    int_filter(&q, &mut f, "store_id")?;
    int_filter(&q, &mut f, "part_id")?;
    if q.parse::<bool>("below_reorder", "true or false")? == Some(true) {
        f.clauses.push("on_hand <= reorder_point".into());
    }
    let items = list_of(
        &st.db,
        STOCK_COLS,
        &f,
        sort,
        "store_id, part_id",
        limit + 1,
        offset,
    )
    .await?;
    Ok(Json(page(items, limit, offset)))
}

/// One stock row; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/stores/{id}/stock/{part_id}", tag = "inventory",
    responses((status = 200, body = Stock), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_stock(
    State(st): State<AppState>,
    who: Principal,
    Path((store_id, part_id)): Path<(i64, i64)>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let s = super::get_stock(&st.db, store_id, part_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            detail: format!("store {store_id} has no stock of part {part_id}"),
        })?;
    Ok(with_etag(s.version, Json(s)))
}

/// Set a stock row's reorder point and quantity. Send the `version` you read.
#[utoipa::path(patch, path = "/api/v1/stores/{id}/stock/{part_id}", tag = "inventory", request_body = StockSettings,
    responses((status = 200, body = Stock), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_stock(
    State(st): State<AppState>,
    who: Principal,
    Path((store_id, part_id)): Path<(i64, i64)>,
    JsonBody(s): JsonBody<StockSettings>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageInventory)?;
    let s = super::update_settings(&st.db, &st.caches, &who.actor(), store_id, part_id, &s).await?;
    Ok(with_etag(s.version, Json(s)))
}

/// Reserve parts for a work order (a technician: only on work orders assigned to them).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/reservations", tag = "inventory", request_body = NewReservation,
    responses((status = 201, body = Reservation), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, description = "insufficient-stock (field quantity) or work-order-final", content_type = "application/problem+json")))]
pub async fn reserve(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(r): JsonBody<NewReservation>,
) -> Result<(StatusCode, Json<Reservation>), AppError> {
    who.require(Permission::ExecuteWorkOrder)?;
    let r = super::reserve(&st.db, &st.caches, &who, id, &r).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Reservations, filtered by `work_order_id`, `part_id`, `store_id`, `state`.
#[utoipa::path(get, path = "/api/v1/reservations", tag = "inventory",
    params(("work_order_id" = Option<i64>, Query, description = "Only this work order"),
           ("part_id" = Option<i64>, Query, description = "Only this part"),
           ("store_id" = Option<i64>, Query, description = "Only this store"),
           ("state" = Option<String>, Query, description = "reserved, consumed or released"),
           ("sort" = Option<String>, Query, description = "id, created_ms or updated_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Reservation>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_reservations(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Raw,
) -> Result<Json<Page<Reservation>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(
        raw,
        &[
            "work_order_id",
            "part_id",
            "store_id",
            "state",
            "sort",
            "limit",
            "offset",
        ],
    )?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["id", "created_ms", "updated_ms"], ("id", false))?;
    let mut f = Filters::default();
    int_filter(&q, &mut f, "work_order_id")?;
    int_filter(&q, &mut f, "part_id")?;
    int_filter(&q, &mut f, "store_id")?;
    if let Some(s) = q.str("state") {
        if !["reserved", "consumed", "released"].contains(&s) {
            return Err(AppError::bad_field(
                "state",
                format!("{s:?}: one of reserved, consumed, released"),
            ));
        }
        f.eq("state", Some(Bind::Text(s.into())));
    }
    let items = list_of(&st.db, RESERVATION_COLS, &f, sort, "id", limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One reservation.
#[utoipa::path(get, path = "/api/v1/reservations/{id}", tag = "inventory",
    responses((status = 200, body = Reservation), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_reservation(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Reservation>, AppError> {
    who.require(Permission::Read)?;
    Ok(Json(
        super::get_reservation(&st.db, id)
            .await?
            .ok_or_else(|| AppError::not_found("reservation", id))?,
    ))
}

/// Release a reservation (its units become available again).
#[utoipa::path(post, path = "/api/v1/reservations/{id}/release", tag = "inventory",
    responses((status = 200, body = Reservation), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn release(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Reservation>, AppError> {
    who.require(Permission::ExecuteWorkOrder)?;
    Ok(Json(
        super::release_one(&st.db, &st.caches, &who, id).await?,
    ))
}

/// Notifications (reorder points reached), newest first by default.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "inventory",
    params(("kind" = Option<String>, Query, description = "reorder"),
           ("part_id" = Option<i64>, Query, description = "Only this part"),
           ("store_id" = Option<i64>, Query, description = "Only this store"),
           ("sort" = Option<String>, Query, description = "id or created_ms; prefix - for descending (default -id)"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Notification>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_notifications(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Raw,
) -> Result<Json<Page<Notification>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(
        raw,
        &["kind", "part_id", "store_id", "sort", "limit", "offset"],
    )?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["id", "created_ms"], ("id", true))?;
    let mut f = Filters::default();
    if let Some(k) = q.str("kind") {
        if k != "reorder" {
            return Err(AppError::bad_field(
                "kind",
                format!("{k:?}: one of reorder"),
            ));
        }
        f.eq("kind", Some(Bind::Text(k.into())));
    }
    int_filter(&q, &mut f, "part_id")?;
    int_filter(&q, &mut f, "store_id")?;
    let items = list_of(&st.db, NOTIFICATION_COLS, &f, sort, "id", limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

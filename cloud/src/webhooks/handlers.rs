//! `/api/v1/webhooks…`: subscriptions and their deliveries. Managing
//! webhooks needs `manage_users` (admins): a subscription sends work-order
//! and alarm data to an outside URL.

use super::{CreatedSubscription, Delivery, NewSubscription, Subscription, SubscriptionEdit};
use crate::auth::{Permission, Principal};
use crate::http::json::JsonBody;
use crate::http::params::Params;
use crate::http::problem::{AppError, Problem};
use crate::http::{AppState, Page, page, with_etag};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use std::collections::HashMap;
use utoipa::OpenApi;

/// The webhook routes, merged into [`crate::http::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/webhooks", get(list).post(create))
        .route("/api/v1/webhooks/{id}", get(get_one).patch(update))
        .route("/api/v1/webhooks/{id}/deliveries", get(deliveries))
        .route(
            "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            post(redeliver),
        )
}

#[derive(OpenApi)]
#[openapi(
    paths(create, list, get_one, update, deliveries, redeliver),
    components(schemas(
        Subscription,
        CreatedSubscription,
        NewSubscription,
        SubscriptionEdit,
        Delivery
    ))
)]
#[derive(Debug)]
pub struct WebhooksApi;

/// Merges [`WebhooksApi`] into the main document (an `ApiDoc` modifier).
#[derive(Debug)]
pub struct WebhooksDoc;

impl utoipa::Modify for WebhooksDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(WebhooksApi::openapi());
    }
}

/// Subscribe a URL to events; the answer carries the signing secret, once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", request_body = NewSubscription,
    responses((status = 201, body = CreatedSubscription), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(n): JsonBody<NewSubscription>,
) -> Result<(StatusCode, Json<CreatedSubscription>), AppError> {
    who.require(Permission::ManageUsers)?;
    let c = super::create(&st.db, &st.caches, &who, &n).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Webhook subscriptions (without secrets).
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    params(("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Subscription>), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Subscription>>, AppError> {
    who.require(Permission::ManageUsers)?;
    let q = Params::new(raw, &["limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let items = super::list(&st.db, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One subscription (without its secret).
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    responses((status = 200, body = Subscription), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_one(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageUsers)?;
    let s = super::get(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("webhook", id))?;
    Ok(with_etag(s.version, Json(s)))
}

/// Change the URL, the events, or pause (`active: false`). Send the `version` you read.
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", request_body = SubscriptionEdit,
    responses((status = 200, body = Subscription), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(e): JsonBody<SubscriptionEdit>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageUsers)?;
    let s = super::update(&st.db, &st.caches, &who, id, &e).await?;
    Ok(with_etag(s.version, Json(s)))
}

/// Deliveries of a subscription, newest first; `status=dead` lists the dead letters.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("status" = Option<String>, Query, description = "pending, delivered or dead"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Delivery>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn deliveries(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Delivery>>, AppError> {
    who.require(Permission::ManageUsers)?;
    let q = Params::new(raw, &["status", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let status = q.str("status");
    if let Some(s) = status
        && !["pending", "delivered", "dead"].contains(&s)
    {
        return Err(AppError::bad_field(
            "status",
            format!("{s:?}: pending, delivered or dead"),
        ));
    }
    if super::get(&st.db, id).await?.is_none() {
        return Err(AppError::not_found("webhook", id));
    }
    let items = super::deliveries(&st.db, id, status, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// Queue a dead letter again, with a fresh attempt budget.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    responses((status = 200, body = Delivery), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn redeliver(
    State(st): State<AppState>,
    who: Principal,
    Path((id, delivery_id)): Path<(i64, i64)>,
) -> Result<Json<Delivery>, AppError> {
    who.require(Permission::ManageUsers)?;
    Ok(Json(
        super::redeliver(&st.db, &st.caches, &who, id, delivery_id).await?,
    ))
}

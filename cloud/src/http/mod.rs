//! The HTTP surface: router, shared state, pagination, metrics, OpenAPI.

pub mod docs;
pub mod json;
pub mod metrics;
pub mod params;
pub mod problem;

use crate::alarms::handlers::AlarmsDoc;
use crate::db::{Caches, Db};
use crate::models::handlers::ModelsDoc;
use crate::pm::handlers::PmDoc;
use crate::webhooks::handlers::WebhooksDoc;
use crate::work_orders::detail::DetailDoc;
use crate::{
    assets, audit, auth, completeness, costs, gateways, ingest, inventory, telemetry, work_orders,
};
use axum::extract::{DefaultBodyLimit, MatchedPath, Query, State};
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use axum::{Json, Router};
use metrics::CloudMetrics;
use params::Params;
use problem::{AppError, Problem, problem_response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use tower_http::trace::TraceLayer;
use utoipa::{OpenApi, ToSchema};

/// State shared by all handlers; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub db: Db,
    /// The ingest caches of `db` (share them with [`crate::retention`]).
    pub caches: Arc<Caches>,
    pub metrics: Arc<CloudMetrics>,
    pub login_limiter: Arc<crate::auth::limiter::LoginLimiter>,
}

impl AppState {
    /// State over `db` with fresh caches.
    pub fn new(db: Db, metrics: Arc<CloudMetrics>) -> AppState {
        AppState {
            db,
            caches: Arc::default(),
            metrics,
            login_limiter: Arc::default(),
        }
    }
}

/// One page of a list.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `offset` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<i64>,
}

/// A JSON response with `ETag: "<version>"`, so clients can cache and send
/// the version back on update.
pub fn with_etag<T: IntoResponse>(version: i64, body: T) -> Response {
    let mut resp = body.into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&format!("\"{version}\"")) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

/// Builds a page from `limit + 1` fetched rows.
pub fn page<T>(mut items: Vec<T>, limit: i64, offset: i64) -> Page<T> {
    let more = items.len() as i64 > limit;
    items.truncate(limit as usize);
    Page {
        next_offset: more.then_some(offset + limit),
        items,
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "dCMMS cloud API", description = "Telemetry ingest, the telemetry read API, and the CMMS: users, sites, assets, work orders, parts and inventory, labour and costs, audit."),
    paths(
        ingest::handler::ingest,
        telemetry::handlers::list_devices,
        telemetry::handlers::list_points,
        telemetry::handlers::get_samples,
        list_gateways,
        completeness::get_completeness,
        healthz,
        auth::handlers::login,
        auth::handlers::logout,
        auth::handlers::me,
        auth::handlers::create_user,
        auth::handlers::list_users,
        auth::handlers::update_user,
        auth::handlers::create_token,
        assets::handlers::create_site,
        assets::handlers::list_sites,
        assets::handlers::get_site,
        assets::handlers::update_site,
        assets::handlers::create_asset,
        assets::handlers::list_assets,
        assets::handlers::get_asset,
        assets::handlers::update_asset,
        assets::handlers::link_point,
        assets::handlers::asset_points,
        assets::handlers::asset_meters,
        work_orders::handlers::create,
        work_orders::handlers::list,
        work_orders::handlers::get,
        work_orders::handlers::edit,
        work_orders::handlers::transition,
        work_orders::handlers::history,
        inventory::handlers::create_part,
        inventory::handlers::list_parts,
        inventory::handlers::get_part,
        inventory::handlers::update_part,
        inventory::handlers::create_store,
        inventory::handlers::list_stores,
        inventory::handlers::get_store,
        inventory::handlers::receive,
        inventory::handlers::adjust,
        inventory::handlers::list_stock,
        inventory::handlers::get_stock,
        inventory::handlers::update_stock,
        inventory::handlers::reserve,
        inventory::handlers::list_reservations,
        inventory::handlers::get_reservation,
        inventory::handlers::release,
        inventory::handlers::list_notifications,
        costs::handlers::add_time_entry,
        costs::handlers::list_time_entries,
        costs::handlers::delete_time_entry,
        costs::handlers::add_external,
        costs::handlers::list_external,
        costs::handlers::delete_external,
        costs::handlers::rollup,
        audit::handlers::list,
        audit::handlers::verify,
    ),
    components(schemas(Problem, ingest::IngestAck, ingest::IngestStatus, gateways::Gateway,
        telemetry::DeviceInfo, telemetry::PointInfo, telemetry::SampleOut, telemetry::Bucket,
        telemetry::Resolution, telemetry::SamplesPage, completeness::Completeness,
        completeness::SequenceReport, completeness::PointCompleteness,
        completeness::DroppedSpanOut, auth::users::User, auth::users::UserUpdate, auth::Role, auth::Permission,
        auth::handlers::LoginRequest, auth::handlers::LoginResponse, auth::handlers::Me,
        auth::handlers::NewUser, auth::handlers::NewToken, auth::handlers::TokenCreated,
        assets::Site, assets::SiteFields, assets::SiteKind, assets::Asset, assets::AssetFields,
        assets::AssetPoint, assets::handlers::PointLink, assets::meters::Meter,
        work_orders::store::WorkOrder, work_orders::store::NewWorkOrder, work_orders::store::WorkOrderEdit,
        work_orders::store::Kind, work_orders::store::HistoryEntry, work_orders::Reason, work_orders::Action,
        work_orders::handlers::TransitionRequest, audit::AuditEntry, audit::handlers::Verification,
        inventory::Part, inventory::NewPart, inventory::PartEdit, inventory::Store, inventory::NewStore,
        inventory::Stock, inventory::Receipt, inventory::Adjustment, inventory::StockSettings,
        inventory::Reservation, inventory::NewReservation, inventory::Notification,
        costs::TimeEntry, costs::NewTimeEntry, costs::ExternalCost, costs::NewExternalCost, costs::CostRollup)),
    modifiers(&SecurityAddon, &PmDoc, &DetailDoc, &WebhooksDoc, &AlarmsDoc, &ModelsDoc),
)]
#[derive(Debug)]
pub struct ApiDoc;

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "user_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "a session token from POST /api/v1/auth/login, or an API token",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "gateway_credential",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`<gateway_id>.<secret>` as printed when the gateway was created",
                    ))
                    .build(),
            ),
        );
    }
}

/// The whole application, for `serve` and for tests (`oneshot`).
pub fn app(state: AppState, max_body_bytes: usize) -> Router {
    Router::new()
        .route(dcmms_shared::api::INGEST_PATH, post(ingest::ingest))
        .route("/api/v1/gateways", get(list_gateways))
        .route(
            "/api/v1/gateways/{id}/completeness",
            get(completeness::get_completeness),
        )
        .route("/api/v1/devices", get(telemetry::list_devices))
        .route("/api/v1/points", get(telemetry::list_points))
        .route("/api/v1/points/{id}/samples", get(telemetry::get_samples))
        .route("/api/v1/auth/login", post(auth::handlers::login))
        .route("/api/v1/auth/logout", post(auth::handlers::logout))
        .route("/api/v1/auth/me", get(auth::handlers::me))
        .route("/api/v1/auth/tokens", post(auth::handlers::create_token))
        .route(
            "/api/v1/users",
            get(auth::handlers::list_users).post(auth::handlers::create_user),
        )
        .route("/api/v1/users/{id}", patch(auth::handlers::update_user))
        .route(
            "/api/v1/sites",
            get(assets::handlers::list_sites).post(assets::handlers::create_site),
        )
        .route(
            "/api/v1/sites/{id}",
            get(assets::handlers::get_site).patch(assets::handlers::update_site),
        )
        .route(
            "/api/v1/assets",
            get(assets::handlers::list_assets).post(assets::handlers::create_asset),
        )
        .route(
            "/api/v1/assets/{id}",
            get(assets::handlers::get_asset).patch(assets::handlers::update_asset),
        )
        .route(
            "/api/v1/assets/{id}/points",
            get(assets::handlers::asset_points).post(assets::handlers::link_point),
        )
        .route(
            "/api/v1/assets/{id}/meters",
            get(assets::handlers::asset_meters),
        )
        .route(
            "/api/v1/work-orders",
            get(work_orders::handlers::list).post(work_orders::handlers::create),
        )
        .route(
            "/api/v1/work-orders/{id}",
            get(work_orders::handlers::get).patch(work_orders::handlers::edit),
        )
        .route(
            "/api/v1/work-orders/{id}/transitions",
            post(work_orders::handlers::transition),
        )
        .route(
            "/api/v1/work-orders/{id}/history",
            get(work_orders::handlers::history),
        )
        .route(
            "/api/v1/parts",
            get(inventory::handlers::list_parts).post(inventory::handlers::create_part),
        )
        .route(
            "/api/v1/parts/{id}",
            get(inventory::handlers::get_part).patch(inventory::handlers::update_part),
        )
        .route(
            "/api/v1/stores",
            get(inventory::handlers::list_stores).post(inventory::handlers::create_store),
        )
        .route("/api/v1/stores/{id}", get(inventory::handlers::get_store))
        .route(
            "/api/v1/stores/{id}/receipts",
            post(inventory::handlers::receive),
        )
        .route(
            "/api/v1/stores/{id}/adjustments",
            post(inventory::handlers::adjust),
        )
        .route(
            "/api/v1/stores/{id}/stock/{part_id}",
            get(inventory::handlers::get_stock).patch(inventory::handlers::update_stock),
        )
        .route("/api/v1/stock", get(inventory::handlers::list_stock))
        .route(
            "/api/v1/work-orders/{id}/reservations",
            post(inventory::handlers::reserve),
        )
        .route(
            "/api/v1/reservations",
            get(inventory::handlers::list_reservations),
        )
        .route(
            "/api/v1/reservations/{id}",
            get(inventory::handlers::get_reservation),
        )
        .route(
            "/api/v1/reservations/{id}/release",
            post(inventory::handlers::release),
        )
        .route(
            "/api/v1/notifications",
            get(inventory::handlers::list_notifications),
        )
        .route(
            "/api/v1/work-orders/{id}/time-entries",
            post(costs::handlers::add_time_entry),
        )
        .route(
            "/api/v1/time-entries",
            get(costs::handlers::list_time_entries),
        )
        .route(
            "/api/v1/time-entries/{id}",
            delete(costs::handlers::delete_time_entry),
        )
        .route(
            "/api/v1/work-orders/{id}/external-costs",
            post(costs::handlers::add_external),
        )
        .route(
            "/api/v1/external-costs",
            get(costs::handlers::list_external),
        )
        .route(
            "/api/v1/external-costs/{id}",
            delete(costs::handlers::delete_external),
        )
        .route(
            "/api/v1/work-orders/{id}/costs",
            get(costs::handlers::rollup),
        )
        .merge(crate::pm::handlers::routes())
        .merge(crate::work_orders::detail::routes())
        .merge(crate::webhooks::handlers::routes())
        .merge(crate::alarms::handlers::routes())
        .merge(crate::models::handlers::routes())
        .route("/api/v1/audit", get(audit::handlers::list))
        .route("/api/v1/audit/verify", get(audit::handlers::verify))
        .route(docs::OPENAPI_PATH, get(openapi_json))
        .route(docs::DOCS_PATH, get(api_docs))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                // The route template, never the raw path: ids stay out of span names.
                let route = req
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", |m| m.as_str());
                tracing::info_span!("http", method = %req.method(), route)
            }),
        )
        .layer(axum::middleware::map_response(problem_for_rejections))
        .with_state(state)
}

/// Turns axum's plain-text rejections (e.g. body too large) into problem+json.
async fn problem_for_rejections(resp: Response) -> Response {
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let (kind, title, field) = match status {
            StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "Body too large", Some("body")),
            StatusCode::METHOD_NOT_ALLOWED => ("method-not-allowed", "Method not allowed", None),
            _ => ("bad-request", "Bad request", None),
        };
        let detail = match axum::body::to_bytes(resp.into_body(), 64 * 1024).await {
            Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).into_owned(),
            _ => status.canonical_reason().unwrap_or("error").to_string(),
        };
        return problem_response(status, kind, title, detail, field.map(str::to_string));
    }
    resp
}

async fn not_found() -> AppError {
    AppError::NotFound {
        detail: "no such route".into(),
    }
}

/// Registered gateways (never their secrets).
#[utoipa::path(get, path = "/api/v1/gateways", tag = "gateways",
    params(("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<gateways::Gateway>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("user_token" = [])))]
async fn list_gateways(
    State(st): State<AppState>,
    who: auth::Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<gateways::Gateway>>, AppError> {
    who.require(auth::Permission::ReadTelemetry)?;
    let q = Params::new(raw, &["limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let items = gateways::list(&st.db, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// Liveness and database reachability.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Serving and the database answers"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn healthz(State(st): State<AppState>) -> Response {
    match st.db.ping().await {
        Ok(()) => {
            Json(serde_json::json!({"status": "ok", "database": st.db.kind()})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            problem_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "database-unavailable",
                "Database unavailable",
                "the database did not answer".into(),
                None,
            )
        }
    }
}

async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The browsable API documentation (see [`docs`]), rendered once.
async fn api_docs() -> Response {
    static PAGE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        docs::render(&doc)
    });
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page.as_str(),
    )
        .into_response()
}

async fn metrics_text(State(st): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}

//! `/api/v1/sites…` and `/api/v1/assets…`.

use super::{Asset, AssetFields, AssetPoint, Site, SiteFields};
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

/// Create a site.
#[utoipa::path(post, path = "/api/v1/sites", tag = "assets", request_body = SiteFields,
    responses((status = 201, body = Site), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_site(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(f): JsonBody<SiteFields>,
) -> Result<(StatusCode, Json<Site>), AppError> {
    who.require(Permission::ManageAssets)?;
    let s = super::create_site(&st.db, &st.caches, &who.actor(), &f).await?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// Sites, filtered by `kind`, sorted by `sort` (`name`, `code`, `created_ms`, `ac_capacity_kw`; `-` for descending).
#[utoipa::path(get, path = "/api/v1/sites", tag = "assets",
    params(("kind" = Option<String>, Query, description = "solar, wind, bess or hybrid"),
           ("sort" = Option<String>, Query, description = "name, code, created_ms or ac_capacity_kw; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Site>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_sites(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Site>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["kind", "sort", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(
        &["name", "code", "created_ms", "ac_capacity_kw"],
        ("code", false),
    )?;
    let mut f = Filters::default();
    if let Some(k) = q.str("kind") {
        if super::SiteKind::parse(k).is_none() {
            return Err(AppError::bad_field(
                "kind",
                format!("{k:?}: one of solar, wind, bess, hybrid"),
            ));
        }
        f.eq("kind", Some(Bind::Text(k.to_string())));
    }
    let items = super::list_sites(&st.db, &f, sort, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One site; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/sites/{id}", tag = "assets",
    responses((status = 200, body = Site), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_site(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let s = super::get_site(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("site", id))?;
    Ok(with_etag(s.version, Json(s)))
}

/// Change a site. Send the `version` you read; a stale one is 409.
#[utoipa::path(patch, path = "/api/v1/sites/{id}", tag = "assets", request_body = SiteFields,
    responses((status = 200, body = Site), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_site(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(f): JsonBody<SiteFields>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageAssets)?;
    let s = super::update_site(&st.db, &st.caches, &who.actor(), id, &f).await?;
    Ok(with_etag(s.version, Json(s)))
}

/// Create an asset (or a component: give `parent_id`).
#[utoipa::path(post, path = "/api/v1/assets", tag = "assets", request_body = AssetFields,
    responses((status = 201, body = Asset), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create_asset(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(f): JsonBody<AssetFields>,
) -> Result<(StatusCode, Json<Asset>), AppError> {
    who.require(Permission::ManageAssets)?;
    let a = super::create_asset(&st.db, &st.caches, &who.actor(), &f).await?;
    Ok((StatusCode::CREATED, Json(a)))
}

/// Assets, filtered by `site_id`, `parent_id`, `class`.
#[utoipa::path(get, path = "/api/v1/assets", tag = "assets",
    params(("site_id" = Option<i64>, Query, description = "Only this site's assets"),
           ("parent_id" = Option<i64>, Query, description = "Only components of this asset"),
           ("class" = Option<String>, Query, description = "Only this asset class"),
           ("sort" = Option<String>, Query, description = "name, class, criticality or created_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Asset>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_assets(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Asset>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(
        raw,
        &["site_id", "parent_id", "class", "sort", "limit", "offset"],
    )?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(
        &["name", "class", "criticality", "created_ms"],
        ("name", false),
    )?;
    let f = super::asset_filters(
        q.parse("site_id", "an integer")?,
        q.parse("parent_id", "an integer")?,
        q.str("class"),
    );
    let items = super::list_assets(&st.db, &f, sort, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One asset; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/assets/{id}", tag = "assets",
    responses((status = 200, body = Asset), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_asset(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let a = super::get_asset(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("asset", id))?;
    Ok(with_etag(a.version, Json(a)))
}

/// Change an asset (move it with `parent_id` / `site_id`). Send the `version` you read.
#[utoipa::path(patch, path = "/api/v1/assets/{id}", tag = "assets", request_body = AssetFields,
    responses((status = 200, body = Asset), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_asset(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(f): JsonBody<AssetFields>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageAssets)?;
    let a = super::update_asset(&st.db, &st.caches, &who.actor(), id, &f).await?;
    Ok(with_etag(a.version, Json(a)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointLink {
    /// A point id from `GET /api/v1/points`.
    pub point_id: i64,
    /// What it measures for this asset, e.g. `ac_power`, `running_hours`.
    pub role: String,
}

/// Link a telemetry point to an asset.
#[utoipa::path(post, path = "/api/v1/assets/{id}/points", tag = "assets", request_body = PointLink,
    responses((status = 201, body = AssetPoint), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn link_point(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(l): JsonBody<PointLink>,
) -> Result<(StatusCode, Json<AssetPoint>), AppError> {
    who.require(Permission::ManageAssets)?;
    let p = super::link_point(&st.db, &st.caches, &who.actor(), id, l.point_id, &l.role).await?;
    Ok((StatusCode::CREATED, Json(p)))
}

/// The asset's meters (running hours, energy): read from a counter point
/// linked with the meter's role, or derived from its `ac_power` point.
#[utoipa::path(get, path = "/api/v1/assets/{id}/meters", tag = "assets",
    responses((status = 200, body = Vec<super::meters::Meter>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn asset_meters(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Vec<super::meters::Meter>>, AppError> {
    who.require(Permission::Read)?;
    if super::get_asset(&st.db, id).await?.is_none() {
        return Err(AppError::not_found("asset", id));
    }
    Ok(Json(
        super::meters::meters(&st.db, id, crate::gateways::now_ms()).await?,
    ))
}

/// The telemetry points linked to an asset.
#[utoipa::path(get, path = "/api/v1/assets/{id}/points", tag = "assets",
    responses((status = 200, body = Vec<AssetPoint>)))]
pub async fn asset_points(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Vec<AssetPoint>>, AppError> {
    who.require(Permission::Read)?;
    Ok(Json(super::asset_points(&st.db, id).await?))
}

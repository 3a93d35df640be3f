//! `GET /api/v1/devices`, `/api/v1/points`, `/api/v1/points/{id}/samples`.

use crate::auth::{Permission, Principal};
use crate::http::AppState;
use crate::http::params::Params;
use crate::http::problem::{AppError, Problem};
use crate::http::{Page, page};
use crate::on_db;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DeviceInfo {
    pub gateway_id: String,
    pub device: String,
    pub point_count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PointInfo {
    pub id: i64,
    pub gateway_id: String,
    pub device: String,
    pub point: String,
    pub unit: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SampleOut {
    pub ts_ms: i64,
    /// `null` when the device sent a non-finite value.
    pub value: Option<f64>,
    /// good, stale, comms_lost or bad.
    pub quality: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Bucket {
    /// Start of the bucket (Unix ms, aligned to the bucket size).
    pub ts_ms: i64,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    /// Samples with a (finite) value in the bucket.
    pub count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum Resolution {
    #[serde(rename = "raw")]
    Raw,
    #[serde(rename = "1m")]
    OneMinute,
    #[serde(rename = "15m")]
    FifteenMinutes,
}

impl Resolution {
    fn bucket_ms(self) -> Option<i64> {
        match self {
            Resolution::Raw => None,
            Resolution::OneMinute => Some(60_000),
            Resolution::FifteenMinutes => Some(900_000),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SamplesPage {
    pub point: PointInfo,
    pub resolution: Resolution,
    pub from: i64,
    pub to: i64,
    /// Raw samples (resolution `raw`), oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub samples: Option<Vec<SampleOut>>,
    /// Aggregated buckets (resolution `1m` or `15m`), oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<Bucket>>,
    /// Pass as `from` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_from: Option<i64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; parsing goes through `Params`
pub struct ListQuery {
    /// Only this gateway.
    gateway_id: Option<String>,
    /// Only this device (with `gateway_id`).
    device: Option<String>,
    /// Page size, 1 to 10000 (default 100).
    limit: Option<i64>,
    /// Items to skip.
    offset: Option<i64>,
}

/// Devices that have sent telemetry, with their point counts.
#[utoipa::path(get, path = "/api/v1/devices", tag = "telemetry",
    params(ListQuery),
    responses((status = 200, body = Page<DeviceInfo>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("user_token" = [])))]
pub async fn list_devices(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<DeviceInfo>>, AppError> {
    who.require(Permission::ReadTelemetry)?;
    let q = Params::new(raw, &["gateway_id", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let gw = q.str("gateway_id");
    let items: Vec<DeviceInfo> = on_db!(&st.db, p => {
        let rows = sqlx::query(
            "SELECT gateway_id, device, COUNT(*) FROM points \
             WHERE ($1 IS NULL OR gateway_id = $1) \
             GROUP BY gateway_id, device ORDER BY gateway_id, device LIMIT $2 OFFSET $3")
            .bind(gw).bind(limit + 1).bind(offset).fetch_all(p).await?;
        rows.iter().map(|r| Ok::<_, sqlx::Error>(DeviceInfo {
            gateway_id: r.try_get(0)?, device: r.try_get(1)?, point_count: r.try_get(2)?,
        })).collect::<Result<_, _>>()?
    });
    Ok(Json(page(items, limit, offset)))
}

/// Points in the registry, filtered by gateway and device.
#[utoipa::path(get, path = "/api/v1/points", tag = "telemetry",
    params(ListQuery),
    responses((status = 200, body = Page<PointInfo>),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")),
    security(("user_token" = [])))]
pub async fn list_points(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<PointInfo>>, AppError> {
    who.require(Permission::ReadTelemetry)?;
    let q = Params::new(raw, &["gateway_id", "device", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let (gw, dev) = (q.str("gateway_id"), q.str("device"));
    let items: Vec<PointInfo> = on_db!(&st.db, p => {
        let rows = sqlx::query(
            "SELECT id, gateway_id, device, point, unit FROM points \
             WHERE ($1 IS NULL OR gateway_id = $1) AND ($2 IS NULL OR device = $2) \
             ORDER BY gateway_id, device, point LIMIT $3 OFFSET $4")
            .bind(gw).bind(dev).bind(limit + 1).bind(offset).fetch_all(p).await?;
        rows.iter().map(point_from_row).collect::<Result<_, _>>()?
    });
    Ok(Json(page(items, limit, offset)))
}

fn point_from_row<R: Row>(r: &R) -> Result<PointInfo, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(PointInfo {
        id: r.try_get(0)?,
        gateway_id: r.try_get(1)?,
        device: r.try_get(2)?,
        point: r.try_get(3)?,
        unit: r.try_get(4)?,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; parsing goes through `Params`
pub struct SamplesQuery {
    /// Start, inclusive (Unix ms). Default: 24 hours before `to`.
    from: Option<i64>,
    /// End, exclusive (Unix ms). Default: now.
    to: Option<i64>,
    /// `raw` (default), `1m` or `15m`. Aggregates are of whole buckets
    /// overlapping `[from, to)`, read from rollups maintained on ingest
    /// (exact as soon as a batch is acknowledged).
    resolution: Option<String>,
    /// Most samples or buckets to return, 1 to 10000 (default 100).
    limit: Option<i64>,
}

/// Samples of one point over a time range, raw or aggregated.
#[utoipa::path(get, path = "/api/v1/points/{id}/samples", tag = "telemetry",
    params(("id" = i64, Path, description = "Point id"), SamplesQuery),
    responses((status = 200, body = SamplesPage),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("user_token" = [])))]
pub async fn get_samples(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<SamplesPage>, AppError> {
    who.require(Permission::ReadTelemetry)?;
    let id: i64 = id
        .parse()
        .map_err(|_| AppError::bad_field("id", format!("{id:?} is not a point id")))?;
    let q = Params::new(raw, &["from", "to", "resolution", "limit"])?;
    let (limit, _) = q.page()?;
    let to = q
        .parse::<i64>("to", "a Unix time in milliseconds")?
        .unwrap_or_else(crate::gateways::now_ms);
    let from = q
        .parse::<i64>("from", "a Unix time in milliseconds")?
        .unwrap_or(to.saturating_sub(86_400_000));
    if from >= to {
        return Err(AppError::bad_field("from", "must be before `to`"));
    }
    let resolution = match q.str("resolution").unwrap_or("raw") {
        "raw" => Resolution::Raw,
        "1m" => Resolution::OneMinute,
        "15m" => Resolution::FifteenMinutes,
        other => {
            return Err(AppError::bad_field(
                "resolution",
                format!("{other:?} is not one of raw, 1m, 15m"),
            ));
        }
    };
    let point: Option<PointInfo> = on_db!(&st.db, p => sqlx::query(
        "SELECT id, gateway_id, device, point, unit FROM points WHERE id = $1")
        .bind(id).fetch_optional(p).await?.as_ref().map(point_from_row).transpose()?);
    let Some(point) = point else {
        return Err(AppError::NotFound {
            detail: format!("no point with id {id}"),
        });
    };
    let mut out = SamplesPage {
        point,
        resolution,
        from,
        to,
        samples: None,
        buckets: None,
        next_from: None,
    };
    match resolution.bucket_ms() {
        None => {
            let mut samples: Vec<SampleOut> = on_db!(&st.db, p => {
                let rows = sqlx::query(
                    "SELECT ts_ms, value, quality FROM samples \
                     WHERE point_id = $1 AND ts_ms >= $2 AND ts_ms < $3 \
                     ORDER BY ts_ms LIMIT $4")
                    .bind(id).bind(from).bind(to).bind(limit + 1).fetch_all(p).await?;
                rows.iter().map(|r| {
                    let code: i16 = r.try_get(2)?;
                    Ok::<_, sqlx::Error>(SampleOut {
                        ts_ms: r.try_get(0)?,
                        value: r.try_get(1)?,
                        quality: u8::try_from(code).ok()
                            .and_then(dcmms_shared::Quality::from_code)
                            .map_or("unknown", |q| q.as_str()).to_string(),
                    })
                }).collect::<Result<_, _>>()?
            });
            if samples.len() as i64 > limit {
                samples.truncate(limit as usize);
                out.next_from = samples.last().map(|s| s.ts_ms + 1);
            }
            out.samples = Some(samples);
        }
        Some(bucket) => {
            // Whole buckets overlapping [from, to): the folded rollups plus
            // the deltas not folded yet; `table` is one of two constants,
            // never user input.
            let table = if bucket == 60_000 {
                "rollups_1m"
            } else {
                "rollups_15m"
            };
            let start = from.div_euclid(bucket).saturating_mul(bucket);
            // Buckets starting before `to` = buckets starting before `to`
            // rounded up to a bucket boundary, which also bounds the deltas.
            let end = to
                .div_euclid(bucket)
                .saturating_add(i64::from(to.rem_euclid(bucket) != 0))
                .saturating_mul(bucket);
            let sql = crate::ingest::rollups::read_sql(table, bucket);
            let mut buckets: Vec<Bucket> = on_db!(&st.db, p => {
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(id).bind(start).bind(end).bind(limit + 1).fetch_all(p).await?;
                rows.iter().map(|r| Ok::<_, sqlx::Error>(Bucket {
                    ts_ms: r.try_get(0)?, min: r.try_get(1)?, avg: r.try_get(2)?,
                    max: r.try_get(3)?, count: r.try_get(4)?,
                })).collect::<Result<_, _>>()?
            });
            if buckets.len() as i64 > limit {
                buckets.truncate(limit as usize);
                out.next_from = buckets.last().map(|b| b.ts_ms + bucket);
            }
            out.buckets = Some(buckets);
        }
    }
    Ok(Json(out))
}

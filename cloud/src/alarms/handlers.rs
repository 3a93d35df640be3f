//! `/api/v1/alarm-rules` and `/api/v1/alarms`.

use super::evaluate::{EnergyEstimate, EvalReport};
use super::{Alarm, AlarmState, Condition, Op, Rule, RuleFields, Scope};
use crate::auth::{Permission, Principal};
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

/// The alarm routes, merged into [`crate::http::app`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/alarm-rules", get(list_rules).post(create_rule))
        .route("/api/v1/alarm-rules/{id}", get(get_rule).patch(update_rule))
        .route("/api/v1/alarms", get(list_alarms))
        .route("/api/v1/alarms/evaluate", post(evaluate_now))
        .route("/api/v1/alarms/{id}", get(get_alarm))
        .route("/api/v1/alarms/{id}/acknowledge", post(acknowledge))
}

/// The alarms part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(
        create_rule,
        list_rules,
        get_rule,
        update_rule,
        list_alarms,
        get_alarm,
        acknowledge,
        evaluate_now
    ),
    components(schemas(
        Rule,
        RuleFields,
        Scope,
        Condition,
        Op,
        Alarm,
        AlarmState,
        EvalReport,
        EnergyEstimate
    ))
)]
#[derive(Debug)]
pub struct AlarmsApi;

/// Merges [`AlarmsApi`] into the main document (an `ApiDoc` modifier).
#[derive(Debug)]
pub struct AlarmsDoc;

impl utoipa::Modify for AlarmsDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(AlarmsApi::openapi());
    }
}

/// Create an alarm rule.
#[utoipa::path(post, path = "/api/v1/alarm-rules", tag = "alarms", request_body = RuleFields,
    responses((status = 201, body = Rule), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn create_rule(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(f): JsonBody<RuleFields>,
) -> Result<(StatusCode, Json<Rule>), AppError> {
    who.require(Permission::ManageAlarmRules)?;
    let r = super::create_rule(&st.db, &st.caches, &who, &f).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Alarm rules, filtered by `active`.
#[utoipa::path(get, path = "/api/v1/alarm-rules", tag = "alarms",
    params(("active" = Option<bool>, Query, description = "Only active (true) or inactive (false) rules"),
           ("sort" = Option<String>, Query, description = "id, name or created_ms; prefix - for descending"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Rule>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_rules(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Rule>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["active", "sort", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["id", "name", "created_ms"], ("id", false))?;
    let mut f = Filters::default();
    eq_bool(&mut f, "active", q.parse("active", "true or false")?);
    let items = super::list_rules(&st.db, &f, sort, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// One alarm rule; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/alarm-rules/{id}", tag = "alarms",
    responses((status = 200, body = Rule), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_rule(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let r = super::get_rule(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("alarm rule", id))?;
    Ok(with_etag(r.version, Json(r)))
}

/// Change an alarm rule. Send the `version` you read; a stale one is 409.
#[utoipa::path(patch, path = "/api/v1/alarm-rules/{id}", tag = "alarms", request_body = RuleFields,
    responses((status = 200, body = Rule), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_rule(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(f): JsonBody<RuleFields>,
) -> Result<Response, AppError> {
    who.require(Permission::ManageAlarmRules)?;
    let r = super::update_rule(&st.db, &st.caches, &who, id, &f).await?;
    Ok(with_etag(r.version, Json(r)))
}

/// Alarms, newest first by default, filtered by `state`, `site_id`,
/// `asset_id`, `rule_id`, `work_order_id`, `acknowledged`.
#[utoipa::path(get, path = "/api/v1/alarms", tag = "alarms",
    params(("state" = Option<AlarmState>, Query, description = "active or cleared"),
           ("site_id" = Option<i64>, Query, description = "Only this site's alarms"),
           ("asset_id" = Option<i64>, Query, description = "Only this asset's alarms"),
           ("rule_id" = Option<i64>, Query, description = "Only this rule's alarms"),
           ("work_order_id" = Option<i64>, Query, description = "The alarm behind this work order"),
           ("acknowledged" = Option<bool>, Query, description = "true or false"),
           ("sort" = Option<String>, Query, description = "id, raised_ms or severity; prefix - for descending (default -id)"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Alarm>), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn list_alarms(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Alarm>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(
        raw,
        &[
            "state",
            "site_id",
            "asset_id",
            "rule_id",
            "work_order_id",
            "acknowledged",
            "sort",
            "limit",
            "offset",
        ],
    )?;
    let (limit, offset) = q.page()?;
    let sort = q.sort(&["id", "raised_ms", "severity"], ("id", true))?;
    let mut f = Filters::default();
    if let Some(s) = q.str("state") {
        let s = AlarmState::parse(s).ok_or_else(|| {
            AppError::bad_field("state", format!("{s:?} is not active or cleared"))
        })?;
        f.eq("state", Some(Bind::Text(s.as_str().into())));
    }
    for col in ["site_id", "asset_id", "rule_id", "work_order_id"] {
        f.eq(col, q.parse(col, "an integer")?.map(Bind::Int));
    }
    eq_bool(
        &mut f,
        "acknowledged",
        q.parse("acknowledged", "true or false")?,
    );
    let items = super::list_alarms(&st.db, &f, sort, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// `column = value` for a boolean column, one text on both databases
/// (Postgres has no `boolean = bigint`).
fn eq_bool(f: &mut Filters, column: &str, value: Option<bool>) {
    if let Some(b) = value {
        f.binds.push(Bind::Int(i64::from(b)));
        f.clauses.push(format!(
            "(CASE WHEN {column} THEN 1 ELSE 0 END) = ${}",
            f.binds.len()
        ));
    }
}

/// One alarm with its evidence (rule snapshot, asset, telemetry window).
#[utoipa::path(get, path = "/api/v1/alarms/{id}", tag = "alarms",
    responses((status = 200, body = Alarm), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_alarm(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let a = super::get_alarm(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("alarm", id))?;
    Ok(with_etag(a.version, Json(a)))
}

/// Acknowledge an alarm (active or cleared); 409 if already acknowledged.
#[utoipa::path(post, path = "/api/v1/alarms/{id}/acknowledge", tag = "alarms",
    responses((status = 200, body = Alarm), (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn acknowledge(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::AcknowledgeAlarm)?;
    let a = super::acknowledge(&st.db, &st.caches, &who, id).await?;
    Ok(with_etag(a.version, Json(a)))
}

/// Run an evaluation pass now (it also runs after every ingested batch).
#[utoipa::path(post, path = "/api/v1/alarms/evaluate", tag = "alarms",
    responses((status = 200, body = EvalReport), (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn evaluate_now(
    State(st): State<AppState>,
    who: Principal,
) -> Result<Json<EvalReport>, AppError> {
    who.require(Permission::ManageAlarmRules)?;
    Ok(Json(super::evaluate::evaluate(&st.db, &st.caches).await?))
}

//! `/api/v1/work-orders/{id}/tasks|comments|crew` and `/api/v1/crews…`:
//! checklists, comments and crews, merged into [`crate::http::app`].

use super::comments::{self, Comment, NewComment};
use super::crews::{self, Crew, CrewAssignment, CrewEdit, NewCrew};
use super::store::{self, WorkOrder};
use super::tasks::{self, NewTask, Recorded, Task, TaskKind, TaskResult};
use crate::auth::{Permission, Principal, allows};
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

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/work-orders/{id}/tasks",
            get(list_tasks).post(add_task),
        )
        .route(
            "/api/v1/work-orders/{id}/tasks/{task_id}/result",
            post(record_result),
        )
        .route(
            "/api/v1/work-orders/{id}/tasks/{task_id}/follow-up",
            post(follow_up),
        )
        .route(
            "/api/v1/work-orders/{id}/comments",
            get(list_comments).post(add_comment),
        )
        .route("/api/v1/work-orders/{id}/crew", post(assign_crew))
        .route("/api/v1/crews", get(list_crews).post(create_crew))
        .route("/api/v1/crews/{id}", get(get_crew).patch(update_crew))
}

#[derive(OpenApi)]
#[openapi(
    paths(
        list_tasks,
        add_task,
        record_result,
        follow_up,
        list_comments,
        add_comment,
        assign_crew,
        list_crews,
        create_crew,
        get_crew,
        update_crew
    ),
    components(schemas(
        Task,
        TaskKind,
        NewTask,
        TaskResult,
        Recorded,
        Comment,
        NewComment,
        Crew,
        NewCrew,
        CrewEdit,
        CrewAssignment
    ))
)]
#[derive(Debug)]
pub struct DetailApi;

/// Merges [`DetailApi`] into the main document (an `ApiDoc` modifier).
#[derive(Debug)]
pub struct DetailDoc;

impl utoipa::Modify for DetailDoc {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.merge(DetailApi::openapi());
    }
}

async fn exists(st: &AppState, id: i64) -> Result<(), AppError> {
    store::get(&st.db, id)
        .await?
        .map(|_| ())
        .ok_or_else(|| AppError::not_found("work order", id))
}

/// The checklist of a work order, in order.
#[utoipa::path(get, path = "/api/v1/work-orders/{id}/tasks", tag = "work orders",
    responses((status = 200, body = Vec<Task>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_tasks(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Vec<Task>>, AppError> {
    who.require(Permission::Read)?;
    exists(&st, id).await?;
    Ok(Json(tasks::list(&st.db, id).await?))
}

/// Append a checklist item (edit_work_order).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/tasks", tag = "work orders", request_body = NewTask,
    responses((status = 201, body = Task), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn add_task(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(n): JsonBody<NewTask>,
) -> Result<(StatusCode, Json<Task>), AppError> {
    who.require(Permission::EditWorkOrder)?;
    let t = tasks::add(&st.db, &st.caches, &who, id, &n).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// Record a checklist result (execute_work_order; a technician only on
/// orders assigned to them or their crew; only while IN_PROGRESS).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/tasks/{task_id}/result", tag = "work orders", request_body = TaskResult,
    responses((status = 200, body = Recorded), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn record_result(
    State(st): State<AppState>,
    who: Principal,
    Path((id, task_id)): Path<(i64, i64)>,
    JsonBody(r): JsonBody<TaskResult>,
) -> Result<Json<Recorded>, AppError> {
    who.require(Permission::ExecuteWorkOrder)?;
    Ok(Json(
        tasks::record(&st.db, &st.caches, &who, id, task_id, &r).await?,
    ))
}

/// Raise a follow-up corrective work order from a failed item (request_work_order).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/tasks/{task_id}/follow-up", tag = "work orders",
    responses((status = 201, body = WorkOrder), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn follow_up(
    State(st): State<AppState>,
    who: Principal,
    Path((id, task_id)): Path<(i64, i64)>,
) -> Result<(StatusCode, Json<WorkOrder>), AppError> {
    who.require(Permission::RequestWorkOrder)?;
    let wo = tasks::follow_up(&st.db, &st.caches, &who, id, task_id).await?;
    Ok((StatusCode::CREATED, Json(wo)))
}

/// Comments on a work order, oldest first.
#[utoipa::path(get, path = "/api/v1/work-orders/{id}/comments", tag = "work orders",
    params(("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Comment>), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn list_comments(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Comment>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["limit", "offset"])?;
    let (limit, offset) = q.page()?;
    exists(&st, id).await?;
    let items = comments::list(&st.db, id, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// Comment on a work order (request_work_order or execute_work_order).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/comments", tag = "work orders", request_body = NewComment,
    responses((status = 201, body = Comment), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json")))]
pub async fn add_comment(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(n): JsonBody<NewComment>,
) -> Result<(StatusCode, Json<Comment>), AppError> {
    if !allows(who.role, Permission::RequestWorkOrder) {
        who.require(Permission::ExecuteWorkOrder)?;
    }
    let c = comments::add(&st.db, &st.caches, &who, id, &n).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Assign a work order to a crew, or remove its crew (plan_work_order).
#[utoipa::path(post, path = "/api/v1/work-orders/{id}/crew", tag = "work orders", request_body = CrewAssignment,
    responses((status = 200, body = WorkOrder), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn assign_crew(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(a): JsonBody<CrewAssignment>,
) -> Result<Response, AppError> {
    who.require(Permission::PlanWorkOrder)?;
    let wo = crews::assign(&st.db, &st.caches, &who, id, &a).await?;
    Ok(with_etag(wo.version, Json(wo)))
}

/// Crews, optionally of one site.
#[utoipa::path(get, path = "/api/v1/crews", tag = "crews",
    params(("site_id" = Option<i64>, Query, description = "Only this site's crews"),
           ("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<Crew>)))]
pub async fn list_crews(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<Crew>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["site_id", "limit", "offset"])?;
    let (limit, offset) = q.page()?;
    let site = q.parse("site_id", "an integer")?;
    let items = crews::list(&st.db, site, limit + 1, offset).await?;
    Ok(Json(page(items, limit, offset)))
}

/// Create a crew (plan_work_order).
#[utoipa::path(post, path = "/api/v1/crews", tag = "crews", request_body = NewCrew,
    responses((status = 201, body = Crew), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_crew(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(n): JsonBody<NewCrew>,
) -> Result<(StatusCode, Json<Crew>), AppError> {
    who.require(Permission::PlanWorkOrder)?;
    let c = crews::create(&st.db, &st.caches, &who, &n).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// One crew; its `ETag` is its version.
#[utoipa::path(get, path = "/api/v1/crews/{id}", tag = "crews",
    responses((status = 200, body = Crew), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get_crew(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, AppError> {
    who.require(Permission::Read)?;
    let c = crews::get(&st.db, id)
        .await?
        .ok_or_else(|| AppError::not_found("crew", id))?;
    Ok(with_etag(c.version, Json(c)))
}

/// Rename a crew or replace its members (plan_work_order). Send the `version` you read.
#[utoipa::path(patch, path = "/api/v1/crews/{id}", tag = "crews", request_body = CrewEdit,
    responses((status = 200, body = Crew), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_crew(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(e): JsonBody<CrewEdit>,
) -> Result<Response, AppError> {
    who.require(Permission::PlanWorkOrder)?;
    let c = crews::update(&st.db, &st.caches, &who, id, &e).await?;
    Ok(with_etag(c.version, Json(c)))
}

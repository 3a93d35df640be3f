//! `/api/v1/auth/…` and `/api/v1/users`: log in and out, who am I, users
//! (admins), API tokens for integrations.

use super::users::{self, SESSION_TTL_MS, User, UserError, UserUpdate};
use super::{Permission, Principal, Role};
use crate::gateways::now_ms;
use crate::http::json::JsonBody;
use crate::http::params::Params;
use crate::http::problem::{AppError, Problem};
use crate::http::{AppState, Page, page};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    pub expires_ms: i64,
    pub user: User,
}

/// Log in with username and password; returns a session token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 429, body = Problem, content_type = "application/problem+json")))]
pub async fn login(
    State(st): State<AppState>,
    JsonBody(req): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, AppError> {
    let now = now_ms();
    if let Err(wait_ms) = st.login_limiter.check(&req.username, now) {
        tracing::warn!(username = %req.username, "login refused: too many failures");
        return Err(AppError::TooManyRequests {
            detail: format!(
                "too many failed logins for {:?}; try again in {} s",
                req.username,
                wait_ms / 1000 + 1
            ),
            retry_after_s: wait_ms / 1000 + 1,
        });
    }
    let Some(user) = users::check_password(&st.db, &req.username, &req.password).await? else {
        st.login_limiter.failed(&req.username, now);
        return Err(AppError::Unauthorized {
            detail: "unknown user or wrong password".into(),
        });
    };
    st.login_limiter.succeeded(&req.username);
    let expires_ms = now + SESSION_TTL_MS;
    let token = users::issue_token(
        &st.db,
        &st.caches,
        user.id,
        "session",
        "login",
        Some(expires_ms),
    )
    .await?;
    Ok(Json(LoginResponse {
        token,
        expires_ms,
        user,
    }))
}

/// End the session (revokes the token used for this request).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn logout(
    State(st): State<AppState>,
    _who: Principal,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, AppError> {
    if let Some(t) = super::extract::bearer(&headers) {
        users::revoke_token(&st.db, &st.caches, t).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
    /// Every permission this user's role has.
    pub permissions: Vec<Permission>,
}

/// The caller and what their role may do.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn me(who: Principal) -> Json<Me> {
    Json(Me {
        user_id: who.user_id,
        username: who.username.clone(),
        role: who.role,
        permissions: Permission::ALL
            .into_iter()
            .filter(|p| super::allows(who.role, *p))
            .collect(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// At least 12 characters.
    pub password: String,
}

fn user_error(e: UserError) -> AppError {
    match e {
        UserError::BadUsername(_) => AppError::bad_field("username", e.to_string()),
        UserError::WeakPassword => AppError::bad_field("password", e.to_string()),
        UserError::Taken(_) => AppError::Conflict {
            kind: "duplicate",
            detail: e.to_string(),
            field: Some("username".into()),
        },
        UserError::NotFound(id) => AppError::not_found("user", id),
        UserError::Stale { current, sent, .. } => AppError::stale(sent, current),
        UserError::BadField { field, problem } => AppError::bad_field(field, problem),
        UserError::Hash(_) => AppError::Internal(e.into()),
        UserError::Db(e) => e.into(),
    }
}

/// Create a user (admins).
#[utoipa::path(post, path = "/api/v1/users", tag = "auth", request_body = NewUser,
    responses((status = 201, body = User), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn create_user(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(req): JsonBody<NewUser>,
) -> Result<(StatusCode, Json<User>), AppError> {
    who.require(Permission::ManageUsers)?;
    let u = users::create(
        &st.db,
        &st.caches,
        &who.actor(),
        &req.username,
        &req.display_name,
        req.role,
        &req.password,
    )
    .await
    .map_err(user_error)?;
    Ok((StatusCode::CREATED, Json(u)))
}

/// Change a user's display name or labour rate card (admins).
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "auth", request_body = UserUpdate,
    params(("id" = i64, Path, description = "User id")),
    responses((status = 200, body = User), (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn update_user(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<UserUpdate>,
) -> Result<Json<User>, AppError> {
    who.require(Permission::ManageUsers)?;
    users::update(&st.db, &st.caches, &who.actor(), id, &req)
        .await
        .map(Json)
        .map_err(user_error)
}

/// Users (never their password hashes).
#[utoipa::path(get, path = "/api/v1/users", tag = "auth",
    params(("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
           ("offset" = Option<i64>, Query, description = "Items to skip")),
    responses((status = 200, body = Page<User>), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn list_users(
    State(st): State<AppState>,
    who: Principal,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Page<User>>, AppError> {
    who.require(Permission::Read)?;
    let q = Params::new(raw, &["limit", "offset"])?;
    let (limit, offset) = q.page()?;
    Ok(Json(page(
        users::list(&st.db, limit + 1, offset).await?,
        limit,
        offset,
    )))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    /// What the token is for, e.g. "SAP PM integration".
    pub name: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    /// Shown once; send as `Authorization: Bearer <token>`.
    pub token: String,
}

/// Create an API token acting as the caller (for integrations); valid until revoked.
#[utoipa::path(post, path = "/api/v1/auth/tokens", tag = "auth", request_body = NewToken,
    responses((status = 201, body = TokenCreated), (status = 401, body = Problem, content_type = "application/problem+json")))]
pub async fn create_token(
    State(st): State<AppState>,
    who: Principal,
    JsonBody(req): JsonBody<NewToken>,
) -> Result<(StatusCode, Json<TokenCreated>), AppError> {
    if req.name.trim().is_empty() || req.name.len() > 200 {
        return Err(AppError::bad_field("name", "must be 1 to 200 characters"));
    }
    let token = users::issue_token(&st.db, &st.caches, who.user_id, "api", &req.name, None).await?;
    Ok((StatusCode::CREATED, Json(TokenCreated { token })))
}

//! `Authorization: Bearer <token>` → [`Principal`], for every CMMS handler.

use super::{Permission, Principal, allows, users};
use crate::http::AppState;
use crate::http::problem::AppError;
use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

/// The bearer token of a request, if it has one.
pub fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self, AppError> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(AppError::Unauthorized {
                detail:
                    "missing 'Authorization: Bearer <token>' (log in at POST /api/v1/auth/login)"
                        .into(),
            });
        };
        users::authenticate(&st.db, token)
            .await?
            .ok_or(AppError::Unauthorized {
                detail: "the token is unknown, expired or revoked, or its user is deactivated"
                    .into(),
            })
    }
}

impl Principal {
    /// 403 unless the matrix gives this user's role `p`.
    pub fn require(&self, p: Permission) -> Result<(), AppError> {
        if allows(self.role, p) {
            Ok(())
        } else {
            Err(AppError::Forbidden {
                detail: format!(
                    "role {} lacks permission {}",
                    self.role,
                    serde_json::to_value(p)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
            })
        }
    }
}

//! Errors as RFC 9457 `application/problem+json` responses.
//!
//! The client sees a safe, specific message (naming the field at fault where
//! there is one); internal causes are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the kind of problem, e.g. `/problems/malformed-batch`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request field (query parameter, header or body part) at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Everything a handler can fail with.
#[derive(Debug)]
pub enum AppError {
    /// A request field is missing or wrong.
    BadField {
        field: String,
        detail: String,
    },
    /// The request body could not be decoded.
    MalformedBody {
        detail: String,
    },
    Unauthorized {
        detail: String,
    },
    Forbidden {
        detail: String,
    },
    NotFound {
        detail: String,
    },
    UnsupportedMediaType {
        detail: String,
    },
    /// The batch's sequence range partially overlaps a stored batch.
    SequenceConflict {
        detail: String,
    },
    /// The request conflicts with the resource's current state: a stale
    /// `version`, a transition the lifecycle does not allow, a duplicate.
    Conflict {
        kind: &'static str,
        detail: String,
        field: Option<String>,
    },
    /// Too many attempts (login rate limit).
    TooManyRequests {
        detail: String,
        retry_after_s: i64,
    },
    /// A failure of ours; the cause is logged, the client gets a generic text.
    Internal(anyhow::Error),
}

impl AppError {
    pub fn bad_field(field: impl Into<String>, detail: impl Into<String>) -> Self {
        AppError::BadField {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, kind, title, detail, field) = match self {
            AppError::BadField { field, detail } => (
                StatusCode::BAD_REQUEST,
                "invalid-field",
                "Invalid request field",
                detail,
                Some(field),
            ),
            AppError::MalformedBody { detail } => (
                StatusCode::BAD_REQUEST,
                "malformed-batch",
                "Malformed batch",
                detail,
                Some("body".to_string()),
            ),
            AppError::Unauthorized { detail } => (
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                detail,
                Some("authorization".to_string()),
            ),
            AppError::Forbidden { detail } => (
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                detail,
                None,
            ),
            AppError::NotFound { detail } => (
                StatusCode::NOT_FOUND,
                "not-found",
                "Not found",
                detail,
                None,
            ),
            AppError::UnsupportedMediaType { detail } => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                detail,
                Some("content-type".to_string()),
            ),
            AppError::SequenceConflict { detail } => (
                StatusCode::CONFLICT,
                "sequence-conflict",
                "Sequence conflict",
                detail,
                Some("body".to_string()),
            ),
            AppError::Conflict {
                kind,
                detail,
                field,
            } => (StatusCode::CONFLICT, kind, "Conflict", detail, field),
            AppError::TooManyRequests {
                detail,
                retry_after_s,
            } => {
                let mut resp = problem_response(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-requests",
                    "Too many requests",
                    detail,
                    None,
                );
                if let Ok(v) = HeaderValue::from_str(&retry_after_s.max(1).to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return resp;
            }
            AppError::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the server failed to handle the request; it has been logged".to_string(),
                    None,
                )
            }
        };
        problem_response(status, kind, title, detail, field)
    }
}

/// Builds a problem response; also used for rejections outside handlers.
pub fn problem_response(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: String,
    field: Option<String>,
) -> Response {
    let body = Problem {
        kind: format!("/problems/{kind}"),
        title: title.to_string(),
        status: status.as_u16(),
        detail,
        field,
    };
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(dcmms_shared::api::PROBLEM_CONTENT_TYPE),
    );
    if status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"dcmms\""),
        );
    }
    resp
}

impl AppError {
    /// The client edited an old copy: 409 naming `version`, never a silent
    /// overwrite (technicians edit offline).
    pub fn stale(sent: i64, current: i64) -> Self {
        AppError::Conflict {
            kind: "stale-version",
            detail: format!(
                "version {sent} is stale; the current version is {current}: reload, reapply the change and send version {current}"
            ),
            field: Some("version".into()),
        }
    }

    pub fn not_found(what: &str, id: i64) -> Self {
        AppError::NotFound {
            detail: format!("no {what} with id {id}"),
        }
    }
}

//! The edge's own HTTP listener: `/metrics`, `/healthz`, `/api/v1/status`,
//! and `POST /api/v1/anomaly/models/{id}/reload` when anomaly models run.
//! (The technicians' local UI joins it in a later issue.)

use crate::anomaly::{ModelControl, ReloadError};
use crate::metrics::EdgeMetrics;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::sync::Arc;

#[derive(Clone, Debug)]
struct AppState {
    metrics: EdgeMetrics,
    anomaly: Option<Arc<dyn ModelControl>>,
}

pub fn app(metrics: EdgeMetrics, anomaly: Option<Arc<dyn ModelControl>>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/v1/status", get(status))
        .route("/api/v1/anomaly/models/{id}/reload", post(reload))
        .with_state(AppState { metrics, anomaly })
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn status(State(s): State<AppState>) -> impl IntoResponse {
    let mut v = serde_json::to_value(s.metrics.status()).unwrap_or_default();
    if let (Some(a), Some(obj)) = (&s.anomaly, v.as_object_mut()) {
        obj.insert("anomaly".into(), a.status());
    }
    axum::Json(v)
}

fn problem(status: StatusCode, detail: String) -> axum::response::Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/problem+json")],
        serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or(""),
            "status": status.as_u16(),
            "detail": detail,
            "field": "id",
        })
        .to_string(),
    )
        .into_response()
}

async fn reload(State(s): State<AppState>, Path(id): Path<String>) -> axum::response::Response {
    let Some(control) = s.anomaly else {
        return problem(StatusCode::NOT_FOUND, "no anomaly models run here".into());
    };
    // Loading and optimising a model is CPU work: off the runtime.
    match tokio::task::spawn_blocking(move || control.reload(&id)).await {
        Ok(Ok(v)) => axum::Json(v).into_response(),
        Ok(Err(e @ ReloadError::UnknownModel(_))) => problem(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ ReloadError::Rejected(_))) => {
            problem(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
        }
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

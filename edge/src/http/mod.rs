//! The edge's own HTTP listener: `/metrics`, `/healthz`, `/api/v1/status`.
//! (The technicians' local UI joins it in a later issue.)

use crate::metrics::EdgeMetrics;
use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

pub fn app(metrics: EdgeMetrics) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/api/v1/status", get(status))
        .with_state(metrics)
}

async fn metrics_text(State(m): State<EdgeMetrics>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}

async fn status(State(m): State<EdgeMetrics>) -> impl IntoResponse {
    axum::Json(m.status())
}

//! The API test fixture shared by the CMMS suites: a router over a real
//! database, a JSON call helper, and users logged in by role.
#![allow(dead_code, clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use dcmms_cloud::Db;
use dcmms_cloud::auth::{Role, users};
use dcmms_cloud::http::metrics::CloudMetrics;
use dcmms_cloud::http::{AppState, app};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery staple";

pub struct Ctx {
    pub db: Db,
    pub caches: Arc<dcmms_cloud::db::Caches>,
    pub router: axum::Router,
}

impl Ctx {
    pub async fn new(url: &str) -> Ctx {
        let db = Db::connect(url).await.unwrap();
        let state = AppState::new(db.clone(), Arc::new(CloudMetrics::default()));
        Ctx {
            caches: state.caches.clone(),
            // Room for ingest batches (the alarm suite sends telemetry).
            router: app(state, 16 << 20),
            db,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (s, bytes) = self.call_raw(method, uri, token, body).await;
        (s, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// [`Ctx::call`] with the raw response body (files, bytes). `token` is
    /// any bearer credential: a user's token or a gateway's credential.
    pub async fn call_raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Vec<u8>) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (status, bytes.to_vec())
    }

    /// Sends `req` as it is (e.g. a binary ingest batch); status and JSON body.
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 24)
            .await
            .unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// A user of `role` and a session token for them.
    pub async fn user(&self, name: &str, role: Role) -> (i64, String) {
        let u = users::create(
            &self.db,
            &self.caches,
            "system:test",
            name,
            name,
            role,
            PASSWORD,
        )
        .await
        .unwrap();
        let (s, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": name, "password": PASSWORD})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        (u.id, body["token"].as_str().unwrap().to_string())
    }
}

//! JSON request bodies whose errors name the field at fault
//! (`priority: invalid value: integer 9, expected 1 to 5`), as problem+json.

use super::AppState;
use super::problem::AppError;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

/// Largest JSON body accepted by the CMMS endpoints.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// Like `axum::Json`, but a bad body is a 400 naming the field path.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for JsonBody<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, _st: &AppState) -> Result<Self, AppError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !is_json {
            return Err(AppError::UnsupportedMediaType {
                detail: "send the body as application/json".into(),
            });
        }
        let bytes = axum::body::to_bytes(req.into_body(), MAX_JSON_BYTES)
            .await
            .map_err(|e| AppError::bad_field("body", format!("cannot read the body: {e}")))?;
        let de = &mut serde_json::Deserializer::from_slice(&bytes);
        serde_path_to_error::deserialize(de)
            .map(JsonBody)
            .map_err(|e| {
                let path = e.path().to_string();
                let msg = e.into_inner().to_string();
                // serde reports a missing field at its parent: name the field.
                let missing = msg
                    .strip_prefix("missing field `")
                    .and_then(|m| m.split('`').next());
                let field = match (path.as_str(), missing) {
                    ("." | "", Some(m)) => m.to_string(),
                    ("." | "", None) => "body".to_string(),
                    (p, Some(m)) => format!("{p}.{m}"),
                    (p, None) => p.to_string(),
                };
                AppError::bad_field(field, msg)
            })
    }
}

//! The gateway registry: each edge gateway has an id and a secret.
//!
//! Gateway secrets are 256 random bits made by the server, so a fast hash is
//! enough to make a stolen table useless (no dictionary to search), and it
//! keeps per-request authentication cheap on the ingest hot path. Human
//! passwords (a later issue) use argon2. See docs/adr/0003-gateway-credentials.md.

use crate::db::Db;
use crate::on_db;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;
use thiserror::Error;
use utoipa::ToSchema;

#[derive(Debug, Error)]
pub enum GatewayError {
    #[error(
        "gateway id {0:?} is invalid: use 1 to 64 characters of a-z, A-Z, 0-9, '.', '_' or '-'"
    )]
    InvalidId(String),
    #[error("a gateway with id {0:?} already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A gateway as listed by the API (never with its secret).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Gateway {
    pub id: String,
    pub name: String,
    pub created_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub last_sequence: Option<i64>,
    /// The highest watermark (`polled_through_ms`) of any stored batch.
    pub polled_through_ms: Option<i64>,
}

/// A newly created gateway and the credential to configure it with. The
/// credential is shown once; only its hash is stored.
pub struct NewGateway {
    pub id: String,
    pub credential: String,
}

impl std::fmt::Debug for NewGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewGateway")
            .field("id", &self.id)
            .field("credential", &"***")
            .finish()
    }
}

pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn hash_secret(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Registers a gateway and returns its one-time credential.
pub async fn create(db: &Db, id: &str, name: &str) -> Result<NewGateway, GatewayError> {
    if !valid_id(id) {
        return Err(GatewayError::InvalidId(id.to_string()));
    }
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let secret = hex::encode(raw);
    let res = on_db!(db, p => sqlx::query(
        "INSERT INTO gateways (id, name, secret_sha256, created_ms) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (id) DO NOTHING")
        .bind(id).bind(name).bind(hash_secret(&secret)).bind(now_ms())
        .execute(p).await?.rows_affected());
    if res == 0 {
        return Err(GatewayError::Exists(id.to_string()));
    }
    Ok(NewGateway {
        id: id.to_string(),
        credential: dcmms_shared::api::gateway_credential(id, &secret),
    })
}

/// The gateway a request's `Authorization: Bearer <credential>` names, or
/// 401 saying what is wrong.
pub async fn from_headers(
    db: &Db,
    headers: &axum::http::HeaderMap,
) -> Result<String, crate::http::problem::AppError> {
    use crate::http::problem::AppError;
    let credential =
        crate::auth::extract::bearer(headers).ok_or_else(|| AppError::Unauthorized {
            detail: "send the gateway credential as 'Authorization: Bearer <credential>'".into(),
        })?;
    authenticate(db, credential)
        .await?
        .ok_or_else(|| AppError::Unauthorized {
            detail: "unknown gateway or wrong credential".into(),
        })
}

/// Checks a presented credential; returns the gateway id when it is valid.
pub async fn authenticate(db: &Db, credential: &str) -> Result<Option<String>, sqlx::Error> {
    let Some((id, secret)) = dcmms_shared::api::split_gateway_credential(credential) else {
        return Ok(None);
    };
    let stored: Option<String> = on_db!(db, p => sqlx::query(
        "SELECT secret_sha256 FROM gateways WHERE id = $1")
        .bind(id).fetch_optional(p).await?
        .map(|r| r.try_get::<String, _>(0)).transpose()?);
    let presented = hash_secret(secret);
    // Compare even when the id is unknown so timing does not reveal which ids exist.
    let expected = stored.as_deref().unwrap_or("");
    let ok = stored.is_some() && bool::from(presented.as_bytes().ct_eq(expected.as_bytes()));
    Ok(ok.then(|| id.to_string()))
}

pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<Vec<Gateway>, sqlx::Error> {
    on_db!(db, p => {
        let rows = sqlx::query(
            "SELECT id, name, created_ms, last_seen_ms, last_sequence, polled_through_ms \
             FROM gateways \
             ORDER BY id LIMIT $1 OFFSET $2")
            .bind(limit).bind(offset).fetch_all(p).await?;
        rows.iter().map(|r| Ok(Gateway {
            id: r.try_get(0)?,
            name: r.try_get(1)?,
            created_ms: r.try_get(2)?,
            last_seen_ms: r.try_get(3)?,
            last_sequence: r.try_get(4)?,
            polled_through_ms: r.try_get(5)?,
        })).collect()
    })
}

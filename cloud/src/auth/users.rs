//! Users and their credentials: argon2id password hashes, login sessions
//! and API tokens (random secrets stored as SHA-256).

use super::Role;
use crate::audit;
use crate::db::{Caches, Db};
use crate::gateways::now_ms;
use crate::{on_db, on_tx};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// How long a login session lasts.
pub const SESSION_TTL_MS: i64 = 12 * 3_600_000;
/// Prefix of every user token, so a leaked one is recognisable in a scan.
pub const TOKEN_PREFIX: &str = "dcmms_";

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("username {0:?} must be 3-64 characters of a-z, 0-9, '.', '_' or '-'")]
    BadUsername(String),
    #[error("password must be at least 12 characters")]
    WeakPassword,
    #[error("username {0:?} is taken")]
    Taken(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("no user with id {0}")]
    NotFound(i64),
    #[error("user {id} is at version {current}, not {sent}: read it again")]
    Stale { id: i64, current: i64, sent: i64 },
    #[error("{field}: {problem}")]
    BadField {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// A user as the API shows it (never the hash).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub active: bool,
    /// Rate card: hourly labour rate in paise, used for this user's time
    /// entries that name no rate; null when not set.
    pub hourly_rate_paise: Option<i64>,
    pub version: i64,
}

/// A change to a user (admins): only what is sent changes.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// The version read; a stale one is rejected (409).
    pub version: i64,
    pub display_name: Option<String>,
    /// Rate card, in paise per hour (0 to 10,000,000).
    pub hourly_rate_paise: Option<i64>,
}

/// Who is making a request: an authenticated, active user.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub user_id: i64,
    pub username: String,
    pub role: Role,
}

impl Principal {
    /// The audit log's `actor`.
    pub fn actor(&self) -> String {
        format!("user:{}", self.username)
    }
}

fn valid_username(s: &str) -> bool {
    (3..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

pub fn hash_password(password: &str) -> Result<String, UserError> {
    if password.chars().count() < 12 {
        return Err(UserError::WeakPassword);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| UserError::Hash(e.to_string()))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A password hash to verify against when the user does not exist, so a
/// login for an unknown name costs the same time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"decoy-password-never-used", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

type UserRow = (i64, String, String, String, bool, Option<i64>, i64);
/// A [`UserRow`] and the password hash (PHC string).
type UserWithHash = (i64, String, String, String, bool, Option<i64>, i64, String);

const USER_COLS: &str =
    "SELECT id, username, display_name, role, active, hourly_rate_paise, version FROM users";

fn to_user(r: UserRow) -> Option<User> {
    let (id, username, display_name, role, active, hourly_rate_paise, version) = r;
    Some(User {
        id,
        username,
        display_name,
        role: Role::parse(&role)?,
        active,
        hourly_rate_paise,
        version,
    })
}

/// Creates a user; `actor` is recorded in the audit log.
pub async fn create(
    db: &Db,
    caches: &Caches,
    actor: &str,
    username: &str,
    display_name: &str,
    role: Role,
    password: &str,
) -> Result<User, UserError> {
    if !valid_username(username) {
        return Err(UserError::BadUsername(username.to_string()));
    }
    let hash = hash_password(password)?;
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let taken: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT id FROM users WHERE username = $1")
        .bind(username).fetch_optional(c).await)?;
    if taken.is_some() {
        return Err(UserError::Taken(username.to_string()));
    }
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO users (username, display_name, role, password_hash, active, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $6, 1) RETURNING id")
        .bind(username).bind(display_name).bind(role.as_str()).bind(&hash).bind(true).bind(now)
        .fetch_one(c).await)
        .map_err(|e| match &e {
            // Lost a race with a concurrent create of the same name.
            sqlx::Error::Database(d) if d.is_unique_violation() => UserError::Taken(username.to_string()),
            _ => UserError::Db(e),
        })?;
    let user = User {
        id,
        username: username.to_string(),
        display_name: display_name.to_string(),
        role,
        active: true,
        hourly_rate_paise: None,
        version: 1,
    };
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor,
            action: "create",
            entity: "user",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&user).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<Vec<User>, sqlx::Error> {
    let sql = format!("{USER_COLS} ORDER BY id LIMIT $1 OFFSET $2");
    let rows: Vec<UserRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(limit).bind(offset).fetch_all(p).await)?;
    Ok(rows.into_iter().filter_map(to_user).collect())
}

/// Changes a user's display name and rate card (`actor` is audited with
/// the before and after); `u.version` must be the current version.
pub async fn update(
    db: &Db,
    caches: &Caches,
    actor: &str,
    id: i64,
    u: &UserUpdate,
) -> Result<User, UserError> {
    if let Some(name) = &u.display_name
        && (name.trim().is_empty() || name.chars().count() > 200)
    {
        return Err(UserError::BadField {
            field: "display_name",
            problem: "must be 1 to 200 characters".into(),
        });
    }
    if let Some(rate) = u.hourly_rate_paise
        && !(0..=crate::costs::MAX_RATE_PAISE).contains(&rate)
    {
        return Err(UserError::BadField {
            field: "hourly_rate_paise",
            problem: format!("must be between 0 and {}", crate::costs::MAX_RATE_PAISE),
        });
    }
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let sql = format!("{USER_COLS} WHERE id = $1");
    let row: Option<UserRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(id).fetch_optional(c).await)?;
    let before = row.and_then(to_user).ok_or(UserError::NotFound(id))?;
    if before.version != u.version {
        return Err(UserError::Stale {
            id,
            current: before.version,
            sent: u.version,
        });
    }
    let mut after = before.clone();
    if let Some(name) = &u.display_name {
        after.display_name = name.trim().to_string();
    }
    if let Some(rate) = u.hourly_rate_paise {
        after.hourly_rate_paise = Some(rate);
    }
    after.version += 1;
    let updated = on_tx!(tx, c => sqlx::query(
        "UPDATE users SET display_name = $1, hourly_rate_paise = $2, updated_ms = $3, version = $4 WHERE id = $5 AND version = $6")
        .bind(&after.display_name).bind(after.hourly_rate_paise).bind(now).bind(after.version)
        .bind(id).bind(before.version).execute(c).await.map(|r| r.rows_affected()))?;
    if updated != 1 {
        // A concurrent update committed first (Postgres re-checks the
        // version after waiting for its row lock).
        return Err(UserError::Stale {
            id,
            current: before.version + 1,
            sent: u.version,
        });
    }
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor,
            action: "update",
            entity: "user",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Checks a username and password; `Some(user)` only for an active user
/// with that password. Runs argon2 on a blocking thread either way.
pub async fn check_password(
    db: &Db,
    username: &str,
    password: &str,
) -> Result<Option<User>, sqlx::Error> {
    let row: Option<UserWithHash> = on_db!(db, p => sqlx::query_as(
        "SELECT id, username, display_name, role, active, hourly_rate_paise, version, password_hash FROM users WHERE username = $1")
        .bind(username).fetch_optional(p).await)?;
    let (user, phc) = match row {
        Some((id, u, d, r, a, rate, v, phc)) => (to_user((id, u, d, r, a, rate, v)), phc),
        None => (None, decoy_hash().to_string()),
    };
    let password = password.to_string();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &phc))
        .await
        .unwrap_or(false);
    Ok(user.filter(|u| ok && u.active))
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

/// Issues a token for `user_id`: a session (expires) or an API token
/// (until revoked). The secret is returned once and stored only hashed.
pub async fn issue_token(
    db: &Db,
    caches: &Caches,
    user_id: i64,
    kind: &str,
    name: &str,
    expires_ms: Option<i64>,
) -> Result<String, sqlx::Error> {
    let mut raw = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut raw);
    let secret = format!("{TOKEN_PREFIX}{}", hex::encode(raw));
    let mut tx = db.write(caches).await?;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO tokens (user_id, kind, name, secret_sha256, created_ms, expires_ms) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(user_id).bind(kind).bind(name).bind(sha256_hex(&secret)).bind(now_ms()).bind(expires_ms)
        .execute(c).await.map(|_| ()))?;
    tx.commit().await?;
    Ok(secret)
}

/// Revokes the token with this secret (logout).
pub async fn revoke_token(db: &Db, caches: &Caches, secret: &str) -> Result<(), sqlx::Error> {
    let mut tx = db.write(caches).await?;
    on_tx!(tx, c => sqlx::query("UPDATE tokens SET revoked_ms = $1 WHERE secret_sha256 = $2 AND revoked_ms IS NULL")
        .bind(now_ms()).bind(sha256_hex(secret)).execute(c).await.map(|_| ()))?;
    tx.commit().await
}

/// The active user behind a bearer token, if the token is valid now.
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<Principal>, sqlx::Error> {
    if !secret.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    let row: Option<(i64, String, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT u.id, u.username, u.role FROM tokens t JOIN users u ON u.id = t.user_id \
         WHERE t.secret_sha256 = $1 AND t.revoked_ms IS NULL \
         AND (t.expires_ms IS NULL OR t.expires_ms > $2) AND u.active")
        .bind(sha256_hex(secret)).bind(now_ms()).fetch_optional(p).await)?;
    Ok(row.and_then(|(user_id, username, role)| {
        Some(Principal {
            user_id,
            username,
            role: Role::parse(&role)?,
        })
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("correct horse battery", &h));
        assert!(!verify_password("correct horse battery!", &h));
        assert!(!verify_password("x", "not a phc string"));
        assert!(matches!(
            hash_password("short"),
            Err(UserError::WeakPassword)
        ));
    }

    #[test]
    fn usernames_are_plain() {
        assert!(valid_username("asha.k"));
        assert!(!valid_username("Asha"));
        assert!(!valid_username("a"));
        assert!(!valid_username("a b c"));
    }
}

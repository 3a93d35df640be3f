//! The append-only audit log: who changed what, when, with the record
//! before and after, hash-chained so that an edited, inserted or deleted
//! row is detected by [`verify`] (`dcmms-cloud audit verify`).
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and the row's
//! own fields (a JSON array, so field boundaries are unambiguous). The first
//! row chains to 64 zeros. Appends are serialised (a transaction-scoped
//! advisory lock on Postgres, the writer lock on SQLite) so the chain never
//! forks; the append commits with the change it describes.

use crate::db::{Db, WriteTx};
use crate::{on_db, on_tx};
use sha2::{Digest, Sha256};

/// seq, at_ms, actor, action, entity, entity_id, before, after, prev_hash, hash.
type AuditRow = (
    i64,
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    String,
    String,
);

/// The hash the first entry chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";
/// Postgres advisory lock key that serialises appends.
const APPEND_LOCK: i64 = 0x6463_6d6d_7361_7564; // "dcmmsaud"

/// One change, as the caller describes it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// `user:<id>` or `system:<component>`.
    pub actor: &'a str,
    /// `create`, `update`, `transition`, `delete`, …
    pub action: &'a str,
    /// Table-like name: `site`, `asset`, `work_order`, `user`.
    pub entity: &'a str,
    pub entity_id: &'a str,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log entry {seq}: {problem}")]
    Broken { seq: i64, problem: String },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

#[allow(clippy::too_many_arguments)]
fn entry_hash(
    prev: &str,
    seq: i64,
    at_ms: i64,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: Option<&str>,
    after: Option<&str>,
) -> String {
    let fields = serde_json::json!([seq, at_ms, actor, action, entity, entity_id, before, after]);
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(fields.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// Appends `change` inside `tx`; returns its sequence number.
pub async fn record(
    tx: &mut WriteTx<'_>,
    at_ms: i64,
    change: Change<'_>,
) -> Result<i64, sqlx::Error> {
    if tx.is_postgres() {
        on_tx!(tx, c => sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(APPEND_LOCK).execute(c).await.map(|_| ()))?;
    }
    let last: Option<(i64, String)> = on_tx!(tx, c => sqlx::query_as("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(c).await)?;
    let (prev_seq, prev_hash) = last.unwrap_or((0, GENESIS.to_string()));
    let seq = prev_seq + 1;
    let before = change.before.map(|v| v.to_string());
    let after = change.after.map(|v| v.to_string());
    let hash = entry_hash(
        &prev_hash,
        seq,
        at_ms,
        change.actor,
        change.action,
        change.entity,
        change.entity_id,
        before.as_deref(),
        after.as_deref(),
    );
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO audit_log (seq, at_ms, actor, action, entity, entity_id, before_json, after_json, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(seq).bind(at_ms).bind(change.actor).bind(change.action).bind(change.entity)
        .bind(change.entity_id).bind(&before).bind(&after).bind(&prev_hash).bind(&hash)
        .execute(c).await.map(|_| ()))?;
    Ok(seq)
}

/// Walks the whole chain; `Ok(entries)` if intact, else the first entry at
/// fault and why (a gap, a wrong link, or contents that no longer match).
pub async fn verify(db: &Db) -> Result<i64, AuditError> {
    const PAGE: i64 = 5000;
    let mut prev_hash = GENESIS.to_string();
    let mut expected = 1i64;
    loop {
        let rows: Vec<AuditRow> = on_db!(db, p => sqlx::query_as(
            "SELECT seq, at_ms, actor, action, entity, entity_id, before_json, after_json, prev_hash, hash \
             FROM audit_log WHERE seq >= $1 ORDER BY seq LIMIT $2")
            .bind(expected).bind(PAGE).fetch_all(p).await)?;
        if rows.is_empty() {
            // A deleted tail is only detectable against an external copy of
            // the last hash; `verify` reports what it has.
            return Ok(expected - 1);
        }
        for r in rows {
            let (seq, at_ms, actor, action, entity, entity_id, before, after, stored_prev, stored) =
                r;
            if seq != expected {
                return Err(AuditError::Broken {
                    seq: expected,
                    problem: format!("missing (next entry present is {seq})"),
                });
            }
            if stored_prev != prev_hash {
                return Err(AuditError::Broken {
                    seq,
                    problem: "does not link to the previous entry's hash".into(),
                });
            }
            let want = entry_hash(
                &prev_hash,
                seq,
                at_ms,
                &actor,
                &action,
                &entity,
                &entity_id,
                before.as_deref(),
                after.as_deref(),
            );
            if stored != want {
                return Err(AuditError::Broken {
                    seq,
                    problem: "contents were changed after it was written (hash mismatch)".into(),
                });
            }
            prev_hash = stored;
            expected += 1;
        }
    }
}

/// The newest entries, newest first, for the audit API.
pub async fn recent(db: &Db, limit: i64, offset: i64) -> Result<Vec<AuditEntry>, sqlx::Error> {
    let rows: Vec<AuditRow> = on_db!(db, p => sqlx::query_as(
        "SELECT seq, at_ms, actor, action, entity, entity_id, before_json, after_json, prev_hash, hash \
         FROM audit_log ORDER BY seq DESC LIMIT $1 OFFSET $2")
        .bind(limit).bind(offset).fetch_all(p).await)?;
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Ok(rows
        .into_iter()
        .map(
            |(seq, at_ms, actor, action, entity, entity_id, before, after, _, hash)| AuditEntry {
                seq,
                at_ms,
                actor,
                action,
                entity,
                entity_id,
                before: parse(before),
                after: parse(after),
                hash,
            },
        )
        .collect())
}

/// One audit entry as the API shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub seq: i64,
    pub at_ms: i64,
    pub actor: String,
    pub action: String,
    pub entity: String,
    pub entity_id: String,
    #[schema(value_type = Object)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Object)]
    pub after: Option<serde_json::Value>,
    pub hash: String,
}

/// `/api/v1/audit…`.
pub mod handlers {
    use super::AuditEntry;
    use crate::auth::{Permission, Principal};
    use crate::http::params::Params;
    use crate::http::problem::{AppError, Problem};
    use crate::http::{AppState, Page, page};
    use axum::Json;
    use axum::extract::{Query, State};
    use serde::Serialize;
    use std::collections::HashMap;
    use utoipa::ToSchema;

    /// The audit log, newest first.
    #[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
        params(("limit" = Option<i64>, Query, description = "Page size, 1 to 10000"),
               ("offset" = Option<i64>, Query, description = "Items to skip")),
        responses((status = 200, body = Page<AuditEntry>), (status = 403, body = Problem, content_type = "application/problem+json")))]
    pub async fn list(
        State(st): State<AppState>,
        who: Principal,
        Query(raw): Query<HashMap<String, String>>,
    ) -> Result<Json<Page<AuditEntry>>, AppError> {
        who.require(Permission::ReadAudit)?;
        let q = Params::new(raw, &["limit", "offset"])?;
        let (limit, offset) = q.page()?;
        Ok(Json(page(
            super::recent(&st.db, limit + 1, offset).await?,
            limit,
            offset,
        )))
    }

    #[derive(Debug, Serialize, ToSchema)]
    pub struct Verification {
        pub intact: bool,
        /// Entries checked (up to the first broken one).
        pub entries: i64,
        pub broken_at: Option<i64>,
        pub problem: Option<String>,
    }

    /// Re-walks the hash chain.
    #[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
        responses((status = 200, body = Verification), (status = 403, body = Problem, content_type = "application/problem+json")))]
    pub async fn verify(
        State(st): State<AppState>,
        who: Principal,
    ) -> Result<Json<Verification>, AppError> {
        who.require(Permission::ReadAudit)?;
        Ok(Json(match super::verify(&st.db).await {
            Ok(n) => Verification {
                intact: true,
                entries: n,
                broken_at: None,
                problem: None,
            },
            Err(super::AuditError::Broken { seq, problem }) => Verification {
                intact: false,
                entries: seq - 1,
                broken_at: Some(seq),
                problem: Some(problem),
            },
            Err(super::AuditError::Db(e)) => return Err(e.into()),
        }))
    }
}

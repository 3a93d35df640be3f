//! Comments on a work order: append-only, audited.

use super::store;
use crate::audit;
use crate::auth::Principal;
use crate::db::{Caches, Db};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::{on_db, on_tx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Comment {
    pub id: i64,
    pub work_order_id: i64,
    pub user_id: i64,
    pub body: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub body: String,
}

type Row = (i64, i64, i64, String, i64);

fn of(r: Row) -> Comment {
    Comment {
        id: r.0,
        work_order_id: r.1,
        user_id: r.2,
        body: r.3,
        created_ms: r.4,
    }
}

pub async fn add(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo: i64,
    n: &NewComment,
) -> Result<Comment, AppError> {
    if n.body.trim().is_empty() || n.body.chars().count() > 10_000 {
        return Err(AppError::bad_field("body", "must be 1 to 10000 characters"));
    }
    let mut tx = db.write(caches).await?;
    if store::get_in_tx(&mut tx, wo).await?.is_none() {
        return Err(AppError::not_found("work order", wo));
    }
    let now = now_ms();
    let r: Row = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO work_order_comments (work_order_id, user_id, body, created_ms) VALUES ($1, $2, $3, $4) \
         RETURNING id, work_order_id, user_id, body, created_ms")
        .bind(wo).bind(who.user_id).bind(&n.body).bind(now).fetch_one(c).await)?;
    let c = of(r);
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "comment",
            entity: "work_order_comment",
            entity_id: &c.id.to_string(),
            before: None,
            after: serde_json::to_value(&c).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(c)
}

/// Comments of a work order, oldest first.
pub async fn list(db: &Db, wo: i64, limit: i64, offset: i64) -> Result<Vec<Comment>, AppError> {
    let rows: Vec<Row> = on_db!(db, p => sqlx::query_as(
        "SELECT id, work_order_id, user_id, body, created_ms FROM work_order_comments WHERE work_order_id = $1 ORDER BY id LIMIT $2 OFFSET $3")
        .bind(wo).bind(limit).bind(offset).fetch_all(p).await)?;
    Ok(rows.into_iter().map(of).collect())
}

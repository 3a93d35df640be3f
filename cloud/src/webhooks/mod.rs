//! Outgoing webhooks (docs/specs/webhooks.md).
//!
//! - this file: subscriptions (URL, secret, event types), the outbox
//!   ([`enqueue`], called inside the transaction of the change, so an event
//!   is delivered if and only if its change committed), the signature;
//! - [`delivery`]: the background task that POSTs due deliveries, retries
//!   with exponential backoff and jitter, and dead-letters after the last
//!   attempt;
//! - [`handlers`]: `/api/v1/webhooks…` (manage_users: admins only).

pub mod delivery;
pub mod handlers;

use crate::audit;
use crate::auth::Principal;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::{on_db, on_tx};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use utoipa::ToSchema;

/// The event types a subscription may ask for.
pub const EVENTS: [&str; 5] = [
    "work_order.created",
    "work_order.status_changed",
    "alarm.raised",
    "alarm.cleared",
    "model.drift",
];

/// A webhook secret: never shown by `Debug` or logs; serialised only in
/// the creation response.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, the `X-Dcmms-Signature` value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret.as_bytes()) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A subscription as the API shows it (no secret).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Subscription {
    pub id: i64,
    pub url: String,
    pub events: Vec<String>,
    pub active: bool,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// The answer to a create: the subscription and its secret, shown once.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CreatedSubscription {
    #[serde(flatten)]
    pub subscription: Subscription,
    /// The HMAC key; shown only here.
    #[schema(value_type = String)]
    pub secret: Secret,
}

/// A new subscription.
#[derive(Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    pub url: String,
    pub events: Vec<String>,
    /// 16 to 200 characters; generated when absent.
    pub secret: Option<String>,
}

impl std::fmt::Debug for NewSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSubscription")
            .field("url", &self.url)
            .field("events", &self.events)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A change: the fields to change and the version read.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionEdit {
    pub version: i64,
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    pub active: Option<bool>,
}

/// One delivery (one event to one subscription) and how it went.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Delivery {
    /// Also the `X-Dcmms-Delivery` header.
    pub id: i64,
    pub subscription_id: i64,
    pub event: String,
    /// `pending`, `delivered` or `dead` (dead-lettered after the last attempt).
    pub status: String,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    /// HTTP status of the last attempt, if the endpoint answered.
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub created_ms: i64,
    pub delivered_ms: Option<i64>,
    /// The body as sent.
    #[schema(value_type = Object)]
    pub body: serde_json::Value,
}

fn check_url(url: &str) -> Result<(), AppError> {
    let u = reqwest::Url::parse(url)
        .map_err(|e| AppError::bad_field("url", format!("not a URL: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || url.len() > 2000 {
        return Err(AppError::bad_field(
            "url",
            "must be an http:// or https:// URL with a host, at most 2000 characters",
        ));
    }
    Ok(())
}

fn check_events(events: &[String]) -> Result<(), AppError> {
    if events.is_empty() {
        return Err(AppError::bad_field(
            "events",
            "name at least one event type",
        ));
    }
    if let Some(bad) = events.iter().find(|e| !EVENTS.contains(&e.as_str())) {
        return Err(AppError::bad_field(
            "events",
            format!("{bad:?}: one of {}", EVENTS.join(", ")),
        ));
    }
    Ok(())
}

type SubRow = (i64, String, String, bool, i64, i64, i64);
const SUB_COLS: &str = "id, url, events, active, created_ms, updated_ms, version";

fn sub_of(r: SubRow) -> Subscription {
    Subscription {
        id: r.0,
        url: r.1,
        events: serde_json::from_str(&r.2).unwrap_or_default(),
        active: r.3,
        created_ms: r.4,
        updated_ms: r.5,
        version: r.6,
    }
}

/// Queues `event` with `data` for every active subscription that wants it,
/// inside `tx`: the delivery commits (or not) with the change it reports.
/// Alarms and work orders call this.
pub async fn enqueue(
    tx: &mut WriteTx<'_>,
    event: &str,
    data: serde_json::Value,
    now: i64,
) -> Result<(), sqlx::Error> {
    let subs: Vec<(i64, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id, events FROM webhook_subscriptions WHERE active ORDER BY id")
        .fetch_all(c).await)?;
    for (sub, events) in subs {
        let wanted: Vec<String> = serde_json::from_str(&events).unwrap_or_default();
        if !wanted.iter().any(|e| e == event) {
            continue;
        }
        let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
            "INSERT INTO webhook_deliveries (subscription_id, event, body, status, attempts, next_attempt_ms, created_ms) \
             VALUES ($1, $2, '', 'pending', 0, $3, $3) RETURNING id")
            .bind(sub).bind(event).bind(now).fetch_one(c).await)?;
        // The id is part of the signed body, so receivers can de-duplicate.
        let body = serde_json::json!({
            "delivery_id": id,
            "event": event,
            "occurred_ms": now,
            "data": &data,
        })
        .to_string();
        on_tx!(tx, c => sqlx::query("UPDATE webhook_deliveries SET body = $1 WHERE id = $2")
            .bind(body).bind(id).execute(c).await.map(|_| ()))?;
    }
    Ok(())
}

pub async fn create(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    n: &NewSubscription,
) -> Result<CreatedSubscription, AppError> {
    check_url(&n.url)?;
    check_events(&n.events)?;
    let secret = match &n.secret {
        Some(s) if !(16..=200).contains(&s.chars().count()) => {
            return Err(AppError::bad_field("secret", "16 to 200 characters"));
        }
        Some(s) => s.clone(),
        None => format!("whsec_{}", hex::encode(rand::random::<[u8; 24]>())),
    };
    let events = serde_json::to_string(&n.events).map_err(|e| AppError::Internal(e.into()))?;
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let sql = format!(
        "INSERT INTO webhook_subscriptions (url, secret, events, active, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, TRUE, $4, $4, 1) RETURNING {SUB_COLS}"
    );
    let r: SubRow = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(&n.url).bind(&secret).bind(&events).bind(now).fetch_one(c).await)?;
    let s = sub_of(r);
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "create",
            entity: "webhook_subscription",
            entity_id: &s.id.to_string(),
            before: None,
            after: serde_json::to_value(&s).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(CreatedSubscription {
        subscription: s,
        secret: Secret(secret),
    })
}

pub async fn get(db: &Db, id: i64) -> Result<Option<Subscription>, AppError> {
    let sql = format!("SELECT {SUB_COLS} FROM webhook_subscriptions WHERE id = $1");
    let r: Option<SubRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
    Ok(r.map(sub_of))
}

pub async fn list(db: &Db, limit: i64, offset: i64) -> Result<Vec<Subscription>, AppError> {
    let sql =
        format!("SELECT {SUB_COLS} FROM webhook_subscriptions ORDER BY id LIMIT $1 OFFSET $2");
    let rows: Vec<SubRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(limit).bind(offset).fetch_all(p).await)?;
    Ok(rows.into_iter().map(sub_of).collect())
}

pub async fn update(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
    e: &SubscriptionEdit,
) -> Result<Subscription, AppError> {
    let mut tx = db.write(caches).await?;
    let sql = format!("SELECT {SUB_COLS} FROM webhook_subscriptions WHERE id = $1");
    let r: Option<SubRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?;
    let before = r
        .map(sub_of)
        .ok_or_else(|| AppError::not_found("webhook", id))?;
    if before.version != e.version {
        return Err(AppError::stale(e.version, before.version));
    }
    let mut s = before.clone();
    if let Some(u) = &e.url {
        check_url(u)?;
        s.url = u.clone();
    }
    if let Some(ev) = &e.events {
        check_events(ev)?;
        s.events = ev.clone();
    }
    if let Some(a) = e.active {
        s.active = a;
    }
    s.version += 1;
    s.updated_ms = now_ms();
    let events = serde_json::to_string(&s.events).map_err(|e| AppError::Internal(e.into()))?;
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE webhook_subscriptions SET url = $1, events = $2, active = $3, updated_ms = $4, version = version + 1 WHERE id = $5 AND version = $6")
        .bind(&s.url).bind(&events).bind(s.active).bind(s.updated_ms).bind(id).bind(e.version)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(e.version, e.version + 1));
    }
    audit::record(
        &mut tx,
        s.updated_ms,
        audit::Change {
            actor: &who.actor(),
            action: "update",
            entity: "webhook_subscription",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&s).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

type DeliveryRow = (
    i64,
    i64,
    String,
    String,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    i64,
    Option<i64>,
    String,
);

/// Deliveries of a subscription, newest first, optionally of one status.
pub async fn deliveries(
    db: &Db,
    sub: i64,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Delivery>, AppError> {
    deliveries_where(db, sub, None, status, limit, offset).await
}

async fn deliveries_where(
    db: &Db,
    sub: i64,
    id: Option<i64>,
    status: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Delivery>, AppError> {
    let rows: Vec<DeliveryRow> = on_db!(db, p => sqlx::query_as(
        "SELECT id, subscription_id, event, status, attempts, next_attempt_ms, last_status, last_error, created_ms, delivered_ms, body \
         FROM webhook_deliveries WHERE subscription_id = $1 AND ($2 IS NULL OR status = $2) AND ($5 IS NULL OR id = $5) \
         ORDER BY id DESC LIMIT $3 OFFSET $4")
        .bind(sub).bind(status).bind(limit).bind(offset).bind(id).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|r| Delivery {
            id: r.0,
            subscription_id: r.1,
            event: r.2,
            status: r.3,
            attempts: r.4,
            next_attempt_ms: r.5,
            last_status: r.6,
            last_error: r.7,
            created_ms: r.8,
            delivered_ms: r.9,
            body: serde_json::from_str(&r.10).unwrap_or(serde_json::Value::Null),
        })
        .collect())
}

/// Puts a dead letter back in the queue with a fresh attempt budget
/// (409 unless it is dead); audited.
pub async fn redeliver(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    sub: i64,
    id: i64,
) -> Result<Delivery, AppError> {
    let mut tx = db.write(caches).await?;
    let row: Option<(String,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT status FROM webhook_deliveries WHERE id = $1 AND subscription_id = $2")
        .bind(id).bind(sub).fetch_optional(c).await)?;
    let Some((status,)) = row else {
        return Err(AppError::not_found(
            &format!("delivery of webhook {sub}"),
            id,
        ));
    };
    if status != "dead" {
        return Err(AppError::Conflict {
            kind: "delivery-not-dead",
            detail: format!("delivery {id} is {status}: only a dead letter is redelivered"),
            field: None,
        });
    }
    let now = now_ms();
    on_tx!(tx, c => sqlx::query(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_ms = $1 WHERE id = $2")
        .bind(now).bind(id).execute(c).await.map(|_| ()))?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "redeliver",
            entity: "webhook_delivery",
            entity_id: &id.to_string(),
            before: Some(serde_json::json!({ "status": status })),
            after: Some(serde_json::json!({ "status": "pending" })),
        },
    )
    .await?;
    tx.commit().await?;
    deliveries_where(db, sub, Some(id), None, 1, 0)
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found("delivery", id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(format!("{:?}", Secret("x".into())), "Secret(***)");
        let c = CreatedSubscription {
            subscription: Subscription {
                id: 1,
                url: "http://h/".into(),
                events: vec![],
                active: true,
                created_ms: 0,
                updated_ms: 0,
                version: 1,
            },
            secret: Secret("hunter2hunter2hunter2".into()),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(serde_json::to_string(&c).is_ok_and(|j| j.contains("hunter2hunter2hunter2")));
    }
}

//! Parts and inventory (docs/specs/inventory-and-costs.md): the parts
//! catalogue, stores (one or more per site), stock per (store, part),
//! reservations of stock for a work order, their consumption when the
//! order is COMPLETED and release when it is CANCELLED, and the reorder
//! notification.
//!
//! - this file: the records, their validation and the store;
//! - [`handlers`]: `/api/v1/parts…`, `/api/v1/stores…`, `/api/v1/stock…`,
//!   `/api/v1/…/reservations…`, `/api/v1/notifications`.
//!
//! Never negative: every change of `on_hand` or `reserved` checks and
//! changes in one conditional `UPDATE` (zero rows = refused), so two
//! concurrent requests cannot both take the last unit; the table's CHECK
//! (`reserved <= on_hand`, both `>= 0`) is the second line.
//!
//! Lock order on Postgres (no deadlocks): work order row, then stock rows
//! in (store, part) order, then the audit log's advisory lock (audit last).

pub mod handlers;

use crate::assets::conflict_if_duplicate;
use crate::audit;
use crate::auth::Principal;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::params::Filters;
use crate::http::problem::AppError;
use crate::work_orders::store::lock_for_costs;
use crate::{bind_all, on_db, on_tx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest quantity in one request (whole units of the part's unit).
pub const MAX_QUANTITY: i64 = 1_000_000_000;
/// Largest unit cost, in paise (₹10 crore).
pub const MAX_UNIT_COST_PAISE: i64 = 10_000_000_000;

/// A catalogue entry.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, sqlx::FromRow)]
pub struct Part {
    pub id: i64,
    /// Unique, e.g. `SMA-FAN-100`.
    pub part_number: String,
    pub name: String,
    /// What one unit is: `each`, `m`, `kg`, `l`, …; quantities are whole units.
    pub unit: String,
    /// Cost of one unit in paise (1/100 INR).
    pub unit_cost_paise: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPart {
    pub part_number: String,
    pub name: String,
    pub unit: String,
    pub unit_cost_paise: i64,
}

/// A change to a part; send the `version` you read.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartEdit {
    pub version: i64,
    pub name: Option<String>,
    pub unit: Option<String>,
    pub unit_cost_paise: Option<i64>,
}

/// A store (warehouse, container) at a site.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, sqlx::FromRow)]
pub struct Store {
    pub id: i64,
    pub site_id: i64,
    pub name: String,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewStore {
    pub site_id: i64,
    pub name: String,
}

/// Stock of one part in one store.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, sqlx::FromRow)]
pub struct Stock {
    pub store_id: i64,
    pub part_id: i64,
    /// Units in the store (including reserved ones).
    pub on_hand: i64,
    /// Units set aside for open work orders.
    pub reserved: i64,
    /// `on_hand - reserved`: what can still be reserved.
    pub available: i64,
    /// A notification is raised when `on_hand` falls to or below this.
    pub reorder_point: i64,
    /// How much to order when it is (advisory).
    pub reorder_qty: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// Goods received into a store (creates the stock row on first receipt).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub part_id: i64,
    /// Units received, at least 1.
    pub quantity: i64,
    /// Delivery note, PO number, …
    #[serde(default)]
    pub reference: String,
}

/// A correction after a count (`delta` may be negative).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    pub part_id: i64,
    pub delta: i64,
    pub reason: String,
}

/// Reorder settings of a stock row; send the `version` you read.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockSettings {
    pub version: i64,
    pub reorder_point: Option<i64>,
    pub reorder_qty: Option<i64>,
}

/// Parts set aside for a work order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, sqlx::FromRow)]
pub struct Reservation {
    pub id: i64,
    pub work_order_id: i64,
    pub store_id: i64,
    pub part_id: i64,
    pub quantity: i64,
    /// `reserved`, `consumed` or `released`.
    pub state: String,
    /// Unit cost in paise: at reservation, then fixed at consumption.
    pub unit_cost_paise: i64,
    pub created_by: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewReservation {
    pub store_id: i64,
    pub part_id: i64,
    /// Units, at least 1.
    pub quantity: i64,
}

/// Something an operator should act on (today: `reorder`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, sqlx::FromRow)]
pub struct Notification {
    pub id: i64,
    pub kind: String,
    pub part_id: i64,
    pub store_id: i64,
    /// `on_hand` when it was raised.
    pub on_hand: i64,
    pub reorder_point: i64,
    pub reorder_qty: i64,
    pub created_ms: i64,
}

pub(crate) const PART_COLS: &str = "SELECT id, part_number, name, unit, unit_cost_paise, created_ms, updated_ms, version FROM parts";
pub(crate) const STORE_COLS: &str = "SELECT id, site_id, name, created_ms FROM stores";
pub(crate) const STOCK_COLS: &str = "SELECT store_id, part_id, on_hand, reserved, on_hand - reserved AS available, \
     reorder_point, reorder_qty, updated_ms, version FROM stock";
pub(crate) const RESERVATION_COLS: &str = "SELECT id, work_order_id, store_id, part_id, quantity, state, unit_cost_paise, \
     created_by, created_ms, updated_ms FROM reservations";
pub(crate) const NOTIFICATION_COLS: &str = "SELECT id, kind, part_id, store_id, on_hand, reorder_point, reorder_qty, created_ms FROM notifications";

/// A row type readable from either database.
pub trait AnyRow:
    for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + Send
    + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + Send
        + Unpin
{
}

/// One page of `select` with filters, sorted by `sort` then `tiebreak`.
pub(crate) async fn list_of<R: AnyRow>(
    db: &Db,
    select: &str,
    f: &Filters,
    sort: (&str, bool),
    tiebreak: &str,
    limit: i64,
    offset: i64,
) -> Result<Vec<R>, AppError> {
    let n = f.next();
    let sql = format!(
        "{select}{} ORDER BY {} {}, {tiebreak} LIMIT ${n} OFFSET ${}",
        f.sql(),
        sort.0,
        if sort.1 { "DESC" } else { "ASC" },
        n + 1
    );
    Ok(
        on_db!(db, p => bind_all!(sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql.as_str())), &f.binds)
        .bind(limit).bind(offset).fetch_all(p).await)?,
    )
}

/// One row of `select` (which ends in a `WHERE` with `$1`, `$2`) in `tx`.
async fn one_in_tx<R: AnyRow>(
    tx: &mut WriteTx<'_>,
    sql: &str,
    a: i64,
    b: Option<i64>,
) -> Result<Option<R>, AppError> {
    Ok(on_tx!(tx, c => {
        let q = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
        let q = q.bind(a);
        let q = match b { Some(b) => q.bind(b), None => q };
        q.fetch_optional(c).await
    })?)
}

async fn one<R: AnyRow>(db: &Db, sql: &str, a: i64, b: Option<i64>) -> Result<Option<R>, AppError> {
    Ok(on_db!(db, p => {
        let q = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
        let q = q.bind(a);
        let q = match b { Some(b) => q.bind(b), None => q };
        q.fetch_optional(p).await
    })?)
}

fn text(field: &str, v: &str, min: usize, max: usize) -> Result<(), AppError> {
    let n = v.chars().count();
    if (min > 0 && v.trim().is_empty()) || n < min || n > max {
        return Err(AppError::bad_field(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    Ok(())
}

fn range(field: &str, v: i64, lo: i64, hi: i64) -> Result<(), AppError> {
    if !(lo..=hi).contains(&v) {
        return Err(AppError::bad_field(
            field,
            format!("must be between {lo} and {hi}"),
        ));
    }
    Ok(())
}

/// A CHECK violation on `stock` (the second line of the never-negative
/// rule) is the client's conflict, not our failure.
fn stock_check(e: sqlx::Error, field: &str) -> AppError {
    match &e {
        sqlx::Error::Database(d) if d.is_check_violation() => AppError::Conflict {
            kind: "insufficient-stock",
            detail: "the change would make stock negative or below what is reserved".into(),
            field: Some(field.into()),
        },
        _ => e.into(),
    }
}

fn json<T: Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

async fn record(
    tx: &mut WriteTx<'_>,
    actor: &str,
    action: &str,
    entity: &str,
    entity_id: &str,
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> Result<(), AppError> {
    audit::record(
        tx,
        now_ms(),
        audit::Change {
            actor,
            action,
            entity,
            entity_id,
            before,
            after,
        },
    )
    .await?;
    Ok(())
}

fn check_part(p: &Part) -> Result<(), AppError> {
    text("part_number", &p.part_number, 1, 64)?;
    text("name", &p.name, 1, 200)?;
    text("unit", &p.unit, 1, 16)?;
    range("unit_cost_paise", p.unit_cost_paise, 0, MAX_UNIT_COST_PAISE)
}

pub async fn create_part(
    db: &Db,
    caches: &Caches,
    actor: &str,
    n: &NewPart,
) -> Result<Part, AppError> {
    let now = now_ms();
    let mut p = Part {
        id: 0,
        part_number: n.part_number.clone(),
        name: n.name.clone(),
        unit: n.unit.clone(),
        unit_cost_paise: n.unit_cost_paise,
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    check_part(&p)?;
    let mut tx = db.write(caches).await?;
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO parts (part_number, name, unit, unit_cost_paise, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $5, 1) RETURNING id")
        .bind(&p.part_number).bind(&p.name).bind(&p.unit).bind(p.unit_cost_paise).bind(now)
        .fetch_one(c).await).map_err(|e| conflict_if_duplicate(e, "part_number"))?;
    p.id = id;
    record(
        &mut tx,
        actor,
        "create",
        "part",
        &id.to_string(),
        None,
        json(&p),
    )
    .await?;
    tx.commit().await?;
    Ok(p)
}

pub async fn update_part(
    db: &Db,
    caches: &Caches,
    actor: &str,
    id: i64,
    e: &PartEdit,
) -> Result<Part, AppError> {
    let mut tx = db.write(caches).await?;
    let sql = format!("{PART_COLS} WHERE id = $1");
    let before: Part = one_in_tx(&mut tx, &sql, id, None)
        .await?
        .ok_or_else(|| AppError::not_found("part", id))?;
    if before.version != e.version {
        return Err(AppError::stale(e.version, before.version));
    }
    let mut p = before.clone();
    if let Some(v) = &e.name {
        p.name = v.clone();
    }
    if let Some(v) = &e.unit {
        p.unit = v.clone();
    }
    if let Some(v) = e.unit_cost_paise {
        p.unit_cost_paise = v;
    }
    check_part(&p)?;
    p.version += 1;
    p.updated_ms = now_ms();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE parts SET name = $1, unit = $2, unit_cost_paise = $3, updated_ms = $4, version = version + 1 WHERE id = $5 AND version = $6")
        .bind(&p.name).bind(&p.unit).bind(p.unit_cost_paise).bind(p.updated_ms).bind(id).bind(e.version)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(e.version, e.version + 1));
    }
    record(
        &mut tx,
        actor,
        "update",
        "part",
        &id.to_string(),
        json(&before),
        json(&p),
    )
    .await?;
    tx.commit().await?;
    Ok(p)
}

pub async fn get_part(db: &Db, id: i64) -> Result<Option<Part>, AppError> {
    one(db, &format!("{PART_COLS} WHERE id = $1"), id, None).await
}

pub async fn create_store(
    db: &Db,
    caches: &Caches,
    actor: &str,
    n: &NewStore,
) -> Result<Store, AppError> {
    text("name", &n.name, 1, 200)?;
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let site: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT id FROM sites WHERE id = $1").bind(n.site_id).fetch_optional(c).await)?;
    if site.is_none() {
        return Err(AppError::bad_field(
            "site_id",
            format!("no site with id {}", n.site_id),
        ));
    }
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO stores (site_id, name, created_ms) VALUES ($1, $2, $3) RETURNING id")
        .bind(n.site_id).bind(&n.name).bind(now).fetch_one(c).await)
    .map_err(|e| conflict_if_duplicate(e, "name"))?;
    let s = Store {
        id,
        site_id: n.site_id,
        name: n.name.clone(),
        created_ms: now,
    };
    record(
        &mut tx,
        actor,
        "create",
        "store",
        &id.to_string(),
        None,
        json(&s),
    )
    .await?;
    tx.commit().await?;
    Ok(s)
}

pub async fn get_store(db: &Db, id: i64) -> Result<Option<Store>, AppError> {
    one(db, &format!("{STORE_COLS} WHERE id = $1"), id, None).await
}

async fn stock_in_tx(
    tx: &mut WriteTx<'_>,
    store_id: i64,
    part_id: i64,
) -> Result<Option<Stock>, AppError> {
    let sql = format!("{STOCK_COLS} WHERE store_id = $1 AND part_id = $2");
    one_in_tx(tx, &sql, store_id, Some(part_id)).await
}

pub async fn get_stock(db: &Db, store_id: i64, part_id: i64) -> Result<Option<Stock>, AppError> {
    let sql = format!("{STOCK_COLS} WHERE store_id = $1 AND part_id = $2");
    one(db, &sql, store_id, Some(part_id)).await
}

/// 404 for a missing store in the path, 400 naming `part_id` for a missing part.
async fn check_store_part(
    tx: &mut WriteTx<'_>,
    store_id: i64,
    part_id: i64,
    store_is_path: bool,
) -> Result<Part, AppError> {
    let s: Option<Store> =
        one_in_tx(tx, &format!("{STORE_COLS} WHERE id = $1"), store_id, None).await?;
    if s.is_none() {
        return Err(if store_is_path {
            AppError::not_found("store", store_id)
        } else {
            AppError::bad_field("store_id", format!("no store with id {store_id}"))
        });
    }
    one_in_tx(tx, &format!("{PART_COLS} WHERE id = $1"), part_id, None)
        .await?
        .ok_or_else(|| AppError::bad_field("part_id", format!("no part with id {part_id}")))
}

/// Raises the reorder notification of a stock row if `on_hand` is at or
/// below its reorder point and it is not raised already (once per
/// crossing: the latch is cleared when stock is received above the point).
async fn reorder_check(
    tx: &mut WriteTx<'_>,
    store_id: i64,
    part_id: i64,
    now: i64,
) -> Result<(), AppError> {
    let hit: Option<(i64, i64, i64)> = on_tx!(tx, c => sqlx::query_as(
        "UPDATE stock SET reorder_raised = 1 WHERE store_id = $1 AND part_id = $2 AND reorder_raised = 0 \
         AND on_hand <= reorder_point RETURNING on_hand, reorder_point, reorder_qty")
        .bind(store_id).bind(part_id).fetch_optional(c).await)?;
    if let Some((on_hand, point, qty)) = hit {
        on_tx!(tx, c => sqlx::query(
            "INSERT INTO notifications (kind, part_id, store_id, on_hand, reorder_point, reorder_qty, created_ms) \
             VALUES ('reorder', $1, $2, $3, $4, $5, $6)")
            .bind(part_id).bind(store_id).bind(on_hand).bind(point).bind(qty).bind(now)
            .execute(c).await.map(|_| ()))?;
        tracing::info!(
            store_id,
            part_id,
            on_hand,
            reorder_point = point,
            "reorder point reached"
        );
    }
    Ok(())
}

/// Receives goods into a store (creating the stock row on first receipt);
/// stock back above the reorder point re-arms its notification.
pub async fn receive(
    db: &Db,
    caches: &Caches,
    actor: &str,
    store_id: i64,
    r: &Receipt,
) -> Result<Stock, AppError> {
    range("quantity", r.quantity, 1, MAX_QUANTITY)?;
    text("reference", &r.reference, 0, 200)?;
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    check_store_part(&mut tx, store_id, r.part_id, true).await?;
    let before = stock_in_tx(&mut tx, store_id, r.part_id).await?;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO stock (store_id, part_id, on_hand, reserved, reorder_point, reorder_qty, reorder_raised, updated_ms, version) \
         VALUES ($1, $2, $3, 0, 0, 0, 0, $4, 1) \
         ON CONFLICT (store_id, part_id) DO UPDATE SET on_hand = stock.on_hand + excluded.on_hand, \
         reorder_raised = CASE WHEN stock.on_hand + excluded.on_hand > stock.reorder_point THEN 0 ELSE stock.reorder_raised END, \
         updated_ms = excluded.updated_ms, version = stock.version + 1")
        .bind(store_id).bind(r.part_id).bind(r.quantity).bind(now)
        .execute(c).await.map(|_| ())).map_err(|e| stock_check(e, "quantity"))?;
    let after = stock_in_tx(&mut tx, store_id, r.part_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stock row vanished")))?;
    let mut rec = json(&after);
    if let Some(serde_json::Value::Object(m)) = &mut rec {
        m.insert("received".into(), r.quantity.into());
        m.insert("reference".into(), r.reference.clone().into());
    }
    record(
        &mut tx,
        actor,
        "receive",
        "stock",
        &format!("{store_id}/{}", r.part_id),
        before.as_ref().and_then(json),
        rec,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Corrects stock after a count; refused (409 naming `delta`) if it would
/// leave `on_hand` below zero or below what is reserved.
pub async fn adjust(
    db: &Db,
    caches: &Caches,
    actor: &str,
    store_id: i64,
    a: &Adjustment,
) -> Result<Stock, AppError> {
    range("delta", a.delta, -MAX_QUANTITY, MAX_QUANTITY)?;
    if a.delta == 0 {
        return Err(AppError::bad_field("delta", "must not be 0"));
    }
    text("reason", &a.reason, 1, 500)?;
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    check_store_part(&mut tx, store_id, a.part_id, true).await?;
    let before = stock_in_tx(&mut tx, store_id, a.part_id)
        .await?
        .ok_or_else(|| {
            AppError::bad_field(
                "part_id",
                format!("store {store_id} has no stock of part {}", a.part_id),
            )
        })?;
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE stock SET on_hand = on_hand + $1, \
         reorder_raised = CASE WHEN on_hand + $1 > reorder_point THEN 0 ELSE reorder_raised END, \
         updated_ms = $2, version = version + 1 \
         WHERE store_id = $3 AND part_id = $4 AND on_hand + $1 >= reserved AND on_hand + $1 >= 0")
        .bind(a.delta).bind(now).bind(store_id).bind(a.part_id)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(|e| stock_check(e, "delta"))?;
    if n != 1 {
        return Err(AppError::Conflict {
            kind: "insufficient-stock",
            detail: format!(
                "an adjustment of {} would leave on_hand below zero or below the {} units reserved (on_hand {})",
                a.delta, before.reserved, before.on_hand
            ),
            field: Some("delta".into()),
        });
    }
    reorder_check(&mut tx, store_id, a.part_id, now).await?;
    let after = stock_in_tx(&mut tx, store_id, a.part_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stock row vanished")))?;
    let mut rec = json(&after);
    if let Some(serde_json::Value::Object(m)) = &mut rec {
        m.insert("delta".into(), a.delta.into());
        m.insert("reason".into(), a.reason.clone().into());
    }
    record(
        &mut tx,
        actor,
        "adjust",
        "stock",
        &format!("{store_id}/{}", a.part_id),
        json(&before),
        rec,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Changes a stock row's reorder point and quantity (with its version).
pub async fn update_settings(
    db: &Db,
    caches: &Caches,
    actor: &str,
    store_id: i64,
    part_id: i64,
    s: &StockSettings,
) -> Result<Stock, AppError> {
    let mut tx = db.write(caches).await?;
    let before = stock_in_tx(&mut tx, store_id, part_id)
        .await?
        .ok_or_else(|| AppError::NotFound {
            detail: format!("store {store_id} has no stock of part {part_id}"),
        })?;
    if before.version != s.version {
        return Err(AppError::stale(s.version, before.version));
    }
    let point = s.reorder_point.unwrap_or(before.reorder_point);
    let qty = s.reorder_qty.unwrap_or(before.reorder_qty);
    range("reorder_point", point, 0, MAX_QUANTITY)?;
    range("reorder_qty", qty, 0, MAX_QUANTITY)?;
    let now = now_ms();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE stock SET reorder_point = $1, reorder_qty = $2, \
         reorder_raised = CASE WHEN on_hand > $1 THEN 0 ELSE reorder_raised END, updated_ms = $3, version = version + 1 \
         WHERE store_id = $4 AND part_id = $5 AND version = $6")
        .bind(point).bind(qty).bind(now).bind(store_id).bind(part_id).bind(s.version)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(s.version, s.version + 1));
    }
    let after = stock_in_tx(&mut tx, store_id, part_id)
        .await?
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("stock row vanished")))?;
    record(
        &mut tx,
        actor,
        "update",
        "stock",
        &format!("{store_id}/{part_id}"),
        json(&before),
        json(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Reserves stock for a work order: one conditional `UPDATE` checks
/// availability and takes it, so concurrent reservations never overdraw
/// (409 `insufficient-stock` naming `quantity`).
pub async fn reserve(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo_id: i64,
    r: &NewReservation,
) -> Result<Reservation, AppError> {
    range("quantity", r.quantity, 1, MAX_QUANTITY)?;
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let wo = lock_for_costs(&mut tx, who, wo_id, "reserve parts").await?;
    if wo.status == "COMPLETED" {
        return Err(AppError::Conflict {
            kind: "work-order-completed",
            detail: format!(
                "work order {wo_id} is COMPLETED and its parts are consumed; reopen it to reserve more"
            ),
            field: None,
        });
    }
    let part = check_store_part(&mut tx, r.store_id, r.part_id, false).await?;
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE stock SET reserved = reserved + $1, updated_ms = $2, version = version + 1 \
         WHERE store_id = $3 AND part_id = $4 AND on_hand - reserved >= $1")
        .bind(r.quantity).bind(now).bind(r.store_id).bind(r.part_id)
        .execute(c).await.map(|r| r.rows_affected()))
    .map_err(|e| stock_check(e, "quantity"))?;
    if n != 1 {
        let available = stock_in_tx(&mut tx, r.store_id, r.part_id)
            .await?
            .map_or(0, |s| s.available);
        return Err(AppError::Conflict {
            kind: "insufficient-stock",
            detail: format!(
                "insufficient stock: {available} {} of {} available in store {}, {} asked for",
                part.unit, part.part_number, r.store_id, r.quantity
            ),
            field: Some("quantity".into()),
        });
    }
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO reservations (work_order_id, store_id, part_id, quantity, state, unit_cost_paise, created_by, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, 'reserved', $5, $6, $7, $7) RETURNING id")
        .bind(wo_id).bind(r.store_id).bind(r.part_id).bind(r.quantity).bind(part.unit_cost_paise)
        .bind(who.user_id).bind(now).fetch_one(c).await)?;
    let res = Reservation {
        id,
        work_order_id: wo_id,
        store_id: r.store_id,
        part_id: r.part_id,
        quantity: r.quantity,
        state: "reserved".into(),
        unit_cost_paise: part.unit_cost_paise,
        created_by: who.user_id,
        created_ms: now,
        updated_ms: now,
    };
    record(
        &mut tx,
        &who.actor(),
        "reserve",
        "reservation",
        &id.to_string(),
        None,
        json(&res),
    )
    .await?;
    tx.commit().await?;
    Ok(res)
}

pub async fn get_reservation(db: &Db, id: i64) -> Result<Option<Reservation>, AppError> {
    one(db, &format!("{RESERVATION_COLS} WHERE id = $1"), id, None).await
}

/// Releases one reservation by hand (parts not needed after all).
pub async fn release_one(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
) -> Result<Reservation, AppError> {
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let sql = format!("{RESERVATION_COLS} WHERE id = $1");
    let before: Reservation = one_in_tx(&mut tx, &sql, id, None)
        .await?
        .ok_or_else(|| AppError::not_found("reservation", id))?;
    lock_for_costs(&mut tx, who, before.work_order_id, "release parts").await?;
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE reservations SET state = 'released', updated_ms = $1 WHERE id = $2 AND state = 'reserved'")
        .bind(now).bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::Conflict {
            kind: "reservation-not-reserved",
            detail: format!("reservation {id} is {}, not reserved", before.state),
            field: None,
        });
    }
    unreserve(&mut tx, &before, now, false).await?;
    let after: Reservation = one_in_tx(&mut tx, &sql, id, None)
        .await?
        .ok_or_else(|| AppError::not_found("reservation", id))?;
    record(
        &mut tx,
        &who.actor(),
        "release",
        "reservation",
        &id.to_string(),
        json(&before),
        json(&after),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Takes a reservation's units out of `reserved` (and, when consuming, out
/// of `on_hand`). Cannot fail for lack of stock: the units were reserved.
async fn unreserve(
    tx: &mut WriteTx<'_>,
    r: &Reservation,
    now: i64,
    consume: bool,
) -> Result<(), AppError> {
    let taken = if consume { "$1" } else { "0" };
    let sql = format!(
        "UPDATE stock SET on_hand = on_hand - {taken}, reserved = reserved - $1, updated_ms = $2, version = version + 1 \
         WHERE store_id = $3 AND part_id = $4 AND reserved >= $1"
    );
    let n = on_tx!(tx, c => sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
        .bind(r.quantity).bind(now).bind(r.store_id).bind(r.part_id)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::Internal(anyhow::anyhow!(
            "reservation {} holds {} units that stock {}/{} does not have reserved",
            r.id,
            r.quantity,
            r.store_id,
            r.part_id
        )));
    }
    Ok(())
}

/// The hook of COMPLETE (inside the lifecycle's transaction): consumes
/// every `reserved` reservation of the work order at the part's current
/// cost, then raises reorder notifications.
pub async fn consume_for(
    tx: &mut WriteTx<'_>,
    actor: &str,
    wo_id: i64,
    now: i64,
) -> Result<(), AppError> {
    settle(tx, actor, wo_id, now, true).await
}

/// The hook of CANCEL: releases every `reserved` reservation.
pub async fn release_for(
    tx: &mut WriteTx<'_>,
    actor: &str,
    wo_id: i64,
    now: i64,
) -> Result<(), AppError> {
    settle(tx, actor, wo_id, now, false).await
}

async fn settle(
    tx: &mut WriteTx<'_>,
    actor: &str,
    wo_id: i64,
    now: i64,
    consume: bool,
) -> Result<(), AppError> {
    let sql = format!(
        "{RESERVATION_COLS} WHERE work_order_id = $1 AND state = 'reserved' ORDER BY store_id, part_id, id"
    );
    let open: Vec<Reservation> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(wo_id).fetch_all(c).await)?;
    let state = if consume { "consumed" } else { "released" };
    let mut changes = Vec::with_capacity(open.len());
    for r in &open {
        unreserve(tx, r, now, consume).await?;
        let upd = format!(
            "UPDATE reservations SET state = '{state}', updated_ms = $1{} WHERE id = $2",
            if consume {
                ", unit_cost_paise = (SELECT unit_cost_paise FROM parts WHERE parts.id = reservations.part_id)"
            } else {
                ""
            }
        );
        on_tx!(tx, c => sqlx::query(sqlx::AssertSqlSafe(upd.as_str())).bind(now).bind(r.id).execute(c).await.map(|_| ()))?;
        if consume {
            reorder_check(tx, r.store_id, r.part_id, now).await?;
        }
        let after: Option<Reservation> =
            one_in_tx(tx, &format!("{RESERVATION_COLS} WHERE id = $1"), r.id, None).await?;
        changes.push((r.clone(), after));
    }
    // Audit last: its advisory lock comes after the stock row locks.
    for (before, after) in changes {
        record(
            tx,
            actor,
            if consume { "consume" } else { "release" },
            "reservation",
            &before.id.to_string(),
            json(&before),
            after.as_ref().and_then(json),
        )
        .await?;
    }
    Ok(())
}

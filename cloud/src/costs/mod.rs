//! Work-order costs (docs/specs/inventory-and-costs.md): labour time
//! entries (per technician, with an hourly rate), external costs
//! (contractors, crane hire, …), and the rollup labour + parts + external.
//! Money is integer paise (1/100 INR). Once the work order is CLOSED or
//! CANCELLED its costs are locked (409 `work-order-final`).
//!
//! - this file: the records, their validation and the store;
//! - [`handlers`]: the `/api/v1/work-orders/{id}/time-entries`, `…/external-costs`, `…/costs`,
//!   `/api/v1/time-entries…`, `/api/v1/external-costs…`.

pub mod handlers;

use crate::audit;
use crate::auth::{Principal, Role};
use crate::db::{Caches, Db};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::on_db;
use crate::on_tx;
use crate::work_orders::store::lock_for_costs;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Longest single time entry (a day), in minutes.
pub const MAX_MINUTES: i64 = 24 * 60;
/// Highest hourly rate, in paise (₹1,00,000 an hour).
pub const MAX_RATE_PAISE: i64 = 10_000_000;
/// Largest external cost, in paise (₹100 crore).
pub const MAX_AMOUNT_PAISE: i64 = 100_000_000_000;

/// Time a technician spent on a work order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, sqlx::FromRow)]
pub struct TimeEntry {
    pub id: i64,
    pub work_order_id: i64,
    /// The technician who worked.
    pub user_id: i64,
    pub minutes: i64,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub hourly_rate_paise: i64,
    /// `round(minutes × hourly_rate_paise / 60)`, half up; fixed at entry.
    pub cost_paise: i64,
    pub note: String,
    pub created_by: i64,
    pub created_ms: i64,
}

/// Either `minutes`, or `start_ms` and `end_ms`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTimeEntry {
    /// Whose time; default yourself (a technician may only log their own).
    pub user_id: Option<i64>,
    pub minutes: Option<i64>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// Hourly rate in paise; default the worker's rate card. Only
    /// supervisors and above may name a rate (overtime, a contractor).
    pub hourly_rate_paise: Option<i64>,
    #[serde(default)]
    pub note: String,
}

/// A vendor's charge on a work order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, sqlx::FromRow)]
pub struct ExternalCost {
    pub id: i64,
    pub work_order_id: i64,
    pub vendor: String,
    pub description: String,
    /// In paise.
    pub amount_paise: i64,
    pub created_by: i64,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewExternalCost {
    pub vendor: String,
    #[serde(default)]
    pub description: String,
    pub amount_paise: i64,
}

/// What a work order cost, in paise.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CostRollup {
    pub work_order_id: i64,
    pub status: String,
    pub labour_minutes: i64,
    pub labour_paise: i64,
    /// Consumed parts: quantity × unit cost at consumption.
    pub parts_paise: i64,
    /// Parts still reserved (not in the total until consumed).
    pub parts_reserved_paise: i64,
    pub external_paise: i64,
    /// labour + parts + external.
    pub total_paise: i64,
    /// Always `INR`.
    pub currency: String,
    /// CLOSED or CANCELLED: costs can no longer change.
    pub locked: bool,
}

pub(crate) const TIME_COLS: &str = "SELECT id, work_order_id, user_id, minutes, start_ms, end_ms, hourly_rate_paise, cost_paise, \
     note, created_by, created_ms FROM time_entries";
pub(crate) const EXTERNAL_COLS: &str = "SELECT id, work_order_id, vendor, description, amount_paise, created_by, created_ms FROM external_costs";

/// `round(minutes × rate / 60)`, half up, in integers.
pub fn labour_cost(minutes: i64, rate_paise: i64) -> i64 {
    (minutes * rate_paise + 30) / 60
}

fn bad(field: &str, detail: impl Into<String>) -> AppError {
    AppError::bad_field(field, detail)
}

/// The entry's minutes, from `minutes` or from `start_ms`..`end_ms`.
fn minutes_of(n: &NewTimeEntry) -> Result<i64, AppError> {
    let minutes = match (n.minutes, n.start_ms, n.end_ms) {
        (Some(m), None, None) => m,
        (None, Some(s), Some(e)) => {
            if e <= s {
                return Err(bad("end_ms", "must be after start_ms"));
            }
            // Whole minutes, rounded to the nearest.
            (e - s + 30_000) / 60_000
        }
        (Some(_), _, _) => {
            return Err(bad(
                "minutes",
                "give either minutes or start_ms and end_ms, not both",
            ));
        }
        (None, None, _) => return Err(bad("minutes", "missing (or give start_ms and end_ms)")),
        (None, Some(_), None) => return Err(bad("end_ms", "missing")),
    };
    if !(1..=MAX_MINUTES).contains(&minutes) {
        return Err(bad(
            "minutes",
            format!("must be between 1 and {MAX_MINUTES}"),
        ));
    }
    Ok(minutes)
}

/// Logs time on a work order. A technician logs only their own time on
/// work orders assigned to them; supervisors and above for anyone.
pub async fn add_time_entry(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo_id: i64,
    n: &NewTimeEntry,
) -> Result<TimeEntry, AppError> {
    let minutes = minutes_of(n)?;
    if let Some(rate) = n.hourly_rate_paise {
        if who.role == Role::Technician {
            return Err(AppError::Forbidden {
                detail: "a technician's time is costed at their rate card: leave out hourly_rate_paise (supervisors and above may name a rate)".into(),
            });
        }
        if !(0..=MAX_RATE_PAISE).contains(&rate) {
            return Err(bad(
                "hourly_rate_paise",
                format!("must be between 0 and {MAX_RATE_PAISE}"),
            ));
        }
    }
    if n.note.chars().count() > 2000 {
        return Err(bad("note", "at most 2000 characters"));
    }
    let user_id = n.user_id.unwrap_or(who.user_id);
    if who.role == Role::Technician && user_id != who.user_id {
        return Err(AppError::Forbidden {
            detail: "a technician may only log their own time".into(),
        });
    }
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    lock_for_costs(&mut tx, who, wo_id, "log time").await?;
    let u: Option<(bool, Option<i64>)> = on_tx!(tx, c => sqlx::query_as("SELECT active, hourly_rate_paise FROM users WHERE id = $1").bind(user_id).fetch_optional(c).await)?;
    let Some((true, card)) = u else {
        return Err(bad("user_id", format!("no active user with id {user_id}")));
    };
    let Some(rate) = n.hourly_rate_paise.or(card) else {
        return Err(bad(
            "hourly_rate_paise",
            format!(
                "user {user_id} has no rate on the rate card: set it (PATCH /api/v1/users/{user_id}) or name a rate"
            ),
        ));
    };
    let cost = labour_cost(minutes, rate);
    let (start_ms, end_ms) = if n.minutes.is_some() {
        (None, None)
    } else {
        (n.start_ms, n.end_ms)
    };
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO time_entries (work_order_id, user_id, minutes, start_ms, end_ms, hourly_rate_paise, cost_paise, note, created_by, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id")
        .bind(wo_id).bind(user_id).bind(minutes).bind(start_ms).bind(end_ms).bind(rate)
        .bind(cost).bind(&n.note).bind(who.user_id).bind(now).fetch_one(c).await)?;
    let e = TimeEntry {
        id,
        work_order_id: wo_id,
        user_id,
        minutes,
        start_ms,
        end_ms,
        hourly_rate_paise: rate,
        cost_paise: cost,
        note: n.note.clone(),
        created_by: who.user_id,
        created_ms: now,
    };
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "create",
            entity: "time_entry",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&e).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(e)
}

/// Removes a time entry (a technician: only their own).
pub async fn delete_time_entry(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
) -> Result<(), AppError> {
    let mut tx = db.write(caches).await?;
    let sql = format!("{TIME_COLS} WHERE id = $1");
    let e: TimeEntry = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?
        .ok_or_else(|| AppError::not_found("time entry", id))?;
    if who.role == Role::Technician && e.user_id != who.user_id {
        return Err(AppError::Forbidden {
            detail: "a technician may only remove their own time".into(),
        });
    }
    lock_for_costs(&mut tx, who, e.work_order_id, "remove time").await?;
    on_tx!(tx, c => sqlx::query("DELETE FROM time_entries WHERE id = $1").bind(id).execute(c).await.map(|_| ()))?;
    audit::record(
        &mut tx,
        now_ms(),
        audit::Change {
            actor: &who.actor(),
            action: "delete",
            entity: "time_entry",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&e).ok(),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn add_external(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo_id: i64,
    n: &NewExternalCost,
) -> Result<ExternalCost, AppError> {
    let vl = n.vendor.chars().count();
    if n.vendor.trim().is_empty() || vl > 200 {
        return Err(bad("vendor", "must be 1 to 200 characters"));
    }
    if n.description.chars().count() > 2000 {
        return Err(bad("description", "at most 2000 characters"));
    }
    if !(0..=MAX_AMOUNT_PAISE).contains(&n.amount_paise) {
        return Err(bad(
            "amount_paise",
            format!("must be between 0 and {MAX_AMOUNT_PAISE}"),
        ));
    }
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    lock_for_costs(&mut tx, who, wo_id, "add costs").await?;
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO external_costs (work_order_id, vendor, description, amount_paise, created_by, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
        .bind(wo_id).bind(&n.vendor).bind(&n.description).bind(n.amount_paise).bind(who.user_id).bind(now)
        .fetch_one(c).await)?;
    let x = ExternalCost {
        id,
        work_order_id: wo_id,
        vendor: n.vendor.clone(),
        description: n.description.clone(),
        amount_paise: n.amount_paise,
        created_by: who.user_id,
        created_ms: now,
    };
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "create",
            entity: "external_cost",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&x).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(x)
}

pub async fn delete_external(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
) -> Result<(), AppError> {
    let mut tx = db.write(caches).await?;
    let sql = format!("{EXTERNAL_COLS} WHERE id = $1");
    let x: ExternalCost = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?
        .ok_or_else(|| AppError::not_found("external cost", id))?;
    lock_for_costs(&mut tx, who, x.work_order_id, "remove costs").await?;
    on_tx!(tx, c => sqlx::query("DELETE FROM external_costs WHERE id = $1").bind(id).execute(c).await.map(|_| ()))?;
    audit::record(
        &mut tx,
        now_ms(),
        audit::Change {
            actor: &who.actor(),
            action: "delete",
            entity: "external_cost",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&x).ok(),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The cost rollup of a work order (one read; sums in SQL as BIGINT).
pub async fn rollup(db: &Db, wo_id: i64) -> Result<CostRollup, AppError> {
    let wo = crate::work_orders::store::get(db, wo_id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", wo_id))?;
    let locked = !wo.lifecycle_status()?.costs_open();
    // One statement, so one snapshot: the parts of the total agree.
    let (labour_minutes, labour_paise, parts_paise, parts_reserved_paise, external_paise): (
        i64,
        i64,
        i64,
        i64,
        i64,
    ) = on_db!(db, p => sqlx::query_as(
        "SELECT \
           (SELECT CAST(COALESCE(SUM(minutes), 0) AS BIGINT) FROM time_entries WHERE work_order_id = $1), \
           (SELECT CAST(COALESCE(SUM(cost_paise), 0) AS BIGINT) FROM time_entries WHERE work_order_id = $1), \
           (SELECT CAST(COALESCE(SUM(quantity * unit_cost_paise), 0) AS BIGINT) FROM reservations \
              WHERE work_order_id = $1 AND state = 'consumed'), \
           (SELECT CAST(COALESCE(SUM(quantity * unit_cost_paise), 0) AS BIGINT) FROM reservations \
              WHERE work_order_id = $1 AND state = 'reserved'), \
           (SELECT CAST(COALESCE(SUM(amount_paise), 0) AS BIGINT) FROM external_costs WHERE work_order_id = $1)")
        .bind(wo_id).fetch_one(p).await)?;
    Ok(CostRollup {
        work_order_id: wo_id,
        status: wo.status,
        labour_minutes,
        labour_paise,
        parts_paise,
        parts_reserved_paise,
        external_paise,
        total_paise: labour_paise + parts_paise + external_paise,
        currency: "INR".into(),
        locked,
    })
}

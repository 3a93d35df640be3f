//! Work orders in the database: create, read, list, edit (with version),
//! and status transitions through [`super::lifecycle::transition`], each
//! with a status-history row and an audit record in one transaction.

use super::lifecycle::{self, Action, Actor, Reason, Status, TransitionError};
use crate::audit;
use crate::auth::Principal;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::params::Filters;
use crate::http::problem::AppError;
use crate::{bind_all, on_db, on_tx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Corrective,
    Preventive,
    Predictive,
    Inspection,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Corrective => "corrective",
            Kind::Preventive => "preventive",
            Kind::Predictive => "predictive",
            Kind::Inspection => "inspection",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::Corrective,
            Kind::Preventive,
            Kind::Predictive,
            Kind::Inspection,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A work order as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct WorkOrder {
    pub id: i64,
    pub site_id: i64,
    pub asset_id: Option<i64>,
    pub kind: Kind,
    pub title: String,
    pub description: String,
    /// 1 (urgent) to 5 (whenever convenient).
    pub priority: i64,
    /// `REQUESTED`, `APPROVED`, `SCHEDULED`, `WAITING`, `IN_PROGRESS`,
    /// `ON_HOLD`, `COMPLETED`, `CLOSED` or `CANCELLED`.
    pub status: String,
    /// Why it is WAITING or ON_HOLD.
    pub status_reason: Option<Reason>,
    pub assignee_id: Option<i64>,
    pub due_ms: Option<i64>,
    pub created_by: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
    /// The crew it is assigned to (with or instead of `assignee_id`).
    pub crew_id: Option<i64>,
    /// The work order whose failed checklist item raised this one.
    pub parent_id: Option<i64>,
    /// When the SLA of its priority runs out (`created_ms` + the SLA).
    pub sla_due_ms: Option<i64>,
    /// `sla_due_ms` has passed and it is not COMPLETED, CLOSED or CANCELLED
    /// (computed when read).
    pub sla_breached: bool,
}

impl WorkOrder {
    pub fn lifecycle_status(&self) -> Result<Status, AppError> {
        status_of(&self.status, self.status_reason).ok_or_else(|| {
            AppError::Internal(anyhow::anyhow!(
                "work order {} has status {:?}",
                self.id,
                self.status
            ))
        })
    }
}

fn status_of(name: &str, reason: Option<Reason>) -> Option<Status> {
    Some(match (name, reason) {
        ("REQUESTED", _) => Status::Requested,
        ("APPROVED", _) => Status::Approved,
        ("SCHEDULED", _) => Status::Scheduled,
        ("WAITING", Some(r)) => Status::Waiting(r),
        ("IN_PROGRESS", _) => Status::InProgress,
        ("ON_HOLD", Some(r)) => Status::OnHold(r),
        ("COMPLETED", _) => Status::Completed,
        ("CLOSED", _) => Status::Closed,
        ("CANCELLED", _) => Status::Cancelled,
        _ => return None,
    })
}

fn reason_str(r: Reason) -> &'static str {
    match r {
        Reason::Parts => "parts",
        Reason::Access => "access",
        Reason::Weather => "weather",
        Reason::Permit => "permit",
        Reason::Safety => "safety",
    }
}

fn reason_of(s: &str) -> Option<Reason> {
    Reason::ALL.into_iter().find(|r| reason_str(*r) == s)
}

/// Fields of a new work order.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkOrder {
    pub site_id: i64,
    pub asset_id: Option<i64>,
    pub kind: Kind,
    pub title: String,
    #[serde(default)]
    pub description: String,
    /// 1 (urgent) to 5; default 3.
    pub priority: Option<i64>,
    pub assignee_id: Option<i64>,
    pub due_ms: Option<i64>,
}

/// An edit: the fields to change, plus the version read.
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderEdit {
    pub version: i64,
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<i64>,
    /// `null` unassigns.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub assignee_id: Option<Option<i64>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<i64>)]
    pub due_ms: Option<Option<i64>>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// One status change.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct HistoryEntry {
    pub at_ms: i64,
    pub user_id: i64,
    pub from_status: Option<String>,
    pub to_status: String,
    pub reason: Option<String>,
    pub comment: String,
}

#[derive(sqlx::FromRow)]
struct WoRow {
    id: i64,
    site_id: i64,
    asset_id: Option<i64>,
    kind: String,
    title: String,
    description: String,
    priority: i64,
    status: String,
    status_reason: Option<String>,
    assignee_id: Option<i64>,
    due_ms: Option<i64>,
    created_by: i64,
    created_ms: i64,
    updated_ms: i64,
    version: i64,
    crew_id: Option<i64>,
    parent_id: Option<i64>,
    sla_due_ms: Option<i64>,
}
const WO_COLS: &str = "id, site_id, asset_id, kind, title, description, priority, status, status_reason, assignee_id, due_ms, created_by, created_ms, updated_ms, version, crew_id, parent_id, sla_due_ms";

fn wo_of(r: WoRow) -> Result<WorkOrder, AppError> {
    let kind = Kind::parse(&r.kind).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("work order {} has kind {:?}", r.id, r.kind))
    })?;
    let sla_breached = super::sla::breached(r.sla_due_ms, &r.status, now_ms());
    Ok(WorkOrder {
        id: r.id,
        site_id: r.site_id,
        asset_id: r.asset_id,
        kind,
        title: r.title,
        description: r.description,
        priority: r.priority,
        status: r.status,
        status_reason: r.status_reason.as_deref().and_then(reason_of),
        assignee_id: r.assignee_id,
        due_ms: r.due_ms,
        created_by: r.created_by,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        version: r.version,
        crew_id: r.crew_id,
        parent_id: r.parent_id,
        sla_due_ms: r.sla_due_ms,
        sla_breached,
    })
}

pub async fn get(db: &Db, id: i64) -> Result<Option<WorkOrder>, AppError> {
    let sql = format!("SELECT {WO_COLS} FROM work_orders WHERE id = $1");
    let r: Option<WoRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
    r.map(wo_of).transpose()
}

pub(crate) async fn get_in_tx(
    tx: &mut WriteTx<'_>,
    id: i64,
) -> Result<Option<WorkOrder>, AppError> {
    let sql = format!("SELECT {WO_COLS} FROM work_orders WHERE id = $1");
    let r: Option<WoRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?;
    r.map(wo_of).transpose()
}

fn check_text(title: &str, description: &str, priority: i64) -> Result<(), AppError> {
    if title.trim().is_empty() || title.chars().count() > 200 {
        return Err(AppError::bad_field("title", "must be 1 to 200 characters"));
    }
    if description.chars().count() > 20_000 {
        return Err(AppError::bad_field(
            "description",
            "at most 20000 characters",
        ));
    }
    if !(1..=5).contains(&priority) {
        return Err(AppError::bad_field("priority", "must be 1 (urgent) to 5"));
    }
    Ok(())
}

async fn check_refs(
    tx: &mut WriteTx<'_>,
    site_id: i64,
    asset_id: Option<i64>,
    assignee_id: Option<i64>,
) -> Result<(), AppError> {
    let site: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT id FROM sites WHERE id = $1").bind(site_id).fetch_optional(c).await)?;
    if site.is_none() {
        return Err(AppError::bad_field(
            "site_id",
            format!("no site with id {site_id}"),
        ));
    }
    if let Some(a) = asset_id {
        let row: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT site_id FROM assets WHERE id = $1").bind(a).fetch_optional(c).await)?;
        match row {
            None => {
                return Err(AppError::bad_field(
                    "asset_id",
                    format!("no asset with id {a}"),
                ));
            }
            Some((s,)) if s != site_id => {
                return Err(AppError::bad_field(
                    "asset_id",
                    format!("asset {a} is not at site {site_id}"),
                ));
            }
            _ => {}
        }
    }
    if let Some(u) = assignee_id {
        let row: Option<(bool,)> = on_tx!(tx, c => sqlx::query_as("SELECT active FROM users WHERE id = $1").bind(u).fetch_optional(c).await)?;
        if !row.is_some_and(|(a,)| a) {
            return Err(AppError::bad_field(
                "assignee_id",
                format!("no active user with id {u}"),
            ));
        }
    }
    Ok(())
}

async fn history(
    tx: &mut WriteTx<'_>,
    wo: i64,
    at: i64,
    user: i64,
    from: Option<Status>,
    to: Status,
    comment: &str,
) -> Result<(), sqlx::Error> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO work_order_history (work_order_id, at_ms, user_id, from_status, to_status, reason, comment) VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(wo).bind(at).bind(user).bind(from.map(Status::name)).bind(to.name()).bind(to.reason().map(reason_str)).bind(comment)
        .execute(c).await.map(|_| ()))
}

/// Takes a work order for a cost change (time entry, external cost, parts
/// reservation) inside `tx`: 404 if absent, 409 `work-order-final` once it
/// is CLOSED or CANCELLED. The no-op `UPDATE` locks the row on Postgres
/// until `tx` ends, so a concurrent close either waits for this change or
/// makes this change see CLOSED (on SQLite the writer queue serialises).
///
/// A technician not assigned to the order is refused (403) before its
/// state is revealed, as in the lifecycle.
pub async fn lock_for_costs(
    tx: &mut WriteTx<'_>,
    who: &Principal,
    id: i64,
    what: &str,
) -> Result<WorkOrder, AppError> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE work_orders SET updated_ms = updated_ms WHERE id = $1 AND status NOT IN ('CLOSED', 'CANCELLED')")
        .bind(id).execute(c).await.map(|r| r.rows_affected()))?;
    let wo = get_in_tx(tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", id))?;
    // A member of the order's crew counts as assignee (work_orders::crews).
    super::crews::require_assignee(tx, who, &wo, what).await?;
    if n == 0 {
        return Err(AppError::Conflict {
            kind: "work-order-final",
            detail: format!(
                "work order {id} is {}: its labour, parts and external costs are locked",
                wo.status
            ),
            field: None,
        });
    }
    Ok(wo)
}

/// A technician may act only on work orders assigned to them (403).
pub fn check_assignee(who: &Principal, wo: &WorkOrder, what: &str) -> Result<(), AppError> {
    if who.role == crate::auth::Role::Technician && wo.assignee_id != Some(who.user_id) {
        return Err(AppError::Forbidden {
            detail: format!(
                "a technician may only {what} on work orders assigned to them (work order {} is not)",
                wo.id
            ),
        });
    }
    Ok(())
}

/// Creates a work order in REQUESTED.
pub async fn create(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    n: &NewWorkOrder,
) -> Result<WorkOrder, AppError> {
    let mut tx = db.write(caches).await?;
    let wo = create_in_tx(&mut tx, who.user_id, &who.actor(), n, now_ms()).await?;
    tx.commit().await?;
    Ok(wo)
}

/// Creates a work order in REQUESTED inside `tx` (history row and audit
/// record included), created by user `created_by`, audited as `actor`;
/// the caller commits. Used by [`create`] and by PM generation.
pub async fn create_in_tx(
    tx: &mut WriteTx<'_>,
    created_by: i64,
    actor: &str,
    n: &NewWorkOrder,
    now: i64,
) -> Result<WorkOrder, AppError> {
    let priority = n.priority.unwrap_or(3);
    check_text(&n.title, &n.description, priority)?;
    check_refs(tx, n.site_id, n.asset_id, n.assignee_id).await?;
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO work_orders (site_id, asset_id, kind, title, description, priority, status, status_reason, assignee_id, due_ms, created_by, created_ms, updated_ms, version, sla_due_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, 'REQUESTED', NULL, $7, $8, $9, $10, $10, 1, $11) RETURNING id")
        .bind(n.site_id).bind(n.asset_id).bind(n.kind.as_str()).bind(&n.title).bind(&n.description).bind(priority)
        .bind(n.assignee_id).bind(n.due_ms).bind(created_by).bind(now).bind(super::sla::due_ms(now, priority))
        .fetch_one(c).await)?;
    history(tx, id, now, created_by, None, Status::Requested, "").await?;
    let wo = get_in_tx(tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", id))?;
    audit::record(
        tx,
        now,
        audit::Change {
            actor,
            action: "create",
            entity: "work_order",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&wo).ok(),
        },
    )
    .await?;
    crate::webhooks::enqueue(
        tx,
        "work_order.created",
        serde_json::json!({ "work_order": &wo }),
        now,
    )
    .await?;
    Ok(wo)
}

/// Edits fields; refused once the order is CLOSED or CANCELLED.
pub async fn edit(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
    e: &WorkOrderEdit,
) -> Result<WorkOrder, AppError> {
    let mut tx = db.write(caches).await?;
    let before = get_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", id))?;
    if before.version != e.version {
        return Err(AppError::stale(e.version, before.version));
    }
    if !before.lifecycle_status()?.costs_open() {
        return Err(AppError::Conflict {
            kind: "work-order-final",
            detail: format!(
                "work order {id} is {} and can no longer be edited",
                before.status
            ),
            field: None,
        });
    }
    let mut w = before.clone();
    if let Some(t) = &e.title {
        w.title = t.clone();
    }
    if let Some(d) = &e.description {
        w.description = d.clone();
    }
    if let Some(p) = e.priority {
        w.priority = p;
    }
    if let Some(a) = e.assignee_id {
        w.assignee_id = a;
    }
    if let Some(d) = e.due_ms {
        w.due_ms = d;
    }
    check_text(&w.title, &w.description, w.priority)?;
    if w.assignee_id != before.assignee_id {
        check_refs(&mut tx, w.site_id, None, w.assignee_id).await?;
    }
    w.version += 1;
    w.updated_ms = now_ms();
    // The SLA follows the priority, counted from creation.
    w.sla_due_ms = Some(super::sla::due_ms(w.created_ms, w.priority));
    w.sla_breached = super::sla::breached(w.sla_due_ms, &w.status, w.updated_ms);
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE work_orders SET title = $1, description = $2, priority = $3, assignee_id = $4, due_ms = $5, updated_ms = $6, version = version + 1, sla_due_ms = $9 \
         WHERE id = $7 AND version = $8")
        .bind(&w.title).bind(&w.description).bind(w.priority).bind(w.assignee_id).bind(w.due_ms).bind(w.updated_ms)
        .bind(id).bind(e.version).bind(w.sla_due_ms).execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(e.version, e.version + 1));
    }
    audit::record(
        &mut tx,
        w.updated_ms,
        audit::Change {
            actor: &who.actor(),
            action: "update",
            entity: "work_order",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&w).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(w)
}

/// Applies a lifecycle action (role, assignment and state checked by
/// [`lifecycle::transition`] against the row as it is in this transaction).
pub async fn apply(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
    version: i64,
    action: Action,
    comment: &str,
) -> Result<WorkOrder, AppError> {
    if comment.chars().count() > 5000 {
        return Err(AppError::bad_field("comment", "at most 5000 characters"));
    }
    let mut tx = db.write(caches).await?;
    let before = get_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", id))?;
    let from = before.lifecycle_status()?;
    let actor = Actor {
        role: who.role,
        is_assignee: super::crews::is_assignee(&mut tx, &before, who.user_id).await?,
    };
    let to = lifecycle::transition(from, action, actor).map_err(|e| match e {
        TransitionError::Forbidden { .. } | TransitionError::NotAssigned { .. } => {
            AppError::Forbidden {
                detail: e.to_string(),
            }
        }
        TransitionError::NotFrom { .. } => AppError::Conflict {
            kind: "invalid-transition",
            detail: e.to_string(),
            field: Some("action".into()),
        },
    })?;
    if before.version != version {
        return Err(AppError::stale(version, before.version));
    }
    let now = now_ms();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE work_orders SET status = $1, status_reason = $2, updated_ms = $3, version = version + 1 WHERE id = $4 AND version = $5")
        .bind(to.name()).bind(to.reason().map(reason_str)).bind(now).bind(id).bind(version)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(version, version + 1));
    }
    history(&mut tx, id, now, who.user_id, Some(from), to, comment).await?;
    // Parts follow the order in the same transaction: COMPLETE consumes its
    // reservations, CANCEL releases them (docs/specs/inventory-and-costs.md).
    match to {
        Status::Completed => {
            super::tasks::check_complete(&mut tx, id).await?;
            crate::inventory::consume_for(&mut tx, &who.actor(), id, now).await?
        }
        Status::Cancelled => crate::inventory::release_for(&mut tx, &who.actor(), id, now).await?,
        _ => {}
    }
    let after = get_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", id))?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: action.name(),
            entity: "work_order",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
        },
    )
    .await?;
    crate::webhooks::enqueue(
        &mut tx,
        "work_order.status_changed",
        serde_json::json!({ "work_order": &after, "from": from.name(), "to": to.name(), "action": action.name() }),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn list(
    db: &Db,
    f: &Filters,
    sort: (&str, bool),
    limit: i64,
    offset: i64,
) -> Result<Vec<WorkOrder>, AppError> {
    let n = f.next();
    let sql = format!(
        "SELECT {WO_COLS} FROM work_orders{} ORDER BY {} {}, id LIMIT ${n} OFFSET ${}",
        f.sql(),
        sort.0,
        if sort.1 { "DESC" } else { "ASC" },
        n + 1
    );
    let rows: Vec<WoRow> = on_db!(db, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), &f.binds).bind(limit).bind(offset).fetch_all(p).await)?;
    rows.into_iter().map(wo_of).collect()
}

/// at_ms, user_id, from_status, to_status, reason, comment.
type HistoryRow = (i64, i64, Option<String>, String, Option<String>, String);

pub async fn history_of(db: &Db, id: i64) -> Result<Vec<HistoryEntry>, AppError> {
    let rows: Vec<HistoryRow> = on_db!(db, p => sqlx::query_as(
        "SELECT at_ms, user_id, from_status, to_status, reason, comment FROM work_order_history WHERE work_order_id = $1 ORDER BY id")
        .bind(id).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(
            |(at_ms, user_id, from_status, to_status, reason, comment)| HistoryEntry {
                at_ms,
                user_id,
                from_status,
                to_status,
                reason,
                comment,
            },
        )
        .collect())
}

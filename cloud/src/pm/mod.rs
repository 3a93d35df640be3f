//! Preventive maintenance (docs/specs/preventive-maintenance.md).
//!
//! - this file: PM plans, their validation and the store (create, read,
//!   list, update with version; each change audited in its transaction);
//! - [`schedule`]: calendar, RRULE and meter schedules and the date
//!   arithmetic (pure, unit-tested);
//! - [`generate`]: work orders generated ahead over each plan's horizon,
//!   once per occurrence (unique key in `pm_occurrences`), with the catch-up
//!   policy after downtime; and the background task;
//! - [`compliance`]: PM compliance per SMRP 5.4.1 with the grace rule;
//! - [`handlers`]: the `/api/v1/pm/…` endpoints.

pub mod compliance;
pub mod generate;
pub mod handlers;
pub mod schedule;

use crate::audit;
use crate::auth::Principal;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::params::Filters;
use crate::http::problem::AppError;
use crate::{bind_all, on_db, on_tx};
pub use schedule::{Schedule, Unit};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The work-order kind a plan generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    Preventive,
    Inspection,
}

impl PlanKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PlanKind::Preventive => "preventive",
            PlanKind::Inspection => "inspection",
        }
    }
    fn parse(s: &str) -> Option<PlanKind> {
        [PlanKind::Preventive, PlanKind::Inspection]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
    pub fn work_order_kind(self) -> crate::work_orders::store::Kind {
        match self {
            PlanKind::Preventive => crate::work_orders::store::Kind::Preventive,
            PlanKind::Inspection => crate::work_orders::store::Kind::Inspection,
        }
    }
}

/// A preventive-maintenance plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Plan {
    pub id: i64,
    pub site_id: i64,
    pub asset_id: Option<i64>,
    pub title: String,
    /// The task, copied into each generated work order.
    pub description: String,
    pub kind: PlanKind,
    /// 1 (urgent) to 5.
    pub priority: i64,
    pub schedule: Schedule,
    /// Work orders are generated this many days ahead (0 to 366).
    pub horizon_days: i64,
    /// Days after the due time within which completion counts as on time.
    pub grace_days: i64,
    pub active: bool,
    /// Occurrences before this instant are neither generated nor counted.
    pub from_ms: i64,
    /// Generated work orders are created by this user.
    pub owner_id: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// The fields of a plan (create: `site_id`, `title`, `schedule` required).
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct PlanFields {
    /// Create only.
    pub site_id: Option<i64>,
    /// Create only.
    pub asset_id: Option<i64>,
    pub title: Option<String>,
    pub description: Option<String>,
    /// Default `preventive`.
    pub kind: Option<PlanKind>,
    /// Default 3.
    pub priority: Option<i64>,
    pub schedule: Option<Schedule>,
    /// Default 30.
    pub horizon_days: Option<i64>,
    /// Default: 10 % of a calendar interval rounded up to days; 7 for meters.
    pub grace_days: Option<i64>,
    /// Default true.
    pub active: Option<bool>,
    /// Required on update: the version you read.
    pub version: Option<i64>,
}

impl Plan {
    fn validate(&self) -> Result<(), AppError> {
        if self.title.trim().is_empty() || self.title.chars().count() > 200 {
            return Err(AppError::bad_field("title", "must be 1 to 200 characters"));
        }
        if self.description.chars().count() > 20_000 {
            return Err(AppError::bad_field(
                "description",
                "at most 20000 characters",
            ));
        }
        if !(1..=5).contains(&self.priority) {
            return Err(AppError::bad_field("priority", "must be 1 (urgent) to 5"));
        }
        if !(0..=366).contains(&self.horizon_days) {
            return Err(AppError::bad_field("horizon_days", "must be 0 to 366 days"));
        }
        if !(0..=366).contains(&self.grace_days) {
            return Err(AppError::bad_field("grace_days", "must be 0 to 366 days"));
        }
        self.schedule
            .recurrence()
            .map_err(|e| AppError::bad_field(e.field, e.detail))?;
        if matches!(self.schedule, Schedule::Meter { .. }) && self.asset_id.is_none() {
            return Err(AppError::bad_field(
                "asset_id",
                "a meter schedule needs the asset whose meter it reads",
            ));
        }
        Ok(())
    }
}

type PlanRow = (
    i64,
    i64,
    Option<i64>,
    String,
    String,
    String,
    i64,
    String,
    i64,
    i64,
    bool,
    i64,
    i64,
    i64,
    i64,
    i64,
);
const PLAN_COLS: &str = "id, site_id, asset_id, title, description, kind, priority, schedule, horizon_days, grace_days, active, from_ms, owner_id, created_ms, updated_ms, version";

fn plan_of(r: PlanRow) -> Result<Plan, AppError> {
    let kind = PlanKind::parse(&r.5)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("PM plan {} has kind {:?}", r.0, r.5)))?;
    let schedule: Schedule = serde_json::from_str(&r.7).map_err(|e| {
        AppError::Internal(anyhow::anyhow!("PM plan {} has a bad schedule: {e}", r.0))
    })?;
    Ok(Plan {
        id: r.0,
        site_id: r.1,
        asset_id: r.2,
        title: r.3,
        description: r.4,
        kind,
        priority: r.6,
        schedule,
        horizon_days: r.8,
        grace_days: r.9,
        active: r.10,
        from_ms: r.11,
        owner_id: r.12,
        created_ms: r.13,
        updated_ms: r.14,
        version: r.15,
    })
}

fn schedule_json(s: &Schedule) -> Result<String, AppError> {
    serde_json::to_string(s).map_err(|e| AppError::Internal(e.into()))
}

pub async fn get_plan(db: &Db, id: i64) -> Result<Option<Plan>, AppError> {
    let sql = format!("SELECT {PLAN_COLS} FROM pm_plans WHERE id = $1");
    let r: Option<PlanRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
    r.map(plan_of).transpose()
}

pub(crate) async fn plan_in_tx(tx: &mut WriteTx<'_>, id: i64) -> Result<Option<Plan>, AppError> {
    let sql = format!("SELECT {PLAN_COLS} FROM pm_plans WHERE id = $1");
    let r: Option<PlanRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?;
    r.map(plan_of).transpose()
}

/// Site exists; asset (if any) exists and is at the site.
async fn check_refs(tx: &mut WriteTx<'_>, p: &Plan) -> Result<(), AppError> {
    let site: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT id FROM sites WHERE id = $1").bind(p.site_id).fetch_optional(c).await)?;
    if site.is_none() {
        return Err(AppError::bad_field(
            "site_id",
            format!("no site with id {}", p.site_id),
        ));
    }
    if let Some(a) = p.asset_id {
        let row: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT site_id FROM assets WHERE id = $1").bind(a).fetch_optional(c).await)?;
        match row {
            None => {
                return Err(AppError::bad_field(
                    "asset_id",
                    format!("no asset with id {a}"),
                ));
            }
            Some((s,)) if s != p.site_id => {
                return Err(AppError::bad_field(
                    "asset_id",
                    format!("asset {a} is not at site {}", p.site_id),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

pub async fn create_plan(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    f: &PlanFields,
) -> Result<Plan, AppError> {
    let Some(site_id) = f.site_id else {
        return Err(AppError::bad_field("site_id", "missing"));
    };
    let Some(title) = f.title.clone() else {
        return Err(AppError::bad_field("title", "missing"));
    };
    let Some(schedule) = f.schedule.clone() else {
        return Err(AppError::bad_field("schedule", "missing"));
    };
    if f.version.is_some() {
        return Err(AppError::bad_field(
            "version",
            "is set by the server on create",
        ));
    }
    let now = now_ms();
    let mut p = Plan {
        id: 0,
        site_id,
        asset_id: f.asset_id,
        title,
        description: f.description.clone().unwrap_or_default(),
        kind: f.kind.unwrap_or(PlanKind::Preventive),
        priority: f.priority.unwrap_or(3),
        grace_days: f
            .grace_days
            .unwrap_or_else(|| schedule.default_grace_days()),
        schedule,
        horizon_days: f.horizon_days.unwrap_or(30),
        active: f.active.unwrap_or(true),
        from_ms: now,
        owner_id: who.user_id,
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    p.validate()?;
    let sched = schedule_json(&p.schedule)?;
    let mut tx = db.write(caches).await?;
    check_refs(&mut tx, &p).await?;
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO pm_plans (site_id, asset_id, title, description, kind, priority, schedule, horizon_days, grace_days, active, from_ms, owner_id, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $11, $11, 1) RETURNING id")
        .bind(p.site_id).bind(p.asset_id).bind(&p.title).bind(&p.description).bind(p.kind.as_str()).bind(p.priority)
        .bind(&sched).bind(p.horizon_days).bind(p.grace_days).bind(p.active).bind(now).bind(p.owner_id)
        .fetch_one(c).await)?;
    p.id = id;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "create",
            entity: "pm_plan",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&p).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(p)
}

/// Changes a plan. A schedule change or a reactivation restarts the plan
/// at the time of the change (`from_ms`): earlier occurrences of the new
/// schedule are not generated or counted; work orders already generated
/// stay as they are.
pub async fn update_plan(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
    f: &PlanFields,
) -> Result<Plan, AppError> {
    let Some(sent) = f.version else {
        return Err(AppError::bad_field(
            "version",
            "missing: send the version you read",
        ));
    };
    if f.site_id.is_some() {
        return Err(AppError::bad_field(
            "site_id",
            "cannot be changed; create a new plan",
        ));
    }
    if f.asset_id.is_some() {
        return Err(AppError::bad_field(
            "asset_id",
            "cannot be changed; create a new plan",
        ));
    }
    let mut tx = db.write(caches).await?;
    let before = plan_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("PM plan", id))?;
    if before.version != sent {
        return Err(AppError::stale(sent, before.version));
    }
    let mut p = before.clone();
    macro_rules! set {
        ($($name:ident),*) => { $( if let Some(v) = &f.$name { p.$name = v.clone(); } )* };
    }
    set!(
        title,
        description,
        kind,
        priority,
        schedule,
        horizon_days,
        grace_days,
        active
    );
    p.validate()?;
    let now = now_ms();
    if p.schedule != before.schedule || (p.active && !before.active) {
        p.from_ms = now;
    }
    p.version += 1;
    p.updated_ms = now;
    let sched = schedule_json(&p.schedule)?;
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE pm_plans SET title = $1, description = $2, kind = $3, priority = $4, schedule = $5, horizon_days = $6, \
         grace_days = $7, active = $8, from_ms = $9, updated_ms = $10, version = version + 1 WHERE id = $11 AND version = $12")
        .bind(&p.title).bind(&p.description).bind(p.kind.as_str()).bind(p.priority).bind(&sched).bind(p.horizon_days)
        .bind(p.grace_days).bind(p.active).bind(p.from_ms).bind(now).bind(id).bind(sent)
        .execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(sent, sent + 1));
    }
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "update",
            entity: "pm_plan",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&p).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(p)
}

pub async fn list_plans(
    db: &Db,
    f: &Filters,
    sort: (&str, bool),
    limit: i64,
    offset: i64,
) -> Result<Vec<Plan>, AppError> {
    let n = f.next();
    let sql = format!(
        "SELECT {PLAN_COLS} FROM pm_plans{} ORDER BY {} {}, id LIMIT ${n} OFFSET ${}",
        f.sql(),
        sort.0,
        if sort.1 { "DESC" } else { "ASC" },
        n + 1
    );
    let rows: Vec<PlanRow> = on_db!(db, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), &f.binds).bind(limit).bind(offset).fetch_all(p).await)?;
    rows.into_iter().map(plan_of).collect()
}

/// Every active plan, by id.
pub async fn active_plans(db: &Db) -> Result<Vec<Plan>, AppError> {
    let sql = format!("SELECT {PLAN_COLS} FROM pm_plans WHERE active = $1 ORDER BY id");
    let rows: Vec<PlanRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(true).fetch_all(p).await)?;
    rows.into_iter().map(plan_of).collect()
}

/// One occurrence of a plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Occurrence {
    pub id: i64,
    pub plan_id: i64,
    /// Calendar plans: the occurrence time (ms); meter plans: the ordinal.
    pub occurrence_key: i64,
    pub due_ms: i64,
    /// The plan's grace when this occurrence was recorded, in ms.
    pub grace_ms: i64,
    /// `generated` (has a work order) or `missed` (catch-up: none).
    pub status: String,
    pub work_order_id: Option<i64>,
    /// Meter plans: the reading that triggered it.
    pub meter_value: Option<f64>,
    pub created_ms: i64,
}

type OccRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    String,
    Option<i64>,
    Option<f64>,
    i64,
);

pub async fn occurrences(
    db: &Db,
    plan_id: i64,
    limit: i64,
    offset: i64,
) -> Result<Vec<Occurrence>, AppError> {
    let rows: Vec<OccRow> = on_db!(db, p => sqlx::query_as(
        "SELECT id, plan_id, occurrence_key, due_ms, grace_ms, status, work_order_id, meter_value, created_ms \
         FROM pm_occurrences WHERE plan_id = $1 ORDER BY due_ms, id LIMIT $2 OFFSET $3")
        .bind(plan_id).bind(limit).bind(offset).fetch_all(p).await)?;
    Ok(rows
        .into_iter()
        .map(|r| Occurrence {
            id: r.0,
            plan_id: r.1,
            occurrence_key: r.2,
            due_ms: r.3,
            grace_ms: r.4,
            status: r.5,
            work_order_id: r.6,
            meter_value: r.7,
            created_ms: r.8,
        })
        .collect())
}

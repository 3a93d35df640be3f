//! Crews: named groups of users at a site. A work order may be assigned to
//! a crew (with or instead of a user); a technician who is a member of the
//! order's crew counts as its assignee for the lifecycle's assignment rule
//! and for checklist results.

use super::store::{self, WorkOrder};
use crate::audit;
use crate::auth::{Principal, Role};
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::{on_db, on_tx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A crew and its members.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Crew {
    pub id: i64,
    pub site_id: i64,
    pub name: String,
    /// User ids, ascending.
    pub members: Vec<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// A new crew.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCrew {
    pub site_id: i64,
    pub name: String,
    #[serde(default)]
    pub members: Vec<i64>,
}

/// A change to a crew: the fields to change and the version read.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewEdit {
    pub version: i64,
    pub name: Option<String>,
    /// Replaces the member list.
    pub members: Option<Vec<i64>>,
}

/// Assign a work order to a crew (`null` removes the crew).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewAssignment {
    pub version: i64,
    pub crew_id: Option<i64>,
}

/// Whether `user` counts as the assignee of `wo`: named as assignee, or a
/// member of its crew.
pub async fn is_assignee(
    tx: &mut WriteTx<'_>,
    wo: &WorkOrder,
    user: i64,
) -> Result<bool, sqlx::Error> {
    if wo.assignee_id == Some(user) {
        return Ok(true);
    }
    let Some(crew) = wo.crew_id else {
        return Ok(false);
    };
    let row: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT user_id FROM crew_members WHERE crew_id = $1 AND user_id = $2")
        .bind(crew).bind(user).fetch_optional(c).await)?;
    Ok(row.is_some())
}

/// 403 for a technician who is neither the assignee nor in the crew.
pub async fn require_assignee(
    tx: &mut WriteTx<'_>,
    who: &Principal,
    wo: &WorkOrder,
    what: &str,
) -> Result<(), AppError> {
    if who.role == Role::Technician && !is_assignee(tx, wo, who.user_id).await? {
        return Err(AppError::Forbidden {
            detail: format!(
                "a technician may only {what} on work orders assigned to them or their crew (work order {} is not)",
                wo.id
            ),
        });
    }
    Ok(())
}

type CrewRow = (i64, i64, String, i64, i64, i64);

async fn members_of(tx: &mut WriteTx<'_>, id: i64) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT user_id FROM crew_members WHERE crew_id = $1 ORDER BY user_id")
        .bind(id).fetch_all(c).await)?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}

fn crew_of(r: CrewRow, members: Vec<i64>) -> Crew {
    Crew {
        id: r.0,
        site_id: r.1,
        name: r.2,
        members,
        created_ms: r.3,
        updated_ms: r.4,
        version: r.5,
    }
}

const CREW_COLS: &str = "id, site_id, name, created_ms, updated_ms, version";

pub async fn get(db: &Db, id: i64) -> Result<Option<Crew>, AppError> {
    let sql = format!("SELECT {CREW_COLS} FROM crews WHERE id = $1");
    let r: Option<CrewRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
    let Some(r) = r else { return Ok(None) };
    let m: Vec<(i64,)> = on_db!(db, p => sqlx::query_as(
        "SELECT user_id FROM crew_members WHERE crew_id = $1 ORDER BY user_id").bind(id).fetch_all(p).await)?;
    Ok(Some(crew_of(r, m.into_iter().map(|(u,)| u).collect())))
}

async fn get_in_tx(tx: &mut WriteTx<'_>, id: i64) -> Result<Option<Crew>, AppError> {
    let sql = format!("SELECT {CREW_COLS} FROM crews WHERE id = $1");
    let r: Option<CrewRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?;
    let Some(r) = r else { return Ok(None) };
    let m = members_of(tx, id).await?;
    Ok(Some(crew_of(r, m)))
}

/// Crews, optionally of one site, by id.
pub async fn list(
    db: &Db,
    site: Option<i64>,
    limit: i64,
    offset: i64,
) -> Result<Vec<Crew>, AppError> {
    let sql = format!(
        "SELECT {CREW_COLS} FROM crews WHERE ($1 IS NULL OR site_id = $1) ORDER BY id LIMIT $2 OFFSET $3"
    );
    let rows: Vec<CrewRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(site).bind(limit).bind(offset).fetch_all(p).await)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let m: Vec<(i64,)> = on_db!(db, p => sqlx::query_as(
            "SELECT user_id FROM crew_members WHERE crew_id = $1 ORDER BY user_id").bind(r.0).fetch_all(p).await)?;
        out.push(crew_of(r, m.into_iter().map(|(u,)| u).collect()));
    }
    Ok(out)
}

fn check_name(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err(AppError::bad_field("name", "must be 1 to 100 characters"));
    }
    Ok(())
}

async fn set_members(tx: &mut WriteTx<'_>, id: i64, members: &[i64]) -> Result<(), AppError> {
    if members.len() > 200 {
        return Err(AppError::bad_field("members", "at most 200 members"));
    }
    let mut m = members.to_vec();
    m.sort_unstable();
    m.dedup();
    for u in &m {
        let row: Option<(bool,)> = on_tx!(tx, c => sqlx::query_as("SELECT active FROM users WHERE id = $1").bind(*u).fetch_optional(c).await)?;
        if !row.is_some_and(|(a,)| a) {
            return Err(AppError::bad_field(
                "members",
                format!("no active user with id {u}"),
            ));
        }
    }
    on_tx!(tx, c => sqlx::query("DELETE FROM crew_members WHERE crew_id = $1").bind(id).execute(c).await.map(|_| ()))?;
    for u in &m {
        on_tx!(tx, c => sqlx::query("INSERT INTO crew_members (crew_id, user_id) VALUES ($1, $2)").bind(id).bind(*u).execute(c).await.map(|_| ()))?;
    }
    Ok(())
}

fn duplicate(e: sqlx::Error, name: &str) -> AppError {
    if let sqlx::Error::Database(d) = &e
        && d.is_unique_violation()
    {
        return AppError::Conflict {
            kind: "duplicate",
            detail: format!("the site already has a crew named {name:?}"),
            field: Some("name".into()),
        };
    }
    e.into()
}

pub async fn create(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    n: &NewCrew,
) -> Result<Crew, AppError> {
    check_name(&n.name)?;
    let mut tx = db.write(caches).await?;
    let site: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT id FROM sites WHERE id = $1").bind(n.site_id).fetch_optional(c).await)?;
    if site.is_none() {
        return Err(AppError::bad_field(
            "site_id",
            format!("no site with id {}", n.site_id),
        ));
    }
    let now = now_ms();
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO crews (site_id, name, created_ms, updated_ms, version) VALUES ($1, $2, $3, $3, 1) RETURNING id")
        .bind(n.site_id).bind(&n.name).bind(now).fetch_one(c).await)
    .map_err(|e| duplicate(e, &n.name))?;
    set_members(&mut tx, id, &n.members).await?;
    let crew = get_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("crew", id))?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "create",
            entity: "crew",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&crew).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(crew)
}

pub async fn update(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
    e: &CrewEdit,
) -> Result<Crew, AppError> {
    let mut tx = db.write(caches).await?;
    let before = get_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("crew", id))?;
    if before.version != e.version {
        return Err(AppError::stale(e.version, before.version));
    }
    let name = e.name.clone().unwrap_or_else(|| before.name.clone());
    check_name(&name)?;
    let now = now_ms();
    on_tx!(tx, c => sqlx::query("UPDATE crews SET name = $1, updated_ms = $2, version = version + 1 WHERE id = $3")
        .bind(&name).bind(now).bind(id).execute(c).await.map(|_| ()))
    .map_err(|err| duplicate(err, &name))?;
    if let Some(m) = &e.members {
        set_members(&mut tx, id, m).await?;
    }
    let after = get_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("crew", id))?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "update",
            entity: "crew",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

/// Sets or clears the crew of a work order (version checked; refused once
/// the order is CLOSED or CANCELLED; the crew must be of the order's site).
pub async fn assign(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo_id: i64,
    a: &CrewAssignment,
) -> Result<WorkOrder, AppError> {
    let mut tx = db.write(caches).await?;
    let before = store::get_in_tx(&mut tx, wo_id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", wo_id))?;
    if before.version != a.version {
        return Err(AppError::stale(a.version, before.version));
    }
    if !before.lifecycle_status()?.costs_open() {
        return Err(AppError::Conflict {
            kind: "work-order-final",
            detail: format!(
                "work order {wo_id} is {} and can no longer be assigned",
                before.status
            ),
            field: None,
        });
    }
    if let Some(c) = a.crew_id {
        let crew = get_in_tx(&mut tx, c)
            .await?
            .ok_or_else(|| AppError::bad_field("crew_id", format!("no crew with id {c}")))?;
        if crew.site_id != before.site_id {
            return Err(AppError::bad_field(
                "crew_id",
                format!("crew {c} is not at site {}", before.site_id),
            ));
        }
    }
    let now = now_ms();
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE work_orders SET crew_id = $1, updated_ms = $2, version = version + 1 WHERE id = $3 AND version = $4")
        .bind(a.crew_id).bind(now).bind(wo_id).bind(a.version).execute(c).await.map(|r| r.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(a.version, a.version + 1));
    }
    let after = store::get_in_tx(&mut tx, wo_id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", wo_id))?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "assign_crew",
            entity: "work_order",
            entity_id: &wo_id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&after).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}

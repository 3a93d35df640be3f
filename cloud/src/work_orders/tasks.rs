//! Checklists: ordered items per work order, their recorded results, and
//! follow-up corrective work orders raised from failed items
//! (docs/specs/work-order-lifecycle.md, "Checklists").

use super::lifecycle::Status;
use super::store::{self, Kind, NewWorkOrder, WorkOrder};
use crate::audit;
use crate::auth::Principal;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::{on_db, on_tx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a checklist item asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// `true` (pass) or `false` (fail).
    PassFail,
    /// A number, in `unit`, optionally within `min`..=`max`.
    Number,
    /// Free text.
    Text,
}

impl TaskKind {
    fn as_str(self) -> &'static str {
        match self {
            TaskKind::PassFail => "pass_fail",
            TaskKind::Number => "number",
            TaskKind::Text => "text",
        }
    }
    fn parse(s: &str) -> Option<TaskKind> {
        [TaskKind::PassFail, TaskKind::Number, TaskKind::Text]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A checklist item and its result.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Task {
    pub id: i64,
    pub work_order_id: i64,
    /// 1, 2, … in checklist order.
    pub position: i64,
    pub text: String,
    pub kind: TaskKind,
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Must be answered before the work order can be completed.
    pub required: bool,
    /// A failed result raises a follow-up corrective work order at once.
    pub follow_up_on_fail: bool,
    /// The recorded value (bool, number or string by `kind`); absent until answered.
    #[schema(value_type = Object)]
    pub value: Option<serde_json::Value>,
    /// Whether the result passed (text results always pass).
    pub passed: Option<bool>,
    pub note: String,
    pub result_by: Option<i64>,
    pub result_ms: Option<i64>,
    /// The follow-up work order raised from this item.
    pub follow_up_id: Option<i64>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// A new checklist item (appended at the end).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTask {
    pub text: String,
    pub kind: TaskKind,
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Default true.
    pub required: Option<bool>,
    /// Default false.
    pub follow_up_on_fail: Option<bool>,
}

/// A result: `value` is a bool (pass_fail), number or string (text).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskResult {
    /// The task's version you read.
    pub version: i64,
    #[schema(value_type = Object)]
    pub value: serde_json::Value,
    #[serde(default)]
    pub note: String,
}

/// The answer to recording a result: the item, and the follow-up work
/// order if one was raised.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Recorded {
    pub task: Task,
    pub follow_up: Option<WorkOrder>,
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: i64,
    work_order_id: i64,
    position: i64,
    text: String,
    kind: String,
    unit: Option<String>,
    min_value: Option<f64>,
    max_value: Option<f64>,
    required: bool,
    follow_up_on_fail: bool,
    value_json: Option<String>,
    passed: Option<bool>,
    note: String,
    result_by: Option<i64>,
    result_ms: Option<i64>,
    follow_up_id: Option<i64>,
    created_ms: i64,
    updated_ms: i64,
    version: i64,
}

const TASK_COLS: &str = "id, work_order_id, position, text, kind, unit, min_value, max_value, required, follow_up_on_fail, value_json, passed, note, result_by, result_ms, follow_up_id, created_ms, updated_ms, version";

fn task_of(r: TaskRow) -> Result<Task, AppError> {
    let kind = TaskKind::parse(&r.kind).ok_or_else(|| {
        AppError::Internal(anyhow::anyhow!("task {} has kind {:?}", r.id, r.kind))
    })?;
    Ok(Task {
        id: r.id,
        work_order_id: r.work_order_id,
        position: r.position,
        text: r.text,
        kind,
        unit: r.unit,
        min: r.min_value,
        max: r.max_value,
        required: r.required,
        follow_up_on_fail: r.follow_up_on_fail,
        value: r.value_json.and_then(|v| serde_json::from_str(&v).ok()),
        passed: r.passed,
        note: r.note,
        result_by: r.result_by,
        result_ms: r.result_ms,
        follow_up_id: r.follow_up_id,
        created_ms: r.created_ms,
        updated_ms: r.updated_ms,
        version: r.version,
    })
}

/// The checklist of a work order, in order.
pub async fn list(db: &Db, wo: i64) -> Result<Vec<Task>, AppError> {
    let sql = format!(
        "SELECT {TASK_COLS} FROM work_order_tasks WHERE work_order_id = $1 ORDER BY position"
    );
    let rows: Vec<TaskRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(wo).fetch_all(p).await)?;
    rows.into_iter().map(task_of).collect()
}

async fn get_in_tx(tx: &mut WriteTx<'_>, wo: i64, id: i64) -> Result<Task, AppError> {
    let sql =
        format!("SELECT {TASK_COLS} FROM work_order_tasks WHERE id = $1 AND work_order_id = $2");
    let r: Option<TaskRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).bind(wo).fetch_optional(c).await)?;
    r.map(task_of)
        .transpose()?
        .ok_or_else(|| AppError::not_found(&format!("task of work order {wo}"), id))
}

fn check_new(n: &NewTask) -> Result<(), AppError> {
    if n.text.trim().is_empty() || n.text.chars().count() > 500 {
        return Err(AppError::bad_field("text", "must be 1 to 500 characters"));
    }
    if n.kind != TaskKind::Number && (n.unit.is_some() || n.min.is_some() || n.max.is_some()) {
        return Err(AppError::bad_field(
            "unit",
            "unit, min and max apply to number items only",
        ));
    }
    if n.unit.as_ref().is_some_and(|u| u.chars().count() > 20) {
        return Err(AppError::bad_field("unit", "at most 20 characters"));
    }
    for (f, v) in [("min", n.min), ("max", n.max)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err(AppError::bad_field(f, "must be a finite number"));
        }
    }
    if let (Some(lo), Some(hi)) = (n.min, n.max)
        && lo > hi
    {
        return Err(AppError::bad_field("max", "must not be below min"));
    }
    Ok(())
}

/// Appends a checklist item; refused once the order is COMPLETED, CLOSED or
/// CANCELLED.
pub async fn add(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo_id: i64,
    n: &NewTask,
) -> Result<Task, AppError> {
    check_new(n)?;
    let mut tx = db.write(caches).await?;
    let wo = store::get_in_tx(&mut tx, wo_id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", wo_id))?;
    if matches!(
        wo.lifecycle_status()?,
        Status::Completed | Status::Closed | Status::Cancelled
    ) {
        return Err(AppError::Conflict {
            kind: "work-order-final",
            detail: format!(
                "work order {wo_id} is {}: its checklist can no longer change",
                wo.status
            ),
            field: None,
        });
    }
    let (count,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "SELECT COUNT(*) FROM work_order_tasks WHERE work_order_id = $1").bind(wo_id).fetch_one(c).await)?;
    if count >= 500 {
        return Err(AppError::bad_field(
            "text",
            "at most 500 items per work order",
        ));
    }
    let now = now_ms();
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO work_order_tasks (work_order_id, position, text, kind, unit, min_value, max_value, required, follow_up_on_fail, note, created_ms, updated_ms, version) \
         VALUES ($1, (SELECT COALESCE(MAX(position), 0) + 1 FROM work_order_tasks WHERE work_order_id = $1), $2, $3, $4, $5, $6, $7, $8, '', $9, $9, 1) RETURNING id")
        .bind(wo_id).bind(&n.text).bind(n.kind.as_str()).bind(&n.unit).bind(n.min).bind(n.max)
        .bind(n.required.unwrap_or(true)).bind(n.follow_up_on_fail.unwrap_or(false)).bind(now)
        .fetch_one(c).await)?;
    let t = get_in_tx(&mut tx, wo_id, id).await?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "create",
            entity: "work_order_task",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&t).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(t)
}

/// Whether `value` answers `t`, and whether it passes.
fn judge(t: &Task, value: &serde_json::Value) -> Result<bool, AppError> {
    match t.kind {
        TaskKind::PassFail => value
            .as_bool()
            .ok_or_else(|| AppError::bad_field("value", "true (pass) or false (fail)")),
        TaskKind::Number => {
            let v = value
                .as_f64()
                .filter(|v| v.is_finite())
                .ok_or_else(|| AppError::bad_field("value", "a number"))?;
            Ok(t.min.is_none_or(|lo| v >= lo) && t.max.is_none_or(|hi| v <= hi))
        }
        TaskKind::Text => {
            let s = value
                .as_str()
                .ok_or_else(|| AppError::bad_field("value", "a string"))?;
            if s.chars().count() > 5000 {
                return Err(AppError::bad_field("value", "at most 5000 characters"));
            }
            Ok(true)
        }
    }
}

/// Records the result of an item: ExecuteWorkOrder (checked by the
/// caller), a technician only on orders assigned to them or their crew,
/// only while the order is IN_PROGRESS. A failed item marked
/// `follow_up_on_fail` raises its follow-up in the same transaction.
pub async fn record(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo_id: i64,
    task_id: i64,
    r: &TaskResult,
) -> Result<Recorded, AppError> {
    if r.note.chars().count() > 5000 {
        return Err(AppError::bad_field("note", "at most 5000 characters"));
    }
    let mut tx = db.write(caches).await?;
    let wo = store::get_in_tx(&mut tx, wo_id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", wo_id))?;
    super::crews::require_assignee(&mut tx, who, &wo, "record checklist results").await?;
    if wo.lifecycle_status()? != Status::InProgress {
        return Err(AppError::Conflict {
            kind: "work-order-not-in-progress",
            detail: format!(
                "work order {wo_id} is {}: checklist results are recorded only while it is IN_PROGRESS",
                wo.status
            ),
            field: None,
        });
    }
    let before = get_in_tx(&mut tx, wo_id, task_id).await?;
    if before.version != r.version {
        return Err(AppError::stale(r.version, before.version));
    }
    let passed = judge(&before, &r.value)?;
    let now = now_ms();
    on_tx!(tx, c => sqlx::query(
        "UPDATE work_order_tasks SET value_json = $1, passed = $2, note = $3, result_by = $4, result_ms = $5, updated_ms = $5, version = version + 1 WHERE id = $6")
        .bind(r.value.to_string()).bind(passed).bind(&r.note).bind(who.user_id).bind(now).bind(task_id)
        .execute(c).await.map(|_| ()))?;
    let mut task = get_in_tx(&mut tx, wo_id, task_id).await?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "record_result",
            entity: "work_order_task",
            entity_id: &task_id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&task).ok(),
        },
    )
    .await?;
    let mut follow_up = None;
    if !passed && task.follow_up_on_fail && task.follow_up_id.is_none() {
        let f = raise_follow_up(&mut tx, who, &wo, &task, now).await?;
        task = get_in_tx(&mut tx, wo_id, task_id).await?;
        follow_up = Some(f);
    }
    tx.commit().await?;
    Ok(Recorded { task, follow_up })
}

/// Raises the follow-up of a failed item on request (RequestWorkOrder,
/// checked by the caller): 409 unless the item failed and has none yet.
pub async fn follow_up(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    wo_id: i64,
    task_id: i64,
) -> Result<WorkOrder, AppError> {
    let mut tx = db.write(caches).await?;
    let wo = store::get_in_tx(&mut tx, wo_id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", wo_id))?;
    let task = get_in_tx(&mut tx, wo_id, task_id).await?;
    if task.passed != Some(false) {
        return Err(AppError::Conflict {
            kind: "task-not-failed",
            detail: format!("task {task_id} has not failed: only a failed item raises a follow-up"),
            field: None,
        });
    }
    if let Some(f) = task.follow_up_id {
        return Err(AppError::Conflict {
            kind: "follow-up-exists",
            detail: format!("task {task_id} already raised work order {f}"),
            field: None,
        });
    }
    let f = raise_follow_up(&mut tx, who, &wo, &task, now_ms()).await?;
    tx.commit().await?;
    Ok(f)
}

async fn raise_follow_up(
    tx: &mut WriteTx<'_>,
    who: &Principal,
    parent: &WorkOrder,
    task: &Task,
    now: i64,
) -> Result<WorkOrder, AppError> {
    let mut title = format!("Follow-up: {}", task.text);
    if title.chars().count() > 200 {
        title = title.chars().take(199).collect::<String>() + "…";
    }
    let n = NewWorkOrder {
        site_id: parent.site_id,
        asset_id: parent.asset_id,
        kind: Kind::Corrective,
        title,
        description: format!(
            "Raised from failed checklist item {} of work order {} ({}). Result: {}. Note: {}",
            task.position,
            parent.id,
            parent.title,
            task.value
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            task.note
        ),
        priority: Some(parent.priority),
        assignee_id: None,
        due_ms: None,
    };
    let created = store::create_in_tx(tx, who.user_id, &who.actor(), &n, now).await?;
    on_tx!(tx, c => sqlx::query("UPDATE work_orders SET parent_id = $1 WHERE id = $2")
        .bind(parent.id).bind(created.id).execute(c).await.map(|_| ()))?;
    on_tx!(tx, c => sqlx::query("UPDATE work_order_tasks SET follow_up_id = $1, updated_ms = $2, version = version + 1 WHERE id = $3")
        .bind(created.id).bind(now).bind(task.id).execute(c).await.map(|_| ()))?;
    let wo = store::get_in_tx(tx, created.id)
        .await?
        .ok_or_else(|| AppError::not_found("work order", created.id))?;
    audit::record(
        tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "follow_up",
            entity: "work_order",
            entity_id: &wo.id.to_string(),
            before: None,
            after: Some(serde_json::json!({ "parent_id": parent.id, "task_id": task.id })),
        },
    )
    .await?;
    Ok(wo)
}

/// The COMPLETE hook: 409 naming the required items still unanswered.
pub async fn check_complete(tx: &mut WriteTx<'_>, wo: i64) -> Result<(), AppError> {
    let open: Vec<(i64, i64, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id, position, text FROM work_order_tasks WHERE work_order_id = $1 AND required AND value_json IS NULL ORDER BY position")
        .bind(wo).fetch_all(c).await)?;
    if open.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = open
        .iter()
        .map(|(id, pos, text)| format!("#{pos} {text:?} (task {id})"))
        .collect();
    Err(AppError::Conflict {
        kind: "checklist-incomplete",
        detail: format!(
            "work order {wo} has unanswered required checklist items: {}",
            names.join(", ")
        ),
        field: Some("action".into()),
    })
}

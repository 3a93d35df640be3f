//! Work orders generated from PM plans (docs/specs/preventive-maintenance.md).
//!
//! [`generate`] looks at every active plan:
//!
//! - calendar/RRULE plans: every occurrence `t` with `from_ms <= t <=
//!   now + horizon` after the latest one already recorded. Occurrences
//!   already past their grace (`t + grace < now`, i.e. the generator was
//!   down) are recorded as `missed` without a work order, except the most
//!   recent of them, which does get one (the work is still owed once, not
//!   once per missed period). The others each get a work order due at `t`.
//! - meter plans: the asset's meter of the plan's role
//!   ([`crate::assets::meters::value_for_role`]: a reading, or derived from
//!   `ac_power`); when it reaches the previous occurrence's reading (or
//!   `start_value`) + `every`, one work order due at the reading's time.
//!
//! Each occurrence is claimed by inserting `(plan_id, occurrence_key)` into
//! `pm_occurrences` (`ON CONFLICT DO NOTHING`) in the same transaction as its
//! work order, history row and audit records: a concurrent generator that
//! loses the race inserts nothing and creates nothing.
//!
//! Generated work orders are created by the plan's owner (`created_by`,
//! history `user_id`); the audit log's actor is [`ACTOR`] (`system:pm`).

use super::schedule::{DAY_MS, Schedule};
use super::{Plan, active_plans};
use crate::audit;
use crate::db::{Caches, Db};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::on_tx;
use crate::work_orders::store::{self as wo_store, NewWorkOrder};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// The audit actor of generated work orders and recorded occurrences.
pub const ACTOR: &str = "system:pm";
/// Time between passes of the background task.
pub const INTERVAL: Duration = Duration::from_secs(600);

/// What one generation pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct GenerateReport {
    /// Active plans looked at.
    pub plans: usize,
    /// Work orders created.
    pub generated: usize,
    /// Occurrences recorded as missed (no work order).
    pub missed: usize,
    /// Plans that failed (logged; retried at the next pass).
    pub failed_plans: Vec<i64>,
}

/// One generation pass as of `now` (Unix ms; tests simulate downtime by
/// passing a later time). Fails only if the plans cannot be read; a failing
/// plan is logged and listed in the report.
pub async fn generate(db: &Db, caches: &Caches, now: i64) -> Result<GenerateReport, AppError> {
    let plans = active_plans(db).await?;
    let mut report = GenerateReport {
        plans: plans.len(),
        ..GenerateReport::default()
    };
    for plan in plans {
        let res = match &plan.schedule {
            Schedule::Meter {
                role,
                every,
                start_value,
            } => {
                meter_plan(
                    db,
                    caches,
                    &plan,
                    role,
                    *every,
                    *start_value,
                    now,
                    &mut report,
                )
                .await
            }
            _ => calendar_plan(db, caches, &plan, now, &mut report).await,
        };
        if let Err(e) = res {
            tracing::warn!(plan = plan.id, error = ?e, "PM generation failed for a plan");
            report.failed_plans.push(plan.id);
        }
    }
    if report.generated > 0 || report.missed > 0 {
        tracing::info!(
            generated = report.generated,
            missed = report.missed,
            "PM generation"
        );
    }
    Ok(report)
}

async fn calendar_plan(
    db: &Db,
    caches: &Caches,
    plan: &Plan,
    now: i64,
    report: &mut GenerateReport,
) -> Result<(), AppError> {
    let Some(rec) = plan
        .schedule
        .recurrence()
        .map_err(|e| AppError::bad_field(e.field, e.detail))?
    else {
        return Ok(());
    };
    // Only occurrences recorded since the plan (re)started count: after a
    // schedule change the old schedule's keys say nothing about the new one.
    let last: Option<(Option<i64>,)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT MAX(occurrence_key) FROM pm_occurrences WHERE plan_id = $1 AND created_ms >= $2")
        .bind(plan.id).bind(plan.from_ms).fetch_optional(p).await)?;
    let last = last.and_then(|(k,)| k);
    let after = last.unwrap_or(i64::MIN).max(plan.from_ms - 1);
    let until = now.saturating_add(plan.horizon_days * DAY_MS);
    let grace_ms = plan.grace_days * DAY_MS;
    let due = rec.between(after, until);
    let past = due.iter().take_while(|t| **t + grace_ms < now).count();
    for (i, t) in due.iter().enumerate() {
        // Past their grace: all missed but the most recent, which is owed.
        let missed = i + 1 < past;
        if record(db, caches, plan, *t, *t, grace_ms, None, missed).await? {
            if missed {
                report.missed += 1;
            } else {
                report.generated += 1;
            }
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn meter_plan(
    db: &Db,
    caches: &Caches,
    plan: &Plan,
    role: &str,
    every: f64,
    start_value: f64,
    now: i64,
    report: &mut GenerateReport,
) -> Result<(), AppError> {
    let Some(asset) = plan.asset_id else {
        return Ok(());
    };
    let Some((value, ts)) = crate::assets::meters::value_for_role(db, asset, role, now).await?
    else {
        return Ok(());
    };
    let last: Option<(i64, Option<f64>)> = crate::on_db!(db, p => sqlx::query_as(
        "SELECT occurrence_key, meter_value FROM pm_occurrences WHERE plan_id = $1 ORDER BY occurrence_key DESC LIMIT 1")
        .bind(plan.id).fetch_optional(p).await)?;
    let (key, base) = match last {
        Some((k, v)) => (k + 1, v.unwrap_or(start_value)),
        None => (1, start_value),
    };
    if value >= base + every
        && record(
            db,
            caches,
            plan,
            key,
            ts,
            plan.grace_days * DAY_MS,
            Some(value),
            false,
        )
        .await?
    {
        report.generated += 1;
    }
    Ok(())
}

/// Claims occurrence `key` of `plan` and, unless `missed`, creates its work
/// order, all in one transaction. `false` if it was already recorded.
#[allow(clippy::too_many_arguments)]
async fn record(
    db: &Db,
    caches: &Caches,
    plan: &Plan,
    key: i64,
    due_ms: i64,
    grace_ms: i64,
    meter_value: Option<f64>,
    missed: bool,
) -> Result<bool, AppError> {
    let now = now_ms();
    let status = if missed { "missed" } else { "generated" };
    let mut tx = db.write(caches).await?;
    let claimed: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO pm_occurrences (plan_id, occurrence_key, due_ms, grace_ms, status, work_order_id, meter_value, created_ms) \
         VALUES ($1, $2, $3, $4, $5, NULL, $6, $7) ON CONFLICT (plan_id, occurrence_key) DO NOTHING RETURNING id")
        .bind(plan.id).bind(key).bind(due_ms).bind(grace_ms).bind(status).bind(meter_value).bind(now)
        .fetch_optional(c).await)?;
    let Some((occ_id,)) = claimed else {
        return Ok(false); // another generator has it; the transaction rolls back
    };
    let mut wo_id = None;
    if !missed {
        let n = NewWorkOrder {
            site_id: plan.site_id,
            asset_id: plan.asset_id,
            kind: plan.kind.work_order_kind(),
            title: plan.title.clone(),
            description: plan.description.clone(),
            priority: Some(plan.priority),
            assignee_id: None,
            due_ms: Some(due_ms),
        };
        let wo = wo_store::create_in_tx(&mut tx, plan.owner_id, ACTOR, &n, now).await?;
        on_tx!(tx, c => sqlx::query("UPDATE pm_occurrences SET work_order_id = $1 WHERE id = $2")
            .bind(wo.id).bind(occ_id).execute(c).await.map(|_| ()))?;
        wo_id = Some(wo.id);
    }
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: ACTOR,
            action: if missed { "pm_missed" } else { "pm_generated" },
            entity: "pm_plan",
            entity_id: &plan.id.to_string(),
            before: None,
            after: Some(serde_json::json!({
                "occurrence_id": occ_id, "occurrence_key": key, "due_ms": due_ms,
                "grace_ms": grace_ms, "status": status, "work_order_id": wo_id,
                "meter_value": meter_value,
            })),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// Runs [`generate`] now and then every [`INTERVAL`] until `shutdown`.
pub fn spawn(db: Db, caches: Arc<Caches>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                res = generate(&db, &caches, now_ms()) => {
                    if let Err(e) = res {
                        tracing::warn!(error = ?e, "PM generation failed; retrying at the next pass");
                    }
                }
            }
        }
    })
}

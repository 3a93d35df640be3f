//! The alarm evaluator (docs/specs/alarms.md).
//!
//! A pass ([`evaluate`]) takes every active rule and each of its targets
//! (asset, point): a rule scoped to a point targets every asset the point
//! is linked to; a rule scoped to an asset class and role targets every
//! point linked with that role to an asset of that class. Points linked to
//! no asset are not evaluated (alarms belong to assets).
//!
//! Per target, `alarm_eval_state` holds a watermark: samples with
//! `ts_ms <= watermark_ms` have been evaluated. A pass reads the samples
//! after it in time order (at most [`CHUNK`] per transaction, looping until
//! none are left), applies the condition, raises or clears, and moves the
//! watermark, all in one transaction. So a pass is idempotent, a crash
//! loses nothing (the transaction rolls back and the next pass redoes it),
//! and a lagging evaluator catches up from the watermark. Samples that
//! arrive with a time at or before the watermark (late backfill) are not
//! evaluated: alarms follow the newest data.
//!
//! Rules of condition `anomaly` read the asset's anomaly events (stored
//! by ingest from wire-v3 batches) instead of samples, by the same
//! watermark scheme ([`eval_anomaly`]): the events of the target's
//! gateway (the gateway of its point) for the asset of that name.
//!
//! The ingest handler wakes the background task ([`spawn`]) after each
//! committed batch through [`Caches::alarm_wake`]; the task also runs every
//! [`INTERVAL`], so a lost wake-up or a failed pass only delays.

use super::{Condition, Op, Rule, Scope, active_rules};
use crate::audit;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::problem::AppError;
use crate::work_orders::store::{self as wo_store, Kind, NewWorkOrder};
use crate::{on_db, on_tx};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// The audit actor of raised and cleared alarms and their work orders.
pub const ACTOR: &str = "system:alarms";
/// Time between passes when no ingest wakes the evaluator.
pub const INTERVAL: Duration = Duration::from_secs(30);
/// A new (or reactivated) rule looks back this far (1 hour).
pub const LOOKBACK_MS: i64 = 3_600_000;
/// The telemetry window kept as evidence: the trigger and the 15 minutes before.
pub const EVIDENCE_WINDOW_MS: i64 = 15 * 60_000;
/// At most this many samples in the evidence (the latest ones).
pub const EVIDENCE_MAX_SAMPLES: i64 = 2_000;
/// Samples evaluated per target and transaction.
pub const CHUNK: i64 = 5_000;
/// Irradiance assumed when the site has no recent `irradiance` reading (W/m²).
pub const DEFAULT_IRRADIANCE: f64 = 1000.0;
/// Readings older than this before the trigger are not used for the estimate.
const ESTIMATE_MAX_AGE_MS: i64 = 15 * 60_000;

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct EvalReport {
    /// (rule, asset, point) targets looked at.
    pub targets: usize,
    /// Samples evaluated.
    pub samples: usize,
    pub raised: usize,
    pub cleared: usize,
    /// Targets that failed (logged; retried at the next pass).
    pub failed: usize,
}

/// Estimated energy lost while an asset is down (docs/specs/alarms.md).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct EnergyEstimate {
    /// `rated_power_kw` from the asset's nameplate (0 if absent).
    pub rated_power_kw: f64,
    /// Plane-of-array irradiance used (W/m²).
    pub irradiance_w_m2: f64,
    /// `point <id>` or `default`.
    pub irradiance_source: String,
    /// `rated_power_kw × irradiance / 1000` (irradiance capped at 1200).
    pub expected_kw: f64,
    /// The asset's `ac_power` reading in kW, if recent.
    pub actual_kw: Option<f64>,
    /// `expected − actual` (≥ 0); `expected` without a reading. Equal to
    /// the kWh lost per hour of outage.
    pub lost_kw: f64,
    /// The priority band of `lost_kw`.
    pub priority: i64,
}

/// Expected and lost kW (see [`EnergyEstimate`]).
pub fn energy_lost(rated_kw: f64, irradiance: f64, actual_kw: Option<f64>) -> (f64, f64) {
    let expected = rated_kw.max(0.0) * irradiance.clamp(0.0, 1200.0) / 1000.0;
    let lost = match actual_kw {
        Some(a) => (expected - a.max(0.0)).max(0.0),
        None => expected,
    };
    (expected, lost)
}

/// Work-order priority for `lost_kw` (kWh lost per hour of outage):
/// ≥ 250 → 1, ≥ 50 → 2, ≥ 10 → 3, ≥ 1 → 4, else 5.
pub fn priority_for(lost_kw: f64) -> i64 {
    match lost_kw {
        x if x >= 250.0 => 1,
        x if x >= 50.0 => 2,
        x if x >= 10.0 => 3,
        x if x >= 1.0 => 4,
        _ => 5,
    }
}

/// A sample of a bit register as its bits: a whole number in
/// `0..=u32::MAX`, else `None` (not a register reading).
pub fn bits(value: f64) -> Option<u32> {
    (value.is_finite() && value.fract() == 0.0 && (0.0..=f64::from(u32::MAX)).contains(&value))
        .then_some(value as u32)
}

fn to_kw(value: f64, unit: &str) -> Option<f64> {
    match unit {
        "W" => Some(value / 1000.0),
        "kW" => Some(value),
        "MW" => Some(value * 1000.0),
        _ => None,
    }
}

/// One pass over every active rule.
pub async fn evaluate(db: &Db, caches: &Caches) -> Result<EvalReport, AppError> {
    let rules = active_rules(db).await?;
    let mut report = EvalReport::default();
    for rule in rules {
        let targets = match targets(db, &rule).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(rule = rule.id, error = ?e, "alarm rule: cannot resolve its targets");
                report.failed += 1;
                continue;
            }
        };
        for (asset, point) in targets {
            report.targets += 1;
            loop {
                match eval_target(db, caches, &rule, asset, point, &mut report).await {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        tracing::warn!(rule = rule.id, asset, point, error = ?e, "alarm evaluation failed; retrying at the next pass");
                        report.failed += 1;
                        break;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// (asset, point) pairs a rule applies to.
async fn targets(db: &Db, rule: &Rule) -> Result<Vec<(i64, i64)>, AppError> {
    Ok(match &rule.scope {
        Scope::Point { point_id } => on_db!(db, p => sqlx::query_as(
            "SELECT asset_id, point_id FROM asset_points WHERE point_id = $1 ORDER BY asset_id")
            .bind(point_id).fetch_all(p).await)?,
        Scope::AssetClass { class, role } => on_db!(db, p => sqlx::query_as(
            "SELECT ap.asset_id, ap.point_id FROM asset_points ap JOIN assets a ON a.id = ap.asset_id \
             WHERE a.class = $1 AND ap.role = $2 ORDER BY ap.asset_id, ap.point_id")
            .bind(class).bind(role).fetch_all(p).await)?,
    })
}

const STATE_SQL: &str = "SELECT watermark_ms, pending_since_ms FROM alarm_eval_state WHERE rule_id = $1 AND asset_id = $2 AND point_id = $3";

/// Evaluates one chunk of a target's new samples; `true` if more remain.
async fn eval_target(
    db: &Db,
    caches: &Caches,
    rule: &Rule,
    asset: i64,
    point: i64,
    report: &mut EvalReport,
) -> Result<bool, AppError> {
    if let Condition::Anomaly { model_id } = &rule.condition {
        return eval_anomaly(db, caches, rule, model_id.as_deref(), asset, point, report).await;
    }
    // Cheap check outside the write transaction: anything new?
    let state: Option<(i64, Option<i64>)> = on_db!(db, p => sqlx::query_as(STATE_SQL)
        .bind(rule.id).bind(asset).bind(point).fetch_optional(p).await)?;
    let floor = rule.from_ms.saturating_sub(LOOKBACK_MS);
    let start = state.map_or(floor, |s| s.0.max(floor));
    let newest: (Option<i64>,) = on_db!(db, p => sqlx::query_as("SELECT MAX(ts_ms) FROM samples WHERE point_id = $1")
        .bind(point).fetch_one(p).await)?;
    if newest.0.is_none_or(|n| n <= start) {
        return Ok(false);
    }

    let mut tx = db.write(caches).await?;
    // Again inside the transaction, through a no-op upsert: on Postgres it
    // row-locks the target's state until commit, so concurrent evaluators
    // (other replicas, `POST /api/v1/alarms/evaluate`) take a target one at
    // a time and the later one sees the watermark the earlier one moved.
    let (wm, mut pending): (i64, Option<i64>) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO alarm_eval_state (rule_id, asset_id, point_id, watermark_ms, pending_since_ms) VALUES ($1, $2, $3, $4, NULL) \
         ON CONFLICT (rule_id, asset_id, point_id) DO UPDATE SET watermark_ms = alarm_eval_state.watermark_ms \
         RETURNING watermark_ms, pending_since_ms")
        .bind(rule.id).bind(asset).bind(point).bind(floor).fetch_one(c).await)?;
    let start = wm.max(floor);
    let new: Vec<(i64, Option<f64>)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT ts_ms, value FROM samples WHERE point_id = $1 AND ts_ms > $2 ORDER BY ts_ms LIMIT $3")
        .bind(point).bind(start).bind(CHUNK).fetch_all(c).await)?;
    let Some(&(watermark, _)) = new.last() else {
        return Ok(false);
    };
    let more = new.len() as i64 == CHUNK;
    // Rate of change needs the window before the first new sample.
    let mut window: VecDeque<(i64, f64)> = VecDeque::new();
    if let Condition::RateOfChange { window_s, .. } = rule.condition {
        let hist: Vec<(i64, Option<f64>)> = on_tx!(tx, c => sqlx::query_as(
            "SELECT ts_ms, value FROM samples WHERE point_id = $1 AND ts_ms >= $2 AND ts_ms <= $3 AND value IS NOT NULL ORDER BY ts_ms")
            .bind(point).bind(start - window_s * 1000).bind(start).fetch_all(c).await)?;
        window.extend(hist.into_iter().filter_map(|(t, v)| v.map(|v| (t, v))));
    }
    let active: Option<(i64, i64)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id, point_id FROM alarms WHERE rule_id = $1 AND asset_id = $2 AND state = 'active'")
        .bind(rule.id).bind(asset).fetch_optional(c).await)?;
    // An alarm raised from another point of the same asset blocks raising
    // (one active alarm per rule and asset) and is cleared by its own point.
    let blocked = active.is_some_and(|(_, p)| p != point);
    let mut here = active.filter(|(_, p)| *p == point).map(|(id, _)| id);
    let mut last: Option<(i64, f64)> = None;

    for (ts, v) in new {
        let Some(v) = v else { continue };
        report.samples += 1;
        let (breach, clear) = match rule.condition {
            Condition::Threshold {
                op,
                value,
                clear_value,
                ..
            } => {
                let c = clear_value.unwrap_or(value);
                match op {
                    Op::Above => (v > value, v < c),
                    Op::Below => (v < value, v > c),
                }
            }
            Condition::RateOfChange {
                delta_per_min,
                window_s,
            } => {
                while window
                    .front()
                    .is_some_and(|(t, _)| *t < ts - window_s * 1000)
                {
                    window.pop_front();
                }
                let rate = window.front().and_then(|(t0, v0)| {
                    (*t0 < ts).then(|| (v - v0) / ((ts - t0) as f64 / 60_000.0))
                });
                window.push_back((ts, v));
                let breach = rate.is_some_and(|r| {
                    if delta_per_min > 0.0 {
                        r >= delta_per_min
                    } else {
                        r <= delta_per_min
                    }
                });
                (breach, !breach)
            }
            Condition::BitMask { mask, .. } => match bits(v) {
                Some(b) => (b & mask != 0, b & mask == 0),
                None => (false, false),
            },
            // Dispatched to eval_anomaly above: never reached here.
            Condition::Anomaly { .. } => (false, false),
        };
        if let Some(id) = here {
            last = Some((ts, v));
            if clear {
                clear_alarm(&mut tx, id, ts, v).await?;
                report.cleared += 1;
                here = None;
                last = None;
            }
            pending = None;
            continue;
        }
        if !breach {
            pending = None;
            continue;
        }
        let since = *pending.get_or_insert(ts);
        let for_ms = match rule.condition {
            Condition::Threshold { for_s, .. } | Condition::BitMask { for_s, .. } => for_s * 1000,
            Condition::RateOfChange { .. } | Condition::Anomaly { .. } => 0,
        };
        if ts - since >= for_ms && !blocked {
            if let Some(id) = raise(&mut tx, rule, asset, point, ts, v, None).await? {
                report.raised += 1;
                here = Some(id);
            }
            pending = None;
        }
    }
    if let (Some(id), Some((ts, v))) = (here, last) {
        on_tx!(tx, c => sqlx::query("UPDATE alarms SET last_value = $1, last_ms = $2 WHERE id = $3")
            .bind(v).bind(ts).bind(id).execute(c).await.map(|_| ()))?;
    }
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO alarm_eval_state (rule_id, asset_id, point_id, watermark_ms, pending_since_ms) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (rule_id, asset_id, point_id) DO UPDATE SET watermark_ms = excluded.watermark_ms, pending_since_ms = excluded.pending_since_ms")
        .bind(rule.id).bind(asset).bind(point).bind(watermark).bind(pending).execute(c).await.map(|_| ()))?;
    tx.commit().await?;
    Ok(more)
}

/// An anomaly event as stored by ingest.
#[derive(Debug, Clone, sqlx::FromRow)]
struct AnomalyRow {
    id: i64,
    kind: String,
    model_id: String,
    model_version: String,
    ts_ms: i64,
    window_start_ms: i64,
    score: Option<f64>,
    raise_level: Option<f64>,
    summary: String,
    explanation: String,
}

impl AnomalyRow {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "event_id": self.id, "model_id": self.model_id, "model_version": self.model_version,
            "ts_ms": self.ts_ms, "window_start_ms": self.window_start_ms, "score": self.score,
            "raise_level": self.raise_level, "summary": self.summary,
            "explanation": serde_json::from_str::<serde_json::Value>(&self.explanation)
                .unwrap_or(serde_json::Value::Null),
        })
    }

    /// The technician sentences of the explanation, largest share first.
    fn sentences(&self, n: usize) -> Vec<String> {
        serde_json::from_str::<Vec<serde_json::Value>>(&self.explanation)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| {
                let text = c.get("text")?.as_str()?;
                let share = c.get("share").and_then(serde_json::Value::as_f64);
                Some(match share {
                    Some(sh) => format!("{text} ({:.0} % of the deviation)", sh * 100.0),
                    None => text.to_string(),
                })
            })
            .take(n)
            .collect()
    }
}

/// Evaluates one chunk of an anomaly rule's target: the anomaly events of
/// the gateway of `point` for the asset named like `asset`, after the
/// watermark, in time order. A `raised` event raises (trigger value = the
/// score), a `cleared` one clears; `true` if more remain.
async fn eval_anomaly(
    db: &Db,
    caches: &Caches,
    rule: &Rule,
    model: Option<&str>,
    asset: i64,
    point: i64,
    report: &mut EvalReport,
) -> Result<bool, AppError> {
    let floor = rule.from_ms.saturating_sub(LOOKBACK_MS);
    let who: Option<(String, String)> = on_db!(db, p => sqlx::query_as(
        "SELECT p.gateway_id, a.name FROM points p, assets a WHERE p.id = $1 AND a.id = $2")
        .bind(point).bind(asset).fetch_optional(p).await)?;
    let Some((gw, name)) = who else {
        return Ok(false);
    };
    let state: Option<(i64, Option<i64>)> = on_db!(db, p => sqlx::query_as(STATE_SQL)
        .bind(rule.id).bind(asset).bind(point).fetch_optional(p).await)?;
    let start = state.map_or(floor, |s| s.0.max(floor));
    let newest: (Option<i64>,) = on_db!(db, p => sqlx::query_as(
        "SELECT MAX(ts_ms) FROM anomaly_events WHERE gateway_id = $1 AND asset = $2")
        .bind(&gw).bind(&name).fetch_one(p).await)?;
    if newest.0.is_none_or(|n| n <= start) {
        return Ok(false);
    }

    let mut tx = db.write(caches).await?;
    let (wm,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO alarm_eval_state (rule_id, asset_id, point_id, watermark_ms, pending_since_ms) VALUES ($1, $2, $3, $4, NULL) \
         ON CONFLICT (rule_id, asset_id, point_id) DO UPDATE SET watermark_ms = alarm_eval_state.watermark_ms \
         RETURNING watermark_ms")
        .bind(rule.id).bind(asset).bind(point).bind(floor).fetch_one(c).await)?;
    let start = wm.max(floor);
    let events: Vec<AnomalyRow> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id, kind, model_id, model_version, ts_ms, window_start_ms, score, raise_level, summary, explanation \
         FROM anomaly_events WHERE gateway_id = $1 AND asset = $2 AND ts_ms > $3 ORDER BY ts_ms, id LIMIT $4")
        .bind(&gw).bind(&name).bind(start).bind(CHUNK).fetch_all(c).await)?;
    let Some(watermark) = events.last().map(|e| e.ts_ms) else {
        return Ok(false);
    };
    let more = events.len() as i64 == CHUNK;
    let active: Option<(i64, i64)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT id, point_id FROM alarms WHERE rule_id = $1 AND asset_id = $2 AND state = 'active'")
        .bind(rule.id).bind(asset).fetch_optional(c).await)?;
    let blocked = active.is_some_and(|(_, p)| p != point);
    let mut here = active.filter(|(_, p)| *p == point).map(|(id, _)| id);
    for e in events
        .iter()
        .filter(|e| model.is_none_or(|m| m == e.model_id))
    {
        report.samples += 1;
        let score = e.score.unwrap_or(0.0);
        match (e.kind.as_str(), here) {
            ("raised", None) if !blocked => {
                if let Some(id) =
                    raise(&mut tx, rule, asset, point, e.ts_ms, score, Some(e)).await?
                {
                    report.raised += 1;
                    here = Some(id);
                }
            }
            ("cleared", Some(id)) => {
                clear_alarm(&mut tx, id, e.ts_ms, score).await?;
                report.cleared += 1;
                here = None;
            }
            _ => {}
        }
    }
    on_tx!(tx, c => sqlx::query(
        "UPDATE alarm_eval_state SET watermark_ms = $4 WHERE rule_id = $1 AND asset_id = $2 AND point_id = $3")
        .bind(rule.id).bind(asset).bind(point).bind(watermark).execute(c).await.map(|_| ()))?;
    tx.commit().await?;
    Ok(more)
}

/// Raises an alarm at sample `(ts, v)` (or, for an anomaly rule, at the
/// event `anomaly` with its score as `v`), with its evidence and (if the
/// rule asks) its work order: corrective, or predictive for an anomaly.
/// `None` if an active alarm of the rule on the asset already exists (the
/// unique index decides).
#[allow(clippy::too_many_arguments)]
async fn raise(
    tx: &mut WriteTx<'_>,
    rule: &Rule,
    asset: i64,
    point: i64,
    ts: i64,
    v: f64,
    anomaly: Option<&AnomalyRow>,
) -> Result<Option<i64>, AppError> {
    let now = now_ms();
    let (site, name, class, nameplate): (i64, String, String, String) = on_tx!(tx, c => sqlx::query_as(
        "SELECT site_id, name, class, nameplate FROM assets WHERE id = $1")
        .bind(asset).fetch_one(c).await)?;
    let (gw, device, pname, unit): (String, String, String, String) = on_tx!(tx, c => sqlx::query_as(
        "SELECT gateway_id, device, point, unit FROM points WHERE id = $1")
        .bind(point).fetch_one(c).await)?;
    let mut samples: Vec<(i64, Option<f64>)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT ts_ms, value FROM samples WHERE point_id = $1 AND ts_ms >= $2 AND ts_ms <= $3 ORDER BY ts_ms DESC LIMIT $4")
        .bind(point).bind(ts - EVIDENCE_WINDOW_MS).bind(ts).bind(EVIDENCE_MAX_SAMPLES).fetch_all(c).await)?;
    samples.reverse();
    let estimate = estimate(tx, site, asset, &nameplate, ts).await?;
    let priority = if rule.energy_weighted {
        estimate.priority
    } else {
        rule.priority
    };
    let evidence = serde_json::json!({
        "rule": rule,
        "asset": {"id": asset, "site_id": site, "name": name, "class": class,
                  "nameplate": serde_json::from_str::<serde_json::Value>(&nameplate).unwrap_or(serde_json::Value::Null)},
        "point": {"id": point, "gateway_id": gw, "device": device, "point": pname, "unit": unit},
        "trigger": {"ts_ms": ts, "value": v},
        "window": {"from_ms": ts - EVIDENCE_WINDOW_MS, "to_ms": ts,
                   "samples": samples.iter().map(|(t, v)| serde_json::json!({"ts_ms": t, "value": v})).collect::<Vec<_>>()},
        "energy_estimate": estimate,
        "work_order_priority": priority,
        "anomaly": anomaly.map(AnomalyRow::json),
    });
    let claimed: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO alarms (rule_id, site_id, asset_id, point_id, severity, state, acknowledged, raised_ms, trigger_value, last_value, last_ms, \
         repair_verified, evidence, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $8, $7, $6, $9, $10, $10, 1) ON CONFLICT DO NOTHING RETURNING id")
        .bind(rule.id).bind(site).bind(asset).bind(point).bind(rule.severity).bind(false).bind(ts).bind(v)
        .bind(evidence.to_string()).bind(now).fetch_optional(c).await)?;
    let Some((id,)) = claimed else {
        return Ok(None);
    };
    let mut wo_id = None;
    if rule.auto_work_order {
        let cond = match rule.condition {
            Condition::Threshold {
                op, value, for_s, ..
            } => format!(
                "value {} {value} for {for_s} s",
                if op == Op::Above { ">" } else { "<" }
            ),
            Condition::RateOfChange {
                delta_per_min,
                window_s,
            } => format!("change of {delta_per_min}/min over {window_s} s"),
            Condition::BitMask { mask, for_s } => match bits(v) {
                Some(b) => format!(
                    "bits {:#x} of mask {mask:#x} set for {for_s} s (value {b:#x})",
                    b & mask
                ),
                None => format!("bits of mask {mask:#x} set for {for_s} s"),
            },
            Condition::Anomaly { .. } => match anomaly {
                Some(e) => format!(
                    "anomaly from model {} {} (score {v:.2}, raised above {})",
                    e.model_id,
                    e.model_version,
                    e.raise_level.map_or("?".into(), |r| format!("{r:.2}"))
                ),
                None => "anomaly".into(),
            },
        };
        let mut title = match anomaly {
            Some(e) => format!("Predicted fault: {} on {name}", e.summary),
            None => format!("Alarm: {} on {name}", rule.name),
        };
        if title.chars().count() > 200 {
            title = title.chars().take(200).collect();
        }
        let vals: Vec<f64> = samples.iter().filter_map(|s| s.1).collect();
        let (lo, hi) = vals
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(*x), b.max(*x))
            });
        let description = format!(
            "Raised automatically by alarm {id} (rule {} \"{}\": {cond}, severity {}).\n\
             Asset {asset} {name} ({class}); point {gw}/{device}/{pname} [{unit}] = {v} at {ts} ms.\n\
             Telemetry window {} to {ts} ms: {} samples, min {lo}, max {hi}.\n\
             Estimated loss: {:.1} kW ({:.1} kWh per hour; rated {} kW, irradiance {} W/m² from {}).\n\
             {}Evidence (rule snapshot, asset, samples): GET /api/v1/alarms/{id}.",
            rule.id,
            rule.name,
            rule.severity,
            ts - EVIDENCE_WINDOW_MS,
            samples.len(),
            estimate.lost_kw,
            estimate.lost_kw,
            estimate.rated_power_kw,
            estimate.irradiance_w_m2,
            estimate.irradiance_source,
            anomaly.map_or(String::new(), |e| {
                format!(
                    "What the model saw (window {} to {} ms):\n{}\n",
                    e.window_start_ms,
                    e.ts_ms,
                    e.sentences(5)
                        .iter()
                        .map(|t| format!("- {t}"))
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            }),
        );
        let n = NewWorkOrder {
            site_id: site,
            asset_id: Some(asset),
            kind: if anomaly.is_some() {
                Kind::Predictive
            } else {
                Kind::Corrective
            },
            title,
            description,
            priority: Some(priority),
            assignee_id: None,
            due_ms: None,
        };
        let wo = wo_store::create_in_tx(tx, rule.owner_id, ACTOR, &n, now).await?;
        on_tx!(tx, c => sqlx::query("UPDATE alarms SET work_order_id = $1 WHERE id = $2")
            .bind(wo.id).bind(id).execute(c).await.map(|_| ()))?;
        wo_id = Some(wo.id);
    }
    crate::webhooks::enqueue(
        tx,
        "alarm.raised",
        serde_json::json!({
            "alarm_id": id, "rule_id": rule.id, "rule": rule.name, "severity": rule.severity,
            "site_id": site, "asset_id": asset, "point_id": point, "raised_ms": ts,
            "trigger_value": v, "work_order_id": wo_id, "priority": priority,
        }),
        now,
    )
    .await?;
    audit::record(
        tx,
        now,
        audit::Change {
            actor: ACTOR,
            action: "raise",
            entity: "alarm",
            entity_id: &id.to_string(),
            before: None,
            after: Some(serde_json::json!({
                "rule_id": rule.id, "asset_id": asset, "point_id": point, "raised_ms": ts,
                "trigger_value": v, "work_order_id": wo_id, "priority": priority,
            })),
        },
    )
    .await?;
    Ok(Some(id))
}

/// The energy estimate at `ts` for `asset` (docs/specs/alarms.md).
async fn estimate(
    tx: &mut WriteTx<'_>,
    site: i64,
    asset: i64,
    nameplate: &str,
    ts: i64,
) -> Result<EnergyEstimate, AppError> {
    let rated = serde_json::from_str::<serde_json::Value>(nameplate)
        .ok()
        .and_then(|n| n.get("rated_power_kw").and_then(serde_json::Value::as_f64))
        .unwrap_or(0.0);
    let irr: Option<(i64, Option<f64>)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT s.point_id, s.value FROM asset_points ap JOIN assets a ON a.id = ap.asset_id JOIN samples s ON s.point_id = ap.point_id \
         WHERE a.site_id = $1 AND ap.role = 'irradiance' AND s.value IS NOT NULL AND s.ts_ms <= $2 AND s.ts_ms >= $3 \
         ORDER BY s.ts_ms DESC LIMIT 1")
        .bind(site).bind(ts).bind(ts - ESTIMATE_MAX_AGE_MS).fetch_optional(c).await)?;
    let (irradiance, source) = match irr {
        Some((p, Some(v))) if v.is_finite() => (v, format!("point {p}")),
        _ => (DEFAULT_IRRADIANCE, "default".to_string()),
    };
    let power: Option<(Option<f64>, String)> = on_tx!(tx, c => sqlx::query_as(
        "SELECT s.value, p.unit FROM asset_points ap JOIN points p ON p.id = ap.point_id JOIN samples s ON s.point_id = ap.point_id \
         WHERE ap.asset_id = $1 AND ap.role = 'ac_power' AND s.value IS NOT NULL AND s.ts_ms <= $2 AND s.ts_ms >= $3 \
         ORDER BY s.ts_ms DESC LIMIT 1")
        .bind(asset).bind(ts).bind(ts - ESTIMATE_MAX_AGE_MS).fetch_optional(c).await)?;
    let actual = power.and_then(|(v, unit)| v.and_then(|v| to_kw(v, &unit)));
    let (expected, lost) = energy_lost(rated, irradiance, actual);
    Ok(EnergyEstimate {
        rated_power_kw: rated,
        irradiance_w_m2: irradiance,
        irradiance_source: source,
        expected_kw: expected,
        actual_kw: actual,
        lost_kw: lost,
        priority: priority_for(lost),
    })
}

/// Clears alarm `id` at sample `(ts, v)`; verifies the repair if its work
/// order was completed at or before `ts` and is COMPLETED or CLOSED now.
async fn clear_alarm(tx: &mut WriteTx<'_>, id: i64, ts: i64, v: f64) -> Result<(), AppError> {
    let now = now_ms();
    let (wo,): (Option<i64>,) = on_tx!(tx, c => sqlx::query_as("SELECT work_order_id FROM alarms WHERE id = $1")
        .bind(id).fetch_one(c).await)?;
    let (verified, note) = match wo {
        None => (false, None),
        Some(w) => {
            let (status,): (String,) = on_tx!(tx, c => sqlx::query_as("SELECT status FROM work_orders WHERE id = $1")
                .bind(w).fetch_one(c).await)?;
            let (done,): (Option<i64>,) = on_tx!(tx, c => sqlx::query_as(
                "SELECT MAX(at_ms) FROM work_order_history WHERE work_order_id = $1 AND to_status = 'COMPLETED'")
                .bind(w).fetch_one(c).await)?;
            let finished = matches!(status.as_str(), "COMPLETED" | "CLOSED");
            if finished && done.is_some_and(|d| d <= ts) {
                (
                    true,
                    Some(format!(
                        "cleared after work order {w} was completed: repair verified"
                    )),
                )
            } else {
                (
                    false,
                    Some(format!(
                        "cleared while work order {w} was {status}: repair not verified"
                    )),
                )
            }
        }
    };
    on_tx!(tx, c => sqlx::query(
        "UPDATE alarms SET state = 'cleared', cleared_ms = $1, last_value = $2, last_ms = $1, repair_verified = $3, note = $4, \
         updated_ms = $5, version = version + 1 WHERE id = $6")
        .bind(ts).bind(v).bind(verified).bind(&note).bind(now).bind(id).execute(c).await.map(|_| ()))?;
    crate::webhooks::enqueue(
        tx,
        "alarm.cleared",
        serde_json::json!({
            "alarm_id": id, "cleared_ms": ts, "value": v, "work_order_id": wo,
            "repair_verified": verified, "note": note,
        }),
        now,
    )
    .await?;
    audit::record(
        tx,
        now,
        audit::Change {
            actor: ACTOR,
            action: "clear",
            entity: "alarm",
            entity_id: &id.to_string(),
            before: Some(serde_json::json!({"state": "active"})),
            after: Some(serde_json::json!({
                "state": "cleared", "cleared_ms": ts, "value": v, "work_order_id": wo,
                "repair_verified": verified, "note": note,
            })),
        },
    )
    .await?;
    Ok(())
}

/// Runs [`evaluate`] now, after every ingest wake-up and at least every
/// [`INTERVAL`], until `shutdown`.
pub fn spawn(db: Db, caches: Arc<Caches>, shutdown: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                res = evaluate(&db, &caches) => {
                    match res {
                        Ok(r) if r.raised + r.cleared + r.failed > 0 => tracing::info!(?r, "alarm evaluation"),
                        Ok(_) => {}
                        Err(e) => tracing::warn!(error = ?e, "alarm evaluation failed; retrying at the next pass"),
                    }
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = caches.alarm_wake.notified() => {}
                () = tokio::time::sleep(INTERVAL) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn energy_estimate_and_bands() {
        assert_eq!(energy_lost(100.0, 1000.0, None), (100.0, 100.0));
        assert_eq!(energy_lost(100.0, 500.0, Some(10.0)), (50.0, 40.0));
        assert_eq!(energy_lost(100.0, 500.0, Some(80.0)), (50.0, 0.0));
        assert_eq!(energy_lost(100.0, 5000.0, None), (120.0, 120.0));
        assert_eq!(priority_for(300.0), 1);
        assert_eq!(priority_for(100.0), 2);
        assert_eq!(priority_for(10.0), 3);
        assert_eq!(priority_for(1.0), 4);
        assert_eq!(priority_for(0.2), 5);
        assert_eq!(to_kw(2500.0, "W"), Some(2.5));
        assert_eq!(to_kw(1.0, "degC"), None);
    }

    #[test]
    fn bit_register_readings() {
        assert_eq!(bits(0.0), Some(0));
        assert_eq!(bits(5.0), Some(5));
        assert_eq!(bits(4_294_967_295.0), Some(u32::MAX));
        assert_eq!(bits(4_294_967_296.0), None);
        assert_eq!(bits(-1.0), None);
        assert_eq!(bits(1.5), None);
        assert_eq!(bits(f64::NAN), None);
        assert_eq!(bits(f64::INFINITY), None);
    }
}

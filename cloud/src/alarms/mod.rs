//! Alarms raised from ingested telemetry (docs/specs/alarms.md).
//!
//! - this file: alarm rules (scope, condition, severity, automatic work
//!   order) and their store (create, read, list, update with version; each
//!   change audited in its transaction); alarms (read, list, acknowledge);
//! - [`evaluate`]: the evaluator: after each committed ingest batch (and
//!   every [`evaluate::INTERVAL`] as a safety net) it walks each active
//!   rule's targets from a durable per-target watermark, raises (at most one
//!   ACTIVE alarm per rule and asset), opens the corrective work order with
//!   its evidence, clears and verifies repairs;
//! - [`handlers`]: the `/api/v1/alarm-rules` and `/api/v1/alarms` endpoints.

pub mod evaluate;
pub mod handlers;

use crate::audit;
use crate::auth::Principal;
use crate::db::{Caches, Db, WriteTx};
use crate::gateways::now_ms;
use crate::http::params::Filters;
use crate::http::problem::AppError;
use crate::{bind_all, on_db, on_tx};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a rule watches.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Scope {
    /// One telemetry point (evaluated for every asset it is linked to).
    Point { point_id: i64 },
    /// Every point linked with `role` to an asset of `class`, e.g. class
    /// `inverter`, role `cabinet_temperature`.
    AssetClass { class: String, role: String },
}

/// Comparison of a threshold rule.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub enum Op {
    /// Breach when the value is above `value`.
    #[serde(rename = ">")]
    Above,
    /// Breach when the value is below `value`.
    #[serde(rename = "<")]
    Below,
}

/// When a rule fires.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Raised when every sample for `for_s` seconds breaches `value`;
    /// cleared when a sample is back past `clear_value` (hysteresis:
    /// `clear_value <= value` for `>`, `>= value` for `<`; default `value`).
    Threshold {
        op: Op,
        value: f64,
        #[serde(default)]
        for_s: i64,
        #[serde(default)]
        clear_value: Option<f64>,
    },
    /// Raised when the change over the last `window_s` seconds, per
    /// minute, reaches `delta_per_min` (a rise if positive, a fall if
    /// negative); cleared when it no longer does.
    RateOfChange { delta_per_min: f64, window_s: i64 },
    /// For a register of event or status bits (e.g. SunSpec `Evt1`):
    /// a sample breaches when any bit of `mask` is set in its value, read
    /// as an unsigned 32-bit integer; raised when breaching samples span
    /// `for_s` seconds, cleared on a sample with none of them set. A value
    /// that is not a whole number in 0..=4294967295 neither breaches nor
    /// clears.
    BitMask {
        mask: u32,
        #[serde(default)]
        for_s: i64,
    },
    /// Raised by an anomaly event of the edge's models for the asset
    /// (docs/specs/anomaly-models.md §6), of model `model_id` if given;
    /// cleared by the model's clear event. The scope's point anchors the
    /// alarm: its telemetry around the event is the evidence's window.
    /// Automatic work orders of these rules are predictive.
    Anomaly {
        #[serde(default)]
        model_id: Option<String>,
    },
}

/// `condition.for_s` of threshold and bit-mask rules: 0 to a day.
fn check_for_s(for_s: i64) -> Result<(), AppError> {
    if (0..=86_400).contains(&for_s) {
        Ok(())
    } else {
        Err(AppError::bad_field(
            "condition.for_s",
            "must be 0 to 86400 seconds",
        ))
    }
}

impl Condition {
    fn kind(&self) -> &'static str {
        match self {
            Condition::Threshold { .. } => "threshold",
            Condition::RateOfChange { .. } => "rate_of_change",
            Condition::BitMask { .. } => "bit_mask",
            Condition::Anomaly { .. } => "anomaly",
        }
    }

    /// Validates and fills the default `clear_value`.
    fn normalise(&mut self) -> Result<(), AppError> {
        match self {
            Condition::Threshold {
                op,
                value,
                for_s,
                clear_value,
            } => {
                if !value.is_finite() {
                    return Err(AppError::bad_field(
                        "condition.value",
                        "must be a finite number",
                    ));
                }
                check_for_s(*for_s)?;
                let c = clear_value.unwrap_or(*value);
                let ok = c.is_finite()
                    && match op {
                        Op::Above => c <= *value,
                        Op::Below => c >= *value,
                    };
                if !ok {
                    return Err(AppError::bad_field(
                        "condition.clear_value",
                        "must be finite and on the safe side of value (<= value for >, >= value for <)",
                    ));
                }
                *clear_value = Some(c);
            }
            Condition::RateOfChange {
                delta_per_min,
                window_s,
            } => {
                if !delta_per_min.is_finite() || *delta_per_min == 0.0 {
                    return Err(AppError::bad_field(
                        "condition.delta_per_min",
                        "must be a finite non-zero number (positive: rise, negative: fall)",
                    ));
                }
                if !(1..=86_400).contains(window_s) {
                    return Err(AppError::bad_field(
                        "condition.window_s",
                        "must be 1 to 86400 seconds",
                    ));
                }
            }
            Condition::BitMask { mask, for_s } => {
                if *mask == 0 {
                    return Err(AppError::bad_field(
                        "condition.mask",
                        "must name at least one bit (1 to 4294967295)",
                    ));
                }
                check_for_s(*for_s)?;
            }
            Condition::Anomaly { model_id } => {
                if model_id
                    .as_ref()
                    .is_some_and(|m| m.trim().is_empty() || m.len() > 255)
                {
                    return Err(AppError::bad_field(
                        "condition.model_id",
                        "must be a model id of 1 to 255 bytes, or absent for every model",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An alarm rule.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Rule {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub condition: Condition,
    /// 1 (critical) to 4 (informational).
    pub severity: i64,
    /// Open a corrective work order when an alarm is raised.
    pub auto_work_order: bool,
    /// Priority of the automatic work order, 1 (urgent) to 5.
    pub priority: i64,
    /// Take the work order's priority from the estimated energy lost
    /// instead (docs/specs/alarms.md).
    pub energy_weighted: bool,
    pub active: bool,
    /// Samples older than this minus [`evaluate::LOOKBACK_MS`] are never
    /// evaluated (set on create and on reactivation).
    pub from_ms: i64,
    /// Automatic work orders are created by this user.
    pub owner_id: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

/// The fields of a rule (create: `name`, `scope`, `condition` required).
#[derive(Debug, Clone, Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleFields {
    pub name: Option<String>,
    /// Create only.
    pub scope: Option<Scope>,
    pub condition: Option<Condition>,
    /// Default 2.
    pub severity: Option<i64>,
    /// Default false.
    pub auto_work_order: Option<bool>,
    /// Default: the severity (1 → 1 … 4 → 4).
    pub priority: Option<i64>,
    /// Default false.
    pub energy_weighted: Option<bool>,
    /// Default true.
    pub active: Option<bool>,
    /// Required on update: the version you read.
    pub version: Option<i64>,
}

impl Rule {
    fn validate(&mut self) -> Result<(), AppError> {
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(AppError::bad_field("name", "must be 1 to 200 characters"));
        }
        if !(1..=4).contains(&self.severity) {
            return Err(AppError::bad_field(
                "severity",
                "must be 1 (critical) to 4 (informational)",
            ));
        }
        if !(1..=5).contains(&self.priority) {
            return Err(AppError::bad_field("priority", "must be 1 (urgent) to 5"));
        }
        if let Scope::AssetClass { class, role } = &self.scope {
            if class.trim().is_empty() || class.len() > 100 {
                return Err(AppError::bad_field(
                    "scope.class",
                    "must be 1 to 100 characters",
                ));
            }
            if role.trim().is_empty() || role.len() > 100 {
                return Err(AppError::bad_field(
                    "scope.role",
                    "must be 1 to 100 characters",
                ));
            }
        }
        self.condition.normalise()
    }
}

type RuleRow = (
    i64,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    String,
    i64,
    bool,
    i64,
    bool,
    bool,
    i64,
    i64,
    i64,
    i64,
    i64,
);
const RULE_COLS: &str = "id, name, point_id, asset_class, point_role, condition, severity, auto_work_order, priority, energy_weighted, active, from_ms, owner_id, created_ms, updated_ms, version";

fn rule_of(r: RuleRow) -> Result<Rule, AppError> {
    let scope = match (r.2, r.3, r.4) {
        (Some(point_id), _, _) => Scope::Point { point_id },
        (None, Some(class), Some(role)) => Scope::AssetClass { class, role },
        _ => {
            return Err(AppError::Internal(anyhow::anyhow!(
                "alarm rule {} has no scope",
                r.0
            )));
        }
    };
    let condition: Condition = serde_json::from_str(&r.5).map_err(|e| {
        AppError::Internal(anyhow::anyhow!(
            "alarm rule {} has a bad condition: {e}",
            r.0
        ))
    })?;
    Ok(Rule {
        id: r.0,
        name: r.1,
        scope,
        condition,
        severity: r.6,
        auto_work_order: r.7,
        priority: r.8,
        energy_weighted: r.9,
        active: r.10,
        from_ms: r.11,
        owner_id: r.12,
        created_ms: r.13,
        updated_ms: r.14,
        version: r.15,
    })
}

fn condition_json(c: &Condition) -> Result<String, AppError> {
    serde_json::to_string(c).map_err(|e| AppError::Internal(e.into()))
}

fn scope_cols(s: &Scope) -> (Option<i64>, Option<&str>, Option<&str>) {
    match s {
        Scope::Point { point_id } => (Some(*point_id), None, None),
        Scope::AssetClass { class, role } => (None, Some(class), Some(role)),
    }
}

pub async fn get_rule(db: &Db, id: i64) -> Result<Option<Rule>, AppError> {
    let sql = format!("SELECT {RULE_COLS} FROM alarm_rules WHERE id = $1");
    let r: Option<RuleRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await)?;
    r.map(rule_of).transpose()
}

async fn rule_in_tx(tx: &mut WriteTx<'_>, id: i64) -> Result<Option<Rule>, AppError> {
    let sql = format!("SELECT {RULE_COLS} FROM alarm_rules WHERE id = $1");
    let r: Option<RuleRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(c).await)?;
    r.map(rule_of).transpose()
}

/// Every active rule, by id.
pub async fn active_rules(db: &Db) -> Result<Vec<Rule>, AppError> {
    let sql = format!("SELECT {RULE_COLS} FROM alarm_rules WHERE active = $1 ORDER BY id");
    let rows: Vec<RuleRow> = on_db!(db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(true).fetch_all(p).await)?;
    rows.into_iter().map(rule_of).collect()
}

pub async fn create_rule(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    f: &RuleFields,
) -> Result<Rule, AppError> {
    let Some(name) = f.name.clone() else {
        return Err(AppError::bad_field("name", "missing"));
    };
    let Some(scope) = f.scope.clone() else {
        return Err(AppError::bad_field("scope", "missing"));
    };
    let Some(condition) = f.condition.clone() else {
        return Err(AppError::bad_field("condition", "missing"));
    };
    if f.version.is_some() {
        return Err(AppError::bad_field(
            "version",
            "is set by the server on create",
        ));
    }
    let now = now_ms();
    let severity = f.severity.unwrap_or(2);
    let mut r = Rule {
        id: 0,
        name,
        scope,
        condition,
        severity,
        auto_work_order: f.auto_work_order.unwrap_or(false),
        priority: f.priority.unwrap_or(severity),
        energy_weighted: f.energy_weighted.unwrap_or(false),
        active: f.active.unwrap_or(true),
        from_ms: now,
        owner_id: who.user_id,
        created_ms: now,
        updated_ms: now,
        version: 1,
    };
    r.validate()?;
    let cond = condition_json(&r.condition)?;
    let mut tx = db.write(caches).await?;
    if let Scope::Point { point_id } = r.scope {
        let p: Option<(i64,)> = on_tx!(tx, c => sqlx::query_as("SELECT id FROM points WHERE id = $1").bind(point_id).fetch_optional(c).await)?;
        if p.is_none() {
            return Err(AppError::bad_field(
                "scope.point_id",
                format!("no point with id {point_id}"),
            ));
        }
    }
    let (pid, class, role) = scope_cols(&r.scope);
    let (id,): (i64,) = on_tx!(tx, c => sqlx::query_as(
        "INSERT INTO alarm_rules (name, point_id, asset_class, point_role, kind, condition, severity, auto_work_order, priority, energy_weighted, active, from_ms, owner_id, created_ms, updated_ms, version) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $12, $12, 1) RETURNING id")
        .bind(&r.name).bind(pid).bind(class).bind(role).bind(r.condition.kind()).bind(&cond).bind(r.severity)
        .bind(r.auto_work_order).bind(r.priority).bind(r.energy_weighted).bind(r.active).bind(now).bind(r.owner_id)
        .fetch_one(c).await)?;
    r.id = id;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "create",
            entity: "alarm_rule",
            entity_id: &id.to_string(),
            before: None,
            after: serde_json::to_value(&r).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    caches.alarm_wake.notify_one();
    Ok(r)
}

/// Changes a rule. A condition change restarts pending `for_s` timers;
/// a reactivation restarts evaluation at the time of the change; a
/// deactivation clears the rule's active alarms (not verified).
pub async fn update_rule(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
    f: &RuleFields,
) -> Result<Rule, AppError> {
    let Some(sent) = f.version else {
        return Err(AppError::bad_field(
            "version",
            "missing: send the version you read",
        ));
    };
    if f.scope.is_some() {
        return Err(AppError::bad_field(
            "scope",
            "cannot be changed; create a new rule",
        ));
    }
    let mut tx = db.write(caches).await?;
    let before = rule_in_tx(&mut tx, id)
        .await?
        .ok_or_else(|| AppError::not_found("alarm rule", id))?;
    if before.version != sent {
        return Err(AppError::stale(sent, before.version));
    }
    let mut r = before.clone();
    macro_rules! set {
        ($($name:ident),*) => { $( if let Some(v) = &f.$name { r.$name = v.clone(); } )* };
    }
    set!(
        name,
        condition,
        severity,
        auto_work_order,
        priority,
        energy_weighted,
        active
    );
    r.validate()?;
    if f.condition.is_some() && r.condition.kind() != before.condition.kind() {
        return Err(AppError::bad_field(
            "condition.type",
            "cannot be changed; create a new rule",
        ));
    }
    let now = now_ms();
    if r.active && !before.active {
        r.from_ms = now;
    }
    r.version += 1;
    r.updated_ms = now;
    let cond = condition_json(&r.condition)?;
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE alarm_rules SET name = $1, condition = $2, severity = $3, auto_work_order = $4, priority = $5, energy_weighted = $6, \
         active = $7, from_ms = $8, updated_ms = $9, version = version + 1 WHERE id = $10 AND version = $11")
        .bind(&r.name).bind(&cond).bind(r.severity).bind(r.auto_work_order).bind(r.priority).bind(r.energy_weighted)
        .bind(r.active).bind(r.from_ms).bind(now).bind(id).bind(sent)
        .execute(c).await.map(|x| x.rows_affected()))?;
    if n != 1 {
        return Err(AppError::stale(sent, sent + 1));
    }
    if r.condition != before.condition {
        on_tx!(tx, c => sqlx::query("UPDATE alarm_eval_state SET pending_since_ms = NULL WHERE rule_id = $1")
            .bind(id).execute(c).await.map(|_| ()))?;
    }
    if before.active && !r.active {
        on_tx!(tx, c => sqlx::query(
            "UPDATE alarms SET state = 'cleared', cleared_ms = $1, note = 'rule deactivated; repair not verified', updated_ms = $1, version = version + 1 \
             WHERE rule_id = $2 AND state = 'active'")
            .bind(now).bind(id).execute(c).await.map(|_| ()))?;
    }
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "update",
            entity: "alarm_rule",
            entity_id: &id.to_string(),
            before: serde_json::to_value(&before).ok(),
            after: serde_json::to_value(&r).ok(),
        },
    )
    .await?;
    tx.commit().await?;
    caches.alarm_wake.notify_one();
    Ok(r)
}

pub async fn list_rules(
    db: &Db,
    f: &Filters,
    sort: (&str, bool),
    limit: i64,
    offset: i64,
) -> Result<Vec<Rule>, AppError> {
    let n = f.next();
    let sql = format!(
        "SELECT {RULE_COLS} FROM alarm_rules{} ORDER BY {} {}, id LIMIT ${n} OFFSET ${}",
        f.sql(),
        sort.0,
        if sort.1 { "DESC" } else { "ASC" },
        n + 1
    );
    let rows: Vec<RuleRow> = on_db!(db, p => bind_all!(sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())), &f.binds).bind(limit).bind(offset).fetch_all(p).await)?;
    rows.into_iter().map(rule_of).collect()
}

/// `active` or `cleared`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    Active,
    Cleared,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Active => "active",
            AlarmState::Cleared => "cleared",
        }
    }
    pub fn parse(s: &str) -> Option<AlarmState> {
        [AlarmState::Active, AlarmState::Cleared]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// An alarm: one condition of one rule on one asset, from raise to clear.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Alarm {
    pub id: i64,
    pub rule_id: i64,
    pub site_id: i64,
    pub asset_id: i64,
    pub point_id: i64,
    /// 1 (critical) to 4, from the rule when raised.
    pub severity: i64,
    pub state: AlarmState,
    pub acknowledged: bool,
    pub acknowledged_by: Option<i64>,
    pub acknowledged_ms: Option<i64>,
    /// Time of the sample that raised it.
    pub raised_ms: i64,
    /// Time of the sample that cleared it.
    pub cleared_ms: Option<i64>,
    pub trigger_value: Option<f64>,
    /// The latest value evaluated while active.
    pub last_value: Option<f64>,
    pub last_ms: Option<i64>,
    /// The corrective work order opened for it, if the rule asks for one.
    pub work_order_id: Option<i64>,
    /// Cleared after its work order was completed.
    pub repair_verified: bool,
    /// How it cleared (e.g. while its work order was still open).
    pub note: Option<String>,
    /// Rule snapshot, asset, telemetry window before the trigger, energy
    /// estimate (only in `GET /api/v1/alarms/{id}`; `null` in lists).
    #[schema(value_type = Object)]
    pub evidence: Option<serde_json::Value>,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub version: i64,
}

const ALARM_COLS: &str = "id, rule_id, site_id, asset_id, point_id, severity, state, acknowledged, acknowledged_by, acknowledged_ms, raised_ms, cleared_ms, trigger_value, last_value, last_ms, work_order_id, repair_verified, note, created_ms, updated_ms, version";

/// Reads an [`Alarm`] from a row of `ALARM_COLS` (plus `evidence` when
/// `$ev`); a macro so that one text serves both databases' row types.
macro_rules! alarm_from_row {
    ($r:expr, $ev:expr) => {{
        use sqlx::Row;
        let r = $r;
        let state: String = r.try_get(6)?;
        let evidence: Option<String> = if $ev { r.try_get(21)? } else { None };
        (
            Alarm {
                id: r.try_get(0)?,
                rule_id: r.try_get(1)?,
                site_id: r.try_get(2)?,
                asset_id: r.try_get(3)?,
                point_id: r.try_get(4)?,
                severity: r.try_get(5)?,
                state: AlarmState::Active,
                acknowledged: r.try_get(7)?,
                acknowledged_by: r.try_get(8)?,
                acknowledged_ms: r.try_get(9)?,
                raised_ms: r.try_get(10)?,
                cleared_ms: r.try_get(11)?,
                trigger_value: r.try_get(12)?,
                last_value: r.try_get(13)?,
                last_ms: r.try_get(14)?,
                work_order_id: r.try_get(15)?,
                repair_verified: r.try_get(16)?,
                note: r.try_get(17)?,
                evidence: None,
                created_ms: r.try_get(18)?,
                updated_ms: r.try_get(19)?,
                version: r.try_get(20)?,
            },
            state,
            evidence,
        )
    }};
}

/// Fills in the fields `alarm_from_row!` leaves as text.
fn finish(raw: (Alarm, String, Option<String>)) -> Result<Alarm, AppError> {
    let (mut a, state, evidence) = raw;
    a.state = AlarmState::parse(&state)
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("alarm {} has state {state:?}", a.id)))?;
    if let Some(s) = evidence {
        a.evidence = Some(serde_json::from_str(&s).map_err(|e| {
            AppError::Internal(anyhow::anyhow!("alarm {} has bad evidence: {e}", a.id))
        })?);
    }
    Ok(a)
}

/// One alarm with its evidence.
pub async fn get_alarm(db: &Db, id: i64) -> Result<Option<Alarm>, AppError> {
    let sql = format!("SELECT {ALARM_COLS}, evidence FROM alarms WHERE id = $1");
    let raw = on_db!(db, p => {
        let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(p).await?;
        match row {
            None => None,
            Some(r) => Some(alarm_from_row!(&r, true)),
        }
    });
    raw.map(finish).transpose()
}

/// Alarms (without evidence), filtered.
pub async fn list_alarms(
    db: &Db,
    f: &Filters,
    sort: (&str, bool),
    limit: i64,
    offset: i64,
) -> Result<Vec<Alarm>, AppError> {
    let n = f.next();
    let sql = format!(
        "SELECT {ALARM_COLS} FROM alarms{} ORDER BY {} {}, id LIMIT ${n} OFFSET ${}",
        f.sql(),
        sort.0,
        if sort.1 { "DESC" } else { "ASC" },
        n + 1
    );
    let raws = on_db!(db, p => {
        let rows = bind_all!(sqlx::query(sqlx::AssertSqlSafe(sql.as_str())), &f.binds).bind(limit).bind(offset).fetch_all(p).await?;
        let mut v = Vec::with_capacity(rows.len());
        for r in &rows {
            v.push(alarm_from_row!(r, false));
        }
        v
    });
    raws.into_iter().map(finish).collect()
}

/// Acknowledges an alarm (active or cleared); 409 if already acknowledged.
pub async fn acknowledge(
    db: &Db,
    caches: &Caches,
    who: &Principal,
    id: i64,
) -> Result<Alarm, AppError> {
    let now = now_ms();
    let mut tx = db.write(caches).await?;
    let row: Option<(bool,)> = on_tx!(tx, c => sqlx::query_as("SELECT acknowledged FROM alarms WHERE id = $1")
        .bind(id).fetch_optional(c).await)?;
    match row {
        None => return Err(AppError::not_found("alarm", id)),
        Some((true,)) => {
            return Err(AppError::Conflict {
                kind: "already-acknowledged",
                detail: format!("alarm {id} is already acknowledged"),
                field: None,
            });
        }
        Some((false,)) => {}
    }
    on_tx!(tx, c => sqlx::query(
        "UPDATE alarms SET acknowledged = $1, acknowledged_by = $2, acknowledged_ms = $3, updated_ms = $3, version = version + 1 WHERE id = $4")
        .bind(true).bind(who.user_id).bind(now).bind(id).execute(c).await.map(|_| ()))?;
    audit::record(
        &mut tx,
        now,
        audit::Change {
            actor: &who.actor(),
            action: "acknowledge",
            entity: "alarm",
            entity_id: &id.to_string(),
            before: Some(serde_json::json!({"acknowledged": false})),
            after: Some(serde_json::json!({"acknowledged": true, "acknowledged_by": who.user_id, "acknowledged_ms": now})),
        },
    )
    .await?;
    tx.commit().await?;
    get_alarm(db, id)
        .await?
        .ok_or_else(|| AppError::not_found("alarm", id))
}

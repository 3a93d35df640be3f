//! Asset meters derived from telemetry (docs/specs/meters.md): running hours
//! and energy, read from a counter point linked to the asset with the
//! meter's role, or else derived from the point linked as `ac_power`.
//!
//! Derived meters read the 15-minute rollups (kept forever, unlike raw
//! samples and 1-minute rollups) plus the rollup deltas not folded yet:
//!
//! - running hours: 0.25 h per bucket whose minimum power is above zero,
//!   0.125 h per bucket whose maximum only is (a start or a stop inside it);
//! - energy: the bucket's mean power × 0.25 h, over buckets with a positive
//!   mean (export only).
//!
//! PM meter plans read the same values ([`value_for_role`]), so a plan on
//! `running_hours` works for an inverter that has no such register.

use crate::db::Db;
use crate::http::problem::AppError;
use crate::on_db;
use serde::Serialize;
use utoipa::ToSchema;

/// The meters this module knows: (name, unit).
pub const METERS: [(&str, &str); 2] = [("running_hours", "h"), ("energy_mwh", "MWh")];
/// The role of the power point that derived meters are computed from.
pub const POWER_ROLE: &str = "ac_power";
const BUCKET_MS: i64 = 900_000;

/// One meter of an asset.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Meter {
    /// `running_hours` or `energy_mwh`.
    pub name: String,
    pub value: f64,
    /// `h` or `MWh` (or the point's own unit when it cannot be converted).
    pub unit: String,
    /// Time of the reading, or the end of the last bucket counted.
    pub at_ms: i64,
    /// `reading` (a counter point) or `derived` (from `ac_power`).
    pub source: String,
    /// The point read or derived from.
    pub point_id: i64,
    /// How the value was obtained, in words.
    pub method: String,
}

/// Factor from a point's unit to the meter's unit, if known.
fn factor(meter: &str, unit: &str) -> Option<f64> {
    match (meter, unit) {
        ("running_hours", "h") => Some(1.0),
        ("running_hours", "min") => Some(1.0 / 60.0),
        ("running_hours", "s") => Some(1.0 / 3600.0),
        ("energy_mwh", "Wh") => Some(1e-6),
        ("energy_mwh", "kWh") => Some(1e-3),
        ("energy_mwh", "MWh") => Some(1.0),
        _ => None,
    }
}

/// Power unit to MW.
fn power_to_mw(unit: &str) -> Option<f64> {
    match unit {
        "W" => Some(1e-6),
        "kW" => Some(1e-3),
        "MW" => Some(1.0),
        _ => None,
    }
}

/// Points linked to `asset` with `role`: (point id, unit).
async fn linked(db: &Db, asset: i64, role: &str) -> Result<Vec<(i64, String)>, AppError> {
    Ok(on_db!(db, p => sqlx::query_as(
        "SELECT ap.point_id, p.unit FROM asset_points ap JOIN points p ON p.id = ap.point_id \
         WHERE ap.asset_id = $1 AND ap.role = $2 ORDER BY ap.point_id")
        .bind(asset).bind(role).fetch_all(p).await)?)
}

/// The latest non-null reading of `point` at or before `now`.
async fn latest(db: &Db, point: i64, now: i64) -> Result<Option<(f64, i64)>, AppError> {
    let r: Option<(Option<f64>, i64)> = on_db!(db, p => sqlx::query_as(
        "SELECT value, ts_ms FROM samples WHERE point_id = $1 AND value IS NOT NULL AND ts_ms <= $2 \
         ORDER BY ts_ms DESC LIMIT 1")
        .bind(point).bind(now).fetch_optional(p).await)?;
    Ok(r.and_then(|(v, t)| v.filter(|v| v.is_finite()).map(|v| (v, t))))
}

/// Running hours and energy (MW·buckets) of a power point, from the
/// 15-minute rollups and unfolded deltas of buckets starting before `now`.
async fn derived(db: &Db, point: i64, now: i64) -> Result<Option<(f64, f64, i64)>, AppError> {
    let sql = format!(
        "SELECT CAST(COUNT(*) AS BIGINT), MAX(b), \
                CAST(SUM(CASE WHEN mn > 0 THEN 0.25 WHEN mx > 0 THEN 0.125 ELSE 0 END) AS DOUBLE PRECISION), \
                CAST(SUM(CASE WHEN s > 0 THEN s / c * 0.25 ELSE 0 END) AS DOUBLE PRECISION) \
         FROM (SELECT bucket_ms AS b, SUM(count) AS c, SUM(sum) AS s, MIN(min) AS mn, MAX(max) AS mx \
               FROM (SELECT bucket_ms, count, sum, min, max FROM rollups_15m \
                      WHERE point_id = $1 AND bucket_ms < $2 \
                     UNION ALL \
                     SELECT (bucket_ms / {BUCKET_MS}) * {BUCKET_MS}, count, sum, min, max FROM rollup_deltas \
                      WHERE point_id = $1 AND bucket_ms < $2) u \
               GROUP BY bucket_ms) g \
         WHERE c > 0"
    );
    let (n, last, hours, energy): (i64, Option<i64>, Option<f64>, Option<f64>) = on_db!(db, p =>
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(point).bind(now).fetch_one(p).await)?;
    Ok(match (n, last) {
        (1.., Some(last)) => Some((
            hours.unwrap_or(0.0),
            energy.unwrap_or(0.0),
            (last + BUCKET_MS).min(now),
        )),
        _ => None,
    })
}

/// Every meter of `asset` as of `now`: for each known meter, the counter
/// point linked with its role if there is one, else the derived value.
pub async fn meters(db: &Db, asset: i64, now: i64) -> Result<Vec<Meter>, AppError> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (name, unit) in METERS {
        let mut found = false;
        for (point, point_unit) in linked(db, asset, name).await? {
            if let Some((v, at)) = latest(db, point, now).await? {
                let (value, unit, how) = match factor(name, &point_unit) {
                    Some(f) => (
                        v * f,
                        unit.to_string(),
                        format!("latest reading ({point_unit})"),
                    ),
                    None => (
                        v,
                        point_unit.clone(),
                        format!("latest reading; unit {point_unit:?} not converted to {unit}"),
                    ),
                };
                out.push(Meter {
                    name: name.into(),
                    value,
                    unit,
                    at_ms: at,
                    source: "reading".into(),
                    point_id: point,
                    method: how,
                });
                found = true;
                break;
            }
        }
        if !found {
            missing.push((name, unit));
        }
    }
    if missing.is_empty() {
        return Ok(out);
    }
    for (point, power_unit) in linked(db, asset, POWER_ROLE).await? {
        let Some(to_mw) = power_to_mw(&power_unit) else {
            continue;
        };
        let Some((hours, mw_h, at)) = derived(db, point, now).await? else {
            continue;
        };
        for (name, unit) in &missing {
            let (value, method) = if *name == "running_hours" {
                (
                    hours,
                    "15-minute rollups of ac_power: 0.25 h per bucket with power above zero throughout, 0.125 h per bucket with a start or stop",
                )
            } else {
                (
                    mw_h * to_mw,
                    "15-minute rollups of ac_power: mean power × 0.25 h over buckets with positive mean",
                )
            };
            out.push(Meter {
                name: name.to_string(),
                value,
                unit: unit.to_string(),
                at_ms: at,
                source: "derived".into(),
                point_id: point,
                method: method.into(),
            });
        }
        break;
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The value a PM meter plan on `role` reads: the meter of that name, or
/// for another role the latest reading of the point linked with it.
pub async fn value_for_role(
    db: &Db,
    asset: i64,
    role: &str,
    now: i64,
) -> Result<Option<(f64, i64)>, AppError> {
    if METERS.iter().any(|(n, _)| *n == role) {
        return Ok(meters(db, asset, now)
            .await?
            .into_iter()
            .find(|m| m.name == role)
            .map(|m| (m.value, m.at_ms)));
    }
    let mut best: Option<(f64, i64)> = None;
    for (point, _) in linked(db, asset, role).await? {
        if let Some((v, t)) = latest(db, point, now).await?
            && best.is_none_or(|(_, bt)| t > bt)
        {
            best = Some((v, t));
        }
    }
    Ok(best)
}

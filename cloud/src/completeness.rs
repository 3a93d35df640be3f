//! `GET /api/v1/gateways/{id}/completeness?from=&to=`: what the cloud holds
//! of one gateway's data, what the gateway reported lost, and what is still
//! on its way. Normative text: docs/specs/completeness.md.
//!
//! - `sequences.received`: the ledger ranges, merged where contiguous
//!   (computed in SQL with window functions, one row per run);
//! - `sequences.dropped`: the reported drop ranges, merged;
//! - `sequences.in_flight`: the holes between the lowest and highest known
//!   sequence covered by neither;
//! - per point, samples received in `[from, to)`: whole minutes inside the
//!   range are summed from `rollups_1m.samples` and the `rollup_deltas` not
//!   folded yet (one grouped scan of the unindexed deltas for all points), the partial minutes at
//!   either end are counted on `samples` (so the count is exact for any
//!   range and cheap for long ones); `first_ms` / `last_ms` are index
//!   lookups on `samples`; dropped spans are those overlapping `[from, to)`.

use crate::auth::{Permission, Principal};
use crate::db::Db;
use crate::http::AppState;
use crate::http::params::Params;
use crate::http::problem::{AppError, Problem};
use crate::on_db;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use utoipa::{IntoParams, ToSchema};

const MINUTE_MS: i64 = 60_000;

/// The completeness report of one gateway over `[from, to)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Completeness {
    pub gateway_id: String,
    /// Start, inclusive (Unix ms).
    pub from: i64,
    /// End, exclusive (Unix ms).
    pub to: i64,
    /// The gateway's highest watermark: everything it polled before this
    /// instant is stored, reported dropped or in flight. `null` before its
    /// first batch.
    pub polled_through_ms: Option<i64>,
    pub sequences: SequenceReport,
    /// Every point of the gateway, by device and point name.
    pub points: Vec<PointCompleteness>,
}

/// Sequence ranges as inclusive `[first, last]` pairs, ascending, disjoint
/// and not adjacent within each list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct SequenceReport {
    /// Sequences stored by the cloud.
    #[schema(value_type = Vec<Vec<u64>>)]
    pub received: Vec<[u64; 2]>,
    /// Sequences the gateway reported discarded.
    #[schema(value_type = Vec<Vec<u64>>)]
    pub dropped: Vec<[u64; 2]>,
    /// Sequences between the lowest and highest known one that are neither
    /// received nor dropped: still buffered on the gateway or on their way.
    #[schema(value_type = Vec<Vec<u64>>)]
    pub in_flight: Vec<[u64; 2]>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PointCompleteness {
    pub device: String,
    pub point: String,
    /// Samples stored with a timestamp in `[from, to)` (with or without a value).
    pub received: i64,
    /// Timestamps of the first and last of them; `null` when none.
    pub first_ms: Option<i64>,
    pub last_ms: Option<i64>,
    /// Reported dropped spans of this point overlapping `[from, to)`, as
    /// reported (not clipped), by `from_ms`.
    pub dropped: Vec<DroppedSpanOut>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DroppedSpanOut {
    /// First and last dropped sample (inclusive, Unix ms).
    pub from_ms: i64,
    pub to_ms: i64,
    pub samples: i64,
    /// `capacity` or `age`.
    pub reason: String,
}

/// Sorts and merges inclusive ranges that overlap or touch.
pub fn merge_ranges(mut v: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    v.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::with_capacity(v.len());
    for (a, b) in v {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

/// The gaps between consecutive ranges of a merged list.
pub fn holes(merged: &[(i64, i64)]) -> Vec<(i64, i64)> {
    merged
        .windows(2)
        .map(|w| (w[0].1 + 1, w[1].0 - 1))
        .filter(|(a, b)| a <= b)
        .collect()
}

fn pairs(v: &[(i64, i64)]) -> Vec<[u64; 2]> {
    // Stored sequences are never negative (ingest checks them).
    v.iter()
        .map(|&(a, b)| [u64::try_from(a).unwrap_or(0), u64::try_from(b).unwrap_or(0)])
        .collect()
}

/// `[a, b)`: the whole minutes inside `[from, to)` (possibly empty, then
/// `a == b`); the partial minutes are `[from, a)` and `[b, to)`.
fn whole_minutes(from: i64, to: i64) -> (i64, i64) {
    let floor = |t: i64| t.div_euclid(MINUTE_MS).saturating_mul(MINUTE_MS);
    let ceil = |t: i64| {
        let f = floor(t);
        if f == t {
            t
        } else {
            f.saturating_add(MINUTE_MS)
        }
    };
    let a = ceil(from).min(to);
    let b = floor(to).max(a);
    (a, b)
}

/// The completeness report, or `None` for an unknown gateway.
pub async fn report(
    db: &Db,
    gateway_id: &str,
    from: i64,
    to: i64,
) -> Result<Option<Completeness>, sqlx::Error> {
    let gw: Option<Option<i64>> = on_db!(db, p => sqlx::query(
        "SELECT polled_through_ms FROM gateways WHERE id = $1")
        .bind(gateway_id).fetch_optional(p).await?
        .map(|r| r.try_get(0)).transpose()?);
    let Some(polled_through_ms) = gw else {
        return Ok(None);
    };

    let received: Vec<(i64, i64)> = on_db!(db, p => {
        let rows = sqlx::query(
            "SELECT MIN(first_sequence), MAX(sequence) FROM ( \
               SELECT first_sequence, sequence, \
                 SUM(brk) OVER (ORDER BY sequence ROWS UNBOUNDED PRECEDING) AS grp \
               FROM ( \
                 SELECT first_sequence, sequence, \
                   CASE WHEN first_sequence - 1 = LAG(sequence) OVER (ORDER BY sequence) \
                        THEN 0 ELSE 1 END AS brk \
                 FROM ingested_batches WHERE gateway_id = $1) t) u \
             GROUP BY grp ORDER BY 1")
            .bind(gateway_id).fetch_all(p).await?;
        rows.iter().map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, _>>()?
    });
    let received = merge_ranges(received);
    let dropped: Vec<(i64, i64)> = on_db!(db, p => {
        let rows = sqlx::query(
            "SELECT DISTINCT first_sequence, last_sequence FROM dropped_ranges WHERE gateway_id = $1")
            .bind(gateway_id).fetch_all(p).await?;
        rows.iter().map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?)))
            .collect::<Result<_, _>>()?
    });
    let dropped = merge_ranges(dropped);
    let known = merge_ranges(received.iter().chain(&dropped).copied().collect());
    let sequences = SequenceReport {
        received: pairs(&received),
        dropped: pairs(&dropped),
        in_flight: pairs(&holes(&known)),
    };

    let (a, b) = whole_minutes(from, to);
    let mut points: BTreeMap<(String, String), PointCompleteness> = BTreeMap::new();
    let counted: Vec<PointCompleteness> = on_db!(db, p => {
        let rows = sqlx::query(
            "SELECT p.device, p.point, \
               (SELECT CAST(COALESCE(SUM(r.samples), 0) AS BIGINT) FROM rollups_1m r \
                 WHERE r.point_id = p.id AND r.bucket_ms >= $2 AND r.bucket_ms < $3) + \
               CAST(COALESCE(d.samples, 0) AS BIGINT), \
               (SELECT COUNT(*) FROM samples s \
                 WHERE s.point_id = p.id AND s.ts_ms >= $4 AND s.ts_ms < $2), \
               (SELECT COUNT(*) FROM samples s \
                 WHERE s.point_id = p.id AND s.ts_ms >= $3 AND s.ts_ms < $5), \
               (SELECT MIN(s.ts_ms) FROM samples s \
                 WHERE s.point_id = p.id AND s.ts_ms >= $4 AND s.ts_ms < $5), \
               (SELECT MAX(s.ts_ms) FROM samples s \
                 WHERE s.point_id = p.id AND s.ts_ms >= $4 AND s.ts_ms < $5) \
             FROM points p \
             LEFT JOIN (SELECT point_id, SUM(samples) AS samples FROM rollup_deltas \
                        WHERE bucket_ms >= $2 AND bucket_ms < $3 GROUP BY point_id) d \
               ON d.point_id = p.id \
             WHERE p.gateway_id = $1")
            .bind(gateway_id).bind(a).bind(b).bind(from).bind(to).fetch_all(p).await?;
        rows.iter().map(|r| {
            let (whole, head, tail): (i64, i64, i64) = (r.try_get(2)?, r.try_get(3)?, r.try_get(4)?);
            Ok::<_, sqlx::Error>(PointCompleteness {
                device: r.try_get(0)?,
                point: r.try_get(1)?,
                received: whole + head + tail,
                first_ms: r.try_get(5)?,
                last_ms: r.try_get(6)?,
                dropped: Vec::new(),
            })
        }).collect::<Result<_, _>>()?
    });
    for pc in counted {
        points.insert((pc.device.clone(), pc.point.clone()), pc);
    }
    let spans: Vec<(String, String, DroppedSpanOut)> = on_db!(db, p => {
        let rows = sqlx::query(
            "SELECT device, point, from_ms, to_ms, samples, reason FROM dropped_ranges \
             WHERE gateway_id = $1 AND device IS NOT NULL AND point IS NOT NULL \
               AND from_ms < $3 AND to_ms >= $2 \
             ORDER BY device, point, from_ms, to_ms, id")
            .bind(gateway_id).bind(from).bind(to).fetch_all(p).await?;
        rows.iter().map(|r| Ok::<_, sqlx::Error>((r.try_get(0)?, r.try_get(1)?, DroppedSpanOut {
            from_ms: r.try_get(2)?,
            to_ms: r.try_get(3)?,
            samples: r.try_get(4)?,
            reason: r.try_get(5)?,
        }))).collect::<Result<_, _>>()?
    });
    for (device, point, span) in spans {
        points
            .entry((device.clone(), point.clone()))
            .or_insert_with(|| PointCompleteness {
                device,
                point,
                received: 0,
                first_ms: None,
                last_ms: None,
                dropped: Vec::new(),
            })
            .dropped
            .push(span);
    }
    Ok(Some(Completeness {
        gateway_id: gateway_id.to_string(),
        from,
        to,
        polled_through_ms,
        sequences,
        points: points.into_values().collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // documents the parameters; parsing goes through `Params`
pub struct CompletenessQuery {
    /// Start, inclusive (Unix ms). Required.
    from: i64,
    /// End, exclusive (Unix ms). Required, after `from`.
    to: i64,
}

/// What the cloud holds of a gateway's data over a time range, what the
/// gateway reported lost, and which sequences are still in flight.
#[utoipa::path(get, path = "/api/v1/gateways/{id}/completeness", tag = "gateways",
    params(("id" = String, Path, description = "Gateway id"), CompletenessQuery),
    responses((status = 200, body = Completeness),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 401, body = Problem, content_type = "application/problem+json"),
              (status = 403, body = Problem, content_type = "application/problem+json"),
              (status = 404, body = Problem, content_type = "application/problem+json")),
    security(("user_token" = [])))]
pub async fn get_completeness(
    State(st): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Query(raw): Query<HashMap<String, String>>,
) -> Result<Json<Completeness>, AppError> {
    who.require(Permission::ReadTelemetry)?;
    let q = Params::new(raw, &["from", "to"])?;
    let from = q
        .parse::<i64>("from", "a Unix time in milliseconds")?
        .ok_or_else(|| AppError::bad_field("from", "required (Unix ms, inclusive)"))?;
    let to = q
        .parse::<i64>("to", "a Unix time in milliseconds")?
        .ok_or_else(|| AppError::bad_field("to", "required (Unix ms, exclusive)"))?;
    if from >= to {
        return Err(AppError::bad_field("from", "must be before `to`"));
    }
    match report(&st.db, &id, from, to).await? {
        Some(r) => Ok(Json(r)),
        None => Err(AppError::NotFound {
            detail: format!("no gateway with id {id:?}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_touching_ranges_and_finds_holes() {
        let m = merge_ranges(vec![(5, 6), (1, 2), (3, 3), (9, 12), (10, 11)]);
        assert_eq!(m, vec![(1, 3), (5, 6), (9, 12)]);
        assert_eq!(holes(&m), vec![(4, 4), (7, 8)]);
        assert_eq!(holes(&[(1, 1)]), vec![]);
        assert_eq!(merge_ranges(vec![]), vec![]);
    }

    #[test]
    fn splits_a_range_into_whole_and_partial_minutes() {
        assert_eq!(whole_minutes(0, 120_000), (0, 120_000));
        assert_eq!(whole_minutes(1, 120_001), (60_000, 120_000));
        assert_eq!(whole_minutes(1, 2), (2, 2));
        assert_eq!(whole_minutes(59_000, 61_000), (60_000, 60_000));
        assert_eq!(whole_minutes(-1, 60_000), (0, 60_000));
    }
}

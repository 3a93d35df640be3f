//! PM compliance per SMRP metric 5.4.1: of the PM occurrences due in a
//! period, the share whose work order was completed on time.
//!
//! - `due`: occurrences (generated or missed) with `from <= due_ms < to`;
//! - `completed_on_time`: work order COMPLETED or CLOSED whose completion
//!   time (the latest history row with `to_status = COMPLETED`) is at or
//!   before `due_ms + grace_ms` (grace: the plan's `grace_days` when the
//!   occurrence was recorded);
//! - `late`: COMPLETED or CLOSED after that;
//! - `missed`: recorded as missed during catch-up, or the work order was
//!   CANCELLED;
//! - `open`: any other status (not yet done);
//! - `compliance = completed_on_time / due`, `null` when `due = 0`.

use crate::db::Db;
use crate::http::problem::AppError;
use crate::on_db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Compliance {
    pub site_id: Option<i64>,
    pub from_ms: i64,
    pub to_ms: i64,
    pub due: i64,
    pub completed_on_time: i64,
    pub late: i64,
    pub missed: i64,
    pub open: i64,
    /// `completed_on_time / due`; null when nothing was due.
    pub compliance: Option<f64>,
}

/// occurrence status, due_ms, grace_ms, work order status, completion time.
type Row = (String, i64, i64, Option<String>, Option<i64>);

/// Compliance of the plans of `site_id` (all sites when `None`) over
/// `[from_ms, to_ms)`.
pub async fn compute(
    db: &Db,
    site_id: Option<i64>,
    from_ms: i64,
    to_ms: i64,
) -> Result<Compliance, AppError> {
    let site_clause = if site_id.is_some() {
        " AND p.site_id = $3"
    } else {
        ""
    };
    let sql = format!(
        "SELECT o.status, o.due_ms, o.grace_ms, w.status, \
         (SELECT MAX(h.at_ms) FROM work_order_history h WHERE h.work_order_id = o.work_order_id AND h.to_status = 'COMPLETED') \
         FROM pm_occurrences o JOIN pm_plans p ON p.id = o.plan_id LEFT JOIN work_orders w ON w.id = o.work_order_id \
         WHERE o.due_ms >= $1 AND o.due_ms < $2{site_clause}"
    );
    let rows: Vec<Row> = on_db!(db, p => {
        let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(from_ms).bind(to_ms);
        match site_id {
            Some(s) => q.bind(s).fetch_all(p).await,
            None => q.fetch_all(p).await,
        }
    })?;
    let mut c = Compliance {
        site_id,
        from_ms,
        to_ms,
        due: 0,
        completed_on_time: 0,
        late: 0,
        missed: 0,
        open: 0,
        compliance: None,
    };
    for (status, due, grace, wo_status, done) in rows {
        c.due += 1;
        match (status.as_str(), wo_status.as_deref(), done) {
            ("missed", _, _) | (_, None | Some("CANCELLED"), _) => c.missed += 1,
            (_, Some("COMPLETED" | "CLOSED"), Some(at)) if at <= due.saturating_add(grace) => {
                c.completed_on_time += 1
            }
            (_, Some("COMPLETED" | "CLOSED"), _) => c.late += 1,
            _ => c.open += 1,
        }
    }
    c.compliance = (c.due > 0).then(|| c.completed_on_time as f64 / c.due as f64);
    Ok(c)
}

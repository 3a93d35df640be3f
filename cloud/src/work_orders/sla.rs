//! Service-level agreement per priority (docs/specs/work-order-lifecycle.md,
//! "SLA"): a work order's `sla_due_ms` is its creation time plus the SLA of
//! its priority; it is breached while that time has passed and the order is
//! not COMPLETED, CLOSED or CANCELLED.

const HOUR_MS: i64 = 3_600_000;

/// Statuses in which the SLA is met or no longer applies.
pub const SETTLED: [&str; 3] = ["COMPLETED", "CLOSED", "CANCELLED"];

/// The SLA of a priority (1 urgent … 5), in milliseconds.
pub fn sla_ms(priority: i64) -> i64 {
    match priority {
        1 => 4 * HOUR_MS,
        2 => 24 * HOUR_MS,
        3 => 72 * HOUR_MS,
        4 => 7 * 24 * HOUR_MS,
        _ => 30 * 24 * HOUR_MS,
    }
}

/// `created_ms` + the SLA of `priority`.
pub fn due_ms(created_ms: i64, priority: i64) -> i64 {
    created_ms.saturating_add(sla_ms(priority))
}

/// Whether the SLA is breached at `now`.
pub fn breached(sla_due_ms: Option<i64>, status: &str, now: i64) -> bool {
    sla_due_ms.is_some_and(|d| d < now) && !SETTLED.contains(&status)
}

/// SQL for the `sla_breached` list filter, with `$n` the current time.
pub fn filter_sql(breached: bool, n: usize) -> String {
    let settled = "('COMPLETED', 'CLOSED', 'CANCELLED')";
    if breached {
        format!("(sla_due_ms < ${n} AND status NOT IN {settled})")
    } else {
        format!("(sla_due_ms IS NULL OR sla_due_ms >= ${n} OR status IN {settled})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_and_breach_rule() {
        assert_eq!(sla_ms(1), 4 * HOUR_MS);
        assert_eq!(sla_ms(2), 24 * HOUR_MS);
        assert_eq!(sla_ms(3), 72 * HOUR_MS);
        assert_eq!(sla_ms(4), 168 * HOUR_MS);
        assert_eq!(sla_ms(5), 720 * HOUR_MS);
        assert!(breached(Some(10), "IN_PROGRESS", 11));
        assert!(!breached(Some(10), "IN_PROGRESS", 10));
        assert!(!breached(Some(10), "COMPLETED", 11));
        assert!(!breached(None, "REQUESTED", 11));
    }
}

//! Schedules of PM plans and their date arithmetic, pure and unit-tested.
//!
//! Times are UTC Unix ms. Calendar steps are taken in the plan's local time:
//! an IANA time zone (`time_zone`, e.g. `Europe/Berlin`), whose daylight-
//! saving changes are followed, or else a fixed offset from UTC
//! (`utc_offset_minutes`, e.g. 330 for Asia/Kolkata). Every occurrence keeps
//! the anchor's local time of day; days and weeks step the local date; a
//! month step keeps the anchor's day of month and clamps to the month's last
//! day (anchor 31 Jan → 28/29 Feb → 31 Mar: each occurrence is computed from
//! the anchor, so clamping never drifts). A local time that a DST change
//! skips is read with the offset before the gap, and one it repeats is the
//! first of the two (RFC 5545 §3.3.5).
//!
//! RRULE subset (RFC 5545): `FREQ=DAILY|WEEKLY|MONTHLY`, `INTERVAL=n`,
//! and for WEEKLY `BYDAY=MO,TU,…`; nothing else is accepted.

use chrono::{DateTime, Offset, TimeZone};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const DAY_MS: i64 = 86_400_000;
const MINUTE_MS: i64 = 60_000;
/// Most occurrences one call of [`Recurrence::between`] returns.
pub const MAX_OCCURRENCES: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Day,
    Week,
    Month,
}

/// When a plan falls due.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Schedule {
    /// Every `every` `unit`s from `anchor_ms` (the first occurrence).
    Calendar {
        every: i64,
        unit: Unit,
        anchor_ms: i64,
        /// The site's offset from UTC in minutes (fixed, no DST). Default 0.
        /// Must be 0 when `time_zone` is given.
        #[serde(default)]
        utc_offset_minutes: i64,
        /// IANA time zone of the plan's local time (DST followed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_zone: Option<String>,
    },
    /// An RRULE subset, e.g. `FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH`, starting at
    /// `anchor_ms` (its time of day is every occurrence's).
    Rrule {
        rrule: String,
        anchor_ms: i64,
        #[serde(default)]
        utc_offset_minutes: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        time_zone: Option<String>,
    },
    /// Every `every` units of the meter read from the asset's telemetry point
    /// linked with `role` (e.g. `running_hours`, `energy_mwh`), counted from
    /// `start_value` (default 0) and then from the reading at each generation.
    Meter {
        role: String,
        every: f64,
        #[serde(default)]
        start_value: f64,
    },
}

/// A schedule error, naming the field at fault (below `schedule.`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {detail}")]
pub struct ScheduleError {
    pub field: &'static str,
    pub detail: String,
}

fn err(field: &'static str, detail: impl Into<String>) -> ScheduleError {
    ScheduleError {
        field,
        detail: detail.into(),
    }
}

/// A calendar recurrence, from either a `calendar` or an `rrule` schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    pub every: i64,
    pub unit: Unit,
    pub anchor_ms: i64,
    pub zone: Zone,
    /// WEEKLY only: weekdays, 0 = Monday … 6 = Sunday, sorted; empty = the
    /// anchor's weekday.
    pub byday: Vec<i64>,
}

/// The local time of a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// A fixed offset from UTC.
    Fixed { offset_ms: i64 },
    /// An IANA time zone.
    Iana(chrono_tz::Tz),
}

impl Zone {
    /// Local wall-clock time of `utc_ms`, as ms since 1970-01-01 00:00 local.
    pub fn local(&self, utc_ms: i64) -> i64 {
        match self {
            Zone::Fixed { offset_ms } => utc_ms + offset_ms,
            Zone::Iana(tz) => match DateTime::from_timestamp_millis(utc_ms) {
                Some(t) => {
                    let off = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
                    utc_ms + i64::from(off.local_minus_utc()) * 1000
                }
                None => utc_ms,
            },
        }
    }

    /// The UTC time of a local wall-clock time: in a DST gap, read with the
    /// offset before the gap; in a repeated hour, the first of the two.
    pub fn utc(&self, local_ms: i64) -> i64 {
        match self {
            Zone::Fixed { offset_ms } => local_ms - offset_ms,
            Zone::Iana(tz) => {
                let Some(naive) = DateTime::from_timestamp_millis(local_ms).map(|t| t.naive_utc())
                else {
                    return local_ms;
                };
                match tz.from_local_datetime(&naive).earliest() {
                    Some(t) => t.timestamp_millis(),
                    None => {
                        // A gap: DST changes are at least a day apart, so the
                        // offset a day earlier is the one before the gap.
                        let before = naive - chrono::Duration::days(1);
                        let off = tz.offset_from_utc_datetime(&before).fix();
                        local_ms - i64::from(off.local_minus_utc()) * 1000
                    }
                }
            }
        }
    }
}

const WEEKDAYS: [&str; 7] = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"];

/// Parses the supported RRULE subset into (every, unit, byday).
pub fn parse_rrule(s: &str) -> Result<(i64, Unit, Vec<i64>), ScheduleError> {
    const F: &str = "schedule.rrule";
    let body = s.trim().strip_prefix("RRULE:").unwrap_or(s.trim());
    let mut freq = None;
    let mut interval = 1i64;
    let mut byday = Vec::new();
    for part in body.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| err(F, format!("{part:?} is not NAME=VALUE")))?;
        match k.to_ascii_uppercase().as_str() {
            "FREQ" => {
                freq = Some(match v.to_ascii_uppercase().as_str() {
                    "DAILY" => Unit::Day,
                    "WEEKLY" => Unit::Week,
                    "MONTHLY" => Unit::Month,
                    _ => return Err(err(F, format!("FREQ={v}: DAILY, WEEKLY or MONTHLY"))),
                })
            }
            "INTERVAL" => {
                interval = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| err(F, format!("INTERVAL={v}: an integer 1 to 1000")))?;
            }
            "BYDAY" => {
                for d in v.split(',') {
                    let i = WEEKDAYS
                        .iter()
                        .position(|w| w.eq_ignore_ascii_case(d.trim()))
                        .ok_or_else(|| {
                            err(F, format!("BYDAY {d:?}: MO, TU, WE, TH, FR, SA or SU"))
                        })?;
                    byday.push(i as i64);
                }
            }
            other => {
                return Err(err(
                    F,
                    format!("{other} is not supported (FREQ, INTERVAL and BYDAY only)"),
                ));
            }
        }
    }
    let unit = freq.ok_or_else(|| err(F, "FREQ is missing"))?;
    if !byday.is_empty() && unit != Unit::Week {
        return Err(err(F, "BYDAY is supported with FREQ=WEEKLY only"));
    }
    byday.sort_unstable();
    byday.dedup();
    Ok((interval, unit, byday))
}

impl Schedule {
    /// Checks the schedule; returns its recurrence (`None` for meters).
    pub fn recurrence(&self) -> Result<Option<Recurrence>, ScheduleError> {
        let check_common = |anchor: i64, offset_min: i64| {
            if !(0..=253_402_300_799_999).contains(&anchor) {
                return Err(err(
                    "schedule.anchor_ms",
                    "must be a Unix ms time between 1970 and 9999",
                ));
            }
            if !(-14 * 60..=14 * 60).contains(&offset_min) {
                return Err(err(
                    "schedule.utc_offset_minutes",
                    "must be between -840 and 840",
                ));
            }
            Ok(())
        };
        let zone = |offset_min: i64, tz: &Option<String>| match tz {
            None => Ok(Zone::Fixed {
                offset_ms: offset_min * MINUTE_MS,
            }),
            Some(_) if offset_min != 0 => Err(err(
                "schedule.utc_offset_minutes",
                "give time_zone or utc_offset_minutes, not both",
            )),
            Some(name) => name.parse::<chrono_tz::Tz>().map(Zone::Iana).map_err(|_| {
                err(
                    "schedule.time_zone",
                    format!("{name:?} is not an IANA time zone (e.g. Asia/Kolkata)"),
                )
            }),
        };
        match self {
            Schedule::Calendar {
                every,
                unit,
                anchor_ms,
                utc_offset_minutes,
                time_zone,
            } => {
                if !(1..=1000).contains(every) {
                    return Err(err("schedule.every", "must be an integer 1 to 1000"));
                }
                check_common(*anchor_ms, *utc_offset_minutes)?;
                Ok(Some(Recurrence {
                    every: *every,
                    unit: *unit,
                    anchor_ms: *anchor_ms,
                    zone: zone(*utc_offset_minutes, time_zone)?,
                    byday: Vec::new(),
                }))
            }
            Schedule::Rrule {
                rrule,
                anchor_ms,
                utc_offset_minutes,
                time_zone,
            } => {
                let (every, unit, byday) = parse_rrule(rrule)?;
                check_common(*anchor_ms, *utc_offset_minutes)?;
                Ok(Some(Recurrence {
                    every,
                    unit,
                    anchor_ms: *anchor_ms,
                    zone: zone(*utc_offset_minutes, time_zone)?,
                    byday,
                }))
            }
            Schedule::Meter {
                role,
                every,
                start_value,
            } => {
                if role.trim().is_empty() || role.len() > 64 {
                    return Err(err("schedule.role", "must be 1 to 64 characters"));
                }
                if !(every.is_finite() && *every > 0.0) {
                    return Err(err("schedule.every", "must be a positive number"));
                }
                if !start_value.is_finite() {
                    return Err(err("schedule.start_value", "must be a finite number"));
                }
                Ok(None)
            }
        }
    }

    /// The default grace: 10 % of a calendar interval, rounded up to whole
    /// days; 7 days for meter plans.
    pub fn default_grace_days(&self) -> i64 {
        match self.recurrence() {
            Ok(Some(r)) => {
                let days = match r.unit {
                    Unit::Day => r.every,
                    Unit::Week => r.every * 7,
                    Unit::Month => r.every * 30,
                };
                (days + 9) / 10
            }
            _ => 7,
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date (year, month 1–12, day 1–31) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)
}

/// `local_ms` plus `months`, keeping day of month (clamped to the month's
/// end) and time of day.
pub fn add_months(local_ms: i64, months: i64) -> i64 {
    let days = local_ms.div_euclid(DAY_MS);
    let tod = local_ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let total = y * 12 + (m - 1) + months;
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) + 1);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd) * DAY_MS + tod
}

/// 0 = Monday … 6 = Sunday.
pub fn weekday(days: i64) -> i64 {
    (days + 3).rem_euclid(7)
}

impl Recurrence {
    /// The occurrences of period `k` (k ≥ 0), sorted, in UTC ms.
    fn period(&self, k: i64) -> Vec<i64> {
        let local = self.zone.local(self.anchor_ms);
        let utc = |l: i64| self.zone.utc(l);
        match self.unit {
            Unit::Day => vec![utc(local + k * self.every * DAY_MS)],
            Unit::Month => vec![utc(add_months(local, k * self.every))],
            Unit::Week if self.byday.is_empty() => {
                vec![utc(local + k * self.every * 7 * DAY_MS)]
            }
            Unit::Week => {
                let days = local.div_euclid(DAY_MS);
                let tod = local.rem_euclid(DAY_MS);
                let monday = days - weekday(days) + k * self.every * 7;
                self.byday
                    .iter()
                    .map(|wd| utc((monday + wd) * DAY_MS + tod))
                    .filter(|t| *t >= self.anchor_ms)
                    .collect()
            }
        }
    }

    /// Length of one period, roughly (for the starting estimate).
    fn period_ms(&self) -> i64 {
        self.every
            * DAY_MS
            * match self.unit {
                Unit::Day => 1,
                Unit::Week => 7,
                Unit::Month => 28,
            }
    }

    /// Occurrences `t` with `after < t <= until`, ascending, at most
    /// [`MAX_OCCURRENCES`]. The first occurrence is the anchor (for BYDAY,
    /// the first listed weekday at or after it).
    pub fn between(&self, after: i64, until: i64) -> Vec<i64> {
        let mut out = Vec::new();
        // Start a little early; month lengths vary, so step back 2 periods.
        let mut k = ((after - self.anchor_ms).div_euclid(self.period_ms()) - 2).max(0);
        loop {
            let ts = self.period(k);
            if ts.first().is_some_and(|t| *t > until) {
                break;
            }
            for t in ts {
                if t > after && t <= until {
                    out.push(t);
                    if out.len() >= MAX_OCCURRENCES {
                        return out;
                    }
                }
            }
            k += 1;
            // A BYDAY period can be empty only for k = 0 (before the anchor).
            if k > 10_000_000 {
                break;
            }
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ms(y: i64, m: i64, d: i64, h: i64) -> i64 {
        days_from_civil(y, m, d) * DAY_MS + h * 3_600_000
    }

    fn cal(every: i64, unit: Unit, anchor: i64, off: i64) -> Recurrence {
        Schedule::Calendar {
            every,
            unit,
            anchor_ms: anchor,
            utc_offset_minutes: off,
            time_zone: None,
        }
        .recurrence()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn civil_round_trips() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        for d in [-800_000, -1, 0, 59, 11_016, 19_782, 2_932_896] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(civil_from_days(days_from_civil(2024, 2, 29)), (2024, 2, 29));
        assert_eq!(weekday(0), 3, "1970-01-01 was a Thursday");
        assert_eq!(weekday(days_from_civil(2026, 12, 7)), 0, "a Monday");
    }

    #[test]
    fn month_steps_clamp_to_month_end_without_drift() {
        let r = cal(1, Unit::Month, ms(2025, 1, 31, 9), 0);
        let got = r.between(0, ms(2025, 6, 1, 0));
        assert_eq!(
            got,
            vec![
                ms(2025, 1, 31, 9),
                ms(2025, 2, 28, 9),
                ms(2025, 3, 31, 9),
                ms(2025, 4, 30, 9),
                ms(2025, 5, 31, 9)
            ]
        );
        // Leap year, and across a year end.
        let r = cal(1, Unit::Month, ms(2023, 12, 31, 0), 0);
        assert_eq!(
            r.between(ms(2024, 1, 1, 0), ms(2024, 3, 1, 0)),
            vec![ms(2024, 1, 31, 0), ms(2024, 2, 29, 0)]
        );
        assert_eq!(add_months(ms(2024, 2, 29, 5), 12), ms(2025, 2, 28, 5));
        assert_eq!(add_months(ms(2024, 3, 31, 0), -1), ms(2024, 2, 29, 0));
    }

    #[test]
    fn month_steps_use_the_local_date() {
        // 2025-01-31 00:30 in UTC+05:30 is 2025-01-30 19:00 UTC.
        let anchor = ms(2025, 1, 30, 19);
        let r = cal(1, Unit::Month, anchor, 330);
        // Next: 2025-02-28 00:30 local = 2025-02-27 19:00 UTC.
        assert_eq!(
            r.between(anchor, anchor + 40 * DAY_MS),
            vec![ms(2025, 2, 27, 19)]
        );
    }

    #[test]
    fn day_and_week_steps_and_window_bounds() {
        let a = ms(2026, 1, 1, 6);
        let r = cal(7, Unit::Day, a, 0);
        assert_eq!(
            r.between(a - 1, a + 21 * DAY_MS),
            vec![a, a + 7 * DAY_MS, a + 14 * DAY_MS, a + 21 * DAY_MS]
        );
        // `after` is exclusive, `until` inclusive.
        assert_eq!(r.between(a, a + 7 * DAY_MS), vec![a + 7 * DAY_MS]);
        let w = cal(2, Unit::Week, a, 0);
        assert_eq!(
            w.between(a + 1, a + 60 * DAY_MS),
            vec![
                a + 14 * DAY_MS,
                a + 28 * DAY_MS,
                a + 42 * DAY_MS,
                a + 56 * DAY_MS
            ]
        );
        // Far from the anchor, the estimate still finds the exact ones.
        let far = a + 3650 * DAY_MS;
        assert_eq!(r.between(far, far + 7 * DAY_MS).len(), 1);
    }

    #[test]
    fn rrule_subset_parses_and_rejects_the_rest() {
        assert_eq!(
            parse_rrule("FREQ=WEEKLY;INTERVAL=2;BYDAY=TH,MO").unwrap(),
            (2, Unit::Week, vec![0, 3])
        );
        assert_eq!(
            parse_rrule("RRULE:FREQ=DAILY").unwrap(),
            (1, Unit::Day, vec![])
        );
        assert_eq!(parse_rrule("FREQ=MONTHLY;INTERVAL=3").unwrap().0, 3);
        for bad in [
            "",
            "INTERVAL=2",
            "FREQ=YEARLY",
            "FREQ=DAILY;BYDAY=MO",
            "FREQ=WEEKLY;BYDAY=XX",
            "FREQ=WEEKLY;COUNT=3",
            "FREQ=DAILY;INTERVAL=0",
            "FREQ",
        ] {
            let e = parse_rrule(bad).unwrap_err();
            assert_eq!(e.field, "schedule.rrule", "{bad}");
        }
    }

    #[test]
    fn weekly_byday_occurrences() {
        // Anchor Wednesday 2026-12-02 08:00 UTC; every 2 weeks on MO and TH.
        let anchor = ms(2026, 12, 2, 8);
        assert_eq!(weekday(days_from_civil(2026, 12, 2)), 2);
        let r = Schedule::Rrule {
            rrule: "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH".into(),
            anchor_ms: anchor,
            utc_offset_minutes: 0,
            time_zone: None,
        }
        .recurrence()
        .unwrap()
        .unwrap();
        assert_eq!(
            r.between(0, ms(2026, 12, 31, 23)),
            vec![
                ms(2026, 12, 3, 8),  // TH of the anchor's week (MO is before the anchor)
                ms(2026, 12, 14, 8), // MO two weeks on
                ms(2026, 12, 17, 8),
                ms(2026, 12, 28, 8),
                ms(2026, 12, 31, 8),
            ]
        );
    }

    #[test]
    fn validation_names_the_field() {
        let bad = Schedule::Calendar {
            every: 0,
            unit: Unit::Day,
            anchor_ms: 0,
            utc_offset_minutes: 0,
            time_zone: None,
        };
        assert_eq!(bad.recurrence().unwrap_err().field, "schedule.every");
        let bad = Schedule::Meter {
            role: "running_hours".into(),
            every: -1.0,
            start_value: 0.0,
        };
        assert_eq!(bad.recurrence().unwrap_err().field, "schedule.every");
        let bad = Schedule::Calendar {
            every: 1,
            unit: Unit::Day,
            anchor_ms: 0,
            utc_offset_minutes: 5000,
            time_zone: None,
        };
        assert_eq!(
            bad.recurrence().unwrap_err().field,
            "schedule.utc_offset_minutes"
        );
    }

    fn zoned(every: i64, unit: Unit, anchor: i64, tz: &str) -> Recurrence {
        Schedule::Calendar {
            every,
            unit,
            anchor_ms: anchor,
            utc_offset_minutes: 0,
            time_zone: Some(tz.into()),
        }
        .recurrence()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn time_zones_keep_the_local_time_of_day_across_dst() {
        // Berlin: CET (UTC+1) until 2026-03-29 01:00 UTC, then CEST (UTC+2).
        // Daily at 06:00 local from 2026-03-27 (05:00 UTC).
        let r = zoned(1, Unit::Day, ms(2026, 3, 27, 5), "Europe/Berlin");
        assert_eq!(
            r.between(0, ms(2026, 3, 31, 0)),
            vec![
                ms(2026, 3, 27, 5),
                ms(2026, 3, 28, 5),
                ms(2026, 3, 29, 4), // 06:00 CEST
                ms(2026, 3, 30, 4),
            ]
        );
        // Monthly on the 15th at 09:00 local, across the autumn change.
        let r = zoned(1, Unit::Month, ms(2026, 9, 15, 7), "Europe/Berlin");
        assert_eq!(
            r.between(0, ms(2026, 12, 1, 0)),
            vec![ms(2026, 9, 15, 7), ms(2026, 10, 15, 7), ms(2026, 11, 15, 8)]
        );
        // Asia/Kolkata has no DST: the same as a fixed +330 minutes.
        let a = ms(2025, 1, 30, 19);
        assert_eq!(
            zoned(1, Unit::Month, a, "Asia/Kolkata").between(a - 1, a + 400 * DAY_MS),
            cal(1, Unit::Month, a, 330).between(a - 1, a + 400 * DAY_MS)
        );
    }

    #[test]
    fn dst_gaps_and_repeats_follow_rfc_5545() {
        // New York, 2026-03-08: 02:00 EST jumps to 03:00 EDT. A daily 02:30
        // occurrence is read with the offset before the gap (EST, UTC-5):
        // 07:30 UTC, which is 03:30 EDT.
        let r = zoned(
            1,
            Unit::Day,
            ms(2026, 3, 7, 7) + 30 * MINUTE_MS,
            "America/New_York",
        );
        let got = r.between(0, ms(2026, 3, 10, 0));
        assert_eq!(got[1], ms(2026, 3, 8, 7) + 30 * MINUTE_MS);
        assert_eq!(got[2], ms(2026, 3, 9, 6) + 30 * MINUTE_MS, "02:30 EDT");
        // 2026-11-01: 01:30 happens twice; the first (EDT, 05:30 UTC) counts.
        let r = zoned(
            1,
            Unit::Day,
            ms(2026, 10, 31, 5) + 30 * MINUTE_MS,
            "America/New_York",
        );
        assert_eq!(
            r.between(0, ms(2026, 11, 3, 0)),
            vec![
                ms(2026, 10, 31, 5) + 30 * MINUTE_MS,
                ms(2026, 11, 1, 5) + 30 * MINUTE_MS,
                ms(2026, 11, 2, 6) + 30 * MINUTE_MS, // 01:30 EST
            ]
        );
    }

    #[test]
    fn bad_time_zones_name_the_field() {
        let s = Schedule::Calendar {
            every: 1,
            unit: Unit::Day,
            anchor_ms: 0,
            utc_offset_minutes: 0,
            time_zone: Some("Mars/Olympus".into()),
        };
        assert_eq!(s.recurrence().unwrap_err().field, "schedule.time_zone");
        let s = Schedule::Calendar {
            every: 1,
            unit: Unit::Day,
            anchor_ms: 0,
            utc_offset_minutes: 60,
            time_zone: Some("Europe/Berlin".into()),
        };
        assert_eq!(
            s.recurrence().unwrap_err().field,
            "schedule.utc_offset_minutes"
        );
    }

    #[test]
    fn default_grace_is_a_tenth_of_the_interval() {
        let s = |every, unit| Schedule::Calendar {
            every,
            unit,
            anchor_ms: 0,
            utc_offset_minutes: 0,
            time_zone: None,
        };
        assert_eq!(s(7, Unit::Day).default_grace_days(), 1);
        assert_eq!(s(1, Unit::Month).default_grace_days(), 3);
        assert_eq!(s(12, Unit::Month).default_grace_days(), 36);
        assert_eq!(s(1, Unit::Day).default_grace_days(), 1);
    }
}

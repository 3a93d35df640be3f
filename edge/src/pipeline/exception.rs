//! Report-by-exception: which polled samples are worth sending.
//!
//! A device may carry a `report` section; without one every sample is kept.
//! With one, a point's sample is kept when it differs from the last *kept*
//! sample of that point by more than the deadband, when its quality (or
//! NaN-ness) changed, or when the point has been silent for
//! `max_silence_ms`. The deadband is `max(deadband, deadband_percent % of
//! |last kept value|)`: a percent band with an absolute floor, so values near
//! zero do not report every ripple. Comparing against the last kept sample,
//! not the last polled one, stops a slow drift from hiding inside the band
//! forever. See docs/specs/drivers.md, "Report-by-exception".

use dcmms_shared::{Quality, Sample};
use serde::{Deserialize, Serialize};

/// A device's report-by-exception settings, with per-point overrides.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportConfig {
    /// Absolute deadband, in the point's unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband: Option<f64>,
    /// Deadband in percent of the last reported value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband_percent: Option<f64>,
    /// Report at least this often, even without a change, so the cloud can
    /// tell a steady value from a dead link.
    #[serde(default = "d_max_silence")]
    pub max_silence_ms: u64,
    /// Per-point settings, by point name; fields left out inherit the
    /// device's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<ReportOverride>,
}

/// Report-by-exception settings for one point.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReportOverride {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_silence_ms: Option<u64>,
}

fn d_max_silence() -> u64 {
    60_000
}

/// The settings that apply to one point, overrides resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointRule {
    pub deadband: f64,
    pub deadband_percent: f64,
    pub max_silence_ms: i64,
}

impl ReportConfig {
    /// The rule for the point called `name`.
    pub fn rule_for(&self, name: &str) -> PointRule {
        let o = self.points.iter().find(|o| o.name == name);
        PointRule {
            deadband: o.and_then(|o| o.deadband).or(self.deadband).unwrap_or(0.0),
            deadband_percent: o
                .and_then(|o| o.deadband_percent)
                .or(self.deadband_percent)
                .unwrap_or(0.0),
            max_silence_ms: o
                .and_then(|o| o.max_silence_ms)
                .unwrap_or(self.max_silence_ms)
                .min(i64::MAX as u64) as i64,
        }
    }

    /// Checks the numbers and, when `names` is given (the device lists its
    /// points), that every override names a point. Errors are
    /// `(field path below the section, problem)`.
    pub fn validate(&self, names: Option<&[&str]>) -> Result<(), (String, String)> {
        check_bands(self.deadband, self.deadband_percent, "")?;
        if self.max_silence_ms == 0 {
            return Err(("max_silence_ms".into(), "must be positive".into()));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, o) in self.points.iter().enumerate() {
            let at = format!("points[{i}].");
            if !seen.insert(o.name.as_str()) {
                return Err((
                    format!("{at}name"),
                    format!("{:?} has another override above", o.name),
                ));
            }
            if let Some(names) = names
                && !names.contains(&o.name.as_str())
            {
                return Err((
                    format!("{at}name"),
                    format!("{:?} is not a point of this device", o.name),
                ));
            }
            check_bands(o.deadband, o.deadband_percent, &at)?;
            if o.max_silence_ms == Some(0) {
                return Err((format!("{at}max_silence_ms"), "must be positive".into()));
            }
        }
        Ok(())
    }
}

fn check_bands(abs: Option<f64>, pct: Option<f64>, at: &str) -> Result<(), (String, String)> {
    if let Some(d) = abs
        && !(d.is_finite() && d >= 0.0)
    {
        return Err((
            format!("{at}deadband"),
            format!("{d} must be a finite number ≥ 0"),
        ));
    }
    if let Some(p) = pct
        && !(p.is_finite() && (0.0..=100.0).contains(&p))
    {
        return Err((
            format!("{at}deadband_percent"),
            format!("{p} must be between 0 and 100"),
        ));
    }
    Ok(())
}

/// The last kept sample of one point.
#[derive(Debug, Clone, Copy)]
struct Kept {
    ts_ms: i64,
    value: f64,
    quality: Quality,
}

/// Per-point filter state: decides, sample by sample, what to keep.
#[derive(Debug, Clone)]
pub struct ExceptionFilter {
    rule: PointRule,
    last: Option<Kept>,
}

impl ExceptionFilter {
    pub fn new(rule: PointRule) -> Self {
        ExceptionFilter { rule, last: None }
    }

    /// Whether `s` is reported; if so it becomes the new reference.
    pub fn keep(&mut self, s: &Sample) -> bool {
        let keep = match self.last {
            None => true,
            Some(k) => {
                k.quality != s.quality
                    || k.value.is_nan() != s.value.is_nan()
                    || s.ts_ms.saturating_sub(k.ts_ms) >= self.rule.max_silence_ms
                    // A clock step backwards: report, and restart from here.
                    || s.ts_ms < k.ts_ms
                    || {
                        let band = self
                            .rule
                            .deadband
                            .max(self.rule.deadband_percent / 100.0 * k.value.abs());
                        // Strictly beyond the band; with no band, any change.
                        let d = (s.value - k.value).abs();
                        if band > 0.0 { d > band } else { d > 0.0 }
                    }
            }
        };
        if keep {
            self.last = Some(Kept {
                ts_ms: s.ts_ms,
                value: s.value,
                quality: s.quality,
            });
        }
        keep
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(ts_ms: i64, value: f64) -> Sample {
        Sample {
            ts_ms,
            value,
            quality: Quality::Good,
        }
    }

    fn rule(deadband: f64, deadband_percent: f64, max_silence_ms: i64) -> PointRule {
        PointRule {
            deadband,
            deadband_percent,
            max_silence_ms,
        }
    }

    #[test]
    fn absolute_band_compares_against_the_last_kept_value() {
        let mut f = ExceptionFilter::new(rule(1.0, 0.0, 60_000));
        assert!(f.keep(&s(0, 10.0)), "first sample is always kept");
        assert!(!f.keep(&s(1, 10.6)));
        assert!(!f.keep(&s(2, 10.9)), "band is measured from 10.0, not 10.6");
        assert!(!f.keep(&s(3, 11.0)), "exactly on the band is inside");
        assert!(f.keep(&s(4, 11.2)));
        assert!(!f.keep(&s(5, 10.5)));
        assert!(f.keep(&s(6, 10.1)));
    }

    #[test]
    fn percent_band_has_the_absolute_band_as_floor() {
        let mut f = ExceptionFilter::new(rule(0.5, 1.0, 60_000));
        assert!(f.keep(&s(0, 1000.0)));
        assert!(!f.keep(&s(1, 1009.0)), "1% of 1000 is 10");
        assert!(f.keep(&s(2, 1010.5)));
        assert!(f.keep(&s(3, 2.0)));
        assert!(!f.keep(&s(4, 2.4)), "near zero the 0.5 floor applies");
        assert!(f.keep(&s(5, 2.6)));
    }

    #[test]
    fn no_band_reports_every_change_and_silence_forces_a_report() {
        let mut f = ExceptionFilter::new(rule(0.0, 0.0, 1_000));
        assert!(f.keep(&s(0, 5.0)));
        assert!(!f.keep(&s(100, 5.0)));
        assert!(f.keep(&s(200, 5.0001)));
        assert!(!f.keep(&s(1_100, 5.0001)));
        assert!(f.keep(&s(1_200, 5.0001)), "1000 ms since the last kept");
    }

    #[test]
    fn quality_and_nan_changes_are_always_reported() {
        let mut f = ExceptionFilter::new(rule(100.0, 0.0, 60_000));
        assert!(f.keep(&s(0, 5.0)));
        let lost = Sample {
            ts_ms: 1,
            value: 5.0,
            quality: Quality::CommsLost,
        };
        assert!(f.keep(&lost));
        assert!(!f.keep(&Sample { ts_ms: 2, ..lost }));
        assert!(f.keep(&s(3, 5.0)), "back to good");
        assert!(f.keep(&s(4, f64::NAN)));
        assert!(!f.keep(&s(5, f64::NAN)), "NaN after NaN is no change");
        assert!(f.keep(&s(6, 5.0)));
    }

    #[test]
    fn overrides_inherit_what_they_leave_out() {
        let cfg: ReportConfig = toml::from_str(
            r#"
            deadband = 2.0
            max_silence_ms = 30000
            [[points]]
            name = "W"
            deadband_percent = 1.5
            "#,
        )
        .unwrap();
        assert_eq!(cfg.rule_for("W"), rule(2.0, 1.5, 30_000));
        assert_eq!(cfg.rule_for("A"), rule(2.0, 0.0, 30_000));
    }

    #[test]
    fn validation_names_the_field_at_fault() {
        let mut cfg = ReportConfig {
            deadband: Some(-1.0),
            deadband_percent: None,
            max_silence_ms: 1000,
            points: vec![],
        };
        assert_eq!(cfg.validate(None).unwrap_err().0, "deadband");
        cfg.deadband = None;
        cfg.deadband_percent = Some(250.0);
        assert_eq!(cfg.validate(None).unwrap_err().0, "deadband_percent");
        cfg.deadband_percent = None;
        cfg.points.push(ReportOverride {
            name: "Nope".into(),
            deadband: None,
            deadband_percent: Some(f64::NAN),
            max_silence_ms: None,
        });
        let e = cfg.validate(Some(&["W", "A"])).unwrap_err();
        assert_eq!(e.0, "points[0].name");
        assert!(e.1.contains("Nope"), "{e:?}");
        // Without a point list (discovered points) names cannot be checked,
        // but the numbers still are.
        assert_eq!(
            cfg.validate(None).unwrap_err().0,
            "points[0].deadband_percent"
        );
    }

    proptest! {
        /// Whatever the signal, every kept value is either the first, a
        /// quality change, a silence refresh or beyond the band from the
        /// previous kept value; and no two kept samples of equal quality are
        /// further apart than max_silence when samples arrive every 100 ms.
        #[test]
        fn kept_samples_respect_band_and_silence(
            values in proptest::collection::vec(-1000.0f64..1000.0, 1..400),
            band in 0.0f64..50.0,
        ) {
            let mut f = ExceptionFilter::new(rule(band, 0.0, 1_000));
            let mut kept: Vec<Sample> = Vec::new();
            for (i, v) in values.iter().enumerate() {
                let x = s(i as i64 * 100, *v);
                if f.keep(&x) {
                    kept.push(x);
                }
            }
            prop_assert_eq!(kept[0].value, values[0]);
            for w in kept.windows(2) {
                let gap = w[1].ts_ms - w[0].ts_ms;
                let moved = (w[1].value - w[0].value).abs();
                prop_assert!(gap >= 1_000 || moved > band || (band == 0.0 && moved > 0.0));
                prop_assert!(gap <= 1_000);
            }
        }
    }
}

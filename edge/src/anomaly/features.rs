//! The feature sets of docs/specs/anomaly-models.md §5: which roles a set
//! reads, and how a window of rows becomes a feature vector. Pure; the
//! Python twin is `edge/models/features.py` (parity test:
//! `edge/tests/anomaly_features_parity.rs`).

use serde::Deserialize;

/// A versioned feature set, by the name the metadata uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSet {
    WindTurbineV1,
}

/// Roles of `wind_turbine/1`, in order, with their units.
pub const WIND_ROLES: [(&str, &str); 8] = [
    ("wind_speed", "m/s"),
    ("active_power", "kW"),
    ("rotor_speed", "rpm"),
    ("pitch_angle", "deg"),
    ("gearbox_temp", "°C"),
    ("generator_temp", "°C"),
    ("bearing_temp", "°C"),
    ("ambient_temp", "°C"),
];

/// Features of `wind_turbine/1`, in order, with their units.
pub const WIND_FEATURES: [(&str, &str); 8] = [
    ("wind_mean", "m/s"),
    ("power_mean", "kW"),
    ("power_deviation", "%"),
    ("pitch_mean", "deg"),
    ("rotor_mean", "rpm"),
    ("gearbox_rise", "°C"),
    ("generator_rise", "°C"),
    ("bearing_rise", "°C"),
];

/// Constants of the feature code, from the metadata's `params`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindParams {
    pub rated_kw: f64,
    /// `[wind m/s, kW]`, wind strictly increasing.
    pub power_curve: Vec<[f64; 2]>,
}

impl WindParams {
    /// A problem with the parameters, if any.
    pub fn check(&self) -> Result<(), String> {
        if !(self.rated_kw.is_finite() && self.rated_kw > 0.0) {
            return Err("params.rated_kw must be a positive number".into());
        }
        if self.power_curve.len() < 2 {
            return Err("params.power_curve needs at least two points".into());
        }
        if self
            .power_curve
            .iter()
            .any(|[v, p]| !v.is_finite() || !p.is_finite())
        {
            return Err("params.power_curve holds a non-finite number".into());
        }
        if self.power_curve.windows(2).any(|w| w[1][0] <= w[0][0]) {
            return Err("params.power_curve: wind speeds must strictly increase".into());
        }
        Ok(())
    }

    /// Linear interpolation in the curve, 0 outside it (as numpy's
    /// `interp(…, left=0, right=0)`).
    pub fn expected_power(&self, v: f64) -> f64 {
        let c = &self.power_curve;
        let (Some(first), Some(last)) = (c.first(), c.last()) else {
            return 0.0;
        };
        if v.is_nan() || v < first[0] || v > last[0] {
            return 0.0;
        }
        if v == last[0] {
            return last[1];
        }
        // First point whose wind is above v; v is in [c[j-1], c[j]).
        let j = c.partition_point(|p| p[0] <= v).max(1);
        let (a, b) = (c[j - 1], c[j]);
        let slope = (b[1] - a[1]) / (b[0] - a[0]);
        slope * (v - a[0]) + a[1]
    }
}

/// The parameters a feature set needs, parsed from the metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    Wind(WindParams),
}

impl FeatureSet {
    pub fn from_name(name: &str) -> Option<FeatureSet> {
        match name {
            "wind_turbine/1" => Some(FeatureSet::WindTurbineV1),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FeatureSet::WindTurbineV1 => "wind_turbine/1",
        }
    }

    pub fn roles(self) -> &'static [(&'static str, &'static str)] {
        match self {
            FeatureSet::WindTurbineV1 => &WIND_ROLES,
        }
    }

    pub fn features(self) -> &'static [(&'static str, &'static str)] {
        match self {
            FeatureSet::WindTurbineV1 => &WIND_FEATURES,
        }
    }

    /// Parses and checks the metadata's `params` for this set.
    pub fn params(self, v: &serde_json::Value) -> Result<Params, String> {
        match self {
            FeatureSet::WindTurbineV1 => {
                let p: WindParams =
                    serde_json::from_value(v.clone()).map_err(|e| format!("params: {e}"))?;
                p.check()?;
                Ok(Params::Wind(p))
            }
        }
    }

    /// The feature vector of a window. Every row holds one value per role,
    /// in role order; `out` receives one value per feature. Means over the
    /// rows of per-row terms, summed in row order. False when the set does
    /// not score this window (then `out` is unspecified).
    pub fn compute<'a>(
        self,
        params: &Params,
        rows: impl Iterator<Item = &'a [f64]>,
        out: &mut [f64],
    ) -> bool {
        match (self, params) {
            (FeatureSet::WindTurbineV1, Params::Wind(p)) => wind_features(p, rows, out),
        }
    }
}

/// Pitch at or above which a turbine is feathered (stopped): a window with
/// such a row is not scored (`wind_turbine/1`).
pub const FEATHERED_DEG: f64 = 45.0;

fn wind_features<'a>(
    p: &WindParams,
    rows: impl Iterator<Item = &'a [f64]>,
    out: &mut [f64],
) -> bool {
    let mut sum = [0.0f64; 8];
    let mut n = 0usize;
    for r in rows {
        let [wind, power, rotor, pitch, gb, gen_, br, amb] = match *r {
            [a, b, c, d, e, f, g, h, ..] => [a, b, c, d, e, f, g, h],
            _ => continue,
        };
        if pitch >= FEATHERED_DEG {
            return false;
        }
        // Slot 2 sums the expected power; the deviation is formed below.
        let terms = [
            wind,
            power,
            p.expected_power(wind),
            pitch,
            rotor,
            gb - amb,
            gen_ - amb,
            br - amb,
        ];
        for (s, t) in sum.iter_mut().zip(terms) {
            *s += t;
        }
        n += 1;
    }
    let n = n.max(1) as f64;
    for (o, s) in out.iter_mut().zip(sum) {
        *o = s / n;
    }
    if let Some(o) = out.get_mut(2) {
        *o = power_deviation(sum[1], sum[2], n, p.rated_kw);
    }
    true
}

/// `100 (ΣP − ΣE) / max(ΣE, 5 % of rated × n)`: the shortfall against the
/// power curve in percent, floored so a turbine near cut-in does not divide
/// by almost nothing.
pub fn power_deviation(sum_power: f64, sum_expected: f64, n: f64, rated_kw: f64) -> f64 {
    100.0 * (sum_power - sum_expected) / sum_expected.max(0.05 * rated_kw * n)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn params() -> WindParams {
        WindParams {
            rated_kw: 3000.0,
            power_curve: vec![[3.0, 0.0], [12.0, 3000.0], [24.99, 3000.0]],
        }
    }

    #[test]
    fn expected_power_interpolates_and_is_zero_outside_the_curve() {
        let p = params();
        assert_eq!(p.expected_power(2.9), 0.0);
        assert_eq!(p.expected_power(3.0), 0.0);
        assert!((p.expected_power(7.5) - 1500.0).abs() < 1e-9);
        assert_eq!(p.expected_power(12.0), 3000.0);
        assert_eq!(p.expected_power(24.99), 3000.0);
        assert_eq!(p.expected_power(25.0), 0.0);
        assert_eq!(p.expected_power(f64::NAN), 0.0);
    }

    #[test]
    fn wind_features_are_means_of_per_row_terms() {
        let p = params();
        let rows: Vec<Vec<f64>> = vec![
            vec![7.5, 1400.0, 10.0, 0.0, 40.0, 50.0, 30.0, 10.0],
            vec![12.0, 3000.0, 14.8, 1.0, 60.0, 80.0, 50.0, 12.0],
        ];
        let mut out = [0.0; 8];
        let set = FeatureSet::WindTurbineV1;
        let params = Params::Wind(p);
        assert!(set.compute(&params, rows.iter().map(|r| r.as_slice()), &mut out));
        assert_eq!(out[0], 9.75);
        assert_eq!(out[1], 2200.0);
        // ΣP 4400, ΣE 1500 + 3000 = 4500: 100 × −100 / 4500.
        assert!(
            (out[2] - (-100.0 * 100.0 / 4500.0)).abs() < 1e-9,
            "{}",
            out[2]
        );
        assert_eq!(out[5], (30.0 + 48.0) / 2.0);
        assert_eq!(out[7], (20.0 + 38.0) / 2.0);
        // One feathered row (stopped for high wind): not scored.
        let mut stopped = rows.clone();
        stopped[1][3] = 90.0;
        assert!(!set.compute(&params, stopped.iter().map(|r| r.as_slice()), &mut out));
    }

    #[test]
    fn bad_params_are_named() {
        let set = FeatureSet::WindTurbineV1;
        let bad = serde_json::json!({"rated_kw": 3000.0, "power_curve": [[5.0, 1.0], [4.0, 2.0]]});
        assert!(set.params(&bad).unwrap_err().contains("strictly increase"));
        let unknown = serde_json::json!({"rated_kw": 1.0, "power_curve": [], "x": 1});
        assert!(set.params(&unknown).unwrap_err().contains("unknown field"));
    }
}

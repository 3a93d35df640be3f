//! The feature sets of docs/specs/anomaly-models.md §5: which roles a set
//! reads, and how a window of rows becomes a feature vector. Pure; the
//! Python twin is `edge/models/features.py` (parity tests in
//! `edge/tests/anomaly_model.rs` on fixtures the training wrote).

use serde::Deserialize;

/// A versioned feature set, by the name the metadata uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeatureSet {
    WindTurbineV1,
    PvInverterV1,
    BessRackV1,
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

/// Roles of `pv_inverter/1`, in order, with their units.
pub const PV_ROLES: [(&str, &str); 6] = [
    ("poa_irradiance", "W/m²"),
    ("ambient_temp", "°C"),
    ("module_temp", "°C"),
    ("dc_power", "W"),
    ("ac_power", "W"),
    ("heatsink_temp", "°C"),
];

/// Features of `pv_inverter/1`, in order, with their units.
pub const PV_FEATURES: [(&str, &str); 5] = [
    ("load_mean", "%"),
    ("dc_performance", "%"),
    ("dc_change", "%"),
    ("efficiency", "%"),
    ("heatsink_excess", "°C"),
];

/// Most rows the recent part of a `pv_inverter/1` window may have.
pub const PV_MAX_RECENT_ROWS: usize = 120;

/// Constants of `pv_inverter/1`, from the metadata's `params`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PvParams {
    /// AC nameplate rating, W.
    pub rated_ac_w: f64,
    /// Nominal DC array capacity at STC, W (the expected DC power's scale).
    pub dc_capacity_w: f64,
    /// Power temperature coefficient of the modules, 1/°C (e.g. −0.004).
    pub power_temp_coeff: f64,
    /// Heat-sink rise over ambient at no load, °C.
    pub heatsink_rise_idle_c: f64,
    /// Additional heat-sink rise at full load, °C (linear in load).
    pub heatsink_rise_per_load_c: f64,
    /// Irradiance from which a row counts as daylight, W/m².
    pub daylight_poa: f64,
    /// A row with AC power at or above this fraction of the rating is
    /// clipped (DC power held below what the array offers).
    pub clip_fraction: f64,
    /// Rows in the recent part of the window (the rest is the baseline).
    pub recent_rows: usize,
    /// Fewest usable (daylight, unclipped) rows the baseline needs.
    pub min_baseline_rows: usize,
}

impl PvParams {
    /// A problem with the parameters, if any.
    pub fn check(&self) -> Result<(), String> {
        let positive = [
            ("rated_ac_w", self.rated_ac_w),
            ("dc_capacity_w", self.dc_capacity_w),
            ("daylight_poa", self.daylight_poa),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("params.{name} must be a positive number"));
            }
        }
        let finite = [
            ("power_temp_coeff", self.power_temp_coeff),
            ("heatsink_rise_idle_c", self.heatsink_rise_idle_c),
            ("heatsink_rise_per_load_c", self.heatsink_rise_per_load_c),
        ];
        for (name, v) in finite {
            if !v.is_finite() {
                return Err(format!("params.{name} must be a finite number"));
            }
        }
        if !(self.clip_fraction > 0.0 && self.clip_fraction <= 1.0) {
            return Err("params.clip_fraction must be in (0, 1]".into());
        }
        if !(1..=PV_MAX_RECENT_ROWS).contains(&self.recent_rows) {
            return Err(format!(
                "params.recent_rows must be between 1 and {PV_MAX_RECENT_ROWS}"
            ));
        }
        if self.min_baseline_rows == 0 {
            return Err("params.min_baseline_rows must be at least 1".into());
        }
        Ok(())
    }

    /// Expected DC power of the array at the maximum power point, W: the
    /// nominal capacity scaled by irradiance and module temperature.
    pub fn expected_dc(&self, poa: f64, module_c: f64) -> f64 {
        self.dc_capacity_w * poa / 1000.0 * (1.0 + self.power_temp_coeff * (module_c - 25.0))
    }
}

/// Roles of `bess_rack/1`, in order, with their units.
pub const BESS_ROLES: [(&str, &str); 7] = [
    ("rack_current", "A"),
    ("soc", "%"),
    ("cell_v_max", "V"),
    ("cell_v_min", "V"),
    ("cell_t_max", "°C"),
    ("cell_t_min", "°C"),
    ("ambient_temp", "°C"),
];

/// Features of `bess_rack/1`, in order, with their units.
pub const BESS_FEATURES: [(&str, &str); 5] = [
    ("current_rms", "A"),
    ("soc_mean", "%"),
    ("spread_excess", "mV"),
    ("rise_excess", "°C"),
    ("temp_spread", "°C"),
];

/// Most rows the recent part of a `bess_rack/1` window may have.
pub const BESS_MAX_RECENT_ROWS: usize = 120;

/// Constants of `bess_rack/1`, from the metadata's `params`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BessParams {
    /// Time between rows, s (the window's `sample_period_ms` / 1000).
    pub sample_period_s: f64,
    /// Rows in the recent part of the window.
    pub recent_rows: usize,
    /// Healthy cell-voltage spread (max − min) at rest against SoC:
    /// `[SoC %, mV]`, SoC strictly increasing; linear between points,
    /// the end values beyond them.
    pub spread_curve: Vec<[f64; 2]>,
    /// Additional healthy spread per ampere of rack current, mV/A.
    pub spread_per_amp_mv: f64,
    /// Thermal time constant of the rack's hottest cell, s.
    pub thermal_tau_s: f64,
    /// Healthy steady rise of the hottest cell over ambient at no current, °C.
    pub rise_idle_c: f64,
    /// Additional healthy steady rise per A² of rack current, °C/A².
    pub rise_per_amp2_c: f64,
}

impl BessParams {
    /// A problem with the parameters, if any.
    pub fn check(&self) -> Result<(), String> {
        for (name, v) in [
            ("sample_period_s", self.sample_period_s),
            ("thermal_tau_s", self.thermal_tau_s),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("params.{name} must be a positive number"));
            }
        }
        for (name, v) in [
            ("spread_per_amp_mv", self.spread_per_amp_mv),
            ("rise_idle_c", self.rise_idle_c),
            ("rise_per_amp2_c", self.rise_per_amp2_c),
        ] {
            if !v.is_finite() {
                return Err(format!("params.{name} must be a finite number"));
            }
        }
        if !(1..=BESS_MAX_RECENT_ROWS).contains(&self.recent_rows) {
            return Err(format!(
                "params.recent_rows must be between 1 and {BESS_MAX_RECENT_ROWS}"
            ));
        }
        if self.spread_curve.len() < 2 {
            return Err("params.spread_curve needs at least two points".into());
        }
        if self
            .spread_curve
            .iter()
            .any(|[s, v]| !s.is_finite() || !v.is_finite())
        {
            return Err("params.spread_curve holds a non-finite number".into());
        }
        if self.spread_curve.windows(2).any(|w| w[1][0] <= w[0][0]) {
            return Err("params.spread_curve: SoC values must strictly increase".into());
        }
        Ok(())
    }

    /// Healthy cell-voltage spread at `soc` % and `current` A, mV: the
    /// curve (linear, end values beyond it, as numpy's `interp`) plus
    /// `spread_per_amp_mv × |current|`.
    pub fn expected_spread_mv(&self, soc: f64, current: f64) -> f64 {
        let c = &self.spread_curve;
        let (Some(first), Some(last)) = (c.first(), c.last()) else {
            return 0.0;
        };
        let at_rest = if soc.is_nan() {
            f64::NAN
        } else if soc <= first[0] {
            first[1]
        } else if soc >= last[0] {
            last[1]
        } else {
            let j = c.partition_point(|p| p[0] <= soc).max(1);
            let (a, b) = (c[j - 1], c[j]);
            (b[1] - a[1]) / (b[0] - a[0]) * (soc - a[0]) + a[1]
        };
        at_rest + self.spread_per_amp_mv * current.abs()
    }

    /// Fraction of the way to the steady rise one row covers:
    /// `1 − exp(−sample_period_s / thermal_tau_s)`.
    pub fn thermal_step(&self) -> f64 {
        1.0 - (-self.sample_period_s / self.thermal_tau_s).exp()
    }
}

/// The parameters a feature set needs, parsed from the metadata.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    Wind(WindParams),
    Pv(PvParams),
    Bess(BessParams),
}

impl FeatureSet {
    pub fn from_name(name: &str) -> Option<FeatureSet> {
        match name {
            "wind_turbine/1" => Some(FeatureSet::WindTurbineV1),
            "pv_inverter/1" => Some(FeatureSet::PvInverterV1),
            "bess_rack/1" => Some(FeatureSet::BessRackV1),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FeatureSet::WindTurbineV1 => "wind_turbine/1",
            FeatureSet::PvInverterV1 => "pv_inverter/1",
            FeatureSet::BessRackV1 => "bess_rack/1",
        }
    }

    pub fn roles(self) -> &'static [(&'static str, &'static str)] {
        match self {
            FeatureSet::WindTurbineV1 => &WIND_ROLES,
            FeatureSet::PvInverterV1 => &PV_ROLES,
            FeatureSet::BessRackV1 => &BESS_ROLES,
        }
    }

    pub fn features(self) -> &'static [(&'static str, &'static str)] {
        match self {
            FeatureSet::WindTurbineV1 => &WIND_FEATURES,
            FeatureSet::PvInverterV1 => &PV_FEATURES,
            FeatureSet::BessRackV1 => &BESS_FEATURES,
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
            FeatureSet::PvInverterV1 => {
                let p: PvParams =
                    serde_json::from_value(v.clone()).map_err(|e| format!("params: {e}"))?;
                p.check()?;
                Ok(Params::Pv(p))
            }
            FeatureSet::BessRackV1 => {
                let p: BessParams =
                    serde_json::from_value(v.clone()).map_err(|e| format!("params: {e}"))?;
                p.check()?;
                Ok(Params::Bess(p))
            }
        }
    }

    /// The feature vector of a window. Every row holds one value per role,
    /// in role order; `out` receives one value per feature. Means over the
    /// rows of per-row terms, summed in row order. False when the set does
    /// not score this window (then `out` is unspecified), or when `params`
    /// belong to another set.
    pub fn compute<'a>(
        self,
        params: &Params,
        rows: impl Iterator<Item = &'a [f64]>,
        out: &mut [f64],
    ) -> bool {
        match (self, params) {
            (FeatureSet::WindTurbineV1, Params::Wind(p)) => wind_features(p, rows, out),
            (FeatureSet::PvInverterV1, Params::Pv(p)) => pv_features(p, rows, out),
            (FeatureSet::BessRackV1, Params::Bess(p)) => bess_features(p, rows, out),
            _ => false,
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

/// Sums over usable rows and plain sums of one part (baseline or recent)
/// of a `pv_inverter/1` window.
#[derive(Debug, Default, Clone, Copy)]
struct PvSums {
    rows: usize,
    usable: usize,
    dc_usable: f64,
    expected_usable: f64,
    dc: f64,
    ac: f64,
    load: f64,
    heatsink_excess: f64,
}

impl PvSums {
    /// Adds one row (`[poa, ambient, module, dc, ac, heatsink]`).
    fn add(&mut self, p: &PvParams, r: &[f64; 6]) {
        let [poa, amb, module, dc, ac, hs] = *r;
        let load = ac / p.rated_ac_w;
        if poa >= p.daylight_poa && ac < p.clip_fraction * p.rated_ac_w {
            self.usable += 1;
            self.dc_usable += dc;
            self.expected_usable += p.expected_dc(poa, module);
        }
        self.rows += 1;
        self.dc += dc;
        self.ac += ac;
        self.load += load;
        self.heatsink_excess +=
            hs - amb - (p.heatsink_rise_idle_c + p.heatsink_rise_per_load_c * load);
    }
}

/// `pv_inverter/1` (docs/specs/anomaly-models.md §5): the last
/// `recent_rows` rows are the recent part, all rows before them the
/// baseline. The recent rows wait in a ring until they are known to be
/// recent; a row pushed out of it joins the baseline, so each part is
/// summed in row order.
fn pv_features<'a>(p: &PvParams, rows: impl Iterator<Item = &'a [f64]>, out: &mut [f64]) -> bool {
    let k = p.recent_rows.clamp(1, PV_MAX_RECENT_ROWS);
    let mut ring = [[0.0f64; 6]; PV_MAX_RECENT_ROWS];
    let mut seen = 0usize;
    let mut base = PvSums::default();
    for r in rows {
        let row = match *r {
            [a, b, c, d, e, f, ..] => [a, b, c, d, e, f],
            _ => continue,
        };
        let slot = seen % k;
        if seen >= k {
            base.add(p, &ring[slot]);
        }
        ring[slot] = row;
        seen += 1;
    }
    if seen <= k {
        return false;
    }
    let mut recent = PvSums::default();
    // Oldest first: the ring's next slot holds the oldest recent row.
    for i in 0..k {
        let row = ring[(seen + i) % k];
        if row[0] < p.daylight_poa {
            return false;
        }
        recent.add(p, &row);
    }
    if base.usable < p.min_baseline_rows || base.expected_usable <= 0.0 {
        return false;
    }
    let baseline = base.dc_usable / base.expected_usable;
    let now = if recent.expected_usable > 0.0 {
        recent.dc_usable / recent.expected_usable
    } else {
        // Every recent row clipped: no evidence of a change.
        baseline
    };
    let n = k as f64;
    let efficiency = if recent.dc > 0.0 {
        100.0 * recent.ac / recent.dc
    } else {
        0.0
    };
    let values = [
        100.0 * recent.load / n,
        100.0 * now,
        100.0 * (now / baseline - 1.0),
        efficiency,
        recent.heatsink_excess / n,
    ];
    for (o, v) in out.iter_mut().zip(values) {
        *o = v;
    }
    true
}

/// `bess_rack/1` (docs/specs/anomaly-models.md §5). Per row: I², SoC,
/// cell-voltage spread over the expected one, the hottest cell's rise over
/// ambient minus the healthy first-order prediction run from the window's
/// first row, and the cell-temperature spread. The last `recent_rows` rows'
/// terms wait in a ring; the features are their means (sums oldest first).
fn bess_features<'a>(
    p: &BessParams,
    rows: impl Iterator<Item = &'a [f64]>,
    out: &mut [f64],
) -> bool {
    let k = p.recent_rows.clamp(1, BESS_MAX_RECENT_ROWS);
    let a = p.thermal_step();
    let mut ring = [[0.0f64; 5]; BESS_MAX_RECENT_ROWS];
    let mut seen = 0usize;
    // Predicted rise of this row, and the drive of the next step.
    let mut predicted = 0.0;
    for r in rows {
        let [current, soc, vmax, vmin, tmax, tmin, amb] = match *r {
            [a, b, c, d, e, f, g, ..] => [a, b, c, d, e, f, g],
            _ => continue,
        };
        let rise = tmax - amb;
        if seen == 0 {
            predicted = rise;
        }
        let spread = 1000.0 * (vmax - vmin);
        let i2 = current * current;
        ring[seen % k] = [
            i2,
            soc,
            spread - p.expected_spread_mv(soc, current),
            rise - predicted,
            tmax - tmin,
        ];
        let steady = p.rise_idle_c + p.rise_per_amp2_c * i2;
        predicted += a * (steady - predicted);
        seen += 1;
    }
    if seen <= k {
        return false;
    }
    let mut sum = [0.0f64; 5];
    // Oldest first: the ring's next slot holds the oldest recent row.
    for i in 0..k {
        let row = ring[(seen + i) % k];
        for (s, v) in sum.iter_mut().zip(row) {
            *s += v;
        }
    }
    let n = k as f64;
    let values = [
        (sum[0] / n).sqrt(),
        sum[1] / n,
        sum[2] / n,
        sum[3] / n,
        sum[4] / n,
    ];
    for (o, v) in out.iter_mut().zip(values) {
        *o = v;
    }
    true
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

    fn pv() -> PvParams {
        PvParams {
            rated_ac_w: 100_000.0,
            dc_capacity_w: 120_000.0,
            power_temp_coeff: -0.004,
            heatsink_rise_idle_c: 2.0,
            heatsink_rise_per_load_c: 30.0,
            daylight_poa: 100.0,
            clip_fraction: 0.98,
            recent_rows: 2,
            min_baseline_rows: 3,
        }
    }

    /// A healthy row: the array gives `perf` × the nominal expectation at
    /// 25 °C, the inverter converts 98 %, the heat sink follows its curve.
    fn pv_row(poa: f64, perf: f64, excess: f64) -> Vec<f64> {
        let dc = perf * 120_000.0 * poa / 1000.0;
        let ac = (0.98 * dc).min(100_000.0);
        let amb = 30.0;
        vec![
            poa,
            amb,
            25.0,
            dc,
            ac,
            amb + 2.0 + 30.0 * ac / 100_000.0 + excess,
        ]
    }

    fn pv_compute(rows: &[Vec<f64>], p: &PvParams) -> Option<[f64; 5]> {
        let mut out = [f64::NAN; 5];
        let params = Params::Pv(p.clone());
        FeatureSet::PvInverterV1
            .compute(&params, rows.iter().map(|r| r.as_slice()), &mut out)
            .then_some(out)
    }

    #[test]
    fn pv_features_compare_the_recent_rows_with_the_baseline() {
        let p = pv();
        // Baseline: 0.95 of the nominal array; recent: a string lost (×11/12)
        // and a heat sink 3 °C too warm.
        let mut rows: Vec<Vec<f64>> = [400.0, 500.0, 600.0, 700.0]
            .iter()
            .map(|&g| pv_row(g, 0.95, 0.0))
            .collect();
        rows.push(pv_row(500.0, 0.95 * 11.0 / 12.0, 3.0));
        rows.push(pv_row(300.0, 0.95 * 11.0 / 12.0, 3.0));
        let f = pv_compute(&rows, &p).unwrap();
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        // Load: AC of the two recent rows over the rating.
        let ac = 0.98 * 0.95 * 11.0 / 12.0 * 120.0 * (500.0 + 300.0) / 2.0 / 1000.0;
        assert!(close(f[0], ac), "{f:?}");
        assert!(close(f[1], 95.0 * 11.0 / 12.0), "{f:?}");
        assert!(close(f[2], 100.0 * (11.0 / 12.0 - 1.0)), "{f:?}");
        assert!(close(f[3], 98.0), "{f:?}");
        assert!(close(f[4], 3.0), "{f:?}");
        // The same rows healthy: no change, no excess.
        let healthy: Vec<Vec<f64>> = [400.0, 500.0, 600.0, 700.0, 500.0, 300.0]
            .iter()
            .map(|&g| pv_row(g, 0.95, 0.0))
            .collect();
        let h = pv_compute(&healthy, &p).unwrap();
        assert!(
            close(h[1], 95.0) && h[2].abs() < 1e-9 && h[4].abs() < 1e-9,
            "{h:?}"
        );
    }

    #[test]
    fn pv_windows_are_declined_at_night_and_without_a_baseline() {
        let p = pv();
        let day: Vec<Vec<f64>> = (0..6)
            .map(|i| pv_row(300.0 + 50.0 * i as f64, 0.95, 0.0))
            .collect();
        assert!(pv_compute(&day, &p).is_some());
        // A recent row below the daylight irradiance: declined.
        let mut dusk = day.clone();
        dusk[5] = pv_row(80.0, 0.95, 0.0);
        assert_eq!(pv_compute(&dusk, &p), None);
        // Night in the baseline only: scored while 3 usable rows remain.
        let mut morning = day.clone();
        morning[0] = pv_row(0.0, 0.95, 0.0);
        assert!(pv_compute(&morning, &p).is_some());
        morning[1] = pv_row(50.0, 0.95, 0.0);
        assert_eq!(pv_compute(&morning, &p), None);
        // No more rows than the recent part: declined.
        assert_eq!(pv_compute(&day[..2], &p), None);
    }

    #[test]
    fn clipped_rows_do_not_count_as_lost_dc_power() {
        let p = pv();
        // A big array clipping at noon: AC at the rating, DC held below what
        // the array offers. Only the unclipped rows measure performance.
        let mut rows: Vec<Vec<f64>> = [300.0, 400.0, 500.0, 600.0]
            .iter()
            .map(|&g| pv_row(g, 0.95, 0.0))
            .collect();
        let mut clipped = pv_row(1000.0, 0.95, 0.0);
        clipped[3] = 102_000.0;
        rows.push(clipped.clone());
        rows.push(clipped);
        let f = pv_compute(&rows, &p).unwrap();
        assert!((f[0] - 100.0).abs() < 1e-9, "{f:?}");
        assert!((f[1] - 95.0).abs() < 1e-9 && f[2].abs() < 1e-9, "{f:?}");
    }

    #[test]
    fn a_tripped_inverter_in_daylight_shows_no_dc_and_no_efficiency() {
        let p = pv();
        let mut rows: Vec<Vec<f64>> = (0..6).map(|_| pv_row(400.0, 0.95, 0.0)).collect();
        for r in &mut rows[4..] {
            r[3] = 0.0;
            r[4] = 0.0;
        }
        let f = pv_compute(&rows, &p).unwrap();
        assert_eq!((f[0], f[1], f[2], f[3]), (0.0, 0.0, -100.0, 0.0));
    }

    #[test]
    fn bad_pv_params_are_named_and_wind_params_do_not_fit() {
        let set = FeatureSet::PvInverterV1;
        let mut v = serde_json::to_value(serde_json::json!({
            "rated_ac_w": 100000.0, "dc_capacity_w": 120000.0, "power_temp_coeff": -0.004,
            "heatsink_rise_idle_c": 2.0, "heatsink_rise_per_load_c": 30.0,
            "daylight_poa": 100.0, "clip_fraction": 0.98, "recent_rows": 10,
            "min_baseline_rows": 60
        }))
        .unwrap();
        assert!(set.params(&v).is_ok());
        v["recent_rows"] = serde_json::json!(500);
        assert!(set.params(&v).unwrap_err().contains("recent_rows"));
        v["recent_rows"] = serde_json::json!(10);
        v["clip_fraction"] = serde_json::json!(1.5);
        assert!(set.params(&v).unwrap_err().contains("clip_fraction"));
        v["clip_fraction"] = serde_json::json!(0.98);
        v["rated_ac_w"] = serde_json::json!(0.0);
        assert!(set.params(&v).unwrap_err().contains("rated_ac_w"));
        let wind =
            serde_json::json!({"rated_kw": 3000.0, "power_curve": [[3.0, 0.0], [12.0, 3000.0]]});
        assert!(set.params(&wind).unwrap_err().contains("unknown field"));
        // Parameters of another set never compute.
        let rows: Vec<Vec<f64>> = (0..6).map(|_| pv_row(400.0, 0.95, 0.0)).collect();
        let mut out = [0.0; 5];
        assert!(!set.compute(
            &Params::Wind(params()),
            rows.iter().map(|r| r.as_slice()),
            &mut out
        ));
    }

    fn bess() -> BessParams {
        BessParams {
            sample_period_s: 10.0,
            recent_rows: 2,
            spread_curve: vec![[10.0, 20.0], [50.0, 5.0], [90.0, 10.0]],
            spread_per_amp_mv: 0.1,
            thermal_tau_s: 100.0,
            rise_idle_c: 0.5,
            rise_per_amp2_c: 1e-4,
        }
    }

    fn bess_compute(rows: &[Vec<f64>], p: &BessParams) -> Option<[f64; 5]> {
        let mut out = [f64::NAN; 5];
        FeatureSet::BessRackV1
            .compute(
                &Params::Bess(p.clone()),
                rows.iter().map(|r| r.as_slice()),
                &mut out,
            )
            .then_some(out)
    }

    #[test]
    fn expected_spread_follows_the_curve_and_the_current() {
        let p = bess();
        assert_eq!(p.expected_spread_mv(0.0, 0.0), 20.0);
        assert!((p.expected_spread_mv(30.0, 0.0) - 12.5).abs() < 1e-12);
        assert!((p.expected_spread_mv(70.0, -100.0) - 17.5).abs() < 1e-12);
        assert_eq!(p.expected_spread_mv(100.0, 0.0), 10.0);
    }

    #[test]
    fn bess_features_compare_spread_and_heating_with_the_healthy_rack() {
        let p = bess();
        let a = p.thermal_step();
        // Resting at 50 % SoC, healthy spread (5 mV), hottest cell at the
        // idle rise: every excess is zero.
        let rest = |spread_mv: f64, rise: f64| {
            vec![
                0.0,
                50.0,
                3.3 + spread_mv / 1000.0,
                3.3,
                25.0 + rise,
                24.0,
                25.0,
            ]
        };
        let rows: Vec<Vec<f64>> = (0..4).map(|_| rest(5.0, 0.5)).collect();
        let f = bess_compute(&rows, &p).unwrap();
        assert_eq!(f[0], 0.0);
        assert_eq!(f[1], 50.0);
        assert!(f[2].abs() < 1e-9 && f[3].abs() < 1e-12, "{f:?}");
        assert!((f[4] - 1.5).abs() < 1e-12, "{f:?}");
        // 100 A from the start, the rise 3 °C above the idle rise in the
        // last two rows: the prediction moves towards 0.5 + 1 °C.
        let mut hot: Vec<Vec<f64>> = (0..4)
            .map(|_| vec![100.0, 50.0, 3.315, 3.3, 25.5, 24.0, 25.0])
            .collect();
        hot[2][4] += 3.0;
        hot[3][4] += 3.0;
        let f = bess_compute(&hot, &p).unwrap();
        assert!((f[0] - 100.0).abs() < 1e-9);
        // Spread 15 mV against 5 + 0.1 × 100 = 15.
        assert!(f[2].abs() < 1e-9, "{f:?}");
        let mut pred = 0.5;
        let mut ex = 0.0;
        for j in 1..4 {
            pred += a * (1.5 - pred);
            if j >= 2 {
                ex += 0.5 + 3.0 - pred;
            }
        }
        assert!((f[3] - ex / 2.0).abs() < 1e-9, "{f:?} {ex}");
        assert!(f[3] > 2.5);
        // Too few rows for a prediction: declined.
        assert_eq!(bess_compute(&rows[..2], &p), None);
    }

    #[test]
    fn bad_bess_params_are_named() {
        let set = FeatureSet::BessRackV1;
        let mut v = serde_json::json!({
            "sample_period_s": 10.0, "recent_rows": 2,
            "spread_curve": [[10.0, 20.0], [50.0, 5.0]], "spread_per_amp_mv": 0.1,
            "thermal_tau_s": 100.0, "rise_idle_c": 0.5, "rise_per_amp2_c": 1e-4
        });
        assert!(set.params(&v).is_ok());
        v["spread_curve"] = serde_json::json!([[50.0, 1.0], [40.0, 2.0]]);
        assert!(set.params(&v).unwrap_err().contains("strictly increase"));
        v["spread_curve"] = serde_json::json!([[10.0, 20.0], [50.0, 5.0]]);
        v["thermal_tau_s"] = serde_json::json!(0.0);
        assert!(set.params(&v).unwrap_err().contains("thermal_tau_s"));
        v["thermal_tau_s"] = serde_json::json!(100.0);
        v["recent_rows"] = serde_json::json!(0);
        assert!(set.params(&v).unwrap_err().contains("recent_rows"));
    }
}

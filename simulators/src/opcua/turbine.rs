//! What a wind turbine's controller reports: a seeded gusty wind and the
//! machine's response to it (power curve, rotor, pitch, temperatures,
//! status). Pure in `(seed, unix ms)`, so a test can recompute any value.

use crate::solar::{mix, unit};
use std::f64::consts::PI;

/// Cut-in, rated and cut-out wind speeds of the power curve, m/s.
pub const CUT_IN_MS: f64 = 3.0;
pub const RATED_MS: f64 = 12.0;
pub const CUT_OUT_MS: f64 = 25.0;
/// Rotor speed at rated power and the lowest speed while generating, rpm.
const RATED_RPM: f64 = 14.8;
const MIN_RPM: f64 = 6.0;

/// Mean wind changes over ~10 min, gusts over ~4 s.
const MEAN_BUCKET_MS: i64 = 600_000;
const GUST_BUCKET_MS: i64 = 4_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Operating state, as the `Status` variable carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum TurbineStatus {
    /// Wind below cut-in: idling, no power.
    LowWind = 0,
    /// Between cut-in and rated: following the power curve.
    Generating = 1,
    /// Between rated and cut-out: pitched to hold rated power.
    Rated = 2,
    /// Above cut-out: feathered and stopped for protection.
    HighWindStop = 3,
}

/// One reading of the turbine, rounded as a controller would report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurbineReading {
    pub ts_ms: i64,
    /// Hub-height wind speed, m/s (0.01).
    pub wind_speed: f64,
    /// rpm (0.01).
    pub rotor_speed: f64,
    /// Blade pitch, degrees (0.01); 90 is feathered.
    pub pitch_angle: f64,
    /// kW (0.1).
    pub active_power: f64,
    /// °C (0.01).
    pub nacelle_temperature: f64,
    pub gearbox_temperature: f64,
    pub generator_temperature: f64,
    pub status: TurbineStatus,
}

/// The variables of a turbine: browse name, unit, and how to read them.
pub const VARIABLES: [(&str, &str); 8] = [
    ("WindSpeed", "m/s"),
    ("RotorSpeed", "rpm"),
    ("PitchAngle", "deg"),
    ("ActivePower", "kW"),
    ("NacelleTemperature", "°C"),
    ("GearboxTemperature", "°C"),
    ("GeneratorTemperature", "°C"),
    ("Status", ""),
];

impl TurbineReading {
    /// The value of a variable by its browse name ([`VARIABLES`]).
    pub fn field(&self, name: &str) -> Option<f64> {
        Some(match name {
            "WindSpeed" => self.wind_speed,
            "RotorSpeed" => self.rotor_speed,
            "PitchAngle" => self.pitch_angle,
            "ActivePower" => self.active_power,
            "NacelleTemperature" => self.nacelle_temperature,
            "GearboxTemperature" => self.gearbox_temperature,
            "GeneratorTemperature" => self.generator_temperature,
            "Status" => f64::from(self.status as i32),
            _ => return None,
        })
    }
}

/// A turbine of `rated_kw` at a site whose wind is seeded by `seed`.
#[derive(Debug, Clone, PartialEq)]
pub struct TurbineModel {
    pub seed: u64,
    pub rated_kw: f64,
}

impl Default for TurbineModel {
    fn default() -> Self {
        TurbineModel {
            seed: 42,
            rated_kw: 3000.0,
        }
    }
}

/// The power curve: 0 below cut-in and from cut-out, cubic in between up
/// to rated, flat at rated above it. kW.
pub fn power_curve(v: f64, rated_kw: f64) -> f64 {
    if !(CUT_IN_MS..CUT_OUT_MS).contains(&v) {
        0.0
    } else if v >= RATED_MS {
        rated_kw
    } else {
        let c = |x: f64| x * x * x;
        rated_kw * (c(v) - c(CUT_IN_MS)) / (c(RATED_MS) - c(CUT_IN_MS))
    }
}

impl TurbineModel {
    pub fn new(seed: u64, rated_kw: f64) -> Self {
        TurbineModel { seed, rated_kw }
    }

    /// Wind speed at `unix_ms`, m/s, unrounded: a seeded 10-minute mean
    /// (mostly 1.5–15 m/s, now and then a storm of 20–30 m/s) with gusts
    /// (turbulence intensity about 15 %).
    pub fn wind(&self, unix_ms: i64) -> f64 {
        let mean_at = |b: i64| {
            let storm = unit(mix(self.seed, 0x7B1E_0001, b as u64)) > 0.93;
            let u = unit(mix(self.seed, 0x7B1E_0002, b as u64));
            if storm {
                20.0 + 10.0 * u
            } else {
                1.5 + 13.5 * u
            }
        };
        let b = unix_ms.div_euclid(MEAN_BUCKET_MS);
        let frac = (unix_ms - b * MEAN_BUCKET_MS) as f64 / MEAN_BUCKET_MS as f64;
        let t = frac * frac * (3.0 - 2.0 * frac);
        let mean = mean_at(b) + (mean_at(b + 1) - mean_at(b)) * t;
        // Slightly windier at night (stable boundary layer at hub height).
        let day = (unix_ms.rem_euclid(MS_PER_DAY)) as f64 / MS_PER_DAY as f64;
        let diurnal = 1.0 + 0.08 * (2.0 * PI * day).cos();
        let gust = noise(self.seed, 0x7B1E_0003, unix_ms, GUST_BUCKET_MS)
            + 0.5 * noise(self.seed, 0x7B1E_0004, unix_ms, GUST_BUCKET_MS / 4)
            - 0.75;
        (mean * diurnal * (1.0 + 0.3 * gust)).max(0.0)
    }

    /// What the controller reports at `unix_ms`.
    pub fn observe(&self, unix_ms: i64) -> TurbineReading {
        let v = round(self.wind(unix_ms), 100.0);
        let status = if v < CUT_IN_MS {
            TurbineStatus::LowWind
        } else if v >= CUT_OUT_MS {
            TurbineStatus::HighWindStop
        } else if v >= RATED_MS {
            TurbineStatus::Rated
        } else {
            TurbineStatus::Generating
        };
        let power = power_curve(v, self.rated_kw);
        let (rpm, pitch) = match status {
            // Idling slowly in light wind, blades at fine pitch.
            TurbineStatus::LowWind => (0.8 * v, 2.0),
            TurbineStatus::Generating => (
                (MIN_RPM + (RATED_RPM - MIN_RPM) * (v - CUT_IN_MS) / (RATED_MS - CUT_IN_MS))
                    .min(RATED_RPM),
                0.0,
            ),
            // Pitching out to shed the surplus: ~2°/m/s above rated.
            TurbineStatus::Rated => (
                RATED_RPM,
                2.0 * (v - RATED_MS) + 0.02 * (v - RATED_MS).powi(2),
            ),
            TurbineStatus::HighWindStop => (0.0, 90.0),
        };
        let load = power / self.rated_kw.max(1.0);
        let day = (unix_ms.rem_euclid(MS_PER_DAY)) as f64 / MS_PER_DAY as f64;
        // Ambient: 14 °C ± 6 °C over the day, warmest mid-afternoon (UTC).
        let ambient = 14.0 + 6.0 * (2.0 * PI * (day - 0.625)).cos();
        TurbineReading {
            ts_ms: unix_ms,
            wind_speed: v,
            rotor_speed: round(rpm, 100.0),
            pitch_angle: round(pitch, 100.0),
            active_power: round(power, 10.0),
            nacelle_temperature: round(ambient + 6.0 + 9.0 * load, 100.0),
            gearbox_temperature: round(ambient + 18.0 + 42.0 * load, 100.0),
            generator_temperature: round(ambient + 22.0 + 55.0 * load, 100.0),
            status,
        }
    }
}

fn round(v: f64, per_unit: f64) -> f64 {
    (v * per_unit).round() / per_unit
}

/// Smooth value noise in 0..1 over buckets of `bucket_ms`.
fn noise(seed: u64, stream: u64, unix_ms: i64, bucket_ms: i64) -> f64 {
    let b = unix_ms.div_euclid(bucket_ms);
    let frac = (unix_ms - b * bucket_ms) as f64 / bucket_ms as f64;
    let a = unit(mix(seed, stream, b as u64));
    let c = unit(mix(seed, stream, (b + 1) as u64));
    let t = frac * frac * (3.0 - 2.0 * frac);
    a + (c - a) * t
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_782_023_400_000;

    #[test]
    fn power_curve_has_cut_in_rated_and_cut_out() {
        assert_eq!(power_curve(2.99, 3000.0), 0.0);
        assert!(power_curve(3.5, 3000.0) > 0.0);
        assert!(power_curve(8.0, 3000.0) < power_curve(10.0, 3000.0));
        assert_eq!(power_curve(12.0, 3000.0), 3000.0);
        assert_eq!(power_curve(24.9, 3000.0), 3000.0);
        assert_eq!(power_curve(25.0, 3000.0), 0.0);
        // Monotonic up to rated.
        let mut last = 0.0;
        for k in 0..=120 {
            let p = power_curve(f64::from(k) / 10.0, 3000.0);
            assert!(p >= last, "{k}");
            last = p;
        }
    }

    #[test]
    fn readings_are_deterministic_and_consistent_with_the_wind() {
        let m = TurbineModel::default();
        assert_eq!(m.observe(T0), m.observe(T0));
        let mut seen = [false; 4];
        for k in 0..20_000 {
            let r = m.observe(T0 + k * 61_000);
            seen[r.status as usize] = true;
            assert!((0.0..45.0).contains(&r.wind_speed), "{r:?}");
            assert_eq!(
                r.active_power,
                round(power_curve(r.wind_speed, 3000.0), 10.0)
            );
            match r.status {
                TurbineStatus::HighWindStop => {
                    assert_eq!(
                        (r.active_power, r.rotor_speed, r.pitch_angle),
                        (0.0, 0.0, 90.0)
                    )
                }
                TurbineStatus::Rated => {
                    assert_eq!(r.active_power, 3000.0);
                    assert!(r.pitch_angle >= 0.0 && r.pitch_angle < 90.0, "{r:?}");
                }
                TurbineStatus::Generating => assert!(r.rotor_speed >= MIN_RPM, "{r:?}"),
                TurbineStatus::LowWind => assert_eq!(r.active_power, 0.0),
            }
            assert!(r.generator_temperature >= r.gearbox_temperature - 5.0);
            assert!(r.gearbox_temperature > r.nacelle_temperature - 1.0);
        }
        assert!(seen.iter().all(|s| *s), "every state occurs: {seen:?}");
        // Gusty: the wind differs second to second.
        assert_ne!(m.observe(T0).wind_speed, m.observe(T0 + 1000).wind_speed);
        // Another seed, another wind.
        assert_ne!(TurbineModel::new(7, 3000.0).wind(T0), m.wind(T0));
    }
}

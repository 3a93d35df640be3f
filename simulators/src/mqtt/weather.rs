//! What a weather station measures: the site model's irradiance and
//! temperatures plus a seeded wind model. Pure in `(seed, unix ms)`.

use crate::solar::{SiteModel, mix, unit};
use std::f64::consts::PI;

const MS_PER_DAY: i64 = 86_400_000;
/// Gusts change over ~10 s, the wind's direction over ~10 min.
const GUST_BUCKET_MS: i64 = 10_000;
const VEER_BUCKET_MS: i64 = 600_000;

/// One station reading, rounded as a station would report it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observation {
    pub ts_ms: i64,
    /// Plane-of-array irradiance, W/m² (0.1).
    pub irradiance: f64,
    /// °C (0.01).
    pub module_temperature: f64,
    /// °C (0.01).
    pub ambient_temperature: f64,
    /// m/s (0.01).
    pub wind_speed: f64,
    /// Degrees from north, 0..360 (0.1).
    pub wind_direction: f64,
}

impl Observation {
    /// The JSON payload the station publishes.
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "ts": self.ts_ms,
            "irradiance": self.irradiance,
            "module_temperature": self.module_temperature,
            "ambient_temperature": self.ambient_temperature,
            "wind_speed": self.wind_speed,
            "wind_direction": self.wind_direction,
        })
        .to_string()
    }

    /// The value of a field by its JSON name.
    pub fn field(&self, name: &str) -> Option<f64> {
        Some(match name {
            "irradiance" => self.irradiance,
            "module_temperature" => self.module_temperature,
            "ambient_temperature" => self.ambient_temperature,
            "wind_speed" => self.wind_speed,
            "wind_direction" => self.wind_direction,
            _ => return None,
        })
    }
}

/// Field names and units of an [`Observation`], in payload order.
pub const FIELDS: [(&str, &str); 5] = [
    ("irradiance", "W/m²"),
    ("module_temperature", "°C"),
    ("ambient_temperature", "°C"),
    ("wind_speed", "m/s"),
    ("wind_direction", "deg"),
];

/// The site model plus wind.
#[derive(Debug, Clone, PartialEq)]
pub struct WeatherModel {
    pub site: SiteModel,
    /// Seed of the wind (the site model has its own).
    pub seed: u64,
}

impl WeatherModel {
    pub fn new(site: SiteModel, seed: u64) -> Self {
        WeatherModel { site, seed }
    }

    /// What the station reports at `unix_ms`.
    pub fn observe(&self, unix_ms: i64) -> Observation {
        let c = self.site.conditions(unix_ms);
        let day = unix_ms.div_euclid(MS_PER_DAY) as u64;
        // Each day a seeded mean wind of 1.5..7.5 m/s, stronger in the
        // afternoon (thermal mixing), with gusts on top.
        let mean = 1.5 + 6.0 * unit(mix(self.seed, 0x3D1D_0001, day));
        let diurnal = 1.0 + 0.35 * (2.0 * PI * (c.sun.solar_time_h - 15.0) / 24.0).cos();
        let gust = noise(self.seed, 0x3D1D_0002, unix_ms, GUST_BUCKET_MS);
        let speed = (mean * diurnal * (0.55 + 0.9 * gust)).max(0.0);
        let base = 360.0 * unit(mix(self.seed, 0x3D1D_0003, day));
        let veer = 70.0 * (noise(self.seed, 0x3D1D_0004, unix_ms, VEER_BUCKET_MS) - 0.5);
        let direction = round((base + veer).rem_euclid(360.0), 10.0) % 360.0;
        Observation {
            ts_ms: unix_ms,
            irradiance: round(c.poa, 10.0),
            module_temperature: round(c.module_c, 100.0),
            ambient_temperature: round(c.ambient_c, 100.0),
            wind_speed: round(speed, 100.0),
            wind_direction: direction,
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2026-06-21 06:30 UTC, solar noon at Bhadla.
    const NOON: i64 = 1_782_023_400_000;

    #[test]
    fn observations_are_deterministic_plausible_and_follow_the_site_model() {
        let m = WeatherModel::new(SiteModel::bhadla(42), 42);
        assert_eq!(m.observe(NOON), m.observe(NOON));
        let noon = m.observe(NOON);
        let c = m.site.conditions(NOON);
        assert!((noon.irradiance - c.poa).abs() <= 0.05, "{noon:?}");
        assert!(noon.irradiance > 500.0, "{noon:?}");
        assert!(noon.module_temperature > noon.ambient_temperature);
        let night = m.observe(NOON + 12 * 3_600_000);
        assert_eq!(night.irradiance, 0.0);
        for k in 0..2_000 {
            let o = m.observe(NOON + k * 37_000);
            assert!((0.0..40.0).contains(&o.wind_speed), "{o:?}");
            assert!((0.0..360.0).contains(&o.wind_direction), "{o:?}");
        }
        // Another wind seed, another wind.
        assert_ne!(
            WeatherModel::new(SiteModel::bhadla(42), 7)
                .observe(NOON)
                .wind_speed,
            noon.wind_speed
        );
    }

    #[test]
    fn json_round_trips_every_field_exactly() {
        let o = WeatherModel::new(SiteModel::bhadla(1), 1).observe(NOON + 1234);
        let v: serde_json::Value = serde_json::from_str(&o.to_json()).unwrap();
        assert_eq!(v["ts"].as_i64(), Some(o.ts_ms));
        for (name, _) in FIELDS {
            assert_eq!(v[name].as_f64(), o.field(name), "{name}");
        }
    }
}

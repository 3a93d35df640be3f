//! What a wind turbine's controller reports: a seeded gusty wind and the
//! machine's response to it (power curve, rotor, pitch, temperatures,
//! status), and the physics of three injectable faults ([`WindFault`]).
//! Pure in `(seed, faults, unix ms)`, so a test can recompute any value.
//!
//! Temperatures follow the *thermal load*: the power the gust-free mean
//! wind would give, averaged over the last five minutes (components heat
//! and cool slowly, not with every gust), plus ±0.2 °C sensor noise.

use crate::faults::{Fault, FaultKind};
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
    /// Generator drive-end bearing, °C (0.01).
    pub bearing_temperature: f64,
    /// Outside air at the nacelle, °C (0.01).
    pub ambient_temperature: f64,
    pub status: TurbineStatus,
}

/// The variables of a turbine: browse name, unit, and how to read them.
pub const VARIABLES: [(&str, &str); 10] = [
    ("WindSpeed", "m/s"),
    ("RotorSpeed", "rpm"),
    ("PitchAngle", "deg"),
    ("ActivePower", "kW"),
    ("NacelleTemperature", "°C"),
    ("GearboxTemperature", "°C"),
    ("GeneratorTemperature", "°C"),
    ("BearingTemperature", "°C"),
    ("AmbientTemperature", "°C"),
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
            "BearingTemperature" => self.bearing_temperature,
            "AmbientTemperature" => self.ambient_temperature,
            "Status" => f64::from(self.status as i32),
            _ => return None,
        })
    }
}

/// A turbine of `rated_kw` at a site whose wind is seeded by `seed`,
/// with the faults it suffers.
#[derive(Debug, Clone, PartialEq)]
pub struct TurbineModel {
    pub seed: u64,
    pub rated_kw: f64,
    pub faults: Vec<WindFault>,
}

impl Default for TurbineModel {
    fn default() -> Self {
        TurbineModel {
            seed: 42,
            rated_kw: 3000.0,
            faults: Vec::new(),
        }
    }
}

/// The wind-turbine faults the model can suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WindFaultKind {
    /// Cooling or lubrication failure: the gearbox runs hotter, more so
    /// the more power it transmits (+4 °C idle to +20 °C at rated, reached
    /// 5 minutes after onset).
    GearboxOverheat,
    /// One blade's pitch off by a few degrees: power 20 % below the curve
    /// below rated, the rotor 3 % slower; above rated the controller needs
    /// 3° less pitch to hold rated power (after a 1-minute transition).
    PitchMisalignment,
    /// A failing generator bearing: its temperature creeps up by 0.5 °C per
    /// minute from onset, whatever the load, up to +30 °C.
    BearingCreep,
}

impl WindFaultKind {
    pub const ALL: [WindFaultKind; 3] = [
        WindFaultKind::GearboxOverheat,
        WindFaultKind::PitchMisalignment,
        WindFaultKind::BearingCreep,
    ];

    /// The name used on the command line and in dataset labels.
    pub fn name(self) -> &'static str {
        match self {
            WindFaultKind::GearboxOverheat => "gearbox_overheat",
            WindFaultKind::PitchMisalignment => "pitch_misalignment",
            WindFaultKind::BearingCreep => "bearing_creep",
        }
    }

    pub fn from_name(s: &str) -> Option<WindFaultKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl FaultKind for WindFaultKind {
    fn kinds() -> &'static [Self] {
        &Self::ALL
    }

    fn label(self) -> &'static str {
        self.name()
    }
}

/// One wind-turbine fault, active from `start_ms` to `end_ms` ([`Fault`]).
pub type WindFault = Fault<WindFaultKind>;

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
        TurbineModel {
            seed,
            rated_kw,
            faults: Vec::new(),
        }
    }

    /// The same turbine suffering `faults`.
    pub fn with_faults(mut self, faults: Vec<WindFault>) -> Self {
        self.faults = faults;
        self
    }

    /// How far fault `kind` has developed at `unix_ms`: 0 when inactive,
    /// else the time since onset in ms (the largest if injected twice).
    fn fault_age_ms(&self, kind: WindFaultKind, unix_ms: i64) -> Option<i64> {
        self.faults
            .iter()
            .filter(|f| f.kind == kind && f.active(unix_ms))
            .map(|f| unix_ms - f.start_ms)
            .max()
    }

    /// Wind speed at `unix_ms`, m/s, unrounded: a seeded 10-minute mean
    /// (mostly 1.5–15 m/s, now and then a storm of 20–30 m/s) with gusts
    /// (turbulence intensity about 15 %).
    pub fn wind(&self, unix_ms: i64) -> f64 {
        let gust = noise(self.seed, 0x7B1E_0003, unix_ms, GUST_BUCKET_MS)
            + 0.5 * noise(self.seed, 0x7B1E_0004, unix_ms, GUST_BUCKET_MS / 4)
            - 0.75;
        (self.mean_wind(unix_ms) * (1.0 + 0.3 * gust)).max(0.0)
    }

    /// The gust-free wind at `unix_ms` (10-minute mean and diurnal swing).
    fn mean_wind(&self, unix_ms: i64) -> f64 {
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
        mean * diurnal
    }

    /// Load (0..1) the components' temperatures follow: the mean wind's
    /// power averaged over the last five minutes (five taps).
    fn thermal_load(&self, unix_ms: i64) -> f64 {
        let taps = [0, 60_000, 120_000, 180_000, 240_000];
        let sum: f64 = taps
            .iter()
            .map(|lag| power_curve(self.mean_wind(unix_ms - lag), 1.0))
            .sum();
        sum / taps.len() as f64
    }

    /// Outside air, °C: 14 °C ± 6 °C over the day, warmest mid-afternoon
    /// (UTC), ± 2 °C of seeded weather over hours.
    pub fn ambient(&self, unix_ms: i64) -> f64 {
        let day = (unix_ms.rem_euclid(MS_PER_DAY)) as f64 / MS_PER_DAY as f64;
        let weather = 4.0 * noise(self.seed, 0x7B1E_0005, unix_ms, 6 * 3_600_000) - 2.0;
        14.0 + 6.0 * (2.0 * PI * (day - 0.625)).cos() + weather
    }

    /// The nacelle anemometer's error: it sits behind the rotor, so it
    /// reads the wind ±6 % off, drifting over tens of seconds. Power
    /// follows the true wind, so the power curve against the *measured*
    /// wind scatters as on a real turbine.
    fn anemometer(&self, unix_ms: i64) -> f64 {
        1.0 + 0.12 * (noise(self.seed, 0x7B1E_0006, unix_ms, 20_000) - 0.5)
    }

    /// How hard component `i` runs above ambient relative to nominal:
    /// nacelle ventilation (±4 %, shared, over hours) times the component's
    /// own cooling (±2 %, over hours).
    fn cooling(&self, component: u64, unix_ms: i64) -> f64 {
        let shared = 1.0 + 0.08 * (noise(self.seed, 0x7B1E_0007, unix_ms, 2 * 3_600_000) - 0.5);
        let own =
            1.0 + 0.04 * (noise(self.seed, 0x7B1E_0010 + component, unix_ms, 3 * 3_600_000) - 0.5);
        shared * own
    }

    /// Sensor noise, uniform in ±0.2 °C, independent per sensor and reading.
    fn sensor_noise(&self, sensor: u64, unix_ms: i64) -> f64 {
        0.4 * unit(mix(self.seed, 0x7B1E_0100 + sensor, unix_ms as u64)) - 0.2
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
        let pitch_fault = self
            .fault_age_ms(WindFaultKind::PitchMisalignment, unix_ms)
            .map(|age| (age as f64 / 60_000.0).clamp(0.0, 1.0));
        let mut power = power_curve(v, self.rated_kw);
        let (mut rpm, mut pitch) = match status {
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
        if let Some(f) = pitch_fault {
            match status {
                TurbineStatus::Generating => {
                    power *= 1.0 - 0.2 * f;
                    rpm *= 1.0 - 0.03 * f;
                }
                TurbineStatus::Rated => {
                    // The rotor would give rated power only from a higher
                    // wind; until then it falls short, and above it the
                    // controller sheds less (less pitch).
                    let c = |x: f64| x * x * x;
                    let uncapped = self.rated_kw * (c(v) - c(CUT_IN_MS))
                        / (c(RATED_MS) - c(CUT_IN_MS))
                        * (1.0 - 0.2 * f);
                    power = uncapped.min(self.rated_kw);
                    pitch = (pitch - 3.0 * f).max(0.0);
                }
                TurbineStatus::LowWind | TurbineStatus::HighWindStop => {}
            }
        }
        let load = self.thermal_load(unix_ms);
        let ambient = self.ambient(unix_ms);
        let gearbox_extra = self
            .fault_age_ms(WindFaultKind::GearboxOverheat, unix_ms)
            .map_or(0.0, |age| {
                (age as f64 / 300_000.0).clamp(0.0, 1.0) * (4.0 + 16.0 * load)
            });
        let bearing_extra = self
            .fault_age_ms(WindFaultKind::BearingCreep, unix_ms)
            .map_or(0.0, |age| (0.5 * age as f64 / 60_000.0).min(30.0));
        let n = |sensor| self.sensor_noise(sensor, unix_ms);
        let c = |component| self.cooling(component, unix_ms);
        rpm = rpm.max(0.0);
        TurbineReading {
            ts_ms: unix_ms,
            wind_speed: round(v * self.anemometer(unix_ms), 100.0),
            rotor_speed: round(rpm, 100.0),
            pitch_angle: round(pitch, 100.0),
            active_power: round(power, 10.0),
            nacelle_temperature: round(ambient + c(0) * (6.0 + 9.0 * load) + n(0), 100.0),
            gearbox_temperature: round(
                ambient + c(1) * (18.0 + 42.0 * load) + gearbox_extra + n(1),
                100.0,
            ),
            generator_temperature: round(ambient + c(2) * (22.0 + 55.0 * load) + n(2), 100.0),
            bearing_temperature: round(
                ambient + c(3) * (12.0 + 28.0 * load) + bearing_extra + n(3),
                100.0,
            ),
            ambient_temperature: round(ambient + n(4), 100.0),
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
            let t = T0 + k * 61_000;
            let r = m.observe(t);
            seen[r.status as usize] = true;
            assert!((0.0..45.0).contains(&r.wind_speed), "{r:?}");
            // Power follows the true wind; the anemometer reads ±6 % off it.
            let v = round(m.wind(t), 100.0);
            assert_eq!(r.active_power, round(power_curve(v, 3000.0), 10.0));
            assert!((r.wind_speed - v).abs() <= 0.06 * v + 0.01, "{r:?} {v}");
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

    /// Mean of `f` over readings every 10 s in `[from, from + span)`.
    fn mean_of(m: &TurbineModel, from: i64, span: i64, f: impl Fn(&TurbineReading) -> f64) -> f64 {
        let n = span / 10_000;
        (0..n)
            .map(|k| f(&m.observe(from + k * 10_000)))
            .sum::<f64>()
            / n as f64
    }

    #[test]
    fn gearbox_overheat_heats_the_gearbox_only_after_onset() {
        let onset = T0 + 3_600_000;
        let healthy = TurbineModel::default();
        let faulty = healthy.clone().with_faults(vec![WindFault {
            kind: WindFaultKind::GearboxOverheat,
            start_ms: onset,
            end_ms: None,
        }]);
        // Before onset: identical readings.
        for k in 0..100 {
            let t = onset - 1 - k * 7_000;
            assert_eq!(healthy.observe(t), faulty.observe(t));
        }
        // Fully developed: 4..20 °C hotter, everything else unchanged.
        for k in 0..100 {
            let t = onset + 300_000 + k * 13_000;
            let (h, f) = (healthy.observe(t), faulty.observe(t));
            let extra = f.gearbox_temperature - h.gearbox_temperature;
            assert!((3.9..=20.1).contains(&extra), "{extra}");
            assert_eq!(
                (
                    f.active_power,
                    f.generator_temperature,
                    f.bearing_temperature
                ),
                (
                    h.active_power,
                    h.generator_temperature,
                    h.bearing_temperature
                )
            );
        }
    }

    #[test]
    fn pitch_misalignment_costs_power_below_rated() {
        let healthy = TurbineModel::default();
        let faulty = healthy.clone().with_faults(vec![WindFault {
            kind: WindFaultKind::PitchMisalignment,
            start_ms: T0,
            end_ms: Some(T0 + 86_400_000),
        }]);
        let mut generating = 0;
        for k in 0..2_000 {
            let t = T0 + 60_000 + k * 37_000;
            let (h, f) = (healthy.observe(t), faulty.observe(t));
            assert_eq!(h.wind_speed, f.wind_speed);
            if h.status == TurbineStatus::Generating && h.active_power > 100.0 {
                generating += 1;
                let ratio = f.active_power / h.active_power;
                assert!((0.79..0.81).contains(&ratio), "{ratio} at {t}");
            }
            if h.status == TurbineStatus::Rated && f.active_power == h.active_power {
                assert!(f.pitch_angle <= h.pitch_angle, "{f:?} {h:?}");
            }
        }
        assert!(generating > 100, "{generating}");
        // Repaired at end_ms.
        let after = T0 + 86_400_000 + 5_000;
        assert_eq!(healthy.observe(after), faulty.observe(after));
    }

    #[test]
    fn bearing_creep_rises_half_a_degree_a_minute_whatever_the_load() {
        let onset = T0 + 7_200_000;
        let healthy = TurbineModel::default();
        let faulty = healthy.clone().with_faults(vec![WindFault {
            kind: WindFaultKind::BearingCreep,
            start_ms: onset,
            end_ms: None,
        }]);
        let rise = |mins: i64| {
            let span = 120_000;
            let t = onset + mins * 60_000;
            mean_of(&faulty, t, span, |r| r.bearing_temperature)
                - mean_of(&healthy, t, span, |r| r.bearing_temperature)
        };
        assert!(rise(-10).abs() < 1e-9);
        // Readings every 10 s from 10:00 to 11:50: on average 10 11/12
        // minutes of creep at 0.5 °C/min.
        let want = 0.5 * (10.0 + 11.0 / 12.0);
        assert!((rise(10) - want).abs() < 0.01, "{} vs {want}", rise(10));
        assert!((rise(120) - 30.0).abs() < 1e-9, "capped: {}", rise(120));
    }

    #[test]
    fn fault_specs_parse_relative_to_a_base_and_label_samples() {
        let f = WindFault::parse("gearbox_overheat@600", T0).expect("valid");
        assert_eq!(
            f,
            WindFault {
                kind: WindFaultKind::GearboxOverheat,
                start_ms: T0 + 600_000,
                end_ms: None
            }
        );
        let g = WindFault::parse("bearing_creep@60-120", T0).expect("valid");
        assert_eq!((g.start_ms, g.end_ms), (T0 + 60_000, Some(T0 + 120_000)));
        for bad in [
            "gearbox_overheat",
            "nope@5",
            "bearing_creep@x",
            "bearing_creep@9-3",
        ] {
            assert!(WindFault::parse(bad, T0).is_err(), "{bad}");
        }
        let faults = [f, g];
        assert_eq!(WindFault::label(&faults, T0), "");
        assert_eq!(WindFault::label(&faults, T0 + 60_000), "bearing_creep");
        assert_eq!(WindFault::label(&faults, T0 + 120_000), "");
        assert_eq!(WindFault::label(&faults, T0 + 600_000), "gearbox_overheat");
    }

    #[test]
    fn temperatures_follow_load_slowly_and_stay_plausible() {
        let m = TurbineModel::default();
        for k in 0..5_000 {
            let r = m.observe(T0 + k * 17_000);
            let rise = r.gearbox_temperature - r.ambient_temperature;
            assert!((16.5..64.0).contains(&rise), "{r:?}");
            let bearing = r.bearing_temperature - r.ambient_temperature;
            assert!((11.0..43.0).contains(&bearing), "{r:?}");
        }
        // No gust shows up in a temperature within a second.
        let a = m.observe(T0);
        let b = m.observe(T0 + 1000);
        assert!((a.gearbox_temperature - b.gearbox_temperature).abs() < 0.6);
    }
}

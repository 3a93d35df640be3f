//! The 33 kV substation revenue meter and recloser at a solar plant's
//! point of connection: a pure, seeded model, and the published point
//! table (kind, index, name, unit, the scale a master applies).
//!
//! Export follows the plant's output ([`crate::solar::SiteModel`]: sun
//! position, clear sky, seeded clouds) less the station's auxiliary load,
//! so the meter imports at night. Voltage and frequency wander slowly
//! around nominal with seeded phases.

use crate::solar::SiteModel;
use std::f64::consts::PI;

/// Kind of a point as the edge's `[devices.dnp3.points]` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PointKind {
    Analog,
    Binary,
    Counter,
}

impl PointKind {
    /// The `kind` string of the edge configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            PointKind::Analog => "analog",
            PointKind::Binary => "binary",
            PointKind::Counter => "counter",
        }
    }
}

/// One point of the meter's DNP3 map.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterPoint {
    pub kind: PointKind,
    pub index: u16,
    /// Suggested point name on the edge.
    pub name: &'static str,
    /// Engineering unit after scaling.
    pub unit: &'static str,
    /// engineering value = raw × scale (the value on the wire is raw).
    pub scale: f64,
    /// DNP3 event class (1, 2 or 3) its changes are reported in.
    pub class: u8,
}

const fn p(
    kind: PointKind,
    index: u16,
    name: &'static str,
    unit: &'static str,
    scale: f64,
    class: u8,
) -> MeterPoint {
    MeterPoint {
        kind,
        index,
        name,
        unit,
        scale,
        class,
    }
}

/// Analog input indexes.
pub mod ai {
    pub const VOLTAGE_A: u16 = 0;
    pub const VOLTAGE_B: u16 = 1;
    pub const VOLTAGE_C: u16 = 2;
    pub const CURRENT_A: u16 = 3;
    pub const CURRENT_B: u16 = 4;
    pub const CURRENT_C: u16 = 5;
    pub const ACTIVE_POWER: u16 = 6;
    pub const REACTIVE_POWER: u16 = 7;
    pub const FREQUENCY: u16 = 8;
    pub const POWER_FACTOR: u16 = 9;
}

/// Binary input indexes.
pub mod bi {
    pub const BREAKER_CLOSED: u16 = 0;
    pub const RECLOSER_LOCKOUT: u16 = 1;
    pub const PROTECTION_TRIP: u16 = 2;
}

/// Counter indexes.
pub mod ctr {
    pub const IMPORT_KWH: u16 = 0;
    pub const EXPORT_KWH: u16 = 1;
}

/// The point map. Frequency travels in centi-hertz and power factor in
/// thousandths (as many meters send them), so a master must scale.
/// Protection and switchgear states are class 1, measurements class 2,
/// energy registers class 3.
pub const POINTS: &[MeterPoint] = &[
    p(PointKind::Analog, ai::VOLTAGE_A, "voltage_a", "V", 1.0, 2),
    p(PointKind::Analog, ai::VOLTAGE_B, "voltage_b", "V", 1.0, 2),
    p(PointKind::Analog, ai::VOLTAGE_C, "voltage_c", "V", 1.0, 2),
    p(PointKind::Analog, ai::CURRENT_A, "current_a", "A", 1.0, 2),
    p(PointKind::Analog, ai::CURRENT_B, "current_b", "A", 1.0, 2),
    p(PointKind::Analog, ai::CURRENT_C, "current_c", "A", 1.0, 2),
    p(
        PointKind::Analog,
        ai::ACTIVE_POWER,
        "active_power",
        "kW",
        1.0,
        2,
    ),
    p(
        PointKind::Analog,
        ai::REACTIVE_POWER,
        "reactive_power",
        "kvar",
        1.0,
        2,
    ),
    p(PointKind::Analog, ai::FREQUENCY, "frequency", "Hz", 0.01, 2),
    p(
        PointKind::Analog,
        ai::POWER_FACTOR,
        "power_factor",
        "",
        0.001,
        2,
    ),
    p(
        PointKind::Binary,
        bi::BREAKER_CLOSED,
        "breaker_closed",
        "",
        1.0,
        1,
    ),
    p(
        PointKind::Binary,
        bi::RECLOSER_LOCKOUT,
        "recloser_lockout",
        "",
        1.0,
        1,
    ),
    p(
        PointKind::Binary,
        bi::PROTECTION_TRIP,
        "protection_trip",
        "",
        1.0,
        1,
    ),
    p(
        PointKind::Counter,
        ctr::IMPORT_KWH,
        "energy_import",
        "kWh",
        1.0,
        3,
    ),
    p(
        PointKind::Counter,
        ctr::EXPORT_KWH,
        "energy_export",
        "kWh",
        1.0,
        3,
    ),
];

/// The meter at one site.
#[derive(Debug, Clone)]
pub struct MeterModel {
    pub seed: u64,
    pub site: SiteModel,
    /// Plant AC rating at the point of connection, kW.
    pub rated_kw: f64,
    /// Station auxiliary load (transformers, trackers, SCADA), kW.
    pub aux_kw: f64,
    /// Nominal line-to-line voltage, kV.
    pub nominal_kv: f64,
    /// Nominal frequency, Hz.
    pub nominal_hz: f64,
}

impl Default for MeterModel {
    fn default() -> Self {
        MeterModel::new(42, 30_000.0)
    }
}

/// The meter's measurements at one instant, in engineering units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterReading {
    /// Phase-to-neutral voltages, V.
    pub voltage_v: [f64; 3],
    /// Phase currents, A.
    pub current_a: [f64; 3],
    /// Active power, kW; positive = export to the grid.
    pub active_power_kw: f64,
    /// Reactive power, kvar.
    pub reactive_power_kvar: f64,
    pub frequency_hz: f64,
    /// Signed displacement power factor (negative while importing).
    pub power_factor: f64,
}

impl MeterReading {
    /// The raw (on-the-wire) value of analog input `index`: engineering
    /// value ÷ the table's scale, rounded where the wire is an integer.
    pub fn raw_analog(&self, index: u16) -> Option<f64> {
        Some(match index {
            ai::VOLTAGE_A => self.voltage_v[0],
            ai::VOLTAGE_B => self.voltage_v[1],
            ai::VOLTAGE_C => self.voltage_v[2],
            ai::CURRENT_A => self.current_a[0],
            ai::CURRENT_B => self.current_a[1],
            ai::CURRENT_C => self.current_a[2],
            ai::ACTIVE_POWER => self.active_power_kw,
            ai::REACTIVE_POWER => self.reactive_power_kvar,
            ai::FREQUENCY => (self.frequency_hz * 100.0).round(),
            ai::POWER_FACTOR => (self.power_factor * 1000.0).round(),
            _ => return None,
        })
    }
}

/// A seeded phase in [0, 2π).
fn phase(seed: u64, salt: u64) -> f64 {
    let mut x = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    (x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 * PI
}

impl MeterModel {
    pub fn new(seed: u64, rated_kw: f64) -> Self {
        MeterModel {
            seed,
            site: SiteModel::bhadla(seed),
            rated_kw,
            aux_kw: rated_kw * 0.002,
            nominal_kv: 33.0,
            nominal_hz: 50.0,
        }
    }

    /// Plant output at the point of connection, kW (before aux load).
    pub fn plant_kw(&self, unix_ms: i64) -> f64 {
        let ghi = self.site.clear_sky_ghi(unix_ms) * self.site.cloud_factor(unix_ms);
        // DC/AC ratio 1.25 into inverters clipping at the rating, 1.5 %
        // transformer and collection losses.
        (self.rated_kw * 1.25 * ghi / 1000.0).min(self.rated_kw) * 0.985
    }

    /// What the meter measures at `unix_ms`.
    pub fn observe(&self, unix_ms: i64) -> MeterReading {
        let t = unix_ms as f64 / 1000.0;
        let p = self.plant_kw(unix_ms) - self.aux_kw;
        // Slow grid wander: minutes-long swings, seeded phases.
        let v_pu = 1.0 + 0.01 * (2.0 * PI * t / 397.0 + phase(self.seed, 1)).sin();
        let f = self.nominal_hz + 0.04 * (2.0 * PI * t / 211.0 + phase(self.seed, 2)).sin();
        let v_ph = self.nominal_kv * 1000.0 / 3f64.sqrt() * v_pu;
        let imbalance = [1.0, 0.997, 1.004];
        let voltage_v = imbalance.map(|k| v_ph * (2.0 - k));
        // Plant controller holds a slightly inductive 0.98 at export.
        let q = if p > 0.0 { -0.2 * p } else { 0.3 * p.abs() };
        let s_kva = p.hypot(q);
        let current_a = imbalance.map(|k| s_kva * 1000.0 / (3.0 * v_ph) * k);
        let power_factor = if s_kva > 0.0 { p / s_kva } else { 1.0 };
        MeterReading {
            voltage_v,
            current_a,
            active_power_kw: p,
            reactive_power_kvar: q,
            frequency_hz: f,
            power_factor,
        }
    }
}

/// The meter's switchgear and its energy registers: what survives a
/// restart of the outstation (the registers are non-volatile).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeterState {
    pub import_wh: f64,
    pub export_wh: f64,
    pub breaker_closed: bool,
    pub recloser_lockout: bool,
    pub protection_trip: bool,
}

impl Default for MeterState {
    fn default() -> Self {
        MeterState {
            import_wh: 1_250_000.0,
            export_wh: 48_000_000_000.0,
            breaker_closed: true,
            recloser_lockout: false,
            protection_trip: false,
        }
    }
}

impl MeterState {
    /// Adds `dt_ms` of flow at `active_power_kw` (export positive).
    pub fn integrate(&mut self, active_power_kw: f64, dt_ms: i64) {
        if !self.breaker_closed || dt_ms <= 0 || !active_power_kw.is_finite() {
            return;
        }
        let wh = active_power_kw.abs() * 1000.0 * dt_ms as f64 / 3_600_000.0;
        if active_power_kw >= 0.0 {
            self.export_wh += wh;
        } else {
            self.import_wh += wh;
        }
    }

    /// The counters on the wire, kWh (wrapping at 2^32 like a register).
    pub fn import_kwh(&self) -> u32 {
        ((self.import_wh / 1000.0) as u64 % (1u64 << 32)) as u32
    }

    pub fn export_kwh(&self) -> u32 {
        ((self.export_wh / 1000.0) as u64 % (1u64 << 32)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-21 06:30 UTC: mid-day at Bhadla.
    const NOON: i64 = 1_782_023_400_000;

    #[test]
    fn the_model_is_a_pure_function_of_seed_and_time() {
        let a = MeterModel::new(7, 30_000.0);
        let b = MeterModel::new(7, 30_000.0);
        assert_eq!(a.observe(NOON), b.observe(NOON));
        assert_ne!(
            MeterModel::new(8, 30_000.0).observe(NOON).frequency_hz,
            a.observe(NOON).frequency_hz
        );
    }

    #[test]
    fn exports_by_day_and_imports_at_night() {
        let m = MeterModel::default();
        let day = m.observe(NOON);
        assert!(day.active_power_kw > 5_000.0, "{day:?}");
        assert!(day.power_factor > 0.95);
        let night = m.observe(NOON + 12 * 3_600_000);
        assert!(night.active_power_kw < 0.0, "{night:?}");
        assert!(night.power_factor < 0.0);
    }

    #[test]
    fn quantities_stay_near_nominal_and_are_consistent() {
        let m = MeterModel::default();
        for k in 0..200 {
            let r = m.observe(NOON + k * 37_000);
            for v in r.voltage_v {
                assert!((18_600.0..19_500.0).contains(&v), "{v}");
            }
            assert!((49.9..50.1).contains(&r.frequency_hz));
            let s = r.active_power_kw.hypot(r.reactive_power_kvar);
            let from_i: f64 = (0..3)
                .map(|i| r.voltage_v[i] * r.current_a[i] / 1000.0)
                .sum();
            assert!((from_i - s).abs() / s.max(1.0) < 0.01, "{from_i} vs {s}");
        }
    }

    #[test]
    fn the_wire_carries_centihertz_and_thousandths() {
        let r = MeterModel::default().observe(NOON);
        let f = r.raw_analog(ai::FREQUENCY).unwrap_or(f64::NAN);
        assert_eq!(f, (r.frequency_hz * 100.0).round());
        let table = POINTS
            .iter()
            .find(|p| p.kind == PointKind::Analog && p.index == ai::FREQUENCY)
            .map(|p| p.scale);
        assert_eq!(table, Some(0.01));
        assert_eq!(r.raw_analog(99), None);
    }

    #[test]
    fn energy_integrates_by_direction_and_stops_with_the_breaker_open() {
        let mut s = MeterState::default();
        let (i0, e0) = (s.import_kwh(), s.export_kwh());
        s.integrate(3_600.0, 3_600_000); // 3.6 MW for an hour
        assert_eq!(s.export_kwh(), e0 + 3_600);
        s.integrate(-100.0, 3_600_000);
        assert_eq!(s.import_kwh(), i0 + 100);
        s.breaker_closed = false;
        s.integrate(1_000.0, 3_600_000);
        assert_eq!(s.export_kwh(), e0 + 3_600);
    }

    #[test]
    fn point_names_and_addresses_are_unique() {
        let mut names = std::collections::HashSet::new();
        let mut addrs = std::collections::HashSet::new();
        for p in POINTS {
            assert!(names.insert(p.name), "{}", p.name);
            assert!(addrs.insert((p.kind, p.index)), "{:?}", p);
            assert!((1..=3).contains(&p.class));
        }
    }
}

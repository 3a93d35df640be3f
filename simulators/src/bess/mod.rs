//! Deterministic physical model of one BESS rack (lithium iron phosphate,
//! LFP): a daily dispatch, coulomb-counted state of charge, cell voltages,
//! cell temperatures and the container's HVAC temperature.
//!
//! # Pure in (seed, faults, time)
//!
//! A day (00:00–24:00 at the site's local time, UTC+05:30 like Bhadla) is
//! integrated from its own start at a fixed 10-second step
//! ([`STEP_MS`]): the day starts at its scheduled overnight state of charge
//! and with every module at the HVAC temperature plus its idle rise. So
//! [`RackModel::observe`] is a pure function of `(seed, faults, unix ms)`,
//! like the PV and wind models, and [`RackModel::readings`] (sequential,
//! cheap) gives exactly the same values. A reading holds the state at the
//! last 10-second grid point at or before its time. Continuity at
//! midnight: the evening discharge stops at the next day's overnight state
//! of charge, and the modules have cooled for 2 h or more, so the jump at
//! midnight is a few hundredths of a degree (more on a day a fault derated
//! the current and the discharge missed its target).
//!
//! # Rack
//!
//! - 16 modules × 15 cells in series (240 cells), 280 Ah, nominal 3.2 V a
//!   cell (about 215 kWh).
//! - Current: amperes, **positive = discharge**, negative = charge.
//! - Dispatch per day (seeded by seed and day): rest overnight at 12–25 %
//!   SoC; a constant-current charge from PV starting 10:00–11:30 local at
//!   0.2–0.45 C up to 85–95 % (one day in four a partial cycle to 55–70 %);
//!   rest in the afternoon; an evening-peak discharge from 18:00–19:00 at
//!   0.25–0.5 C down to the next day's overnight SoC. Current carries a
//!   ±3 % ripple (seeded value noise, 2-minute buckets) while it flows.
//! - SoC: coulomb counting of the rack current, % of 280 Ah.
//! - Cells: cell i has a static SoC offset (±0.6 %, balancing error), a
//!   capacity factor (0.98–1.02) and a resistance factor (0.92–1.08) around
//!   0.25 mΩ. Its voltage is `OCV(SoC_i) − I · R_i` with the LFP OCV curve
//!   [`ocv`] (flat 3.26–3.34 V between 20 and 90 %, steep at both ends),
//!   so the healthy spread (max − min) is a few mV at mid SoC and grows at
//!   the extremes and with current. Cell SoC `50 + (SoC − 50) / c_i + δ_i`
//!   (a smaller cell swings further around the balancing point).
//! - Thermal: one node per module (its 15 cells, the hottest-cell sensor),
//!   heated by `15 I² R` plus 2 W of electronics, cooled toward the HVAC
//!   temperature by forced air: time constant 40 min, steady rise about
//!   6 °C at 140 A (0.5 C), module cooling factors 0.9–1.1 (air path) and
//!   a rack factor 0.95–1.05. Max and min cell temperature are the hottest
//!   and coolest module (sensor offset ±0.3 °C).
//! - HVAC (container) temperature: 24 °C ± 1 (seeded) + 1.5 °C daily swing
//!   (warmest 15:00 local) + 0.5 °C slow noise.
//! - The BMS derates the current linearly from 100 % at a max cell
//!   temperature of 45 °C to 0 at 55 °C.
//! - Readings are rounded like a BMS reports them: cell voltages 1 mV,
//!   temperatures 0.1 °C, current 0.1 A, SoC 0.1 %, rack voltage 0.1 V.
//!
//! [`faults`] adds the rack's faults (cell imbalance, hot rack); [`bms`]
//! is its BMS's Modbus register map (`dcmms-sim modbus --device bess`).

pub mod bms;
pub mod faults;

use crate::faults::Fault;
use crate::solar::{mix, unit};
use faults::BessFaultKind;

/// Modules in the rack.
pub const MODULES: usize = 16;
/// Cells per module, in series.
pub const CELLS_PER_MODULE: usize = 15;
/// Cells in the rack.
pub const CELLS: usize = MODULES * CELLS_PER_MODULE;
/// Rated capacity, Ah.
pub const CAPACITY_AH: f64 = 280.0;
/// Nominal cell resistance, Ω.
pub const CELL_R_OHM: f64 = 0.25e-3;
/// Integration step of the day, ms.
pub const STEP_MS: i64 = 10_000;
/// Local time offset of the site (UTC+05:30), ms.
pub const LOCAL_OFFSET_MS: i64 = 19_800_000;
/// Max cell temperature at which the BMS starts to derate, °C.
pub const DERATE_FROM_C: f64 = 45.0;
/// Max cell temperature at which the BMS allows no current, °C.
pub const DERATE_TO_C: f64 = 55.0;
/// Thermal time constant of a healthy module, s.
pub const TAU_S: f64 = 2400.0;
/// Healthy steady rise of a module over the HVAC temperature at 140 A, °C.
pub const RISE_AT_140A_C: f64 = 6.0;
/// Electronics heat per module, W.
pub const IDLE_W: f64 = 2.0;

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;

/// LFP open-circuit voltage (V) against SoC (%), linear between points.
const OCV: [(f64, f64); 16] = [
    (0.0, 2.80),
    (2.0, 3.00),
    (5.0, 3.15),
    (10.0, 3.21),
    (15.0, 3.24),
    (20.0, 3.26),
    (30.0, 3.28),
    (40.0, 3.29),
    (50.0, 3.30),
    (60.0, 3.31),
    (70.0, 3.32),
    (80.0, 3.33),
    (90.0, 3.34),
    (95.0, 3.36),
    (98.0, 3.40),
    (100.0, 3.55),
];

/// Open-circuit voltage of an LFP cell at `soc` % (clamped to 0–100).
pub fn ocv(soc: f64) -> f64 {
    let s = if soc.is_nan() {
        0.0
    } else {
        soc.clamp(0.0, 100.0)
    };
    for w in OCV.windows(2) {
        let ((s0, v0), (s1, v1)) = (w[0], w[1]);
        if s <= s1 {
            return v0 + (v1 - v0) * (s - s0) / (s1 - s0);
        }
    }
    OCV[OCV.len() - 1].1
}

/// One reading of the rack, as its BMS reports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RackReading {
    pub ts_ms: i64,
    /// V, sum of the cells.
    pub rack_voltage: f64,
    /// A, positive = discharge.
    pub rack_current: f64,
    /// %, coulomb counted.
    pub soc: f64,
    pub cell_v_max: f64,
    pub cell_v_min: f64,
    pub cell_t_max: f64,
    pub cell_t_min: f64,
    /// Container (HVAC) air temperature, °C.
    pub ambient_temp: f64,
    /// Fraction of the scheduled current the BMS allows (1 = no derating).
    pub derate: f64,
}

impl RackReading {
    /// The values of the anomaly feature set `bess_rack/1`'s roles, in its
    /// order (docs/specs/anomaly-models.md §5): current, SoC, max and min
    /// cell voltage, max and min cell temperature, ambient.
    #[must_use]
    pub fn roles(&self) -> [f64; 7] {
        [
            self.rack_current,
            self.soc,
            self.cell_v_max,
            self.cell_v_min,
            self.cell_t_max,
            self.cell_t_min,
            self.ambient_temp,
        ]
    }
}

/// The day's schedule (local time from the day's start, ms; currents in A,
/// positive = discharge).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DaySchedule {
    pub soc_start: f64,
    pub charge_from_ms: i64,
    pub charge_a: f64,
    pub charge_to_soc: f64,
    pub discharge_from_ms: i64,
    pub discharge_a: f64,
    pub discharge_to_soc: f64,
}

/// The integrated state at a grid point.
#[derive(Debug, Clone, Copy, PartialEq)]
struct State {
    /// Rack SoC, %.
    soc: f64,
    /// Module temperatures, °C.
    temp: [f64; MODULES],
    /// Current of the last step, A (+ = discharge).
    current: f64,
    derate: f64,
}

/// A seeded rack with its faults.
#[derive(Debug, Clone)]
pub struct RackModel {
    pub seed: u64,
    pub faults: Vec<Fault<BessFaultKind>>,
    cell_offset: Vec<f64>,
    cell_cap: Vec<f64>,
    cell_r: Vec<f64>,
    module_cool: [f64; MODULES],
    sensor_offset: [f64; MODULES],
    /// Cell that an imbalance fault weakens.
    pub weak_cell: usize,
    ambient_offset: f64,
    /// Rack SoC at each fault's onset (the weak cell's anchor).
    anchors: Vec<f64>,
}

fn u(seed: u64, stream: u64, key: u64) -> f64 {
    unit(mix(seed, stream, key))
}

impl RackModel {
    pub fn new(seed: u64) -> RackModel {
        let rack_cool = 0.95 + 0.1 * u(seed, 0xB0, 0);
        let mut module_cool = [1.0; MODULES];
        let mut sensor_offset = [0.0; MODULES];
        for m in 0..MODULES {
            module_cool[m] = rack_cool * (0.9 + 0.2 * u(seed, 0xB1, m as u64));
            sensor_offset[m] = 0.6 * u(seed, 0xB2, m as u64) - 0.3;
        }
        let cells = |stream: u64, lo: f64, hi: f64| -> Vec<f64> {
            (0..CELLS)
                .map(|i| lo + (hi - lo) * u(seed, stream, i as u64))
                .collect()
        };
        RackModel {
            seed,
            faults: Vec::new(),
            cell_offset: cells(0xB3, -0.6, 0.6),
            cell_cap: cells(0xB4, 0.98, 1.02),
            cell_r: cells(0xB5, 0.92, 1.08),
            module_cool,
            sensor_offset,
            weak_cell: (mix(seed, 0xB6, 0) % CELLS as u64) as usize,
            ambient_offset: 2.0 * u(seed, 0xB7, 0) - 1.0,
            anchors: Vec::new(),
        }
    }

    /// The same rack with `faults`.
    pub fn with_faults(mut self, faults: Vec<Fault<BessFaultKind>>) -> RackModel {
        self.faults = faults;
        // The weak cell's SoC is anchored at the rack SoC of its onset; a
        // fault's anchor depends only on the faults before it.
        let mut anchors = Vec::with_capacity(self.faults.len());
        for i in 0..self.faults.len() {
            let mut partial = self.clone();
            partial.faults.truncate(i);
            partial.anchors = anchors.clone();
            let soc = partial.state_at(self.faults[i].start_ms).soc;
            anchors.push(soc);
        }
        self.anchors = anchors;
        self
    }

    /// Start of the local day holding `unix_ms` (unix ms).
    pub fn day_start(unix_ms: i64) -> i64 {
        (unix_ms + LOCAL_OFFSET_MS).div_euclid(DAY_MS) * DAY_MS - LOCAL_OFFSET_MS
    }

    fn overnight_soc(&self, day: i64) -> f64 {
        12.0 + 13.0 * u(self.seed, 0xD0, day as u64)
    }

    /// The dispatch of the local day starting at `day_start_ms`.
    pub fn schedule(&self, day_start_ms: i64) -> DaySchedule {
        let day = (day_start_ms + LOCAL_OFFSET_MS).div_euclid(DAY_MS);
        let r = |k: u64| u(self.seed, 0xD1 + k, day as u64);
        let partial = r(0) < 0.25;
        let charge_to_soc = if partial {
            55.0 + 15.0 * r(1)
        } else {
            85.0 + 10.0 * r(1)
        };
        DaySchedule {
            soc_start: self.overnight_soc(day),
            charge_from_ms: 10 * HOUR_MS + (r(2) * 90.0) as i64 * 60_000,
            charge_a: -CAPACITY_AH * (0.2 + 0.25 * r(3)),
            charge_to_soc,
            discharge_from_ms: 18 * HOUR_MS + (r(4) * 60.0) as i64 * 60_000,
            discharge_a: CAPACITY_AH * (0.25 + 0.25 * r(5)),
            discharge_to_soc: self.overnight_soc(day + 1),
        }
    }

    /// Container (HVAC) temperature, °C.
    pub fn ambient(&self, unix_ms: i64) -> f64 {
        let local_h = (unix_ms + LOCAL_OFFSET_MS).rem_euclid(DAY_MS) as f64 / HOUR_MS as f64;
        let swing = 1.5 * ((local_h - 9.0) / 24.0 * std::f64::consts::TAU).sin();
        let bucket = 1_800_000;
        let b = unix_ms.div_euclid(bucket);
        let f = unix_ms.rem_euclid(bucket) as f64 / bucket as f64;
        let a = u(self.seed, 0xA0, b as u64);
        let c = u(self.seed, 0xA0, b.wrapping_add(1) as u64);
        let noise = a + (c - a) * f * f * (3.0 - 2.0 * f);
        24.0 + self.ambient_offset + swing + (noise - 0.5)
    }

    /// ±3 % ripple of a flowing current.
    fn ripple(&self, unix_ms: i64) -> f64 {
        let bucket = 120_000;
        let b = unix_ms.div_euclid(bucket);
        let f = unix_ms.rem_euclid(bucket) as f64 / bucket as f64;
        let a = u(self.seed, 0xA1, b as u64);
        let c = u(self.seed, 0xA1, b.wrapping_add(1) as u64);
        1.0 + 0.06 * (a + (c - a) * f - 0.5)
    }

    fn fault_age_ms(&self, kind: BessFaultKind, unix_ms: i64) -> Option<(i64, f64)> {
        self.faults
            .iter()
            .zip(self.anchors.iter().copied().chain(std::iter::repeat(50.0)))
            .filter(|(f, _)| f.kind == kind && f.active(unix_ms))
            .map(|(f, a)| (unix_ms - f.start_ms, a))
            .max_by_key(|(age, _)| *age)
    }

    /// Module cooling conductance factor at `unix_ms` (1 = healthy).
    fn cooling(&self, unix_ms: i64) -> f64 {
        match self.fault_age_ms(BessFaultKind::HotRack, unix_ms) {
            Some((age, _)) => {
                let ramp = (age as f64 / faults::HOT_RACK_RAMP_MS as f64).min(1.0);
                1.0 - (1.0 - faults::HOT_RACK_COOLING) * ramp
            }
            None => 1.0,
        }
    }

    /// Healthy module conductance (W/K) for a cooling factor of 1.
    fn conductance() -> f64 {
        let heat = CELLS_PER_MODULE as f64 * 140.0 * 140.0 * CELL_R_OHM + IDLE_W;
        heat / RISE_AT_140A_C
    }

    /// The state at the start of the local day `day_start_ms`: the previous
    /// day's evening integrated from 17:00 local (resting at its charge
    /// target, modules at the HVAC temperature plus the idle rise: any
    /// afternoon warmth has decayed by midnight, 7 time constants on).
    fn initial(&self, day_start_ms: i64) -> State {
        let prev = day_start_ms - DAY_MS;
        let sched = self.schedule(prev);
        let from = prev + 17 * HOUR_MS;
        let amb = self.ambient(from);
        let g = Self::conductance();
        let mut temp = [0.0; MODULES];
        for (m, t) in temp.iter_mut().enumerate() {
            *t = amb + IDLE_W / (g * self.module_cool[m] * self.cooling(from));
        }
        let mut s = State {
            soc: sched.charge_to_soc,
            temp,
            current: 0.0,
            derate: 1.0,
        };
        let mut t = from;
        while t < day_start_ms {
            self.step(&mut s, &sched, prev, t);
            t += STEP_MS;
        }
        s
    }

    /// One step from `t` (a grid point) to `t + STEP_MS`.
    fn step(&self, s: &mut State, sched: &DaySchedule, day_start: i64, t: i64) {
        let local = t - day_start;
        let mut current = 0.0;
        if local >= sched.discharge_from_ms && s.soc > sched.discharge_to_soc {
            current = sched.discharge_a * self.ripple(t);
        } else if local >= sched.charge_from_ms
            && local < 16 * HOUR_MS
            && s.soc < sched.charge_to_soc
        {
            current = sched.charge_a * self.ripple(t);
        }
        let t_max = s.temp.iter().copied().fold(f64::MIN, f64::max);
        let derate =
            (1.0 - (t_max - DERATE_FROM_C) / (DERATE_TO_C - DERATE_FROM_C)).clamp(0.0, 1.0);
        current *= derate;
        let dt = STEP_MS as f64 / 1000.0;
        s.soc -= current * dt / 3600.0 / CAPACITY_AH * 100.0;
        let amb = self.ambient(t);
        let g = Self::conductance() * self.cooling(t);
        let c = Self::conductance() * TAU_S;
        let heat = CELLS_PER_MODULE as f64 * current * current * CELL_R_OHM + IDLE_W;
        for (m, temp) in s.temp.iter_mut().enumerate() {
            let gm = g * self.module_cool[m];
            *temp += dt / c * (heat - gm * (*temp - amb));
        }
        s.current = current;
        s.derate = derate;
    }

    /// The integrated state at the last grid point at or before `unix_ms`.
    fn state_at(&self, unix_ms: i64) -> State {
        let day = Self::day_start(unix_ms);
        let sched = self.schedule(day);
        let mut s = self.initial(day);
        let steps = (unix_ms - day).div_euclid(STEP_MS);
        for k in 0..steps {
            self.step(&mut s, &sched, day, day + k * STEP_MS);
        }
        s
    }

    fn reading(&self, grid_ms: i64, unix_ms: i64, s: &State) -> RackReading {
        let i = s.current;
        let (mut vmax, mut vmin, mut vsum) = (f64::MIN, f64::MAX, 0.0);
        let imb = self.fault_age_ms(BessFaultKind::CellImbalance, grid_ms);
        for c in 0..CELLS {
            let mut soc_c = 50.0 + (s.soc - 50.0) / self.cell_cap[c] + self.cell_offset[c];
            let mut r = CELL_R_OHM * self.cell_r[c];
            if c == self.weak_cell
                && let Some((age, anchor)) = imb
            {
                soc_c = faults::weak_cell_soc(soc_c, s.soc, anchor, age);
                r *= faults::WEAK_CELL_R_FACTOR;
            }
            let v = ocv(soc_c) - i * r;
            vmax = vmax.max(v);
            vmin = vmin.min(v);
            vsum += v;
        }
        let (mut tmax, mut tmin) = (f64::MIN, f64::MAX);
        for m in 0..MODULES {
            let t = s.temp[m] + self.sensor_offset[m];
            tmax = tmax.max(t);
            tmin = tmin.min(t);
        }
        let r = |v: f64, per: f64| (v * per).round() / per;
        RackReading {
            ts_ms: unix_ms,
            rack_voltage: r(vsum, 10.0),
            rack_current: r(i, 10.0),
            soc: r(s.soc.clamp(0.0, 100.0), 10.0),
            cell_v_max: r(vmax, 1000.0),
            cell_v_min: r(vmin, 1000.0),
            cell_t_max: r(tmax, 10.0),
            cell_t_min: r(tmin, 10.0),
            ambient_temp: r(self.ambient(grid_ms), 10.0),
            derate: s.derate,
        }
    }

    /// The reading at `unix_ms` (the state at the last 10-second grid point
    /// at or before it). Integrates the day up to `unix_ms`: up to 8,640
    /// steps; use [`RackModel::readings`] for a series.
    pub fn observe(&self, unix_ms: i64) -> RackReading {
        let grid = unix_ms.div_euclid(STEP_MS) * STEP_MS;
        self.reading(grid, unix_ms, &self.state_at(unix_ms))
    }

    /// Readings at `from, from + step, …` before `to`, equal to
    /// [`RackModel::observe`] at each time, integrating each day once.
    pub fn readings(&self, from: i64, to: i64, step_ms: i64) -> Readings<'_> {
        Readings {
            model: self,
            next: from,
            to,
            step: step_ms.max(1),
            day: None,
        }
    }
}

/// Iterator of [`RackModel::readings`].
#[derive(Debug)]
pub struct Readings<'a> {
    model: &'a RackModel,
    next: i64,
    to: i64,
    step: i64,
    /// (day start, schedule, state, the grid time the state is at).
    day: Option<(i64, DaySchedule, State, i64)>,
}

impl Iterator for Readings<'_> {
    type Item = RackReading;

    fn next(&mut self) -> Option<RackReading> {
        if self.next >= self.to {
            return None;
        }
        let t = self.next;
        self.next = self.next.saturating_add(self.step);
        let m = self.model;
        let day = RackModel::day_start(t);
        let grid = t.div_euclid(STEP_MS) * STEP_MS;
        let fresh = match &self.day {
            Some((d, _, _, at)) => *d != day || *at > grid,
            None => true,
        };
        if fresh {
            self.day = Some((day, m.schedule(day), m.initial(day), day));
        }
        let (d, sched, state, at) = self.day.as_mut()?;
        while *at < grid {
            m.step(state, sched, *d, *at);
            *at += STEP_MS;
        }
        Some(m.reading(grid, t, state))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// 2026-06-21T00:00:00Z.
    const T: i64 = 1_782_000_000_000;

    #[test]
    fn ocv_is_flat_in_the_middle_and_steep_at_the_ends() {
        assert!((ocv(50.0) - 3.30).abs() < 1e-12);
        assert!(ocv(90.0) - ocv(30.0) < 0.07);
        assert!(ocv(100.0) - ocv(95.0) > 0.15);
        assert!(ocv(10.0) - ocv(0.0) > 0.3);
        assert_eq!(ocv(-5.0), 2.80);
        assert_eq!(ocv(120.0), 3.55);
    }

    #[test]
    fn readings_equal_observe_and_are_deterministic() {
        let m = RackModel::new(3);
        let from = T - 3 * HOUR_MS;
        let all: Vec<_> = m.readings(from, from + 30 * HOUR_MS, 7 * 60_000).collect();
        assert_eq!(all.len(), 30 * 60 / 7 + 1);
        for r in all.iter().step_by(13) {
            assert_eq!(*r, m.observe(r.ts_ms));
        }
        assert_eq!(RackModel::new(3).observe(T), m.observe(T));
        assert_ne!(
            RackModel::new(4).observe(T + 12 * HOUR_MS),
            m.observe(T + 12 * HOUR_MS)
        );
    }

    #[test]
    fn a_day_charges_at_midday_discharges_in_the_evening_and_rests_between() {
        for seed in 1..6 {
            let m = RackModel::new(seed);
            let day = RackModel::day_start(T + 12 * HOUR_MS);
            let s = m.schedule(day);
            let rs: Vec<_> = m.readings(day, day + DAY_MS, 60_000).collect();
            let at = |h: f64| rs[(h * 60.0) as usize];
            // Night: rest at the overnight SoC.
            assert_eq!(at(3.0).rack_current, 0.0);
            assert!((at(3.0).soc - s.soc_start).abs() < 0.3, "{:?}", at(3.0));
            // Charging after 11:30, negative current.
            assert!(at(11.6).rack_current < -40.0, "{:?}", at(11.6));
            // Afternoon rest at the charge target.
            assert_eq!(at(17.0).rack_current, 0.0);
            assert!(
                (at(17.0).soc - s.charge_to_soc).abs() < 0.5,
                "{:?}",
                at(17.0)
            );
            // Evening discharge, then rest at the next day's SoC.
            assert!(at(19.1).rack_current > 60.0, "{:?}", at(19.1));
            let end = at(23.9);
            assert_eq!(end.rack_current, 0.0);
            assert!((end.soc - s.discharge_to_soc).abs() < 0.5, "{end:?}");
            // Midnight continuity: SoC and temperatures.
            let next = m.observe(day + DAY_MS);
            let last = m.observe(day + DAY_MS - 1);
            assert!((next.soc - last.soc).abs() < 0.25, "{next:?} {last:?}");
            assert!(
                (next.cell_t_max - last.cell_t_max).abs() < 0.15,
                "{next:?} {last:?}"
            );
            // Healthy: hottest cell under 8 °C over the HVAC, spread small
            // at mid SoC at rest.
            for r in &rs {
                assert!(r.cell_t_max - r.ambient_temp < 8.0, "{r:?}");
                assert!(r.cell_t_max >= r.cell_t_min);
                assert!(r.rack_voltage > 700.0 && r.rack_voltage < 860.0, "{r:?}");
            }
            let mid = at(17.0);
            let rest = at(3.0);
            assert!(rest.cell_v_max - rest.cell_v_min < 0.03, "{rest:?}");
            assert!(mid.cell_v_max > mid.cell_v_min);
        }
    }

    #[test]
    fn cells_heat_with_current_and_cool_at_rest() {
        let m = RackModel::new(7);
        let day = RackModel::day_start(T + 12 * HOUR_MS);
        let s = m.schedule(day);
        let start = m.observe(day + s.discharge_from_ms);
        let during = m.observe(day + s.discharge_from_ms + HOUR_MS);
        let rise = |r: &RackReading| r.cell_t_max - r.ambient_temp;
        assert!(rise(&during) > rise(&start) + 1.0, "{start:?} {during:?}");
        let night = m.observe(day + DAY_MS - 60_000);
        assert!(rise(&night) < 1.0, "{night:?}");
    }
}

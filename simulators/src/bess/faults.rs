//! BESS rack fault physics, applied inside [`super::RackModel`] (pure in
//! `(seed, faults, unix ms)` like the healthy model).
//!
//! - `cell_imbalance`: one cell (seeded index, [`super::RackModel::weak_cell`])
//!   develops a soft internal short and damage from onset: it self-discharges
//!   [`WEAK_CELL_SELF_DISCHARGE_PCT_PER_DAY`] % of its SoC a day, holds
//!   [`WEAK_CELL_CAPACITY`] of the others' capacity (its SoC swings further
//!   for the same charge, around the rack SoC at onset) and has
//!   [`WEAK_CELL_R_FACTOR`] times their resistance. On the flat middle of
//!   the LFP curve at rest it hides (a few mV); under current its extra
//!   I·R opens the max–min spread at once (about 35 mV at 140 A), and near
//!   full or empty its SoC lead or lag shows as tens to hundreds of mV.
//! - `hot_rack`: the rack's forced-air cooling fails (fan, blocked duct):
//!   the modules' conductance to the HVAC air falls to
//!   [`HOT_RACK_COOLING`] of healthy within [`HOT_RACK_RAMP_MS`], so the
//!   rise over ambient for the same I² is about 4 times the healthy one
//!   and takes 4 times longer to settle; at rest (no I²R heat) nothing
//!   shows. The BMS derates the current from a max cell temperature of
//!   45 °C (0 at 55 °C).

use crate::faults::{Fault, FaultKind};

/// Capacity of the weak cell against the others.
pub const WEAK_CELL_CAPACITY: f64 = 0.85;
/// Self-discharge of the weak cell, % of SoC a day.
pub const WEAK_CELL_SELF_DISCHARGE_PCT_PER_DAY: f64 = 5.0;
/// Resistance of the weak cell against the others.
pub const WEAK_CELL_R_FACTOR: f64 = 2.0;
/// Cooling conductance left with a hot rack (1 = healthy).
pub const HOT_RACK_COOLING: f64 = 0.25;
/// Time from the cooling failure's onset to its full effect, ms.
pub const HOT_RACK_RAMP_MS: i64 = 300_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BessFaultKind {
    CellImbalance,
    HotRack,
}

impl BessFaultKind {
    pub const ALL: [BessFaultKind; 2] = [BessFaultKind::CellImbalance, BessFaultKind::HotRack];

    pub fn name(self) -> &'static str {
        match self {
            BessFaultKind::CellImbalance => "cell_imbalance",
            BessFaultKind::HotRack => "hot_rack",
        }
    }

    pub fn from_name(s: &str) -> Option<BessFaultKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl FaultKind for BessFaultKind {
    fn kinds() -> &'static [Self] {
        &Self::ALL
    }

    fn label(self) -> &'static str {
        self.name()
    }
}

/// One rack fault, active from `start_ms` to `end_ms` ([`Fault`]).
pub type BessFault = Fault<BessFaultKind>;

/// The weak cell's SoC, %: `healthy` is what it would hold without the
/// fault, `rack` the rack SoC, `anchor` the rack SoC at onset, `age_ms`
/// the time since onset.
pub fn weak_cell_soc(healthy: f64, rack: f64, anchor: f64, age_ms: i64) -> f64 {
    let swing = (rack - anchor) * (1.0 / WEAK_CELL_CAPACITY - 1.0);
    let leak = WEAK_CELL_SELF_DISCHARGE_PCT_PER_DAY * age_ms.max(0) as f64 / 86_400_000.0;
    healthy + swing - leak
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::{RackModel, RackReading};
    use super::*;

    /// 2026-06-21T00:00:00Z.
    const T: i64 = 1_782_000_000_000;
    const HOUR: i64 = 3_600_000;

    fn fault(kind: BessFaultKind, start_ms: i64) -> Vec<BessFault> {
        vec![BessFault {
            kind,
            start_ms,
            end_ms: None,
        }]
    }

    fn spread_mv(r: &RackReading) -> f64 {
        1000.0 * (r.cell_v_max - r.cell_v_min)
    }

    #[test]
    fn faults_wait_for_their_onset() {
        let h = RackModel::new(5);
        let day = RackModel::day_start(T + 12 * HOUR);
        for kind in BessFaultKind::ALL {
            let f = h.clone().with_faults(fault(kind, day + 20 * HOUR));
            for k in 0..20 {
                let t = day + k * HOUR + 123_000;
                assert_eq!(f.observe(t), h.observe(t), "{kind:?} at {k} h");
            }
        }
    }

    #[test]
    fn an_imbalanced_cell_opens_the_spread_under_current_and_at_full_charge() {
        let h = RackModel::new(11);
        let day = RackModel::day_start(T + 12 * HOUR);
        let s = h.schedule(day);
        let f = h
            .clone()
            .with_faults(fault(BessFaultKind::CellImbalance, day + 4 * HOUR));
        // Resting mid-night: hidden (a few mV).
        let night = day + 8 * HOUR;
        assert!(spread_mv(&f.observe(night)) - spread_mv(&h.observe(night)) < 5.0);
        // Charging: the weak cell's extra I·R.
        let charging = day + s.charge_from_ms + 30 * 60_000;
        let (hc, fc) = (h.observe(charging), f.observe(charging));
        assert!(hc.rack_current < -40.0, "{hc:?}");
        assert!(spread_mv(&fc) > spread_mv(&hc) + 15.0, "{fc:?} {hc:?}");
        // Evening discharge, well after the charge: larger still.
        let evening = day + s.discharge_from_ms + HOUR;
        let (he, fe) = (h.observe(evening), f.observe(evening));
        assert!(spread_mv(&fe) > spread_mv(&he) + 15.0, "{fe:?} {he:?}");
        // Rack current and SoC are the BMS's: unchanged.
        assert_eq!((fe.rack_current, fe.soc), (he.rack_current, he.soc));
    }

    #[test]
    fn a_hot_rack_heats_more_for_the_same_current_and_the_bms_derates() {
        let h = RackModel::new(12);
        let day = RackModel::day_start(T + 12 * HOUR);
        let s = h.schedule(day);
        let f = h
            .clone()
            .with_faults(fault(BessFaultKind::HotRack, day + 6 * HOUR));
        let t = day + s.discharge_from_ms + HOUR;
        let (hr, fr) = (h.observe(t), f.observe(t));
        let rise = |r: &RackReading| r.cell_t_max - r.ambient_temp;
        assert!(rise(&fr) > 1.5 * rise(&hr), "{fr:?} {hr:?}");
        // Resting at night before any current: nothing to see.
        let night = day + 8 * HOUR;
        assert!((f.observe(night).cell_t_max - h.observe(night).cell_t_max).abs() < 0.3);
        // Hot ambient and a long fault: the BMS holds the rack below 55 °C
        // and derates.
        let mut hot = RackModel::new(12).with_faults(fault(BessFaultKind::HotRack, day));
        hot.ambient_offset += 14.0;
        let worst = hot
            .readings(day, day + 24 * HOUR, 60_000)
            .fold((f64::MIN, 1.0f64), |(t, d), r| {
                (t.max(r.cell_t_max), d.min(r.derate))
            });
        assert!(worst.0 < 55.5 && worst.1 < 1.0, "{worst:?}");
    }

    #[test]
    fn bess_fault_specs_parse_and_label() {
        let f = BessFault::parse("hot_rack@60-120", T).unwrap();
        assert_eq!(
            (f.kind, f.start_ms, f.end_ms),
            (BessFaultKind::HotRack, T + 60_000, Some(T + 120_000))
        );
        assert!(BessFault::parse("string_outage@1", T).is_err());
        assert_eq!(BessFault::label(&[f], T + 60_000), "hot_rack");
        assert_eq!(BessFault::label(&[f], T + 120_000), "");
    }
}

//! Offline datasets from the simulators' physical models: the raw point
//! values an edge would receive, at a fixed step, with a label column
//! naming the faults active at each row. No network, no clock: a day of
//! 1-second rows takes well under a second in a release build.
//!
//! Columns (wind turbine): `ts_ms`, then the anomaly-model roles of
//! `docs/specs/anomaly-models.md` (`wind_speed`, `active_power`,
//! `rotor_speed`, `pitch_angle`, `gearbox_temp`, `generator_temp`,
//! `bearing_temp`, `ambient_temp`), then `nacelle_temp`, `status` and
//! `label` (active faults joined by `+`, empty when healthy).

use crate::bess::RackModel;
use crate::bess::faults::BessFault;
use crate::opcua::turbine::{TurbineModel, WindFault};
use crate::solar::faults::{PvFault, state_with_faults};
use crate::solar::{InverterModel, SiteModel};
use std::io::Write;

/// 2026-01-01T00:00:00Z, the default start of a dataset.
pub const DEFAULT_START_MS: i64 = 1_767_225_600_000;

/// The CSV header of a wind-turbine dataset.
pub const WIND_HEADER: &str = "ts_ms,wind_speed,active_power,rotor_speed,pitch_angle,gearbox_temp,generator_temp,bearing_temp,ambient_temp,nacelle_temp,status,label";

/// What to export.
#[derive(Debug, Clone)]
pub struct WindDataset {
    pub model: TurbineModel,
    pub start_ms: i64,
    pub duration_ms: i64,
    pub step_ms: i64,
}

impl WindDataset {
    /// Writes the header and one row per step; returns the number of rows.
    pub fn write_csv<W: Write>(&self, out: &mut W) -> std::io::Result<u64> {
        writeln!(out, "{WIND_HEADER}")?;
        let step = self.step_ms.max(1);
        let mut rows = 0u64;
        let mut t = self.start_ms;
        let end = self.start_ms.saturating_add(self.duration_ms);
        while t < end {
            let r = self.model.observe(t);
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                r.ts_ms,
                r.wind_speed,
                r.active_power,
                r.rotor_speed,
                r.pitch_angle,
                r.gearbox_temperature,
                r.generator_temperature,
                r.bearing_temperature,
                r.ambient_temperature,
                r.nacelle_temperature,
                r.status as i32,
                WindFault::label(&self.model.faults, t),
            )?;
            rows += 1;
            t += step;
        }
        Ok(rows)
    }
}

/// The CSV header of a PV inverter dataset (power in W, temperatures in
/// °C, irradiance in W/m² on the plane of the array).
pub const PV_HEADER: &str = "ts_ms,poa_irradiance,ambient_temp,module_temp,dc_power,dc_voltage,dc_current,ac_power,heatsink_temp,cabinet_temp,state,events,label";

/// A PV inverter dataset: inverter 0 of a fleet seeded by `seed` at the
/// Bhadla site model with the same seed.
#[derive(Debug, Clone)]
pub struct PvDataset {
    pub seed: u64,
    pub rated_ac_w: f64,
    pub faults: Vec<PvFault>,
    pub start_ms: i64,
    pub duration_ms: i64,
    pub step_ms: i64,
}

impl PvDataset {
    /// Writes the header and one row per step; returns the number of rows.
    pub fn write_csv<W: Write>(&self, out: &mut W) -> std::io::Result<u64> {
        writeln!(out, "{PV_HEADER}")?;
        let site = SiteModel::bhadla(self.seed);
        let inv = InverterModel::fleet_member(self.seed, 0, self.rated_ac_w);
        let step = self.step_ms.max(1);
        let mut rows = 0u64;
        let mut t = self.start_ms;
        let end = self.start_ms.saturating_add(self.duration_ms);
        while t < end {
            let c = site.conditions(t);
            let s = state_with_faults(&inv, &c, t, &self.faults);
            let r = |v: f64, per: f64| (v * per).round() / per;
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                t,
                r(c.poa, 10.0),
                r(c.ambient_c, 100.0),
                r(c.module_c, 100.0),
                r(s.dc_power_w, 1.0),
                r(s.dc_voltage_v, 10.0),
                r(s.dc_current_a, 100.0),
                r(s.ac_power_w, 1.0),
                r(s.heatsink_c, 100.0),
                r(s.cabinet_c, 100.0),
                s.state.code(),
                s.events,
                PvFault::label(&self.faults, t),
            )?;
            rows += 1;
            t += step;
        }
        Ok(rows)
    }
}

/// The CSV header of a BESS rack dataset: the roles of `bess_rack/1`
/// (current in A, positive = discharge; SoC in %; cell voltages in V;
/// temperatures in °C), then the rack voltage (V), the BMS derating
/// factor and the label.
pub const BESS_HEADER: &str = "ts_ms,rack_current,soc,cell_v_max,cell_v_min,cell_t_max,cell_t_min,ambient_temp,rack_voltage,derate,label";

/// A BESS rack dataset: the rack of `seed` ([`RackModel::new`]).
#[derive(Debug, Clone)]
pub struct BessDataset {
    pub seed: u64,
    pub faults: Vec<BessFault>,
    pub start_ms: i64,
    pub duration_ms: i64,
    pub step_ms: i64,
}

impl BessDataset {
    /// Writes the header and one row per step; returns the number of rows.
    pub fn write_csv<W: Write>(&self, out: &mut W) -> std::io::Result<u64> {
        writeln!(out, "{BESS_HEADER}")?;
        let rack = RackModel::new(self.seed).with_faults(self.faults.clone());
        let end = self.start_ms.saturating_add(self.duration_ms);
        let mut rows = 0u64;
        for r in rack.readings(self.start_ms, end, self.step_ms.max(1)) {
            writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                r.ts_ms,
                r.rack_current,
                r.soc,
                r.cell_v_max,
                r.cell_v_min,
                r.cell_t_max,
                r.cell_t_min,
                r.ambient_temp,
                r.rack_voltage,
                (r.derate * 1000.0).round() / 1000.0,
                BessFault::label(&self.faults, r.ts_ms),
            )?;
            rows += 1;
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::opcua::turbine::WindFaultKind;

    #[test]
    fn rows_match_the_model_and_labels_mark_the_fault_span() {
        let start = DEFAULT_START_MS;
        let model = TurbineModel::new(9, 3000.0).with_faults(vec![WindFault {
            kind: WindFaultKind::BearingCreep,
            start_ms: start + 30_000,
            end_ms: Some(start + 40_000),
        }]);
        let ds = WindDataset {
            model: model.clone(),
            start_ms: start,
            duration_ms: 60_000,
            step_ms: 1000,
        };
        let mut buf = Vec::new();
        assert_eq!(ds.write_csv(&mut buf).expect("in memory"), 60);
        let text = String::from_utf8(buf).expect("utf-8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(WIND_HEADER));
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 60);
        for (i, row) in rows.iter().enumerate() {
            let t = start + i as i64 * 1000;
            let r = model.observe(t);
            assert_eq!(row[0], t.to_string());
            assert_eq!(row[5].parse::<f64>().ok(), Some(r.gearbox_temperature));
            assert_eq!(row[7].parse::<f64>().ok(), Some(r.bearing_temperature));
            let want = if (30..40).contains(&i) {
                "bearing_creep"
            } else {
                ""
            };
            assert_eq!(row[11], want, "row {i}");
        }
    }

    #[test]
    fn pv_rows_follow_the_faulted_model_and_are_labelled() {
        use crate::solar::faults::PvFaultKind;
        // 2026-06-21 04:00 UTC: mid-morning at Bhadla.
        let start = 1_782_014_400_000;
        let faults = vec![PvFault {
            kind: PvFaultKind::StringOutage,
            start_ms: start + 30_000,
            end_ms: None,
        }];
        let ds = PvDataset {
            seed: 4,
            rated_ac_w: 100_000.0,
            faults: faults.clone(),
            start_ms: start,
            duration_ms: 60_000,
            step_ms: 10_000,
        };
        let mut buf = Vec::new();
        assert_eq!(ds.write_csv(&mut buf).expect("in memory"), 6);
        let text = String::from_utf8(buf).expect("utf-8");
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        let inv = InverterModel::fleet_member(4, 0, 100_000.0);
        let site = SiteModel::bhadla(4);
        for (i, row) in rows.iter().enumerate() {
            let t = start + i as i64 * 10_000;
            let s = state_with_faults(&inv, &site.conditions(t), t, &faults);
            assert_eq!(row[4].parse::<f64>().ok(), Some(s.dc_power_w.round()));
            assert_eq!(
                row[12],
                if i >= 3 { "string_outage" } else { "" },
                "row {i}"
            );
        }
    }

    #[test]
    fn bess_rows_follow_the_rack_model_and_are_labelled() {
        use crate::bess::faults::BessFaultKind;
        let start = DEFAULT_START_MS + 11 * 3_600_000;
        let faults = vec![BessFault {
            kind: BessFaultKind::CellImbalance,
            start_ms: start + 50_000,
            end_ms: Some(start + 90_000),
        }];
        let ds = BessDataset {
            seed: 2,
            faults: faults.clone(),
            start_ms: start,
            duration_ms: 120_000,
            step_ms: 10_000,
        };
        let mut buf = Vec::new();
        assert_eq!(ds.write_csv(&mut buf).expect("in memory"), 12);
        let text = String::from_utf8(buf).expect("utf-8");
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(BESS_HEADER));
        let rack = RackModel::new(2).with_faults(faults);
        for (i, line) in lines.enumerate() {
            let row: Vec<&str> = line.split(',').collect();
            let t = start + i as i64 * 10_000;
            let r = rack.observe(t);
            assert_eq!(row[0], t.to_string());
            assert_eq!(row[3].parse::<f64>().ok(), Some(r.cell_v_max));
            assert_eq!(row[5].parse::<f64>().ok(), Some(r.cell_t_max));
            let want = if (5..9).contains(&i) {
                "cell_imbalance"
            } else {
                ""
            };
            assert_eq!(row[10], want, "row {i}");
        }
    }
}

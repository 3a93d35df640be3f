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

use crate::opcua::turbine::{TurbineModel, WindFault};
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
}

//! The rack's BMS as a Modbus device: holding (and input) registers from
//! 40000, served by the fleet server of [`crate::modbus`]
//! (`dcmms-sim modbus --device bess`), with its link faults.
//!
//! | address | point | type | unit, scale |
//! |---|---|---|---|
//! | 40000 | rack voltage | u16 | V × 10 |
//! | 40001 | rack current, positive = discharge | i16 | A × 10 |
//! | 40002 | state of charge | u16 | % × 10 |
//! | 40003 | max cell voltage | u16 | mV |
//! | 40004 | min cell voltage | u16 | mV |
//! | 40005 | max cell temperature | i16 | °C × 10 |
//! | 40006 | min cell temperature | i16 | °C × 10 |
//! | 40007 | container (HVAC) air temperature | i16 | °C × 10 |
//! | 40008 | current the BMS allows (derating) | u16 | % × 10 (1000 = no derating) |
//! | 40009 | state: 0 rest, 1 charging, 2 discharging | u16 | |
//!
//! Values out of a type's range saturate. Reads past 40009 are answered
//! with exception IllegalDataAddress.

use super::RackModel;
use super::faults::BessFault;
use crate::sunspec::RegisterImage;

/// First register of the map.
pub const BMS_BASE: u16 = 40000;
/// Registers in the map.
pub const BMS_LEN: u16 = 10;

/// One rack behind its BMS.
#[derive(Debug, Clone)]
pub struct BmsDevice {
    rack: RackModel,
}

fn u16_of(v: f64) -> u16 {
    v.round().clamp(0.0, f64::from(u16::MAX)) as u16
}

/// An i16 in its register's two's-complement bits.
fn i16_of(v: f64) -> u16 {
    (v.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16) as u16
}

impl BmsDevice {
    /// The rack of `seed` ([`RackModel::new`]), healthy.
    pub fn new(seed: u64) -> BmsDevice {
        BmsDevice {
            rack: RackModel::new(seed),
        }
    }

    /// Replaces the rack's faults (start and end on the simulation clock).
    pub fn set_faults(&mut self, faults: Vec<BessFault>) {
        let seed = self.rack.seed;
        self.rack = RackModel::new(seed).with_faults(faults);
    }

    pub fn faults(&self) -> &[BessFault] {
        &self.rack.faults
    }

    /// The registers at `unix_ms`, from [`BMS_BASE`] on.
    pub fn registers_at(&self, unix_ms: i64) -> Vec<u16> {
        let r = self.rack.observe(unix_ms);
        let state = if r.rack_current > 0.0 {
            2
        } else if r.rack_current < 0.0 {
            1
        } else {
            0
        };
        vec![
            u16_of(r.rack_voltage * 10.0),
            i16_of(r.rack_current * 10.0),
            u16_of(r.soc * 10.0),
            u16_of(r.cell_v_max * 1000.0),
            u16_of(r.cell_v_min * 1000.0),
            i16_of(r.cell_t_max * 10.0),
            i16_of(r.cell_t_min * 10.0),
            i16_of(r.ambient_temp * 10.0),
            u16_of(r.derate * 1000.0),
            state,
        ]
    }

    /// The register image at `unix_ms`.
    pub fn image_at(&self, unix_ms: i64) -> RegisterImage {
        RegisterImage::raw(self.registers_at(unix_ms))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn registers_scale_the_reading_and_keep_the_sign() {
        // 2026-06-21 19:30 local: discharging.
        let t = 1_782_000_000_000 - 19_800_000 + 19 * 3_600_000 + 1_800_000;
        let dev = BmsDevice::new(3);
        let r = dev.rack.observe(t);
        let regs = dev.registers_at(t);
        assert_eq!(regs.len(), usize::from(BMS_LEN));
        assert!(r.rack_current > 0.0, "{r:?}");
        assert_eq!(regs[1] as i16, (r.rack_current * 10.0).round() as i16);
        assert_eq!(regs[3], (r.cell_v_max * 1000.0).round() as u16);
        assert_eq!(regs[5] as i16, (r.cell_t_max * 10.0).round() as i16);
        assert_eq!(regs[9], 2);
        // Charging: a negative current in two's complement.
        let noon = t - 7 * 3_600_000 - 1_800_000;
        let c = dev.registers_at(noon);
        assert!((c[1] as i16) < 0 && c[9] == 1, "{c:?}");
        assert_eq!(i16_of(-25.4 * 10.0) as i16, -254);
        assert_eq!(u16_of(-3.0), 0);
    }
}

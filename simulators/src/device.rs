//! One simulated inverter as a stateful device.
//!
//! [`SimulatedInverter`] combines the pure solar/inverter model
//! ([`crate::solar`]) with the only state a real inverter keeps between
//! polls, the lifetime energy counter, and encodes the result as a SunSpec
//! register image ([`crate::sunspec`]). It knows nothing about Modbus.
//!
//! Inverter faults (issue 6: string outage, over-temperature, soiling,
//! failing fan, insulation) are physics: [`SimulatedInverter::state_at`]
//! computes the state with them ([`crate::solar::faults::state_with_faults`]),
//! so the register image, its `St` and `Evt1`, and the energy counter all
//! follow. Link faults (slow replies, exceptions, …) are the server's
//! business ([`crate::modbus::fault`]).

use crate::solar::faults::{PvFault, state_with_faults};
use crate::solar::{InverterModel, InverterState, SiteModel};
use crate::sunspec::{DeviceIdentity, RegisterImage, ScaleFactors, build_image};

/// Longest integration step of the energy counter (ms).
const MAX_ENERGY_STEP_MS: i64 = 60_000;
/// Most model evaluations per clock jump when integrating energy.
const MAX_ENERGY_STEPS: i64 = 2_880;

/// Lifetime AC energy counter, integrated between clock ticks.
#[derive(Debug, Clone, PartialEq)]
struct EnergyCounter {
    wh: f64,
    last_ms: Option<i64>,
}

/// A simulated inverter: model, identity, scale factors and energy counter.
#[derive(Debug, Clone, PartialEq)]
pub struct SimulatedInverter {
    /// The site the inverter is on (weather).
    pub site: SiteModel,
    /// The inverter and its array.
    pub model: InverterModel,
    /// SunSpec common-model identity.
    pub identity: DeviceIdentity,
    /// Fixed scale factors of the register map.
    pub scale: ScaleFactors,
    /// Inverter faults, active by their own start and end times.
    pub faults: Vec<PvFault>,
    energy: EnergyCounter,
}

impl SimulatedInverter {
    /// A simulated inverter answering as Modbus unit `unit_id`; the energy
    /// counter starts at the model's seed-derived initial value.
    #[must_use]
    pub fn new(site: SiteModel, model: InverterModel, unit_id: u8) -> Self {
        let serial = format!("SIM-{:016X}", model.seed);
        Self::with_serial(site, model, unit_id, serial)
    }

    /// Inverter number `index` of a fleet (see [`InverterModel::fleet_member`]).
    #[must_use]
    pub fn fleet_member(
        site: SiteModel,
        fleet_seed: u64,
        index: usize,
        rated_ac_w: f64,
        unit_id: u8,
    ) -> Self {
        let model = InverterModel::fleet_member(fleet_seed, index, rated_ac_w);
        let serial = format!("SIM{:03}-{:08X}", index + 1, model.seed as u32);
        Self::with_serial(site, model, unit_id, serial)
    }

    fn with_serial(site: SiteModel, model: InverterModel, unit_id: u8, serial: String) -> Self {
        let identity = DeviceIdentity {
            manufacturer: "dCMMS Simulators".to_owned(),
            model: format!("SIM-INV-3PH-{:.0}K", model.rated_ac_w / 1000.0),
            options: "sim".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            serial,
            device_address: u16::from(unit_id),
        };
        let scale = ScaleFactors::for_rating(model.rated_ac_w, model.dc_capacity_w);
        let energy = EnergyCounter {
            wh: model.initial_energy_wh(),
            last_ms: None,
        };
        Self {
            site,
            model,
            identity,
            scale,
            faults: Vec::new(),
            energy,
        }
    }

    /// The electrical state at `unix_ms`, with the faults active then
    /// (pure, does not touch the counter).
    #[must_use]
    pub fn state_at(&self, unix_ms: i64) -> InverterState {
        if self.faults.is_empty() {
            self.model.state_at(&self.site, unix_ms)
        } else {
            let site = self.site.conditions(unix_ms);
            state_with_faults(&self.model, &site, unix_ms, &self.faults)
        }
    }

    /// Lifetime AC energy (Wh) as of the last [`Self::advance_to`].
    #[must_use]
    pub fn energy_wh(&self) -> f64 {
        self.energy.wh
    }

    /// Moves the device's clock to `unix_ms`, integrating AC power into the
    /// energy counter since the previous call (the first call only sets the
    /// reference time). Large jumps are integrated by sampling the model
    /// every minute (at most 2880 samples); a clock moving backwards never
    /// decreases the counter.
    pub fn advance_to(&mut self, unix_ms: i64) {
        let Some(last) = self.energy.last_ms else {
            self.energy.last_ms = Some(unix_ms);
            return;
        };
        if unix_ms > last {
            let span = unix_ms - last;
            let steps = (span + MAX_ENERGY_STEP_MS - 1) / MAX_ENERGY_STEP_MS;
            let steps = steps.clamp(1, MAX_ENERGY_STEPS);
            let mut t0 = last;
            let mut p0 = self.state_at(t0).ac_power_w;
            let mut wh = 0.0;
            for k in 1..=steps {
                let t1 = last + span * k / steps;
                let p1 = self.state_at(t1).ac_power_w;
                wh += (p0 + p1) / 2.0 * (t1 - t0) as f64 / 3_600_000.0;
                t0 = t1;
                p0 = p1;
            }
            self.energy.wh += wh.max(0.0);
        }
        self.energy.last_ms = Some(unix_ms);
    }

    /// Advances to `unix_ms` and returns the register image for that time.
    pub fn image_at(&mut self, unix_ms: i64) -> RegisterImage {
        self.advance_to(unix_ms);
        let state = self.state_at(unix_ms);
        build_image(
            &self.identity,
            &self.scale,
            &state,
            self.energy.wh.max(0.0) as u64,
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::solar::OperatingState;
    use crate::sunspec::{
        BASE_ADDRESS, END_MODEL_ID, MODEL1_LENGTH, MODEL103_LENGTH, PointDef, SUNS_MARKER,
        expected_value, inverter_points, model1,
    };

    /// 2026-06-21T00:00:00Z.
    const JUNE21: i64 = 1_782_000_000_000;
    /// Solar noon at Bhadla (71.92 E) on 2026-06-21 is ~07:14 UTC.
    const NOON: i64 = JUNE21 + 7 * 3_600_000 + 14 * 60_000;
    /// Local midnight (~19:14 UTC).
    const NIGHT: i64 = JUNE21 + 19 * 3_600_000 + 14 * 60_000;

    fn inverter(seed: u64, index: usize, clouds: bool) -> SimulatedInverter {
        let site = SiteModel {
            clouds,
            ..SiteModel::bhadla(seed)
        };
        SimulatedInverter::fleet_member(site, seed, index, 100_000.0, 1)
    }

    fn point(name: &str) -> PointDef {
        inverter_points()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap()
    }

    fn value(img: &RegisterImage, name: &str) -> f64 {
        expected_value(img, &point(name)).unwrap()
    }

    #[test]
    fn same_seed_same_time_gives_identical_images() {
        for t in [NOON, NIGHT, JUNE21 + 4 * 3_600_000 + 123_456] {
            let a = inverter(42, 0, true).image_at(t);
            let b = inverter(42, 0, true).image_at(t);
            assert_eq!(a, b);
            let other_seed = inverter(43, 0, true).image_at(t);
            assert_ne!(a, other_seed);
            let other_device = inverter(42, 1, true).image_at(t);
            assert_ne!(a, other_device);
        }
    }

    #[test]
    fn night_is_zero_power_and_sleeping() {
        let img = inverter(42, 0, true).image_at(NIGHT);
        assert_eq!(value(&img, "ac_power"), 0.0);
        assert_eq!(value(&img, "dc_power"), 0.0);
        assert_eq!(value(&img, "dc_voltage"), 0.0);
        assert_eq!(value(&img, "ac_current"), 0.0);
        assert_eq!(
            value(&img, "operating_state"),
            f64::from(OperatingState::Sleeping.code())
        );
        // The grid is still there at night.
        let v = value(&img, "ac_voltage_an");
        assert!((220.0..240.0).contains(&v), "{v}");
    }

    #[test]
    fn clear_sky_noon_in_june_is_close_to_rating() {
        for index in 0..4 {
            let img = inverter(7, index, false).image_at(NOON);
            let w = value(&img, "ac_power");
            assert!((88_000.0..=100_000.0).contains(&w), "device {index}: {w} W");
            let st = value(&img, "operating_state") as u16;
            assert!(
                st == OperatingState::Mppt.code() || st == OperatingState::Throttled.code(),
                "{st}"
            );
        }
    }

    #[test]
    fn marker_and_model_chain_are_walkable() {
        let img = inverter(1, 0, true).image_at(NOON);
        assert_eq!(img.read(BASE_ADDRESS, 2).unwrap(), SUNS_MARKER.to_vec());
        let mut addr = BASE_ADDRESS + 2;
        let mut chain = Vec::new();
        loop {
            let hdr = img.read(addr, 2).unwrap();
            chain.push((hdr[0], hdr[1]));
            if hdr[0] == END_MODEL_ID {
                break;
            }
            addr += 2 + hdr[1];
        }
        assert_eq!(
            chain,
            vec![
                (1, MODEL1_LENGTH),
                (103, MODEL103_LENGTH),
                (END_MODEL_ID, 0)
            ]
        );
        assert_eq!(usize::from(addr + 2 - BASE_ADDRESS), img.registers().len());
        assert_eq!(
            img.get_string(model1::MN, 16).as_deref(),
            Some("dCMMS Simulators")
        );
        assert_eq!(img.get(model1::DA), Some(1));
        assert!(
            img.get_string(model1::SN, 16)
                .unwrap()
                .starts_with("SIM001-")
        );
    }

    #[test]
    fn decoded_values_are_physically_plausible() {
        let mut inv = inverter(42, 2, true);
        let mut t = JUNE21;
        let mut last_energy = 0.0;
        while t < JUNE21 + 86_400_000 {
            let img = inv.image_at(t);
            let ac = value(&img, "ac_power");
            let dc = value(&img, "dc_power");
            let va = value(&img, "ac_apparent_power");
            let hz = value(&img, "ac_frequency");
            let pf = value(&img, "power_factor");
            let vdc = value(&img, "dc_voltage");
            let energy = value(&img, "ac_energy");
            assert!(dc >= ac, "t={t}: dc {dc} < ac {ac}");
            assert!((0.0..=100_000.0).contains(&ac), "{ac}");
            assert!(va + 10.0 >= ac, "{va} {ac}");
            assert!((49.5..=50.5).contains(&hz), "{hz}");
            assert!((0.0..=100.0).contains(&pf), "{pf}");
            assert!((0.0..=1_300.0).contains(&vdc), "{vdc}");
            for n in ["ac_voltage_an", "ac_voltage_bn", "ac_voltage_cn"] {
                let v = value(&img, n);
                assert!((215.0..=245.0).contains(&v), "{n} {v}");
            }
            let vab = value(&img, "ac_voltage_ab");
            assert!((375.0..=425.0).contains(&vab), "{vab}");
            let amb_ok = (-10.0..=90.0).contains(&value(&img, "heatsink_temperature"));
            assert!(amb_ok);
            assert!(
                value(&img, "heatsink_temperature") >= value(&img, "cabinet_temperature") - 2.0
            );
            if ac > 1_000.0 {
                let ia = value(&img, "ac_current");
                let expected = va / 230.0;
                assert!(
                    (ia - expected).abs() / expected < 0.05,
                    "{ia} vs {expected}"
                );
                let idc = value(&img, "dc_current");
                assert!((idc * vdc - dc).abs() / dc < 0.02, "{idc}*{vdc} vs {dc}");
            }
            assert!(energy >= last_energy);
            last_energy = energy;
            t += 7 * 60_000;
        }
    }

    #[test]
    fn energy_integrates_ac_power() {
        let mut inv = inverter(5, 0, false);
        let e0 = {
            inv.advance_to(JUNE21);
            inv.energy_wh()
        };
        assert!(e0 > 0.0, "seed-derived initial energy");
        // A frozen-clock jump across the whole day is integrated by sampling.
        inv.advance_to(JUNE21 + 86_400_000);
        let day_kwh = (inv.energy_wh() - e0) / 1000.0;
        // ~6-8 full-load hours on a clear June day for a horizontal array.
        assert!((450.0..900.0).contains(&day_kwh), "{day_kwh} kWh");
        // Going back in time never decreases the counter.
        let e1 = inv.energy_wh();
        inv.advance_to(JUNE21);
        assert_eq!(inv.energy_wh(), e1);
    }
}

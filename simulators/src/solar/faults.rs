//! PV inverter fault physics (issue 6), applied on top of the healthy
//! [`InverterModel`]: pure in `(model, site, faults, unix ms)` like the rest
//! of the solar model, so datasets and tests can recompute any value.
//!
//! - `string_outage`: one of the array's 12 strings open (fuse, connector):
//!   DC current and power 1/12 lower at the same voltage, from onset.
//! - `over_temperature`: heat-sink cooling blocked (filter, duct): the rise
//!   over ambient doubles within 10 minutes, and above 70 °C the inverter
//!   derates its AC output to hold 70 °C (state `Throttled`).
//! - `soiling_drift`: dust builds up 2 % of output per day from onset, up
//!   to 20 % (a slow fault: days, not minutes).
//! - `failing_fan`: the heat-sink fan weakens: the rise over ambient grows
//!   by up to 60 % over 30 minutes, more the higher the load (temperature
//!   rising against load), without derating.
//! - `insulation_fault`: the array's insulation to earth breaks down when
//!   damp: from onset, in the first 15 minutes of every hour while the
//!   module is below 30 °C (night, morning dew) the inverter reports a
//!   ground fault (event bit 0) and trips (state `Fault`, no output).

use super::{InverterModel, InverterState, OperatingState, SiteConditions};
use crate::faults::{Fault, FaultKind};

/// Strings in the array (string outage removes one).
pub const STRINGS: f64 = 12.0;
/// Heat-sink temperature the derating holds, °C.
pub const DERATE_AT_C: f64 = 70.0;
/// SunSpec model 103 `Evt1` bit 0: ground fault.
pub const EVT_GROUND_FAULT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PvFaultKind {
    StringOutage,
    OverTemperature,
    SoilingDrift,
    FailingFan,
    InsulationFault,
}

impl PvFaultKind {
    pub const ALL: [PvFaultKind; 5] = [
        PvFaultKind::StringOutage,
        PvFaultKind::OverTemperature,
        PvFaultKind::SoilingDrift,
        PvFaultKind::FailingFan,
        PvFaultKind::InsulationFault,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PvFaultKind::StringOutage => "string_outage",
            PvFaultKind::OverTemperature => "over_temperature",
            PvFaultKind::SoilingDrift => "soiling_drift",
            PvFaultKind::FailingFan => "failing_fan",
            PvFaultKind::InsulationFault => "insulation_fault",
        }
    }

    pub fn from_name(s: &str) -> Option<PvFaultKind> {
        Self::ALL.into_iter().find(|k| k.name() == s)
    }
}

impl FaultKind for PvFaultKind {
    fn kinds() -> &'static [Self] {
        &Self::ALL
    }

    fn label(self) -> &'static str {
        self.name()
    }
}

/// One PV inverter fault, active from `start_ms` to `end_ms` ([`Fault`]).
pub type PvFault = Fault<PvFaultKind>;

fn age_ms(faults: &[PvFault], kind: PvFaultKind, unix_ms: i64) -> Option<i64> {
    faults
        .iter()
        .filter(|f| f.kind == kind && f.active(unix_ms))
        .map(|f| unix_ms - f.start_ms)
        .max()
}

/// The inverter's state at `unix_ms` with `faults`.
pub fn state_with_faults(
    model: &InverterModel,
    site: &SiteConditions,
    unix_ms: i64,
    faults: &[PvFault],
) -> InverterState {
    let age = |k| age_ms(faults, k, unix_ms);
    let mut m = model.clone();
    if age(PvFaultKind::StringOutage).is_some() {
        m.dc_capacity_w *= (STRINGS - 1.0) / STRINGS;
    }
    if let Some(a) = age(PvFaultKind::SoilingDrift) {
        let days = a as f64 / 86_400_000.0;
        m.soiling *= 1.0 - (0.02 * days).min(0.2);
    }
    let mut st = m.state_for(site, unix_ms);
    let load = if m.rated_ac_w > 0.0 {
        st.ac_power_w / m.rated_ac_w
    } else {
        0.0
    };
    // Heat-sink rise over ambient, healthy: 2 + 30 × load (InverterModel).
    let mut rise_factor = 1.0;
    if let Some(a) = age(PvFaultKind::FailingFan) {
        let ramp = (a as f64 / 1_800_000.0).min(1.0);
        rise_factor *= 1.0 + 0.6 * ramp * load.clamp(0.0, 1.0).sqrt();
    }
    let blocked = age(PvFaultKind::OverTemperature).map(|a| (a as f64 / 600_000.0).min(1.0));
    if let Some(ramp) = blocked {
        rise_factor *= 1.0 + ramp;
    }
    let rise = |load: f64| (2.0 + 30.0 * load) * rise_factor;
    st.heatsink_c = site.ambient_c + rise(load);
    if blocked.is_some() && st.heatsink_c > DERATE_AT_C && st.ac_power_w > 0.0 {
        // Largest load that holds the heat sink at DERATE_AT_C.
        let max_load = ((DERATE_AT_C - site.ambient_c) / rise_factor - 2.0) / 30.0;
        let limit = (max_load.max(0.0) * m.rated_ac_w).min(st.ac_power_w);
        let ratio = if st.ac_power_w > 0.0 {
            limit / st.ac_power_w
        } else {
            0.0
        };
        st.ac_power_w = limit;
        st.ac_apparent_power_va *= ratio;
        st.ac_reactive_power_var *= ratio;
        for a in &mut st.phase_current_a {
            *a *= ratio;
        }
        // Off the MPP: less DC drawn, at a higher voltage.
        st.dc_power_w *= ratio;
        st.dc_voltage_v *= 1.0 + 0.08 * (1.0 - ratio);
        st.dc_current_a = if st.dc_voltage_v > 0.0 {
            st.dc_power_w / st.dc_voltage_v
        } else {
            0.0
        };
        st.state = OperatingState::Throttled;
        st.heatsink_c = site.ambient_c + rise(limit / m.rated_ac_w.max(1.0));
    }
    let new_load = st.ac_power_w / m.rated_ac_w.max(1.0);
    st.cabinet_c = site.ambient_c + 3.0 + 12.0 * new_load * rise_factor.sqrt();
    if let Some(a) = age(PvFaultKind::InsulationFault) {
        let in_hour = (unix_ms.rem_euclid(3_600_000)) < 900_000;
        if a >= 0 && in_hour && site.module_c < 30.0 {
            st.events |= EVT_GROUND_FAULT;
            st.state = OperatingState::Fault;
            st.ac_power_w = 0.0;
            st.ac_apparent_power_va = 0.0;
            st.ac_reactive_power_var = 0.0;
            st.phase_current_a = [0.0; 3];
            st.dc_power_w = 0.0;
            st.dc_current_a = 0.0;
            st.heatsink_c = site.ambient_c + rise(0.0);
            st.cabinet_c = site.ambient_c + 3.0;
        }
    }
    st
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::solar::SiteModel;

    /// 2026-06-21 06:30 UTC: noon at Bhadla.
    const NOON: i64 = 1_782_023_400_000;

    fn setup() -> (InverterModel, SiteModel) {
        (InverterModel::new(100_000.0, 3), SiteModel::bhadla(3))
    }

    fn fault(kind: PvFaultKind, start_ms: i64) -> Vec<PvFault> {
        vec![PvFault {
            kind,
            start_ms,
            end_ms: None,
        }]
    }

    #[test]
    fn no_fault_is_the_healthy_model_and_faults_wait_for_onset() {
        let (m, s) = setup();
        for k in 0..50 {
            let t = NOON + k * 611_000;
            let site = s.conditions(t);
            assert_eq!(state_with_faults(&m, &site, t, &[]), m.state_for(&site, t));
            for kind in PvFaultKind::ALL {
                assert_eq!(
                    state_with_faults(&m, &site, t, &fault(kind, t + 1)),
                    m.state_for(&site, t),
                    "{kind:?}"
                );
            }
        }
    }

    #[test]
    fn a_string_outage_costs_a_twelfth_of_the_dc_current_at_the_same_voltage() {
        let (m, s) = setup();
        // Morning, below clipping.
        let t = NOON - 4 * 3_600_000;
        let site = s.conditions(t);
        let h = m.state_for(&site, t);
        let f = state_with_faults(&m, &site, t, &fault(PvFaultKind::StringOutage, t - 1));
        assert_eq!(h.state, OperatingState::Mppt, "{h:?}");
        assert!(h.dc_power_w > 10_000.0);
        assert_eq!(f.dc_voltage_v, h.dc_voltage_v);
        let ratio = f.dc_current_a / h.dc_current_a;
        assert!((ratio - 11.0 / 12.0).abs() < 1e-9, "{ratio}");
        assert!(f.ac_power_w < h.ac_power_w);
    }

    #[test]
    fn blocked_cooling_derates_to_hold_seventy_degrees_and_a_weak_fan_only_heats() {
        let (m, s) = setup();
        let t = NOON;
        let site = s.conditions(t);
        let h = m.state_for(&site, t);
        let hot = state_with_faults(
            &m,
            &site,
            t,
            &fault(PvFaultKind::OverTemperature, t - 3_600_000),
        );
        assert!(hot.heatsink_c <= DERATE_AT_C + 1e-9, "{hot:?}");
        assert!(hot.heatsink_c > h.heatsink_c);
        assert_eq!(hot.state, OperatingState::Throttled);
        assert!(
            hot.ac_power_w < h.ac_power_w,
            "{} {}",
            hot.ac_power_w,
            h.ac_power_w
        );
        let fan = state_with_faults(&m, &site, t, &fault(PvFaultKind::FailingFan, t - 3_600_000));
        assert_eq!(fan.ac_power_w, h.ac_power_w);
        let rise = |x: &InverterState| x.heatsink_c - site.ambient_c;
        assert!(
            rise(&fan) > 1.3 * rise(&h),
            "{} vs {}",
            rise(&fan),
            rise(&h)
        );
    }

    #[test]
    fn soiling_drifts_two_percent_a_day_and_insulation_trips_when_damp() {
        let (m, s) = setup();
        let t = NOON - 3 * 3_600_000;
        let site = s.conditions(t);
        let h = m.state_for(&site, t);
        let dusty = state_with_faults(
            &m,
            &site,
            t,
            &fault(PvFaultKind::SoilingDrift, t - 5 * 86_400_000),
        );
        let ratio = dusty.dc_power_w / h.dc_power_w;
        assert!((ratio - 0.9).abs() < 1e-9, "{ratio}");
        // Insulation: trips in the first quarter of a damp hour, not after.
        let night = NOON - 8 * 3_600_000 - (NOON - 8 * 3_600_000).rem_euclid(3_600_000);
        let site = s.conditions(night + 60_000);
        assert!(site.module_c < 30.0, "{site:?}");
        let f = fault(PvFaultKind::InsulationFault, night - 86_400_000);
        let tripped = state_with_faults(&m, &site, night + 60_000, &f);
        assert_eq!(
            (tripped.state, tripped.events & EVT_GROUND_FAULT),
            (OperatingState::Fault, 1)
        );
        let later = s.conditions(night + 1_000_000);
        let ok = state_with_faults(&m, &later, night + 1_000_000, &f);
        assert_eq!(ok.events & EVT_GROUND_FAULT, 0);
        assert_ne!(ok.state, OperatingState::Fault);
    }

    #[test]
    fn pv_fault_specs_parse_and_label() {
        let f = PvFault::parse("failing_fan@60-120", NOON).unwrap();
        assert_eq!(
            (f.kind, f.start_ms, f.end_ms),
            (PvFaultKind::FailingFan, NOON + 60_000, Some(NOON + 120_000))
        );
        assert!(PvFault::parse("gearbox_overheat@1", NOON).is_err());
        assert_eq!(PvFault::label(&[f], NOON + 60_000), "failing_fan");
        assert_eq!(PvFault::label(&[f], NOON + 120_000), "");
    }
}

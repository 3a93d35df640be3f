//! Deterministic physical model of a PV site and its inverters.
//!
//! Everything in this module is a pure function of `(seed, unix time in ms)`:
//! the same seed and the same instant always give bit-identical results, on
//! every machine. There is no hidden state and no wall-clock access.
//!
//! The chain is: solar position (NOAA approximations) -> clear-sky global
//! horizontal irradiance (Haurwitz) -> seeded cloud attenuation (value noise)
//! -> plane-of-array irradiance (the array is approximated as horizontal, a
//! reasonable stand-in for the single-axis trackers typical of Rajasthan
//! plants) -> module temperature (NOCT model) -> DC power of one inverter's
//! array -> inverter efficiency curve and clipping -> AC quantities.
//!
//! [`faults`] adds PV inverter fault physics on top (string outage,
//! over-temperature derating, soiling drift, failing fan, insulation fault).

pub mod faults;

use std::f64::consts::PI;

use chrono::{DateTime, Datelike};

/// Latitude of Bhadla Solar Park, Rajasthan, India (degrees north).
pub const BHADLA_LATITUDE_DEG: f64 = 27.54;
/// Longitude of Bhadla Solar Park, Rajasthan, India (degrees east).
pub const BHADLA_LONGITUDE_DEG: f64 = 71.92;

/// SunSpec operating states (model 103 `St`, enum16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum OperatingState {
    /// 1: off.
    Off = 1,
    /// 2: sleeping (auto-shutdown, night).
    Sleeping = 2,
    /// 3: starting up (sun is up, not yet enough DC power to feed in).
    Starting = 3,
    /// 4: tracking the maximum power point.
    Mppt = 4,
    /// 5: power limited (clipping at AC rating).
    Throttled = 5,
    /// 6: shutting down.
    ShuttingDown = 6,
    /// 7: fault.
    Fault = 7,
    /// 8: standby (service on unit).
    Standby = 8,
}

impl OperatingState {
    /// The SunSpec enum16 value.
    #[must_use]
    pub fn code(self) -> u16 {
        self as u16
    }

    /// Decodes a SunSpec enum16 value.
    #[must_use]
    pub fn from_code(code: u16) -> Option<Self> {
        Some(match code {
            1 => Self::Off,
            2 => Self::Sleeping,
            3 => Self::Starting,
            4 => Self::Mppt,
            5 => Self::Throttled,
            6 => Self::ShuttingDown,
            7 => Self::Fault,
            8 => Self::Standby,
            _ => return None,
        })
    }
}

/// Position of the sun at one instant and place.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolarPosition {
    /// Solar declination (degrees).
    pub declination_deg: f64,
    /// Equation of time (minutes).
    pub equation_of_time_min: f64,
    /// Hour angle (degrees, 0 at solar noon, negative in the morning).
    pub hour_angle_deg: f64,
    /// Solar zenith angle (degrees, > 90 when the sun is below the horizon).
    pub zenith_deg: f64,
    /// Local apparent solar time (hours, 12.0 = solar noon).
    pub solar_time_h: f64,
}

impl SolarPosition {
    /// Cosine of the zenith angle (negative at night).
    #[must_use]
    pub fn cos_zenith(&self) -> f64 {
        self.zenith_deg.to_radians().cos()
    }
}

/// Weather and irradiance at the site at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SiteConditions {
    /// Sun position.
    pub sun: SolarPosition,
    /// Clear-sky global horizontal irradiance (W/m²).
    pub clear_sky_ghi: f64,
    /// Cloud attenuation factor, 0.25..=1.0 (1.0 = no clouds).
    pub cloud_factor: f64,
    /// Global horizontal irradiance after clouds (W/m²).
    pub ghi: f64,
    /// Irradiance on the modules (W/m²).
    pub poa: f64,
    /// Ambient air temperature (°C).
    pub ambient_c: f64,
    /// Module (cell) temperature (°C).
    pub module_c: f64,
}

/// A PV site: location, weather seed and module thermal parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteModel {
    /// Latitude in degrees (north positive).
    pub latitude_deg: f64,
    /// Longitude in degrees (east positive).
    pub longitude_deg: f64,
    /// Seed of the weather (clouds, day-to-day temperature variation).
    pub seed: u64,
    /// When false the sky is always clear (cloud factor 1.0).
    pub clouds: bool,
    /// Nominal operating cell temperature of the modules (°C).
    pub noct_c: f64,
    /// Mean of the daily ambient temperature sinusoid (°C).
    pub ambient_mean_c: f64,
    /// Half the daily ambient temperature swing (°C).
    pub ambient_amplitude_c: f64,
}

impl Default for SiteModel {
    /// Bhadla Solar Park, Rajasthan, with clouds enabled and seed 0.
    fn default() -> Self {
        Self {
            latitude_deg: BHADLA_LATITUDE_DEG,
            longitude_deg: BHADLA_LONGITUDE_DEG,
            seed: 0,
            clouds: true,
            noct_c: 45.0,
            ambient_mean_c: 31.0,
            ambient_amplitude_c: 9.0,
        }
    }
}

const MS_PER_DAY: i64 = 86_400_000;
/// Length of one cloud value-noise bucket.
const CLOUD_BUCKET_MS: i64 = 180_000;

impl SiteModel {
    /// Bhadla Solar Park with the given weather seed.
    #[must_use]
    pub fn bhadla(seed: u64) -> Self {
        Self {
            seed,
            ..Self::default()
        }
    }

    /// Sun position at `unix_ms` (NOAA general solar position equations).
    #[must_use]
    pub fn solar_position(&self, unix_ms: i64) -> SolarPosition {
        let (doy, utc_hours) = day_of_year_and_hours(unix_ms);
        let gamma = 2.0 * PI / 365.0 * (doy as f64 - 1.0 + (utc_hours - 12.0) / 24.0);
        let eqtime = 229.18
            * (0.000075 + 0.001868 * gamma.cos()
                - 0.032077 * gamma.sin()
                - 0.014615 * (2.0 * gamma).cos()
                - 0.040849 * (2.0 * gamma).sin());
        let decl = 0.006918 - 0.399912 * gamma.cos() + 0.070257 * gamma.sin()
            - 0.006758 * (2.0 * gamma).cos()
            + 0.000907 * (2.0 * gamma).sin()
            - 0.002697 * (3.0 * gamma).cos()
            + 0.00148 * (3.0 * gamma).sin();
        let true_solar_min =
            (utc_hours * 60.0 + eqtime + 4.0 * self.longitude_deg).rem_euclid(1440.0);
        let hour_angle_deg = true_solar_min / 4.0 - 180.0;
        let lat = self.latitude_deg.to_radians();
        let cos_z = (lat.sin() * decl.sin()
            + lat.cos() * decl.cos() * hour_angle_deg.to_radians().cos())
        .clamp(-1.0, 1.0);
        SolarPosition {
            declination_deg: decl.to_degrees(),
            equation_of_time_min: eqtime,
            hour_angle_deg,
            zenith_deg: cos_z.acos().to_degrees(),
            solar_time_h: true_solar_min / 60.0,
        }
    }

    /// Clear-sky global horizontal irradiance (Haurwitz model), W/m².
    #[must_use]
    pub fn clear_sky_ghi(&self, unix_ms: i64) -> f64 {
        haurwitz(self.solar_position(unix_ms).cos_zenith())
    }

    /// Seeded cloud attenuation factor in `0.25..=1.0`.
    ///
    /// Each UTC day gets a seeded character (mostly clear, sometimes partly
    /// cloudy, rarely overcast); within the day a smooth value noise over
    /// 3-minute buckets decides when clouds pass.
    #[must_use]
    pub fn cloud_factor(&self, unix_ms: i64) -> f64 {
        if !self.clouds {
            return 1.0;
        }
        let day = unix_ms.div_euclid(MS_PER_DAY);
        let day_kind = unit(mix(self.seed, 0xC10D_0001, day as u64));
        // (coverage threshold, depth): noise above threshold means a cloud.
        let (threshold, depth) = if day_kind < 0.70 {
            // Clear day: very occasional thin haze.
            (0.93, 0.15)
        } else if day_kind < 0.90 {
            // Partly cloudy: cumulus passing by.
            (0.55, 0.65)
        } else {
            // Overcast: almost always thick clouds.
            (0.05, 0.75)
        };
        let noise = value_noise(self.seed, unix_ms, CLOUD_BUCKET_MS);
        let cover = smoothstep(threshold - 0.08, threshold + 0.08, noise);
        (1.0 - depth * cover).clamp(0.25, 1.0)
    }

    /// Ambient air temperature (°C): daily sinusoid peaking at 15:00 solar
    /// time, a small seasonal swing and a seeded day-to-day offset.
    #[must_use]
    pub fn ambient_temperature(&self, unix_ms: i64) -> f64 {
        let sun = self.solar_position(unix_ms);
        let (doy, _) = day_of_year_and_hours(unix_ms);
        let daily = (2.0 * PI * (sun.solar_time_h - 15.0) / 24.0).cos();
        // 0 around the June solstice, -8 °C around the December solstice.
        let seasonal = 4.0 * ((2.0 * PI * (doy as f64 - 172.0) / 365.0).cos() - 1.0);
        let day = unix_ms.div_euclid(MS_PER_DAY);
        let day_offset = (unit(mix(self.seed, 0x7E3A_0002, day as u64)) - 0.5) * 3.0;
        self.ambient_mean_c + self.ambient_amplitude_c * daily + seasonal + day_offset
    }

    /// Module (cell) temperature from the NOCT model (°C).
    #[must_use]
    pub fn module_temperature(&self, ambient_c: f64, poa_w_m2: f64) -> f64 {
        ambient_c + (self.noct_c - 20.0) / 800.0 * poa_w_m2.max(0.0)
    }

    /// All site conditions at `unix_ms`.
    #[must_use]
    pub fn conditions(&self, unix_ms: i64) -> SiteConditions {
        let sun = self.solar_position(unix_ms);
        let clear_sky_ghi = haurwitz(sun.cos_zenith());
        let cloud_factor = self.cloud_factor(unix_ms);
        let ghi = clear_sky_ghi * cloud_factor;
        let poa = ghi;
        let ambient_c = self.ambient_temperature(unix_ms);
        let module_c = self.module_temperature(ambient_c, poa);
        SiteConditions {
            sun,
            clear_sky_ghi,
            cloud_factor,
            ghi,
            poa,
            ambient_c,
            module_c,
        }
    }
}

/// Haurwitz clear-sky model: `1098 cos z exp(-0.059 / cos z)`, 0 at night.
#[must_use]
pub fn haurwitz(cos_zenith: f64) -> f64 {
    if cos_zenith <= 0.0 {
        0.0
    } else {
        1098.0 * cos_zenith * (-0.059 / cos_zenith).exp()
    }
}

/// Electrical state of one inverter at one instant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InverterState {
    /// Site conditions used for this state.
    pub site: SiteConditions,
    /// DC input power (W).
    pub dc_power_w: f64,
    /// DC input voltage (V).
    pub dc_voltage_v: f64,
    /// DC input current (A).
    pub dc_current_a: f64,
    /// AC active power (W).
    pub ac_power_w: f64,
    /// AC apparent power (VA).
    pub ac_apparent_power_va: f64,
    /// AC reactive power (var).
    pub ac_reactive_power_var: f64,
    /// Power factor, 0..=1.
    pub power_factor: f64,
    /// Phase currents A, B, C (A).
    pub phase_current_a: [f64; 3],
    /// Phase-to-neutral voltages A, B, C (V).
    pub phase_voltage_v: [f64; 3],
    /// Line-to-line voltages AB, BC, CA (V).
    pub line_voltage_v: [f64; 3],
    /// Grid frequency (Hz).
    pub frequency_hz: f64,
    /// Cabinet temperature (°C).
    pub cabinet_c: f64,
    /// Heat sink temperature (°C).
    pub heatsink_c: f64,
    /// Operating state.
    pub state: OperatingState,
    /// SunSpec Evt1 bitfield (0 = no events).
    pub events: u32,
}

impl InverterState {
    /// Total AC current (sum of the phases), A.
    #[must_use]
    pub fn ac_current_a(&self) -> f64 {
        self.phase_current_a.iter().sum()
    }
}

/// One inverter with its PV array.
#[derive(Debug, Clone, PartialEq)]
pub struct InverterModel {
    /// AC nameplate rating (W).
    pub rated_ac_w: f64,
    /// DC array capacity at STC (W), typically ~1.2 x AC rating.
    pub dc_capacity_w: f64,
    /// Seed of this inverter's individual variation and ripple.
    pub seed: u64,
    /// Array MPP voltage at STC (V).
    pub vmp_stc_v: f64,
    /// Power temperature coefficient (1/°C), e.g. -0.004.
    pub power_temp_coeff: f64,
    /// Voltage temperature coefficient (1/°C), e.g. -0.0033.
    pub voltage_temp_coeff: f64,
    /// Soiling and wiring losses factor, 0..=1.
    pub soiling: f64,
    /// Multiplier on the conversion losses (1.0 nominal; 0.85 = 15 % fewer
    /// losses, i.e. roughly +0.3 % efficiency).
    pub loss_scale: f64,
    /// Power factor setpoint magnitude (lagging), 0..=1.
    pub pf_setpoint: f64,
}

/// Normalised self-consumption loss (fraction of AC rating).
const LOSS_FIXED: f64 = 0.003;
/// Normalised linear loss coefficient.
const LOSS_LINEAR: f64 = 0.008;
/// Normalised quadratic (resistive) loss coefficient.
const LOSS_QUADRATIC: f64 = 0.010;

impl InverterModel {
    /// A nominal inverter with the given rating and seed, DC/AC ratio 1.2,
    /// no individual variation.
    #[must_use]
    pub fn new(rated_ac_w: f64, seed: u64) -> Self {
        Self {
            rated_ac_w,
            dc_capacity_w: rated_ac_w * 1.2,
            seed,
            vmp_stc_v: 1050.0,
            power_temp_coeff: -0.004,
            voltage_temp_coeff: -0.0033,
            soiling: 0.97,
            loss_scale: 1.0,
            pf_setpoint: 0.995,
        }
    }

    /// Inverter number `index` of a fleet with seed `fleet_seed`: the same
    /// nameplate rating, but a seed-derived DC/AC ratio (1.15..1.25),
    /// soiling (0.95..0.99), conversion losses (±15 %) and MPP voltage
    /// (1020..1080 V), so devices are distinguishable.
    #[must_use]
    pub fn fleet_member(fleet_seed: u64, index: usize, rated_ac_w: f64) -> Self {
        let seed = mix(fleet_seed, 0x1A7E_0003, index as u64);
        let u = |k: u64| unit(mix(seed, 0x5EED_0004, k));
        Self {
            rated_ac_w,
            dc_capacity_w: rated_ac_w * (1.15 + 0.10 * u(1)),
            seed,
            vmp_stc_v: 1020.0 + 60.0 * u(2),
            power_temp_coeff: -0.004,
            voltage_temp_coeff: -0.0033,
            soiling: 0.95 + 0.04 * u(3),
            loss_scale: 0.85 + 0.30 * u(4),
            pf_setpoint: 0.99 + 0.009 * u(5),
        }
    }

    /// AC losses (W) at a given AC output (W): fixed + linear + quadratic.
    fn losses_w(&self, ac_w: f64) -> f64 {
        let p = ac_w / self.rated_ac_w;
        let l = LOSS_FIXED + LOSS_LINEAR * p + LOSS_QUADRATIC * p * p;
        (l * self.rated_ac_w * self.loss_scale).max(0.0)
    }

    /// Part-load conversion efficiency (AC/DC) at DC input `dc_w`.
    /// Returns 0 below the start-up threshold; ~98 % peak near half load.
    #[must_use]
    pub fn efficiency(&self, dc_w: f64) -> f64 {
        let ac = self.ac_from_dc(dc_w);
        if dc_w <= 0.0 || ac <= 0.0 {
            0.0
        } else {
            ac / dc_w
        }
    }

    /// Unclipped AC output for a DC input, solving `ac = dc - losses(ac)`
    /// by a few fixed-point iterations.
    fn ac_from_dc(&self, dc_w: f64) -> f64 {
        if dc_w <= 0.0 || self.rated_ac_w <= 0.0 {
            return 0.0;
        }
        let mut ac = dc_w;
        for _ in 0..8 {
            ac = dc_w - self.losses_w(ac.max(0.0));
        }
        ac.max(0.0)
    }

    /// Available DC power at the maximum power point (W) for the given
    /// site conditions.
    #[must_use]
    pub fn dc_mpp_power(&self, site: &SiteConditions) -> f64 {
        let temp_factor = 1.0 + self.power_temp_coeff * (site.module_c - 25.0);
        (self.dc_capacity_w * site.poa / 1000.0 * temp_factor * self.soiling).max(0.0)
    }

    /// Array MPP voltage (V): falls with module temperature and rises
    /// logarithmically with irradiance; 0 when there is no light.
    #[must_use]
    pub fn dc_mpp_voltage(&self, site: &SiteConditions) -> f64 {
        if site.poa < 1.0 {
            return 0.0;
        }
        let temp = 1.0 + self.voltage_temp_coeff * (site.module_c - 25.0);
        let irr = 1.0 + 0.035 * (site.poa / 1000.0).ln();
        (self.vmp_stc_v * temp * irr).max(0.0)
    }

    /// Full electrical state at `unix_ms` on `site`.
    #[must_use]
    pub fn state_at(&self, site_model: &SiteModel, unix_ms: i64) -> InverterState {
        let site = site_model.conditions(unix_ms);
        self.state_for(&site, unix_ms)
    }

    /// Full electrical state for already computed site conditions.
    #[must_use]
    pub fn state_for(&self, site: &SiteConditions, unix_ms: i64) -> InverterState {
        let rated = self.rated_ac_w.max(0.0);
        let mpp_w = self.dc_mpp_power(site);
        let mut dc_v = self.dc_mpp_voltage(site);
        let start_threshold = 2.0 * LOSS_FIXED * rated;
        let unclipped_ac = if mpp_w > start_threshold {
            self.ac_from_dc(mpp_w)
        } else {
            0.0
        };
        let (ac_w, dc_w, state) = if unclipped_ac <= 0.0 {
            let st = if site.sun.cos_zenith() > 0.0 && site.poa >= 1.0 {
                OperatingState::Starting
            } else {
                OperatingState::Sleeping
            };
            (0.0, 0.0, st)
        } else if unclipped_ac > rated {
            // Clipping: the inverter moves off the MPP towards open circuit.
            let dc = rated + self.losses_w(rated);
            let excess = (mpp_w / dc - 1.0).clamp(0.0, 1.0);
            dc_v *= 1.0 + 0.08 * excess;
            (rated, dc, OperatingState::Throttled)
        } else {
            (unclipped_ac, mpp_w, OperatingState::Mppt)
        };
        let dc_a = if dc_v > 0.0 { dc_w / dc_v } else { 0.0 };

        // Grid side: deterministic slow wander + per-device offsets.
        let t_s = unix_ms as f64 / 1000.0;
        let phase = |k: u64| unit(mix(self.seed, 0x9A1D_0005, k)) * 2.0 * PI;
        let grid_wander = 0.012 * (2.0 * PI * t_s / 617.0 + phase(0)).sin()
            + 0.004 * (2.0 * PI * t_s / 97.0 + phase(1)).sin();
        let load = if rated > 0.0 { ac_w / rated } else { 0.0 };
        let mut phase_v = [0.0; 3];
        for (i, v) in phase_v.iter_mut().enumerate() {
            let offset = (unit(mix(self.seed, 0x0FF5_0006, i as u64)) - 0.5) * 0.01;
            let ripple =
                0.002 * (2.0 * PI * t_s / (13.0 + i as f64 * 4.0) + phase(2 + i as u64)).sin();
            // Feeding in raises the voltage at the point of connection a little.
            *v = 230.0 * (1.0 + grid_wander + offset + ripple + 0.008 * load);
        }
        let line = |a: f64, b: f64| (a * a + b * b + a * b).sqrt();
        let line_v = [
            line(phase_v[0], phase_v[1]),
            line(phase_v[1], phase_v[2]),
            line(phase_v[2], phase_v[0]),
        ];
        let frequency_hz = 50.0
            + 0.03 * (2.0 * PI * t_s / 433.0 + phase(5)).sin()
            + 0.008 * (2.0 * PI * t_s / 29.0 + phase(6)).sin();

        let (pf, var) = if ac_w > 0.0 {
            let pf = self.pf_setpoint.clamp(0.1, 1.0);
            (pf, ac_w * (1.0 / (pf * pf) - 1.0).max(0.0).sqrt())
        } else {
            (1.0, 0.0)
        };
        let va = (ac_w * ac_w + var * var).sqrt();
        let mut phase_a = [0.0; 3];
        for (a, v) in phase_a.iter_mut().zip(phase_v) {
            *a = if v > 0.0 { va / 3.0 / v } else { 0.0 };
        }

        let cabinet_c = site.ambient_c + 3.0 + 12.0 * load;
        let heatsink_c = site.ambient_c + 2.0 + 30.0 * load;

        InverterState {
            site: *site,
            dc_power_w: dc_w,
            dc_voltage_v: dc_v,
            dc_current_a: dc_a,
            ac_power_w: ac_w,
            ac_apparent_power_va: va,
            ac_reactive_power_var: var,
            power_factor: pf,
            phase_current_a: phase_a,
            phase_voltage_v: phase_v,
            line_voltage_v: line_v,
            frequency_hz,
            cabinet_c,
            heatsink_c,
            state,
            events: 0,
        }
    }

    /// Seed-derived initial lifetime energy (Wh): 500..3000 full-load hours.
    #[must_use]
    pub fn initial_energy_wh(&self) -> f64 {
        let hours = 500.0 + 2500.0 * unit(mix(self.seed, 0xE4E6_0007, 0));
        (hours * self.rated_ac_w.max(0.0)).floor()
    }
}

/// Day of year (1-based) and fractional UTC hours for a unix time in ms.
fn day_of_year_and_hours(unix_ms: i64) -> (u32, f64) {
    let day_ms = unix_ms.rem_euclid(MS_PER_DAY);
    let hours = day_ms as f64 / 3_600_000.0;
    let doy = DateTime::from_timestamp_millis(unix_ms)
        .map(|dt| dt.ordinal())
        .unwrap_or(1);
    (doy, hours)
}

/// SplitMix64 finaliser.
fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Deterministic hash of (seed, stream, key).
pub(crate) fn mix(seed: u64, stream: u64, key: u64) -> u64 {
    splitmix(splitmix(seed ^ splitmix(stream)) ^ key)
}

/// Maps a hash to `[0, 1)`.
pub(crate) fn unit(h: u64) -> f64 {
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn smoothstep(edge0: f64, edge1: f64, x: f64) -> f64 {
    let t = ((x - edge0) / (edge1 - edge0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Smoothly interpolated value noise in `[0, 1)` over buckets of
/// `bucket_ms`.
fn value_noise(seed: u64, unix_ms: i64, bucket_ms: i64) -> f64 {
    let bucket = unix_ms.div_euclid(bucket_ms);
    let frac = unix_ms.rem_euclid(bucket_ms) as f64 / bucket_ms as f64;
    let a = unit(mix(seed, 0xC10D_0008, bucket as u64));
    let b = unit(mix(seed, 0xC10D_0008, bucket.wrapping_add(1) as u64));
    let t = frac * frac * (3.0 - 2.0 * frac);
    a + (b - a) * t
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-21T00:00:00Z.
    const JUNE21_MIDNIGHT_UTC_MS: i64 = 1_782_000_000_000;

    /// 2026-06-21 at `h` hours UTC.
    fn utc(h: f64) -> i64 {
        JUNE21_MIDNIGHT_UTC_MS + (h * 3_600_000.0) as i64
    }

    #[test]
    fn solar_noon_in_june_is_nearly_overhead_at_bhadla() {
        let site = SiteModel::default();
        // Solar noon at 71.92 E is ~07:14 UTC.
        let sun = site.solar_position(utc(7.0 + 14.0 / 60.0));
        assert!((sun.declination_deg - 23.44).abs() < 0.2, "{sun:?}");
        assert!(sun.hour_angle_deg.abs() < 1.0, "{sun:?}");
        assert!((sun.zenith_deg - (27.54 - 23.44)).abs() < 1.0, "{sun:?}");
        // Midnight local = ~19:14 UTC: deep below the horizon.
        let night = site.solar_position(utc(19.25));
        assert!(night.zenith_deg > 120.0, "{night:?}");
        assert_eq!(site.clear_sky_ghi(utc(19.25)), 0.0);
        let ghi = site.clear_sky_ghi(utc(7.25));
        assert!((1000.0..1060.0).contains(&ghi), "{ghi}");
    }

    #[test]
    fn clouds_are_deterministic_and_bounded() {
        let a = SiteModel::bhadla(7);
        let b = SiteModel::bhadla(7);
        let c = SiteModel::bhadla(8);
        let mut differs = false;
        for i in 0..20_000 {
            let t = utc(0.0) + i * 61_000;
            let fa = a.cloud_factor(t);
            assert_eq!(fa.to_bits(), b.cloud_factor(t).to_bits());
            assert!((0.25..=1.0).contains(&fa));
            differs |= fa != c.cloud_factor(t);
        }
        assert!(differs, "different seeds must give different weather");
    }

    #[test]
    fn ambient_and_module_temperatures_are_plausible() {
        let site = SiteModel::bhadla(1);
        for i in 0..48 {
            let t = site.ambient_temperature(utc(i as f64 * 0.5));
            assert!((18.0..=43.0).contains(&t), "{t}");
        }
        assert!(site.module_temperature(30.0, 1000.0) > 55.0);
    }

    #[test]
    fn efficiency_curve_peaks_near_98_percent() {
        let inv = InverterModel::new(100_000.0, 1);
        let peak = (1..100)
            .map(|i| inv.efficiency(i as f64 * 1000.0))
            .fold(0.0, f64::max);
        assert!((0.975..0.985).contains(&peak), "{peak}");
        assert!(inv.efficiency(2_000.0) < inv.efficiency(50_000.0));
        assert_eq!(inv.efficiency(0.0), 0.0);
    }

    #[test]
    fn clipping_and_night() {
        let site = SiteModel {
            clouds: false,
            ..SiteModel::default()
        };
        let inv = InverterModel {
            dc_capacity_w: 150_000.0,
            ..InverterModel::new(100_000.0, 3)
        };
        let noon = inv.state_at(&site, utc(7.25));
        assert_eq!(noon.state, OperatingState::Throttled);
        assert!((noon.ac_power_w - 100_000.0).abs() < 1e-6);
        assert!(noon.dc_power_w > noon.ac_power_w);
        let night = inv.state_at(&site, utc(20.0));
        assert_eq!(night.state, OperatingState::Sleeping);
        assert_eq!(night.ac_power_w, 0.0);
        assert_eq!(night.dc_voltage_v, 0.0);
    }
}

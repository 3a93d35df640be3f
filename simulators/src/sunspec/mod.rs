//! SunSpec register image of one three-phase inverter.
//!
//! Layout (0-based Modbus protocol addresses):
//!
//! | address       | content                                          |
//! |---------------|--------------------------------------------------|
//! | 40000-40001   | `SunS` marker `0x5375 0x6E53`                     |
//! | 40002-40003   | model 1 header: ID = 1, L = 66                    |
//! | 40004-40069   | model 1 body (Mn, Md, Opt, Vr, SN, DA, Pad)       |
//! | 40070-40071   | model 103 header: ID = 103, L = 50                |
//! | 40072-40121   | model 103 body (three-phase inverter, int+SF)     |
//! | 40122-40123   | end model: ID = 0xFFFF, L = 0                     |
//!
//! Scale factors are fixed for the lifetime of a device; they are chosen
//! once from the nameplate rating ([`ScaleFactors::for_rating`]) so that
//! every value fits its register type (e.g. W_SF = 1, i.e. 10 W steps, for
//! a 100 kW inverter, because 100 000 does not fit an int16).
//!
//! Points the simulator does not implement carry the SunSpec
//! "not implemented" values: int16 `0x8000`, uint16/enum16 `0xFFFF`,
//! acc32 `0`, bitfield32 `0xFFFFFFFF`, sunssf `0x8000`.

use crate::solar::InverterState;

/// First register of the SunSpec map (0-based protocol address).
pub const BASE_ADDRESS: u16 = 40000;
/// The `SunS` marker registers.
pub const SUNS_MARKER: [u16; 2] = [0x5375, 0x6E53];
/// Address of the model 1 (common) header.
pub const MODEL1_ADDRESS: u16 = BASE_ADDRESS + 2;
/// Length of the model 1 body.
pub const MODEL1_LENGTH: u16 = 66;
/// Address of the model 103 (three-phase inverter) header.
pub const MODEL103_ADDRESS: u16 = MODEL1_ADDRESS + 2 + MODEL1_LENGTH;
/// Length of the model 103 body.
pub const MODEL103_LENGTH: u16 = 50;
/// Address of the end model header.
pub const END_MODEL_ADDRESS: u16 = MODEL103_ADDRESS + 2 + MODEL103_LENGTH;
/// SunSpec end model ID.
pub const END_MODEL_ID: u16 = 0xFFFF;
/// Number of registers in the image.
pub const IMAGE_LEN: u16 = END_MODEL_ADDRESS + 2 - BASE_ADDRESS;

/// Not-implemented value of int16 and sunssf points.
pub const NI_I16: u16 = 0x8000;
/// Not-implemented value of uint16 and enum16 points.
pub const NI_U16: u16 = 0xFFFF;
/// Not-implemented value of acc32 points.
pub const NI_ACC32: u32 = 0;
/// Not-implemented value of uint32 and bitfield32 points.
pub const NI_U32: u32 = 0xFFFF_FFFF;

const M1: u16 = MODEL1_ADDRESS + 2;
const M103: u16 = MODEL103_ADDRESS + 2;

/// Model 1 point addresses (absolute).
pub mod model1 {
    use super::M1;
    /// Manufacturer, string of 16 registers.
    pub const MN: u16 = M1;
    /// Model, string of 16 registers.
    pub const MD: u16 = M1 + 16;
    /// Options, string of 8 registers.
    pub const OPT: u16 = M1 + 32;
    /// Version, string of 8 registers.
    pub const VR: u16 = M1 + 40;
    /// Serial number, string of 16 registers.
    pub const SN: u16 = M1 + 48;
    /// Device (Modbus unit) address.
    pub const DA: u16 = M1 + 64;
    /// Pad register.
    pub const PAD: u16 = M1 + 65;
}

/// Model 103 point addresses (absolute), in SunSpec order.
#[allow(missing_docs)]
pub mod model103 {
    use super::M103;
    pub const A: u16 = M103;
    pub const APH_A: u16 = M103 + 1;
    pub const APH_B: u16 = M103 + 2;
    pub const APH_C: u16 = M103 + 3;
    pub const A_SF: u16 = M103 + 4;
    pub const PPV_PH_AB: u16 = M103 + 5;
    pub const PPV_PH_BC: u16 = M103 + 6;
    pub const PPV_PH_CA: u16 = M103 + 7;
    pub const PH_V_PH_A: u16 = M103 + 8;
    pub const PH_V_PH_B: u16 = M103 + 9;
    pub const PH_V_PH_C: u16 = M103 + 10;
    pub const V_SF: u16 = M103 + 11;
    pub const W: u16 = M103 + 12;
    pub const W_SF: u16 = M103 + 13;
    pub const HZ: u16 = M103 + 14;
    pub const HZ_SF: u16 = M103 + 15;
    pub const VA: u16 = M103 + 16;
    pub const VA_SF: u16 = M103 + 17;
    pub const VAR: u16 = M103 + 18;
    pub const VAR_SF: u16 = M103 + 19;
    pub const PF: u16 = M103 + 20;
    pub const PF_SF: u16 = M103 + 21;
    pub const WH: u16 = M103 + 22;
    pub const WH_SF: u16 = M103 + 24;
    pub const DCA: u16 = M103 + 25;
    pub const DCA_SF: u16 = M103 + 26;
    pub const DCV: u16 = M103 + 27;
    pub const DCV_SF: u16 = M103 + 28;
    pub const DCW: u16 = M103 + 29;
    pub const DCW_SF: u16 = M103 + 30;
    pub const TMP_CAB: u16 = M103 + 31;
    pub const TMP_SNK: u16 = M103 + 32;
    pub const TMP_TRNS: u16 = M103 + 33;
    pub const TMP_OT: u16 = M103 + 34;
    pub const TMP_SF: u16 = M103 + 35;
    pub const ST: u16 = M103 + 36;
    pub const ST_VND: u16 = M103 + 37;
    pub const EVT1: u16 = M103 + 38;
    pub const EVT2: u16 = M103 + 40;
    pub const EVT_VND1: u16 = M103 + 42;
    pub const EVT_VND2: u16 = M103 + 44;
    pub const EVT_VND3: u16 = M103 + 46;
    pub const EVT_VND4: u16 = M103 + 48;
}

/// SunSpec register types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RegType {
    /// uint16, not implemented = 0xFFFF.
    U16,
    /// int16, not implemented = 0x8000.
    I16,
    /// uint32 (2 registers, high word first), not implemented = 0xFFFFFFFF.
    U32,
    /// acc32 accumulator (2 registers, high word first, wraps), not
    /// implemented = 0.
    Acc32,
    /// enum16, not implemented = 0xFFFF.
    Enum16,
    /// bitfield32 (2 registers, high word first), not implemented =
    /// 0xFFFFFFFF.
    Bitfield32,
    /// Scale factor (int16 power of ten), not implemented = 0x8000.
    Sunssf,
    /// ASCII string of the given number of registers, 2 chars per register,
    /// high byte first, NUL padded.
    Str(u16),
}

impl RegType {
    /// Number of registers the type occupies.
    #[must_use]
    pub fn register_count(self) -> u16 {
        match self {
            Self::U16 | Self::I16 | Self::Enum16 | Self::Sunssf => 1,
            Self::U32 | Self::Acc32 | Self::Bitfield32 => 2,
            Self::Str(n) => n,
        }
    }
}

/// Description of one point of the register map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PointDef {
    /// snake_case name used by dCMMS, e.g. `"ac_power"`.
    pub name: &'static str,
    /// SunSpec point ID, e.g. `"W"`.
    pub sunspec_id: &'static str,
    /// Absolute 0-based protocol address.
    pub address: u16,
    /// Register type.
    pub reg_type: RegType,
    /// Address of the scale-factor register, if the point is scaled.
    pub sf_address: Option<u16>,
    /// Unit of the scaled value (SunSpec units: "A", "V", "W", "Hz", "VA",
    /// "var", "Pct", "Wh", "C"; empty for enums and bitfields).
    pub unit: &'static str,
}

const fn point(
    name: &'static str,
    sunspec_id: &'static str,
    address: u16,
    reg_type: RegType,
    sf_address: Option<u16>,
    unit: &'static str,
) -> PointDef {
    PointDef {
        name,
        sunspec_id,
        address,
        reg_type,
        sf_address,
        unit,
    }
}

/// The model 103 measurement points that the simulator fills.
///
/// Note: `power_factor` follows SunSpec and is expressed in percent
/// (`Pct`, 100.0 = unity).
#[must_use]
pub fn inverter_points() -> Vec<PointDef> {
    use RegType::{Acc32, Bitfield32, Enum16, I16, U16};
    use model103 as m;
    vec![
        point("ac_current", "A", m::A, U16, Some(m::A_SF), "A"),
        point("ac_current_a", "AphA", m::APH_A, U16, Some(m::A_SF), "A"),
        point("ac_current_b", "AphB", m::APH_B, U16, Some(m::A_SF), "A"),
        point("ac_current_c", "AphC", m::APH_C, U16, Some(m::A_SF), "A"),
        point(
            "ac_voltage_ab",
            "PPVphAB",
            m::PPV_PH_AB,
            U16,
            Some(m::V_SF),
            "V",
        ),
        point(
            "ac_voltage_bc",
            "PPVphBC",
            m::PPV_PH_BC,
            U16,
            Some(m::V_SF),
            "V",
        ),
        point(
            "ac_voltage_ca",
            "PPVphCA",
            m::PPV_PH_CA,
            U16,
            Some(m::V_SF),
            "V",
        ),
        point(
            "ac_voltage_an",
            "PhVphA",
            m::PH_V_PH_A,
            U16,
            Some(m::V_SF),
            "V",
        ),
        point(
            "ac_voltage_bn",
            "PhVphB",
            m::PH_V_PH_B,
            U16,
            Some(m::V_SF),
            "V",
        ),
        point(
            "ac_voltage_cn",
            "PhVphC",
            m::PH_V_PH_C,
            U16,
            Some(m::V_SF),
            "V",
        ),
        point("ac_power", "W", m::W, I16, Some(m::W_SF), "W"),
        point("ac_frequency", "Hz", m::HZ, U16, Some(m::HZ_SF), "Hz"),
        point("ac_apparent_power", "VA", m::VA, I16, Some(m::VA_SF), "VA"),
        point(
            "ac_reactive_power",
            "VAr",
            m::VAR,
            I16,
            Some(m::VAR_SF),
            "var",
        ),
        point("power_factor", "PF", m::PF, I16, Some(m::PF_SF), "Pct"),
        point("ac_energy", "WH", m::WH, Acc32, Some(m::WH_SF), "Wh"),
        point("dc_current", "DCA", m::DCA, U16, Some(m::DCA_SF), "A"),
        point("dc_voltage", "DCV", m::DCV, U16, Some(m::DCV_SF), "V"),
        point("dc_power", "DCW", m::DCW, I16, Some(m::DCW_SF), "W"),
        point(
            "cabinet_temperature",
            "TmpCab",
            m::TMP_CAB,
            I16,
            Some(m::TMP_SF),
            "C",
        ),
        point(
            "heatsink_temperature",
            "TmpSnk",
            m::TMP_SNK,
            I16,
            Some(m::TMP_SF),
            "C",
        ),
        point("operating_state", "St", m::ST, Enum16, None, ""),
        point("event_flags", "Evt1", m::EVT1, Bitfield32, None, ""),
    ]
}

/// Every point of model 103 in SunSpec order: (ID, address, type).
pub const MODEL103_LAYOUT: &[(&str, u16, RegType)] = {
    use RegType::{Acc32, Bitfield32, Enum16, I16, Sunssf, U16};
    use model103 as m;
    &[
        ("A", m::A, U16),
        ("AphA", m::APH_A, U16),
        ("AphB", m::APH_B, U16),
        ("AphC", m::APH_C, U16),
        ("A_SF", m::A_SF, Sunssf),
        ("PPVphAB", m::PPV_PH_AB, U16),
        ("PPVphBC", m::PPV_PH_BC, U16),
        ("PPVphCA", m::PPV_PH_CA, U16),
        ("PhVphA", m::PH_V_PH_A, U16),
        ("PhVphB", m::PH_V_PH_B, U16),
        ("PhVphC", m::PH_V_PH_C, U16),
        ("V_SF", m::V_SF, Sunssf),
        ("W", m::W, I16),
        ("W_SF", m::W_SF, Sunssf),
        ("Hz", m::HZ, U16),
        ("Hz_SF", m::HZ_SF, Sunssf),
        ("VA", m::VA, I16),
        ("VA_SF", m::VA_SF, Sunssf),
        ("VAr", m::VAR, I16),
        ("VAr_SF", m::VAR_SF, Sunssf),
        ("PF", m::PF, I16),
        ("PF_SF", m::PF_SF, Sunssf),
        ("WH", m::WH, Acc32),
        ("WH_SF", m::WH_SF, Sunssf),
        ("DCA", m::DCA, U16),
        ("DCA_SF", m::DCA_SF, Sunssf),
        ("DCV", m::DCV, U16),
        ("DCV_SF", m::DCV_SF, Sunssf),
        ("DCW", m::DCW, I16),
        ("DCW_SF", m::DCW_SF, Sunssf),
        ("TmpCab", m::TMP_CAB, I16),
        ("TmpSnk", m::TMP_SNK, I16),
        ("TmpTrns", m::TMP_TRNS, I16),
        ("TmpOt", m::TMP_OT, I16),
        ("Tmp_SF", m::TMP_SF, Sunssf),
        ("St", m::ST, Enum16),
        ("StVnd", m::ST_VND, Enum16),
        ("Evt1", m::EVT1, Bitfield32),
        ("Evt2", m::EVT2, Bitfield32),
        ("EvtVnd1", m::EVT_VND1, Bitfield32),
        ("EvtVnd2", m::EVT_VND2, Bitfield32),
        ("EvtVnd3", m::EVT_VND3, Bitfield32),
        ("EvtVnd4", m::EVT_VND4, Bitfield32),
    ]
};

/// Error reading a register range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// The range is not (entirely) inside the register map.
    #[error("registers {addr}..{addr}+{count} are outside the map {base}..{end}")]
    OutOfRange {
        /// First requested register.
        addr: u16,
        /// Number of requested registers.
        count: u16,
        /// First register of the map.
        base: u16,
        /// One past the last register of the map.
        end: u32,
    },
}

/// A complete register image starting at [`BASE_ADDRESS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterImage {
    regs: Vec<u16>,
}

impl RegisterImage {
    /// An image of not-implemented registers with the static structure
    /// (marker, model headers, end model) filled in.
    #[must_use]
    pub fn skeleton() -> Self {
        let mut img = Self {
            regs: vec![NI_U16; usize::from(IMAGE_LEN)],
        };
        img.put(BASE_ADDRESS, &SUNS_MARKER);
        img.put(MODEL1_ADDRESS, &[1, MODEL1_LENGTH]);
        img.put(MODEL103_ADDRESS, &[103, MODEL103_LENGTH]);
        img.put(END_MODEL_ADDRESS, &[END_MODEL_ID, 0]);
        img.put(model1::DA, &[NI_U16]);
        img.put(model1::PAD, &[NI_I16]);
        for &(_, addr, ty) in MODEL103_LAYOUT {
            match ty {
                RegType::I16 | RegType::Sunssf => img.put(addr, &[NI_I16]),
                RegType::Acc32 => img.put_u32(addr, NI_ACC32),
                RegType::U32 | RegType::Bitfield32 => img.put_u32(addr, NI_U32),
                RegType::U16 | RegType::Enum16 => img.put(addr, &[NI_U16]),
                RegType::Str(n) => img.put(addr, &vec![0; usize::from(n)]),
            }
        }
        for (addr, n) in [
            (model1::MN, 16),
            (model1::MD, 16),
            (model1::OPT, 8),
            (model1::VR, 8),
            (model1::SN, 16),
        ] {
            img.put(addr, &vec![0; n]);
        }
        img
    }

    /// First address of the image.
    #[must_use]
    pub fn base(&self) -> u16 {
        BASE_ADDRESS
    }

    /// All registers, starting at [`BASE_ADDRESS`].
    /// An image of `regs` from [`BASE_ADDRESS`] on, without the SunSpec
    /// structure: another device's map served by the same server (the BESS
    /// rack's BMS map, [`crate::bess::bms`]).
    #[must_use]
    pub fn raw(regs: Vec<u16>) -> Self {
        Self { regs }
    }

    #[must_use]
    pub fn registers(&self) -> &[u16] {
        &self.regs
    }

    /// Reads `count` registers starting at absolute address `addr`.
    ///
    /// # Errors
    /// [`ReadError::OutOfRange`] if any register of the range is outside the
    /// map (a Modbus server maps it to exception IllegalDataAddress).
    pub fn read(&self, addr: u16, count: u16) -> Result<Vec<u16>, ReadError> {
        let err = || ReadError::OutOfRange {
            addr,
            count,
            base: BASE_ADDRESS,
            end: u32::from(BASE_ADDRESS) + self.regs.len() as u32,
        };
        let start = usize::from(addr.checked_sub(BASE_ADDRESS).ok_or_else(err)?);
        let end = start + usize::from(count);
        self.regs
            .get(start..end)
            .map(<[u16]>::to_vec)
            .ok_or_else(err)
    }

    /// One register, `None` outside the map.
    #[must_use]
    pub fn get(&self, addr: u16) -> Option<u16> {
        let i = usize::from(addr.checked_sub(BASE_ADDRESS)?);
        self.regs.get(i).copied()
    }

    /// A 32-bit value (high word first), `None` outside the map.
    #[must_use]
    pub fn get_u32(&self, addr: u16) -> Option<u32> {
        let hi = self.get(addr)?;
        let lo = self.get(addr.checked_add(1)?)?;
        Some(u32::from(hi) << 16 | u32::from(lo))
    }

    /// Decodes a string point (NUL padding stripped); `None` outside the map.
    #[must_use]
    pub fn get_string(&self, addr: u16, regs: u16) -> Option<String> {
        let words = self.read(addr, regs).ok()?;
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        Some(String::from_utf8_lossy(&bytes[..end]).into_owned())
    }

    /// Writes registers at absolute address `addr`; parts outside the map
    /// are ignored.
    pub(crate) fn put(&mut self, addr: u16, values: &[u16]) {
        for (i, v) in values.iter().enumerate() {
            let a = usize::from(addr) + i;
            if let Some(slot) = a
                .checked_sub(usize::from(BASE_ADDRESS))
                .and_then(|idx| self.regs.get_mut(idx))
            {
                *slot = *v;
            }
        }
    }

    fn put_u32(&mut self, addr: u16, v: u32) {
        self.put(addr, &[(v >> 16) as u16, v as u16]);
    }

    fn put_string(&mut self, addr: u16, regs: u16, s: &str) {
        let mut bytes: Vec<u8> = s
            .chars()
            .map(|c| {
                if c.is_ascii() && c != '\0' {
                    c as u8
                } else {
                    b'?'
                }
            })
            .take(usize::from(regs) * 2)
            .collect();
        bytes.resize(usize::from(regs) * 2, 0);
        let words: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect();
        self.put(addr, &words);
    }
}

/// Independent reference decoder: `raw * 10^sf` for numeric points,
/// the raw value for enums and bitfields, `None` for not-implemented
/// values, strings and addresses outside the map.
#[must_use]
pub fn expected_value(regs: &RegisterImage, p: &PointDef) -> Option<f64> {
    let raw: f64 = match p.reg_type {
        RegType::U16 | RegType::Enum16 => {
            let v = regs.get(p.address)?;
            if v == NI_U16 {
                return None;
            }
            f64::from(v)
        }
        RegType::I16 | RegType::Sunssf => {
            let v = regs.get(p.address)?;
            if v == NI_I16 {
                return None;
            }
            f64::from(v as i16)
        }
        RegType::U32 | RegType::Bitfield32 => {
            let v = regs.get_u32(p.address)?;
            if v == NI_U32 {
                return None;
            }
            f64::from(v)
        }
        RegType::Acc32 => {
            let v = regs.get_u32(p.address)?;
            if v == NI_ACC32 {
                return None;
            }
            f64::from(v)
        }
        RegType::Str(_) => return None,
    };
    match p.sf_address {
        None => Some(raw),
        Some(sf_addr) => {
            let sf = regs.get(sf_addr)?;
            if sf == NI_I16 {
                return None;
            }
            Some(raw * 10f64.powi(i32::from(sf as i16)))
        }
    }
}

/// Scale factors of one device (powers of ten).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct ScaleFactors {
    pub a: i16,
    pub v: i16,
    pub w: i16,
    pub hz: i16,
    pub va: i16,
    pub var: i16,
    pub pf: i16,
    pub wh: i16,
    pub dca: i16,
    pub dcv: i16,
    pub dcw: i16,
    pub tmp: i16,
}

/// Smallest scale factor `>= min_sf` such that `max_value / 10^sf <= limit`.
fn choose_sf(max_value: f64, limit: f64, min_sf: i16) -> i16 {
    let mut sf = min_sf;
    while sf < 10 && max_value.abs() / 10f64.powi(i32::from(sf)) > limit {
        sf += 1;
    }
    sf
}

impl ScaleFactors {
    /// Fixed scale factors for an inverter with the given AC rating and DC
    /// array capacity, with headroom so that no value can overflow.
    #[must_use]
    pub fn for_rating(rated_ac_w: f64, dc_capacity_w: f64) -> Self {
        let i16_max = f64::from(i16::MAX);
        let u16_max = f64::from(u16::MAX - 1);
        let ac_max = rated_ac_w.abs() * 1.2;
        let dc_max = dc_capacity_w.abs().max(rated_ac_w.abs()) * 1.3;
        Self {
            // Total current of 3 phases at a (low) 200 V phase voltage.
            a: choose_sf(ac_max / 200.0, u16_max, -2),
            v: choose_sf(600.0, u16_max, -1),
            w: choose_sf(ac_max, i16_max, 0),
            hz: -2,
            va: choose_sf(ac_max, i16_max, 0),
            var: choose_sf(ac_max, i16_max, 0),
            pf: -2,
            wh: 0,
            dca: choose_sf(dc_max / 400.0, u16_max, -2),
            dcv: choose_sf(1500.0, u16_max, -1),
            dcw: choose_sf(dc_max, i16_max, 0),
            tmp: -1,
        }
    }
}

/// The common-model identity of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceIdentity {
    /// Mn (max 32 chars).
    pub manufacturer: String,
    /// Md (max 32 chars).
    pub model: String,
    /// Opt (max 16 chars).
    pub options: String,
    /// Vr (max 16 chars).
    pub version: String,
    /// SN (max 32 chars).
    pub serial: String,
    /// DA: the Modbus unit id.
    pub device_address: u16,
}

fn enc_u16(value: f64, sf: i16) -> u16 {
    let v = (value / 10f64.powi(i32::from(sf))).round();
    if v.is_finite() {
        v.clamp(0.0, f64::from(u16::MAX - 1)) as u16
    } else {
        NI_U16
    }
}

fn enc_i16(value: f64, sf: i16) -> u16 {
    let v = (value / 10f64.powi(i32::from(sf))).round();
    if v.is_finite() {
        (v.clamp(-f64::from(i16::MAX), f64::from(i16::MAX)) as i16) as u16
    } else {
        NI_I16
    }
}

/// Builds the complete register image for one inverter state.
///
/// `energy_wh` is the lifetime AC energy; it is written as acc32 in units
/// of `10^sf.wh` Wh and wraps at 2³².
#[must_use]
pub fn build_image(
    id: &DeviceIdentity,
    sf: &ScaleFactors,
    st: &InverterState,
    energy_wh: u64,
) -> RegisterImage {
    use model103 as m;
    let mut img = RegisterImage::skeleton();

    img.put_string(model1::MN, 16, &id.manufacturer);
    img.put_string(model1::MD, 16, &id.model);
    img.put_string(model1::OPT, 8, &id.options);
    img.put_string(model1::VR, 8, &id.version);
    img.put_string(model1::SN, 16, &id.serial);
    img.put(model1::DA, &[id.device_address]);
    img.put(model1::PAD, &[NI_I16]);

    let [ia, ib, ic] = st.phase_current_a;
    img.put(
        m::A,
        &[
            enc_u16(st.ac_current_a(), sf.a),
            enc_u16(ia, sf.a),
            enc_u16(ib, sf.a),
            enc_u16(ic, sf.a),
            sf.a as u16,
        ],
    );
    let [vab, vbc, vca] = st.line_voltage_v;
    let [va, vb, vc] = st.phase_voltage_v;
    img.put(
        m::PPV_PH_AB,
        &[
            enc_u16(vab, sf.v),
            enc_u16(vbc, sf.v),
            enc_u16(vca, sf.v),
            enc_u16(va, sf.v),
            enc_u16(vb, sf.v),
            enc_u16(vc, sf.v),
            sf.v as u16,
        ],
    );
    img.put(
        m::W,
        &[
            enc_i16(st.ac_power_w, sf.w),
            sf.w as u16,
            enc_u16(st.frequency_hz, sf.hz),
            sf.hz as u16,
            enc_i16(st.ac_apparent_power_va, sf.va),
            sf.va as u16,
            enc_i16(st.ac_reactive_power_var, sf.var),
            sf.var as u16,
            enc_i16(st.power_factor * 100.0, sf.pf),
            sf.pf as u16,
        ],
    );
    let scaled_wh = energy_wh / 10u64.pow(u32::from(sf.wh.max(0).unsigned_abs()));
    img.put_u32(m::WH, (scaled_wh % (1u64 << 32)) as u32);
    img.put(m::WH_SF, &[sf.wh as u16]);
    img.put(
        m::DCA,
        &[
            enc_u16(st.dc_current_a, sf.dca),
            sf.dca as u16,
            enc_u16(st.dc_voltage_v, sf.dcv),
            sf.dcv as u16,
            enc_i16(st.dc_power_w, sf.dcw),
            sf.dcw as u16,
            enc_i16(st.cabinet_c, sf.tmp),
            enc_i16(st.heatsink_c, sf.tmp),
            NI_I16, // TmpTrns: no transformer temperature sensor
            NI_I16, // TmpOt: no other temperature sensor
            sf.tmp as u16,
            st.state.code(),
            NI_U16, // StVnd: no vendor states
        ],
    );
    img.put_u32(m::EVT1, st.events);
    img.put_u32(m::EVT2, 0); // reserved by SunSpec, always 0
    for addr in [m::EVT_VND1, m::EVT_VND2, m::EVT_VND3, m::EVT_VND4] {
        img.put_u32(addr, NI_U32);
    }
    img
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn layout_constants_match_sunspec() {
        assert_eq!(MODEL103_ADDRESS, 40070);
        assert_eq!(model103::W, 40084);
        assert_eq!(model103::WH, 40094);
        assert_eq!(model103::ST, 40108);
        assert_eq!(model103::EVT_VND4 + 2, END_MODEL_ADDRESS);
        assert_eq!(END_MODEL_ADDRESS, 40122);
        assert_eq!(IMAGE_LEN, 124);
    }

    #[test]
    fn model103_layout_is_contiguous_and_complete() {
        let mut next = M103;
        for &(id, addr, ty) in MODEL103_LAYOUT {
            assert_eq!(addr, next, "{id}");
            next += ty.register_count();
        }
        assert_eq!(next, M103 + MODEL103_LENGTH);
        assert_eq!(MODEL103_LAYOUT.len(), 43);
        for p in inverter_points() {
            let entry = MODEL103_LAYOUT
                .iter()
                .find(|e| e.0 == p.sunspec_id)
                .unwrap();
            assert_eq!((entry.1, entry.2), (p.address, p.reg_type), "{p:?}");
        }
    }

    #[test]
    fn points_do_not_overlap_and_fit_model_103() {
        let pts = inverter_points();
        let mut used = std::collections::HashSet::new();
        for p in &pts {
            for a in p.address..p.address + p.reg_type.register_count() {
                assert!((M103..END_MODEL_ADDRESS).contains(&a), "{p:?}");
                assert!(used.insert(a), "overlap at {a}: {p:?}");
            }
            if let Some(sf) = p.sf_address {
                assert!((M103..END_MODEL_ADDRESS).contains(&sf));
            }
        }
        for name in [
            "ac_current",
            "ac_voltage_an",
            "ac_voltage_bn",
            "ac_voltage_cn",
            "ac_voltage_ab",
            "ac_power",
            "ac_frequency",
            "ac_apparent_power",
            "ac_reactive_power",
            "power_factor",
            "ac_energy",
            "dc_current",
            "dc_voltage",
            "dc_power",
            "cabinet_temperature",
            "heatsink_temperature",
            "operating_state",
            "event_flags",
        ] {
            assert!(pts.iter().any(|p| p.name == name), "missing {name}");
        }
    }

    #[test]
    fn read_bounds() {
        let img = RegisterImage::skeleton();
        assert_eq!(img.read(40000, 2).unwrap(), SUNS_MARKER.to_vec());
        assert_eq!(img.read(40122, 2).unwrap(), vec![0xFFFF, 0]);
        assert!(img.read(39999, 2).is_err());
        assert!(img.read(40123, 2).is_err());
        assert!(img.read(0, 1).is_err());
        assert!(img.read(u16::MAX, u16::MAX).is_err());
        assert_eq!(img.read(40124, 0), Ok(vec![]));
    }

    #[test]
    fn strings_are_nul_padded_high_byte_first() {
        let mut img = RegisterImage::skeleton();
        img.put_string(model1::MN, 16, "dCMMS");
        assert_eq!(img.get(model1::MN), Some(u16::from_be_bytes(*b"dC")));
        assert_eq!(img.get(model1::MN + 2), Some(u16::from_be_bytes([b'S', 0])));
        assert_eq!(img.get(model1::MN + 3), Some(0));
        assert_eq!(img.get_string(model1::MN, 16).as_deref(), Some("dCMMS"));
    }

    #[test]
    fn scale_factors_fit_a_100_kw_inverter() {
        let sf = ScaleFactors::for_rating(100_000.0, 120_000.0);
        assert_eq!(sf.w, 1);
        assert_eq!(sf.a, -2);
        assert_eq!(sf.v, -1);
        assert_eq!(sf.hz, -2);
        assert_eq!(sf.dcv, -1);
        let big = ScaleFactors::for_rating(3_000_000.0, 3_600_000.0);
        assert!(3_600_000.0 / 10f64.powi(i32::from(big.w)) <= 32767.0);
    }

    #[test]
    fn not_implemented_values_decode_to_none() {
        let img = RegisterImage::skeleton();
        for p in inverter_points() {
            assert_eq!(expected_value(&img, &p), None, "{p:?}");
        }
    }
}

//! SunSpec auto-discovery: find the `SunS` marker, walk the model chain and
//! turn the models this module knows into point configurations.
//!
//! Layouts are the fixed blocks of the SunSpec Information Model
//! (models 1, 101–103, 111–113, 120–124, 160 with its repeating modules).
//! Offsets are derived from the sizes of the points in order, so a table is
//! checked against the model's published length ([`layout_len`] tests).
//! Unknown models are skipped by their length. Strings and pads become no
//! points; scale factors become the `scale_factor_address` of the points
//! they scale.
//!
//! Point names: `m<model>.<SunSpec id>` (`m103.W`), `m<model>_<n>.<id>`
//! for the n-th (n ≥ 2) instance of the same model, and
//! `m160.<k>.<id>` for module k (1-based) of model 160.

use crate::config::{DataType, Order, PointConfig, RegisterTable};
use std::future::Future;

/// Where the `SunS` marker may start, in the order they are tried.
pub const BASE_ADDRESSES: [u16; 3] = [40000, 50000, 0];
/// `SunS`.
pub const MARKER: [u16; 2] = [0x5375, 0x6E53];
/// ID of the end model.
pub const END_MODEL: u16 = 0xFFFF;
/// A chain longer than this is treated as broken (a loop or noise).
pub const MAX_MODELS: usize = 256;

/// Why discovery failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("no SunS marker at 40000, 50000 or 0")]
    NoMarker,
    #[error("model chain runs past register 65535 at model {index}")]
    ChainOverflow { index: usize },
    #[error("model chain has more than {MAX_MODELS} models (no end model)")]
    TooManyModels,
    #[error("device answered an exception reading the model header at {address}")]
    BrokenChain { address: u16 },
    #[error("reading registers failed: {0}")]
    Read(String),
}

/// Reads holding registers; `Ok(None)` is a Modbus exception reply.
pub trait ReadHolding {
    fn read_holding(
        &mut self,
        addr: u16,
        count: u16,
    ) -> impl Future<Output = Result<Option<Vec<u16>>, DiscoveryError>> + Send;
}

/// One model found in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelInstance {
    pub id: u16,
    /// Address of the model's ID register; the body starts 2 later.
    pub address: u16,
    /// Body length in registers (the header's L).
    pub length: u16,
}

/// Finds the marker and walks the chain up to the end model.
///
/// # Errors
/// [`DiscoveryError`]; a transport error is returned as is so the caller
/// reconnects.
pub async fn walk<R: ReadHolding>(r: &mut R) -> Result<(u16, Vec<ModelInstance>), DiscoveryError> {
    let mut base = None;
    for b in BASE_ADDRESSES {
        if r.read_holding(b, 2).await?.as_deref() == Some(&MARKER[..]) {
            base = Some(b);
            break;
        }
    }
    let base = base.ok_or(DiscoveryError::NoMarker)?;
    let mut models = Vec::new();
    let mut addr = u32::from(base) + 2;
    loop {
        if models.len() > MAX_MODELS {
            return Err(DiscoveryError::TooManyModels);
        }
        let at = u16::try_from(addr).map_err(|_| DiscoveryError::ChainOverflow {
            index: models.len(),
        })?;
        if at == u16::MAX {
            return Err(DiscoveryError::ChainOverflow {
                index: models.len(),
            });
        }
        let hdr = r
            .read_holding(at, 2)
            .await?
            .ok_or(DiscoveryError::BrokenChain { address: at })?;
        let (Some(&id), Some(&length)) = (hdr.first(), hdr.get(1)) else {
            return Err(DiscoveryError::Read(format!("short reply at {at}")));
        };
        if id == END_MODEL {
            break;
        }
        models.push(ModelInstance {
            id,
            address: at,
            length,
        });
        addr += 2 + u32::from(length);
    }
    Ok((base, models))
}

/// SunSpec point types (only what the layouts need).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum T {
    U16,
    I16,
    U32,
    Acc32,
    Acc64,
    F32,
    Enum16,
    Bf16,
    Bf32,
    Sf,
    Str(u16),
    Pad,
}

impl T {
    fn size(self) -> u16 {
        match self {
            T::U16 | T::I16 | T::Enum16 | T::Bf16 | T::Sf | T::Pad => 1,
            T::U32 | T::Acc32 | T::F32 | T::Bf32 => 2,
            T::Acc64 => 4,
            T::Str(n) => n,
        }
    }

    fn data_type(self) -> Option<DataType> {
        Some(match self {
            T::U16 | T::Enum16 | T::Bf16 => DataType::U16,
            T::I16 => DataType::I16,
            T::U32 | T::Bf32 => DataType::U32,
            T::Acc32 => DataType::Acc32,
            T::Acc64 => DataType::U64,
            T::F32 => DataType::F32,
            T::Sf | T::Str(_) | T::Pad => return None,
        })
    }
}

/// (SunSpec id, type, scale-factor id, unit).
type Def = (&'static str, T, Option<&'static str>, &'static str);

const COMMON: &[Def] = &[
    ("Mn", T::Str(16), None, ""),
    ("Md", T::Str(16), None, ""),
    ("Opt", T::Str(8), None, ""),
    ("Vr", T::Str(8), None, ""),
    ("SN", T::Str(16), None, ""),
    ("DA", T::U16, None, ""),
    ("Pad", T::Pad, None, ""),
];

/// Models 101, 102, 103 (integer + scale factor).
const INVERTER_INT: &[Def] = &[
    ("A", T::U16, Some("A_SF"), "A"),
    ("AphA", T::U16, Some("A_SF"), "A"),
    ("AphB", T::U16, Some("A_SF"), "A"),
    ("AphC", T::U16, Some("A_SF"), "A"),
    ("A_SF", T::Sf, None, ""),
    ("PPVphAB", T::U16, Some("V_SF"), "V"),
    ("PPVphBC", T::U16, Some("V_SF"), "V"),
    ("PPVphCA", T::U16, Some("V_SF"), "V"),
    ("PhVphA", T::U16, Some("V_SF"), "V"),
    ("PhVphB", T::U16, Some("V_SF"), "V"),
    ("PhVphC", T::U16, Some("V_SF"), "V"),
    ("V_SF", T::Sf, None, ""),
    ("W", T::I16, Some("W_SF"), "W"),
    ("W_SF", T::Sf, None, ""),
    ("Hz", T::U16, Some("Hz_SF"), "Hz"),
    ("Hz_SF", T::Sf, None, ""),
    ("VA", T::I16, Some("VA_SF"), "VA"),
    ("VA_SF", T::Sf, None, ""),
    ("VAr", T::I16, Some("VAr_SF"), "var"),
    ("VAr_SF", T::Sf, None, ""),
    ("PF", T::I16, Some("PF_SF"), "Pct"),
    ("PF_SF", T::Sf, None, ""),
    ("WH", T::Acc32, Some("WH_SF"), "Wh"),
    ("WH_SF", T::Sf, None, ""),
    ("DCA", T::U16, Some("DCA_SF"), "A"),
    ("DCA_SF", T::Sf, None, ""),
    ("DCV", T::U16, Some("DCV_SF"), "V"),
    ("DCV_SF", T::Sf, None, ""),
    ("DCW", T::I16, Some("DCW_SF"), "W"),
    ("DCW_SF", T::Sf, None, ""),
    ("TmpCab", T::I16, Some("Tmp_SF"), "C"),
    ("TmpSnk", T::I16, Some("Tmp_SF"), "C"),
    ("TmpTrns", T::I16, Some("Tmp_SF"), "C"),
    ("TmpOt", T::I16, Some("Tmp_SF"), "C"),
    ("Tmp_SF", T::Sf, None, ""),
    ("St", T::Enum16, None, ""),
    ("StVnd", T::Enum16, None, ""),
    ("Evt1", T::Bf32, None, ""),
    ("Evt2", T::Bf32, None, ""),
    ("EvtVnd1", T::Bf32, None, ""),
    ("EvtVnd2", T::Bf32, None, ""),
    ("EvtVnd3", T::Bf32, None, ""),
    ("EvtVnd4", T::Bf32, None, ""),
];

/// Models 111, 112, 113 (float).
const INVERTER_FLOAT: &[Def] = &[
    ("A", T::F32, None, "A"),
    ("AphA", T::F32, None, "A"),
    ("AphB", T::F32, None, "A"),
    ("AphC", T::F32, None, "A"),
    ("PPVphAB", T::F32, None, "V"),
    ("PPVphBC", T::F32, None, "V"),
    ("PPVphCA", T::F32, None, "V"),
    ("PhVphA", T::F32, None, "V"),
    ("PhVphB", T::F32, None, "V"),
    ("PhVphC", T::F32, None, "V"),
    ("W", T::F32, None, "W"),
    ("Hz", T::F32, None, "Hz"),
    ("VA", T::F32, None, "VA"),
    ("VAr", T::F32, None, "var"),
    ("PF", T::F32, None, "Pct"),
    ("WH", T::F32, None, "Wh"),
    ("DCA", T::F32, None, "A"),
    ("DCV", T::F32, None, "V"),
    ("DCW", T::F32, None, "W"),
    ("TmpCab", T::F32, None, "C"),
    ("TmpSnk", T::F32, None, "C"),
    ("TmpTrns", T::F32, None, "C"),
    ("TmpOt", T::F32, None, "C"),
    ("St", T::Enum16, None, ""),
    ("StVnd", T::Enum16, None, ""),
    ("Evt1", T::Bf32, None, ""),
    ("Evt2", T::Bf32, None, ""),
    ("EvtVnd1", T::Bf32, None, ""),
    ("EvtVnd2", T::Bf32, None, ""),
    ("EvtVnd3", T::Bf32, None, ""),
    ("EvtVnd4", T::Bf32, None, ""),
];

/// Model 120, nameplate ratings.
const NAMEPLATE: &[Def] = &[
    ("DERTyp", T::Enum16, None, ""),
    ("WRtg", T::U16, Some("WRtg_SF"), "W"),
    ("WRtg_SF", T::Sf, None, ""),
    ("VARtg", T::U16, Some("VARtg_SF"), "VA"),
    ("VARtg_SF", T::Sf, None, ""),
    ("VArRtgQ1", T::I16, Some("VArRtg_SF"), "var"),
    ("VArRtgQ2", T::I16, Some("VArRtg_SF"), "var"),
    ("VArRtgQ3", T::I16, Some("VArRtg_SF"), "var"),
    ("VArRtgQ4", T::I16, Some("VArRtg_SF"), "var"),
    ("VArRtg_SF", T::Sf, None, ""),
    ("ARtg", T::U16, Some("ARtg_SF"), "A"),
    ("ARtg_SF", T::Sf, None, ""),
    ("PFRtgQ1", T::I16, Some("PFRtg_SF"), "cos()"),
    ("PFRtgQ2", T::I16, Some("PFRtg_SF"), "cos()"),
    ("PFRtgQ3", T::I16, Some("PFRtg_SF"), "cos()"),
    ("PFRtgQ4", T::I16, Some("PFRtg_SF"), "cos()"),
    ("PFRtg_SF", T::Sf, None, ""),
    ("WHRtg", T::U16, Some("WHRtg_SF"), "Wh"),
    ("WHRtg_SF", T::Sf, None, ""),
    ("AhrRtg", T::U16, Some("AhrRtg_SF"), "AH"),
    ("AhrRtg_SF", T::Sf, None, ""),
    ("MaxChaRte", T::U16, Some("MaxChaRte_SF"), "W"),
    ("MaxChaRte_SF", T::Sf, None, ""),
    ("MaxDisChaRte", T::U16, Some("MaxDisChaRte_SF"), "W"),
    ("MaxDisChaRte_SF", T::Sf, None, ""),
    ("Pad", T::Pad, None, ""),
];

/// Model 121, basic settings.
const SETTINGS: &[Def] = &[
    ("WMax", T::U16, Some("WMax_SF"), "W"),
    ("VRef", T::U16, Some("VRef_SF"), "V"),
    ("VRefOfs", T::I16, Some("VRefOfs_SF"), "V"),
    ("VMax", T::U16, Some("VMinMax_SF"), "V"),
    ("VMin", T::U16, Some("VMinMax_SF"), "V"),
    ("VAMax", T::U16, Some("VAMax_SF"), "VA"),
    ("VArMaxQ1", T::I16, Some("VArMax_SF"), "var"),
    ("VArMaxQ2", T::I16, Some("VArMax_SF"), "var"),
    ("VArMaxQ3", T::I16, Some("VArMax_SF"), "var"),
    ("VArMaxQ4", T::I16, Some("VArMax_SF"), "var"),
    ("WGra", T::U16, Some("WGra_SF"), "% WMax/sec"),
    ("PFMinQ1", T::I16, Some("PFMin_SF"), "cos()"),
    ("PFMinQ2", T::I16, Some("PFMin_SF"), "cos()"),
    ("PFMinQ3", T::I16, Some("PFMin_SF"), "cos()"),
    ("PFMinQ4", T::I16, Some("PFMin_SF"), "cos()"),
    ("VArAct", T::Enum16, None, ""),
    ("ClcTotVA", T::Enum16, None, ""),
    ("MaxRmpRte", T::U16, Some("MaxRmpRte_SF"), "% WGra"),
    ("ECPNomHz", T::U16, Some("ECPNomHz_SF"), "Hz"),
    ("ConnPh", T::Enum16, None, ""),
    ("WMax_SF", T::Sf, None, ""),
    ("VRef_SF", T::Sf, None, ""),
    ("VRefOfs_SF", T::Sf, None, ""),
    ("VMinMax_SF", T::Sf, None, ""),
    ("VAMax_SF", T::Sf, None, ""),
    ("VArMax_SF", T::Sf, None, ""),
    ("WGra_SF", T::Sf, None, ""),
    ("PFMin_SF", T::Sf, None, ""),
    ("MaxRmpRte_SF", T::Sf, None, ""),
    ("ECPNomHz_SF", T::Sf, None, ""),
];

/// Model 122, measurements and status.
const STATUS: &[Def] = &[
    ("PVConn", T::Bf16, None, ""),
    ("StorConn", T::Bf16, None, ""),
    ("ECPConn", T::Bf16, None, ""),
    ("ActWh", T::Acc64, None, "Wh"),
    ("ActVAh", T::Acc64, None, "VAh"),
    ("ActVArhQ1", T::Acc64, None, "varh"),
    ("ActVArhQ2", T::Acc64, None, "varh"),
    ("ActVArhQ3", T::Acc64, None, "varh"),
    ("ActVArhQ4", T::Acc64, None, "varh"),
    ("VArAval", T::I16, Some("VArAval_SF"), "var"),
    ("VArAval_SF", T::Sf, None, ""),
    ("WAval", T::U16, Some("WAval_SF"), "W"),
    ("WAval_SF", T::Sf, None, ""),
    ("StSetLimMsk", T::Bf32, None, ""),
    ("StActCtl", T::Bf32, None, ""),
    ("TmSrc", T::Str(4), None, ""),
    ("Tms", T::U32, None, "Secs"),
    ("RtSt", T::Bf16, None, ""),
    ("Ris", T::U16, Some("Ris_SF"), "ohms"),
    ("Ris_SF", T::Sf, None, ""),
];

/// Model 123, immediate controls.
const CONTROLS: &[Def] = &[
    ("Conn_WinTms", T::U16, None, "Secs"),
    ("Conn_RvrtTms", T::U16, None, "Secs"),
    ("Conn", T::Enum16, None, ""),
    ("WMaxLimPct", T::U16, Some("WMaxLimPct_SF"), "% WMax"),
    ("WMaxLimPct_WinTms", T::U16, None, "Secs"),
    ("WMaxLimPct_RvrtTms", T::U16, None, "Secs"),
    ("WMaxLimPct_RmpTms", T::U16, None, "Secs"),
    ("WMaxLim_Ena", T::Enum16, None, ""),
    ("OutPFSet", T::I16, Some("OutPFSet_SF"), "cos()"),
    ("OutPFSet_WinTms", T::U16, None, "Secs"),
    ("OutPFSet_RvrtTms", T::U16, None, "Secs"),
    ("OutPFSet_RmpTms", T::U16, None, "Secs"),
    ("OutPFSet_Ena", T::Enum16, None, ""),
    ("VArWMaxPct", T::I16, Some("VArPct_SF"), "% WMax"),
    ("VArMaxPct", T::I16, Some("VArPct_SF"), "% VArMax"),
    ("VArAvalPct", T::I16, Some("VArPct_SF"), "% VArAval"),
    ("VArPct_WinTms", T::U16, None, "Secs"),
    ("VArPct_RvrtTms", T::U16, None, "Secs"),
    ("VArPct_RmpTms", T::U16, None, "Secs"),
    ("VArPct_Mod", T::Enum16, None, ""),
    ("VArPct_Ena", T::Enum16, None, ""),
    ("WMaxLimPct_SF", T::Sf, None, ""),
    ("OutPFSet_SF", T::Sf, None, ""),
    ("VArPct_SF", T::Sf, None, ""),
];

/// Model 124, storage.
const STORAGE: &[Def] = &[
    ("WChaMax", T::U16, Some("WChaMax_SF"), "W"),
    ("WChaGra", T::U16, Some("WChaDisChaGra_SF"), "% WChaMax/sec"),
    (
        "WDisChaGra",
        T::U16,
        Some("WChaDisChaGra_SF"),
        "% WChaMax/sec",
    ),
    ("StorCtl_Mod", T::Bf16, None, ""),
    ("VAChaMax", T::U16, Some("VAChaMax_SF"), "VA"),
    ("MinRsvPct", T::U16, Some("MinRsvPct_SF"), "% WChaMax"),
    ("ChaState", T::U16, Some("ChaState_SF"), "% AhrRtg"),
    ("StorAval", T::U16, Some("StorAval_SF"), "AH"),
    ("InBatV", T::U16, Some("InBatV_SF"), "V"),
    ("ChaSt", T::Enum16, None, ""),
    ("OutWRte", T::I16, Some("InOutWRte_SF"), "% WDisChaMax"),
    ("InWRte", T::I16, Some("InOutWRte_SF"), "% WChaMax"),
    ("InOutWRte_WinTms", T::U16, None, "Secs"),
    ("InOutWRte_RvrtTms", T::U16, None, "Secs"),
    ("InOutWRte_RmpTms", T::U16, None, "Secs"),
    ("ChaGriSet", T::Enum16, None, ""),
    ("WChaMax_SF", T::Sf, None, ""),
    ("WChaDisChaGra_SF", T::Sf, None, ""),
    ("VAChaMax_SF", T::Sf, None, ""),
    ("MinRsvPct_SF", T::Sf, None, ""),
    ("ChaState_SF", T::Sf, None, ""),
    ("StorAval_SF", T::Sf, None, ""),
    ("InBatV_SF", T::Sf, None, ""),
    ("InOutWRte_SF", T::Sf, None, ""),
];

/// Model 160 fixed block; the module scale factors live here.
const MPPT_FIXED: &[Def] = &[
    ("DCA_SF", T::Sf, None, ""),
    ("DCV_SF", T::Sf, None, ""),
    ("DCW_SF", T::Sf, None, ""),
    ("DCWH_SF", T::Sf, None, ""),
    ("Evt", T::Bf32, None, ""),
    ("N", T::U16, None, ""),
    ("TmsPer", T::U16, None, ""),
];

/// Model 160 repeating block, one per MPPT module.
const MPPT_MODULE: &[Def] = &[
    ("ID", T::U16, None, ""),
    ("IDStr", T::Str(8), None, ""),
    ("DCA", T::U16, Some("DCA_SF"), "A"),
    ("DCV", T::U16, Some("DCV_SF"), "V"),
    ("DCW", T::U16, Some("DCW_SF"), "W"),
    ("DCWH", T::Acc32, Some("DCWH_SF"), "Wh"),
    ("Tms", T::U32, None, "Secs"),
    ("Tmp", T::I16, None, "C"),
    ("DCSt", T::Enum16, None, ""),
    ("DCEvt", T::Bf32, None, ""),
];

/// The fixed-block layout of a known model.
fn layout(id: u16) -> Option<&'static [Def]> {
    Some(match id {
        1 => COMMON,
        101..=103 => INVERTER_INT,
        111..=113 => INVERTER_FLOAT,
        120 => NAMEPLATE,
        121 => SETTINGS,
        122 => STATUS,
        123 => CONTROLS,
        124 => STORAGE,
        160 => MPPT_FIXED,
        _ => return None,
    })
}

/// Registers a layout occupies.
fn layout_len(defs: &[Def]) -> u16 {
    defs.iter().map(|d| d.1.size()).sum()
}

/// Offsets of each point of `defs` from `start`, by id.
fn offsets(defs: &[Def], start: u32) -> Vec<(&'static str, u32)> {
    let mut at = start;
    defs.iter()
        .map(|d| {
            let here = at;
            at += u32::from(d.1.size());
            (d.0, here)
        })
        .collect()
}

/// Points of `defs` laid out from `start`; scale factors are looked up in
/// `sf_table` (the same block, or model 160's fixed block for its modules).
fn block_points(
    prefix: &str,
    defs: &[Def],
    start: u32,
    end: u32,
    sf_table: &[(&'static str, u32)],
    out: &mut Vec<PointConfig>,
) {
    for ((id, t, sf, unit), (_, addr)) in defs.iter().zip(offsets(defs, start)) {
        let Some(data_type) = t.data_type() else {
            continue;
        };
        if addr + u32::from(t.size()) > end {
            continue;
        }
        // The chain walk guarantees the model fits below 65536.
        let Ok(address) = u16::try_from(addr) else {
            continue;
        };
        let scale_factor_address = match sf {
            None => None,
            // A point whose scale factor is missing cannot be decoded.
            Some(sf) => match sf_table.iter().find(|(n, _)| *n == *sf) {
                Some((_, a)) if *a < end => u16::try_from(*a).ok(),
                _ => continue,
            },
        };
        out.push(PointConfig {
            name: format!("{prefix}.{id}"),
            address,
            table: RegisterTable::Holding,
            data_type,
            byte_order: Order::Big,
            word_order: Order::Big,
            scale: 1.0,
            offset: 0.0,
            scale_factor_address,
            unit: (*unit).to_string(),
        });
    }
}

/// The points of every known model in `models`. Points that would lie
/// beyond a model's length are left out (model 1 with L = 65 has no pad).
pub fn points_for(models: &[ModelInstance]) -> Vec<PointConfig> {
    let mut out = Vec::new();
    let mut seen: Vec<u16> = Vec::new();
    for m in models {
        let Some(defs) = layout(m.id) else {
            tracing::debug!(
                model = m.id,
                address = m.address,
                "unknown SunSpec model skipped"
            );
            continue;
        };
        if m.length < layout_len(defs) {
            tracing::warn!(
                model = m.id,
                length = m.length,
                expected = layout_len(defs),
                "SunSpec model shorter than its fixed block; points past its end left out"
            );
        }
        let n = seen.iter().filter(|&&x| x == m.id).count() + 1;
        seen.push(m.id);
        let prefix = if n == 1 {
            format!("m{}", m.id)
        } else {
            format!("m{}_{n}", m.id)
        };
        let body = u32::from(m.address) + 2;
        let end = body + u32::from(m.length);
        let fixed = offsets(defs, body);
        block_points(&prefix, defs, body, end, &fixed, &mut out);
        if m.id == 160 {
            let module_len = u32::from(layout_len(MPPT_MODULE));
            let fixed_len = u32::from(layout_len(defs));
            let modules = u32::from(m.length).saturating_sub(fixed_len) / module_len;
            for k in 0..modules {
                let start = body + fixed_len + k * module_len;
                block_points(
                    &format!("{prefix}.{}", k + 1),
                    MPPT_MODULE,
                    start,
                    end,
                    &fixed,
                    &mut out,
                );
            }
        }
    }
    out
}

/// Walks the chain and returns its points.
///
/// # Errors
/// [`DiscoveryError`].
pub async fn discover<R: ReadHolding>(r: &mut R) -> Result<Vec<PointConfig>, DiscoveryError> {
    let (base, models) = walk(r).await?;
    let ids: Vec<u16> = models.iter().map(|m| m.id).collect();
    let points = points_for(&models);
    tracing::info!(base, models = ?ids, points = points.len(), "SunSpec discovery");
    Ok(points)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// An in-memory register map.
    struct Image {
        base: u16,
        regs: Vec<u16>,
    }

    impl ReadHolding for Image {
        async fn read_holding(
            &mut self,
            addr: u16,
            count: u16,
        ) -> Result<Option<Vec<u16>>, DiscoveryError> {
            let (a, n, b) = (
                usize::from(addr),
                usize::from(count),
                usize::from(self.base),
            );
            if a < b {
                return Ok(None);
            }
            Ok(self.regs.get(a - b..a - b + n).map(<[u16]>::to_vec))
        }
    }

    #[test]
    fn layouts_have_the_published_lengths() {
        for (id, len) in [
            (1, 66),
            (101, 50),
            (102, 50),
            (103, 50),
            (111, 60),
            (112, 60),
            (113, 60),
            (120, 26),
            (121, 30),
            (122, 44),
            (123, 24),
            (124, 24),
            (160, 8),
        ] {
            assert_eq!(layout_len(layout(id).unwrap()), len, "model {id}");
        }
        assert_eq!(layout_len(MPPT_MODULE), 20);
    }

    fn chain(base: u16, models: &[(u16, u16)]) -> Image {
        let mut regs = MARKER.to_vec();
        for &(id, len) in models {
            regs.extend([id, len]);
            regs.extend((0..len).map(|i| 1000 + i));
        }
        regs.extend([END_MODEL, 0]);
        Image { base, regs }
    }

    #[tokio::test]
    async fn finds_the_marker_at_each_base_and_walks_to_the_end_model() {
        for base in BASE_ADDRESSES {
            let mut img = chain(base, &[(1, 66), (999, 7), (103, 50)]);
            let (b, models) = walk(&mut img).await.unwrap();
            assert_eq!(b, base);
            let got: Vec<_> = models.iter().map(|m| (m.id, m.address, m.length)).collect();
            assert_eq!(
                got,
                vec![(1, base + 2, 66), (999, base + 70, 7), (103, base + 79, 50)]
            );
            // The unknown model 999 is skipped, 103 is laid out after it.
            let pts = points_for(&models);
            let w = pts.iter().find(|p| p.name == "m103.W").unwrap();
            assert_eq!(w.address, base + 79 + 2 + 12);
            assert_eq!(w.scale_factor_address, Some(base + 79 + 2 + 13));
        }
    }

    #[tokio::test]
    async fn a_map_without_marker_or_end_is_an_error() {
        let mut img = Image {
            base: 40000,
            regs: vec![1, 2, 3, 4],
        };
        assert!(matches!(
            walk(&mut img).await,
            Err(DiscoveryError::NoMarker)
        ));
        // Marker, one model, then the map ends: no end model.
        let mut img = chain(40000, &[(1, 66)]);
        img.regs.truncate(70);
        assert!(matches!(
            walk(&mut img).await,
            Err(DiscoveryError::BrokenChain { address: 40070 })
        ));
        // A chain that runs off the address space.
        let mut img = chain(0, &[]);
        img.regs = MARKER.to_vec();
        img.regs.extend([5, 0xFFF0]);
        assert!(matches!(
            walk(&mut img).await,
            Err(DiscoveryError::BrokenChain { .. } | DiscoveryError::ChainOverflow { .. })
        ));
    }

    #[test]
    fn model_160_lays_out_its_modules_and_repeated_models_get_numbered() {
        let models = [
            ModelInstance {
                id: 160,
                address: 40002,
                length: 8 + 2 * 20,
            },
            ModelInstance {
                id: 120,
                address: 40052,
                length: 26,
            },
            ModelInstance {
                id: 120,
                address: 40080,
                length: 26,
            },
        ];
        let pts = points_for(&models);
        let get = |n: &str| pts.iter().find(|p| p.name == n).unwrap();
        let body = 40004;
        // Module: ID, IDStr (8), DCA at offset 9, DCV 10, DCW 11.
        assert_eq!(get("m160.1.DCA").address, body + 8 + 9);
        assert_eq!(get("m160.1.DCA").scale_factor_address, Some(body));
        assert_eq!(get("m160.2.DCW").address, body + 8 + 20 + 11);
        assert_eq!(get("m160.2.DCW").scale_factor_address, Some(body + 2));
        assert_eq!(get("m160.2.DCWH").data_type, DataType::Acc32);
        assert!(pts.iter().all(|p| !p.name.starts_with("m160.3.")));
        assert_eq!(get("m120.WRtg").address, 40052 + 2 + 1);
        assert_eq!(get("m120_2.WRtg").address, 40080 + 2 + 1);
        assert_eq!(get("m120_2.WRtg").scale_factor_address, Some(40080 + 2 + 2));
        // No point for strings, pads or scale factors; names are valid.
        assert!(pts.iter().all(|p| !p.name.ends_with("_SF")));
        assert!(pts.iter().all(|p| crate::config::valid_name(&p.name)));
    }

    #[test]
    fn points_past_a_short_model_are_left_out() {
        let pts = points_for(&[ModelInstance {
            id: 1,
            address: 40002,
            length: 65,
        }]);
        assert_eq!(pts.len(), 1, "{pts:?}");
        assert_eq!((pts[0].name.as_str(), pts[0].address), ("m1.DA", 40068));
        let pts = points_for(&[ModelInstance {
            id: 103,
            address: 40002,
            length: 13,
        }]);
        // W at offset 12 fits but its scale factor at 13 does not: no W.
        assert!(pts.iter().any(|p| p.name == "m103.PhVphC"));
        assert!(!pts.iter().any(|p| p.name == "m103.W"));
    }
}

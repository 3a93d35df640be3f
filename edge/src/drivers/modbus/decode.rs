//! Register words to engineering values: data type, byte and word order,
//! scaling, SunSpec scale factors and "not implemented" sentinels.

use super::plan::Registers;
use crate::config::{DataType, Order, PointConfig};
use dcmms_shared::{Quality, Sample};

/// Decodes one point from a poll's registers. `None` when the registers were
/// not read (the read covering them failed).
pub fn decode_point(p: &PointConfig, regs: &Registers, ts_ms: i64) -> Option<Sample> {
    let words = regs.get(p.table, p.address, p.data_type.registers())?;
    let (raw, not_implemented) = raw_value(words, p.data_type, p.byte_order, p.word_order);
    let mut value = raw * p.scale;
    let mut quality = Quality::Good;
    if let Some(sf_addr) = p.scale_factor_address {
        let sf = regs.get(p.table, sf_addr, 1)?[0] as i16;
        // SunSpec: a scale factor outside -10..=10 (0x8000 is "not implemented") is unusable.
        if not_implemented || !(-10..=10).contains(&sf) {
            quality = Quality::Bad;
        } else {
            value *= 10f64.powi(i32::from(sf));
        }
    }
    value += p.offset;
    if quality == Quality::Bad || !value.is_finite() {
        return Some(Sample {
            ts_ms,
            value: f64::NAN,
            quality: Quality::Bad,
        });
    }
    Some(Sample {
        ts_ms,
        value,
        quality,
    })
}

/// The raw number in `words`, and whether it is a SunSpec "not implemented"
/// sentinel for its type.
pub fn raw_value(words: &[u16], t: DataType, byte_order: Order, word_order: Order) -> (f64, bool) {
    let mut w: Vec<u16> = words
        .iter()
        .map(|x| {
            if byte_order == Order::Little {
                x.swap_bytes()
            } else {
                *x
            }
        })
        .collect();
    if word_order == Order::Little {
        w.reverse();
    }
    let be = w.iter().fold(0u64, |acc, x| (acc << 16) | u64::from(*x));
    match t {
        DataType::U16 => (be as u16 as f64, be as u16 == 0xFFFF),
        DataType::I16 => (be as u16 as i16 as f64, be as u16 == 0x8000),
        DataType::U32 => (be as u32 as f64, be as u32 == 0xFFFF_FFFF),
        DataType::I32 => (be as u32 as i32 as f64, be as u32 == 0x8000_0000),
        DataType::Acc32 => (be as u32 as f64, be as u32 == 0),
        DataType::F32 => {
            let v = f32::from_bits(be as u32);
            (f64::from(v), v.is_nan())
        }
        DataType::U64 => (be as f64, be == u64::MAX),
        DataType::I64 => (be as i64 as f64, be == 0x8000_0000_0000_0000),
        DataType::F64 => {
            let v = f64::from_bits(be);
            (v, v.is_nan())
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::plan::ReadRange;
    use super::*;
    use crate::config::RegisterTable;

    #[test]
    fn orders_and_types_decode() {
        let (b, l) = (Order::Big, Order::Little);
        assert_eq!(raw_value(&[0xFFFE], DataType::I16, b, b).0, -2.0);
        assert_eq!(raw_value(&[0x0001, 0x0002], DataType::U32, b, b).0, 65538.0);
        assert_eq!(raw_value(&[0x0002, 0x0001], DataType::U32, b, l).0, 65538.0);
        assert_eq!(raw_value(&[0x0100, 0x0200], DataType::U32, l, b).0, 65538.0);
        let f = 230.5f32.to_bits();
        assert_eq!(
            raw_value(&[(f >> 16) as u16, f as u16], DataType::F32, b, b).0,
            230.5
        );
        let d = (-1.25f64).to_bits();
        let words = [
            (d >> 48) as u16,
            (d >> 32) as u16,
            (d >> 16) as u16,
            d as u16,
        ];
        assert_eq!(raw_value(&words, DataType::F64, b, b).0, -1.25);
        assert_eq!(
            raw_value(&[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFE], DataType::I64, b, b).0,
            -2.0
        );
    }

    #[test]
    fn sunspec_sentinels_are_flagged() {
        let b = Order::Big;
        assert!(raw_value(&[0x8000], DataType::I16, b, b).1);
        assert!(raw_value(&[0xFFFF], DataType::U16, b, b).1);
        assert!(raw_value(&[0, 0], DataType::Acc32, b, b).1);
        assert!(!raw_value(&[0, 1], DataType::Acc32, b, b).1);
    }

    fn point(sf: Option<u16>, dt: DataType) -> PointConfig {
        PointConfig {
            name: "p".into(),
            address: 10,
            table: RegisterTable::Holding,
            data_type: dt,
            byte_order: Order::Big,
            word_order: Order::Big,
            scale: 1.0,
            offset: 0.0,
            scale_factor_address: sf,
            unit: "W".into(),
        }
    }

    fn regs(words: Vec<u16>) -> Registers {
        let mut r = Registers::default();
        let count = words.len() as u16;
        r.push(
            ReadRange {
                table: RegisterTable::Holding,
                start: 10,
                count,
            },
            words,
        );
        r
    }

    #[test]
    fn scale_factor_applies_and_bad_values_are_marked() {
        // 1234 × 10^-1
        let s = decode_point(
            &point(Some(11), DataType::I16),
            &regs(vec![1234, (-1i16) as u16]),
            5,
        )
        .unwrap();
        assert_eq!((s.value, s.quality, s.ts_ms), (123.4, Quality::Good, 5));
        // Not-implemented value.
        let s = decode_point(&point(Some(11), DataType::I16), &regs(vec![0x8000, 0]), 5).unwrap();
        assert_eq!(s.quality, Quality::Bad);
        // Not-implemented scale factor.
        let s = decode_point(&point(Some(11), DataType::I16), &regs(vec![5, 0x8000]), 5).unwrap();
        assert_eq!(s.quality, Quality::Bad);
        // Registers not read: no sample.
        assert!(decode_point(&point(Some(40), DataType::I16), &regs(vec![5, 0]), 5).is_none());
    }

    #[test]
    fn scale_and_offset_apply_without_sunspec() {
        let mut p = point(None, DataType::U16);
        p.scale = 0.1;
        p.offset = -40.0;
        let s = decode_point(&p, &regs(vec![650]), 0).unwrap();
        assert!((s.value - 25.0).abs() < 1e-9);
        // Without a scale-factor register 0xFFFF is an ordinary value.
        let s = decode_point(&point(None, DataType::U16), &regs(vec![0xFFFF]), 0).unwrap();
        assert_eq!((s.value, s.quality), (65535.0, Quality::Good));
    }
}

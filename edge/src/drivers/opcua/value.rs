//! One OPC UA DataValue → one sample. Pure functions; every input comes
//! from the network, so nothing here panics.

use super::config::OpcuaPointConfig;
use dcmms_shared::{Quality, Sample};
use opcua::types::{DataValue, DateTime, StatusCode, Variant};

/// Latest timestamp accepted: 9999-12-31T23:59:59.999Z.
const MAX_TS_MS: i64 = 253_402_300_799_999;

/// Why a value was reported `bad` although the server called it usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueProblem {
    /// Empty, a string, an array, a structure…
    NotANumber,
    /// NaN or infinite, before or after scaling.
    NotFinite,
}

/// Quality from the StatusCode's severity: Good → `good`, Uncertain →
/// `stale`, Bad → `bad`. A missing status means Good (OPC UA Part 4).
pub fn quality(status: Option<StatusCode>) -> Quality {
    let s = status.unwrap_or(StatusCode::Good);
    if s.is_good() {
        Quality::Good
    } else if s.is_uncertain() {
        Quality::Stale
    } else {
        Quality::Bad
    }
}

/// The number in a scalar Variant (Boolean as 0/1).
pub fn number(v: &Variant) -> Option<f64> {
    Some(match v {
        Variant::Boolean(b) => f64::from(u8::from(*b)),
        Variant::SByte(x) => f64::from(*x),
        Variant::Byte(x) => f64::from(*x),
        Variant::Int16(x) => f64::from(*x),
        Variant::UInt16(x) => f64::from(*x),
        Variant::Int32(x) => f64::from(*x),
        Variant::UInt32(x) => f64::from(*x),
        Variant::Int64(x) => *x as f64,
        Variant::UInt64(x) => *x as f64,
        Variant::Float(x) => f64::from(*x),
        Variant::Double(x) => *x,
        _ => return None,
    })
}

/// Unix ms of an OPC UA timestamp, if it is set and within 1970..=9999.
pub fn unix_ms(t: Option<&DateTime>) -> Option<i64> {
    let t = t?;
    if t.is_null() {
        return None;
    }
    let ms = t.as_chrono().timestamp_millis();
    (0..=MAX_TS_MS).contains(&ms).then_some(ms)
}

/// The sample `point` takes from `dv`, received at `received_ms`, and the
/// problem if a value the server called usable is not one.
///
/// Time: the source timestamp, else the server timestamp, else receipt.
/// A `bad` sample carries NaN unless the server sent a number anyway.
pub fn sample(
    point: &OpcuaPointConfig,
    dv: &DataValue,
    received_ms: i64,
) -> (Sample, Option<ValueProblem>) {
    let ts_ms = unix_ms(dv.source_timestamp.as_ref())
        .or_else(|| unix_ms(dv.server_timestamp.as_ref()))
        .unwrap_or(received_ms);
    let mut quality = quality(dv.status);
    let raw = dv.value.as_ref().and_then(number);
    let mut problem = None;
    let value = match raw {
        Some(r) => {
            let v = r * point.scale + point.offset;
            if v.is_finite() {
                v
            } else {
                problem = Some(ValueProblem::NotFinite);
                f64::NAN
            }
        }
        None => {
            problem = Some(ValueProblem::NotANumber);
            f64::NAN
        }
    };
    if problem.is_some() {
        // A Bad status with no value is the server's own verdict, not ours.
        if quality == Quality::Bad {
            problem = None;
        }
        quality = Quality::Bad;
    }
    (
        Sample {
            ts_ms,
            value,
            quality,
        },
        problem,
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(scale: f64, offset: f64) -> OpcuaPointConfig {
        OpcuaPointConfig {
            name: "p".into(),
            node_id: "ns=2;s=p".into(),
            unit: String::new(),
            deadband_abs: None,
            deadband_pct: None,
            scale,
            offset,
        }
    }

    fn dv(value: Option<Variant>, status: Option<StatusCode>, src: Option<i64>) -> DataValue {
        DataValue {
            value,
            status,
            source_timestamp: src
                .map(|ms| DateTime::from(chrono::DateTime::from_timestamp_millis(ms).unwrap())),
            ..DataValue::default()
        }
    }

    #[test]
    fn status_severity_decides_quality() {
        assert_eq!(quality(None), Quality::Good);
        assert_eq!(quality(Some(StatusCode::Good)), Quality::Good);
        assert_eq!(
            quality(Some(StatusCode::UncertainLastUsableValue)),
            Quality::Stale
        );
        assert_eq!(
            quality(Some(StatusCode::UncertainSensorNotAccurate)),
            Quality::Stale
        );
        assert_eq!(quality(Some(StatusCode::BadSensorFailure)), Quality::Bad);
        assert_eq!(
            quality(Some(StatusCode::BadCommunicationError)),
            Quality::Bad
        );
    }

    #[test]
    fn numbers_are_scaled_and_stamped_with_the_source_time() {
        let t = 1_782_023_400_123;
        let (s, p) = sample(
            &point(0.001, 1.0),
            &dv(Some(Variant::Double(2500.0)), None, Some(t)),
            7,
        );
        assert_eq!(
            (s.ts_ms, s.value, s.quality, p),
            (t, 3.5, Quality::Good, None)
        );
        for v in [
            Variant::Boolean(true),
            Variant::Byte(1),
            Variant::Int64(1),
            Variant::UInt32(1),
            Variant::Float(1.0),
        ] {
            assert_eq!(number(&v), Some(1.0), "{v:?}");
        }
        // No source time: the time of receipt.
        let (s, _) = sample(
            &point(1.0, 0.0),
            &dv(Some(Variant::Int16(-4)), None, None),
            7,
        );
        assert_eq!((s.ts_ms, s.value), (7, -4.0));
    }

    #[test]
    fn uncertain_is_stale_and_bad_or_non_numbers_are_bad() {
        let (s, p) = sample(
            &point(1.0, 0.0),
            &dv(
                Some(Variant::Double(9.0)),
                Some(StatusCode::UncertainLastUsableValue),
                None,
            ),
            1,
        );
        assert_eq!((s.value, s.quality, p), (9.0, Quality::Stale, None));
        let (s, p) = sample(
            &point(1.0, 0.0),
            &dv(None, Some(StatusCode::BadNodeIdUnknown), None),
            1,
        );
        assert!(s.value.is_nan());
        assert_eq!((s.quality, p), (Quality::Bad, None));
        let (s, p) = sample(
            &point(1.0, 0.0),
            &dv(Some(Variant::from("windy")), None, None),
            1,
        );
        assert!(s.value.is_nan());
        assert_eq!(
            (s.quality, p),
            (Quality::Bad, Some(ValueProblem::NotANumber))
        );
        let (s, p) = sample(
            &point(1.0, 0.0),
            &dv(Some(Variant::Double(f64::INFINITY)), None, None),
            1,
        );
        assert_eq!(
            (s.quality, p),
            (Quality::Bad, Some(ValueProblem::NotFinite))
        );
    }
}

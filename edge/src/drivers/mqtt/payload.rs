//! Turning one MQTT message into samples: topic matching and value
//! extraction. Pure functions with no I/O; every input comes from the
//! network, so nothing here panics and every failure is a [`PayloadError`].

use super::config::MqttPointConfig;
use dcmms_shared::{Quality, Sample};
use serde_json::Value;

/// Why a message gave no value for a point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("payload is not JSON: {0}")]
    NotJson(String),
    #[error("payload is not a number")]
    NotANumber,
    #[error("no value at JSON pointer {0}")]
    PointerMissing(String),
    #[error("value at {0} is not a number")]
    ValueNotANumber(String),
    #[error("scaled value is not finite")]
    NotFinite,
    #[error("no timestamp at JSON pointer {0}")]
    TimestampMissing(String),
    #[error("timestamp at {0} is neither epoch milliseconds nor RFC 3339")]
    TimestampInvalid(String),
}

impl PayloadError {
    /// Short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            PayloadError::NotJson(_) => "not_json",
            PayloadError::NotANumber | PayloadError::ValueNotANumber(_) => "not_a_number",
            PayloadError::PointerMissing(_) => "pointer_missing",
            PayloadError::NotFinite => "not_finite",
            PayloadError::TimestampMissing(_) | PayloadError::TimestampInvalid(_) => {
                "bad_timestamp"
            }
        }
    }
}

/// Latest timestamp accepted: 9999-12-31T23:59:59.999Z.
const MAX_TS_MS: f64 = 253_402_300_799_999.0;

/// One received message, parsed as JSON at most once however many points
/// read it.
#[derive(Debug)]
pub struct Message<'a> {
    payload: &'a [u8],
    /// Time of receipt, Unix ms.
    received_ms: i64,
    /// A retained message is the broker's copy of an older publish.
    retained: bool,
    json: Option<Result<Value, PayloadError>>,
}

impl<'a> Message<'a> {
    pub fn new(payload: &'a [u8], received_ms: i64, retained: bool) -> Self {
        Message {
            payload,
            received_ms,
            retained,
            json: None,
        }
    }

    fn json(&mut self) -> Result<&Value, PayloadError> {
        let payload = self.payload;
        let parsed = self.json.get_or_insert_with(|| {
            serde_json::from_slice(payload).map_err(|e| PayloadError::NotJson(e.to_string()))
        });
        parsed.as_ref().map_err(Clone::clone)
    }

    /// The sample `point` takes from this message.
    ///
    /// Quality is `good`, except for a retained message without a
    /// timestamp in it: its value may be arbitrarily old and the time of
    /// receipt says nothing about when it was measured, so it is `stale`.
    pub fn sample(&mut self, point: &MqttPointConfig) -> Result<Sample, PayloadError> {
        let raw = match &point.json_pointer {
            None => std::str::from_utf8(self.payload)
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .ok_or(PayloadError::NotANumber)?,
            Some(ptr) => {
                let v = self
                    .json()?
                    .pointer(ptr)
                    .ok_or_else(|| PayloadError::PointerMissing(ptr.clone()))?;
                v.as_f64()
                    .ok_or_else(|| PayloadError::ValueNotANumber(ptr.clone()))?
            }
        };
        let value = raw * point.scale + point.offset;
        if !value.is_finite() {
            return Err(PayloadError::NotFinite);
        }
        let (ts_ms, quality) = match &point.timestamp_pointer {
            None if self.retained => (self.received_ms, Quality::Stale),
            None => (self.received_ms, Quality::Good),
            Some(ptr) => {
                let v = self
                    .json()?
                    .pointer(ptr)
                    .ok_or_else(|| PayloadError::TimestampMissing(ptr.clone()))?;
                let ts = timestamp(v).ok_or_else(|| PayloadError::TimestampInvalid(ptr.clone()))?;
                (ts, Quality::Good)
            }
        };
        Ok(Sample {
            ts_ms,
            value,
            quality,
        })
    }
}

/// Epoch milliseconds (a JSON number) or an RFC 3339 string.
fn timestamp(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => {
            let ms = n.as_f64()?;
            (ms.is_finite() && (0.0..=MAX_TS_MS).contains(&ms)).then(|| ms.round() as i64)
        }
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis())
            .filter(|ms| (0..=MAX_TS_MS as i64).contains(ms)),
        _ => None,
    }
}

/// Whether `topic` matches the subscription `filter` (MQTT 3.1.1 §4.7):
/// `+` matches one level, a trailing `#` the rest (including none), and a
/// filter starting with a wildcard does not match a `$SYS`-style topic.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut t = topic.split('/');
    for f in filter.split('/') {
        match f {
            "#" => return true,
            "+" => {
                if t.next().is_none() {
                    return false;
                }
            }
            level => {
                if t.next() != Some(level) {
                    return false;
                }
            }
        }
    }
    t.next().is_none()
}

/// Checks a subscription filter; the error completes "topic … ".
pub fn validate_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("must not be empty");
    }
    if filter.len() > 65_535 {
        return Err("is longer than 65535 bytes");
    }
    if filter.contains('\0') {
        return Err("must not contain NUL");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("may use '#' only as the whole last level");
        }
        if level.contains('+') && *level != "+" {
            return Err("may use '+' only as a whole level");
        }
    }
    Ok(())
}

/// Checks an RFC 6901 JSON pointer; the error completes "pointer … ".
pub fn validate_pointer(ptr: &str) -> Result<(), &'static str> {
    if !ptr.starts_with('/') {
        return Err("must start with '/' (RFC 6901), e.g. \"/irradiance\"");
    }
    // `~` must be followed by 0 or 1.
    let b = ptr.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'~' && !matches!(b.get(i + 1), Some(b'0' | b'1')) {
            return Err("has '~' not followed by 0 or 1");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn point(ptr: Option<&str>, ts: Option<&str>) -> MqttPointConfig {
        MqttPointConfig {
            name: "p".into(),
            topic: "site/wx1/weather".into(),
            json_pointer: ptr.map(Into::into),
            timestamp_pointer: ts.map(Into::into),
            scale: 1.0,
            offset: 0.0,
            unit: String::new(),
        }
    }

    #[test]
    fn reads_the_number_at_the_pointer_with_the_payload_timestamp() {
        let mut m = Message::new(br#"{"ts": 1782023400000, "irradiance": 812.5}"#, 5, false);
        let s = m.sample(&point(Some("/irradiance"), Some("/ts"))).unwrap();
        assert_eq!(
            s,
            Sample {
                ts_ms: 1_782_023_400_000,
                value: 812.5,
                quality: Quality::Good
            }
        );
    }

    #[test]
    fn reads_rfc3339_timestamps_with_offsets() {
        let mut m = Message::new(
            br#"{"t": "2026-06-21T12:00:00.250+05:30", "v": {"x": [1, 2.5]}}"#,
            5,
            false,
        );
        let s = m.sample(&point(Some("/v/x/1"), Some("/t"))).unwrap();
        assert_eq!(s.ts_ms, 1_782_023_400_250);
        assert_eq!(s.value, 2.5);
    }

    #[test]
    fn whole_payload_is_the_number_without_a_pointer_and_scaling_applies() {
        let mut m = Message::new(b" 41.5\n", 77, false);
        let mut p = point(None, None);
        p.scale = 2.0;
        p.offset = -3.0;
        let s = m.sample(&p).unwrap();
        assert_eq!((s.ts_ms, s.value, s.quality), (77, 80.0, Quality::Good));
    }

    #[test]
    fn retained_message_without_timestamp_is_stale() {
        let mut m = Message::new(b"3", 9, true);
        assert_eq!(
            m.sample(&point(None, None)).unwrap().quality,
            Quality::Stale
        );
        let mut m = Message::new(br#"{"ts": 1, "v": 3}"#, 9, true);
        let s = m.sample(&point(Some("/v"), Some("/ts"))).unwrap();
        assert_eq!((s.ts_ms, s.quality), (1, Quality::Good));
    }

    #[test]
    fn bad_payloads_are_errors_of_the_right_kind() {
        let p = point(Some("/v"), Some("/ts"));
        let cases: &[(&[u8], &str)] = &[
            (b"not json", "not_json"),
            (b"\xff\xfe", "not_json"),
            (br#"{"ts": 1}"#, "pointer_missing"),
            (br#"{"ts": 1, "v": "12"}"#, "not_a_number"),
            (br#"{"ts": 1, "v": null}"#, "not_a_number"),
            (br#"{"v": 1}"#, "bad_timestamp"),
            (br#"{"v": 1, "ts": "yesterday"}"#, "bad_timestamp"),
            (br#"{"v": 1, "ts": -5}"#, "bad_timestamp"),
            (br#"{"v": 1, "ts": 1e300}"#, "bad_timestamp"),
        ];
        for (payload, kind) in cases {
            let e = Message::new(payload, 0, false).sample(&p).unwrap_err();
            assert_eq!(
                e.kind(),
                *kind,
                "{:?}: {e}",
                String::from_utf8_lossy(payload)
            );
        }
        for payload in [&b"NaN"[..], b"inf", b"", b"12 W"] {
            let e = Message::new(payload, 0, false)
                .sample(&point(None, None))
                .unwrap_err();
            assert_eq!(e, PayloadError::NotANumber);
        }
        let mut big = point(Some("/v"), None);
        big.scale = 1e308;
        let e = Message::new(br#"{"v": 1e308}"#, 0, false)
            .sample(&big)
            .unwrap_err();
        assert_eq!(e, PayloadError::NotFinite);
    }

    #[test]
    fn topic_filters_match_like_a_broker() {
        let yes = [
            ("site/wx1/weather", "site/wx1/weather"),
            ("site/+/weather", "site/wx1/weather"),
            ("site/#", "site/wx1/weather"),
            ("site/#", "site"),
            ("#", "a/b"),
            ("+/+", "a/"),
        ];
        let no = [
            ("site/wx1/weather", "site/wx1/weather/x"),
            ("site/+/weather", "site/weather"),
            ("site/+", "site/a/b"),
            ("site/wx1", "site/wx1/weather"),
            ("#", "$SYS/broker"),
            ("+/broker", "$SYS/broker"),
        ];
        for (f, t) in yes {
            assert!(topic_matches(f, t), "{f} should match {t}");
        }
        for (f, t) in no {
            assert!(!topic_matches(f, t), "{f} should not match {t}");
        }
    }

    #[test]
    fn filters_and_pointers_are_validated() {
        for ok in ["a/b", "a/+/c", "a/#", "#", "+"] {
            assert_eq!(validate_filter(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a/#/c", "a/b#", "a+/b", "a\0b"] {
            assert!(validate_filter(bad).is_err(), "{bad:?}");
        }
        assert!(validate_pointer("/a/b~1c").is_ok());
        assert!(validate_pointer("a").is_err());
        assert!(validate_pointer("/a~2").is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..256),
                                          json in "\\{\"(v|ts)\": ?(-?[0-9.e+]{0,12}|\"[^\"]{0,30}\"|null|\\[\\]|\\{\\})\\}") {
            for p in [point(Some("/v"), Some("/ts")), point(None, None), point(Some("/v"), None)] {
                let _ = Message::new(&payload, 0, false).sample(&p);
                let _ = Message::new(json.as_bytes(), 0, true).sample(&p);
            }
        }

        #[test]
        fn arbitrary_topics_and_filters_never_panic(f in "[a+#/$]{0,8}", t in "[a+#/$]{0,8}") {
            let _ = topic_matches(&f, &t);
            let _ = validate_filter(&f);
        }
    }
}

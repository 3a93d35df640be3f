//! The versioned binary encoding of a [`Batch`].
//!
//! Normative description: `docs/specs/wire-format.md`. In short: a fixed
//! 20-byte header (magic, version, compression, lengths, CRC-32 of the payload
//! as sent), then the payload, optionally zstd-compressed. The payload is
//! columnar per series: timestamps as delta-of-delta zig-zag varints, values
//! XOR-ed with their predecessor and stored without their zero bytes,
//! qualities run-length encoded; then the drop reports; in version 3, then
//! the anomaly events. A batch without events is written as version 2, so
//! decoders that know only version 2 read every such batch unchanged.
//!
//! Decoding checks every length against the bytes actually present before it
//! allocates, so a hostile frame can cost at most [`MAX_RAW_LEN`] bytes of
//! memory and never panics.

use crate::model::{
    AnomalyEvent, AnomalyKind, Batch, Contribution, Drop, DropReason, DroppedSpan, Quality, Sample,
    Series,
};
use thiserror::Error;

/// First four bytes of every frame: `DCMB`.
pub const MAGIC: [u8; 4] = *b"DCMB";
/// The newest format version this crate writes and reads (batches with
/// anomaly events); batches without events are written as [`VERSION_2`].
pub const VERSION: u8 = 3;
/// The version without anomaly events.
pub const VERSION_2: u8 = 2;
/// Most anomaly events one batch may carry.
pub const MAX_EVENTS: usize = 10_000;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 20;
/// Largest payload, before or after decompression, a decoder accepts.
pub const MAX_RAW_LEN: usize = 64 * 1024 * 1024;
/// Longest string (gateway id, device, point, unit) in bytes.
pub const MAX_STRING_LEN: usize = 255;
/// Most samples one batch may carry.
pub const MAX_SAMPLES: usize = 4_000_000;

/// How the payload is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Zstd { level: i32 },
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Compression::None => 0,
            Compression::Zstd { .. } => 1,
        }
    }
}

/// Why a frame could not be encoded.
#[derive(Debug, Error)]
pub enum EncodeError {
    #[error("{field} is {len} bytes long; at most {MAX_STRING_LEN} allowed")]
    StringTooLong { field: &'static str, len: usize },
    #[error("series {device}/{point} has no samples")]
    EmptySeries { device: String, point: String },
    #[error("batch has {0} samples; at most {MAX_SAMPLES} allowed")]
    TooManySamples(usize),
    #[error("first_sequence {first} is above sequence {last}")]
    SequenceRange { first: u64, last: u64 },
    #[error("encoded payload is {0} bytes; at most {MAX_RAW_LEN} allowed")]
    TooLarge(usize),
    #[error("batch has {0} anomaly events; at most {MAX_EVENTS} allowed")]
    TooManyEvents(usize),
    #[error("zstd compression failed: {0}")]
    Compress(std::io::Error),
}

/// Why a frame could not be decoded. Every variant names what was wrong.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("frame is truncated: {what} needs {needed} more bytes at offset {offset}")]
    Truncated {
        what: &'static str,
        offset: usize,
        needed: usize,
    },
    #[error("not a dCMMS batch: bad magic bytes")]
    BadMagic,
    #[error("unsupported format version {0}; this build reads versions {VERSION_2} and {VERSION}")]
    UnsupportedVersion(u8),
    #[error("unsupported compression code {0}")]
    UnsupportedCompression(u8),
    #[error("reserved header bytes must be zero")]
    ReservedNotZero,
    #[error("{what} is {len} bytes; at most {max} allowed")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("header says the payload is {declared} bytes but {actual} follow")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("payload checksum mismatch")]
    Checksum,
    #[error("payload could not be decompressed: {0}")]
    Decompress(String),
    #[error("{field} at offset {offset} is not valid UTF-8")]
    InvalidUtf8 { field: &'static str, offset: usize },
    #[error("varint at offset {0} is longer than 10 bytes")]
    VarintOverflow(usize),
    #[error("unknown quality code {code} at offset {offset}")]
    InvalidQuality { code: u8, offset: usize },
    #[error("series {index} has no samples")]
    EmptySeries { index: usize },
    #[error("batch declares more than {MAX_SAMPLES} samples")]
    TooManySamples,
    #[error("{0} unexpected bytes after the last drop report")]
    TrailingBytes(usize),
    #[error("value control byte {ctrl:#04x} at offset {offset} is invalid")]
    InvalidValueControl { ctrl: u8, offset: usize },
    #[error("quality runs of series {index} do not add up to its sample count")]
    QualityRuns { index: usize },
    #[error("first_sequence {first} is above sequence {last}")]
    SequenceRange { first: u64, last: u64 },
    #[error("unknown drop reason code {0}")]
    InvalidDropReason(u8),
    #[error("unknown anomaly event kind {0}")]
    InvalidEventKind(u8),
    #[error("batch declares more than {MAX_EVENTS} anomaly events")]
    TooManyEvents,
}

/// Encodes a batch into one frame.
pub fn encode(batch: &Batch, compression: Compression) -> Result<Vec<u8>, EncodeError> {
    let total = batch.sample_count();
    if total > MAX_SAMPLES {
        return Err(EncodeError::TooManySamples(total));
    }
    if batch.first_sequence > batch.sequence {
        return Err(EncodeError::SequenceRange {
            first: batch.first_sequence,
            last: batch.sequence,
        });
    }
    let mut p = Vec::with_capacity(64 + total * 6);
    put_str(&mut p, "gateway_id", &batch.gateway_id)?;
    p.extend_from_slice(&batch.first_sequence.to_le_bytes());
    p.extend_from_slice(&batch.sequence.to_le_bytes());
    p.extend_from_slice(&batch.created_ms.to_le_bytes());
    p.extend_from_slice(&batch.polled_through_ms.to_le_bytes());
    put_varint(&mut p, batch.series.len() as u64);
    for s in &batch.series {
        if s.samples.is_empty() {
            return Err(EncodeError::EmptySeries {
                device: s.device.clone(),
                point: s.point.clone(),
            });
        }
        put_str(&mut p, "device", &s.device)?;
        put_str(&mut p, "point", &s.point)?;
        put_str(&mut p, "unit", &s.unit)?;
        put_varint(&mut p, s.samples.len() as u64);
        put_timestamps(&mut p, &s.samples);
        put_values(&mut p, &s.samples);
        put_qualities(&mut p, &s.samples);
    }
    put_varint(&mut p, batch.drops.len() as u64);
    for d in &batch.drops {
        p.extend_from_slice(&d.first_sequence.to_le_bytes());
        p.extend_from_slice(&d.last_sequence.to_le_bytes());
        p.push(d.reason.code());
        put_varint(&mut p, d.spans.len() as u64);
        for sp in &d.spans {
            put_str(&mut p, "device", &sp.device)?;
            put_str(&mut p, "point", &sp.point)?;
            p.extend_from_slice(&sp.from_ms.to_le_bytes());
            p.extend_from_slice(&sp.to_ms.to_le_bytes());
            put_varint(&mut p, sp.samples);
        }
    }
    if batch.events.len() > MAX_EVENTS {
        return Err(EncodeError::TooManyEvents(batch.events.len()));
    }
    if !batch.events.is_empty() {
        put_varint(&mut p, batch.events.len() as u64);
        for e in &batch.events {
            put_event(&mut p, e)?;
        }
    }
    if p.len() > MAX_RAW_LEN {
        return Err(EncodeError::TooLarge(p.len()));
    }
    let raw_len = p.len();
    let payload = match compression {
        Compression::None => p,
        Compression::Zstd { level } => {
            zstd::bulk::compress(&p, level).map_err(EncodeError::Compress)?
        }
    };
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(if batch.events.is_empty() {
        VERSION_2
    } else {
        VERSION
    });
    out.push(compression.code());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(raw_len as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// First timestamp as i64, then the first delta, then deltas of deltas, all
/// zig-zag varints with wrapping arithmetic: a steady poll costs one byte
/// per sample before compression.
fn put_timestamps(p: &mut Vec<u8>, samples: &[Sample]) {
    let mut prev = 0i64;
    let mut prev_delta = 0i64;
    for (i, x) in samples.iter().enumerate() {
        if i == 0 {
            p.extend_from_slice(&x.ts_ms.to_le_bytes());
        } else {
            let delta = x.ts_ms.wrapping_sub(prev);
            put_varint(p, zigzag(delta.wrapping_sub(prev_delta)));
            prev_delta = delta;
        }
        prev = x.ts_ms;
    }
}

/// Each value's bits XOR the previous value's (the first XORs 0), written as
/// a control byte `(leading zero bytes << 4) | trailing zero bytes` and the
/// bytes between, most significant first. An unchanged value is one byte.
fn put_values(p: &mut Vec<u8>, samples: &[Sample]) {
    let mut prev = 0u64;
    for x in samples {
        let bits = x.value.to_bits();
        let xor = bits ^ prev;
        prev = bits;
        if xor == 0 {
            p.push(0x80);
            continue;
        }
        let lz = (xor.leading_zeros() / 8) as usize;
        let tz = (xor.trailing_zeros() / 8) as usize;
        p.push(((lz as u8) << 4) | tz as u8);
        let bytes = xor.to_be_bytes();
        p.extend_from_slice(&bytes[lz..8 - tz]);
    }
}

/// Runs of equal quality: a run count, then `(code, length)` per run.
fn put_qualities(p: &mut Vec<u8>, samples: &[Sample]) {
    let mut runs: Vec<(u8, u64)> = Vec::new();
    for x in samples {
        let c = x.quality.code();
        match runs.last_mut() {
            Some((q, n)) if *q == c => *n += 1,
            _ => runs.push((c, 1)),
        }
    }
    put_varint(p, runs.len() as u64);
    for (q, n) in runs {
        p.push(q);
        put_varint(p, n);
    }
}

/// Decodes one frame. Never panics, whatever the input.
pub fn decode(frame: &[u8]) -> Result<Batch, DecodeError> {
    let header = frame
        .get(..HEADER_LEN)
        .ok_or_else(|| DecodeError::Truncated {
            what: "header",
            offset: 0,
            needed: HEADER_LEN.saturating_sub(frame.len()),
        })?;
    if header[0..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    let version = header[4];
    if version != VERSION && version != VERSION_2 {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    let compression = header[5];
    if compression > 1 {
        return Err(DecodeError::UnsupportedCompression(compression));
    }
    if header[6] != 0 || header[7] != 0 {
        return Err(DecodeError::ReservedNotZero);
    }
    let payload_len = u32_at(header, 8) as usize;
    let raw_len = u32_at(header, 12) as usize;
    let crc = u32_at(header, 16);
    for (what, len) in [("payload", payload_len), ("decompressed payload", raw_len)] {
        if len > MAX_RAW_LEN {
            return Err(DecodeError::TooLarge {
                what,
                len,
                max: MAX_RAW_LEN,
            });
        }
    }
    let payload = &frame[HEADER_LEN..];
    if payload.len() != payload_len {
        return Err(DecodeError::LengthMismatch {
            declared: payload_len,
            actual: payload.len(),
        });
    }
    if crc32fast::hash(payload) != crc {
        return Err(DecodeError::Checksum);
    }
    if compression == 0 {
        if raw_len != payload_len {
            return Err(DecodeError::LengthMismatch {
                declared: raw_len,
                actual: payload_len,
            });
        }
        decode_payload(payload, version)
    } else {
        let raw = zstd::bulk::decompress(payload, raw_len)
            .map_err(|e| DecodeError::Decompress(e.to_string()))?;
        if raw.len() != raw_len {
            return Err(DecodeError::LengthMismatch {
                declared: raw_len,
                actual: raw.len(),
            });
        }
        decode_payload(&raw, version)
    }
}

fn decode_payload(buf: &[u8], version: u8) -> Result<Batch, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let gateway_id = r.string("gateway_id")?;
    let first_sequence = u64::from_le_bytes(r.array("first_sequence")?);
    let sequence = u64::from_le_bytes(r.array("sequence")?);
    if first_sequence > sequence {
        return Err(DecodeError::SequenceRange {
            first: first_sequence,
            last: sequence,
        });
    }
    let created_ms = i64::from_le_bytes(r.array("created_ms")?);
    let polled_through_ms = i64::from_le_bytes(r.array("polled_through_ms")?);
    let series_count = r.varint()?;
    // Each series needs at least 3 length bytes, a count, 8 timestamp bytes,
    // a value byte and 3 quality-run bytes.
    r.check_room("series", series_count, 16)?;
    let mut series = Vec::with_capacity(series_count as usize);
    let mut total: u64 = 0;
    for index in 0..series_count as usize {
        let device = r.string("device")?;
        let point = r.string("point")?;
        let unit = r.string("unit")?;
        let count = r.varint()?;
        if count == 0 {
            return Err(DecodeError::EmptySeries { index });
        }
        total = total.saturating_add(count);
        if total > MAX_SAMPLES as u64 {
            return Err(DecodeError::TooManySamples);
        }
        // At least one timestamp byte and one value byte per sample.
        r.check_room("samples", count, 2)?;
        let count = count as usize;
        let mut samples = Vec::with_capacity(count);
        let mut ts = i64::from_le_bytes(r.array("first timestamp")?);
        let mut delta = 0i64;
        samples.push(Sample {
            ts_ms: ts,
            value: 0.0,
            quality: Quality::Good,
        });
        for _ in 1..count {
            delta = delta.wrapping_add(unzigzag(r.varint()?));
            ts = ts.wrapping_add(delta);
            samples.push(Sample {
                ts_ms: ts,
                value: 0.0,
                quality: Quality::Good,
            });
        }
        let mut prev = 0u64;
        for s in samples.iter_mut() {
            let offset = r.pos;
            let [ctrl] = r.array::<1>("value control")?;
            let (lz, tz) = ((ctrl >> 4) as usize, (ctrl & 0x0f) as usize);
            if lz + tz > 8 || (lz + tz == 8 && ctrl != 0x80) {
                return Err(DecodeError::InvalidValueControl { ctrl, offset });
            }
            let mid = r.take("value", 8 - lz - tz)?;
            let mut bytes = [0u8; 8];
            bytes[lz..8 - tz].copy_from_slice(mid);
            prev ^= u64::from_be_bytes(bytes);
            s.value = f64::from_bits(prev);
        }
        let runs = r.varint()?;
        r.check_room("quality runs", runs, 2)?;
        let mut filled = 0usize;
        for _ in 0..runs {
            let offset = r.pos;
            let [code] = r.array::<1>("quality")?;
            let quality =
                Quality::from_code(code).ok_or(DecodeError::InvalidQuality { code, offset })?;
            let len = r.varint()?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| filled.checked_add(l))
                .filter(|e| *e <= count)
                .ok_or(DecodeError::QualityRuns { index })?;
            for s in &mut samples[filled..end] {
                s.quality = quality;
            }
            filled = end;
        }
        if filled != count {
            return Err(DecodeError::QualityRuns { index });
        }
        series.push(Series {
            device,
            point,
            unit,
            samples,
        });
    }
    let drop_count = r.varint()?;
    r.check_room("drops", drop_count, 18)?;
    let mut drops = Vec::with_capacity(drop_count as usize);
    for _ in 0..drop_count {
        let first = u64::from_le_bytes(r.array("drop first_sequence")?);
        let last = u64::from_le_bytes(r.array("drop last_sequence")?);
        if first > last {
            return Err(DecodeError::SequenceRange { first, last });
        }
        let [code] = r.array::<1>("drop reason")?;
        let reason = DropReason::from_code(code).ok_or(DecodeError::InvalidDropReason(code))?;
        let n = r.varint()?;
        r.check_room("dropped spans", n, 19)?;
        let mut spans = Vec::with_capacity(n as usize);
        for _ in 0..n {
            spans.push(DroppedSpan {
                device: r.string("device")?,
                point: r.string("point")?,
                from_ms: i64::from_le_bytes(r.array("from_ms")?),
                to_ms: i64::from_le_bytes(r.array("to_ms")?),
                samples: r.varint()?,
            });
        }
        drops.push(Drop {
            first_sequence: first,
            last_sequence: last,
            reason,
            spans,
        });
    }
    let mut events = Vec::new();
    if version >= VERSION {
        let n = r.varint()?;
        if n > MAX_EVENTS as u64 {
            return Err(DecodeError::TooManyEvents);
        }
        // kind, four strings, two i64, two f64, a string, a count.
        r.check_room("anomaly events", n, 1 + 4 + 16 + 16 + 2)?;
        events.reserve(n as usize);
        for _ in 0..n {
            events.push(read_event(&mut r)?);
        }
    }
    if r.pos != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - r.pos));
    }
    Ok(Batch {
        gateway_id,
        first_sequence,
        sequence,
        created_ms,
        polled_through_ms,
        series,
        drops,
        events,
    })
}

fn put_event(p: &mut Vec<u8>, e: &AnomalyEvent) -> Result<(), EncodeError> {
    p.push(e.kind.code());
    put_str(p, "asset", &e.asset)?;
    put_str(p, "asset_class", &e.asset_class)?;
    put_str(p, "model_id", &e.model_id)?;
    put_str(p, "model_version", &e.model_version)?;
    p.extend_from_slice(&e.ts_ms.to_le_bytes());
    p.extend_from_slice(&e.window_start_ms.to_le_bytes());
    p.extend_from_slice(&e.score.to_bits().to_le_bytes());
    p.extend_from_slice(&e.raise_level.to_bits().to_le_bytes());
    put_str(p, "summary", &e.summary)?;
    put_varint(p, e.explanation.len() as u64);
    for c in &e.explanation {
        put_str(p, "feature", &c.feature)?;
        put_str(p, "unit", &c.unit)?;
        p.extend_from_slice(&c.share.to_bits().to_le_bytes());
        p.extend_from_slice(&c.value.to_bits().to_le_bytes());
        p.extend_from_slice(&c.expected.to_bits().to_le_bytes());
        put_str(p, "text", &c.text)?;
    }
    Ok(())
}

fn read_event(r: &mut Reader<'_>) -> Result<AnomalyEvent, DecodeError> {
    let [code] = r.array::<1>("event kind")?;
    let kind = AnomalyKind::from_code(code).ok_or(DecodeError::InvalidEventKind(code))?;
    let asset = r.string("asset")?;
    let asset_class = r.string("asset_class")?;
    let model_id = r.string("model_id")?;
    let model_version = r.string("model_version")?;
    let ts_ms = i64::from_le_bytes(r.array("ts_ms")?);
    let window_start_ms = i64::from_le_bytes(r.array("window_start_ms")?);
    let score = f64::from_bits(u64::from_le_bytes(r.array("score")?));
    let raise_level = f64::from_bits(u64::from_le_bytes(r.array("raise_level")?));
    let summary = r.string("summary")?;
    let n = r.varint()?;
    // Two strings, three f64, one string.
    r.check_room("explanation", n, 2 + 24 + 1)?;
    let mut explanation = Vec::with_capacity(n as usize);
    for _ in 0..n {
        explanation.push(Contribution {
            feature: r.string("feature")?,
            unit: r.string("unit")?,
            share: f64::from_bits(u64::from_le_bytes(r.array("share")?)),
            value: f64::from_bits(u64::from_le_bytes(r.array("value")?)),
            expected: f64::from_bits(u64::from_le_bytes(r.array("expected")?)),
            text: r.string("text")?,
        });
    }
    Ok(AnomalyEvent {
        kind,
        asset,
        asset_class,
        model_id,
        model_version,
        ts_ms,
        window_start_ms,
        score,
        raise_level,
        summary,
        explanation,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, what: &'static str, n: usize) -> Result<&'a [u8], DecodeError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < n {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: n - rest.len(),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(what, N)?);
        Ok(a)
    }

    /// Fails early when `count` items of at least `min_each` bytes cannot fit in
    /// what is left, so a lying count never drives a large allocation.
    fn check_room(&self, what: &'static str, count: u64, min_each: u64) -> Result<(), DecodeError> {
        let left = (self.buf.len() - self.pos) as u64;
        let need = count.saturating_mul(min_each);
        if need > left {
            return Err(DecodeError::Truncated {
                what,
                offset: self.pos,
                needed: usize::try_from(need - left).unwrap_or(usize::MAX),
            });
        }
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut value: u64 = 0;
        for i in 0..10 {
            let [b] = self.array::<1>("varint")?;
            if i == 9 && b > 1 {
                return Err(DecodeError::VarintOverflow(start));
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow(start))
    }

    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let len = self.varint()? as usize;
        if len > MAX_STRING_LEN {
            return Err(DecodeError::TooLarge {
                what: field,
                len,
                max: MAX_STRING_LEN,
            });
        }
        let offset = self.pos;
        let bytes = self.take(field, len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8 { field, offset })
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_str(out: &mut Vec<u8>, field: &'static str, s: &str) -> Result<(), EncodeError> {
    if s.len() > MAX_STRING_LEN {
        return Err(EncodeError::StringTooLong {
            field,
            len: s.len(),
        });
    }
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_batch() -> Batch {
        Batch {
            gateway_id: "bhadla-gw-01".into(),
            first_sequence: 40,
            sequence: 42,
            created_ms: 1_782_000_000_000,
            polled_through_ms: 1_782_000_001_500,
            events: vec![],
            drops: vec![Drop {
                first_sequence: 7,
                last_sequence: 9,
                reason: DropReason::Capacity,
                spans: vec![DroppedSpan {
                    device: "inv-01".into(),
                    point: "ac_power".into(),
                    from_ms: 1_781_000_000_000,
                    to_ms: 1_781_000_090_000,
                    samples: 91,
                }],
            }],
            series: vec![
                Series {
                    device: "inv-01".into(),
                    point: "ac_power".into(),
                    unit: "W".into(),
                    samples: vec![
                        Sample {
                            ts_ms: 1_782_000_000_000,
                            value: 81_230.0,
                            quality: Quality::Good,
                        },
                        Sample {
                            ts_ms: 1_782_000_001_000,
                            value: 81_250.5,
                            quality: Quality::Bad,
                        },
                    ],
                },
                Series {
                    device: "inv-02".into(),
                    point: "cabinet_temperature".into(),
                    unit: "°C".into(),
                    samples: vec![Sample {
                        ts_ms: 1_782_000_000_500,
                        value: -3.25,
                        quality: Quality::CommsLost,
                    }],
                },
            ],
        }
    }

    #[test]
    fn round_trips_with_and_without_compression() {
        let b = sample_batch();
        for c in [Compression::None, Compression::Zstd { level: 3 }] {
            let frame = encode(&b, c).unwrap();
            assert_eq!(decode(&frame).unwrap(), b);
        }
    }

    fn anomaly_event() -> AnomalyEvent {
        AnomalyEvent {
            kind: AnomalyKind::Raised,
            asset: "WTG-01".into(),
            asset_class: "wind_turbine".into(),
            model_id: "wind-turbine-ae".into(),
            model_version: "1.0.0".into(),
            ts_ms: 1_782_000_000_000,
            window_start_ms: 1_781_999_701_000,
            score: 3.25,
            raise_level: 0.12,
            summary: "gearbox temperature 14 °C above expected for this power".into(),
            explanation: vec![
                Contribution {
                    feature: "gearbox_rise".into(),
                    unit: "°C".into(),
                    share: 0.93,
                    value: 52.0,
                    expected: 38.0,
                    text: "gearbox temperature 14 °C above expected for this power".into(),
                },
                Contribution {
                    feature: "power_mean".into(),
                    unit: "kW".into(),
                    share: 0.07,
                    value: 1200.0,
                    expected: 1180.0,
                    text: "power 20 kW above expected".into(),
                },
            ],
        }
    }

    #[test]
    fn events_travel_in_version_3_and_batches_without_them_stay_version_2() {
        let plain = sample_batch();
        let f2 = encode(&plain, Compression::None).unwrap();
        assert_eq!(f2[4], VERSION_2);
        let mut with = sample_batch();
        with.events = vec![anomaly_event(), {
            let mut c = anomaly_event();
            c.kind = AnomalyKind::Cleared;
            c.explanation.clear();
            c
        }];
        for c in [Compression::None, Compression::Zstd { level: 3 }] {
            let f3 = encode(&with, c).unwrap();
            assert_eq!(f3[4], VERSION);
            assert_eq!(decode(&f3).unwrap(), with);
        }
        // The v3 payload is the v2 payload plus the events section: a
        // version-2 decoder rejects the frame by its version byte (defined
        // behaviour), never misreads it.
        let f3 = encode(&with, Compression::None).unwrap();
        assert_eq!(
            f3[HEADER_LEN..HEADER_LEN + f2.len() - HEADER_LEN],
            f2[HEADER_LEN..]
        );
        let mut as_v2 = f3.clone();
        as_v2[4] = VERSION_2;
        assert_eq!(
            decode(&as_v2),
            Err(DecodeError::TrailingBytes(f3.len() - f2.len()))
        );
        // Every truncation of the events section is a typed error.
        let raw = &f3[HEADER_LEN..];
        for cut in f2.len() - HEADER_LEN..raw.len() {
            assert!(decode_payload(&raw[..cut], VERSION).is_err(), "{cut}");
        }
    }

    #[test]
    fn bad_event_kind_and_lying_event_counts_are_rejected() {
        let mut with = sample_batch();
        with.events = vec![anomaly_event()];
        let f3 = encode(&with, Compression::None).unwrap();
        let plain_len = encode(&sample_batch(), Compression::None).unwrap().len();
        let mut raw = f3[HEADER_LEN..].to_vec();
        // Event count at the first byte after the v2 part, kind right after.
        let at = plain_len - HEADER_LEN;
        raw[at + 1] = 7;
        assert_eq!(
            decode_payload(&raw, VERSION),
            Err(DecodeError::InvalidEventKind(7))
        );
        raw[at + 1] = 0;
        raw[at] = 100;
        assert!(matches!(
            decode_payload(&raw, VERSION),
            Err(DecodeError::Truncated { .. })
        ));
    }

    /// The exact bytes of a small uncompressed frame, so the spec's worked
    /// example and the code cannot drift apart.
    #[test]
    fn uncompressed_layout_matches_the_spec_example() {
        let b = Batch {
            gateway_id: "gw".into(),
            first_sequence: 1,
            sequence: 1,
            created_ms: 1000,
            polled_through_ms: 1000,
            series: vec![Series {
                device: "d".into(),
                point: "p".into(),
                unit: "W".into(),
                samples: vec![
                    Sample {
                        ts_ms: 1000,
                        value: 1.5,
                        quality: Quality::Good,
                    },
                    Sample {
                        ts_ms: 2000,
                        value: 1.5,
                        quality: Quality::Good,
                    },
                    Sample {
                        ts_ms: 3001,
                        value: 2.0,
                        quality: Quality::Stale,
                    },
                ],
            }],
            drops: vec![],
            events: vec![],
        };
        let f = encode(&b, Compression::None).unwrap();
        let payload: Vec<u8> = [
            &[2, b'g', b'w'][..],
            &1u64.to_le_bytes(),
            &1u64.to_le_bytes(),
            &1000i64.to_le_bytes(),
            &1000i64.to_le_bytes(),
            &[1, 1, b'd', 1, b'p', 1, b'W', 3],
            &1000i64.to_le_bytes(),
            &[0xd0, 0x0f],       // first delta 1000, zig-zag 2000, LEB128
            &[2],                // delta of delta +1, zig-zag 2
            &[0x06, 0x3f, 0xf8], // 1.5 = 0x3FF8000000000000: 0 leading, 6 trailing zero bytes
            &[0x80],             // unchanged
            &[0x06, 0x7f, 0xf8], // 1.5 ^ 2.0 = 0x7FF8000000000000
            &[2, 0, 2, 1, 1],    // two runs: good ×2, stale ×1
            &[0],                // no drop reports
        ]
        .concat();
        assert_eq!(&f[..8], b"DCMB\x02\x00\x00\x00");
        assert_eq!(u32_at(&f, 8) as usize, payload.len());
        assert_eq!(u32_at(&f, 12) as usize, payload.len());
        assert_eq!(u32_at(&f, 16), crc32fast::hash(&payload));
        assert_eq!(&f[HEADER_LEN..], &payload[..]);
        assert_eq!(decode(&f).unwrap(), b);
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let frame = encode(&sample_batch(), Compression::None).unwrap();
        for n in 0..frame.len() {
            assert!(decode(&frame[..n]).is_err(), "prefix of {n} bytes decoded");
        }
    }

    #[test]
    fn wrong_version_and_magic_are_named() {
        let mut f = encode(&sample_batch(), Compression::None).unwrap();
        f[4] = 9;
        assert_eq!(decode(&f), Err(DecodeError::UnsupportedVersion(9)));
        f[0] = b'X';
        assert_eq!(decode(&f), Err(DecodeError::BadMagic));
    }

    #[test]
    fn flipped_payload_byte_fails_the_checksum() {
        let mut f = encode(&sample_batch(), Compression::Zstd { level: 1 }).unwrap();
        let last = f.len() - 1;
        f[last] ^= 0x55;
        assert_eq!(decode(&f), Err(DecodeError::Checksum));
    }

    #[test]
    fn oversized_declared_length_is_rejected_before_allocating() {
        let mut f = encode(&sample_batch(), Compression::Zstd { level: 1 }).unwrap();
        f[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&f), Err(DecodeError::TooLarge { .. })));
    }

    #[test]
    fn lying_sample_count_is_truncation_not_allocation() {
        // One series claiming 2^40 samples with only a few bytes behind it.
        let mut p = vec![1, b'g'];
        p.extend_from_slice(&[0u8; 32]);
        p.push(1);
        p.extend_from_slice(&[1, b'd', 1, b'p', 0]);
        let mut p2 = p.clone();
        put_varint(&mut p, 1 << 40);
        p.extend_from_slice(&[0u8; 32]);
        let err = decode_payload(&p, VERSION_2).unwrap_err();
        assert_eq!(err, DecodeError::TooManySamples);
        put_varint(&mut p2, 1000);
        p2.extend_from_slice(&[0u8; 32]);
        assert!(matches!(
            decode_payload(&p2, VERSION_2),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn steady_polls_compress_to_a_few_bytes_per_sample() {
        // 600 one-second samples of a slowly moving, quantised value.
        let samples: Vec<Sample> = (0..600)
            .map(|i| Sample {
                ts_ms: 1_782_000_000_000 + i * 1000,
                value: 81_000.0 + ((i / 7) * 10) as f64,
                quality: Quality::Good,
            })
            .collect();
        let mut b = sample_batch();
        b.series = vec![Series {
            device: "inv-01".into(),
            point: "ac_power".into(),
            unit: "W".into(),
            samples,
        }];
        let raw = encode(&b, Compression::None).unwrap().len();
        let z = encode(&b, Compression::Zstd { level: 3 }).unwrap().len();
        assert!(raw < 600 * 4, "uncompressed {raw} bytes");
        assert!(z < 600, "compressed {z} bytes");
    }

    #[test]
    fn inverted_sequence_range_is_rejected_both_ways() {
        let mut b = sample_batch();
        b.first_sequence = b.sequence + 1;
        assert!(matches!(
            encode(&b, Compression::None),
            Err(EncodeError::SequenceRange { .. })
        ));
    }

    #[test]
    fn empty_series_cannot_be_encoded() {
        let mut b = sample_batch();
        b.series[0].samples.clear();
        assert!(matches!(
            encode(&b, Compression::None),
            Err(EncodeError::EmptySeries { .. })
        ));
    }

    fn arb_quality() -> impl Strategy<Value = Quality> {
        prop_oneof![
            Just(Quality::Good),
            Just(Quality::Stale),
            Just(Quality::CommsLost),
            Just(Quality::Bad)
        ]
    }

    fn arb_series() -> impl Strategy<Value = Series> {
        (
            "[a-z0-9-]{0,20}",
            "[a-z_]{1,30}",
            "\\PC{0,4}",
            prop::collection::vec((any::<i64>(), any::<f64>(), arb_quality()), 1..50),
        )
            .prop_map(|(device, point, unit, s)| Series {
                device,
                point,
                unit,
                samples: s
                    .into_iter()
                    .map(|(ts_ms, value, quality)| Sample {
                        ts_ms,
                        value,
                        quality,
                    })
                    .collect(),
            })
    }

    proptest! {
        #[test]
        fn any_batch_round_trips(
            gateway_id in "[a-zA-Z0-9._-]{1,64}",
            sequence in any::<u64>(),
            created_ms in any::<i64>(),
            series in prop::collection::vec(arb_series(), 0..8),
            zstd in any::<bool>(),
        ) {
            let b = Batch {
                gateway_id,
                first_sequence: sequence / 2,
                sequence,
                created_ms,
                polled_through_ms: created_ms,
                series,
                drops: vec![],
                events: vec![],
            };
            let c = if zstd { Compression::Zstd { level: 1 } } else { Compression::None };
            let decoded = decode(&encode(&b, c).unwrap()).unwrap();
            // Compare bit patterns so NaN payloads count as equal.
            prop_assert_eq!(decoded.series.len(), b.series.len());
            for (x, y) in decoded.series.iter().zip(&b.series) {
                prop_assert_eq!(&x.device, &y.device);
                prop_assert_eq!(&x.unit, &y.unit);
                for (s, t) in x.samples.iter().zip(&y.samples) {
                    prop_assert_eq!(s.ts_ms, t.ts_ms);
                    prop_assert_eq!(s.value.to_bits(), t.value.to_bits());
                    prop_assert_eq!(s.quality, t.quality);
                }
            }
            prop_assert_eq!(decoded.sequence, b.sequence);
            prop_assert_eq!(decoded.first_sequence, b.first_sequence);
        }

        #[test]
        fn garbage_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn garbage_behind_a_valid_header_never_panics(
            body in prop::collection::vec(any::<u8>(), 0..512),
            zstd in any::<bool>(),
        ) {
            // A correct header and checksum so the fuzzing reaches the payload parser.
            let mut f = Vec::new();
            f.extend_from_slice(&MAGIC);
            f.push(VERSION);
            f.push(u8::from(zstd));
            f.extend_from_slice(&[0, 0]);
            f.extend_from_slice(&(body.len() as u32).to_le_bytes());
            f.extend_from_slice(&(body.len() as u32).to_le_bytes());
            f.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
            f.extend_from_slice(&body);
            let _ = decode(&f);
        }
    }
}

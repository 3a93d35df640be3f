//! The versioned binary encoding of a [`Batch`].
//!
//! Normative description: `docs/specs/wire-format.md`. In short: a fixed
//! 20-byte header (magic, version, compression, lengths, CRC-32 of the payload
//! as sent), then the payload, optionally zstd-compressed. The payload is
//! columnar per series: timestamps as a first value plus zig-zag varint
//! deltas, values as little-endian IEEE-754 doubles, one quality byte each.
//!
//! Decoding checks every length against the bytes actually present before it
//! allocates, so a hostile frame can cost at most [`MAX_RAW_LEN`] bytes of
//! memory and never panics.

use crate::model::{Batch, Quality, Sample, Series};
use thiserror::Error;

/// First four bytes of every frame: `DCMB`.
pub const MAGIC: [u8; 4] = *b"DCMB";
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
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
    #[error("encoded payload is {0} bytes; at most {MAX_RAW_LEN} allowed")]
    TooLarge(usize),
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
    #[error("unsupported format version {0}; this build reads version {VERSION}")]
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
    #[error("{0} unexpected bytes after the last series")]
    TrailingBytes(usize),
}

/// Encodes a batch into one frame.
pub fn encode(batch: &Batch, compression: Compression) -> Result<Vec<u8>, EncodeError> {
    let total = batch.sample_count();
    if total > MAX_SAMPLES {
        return Err(EncodeError::TooManySamples(total));
    }
    let mut p = Vec::with_capacity(64 + total * 11);
    put_str(&mut p, "gateway_id", &batch.gateway_id)?;
    p.extend_from_slice(&batch.sequence.to_le_bytes());
    p.extend_from_slice(&batch.created_ms.to_le_bytes());
    put_varint(&mut p, batch.series.len() as u64);
    for s in &batch.series {
        let Some(first) = s.samples.first() else {
            return Err(EncodeError::EmptySeries {
                device: s.device.clone(),
                point: s.point.clone(),
            });
        };
        put_str(&mut p, "device", &s.device)?;
        put_str(&mut p, "point", &s.point)?;
        put_str(&mut p, "unit", &s.unit)?;
        put_varint(&mut p, s.samples.len() as u64);
        p.extend_from_slice(&first.ts_ms.to_le_bytes());
        let mut prev = first.ts_ms;
        for x in &s.samples[1..] {
            put_varint(&mut p, zigzag(x.ts_ms.wrapping_sub(prev)));
            prev = x.ts_ms;
        }
        for x in &s.samples {
            p.extend_from_slice(&x.value.to_le_bytes());
        }
        p.extend(s.samples.iter().map(|x| x.quality.code()));
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
    out.push(VERSION);
    out.push(compression.code());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&(raw_len as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
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
    if header[4] != VERSION {
        return Err(DecodeError::UnsupportedVersion(header[4]));
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
        decode_payload(payload)
    } else {
        let raw = zstd::bulk::decompress(payload, raw_len)
            .map_err(|e| DecodeError::Decompress(e.to_string()))?;
        if raw.len() != raw_len {
            return Err(DecodeError::LengthMismatch {
                declared: raw_len,
                actual: raw.len(),
            });
        }
        decode_payload(&raw)
    }
}

fn decode_payload(buf: &[u8]) -> Result<Batch, DecodeError> {
    let mut r = Reader { buf, pos: 0 };
    let gateway_id = r.string("gateway_id")?;
    let sequence = u64::from_le_bytes(r.array("sequence")?);
    let created_ms = i64::from_le_bytes(r.array("created_ms")?);
    let series_count = r.varint()?;
    // Each series needs at least 3 length bytes, 1 count byte, 8 + 8 + 1 bytes.
    r.check_room("series", series_count, 21)?;
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
        // 8 value bytes + 1 quality byte per sample, plus at least one delta byte.
        r.check_room("samples", count, 9)?;
        let count = count as usize;
        let mut ts = Vec::with_capacity(count);
        let mut prev = i64::from_le_bytes(r.array("first timestamp")?);
        ts.push(prev);
        for _ in 1..count {
            let delta = unzigzag(r.varint()?);
            // Wrapping on both sides makes every i64 sequence round-trip.
            prev = prev.wrapping_add(delta);
            ts.push(prev);
        }
        let values = r.take("values", count * 8)?;
        let qoff = r.pos;
        let qualities = r.take("qualities", count)?;
        let mut samples = Vec::with_capacity(count);
        for (i, (ts_ms, (v, q))) in ts
            .into_iter()
            .zip(values.chunks_exact(8).zip(qualities))
            .enumerate()
        {
            let mut b = [0u8; 8];
            b.copy_from_slice(v);
            let quality = Quality::from_code(*q).ok_or(DecodeError::InvalidQuality {
                code: *q,
                offset: qoff + i,
            })?;
            samples.push(Sample {
                ts_ms,
                value: f64::from_le_bytes(b),
                quality,
            });
        }
        series.push(Series {
            device,
            point,
            unit,
            samples,
        });
    }
    if r.pos != buf.len() {
        return Err(DecodeError::TrailingBytes(buf.len() - r.pos));
    }
    Ok(Batch {
        gateway_id,
        sequence,
        created_ms,
        series,
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
            sequence: 42,
            created_ms: 1_782_000_000_000,
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

    /// The exact bytes of a small uncompressed frame, so the spec's worked
    /// example and the code cannot drift apart.
    #[test]
    fn uncompressed_layout_matches_the_spec_example() {
        let b = Batch {
            gateway_id: "gw".into(),
            sequence: 1,
            created_ms: 1000,
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
                        ts_ms: 999,
                        value: 2.0,
                        quality: Quality::Stale,
                    },
                ],
            }],
        };
        let f = encode(&b, Compression::None).unwrap();
        let payload: Vec<u8> = [
            &[2, b'g', b'w'][..],
            &1u64.to_le_bytes(),
            &1000i64.to_le_bytes(),
            &[1, 1, b'd', 1, b'p', 1, b'W', 2],
            &1000i64.to_le_bytes(),
            &[1], // zig-zag(-1)
            &1.5f64.to_le_bytes(),
            &2.0f64.to_le_bytes(),
            &[0, 1],
        ]
        .concat();
        assert_eq!(&f[..8], b"DCMB\x01\x00\x00\x00");
        assert_eq!(u32_at(&f, 8) as usize, payload.len());
        assert_eq!(u32_at(&f, 12) as usize, payload.len());
        assert_eq!(u32_at(&f, 16), crc32fast::hash(&payload));
        assert_eq!(&f[HEADER_LEN..], &payload[..]);
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
        p.extend_from_slice(&[0u8; 16]);
        p.push(1);
        p.extend_from_slice(&[1, b'd', 1, b'p', 0]);
        let mut p2 = p.clone();
        put_varint(&mut p, 1 << 40);
        p.extend_from_slice(&[0u8; 32]);
        let err = decode_payload(&p).unwrap_err();
        assert_eq!(err, DecodeError::TooManySamples);
        put_varint(&mut p2, 1000);
        p2.extend_from_slice(&[0u8; 32]);
        assert!(matches!(
            decode_payload(&p2),
            Err(DecodeError::Truncated { .. })
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
            let b = Batch { gateway_id, sequence, created_ms, series };
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

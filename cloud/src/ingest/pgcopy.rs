//! The PostgreSQL binary `COPY` format for `samples (point_id, ts_ms, value,
//! quality)`: header, one tuple per sample, trailer. Network byte order.
//! <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>

use super::rollups::Agg;

/// `COPY` statement matching [`push_tuple`]'s column order and types.
pub const COPY_SAMPLES: &str =
    "COPY samples (point_id, ts_ms, value, quality) FROM STDIN (FORMAT binary)";

/// Bytes of one tuple with a value (44) or with a NULL value (36).
pub const TUPLE_LEN: usize = 2 + (4 + 8) + (4 + 8) + (4 + 8) + (4 + 2);

/// Bytes of one delta row at most (both extremes present).
pub const DELTA_LEN: usize = 2 + 7 * (4 + 8);

/// Signature, flags (no OIDs), header extension length 0.
pub fn push_header(buf: &mut Vec<u8>) {
    buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    buf.extend_from_slice(&0i32.to_be_bytes());
    buf.extend_from_slice(&0i32.to_be_bytes());
}

/// One row: `int8`, `int8`, `float8` or NULL, `int2`.
pub fn push_tuple(buf: &mut Vec<u8>, point_id: i64, ts_ms: i64, value: Option<f64>, quality: i16) {
    buf.extend_from_slice(&4i16.to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&point_id.to_be_bytes());
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&ts_ms.to_be_bytes());
    match value {
        Some(v) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
    buf.extend_from_slice(&2i32.to_be_bytes());
    buf.extend_from_slice(&quality.to_be_bytes());
}

fn push_f64(buf: &mut Vec<u8>, v: Option<f64>) {
    match v {
        Some(v) => {
            buf.extend_from_slice(&8i32.to_be_bytes());
            buf.extend_from_slice(&v.to_bits().to_be_bytes());
        }
        None => buf.extend_from_slice(&(-1i32).to_be_bytes()),
    }
}

fn push_i64(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&v.to_be_bytes());
}

/// One `rollup_deltas` row (see [`crate::ingest::rollups::COPY_DELTAS`]):
/// `int8` × 4, `float8`, `float8` or NULL × 2.
pub fn push_delta(buf: &mut Vec<u8>, point_id: i64, bucket_ms: i64, a: &Agg) {
    buf.extend_from_slice(&7i16.to_be_bytes());
    push_i64(buf, point_id);
    push_i64(buf, bucket_ms);
    push_i64(buf, a.samples);
    push_i64(buf, a.count);
    push_f64(buf, Some(a.sum));
    push_f64(buf, a.min);
    push_f64(buf, a.max);
}

/// Field count −1 ends the data.
pub fn push_trailer(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i16).to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_header_tuple_and_trailer() {
        let mut b = Vec::new();
        push_header(&mut b);
        assert_eq!(b.len(), 19);
        assert_eq!(&b[..11], b"PGCOPY\n\xff\r\n\0");
        push_tuple(&mut b, 1, 2, Some(1.5), 3);
        assert_eq!(b.len(), 19 + TUPLE_LEN);
        assert_eq!(&b[19..21], &[0, 4]);
        assert_eq!(&b[21..25], &[0, 0, 0, 8]);
        assert_eq!(&b[25..33], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&b[45..49], &[0, 0, 0, 8]);
        assert_eq!(&b[49..57], &1.5f64.to_be_bytes());
        assert_eq!(&b[57..], &[0, 0, 0, 2, 0, 3]);
        let before = b.len();
        push_tuple(&mut b, 1, 2, None, 0);
        assert_eq!(b.len() - before, TUPLE_LEN - 8);
        assert_eq!(&b[before + 26..before + 30], &[0xff; 4]);
        push_trailer(&mut b);
        assert_eq!(&b[b.len() - 2..], &[0xff, 0xff]);
    }

    #[test]
    fn encodes_a_delta_with_null_extremes() {
        let mut b = Vec::new();
        let a = Agg {
            samples: 2,
            ..Agg::EMPTY
        };
        push_delta(&mut b, 1, 60_000, &a);
        // 2 + 4 × 12 + 12 (sum) + 2 × 4 (NULL min, max)
        assert_eq!(b.len(), 2 + 48 + 12 + 8);
        assert_eq!(&b[..2], &[0, 7]);
        assert_eq!(&b[b.len() - 8..], &[0xff; 8]);
    }
}

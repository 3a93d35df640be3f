//! The PostgreSQL binary `COPY` format for `samples (point_id, ts_ms, value,
//! quality)`: header, one tuple per sample, trailer. Network byte order.
//! <https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4>

/// `COPY` statement matching [`push_tuple`]'s column order and types.
pub const COPY_SAMPLES: &str =
    "COPY samples (point_id, ts_ms, value, quality) FROM STDIN (FORMAT binary)";

/// Bytes of one tuple with a value (44) or with a NULL value (36).
pub const TUPLE_LEN: usize = 2 + (4 + 8) + (4 + 8) + (4 + 8) + (4 + 2);

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
}

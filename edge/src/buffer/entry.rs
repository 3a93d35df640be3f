//! Layout of one stored batch: a fixed header, then the wire frame.
//!
//! `[samples u32 LE][first_sequence u64 LE][created_ms i64 LE][frame]`

use dcmms_shared::Batch;
use dcmms_shared::wire::EncodeError;

/// A parsed stored batch, borrowing the frame.
#[derive(Debug)]
pub struct Entry<'a> {
    pub samples: u64,
    pub first_sequence: u64,
    pub created_ms: i64,
    pub frame: &'a [u8],
}

impl<'a> Entry<'a> {
    pub const HEADER_LEN: usize = 20;

    pub fn encode(batch: &Batch, samples: u64) -> Result<Vec<u8>, EncodeError> {
        let frame = super::encode_frame(batch)?;
        let mut v = Vec::with_capacity(Self::HEADER_LEN + frame.len());
        v.extend_from_slice(&Self::header(
            samples,
            batch.first_sequence,
            batch.created_ms,
        ));
        v.extend_from_slice(&frame);
        Ok(v)
    }

    /// The fixed header alone.
    pub fn header(samples: u64, first_sequence: u64, created_ms: i64) -> [u8; 20] {
        let mut h = [0u8; 20];
        h[0..4].copy_from_slice(&(samples.min(u64::from(u32::MAX)) as u32).to_le_bytes());
        h[4..12].copy_from_slice(&first_sequence.to_le_bytes());
        h[12..20].copy_from_slice(&created_ms.to_le_bytes());
        h
    }

    /// `None` when the value is too short to be an entry.
    pub fn parse(v: &'a [u8]) -> Option<Entry<'a>> {
        let samples = u32::from_le_bytes(v.get(0..4)?.try_into().ok()?);
        let first_sequence = u64::from_le_bytes(v.get(4..12)?.try_into().ok()?);
        let created_ms = i64::from_le_bytes(v.get(12..20)?.try_into().ok()?);
        Some(Entry {
            samples: u64::from(samples),
            first_sequence,
            created_ms,
            frame: v.get(Self::HEADER_LEN..)?,
        })
    }
}

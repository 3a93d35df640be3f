//! The durable store-and-forward buffer, on sled.
//!
//! One sled tree holds sealed batches, each already encoded in the wire format
//! (zstd-compressed), keyed by sequence number, so a buffered batch is sent as
//! it lies on disk and its sequence never changes between retries. A batch
//! counts as buffered only after `flush_async` returned. Deleting an
//! acknowledged batch is not flushed: after a crash it may be sent again, and
//! the cloud acknowledges the replay without storing it twice.
//!
//! Keys: `b` + sequence (u64 big-endian) → `[sample count u32 LE][frame]`;
//! `q` + sequence → the same, for batches the cloud rejected for good;
//! `m:next_seq` → the next sequence (u64 big-endian).

use crate::metrics::EdgeMetrics;
use dcmms_shared::wire::{self, Compression};
use dcmms_shared::{Batch, Series};
use std::path::Path;
use thiserror::Error;
use tokio::sync::Mutex;

const BATCH_PREFIX: u8 = b'b';
const QUARANTINE_PREFIX: u8 = b'q';
const NEXT_SEQ_KEY: &[u8] = b"m:next_seq";

#[derive(Debug, Error)]
pub enum BufferError {
    #[error("buffer storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot encode batch: {0}")]
    Encode(#[from] wire::EncodeError),
    #[error("corrupt buffer entry {key:?}: {problem}")]
    Corrupt { key: Vec<u8>, problem: &'static str },
}

/// A sealed batch waiting for acknowledgement.
#[derive(Debug, Clone)]
pub struct Pending {
    pub sequence: u64,
    pub samples: u64,
    pub frame: Vec<u8>,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    batches: u64,
    bytes: u64,
}

#[derive(Debug)]
pub struct Buffer {
    db: sled::Db,
    tree: sled::Tree,
    gateway_id: String,
    max_bytes: u64,
    state: Mutex<State>,
    metrics: EdgeMetrics,
}

fn key(prefix: u8, seq: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = prefix;
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

fn seq_of(k: &[u8]) -> Option<u64> {
    let b: [u8; 8] = k.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(b))
}

fn samples_of(v: &[u8]) -> Option<u64> {
    let b: [u8; 4] = v.get(..4)?.try_into().ok()?;
    Some(u64::from(u32::from_le_bytes(b)))
}

impl Buffer {
    /// Opens (or creates) the buffer at `path` and recovers its counters.
    pub fn open(
        path: &Path,
        cache_capacity: u64,
        max_bytes: u64,
        gateway_id: &str,
        metrics: EdgeMetrics,
    ) -> Result<Buffer, BufferError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::LowSpace)
            .open()?;
        let tree = db.open_tree("buffer")?;
        let mut batches = 0;
        let mut bytes = 0;
        let mut last_seq = None;
        for item in tree.scan_prefix([BATCH_PREFIX]) {
            let (k, v) = item?;
            batches += 1;
            bytes += v.len() as u64;
            last_seq = seq_of(&k);
        }
        let stored_next = match tree.get(NEXT_SEQ_KEY)? {
            Some(v) => Some(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                BufferError::Corrupt {
                    key: NEXT_SEQ_KEY.to_vec(),
                    problem: "next sequence is not 8 bytes",
                }
            })?)),
            None => None,
        };
        // A brand-new buffer starts at unix-ms × 1000, so a gateway whose buffer
        // was wiped never reuses a sequence the cloud has already seen.
        let fresh_start = (crate::drivers::now_ms().max(0) as u64).saturating_mul(1000);
        let next_seq = stored_next
            .unwrap_or(fresh_start)
            .max(last_seq.map_or(0, |s| s + 1));
        metrics.buffer_pending_batches.set(batches as i64);
        metrics.buffer_pending_bytes.set(bytes as i64);
        tracing::info!(path = %path.display(), batches, bytes, next_seq, "buffer opened");
        Ok(Buffer {
            db,
            tree,
            gateway_id: gateway_id.to_string(),
            max_bytes,
            state: Mutex::new(State {
                next_seq,
                batches,
                bytes,
            }),
            metrics,
        })
    }

    /// Seals `series` into a new batch and makes it durable. Returns its
    /// sequence once it is on disk.
    pub async fn append(&self, series: Vec<Series>) -> Result<u64, BufferError> {
        let mut st = self.state.lock().await;
        let sequence = st.next_seq;
        let now = crate::drivers::now_ms();
        let batch = Batch {
            gateway_id: self.gateway_id.clone(),
            first_sequence: sequence,
            sequence,
            created_ms: now,
            polled_through_ms: now,
            series,
            drops: Vec::new(),
        };
        let samples = batch.sample_count() as u64;
        let frame = wire::encode(&batch, Compression::Zstd { level: 3 })?;
        let mut value = Vec::with_capacity(4 + frame.len());
        value.extend_from_slice(&(samples as u32).to_le_bytes());
        value.extend_from_slice(&frame);
        let len = value.len() as u64;
        let mut b = sled::Batch::default();
        b.insert(&key(BATCH_PREFIX, sequence), value);
        b.insert(NEXT_SEQ_KEY, &(sequence + 1).to_be_bytes());
        self.tree.apply_batch(b)?;
        self.db.flush_async().await?;
        st.next_seq = sequence + 1;
        st.batches += 1;
        st.bytes += len;
        self.metrics.samples_buffered.inc_by(samples);
        self.enforce_cap(&mut st)?;
        self.publish(&st);
        Ok(sequence)
    }

    /// Drops the oldest batches while over the byte cap (always keeping the newest).
    fn enforce_cap(&self, st: &mut State) -> Result<(), BufferError> {
        while st.bytes > self.max_bytes && st.batches > 1 {
            let Some((k, v)) = self.tree.scan_prefix([BATCH_PREFIX]).next().transpose()? else {
                break;
            };
            self.tree.remove(&k)?;
            let samples = samples_of(&v).unwrap_or(0);
            st.batches -= 1;
            st.bytes = st.bytes.saturating_sub(v.len() as u64);
            self.metrics.samples_dropped.inc_by(samples);
            tracing::warn!(
                sequence = seq_of(&k),
                samples,
                "buffer full: dropped the oldest batch"
            );
        }
        Ok(())
    }

    fn publish(&self, st: &State) {
        self.metrics.buffer_pending_batches.set(st.batches as i64);
        self.metrics.buffer_pending_bytes.set(st.bytes as i64);
    }

    /// The oldest batch not yet acknowledged.
    pub fn oldest(&self) -> Result<Option<Pending>, BufferError> {
        let Some((k, v)) = self.tree.scan_prefix([BATCH_PREFIX]).next().transpose()? else {
            return Ok(None);
        };
        let (Some(sequence), Some(samples)) = (seq_of(&k), samples_of(&v)) else {
            return Err(BufferError::Corrupt {
                key: k.to_vec(),
                problem: "entry too short",
            });
        };
        Ok(Some(Pending {
            sequence,
            samples,
            frame: v[4..].to_vec(),
        }))
    }

    /// Forgets an acknowledged batch.
    pub async fn remove(&self, sequence: u64) -> Result<(), BufferError> {
        let mut st = self.state.lock().await;
        if let Some(v) = self.tree.remove(key(BATCH_PREFIX, sequence))? {
            st.batches = st.batches.saturating_sub(1);
            st.bytes = st.bytes.saturating_sub(v.len() as u64);
        }
        self.publish(&st);
        Ok(())
    }

    /// Moves a batch the cloud will never accept out of the send queue, kept
    /// for inspection rather than deleted.
    pub async fn quarantine(&self, sequence: u64) -> Result<(), BufferError> {
        let mut st = self.state.lock().await;
        if let Some(v) = self.tree.remove(key(BATCH_PREFIX, sequence))? {
            st.batches = st.batches.saturating_sub(1);
            st.bytes = st.bytes.saturating_sub(v.len() as u64);
            self.tree.insert(key(QUARANTINE_PREFIX, sequence), v)?;
            self.db.flush_async().await?;
        }
        self.publish(&st);
        Ok(())
    }

    /// Number of quarantined batches.
    pub fn quarantined(&self) -> usize {
        self.tree.scan_prefix([QUARANTINE_PREFIX]).count()
    }

    /// Flushes everything to disk (at shutdown).
    pub async fn flush(&self) -> Result<(), BufferError> {
        self.db.flush_async().await?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use dcmms_shared::{Quality, Sample};

    fn series(n: usize) -> Vec<Series> {
        vec![Series {
            device: "d".into(),
            point: "p".into(),
            unit: "W".into(),
            samples: (0..n)
                .map(|i| Sample {
                    ts_ms: i as i64,
                    value: i as f64,
                    quality: Quality::Good,
                })
                .collect(),
        }]
    }

    #[tokio::test]
    async fn batches_survive_reopen_in_order_and_sequences_keep_rising() {
        let dir = tempfile::tempdir().unwrap();
        let m = EdgeMetrics::default();
        let (s1, s2);
        {
            let b = Buffer::open(dir.path(), 1 << 20, 1 << 30, "gw", m.clone()).unwrap();
            s1 = b.append(series(3)).await.unwrap();
            s2 = b.append(series(5)).await.unwrap();
            assert_eq!(s2, s1 + 1);
            b.remove(s1).await.unwrap();
        }
        let b = Buffer::open(dir.path(), 1 << 20, 1 << 30, "gw", m).unwrap();
        let p = b.oldest().unwrap().unwrap();
        assert_eq!((p.sequence, p.samples), (s2, 5));
        let decoded = wire::decode(&p.frame).unwrap();
        assert_eq!(decoded.sequence, s2);
        assert_eq!(decoded.gateway_id, "gw");
        b.remove(s2).await.unwrap();
        // Even with the queue empty, a reopened buffer never reuses a sequence.
        drop(b);
        let b = Buffer::open(dir.path(), 1 << 20, 1 << 30, "gw", EdgeMetrics::default()).unwrap();
        assert!(b.oldest().unwrap().is_none());
        assert_eq!(b.append(series(1)).await.unwrap(), s2 + 1);
    }

    #[tokio::test]
    async fn over_the_cap_the_oldest_batches_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let m = EdgeMetrics::default();
        let b = Buffer::open(dir.path(), 1 << 20, 4096, "gw", m.clone()).unwrap();
        let mut seqs = Vec::new();
        for _ in 0..20 {
            seqs.push(b.append(series(200)).await.unwrap());
        }
        let st = m.status();
        assert!(
            st.bytes_pending <= 4096 || st.batches_pending == 1,
            "{st:?}"
        );
        assert!(st.samples_dropped > 0);
        assert_eq!(st.samples_dropped % 200, 0);
        let oldest = b.oldest().unwrap().unwrap().sequence;
        assert!(oldest > seqs[0]);
        assert_eq!(st.samples_dropped / 200, oldest - seqs[0]);
    }

    #[tokio::test]
    async fn quarantined_batches_leave_the_queue_but_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let b = Buffer::open(dir.path(), 1 << 20, 1 << 30, "gw", EdgeMetrics::default()).unwrap();
        let s = b.append(series(2)).await.unwrap();
        b.quarantine(s).await.unwrap();
        assert!(b.oldest().unwrap().is_none());
        assert_eq!(b.quarantined(), 1);
    }
}

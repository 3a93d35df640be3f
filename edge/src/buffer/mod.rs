//! The durable store-and-forward buffer, on sled. Normative behaviour:
//! `docs/specs/buffer.md`.
//!
//! One sled tree holds sealed batches, each encoded in the wire format
//! (zstd), keyed by its last sequence number, so a batch is sent as it lies
//! on disk and its sequences never change once it has been offered to the
//! cloud. A batch counts as buffered only after `flush_async` returned.
//!
//! Keys (one tree, so every change is one atomic `apply_batch`):
//!
//! | key | value |
//! |---|---|
//! | `b` + last sequence (u64 BE) | [`Entry`] header + frame |
//! | `a` + last sequence | empty: the batch has been offered to the cloud |
//! | `q` + last sequence | a quarantined entry (rejected for good by the cloud) |
//! | `d` + drop id (u64 BE) | a drop report not yet sealed into a batch (JSON) |
//! | `m:next_seq`, `m:next_drop` | counters (u64 BE) |
//!
//! Never-offered batches older than `compact_after_ms` are merged into larger
//! ones (the merged batch covers their whole sequence range), which is what
//! brings a long backlog to a few bytes per sample. Offered batches are never
//! merged: the cloud may already hold them. A merged batch's frame lives in
//! a segment file of [`cold`] (`<path>/cold/`), and its sled value is the
//! header plus a pointer: deleting delivered backlog then gives the space
//! back whole (docs/adr/0008).

pub mod cold;
mod entry;
#[cfg(test)]
mod model_tests;

pub use entry::Entry;

use crate::metrics::EdgeMetrics;
use cold::{Cold, Ptr};
use dcmms_shared::wire::{self, Compression};
use dcmms_shared::{AnomalyEvent, Batch, Drop, DropReason, DroppedSpan, Series};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use thiserror::Error;
use tokio::sync::Mutex;

const BATCH: u8 = b'b';
const OFFERED: u8 = b'a';
const QUARANTINE: u8 = b'q';
const DROP: u8 = b'd';
const NEXT_SEQ: &[u8] = b"m:next_seq";
const NEXT_DROP: &[u8] = b"m:next_drop";
/// Freshly sealed batches that go ahead of the backlog (about 10 s of data
/// at the default flush interval); older ones queue with the backlog.
const LIVE_MAX: usize = 20;

#[derive(Debug, Error)]
pub enum BufferError {
    #[error("buffer storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("cannot encode batch: {0}")]
    Encode(#[from] wire::EncodeError),
    #[error("corrupt buffer metadata {key:?}: {problem}")]
    Corrupt { key: Vec<u8>, problem: &'static str },
    #[error("cannot encode a drop report: {0}")]
    Json(#[from] serde_json::Error),
    #[error("compacted-batch segment files: {0}")]
    Cold(#[from] std::io::Error),
}

/// Limits and tuning of the buffer.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most bytes of sealed batches on disk; the oldest go first.
    pub max_bytes: u64,
    /// Batches older than this are dropped (reason `age`).
    pub max_age_ms: i64,
    /// Never-offered batches older than this may be merged.
    pub compact_after_ms: i64,
    /// A merged batch holds at most this many samples.
    pub compact_max_samples: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 2 << 30,
            max_age_ms: 7 * 24 * 3_600_000,
            compact_after_ms: 30_000,
            // Large enough to compress well (hundreds of samples per point),
            // small enough that one backlog request never holds live data up long.
            compact_max_samples: 50_000,
        }
    }
}

/// A sealed batch ready to be offered.
#[derive(Debug, Clone)]
pub struct Pending {
    pub first_sequence: u64,
    pub sequence: u64,
    pub samples: u64,
    pub created_ms: i64,
    pub frame: Vec<u8>,
    /// Sealed in this run and not yet sent: goes ahead of the backlog.
    pub live: bool,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    next_drop: u64,
    batches: u64,
    bytes: u64,
    /// Sequences sealed in this run, not yet offered, oldest first.
    live: VecDeque<u64>,
    /// Batches carrying anomaly events (wire version 3): offered before
    /// everything else, never merged. Rebuilt at open from the frames'
    /// version byte.
    priority: BTreeSet<u64>,
    /// Segment files of merged batches.
    cold: Cold,
    /// Pointers removed but not yet flushed: their segments are let go after
    /// the next flush, so a pointer that reappears after a crash still
    /// finds its record.
    deferred: Vec<Ptr>,
}

impl State {
    /// Lets go of the segments of removals that are durable now.
    fn release_deferred(&mut self) -> Result<(), BufferError> {
        for p in std::mem::take(&mut self.deferred) {
            self.cold.release(&p)?;
        }
        Ok(())
    }
}

/// The pointer in a stored value, if its frame lives in a segment file.
fn ptr_of(v: &[u8]) -> Option<Ptr> {
    Entry::parse(v).and_then(|e| Ptr::parse(e.frame))
}

/// Bytes a stored batch occupies: the value, or header + frame for one
/// whose frame is in a segment file.
fn stored_len(v: &[u8]) -> u64 {
    match ptr_of(v) {
        Some(p) => Entry::HEADER_LEN as u64 + u64::from(p.len),
        None => v.len() as u64,
    }
}

/// The whole entry (header + frame), reading the frame from its segment
/// file when needed; `None` when that frame cannot be read intact.
fn resolve<'a>(cold: &Cold, v: &'a [u8]) -> Option<Cow<'a, [u8]>> {
    match ptr_of(v) {
        None => Some(Cow::Borrowed(v)),
        Some(p) => {
            let frame = cold.read(&p)?;
            let mut whole = Vec::with_capacity(Entry::HEADER_LEN + frame.len());
            whole.extend_from_slice(v.get(..Entry::HEADER_LEN)?);
            whole.extend_from_slice(&frame);
            Some(Cow::Owned(whole))
        }
    }
}

#[derive(Debug)]
pub struct Buffer {
    db: sled::Db,
    tree: sled::Tree,
    gateway_id: String,
    limits: Limits,
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
    Some(u64::from_be_bytes(k.get(1..9)?.try_into().ok()?))
}

fn read_counter(tree: &sled::Tree, k: &[u8]) -> Result<Option<u64>, BufferError> {
    match tree.get(k)? {
        None => Ok(None),
        Some(v) => Ok(Some(u64::from_be_bytes(v.as_ref().try_into().map_err(
            |_| BufferError::Corrupt {
                key: k.to_vec(),
                problem: "counter is not 8 bytes",
            },
        )?))),
    }
}

impl Buffer {
    /// Opens (or creates) the buffer at `path` and recovers its counters.
    pub fn open(
        path: &Path,
        cache_capacity: u64,
        limits: Limits,
        gateway_id: &str,
        metrics: EdgeMetrics,
    ) -> Result<Buffer, BufferError> {
        let db = open_sled(path, cache_capacity)?;
        let tree = db.open_tree("buffer")?;
        let mut cold = Cold::open(&path.join("cold"))?;
        let (mut batches, mut bytes, mut last_seq) = (0u64, 0u64, None);
        let mut priority = BTreeSet::new();
        for item in tree.scan_prefix([BATCH]) {
            let (k, v) = item?;
            if carries_events(&v)
                && let Some(seq) = seq_of(&k)
            {
                priority.insert(seq);
            }
            if let Some(p) = ptr_of(&v) {
                cold.note_ref(&p);
            }
            batches += 1;
            bytes += stored_len(&v);
            last_seq = seq_of(&k);
        }
        // Records of merges a crash cut short, and delivered segments.
        cold.remove_unreferenced()?;
        // A brand-new buffer starts at unix-ms × 1000, so a gateway whose buffer
        // was wiped never reuses a sequence the cloud has already seen.
        let fresh = (crate::drivers::now_ms().max(0) as u64).saturating_mul(1000);
        let next_seq = read_counter(&tree, NEXT_SEQ)?
            .unwrap_or(fresh)
            .max(last_seq.map_or(0, |s| s + 1));
        let next_drop = read_counter(&tree, NEXT_DROP)?.unwrap_or(0);
        tracing::info!(path = %path.display(), batches, bytes, next_seq, "buffer opened");
        let b = Buffer {
            db,
            tree,
            gateway_id: gateway_id.to_string(),
            limits,
            state: Mutex::new(State {
                next_seq,
                next_drop,
                batches,
                bytes,
                live: VecDeque::new(),
                priority,
                cold,
                deferred: Vec::new(),
            }),
            metrics,
        };
        b.metrics.buffer_pending_batches.set(batches as i64);
        b.metrics.buffer_pending_bytes.set(bytes as i64);
        Ok(b)
    }

    /// Seals `series` (and every drop report not yet sent) into a new batch
    /// and makes it durable. Returns its sequence once it is on disk.
    pub async fn append(
        &self,
        series: Vec<Series>,
        polled_through_ms: i64,
    ) -> Result<u64, BufferError> {
        self.append_with_events(series, Vec::new(), polled_through_ms)
            .await
    }

    /// [`Buffer::append`] with anomaly events; a batch carrying events is
    /// offered before any other (docs/specs/anomaly-models.md §6).
    pub async fn append_with_events(
        &self,
        series: Vec<Series>,
        events: Vec<AnomalyEvent>,
        polled_through_ms: i64,
    ) -> Result<u64, BufferError> {
        let has_events = !events.is_empty();
        let mut st = self.state.lock().await;
        let sequence = st.next_seq;
        let mut drops = Vec::new();
        let mut drop_keys = Vec::new();
        for item in self.tree.scan_prefix([DROP]) {
            let (k, v) = item?;
            match serde_json::from_slice::<Drop>(&v) {
                Ok(d) => drops.push(d),
                Err(e) => tracing::error!(error = %e, "unreadable drop report discarded"),
            }
            drop_keys.push(k);
        }
        let now = crate::drivers::now_ms();
        let batch = Batch {
            gateway_id: self.gateway_id.clone(),
            first_sequence: sequence,
            sequence,
            created_ms: now,
            polled_through_ms,
            series,
            drops,
            events,
        };
        let samples = batch.sample_count() as u64;
        let value = Entry::encode(&batch, samples)?;
        let len = value.len() as u64;
        let mut b = sled::Batch::default();
        b.insert(&key(BATCH, sequence), value);
        b.insert(NEXT_SEQ, &(sequence + 1).to_be_bytes());
        for k in drop_keys {
            b.remove(k);
        }
        self.tree.apply_batch(b)?;
        self.db.flush_async().await?;
        st.release_deferred()?;
        st.next_seq = sequence + 1;
        st.batches += 1;
        st.bytes += len;
        if has_events {
            st.priority.insert(sequence);
        } else {
            st.live.push_back(sequence);
        }
        while st.live.len() > LIVE_MAX {
            st.live.pop_front(); // older ones join the backlog
        }
        self.metrics.samples_buffered.inc_by(samples);
        self.enforce_cap(&mut st).await?;
        self.publish(&st);
        Ok(sequence)
    }

    /// True when drop reports wait for the next batch.
    pub fn has_pending_drops(&self) -> bool {
        self.tree.scan_prefix([DROP]).next().is_some()
    }

    /// Drops the oldest batches while over the byte cap (keeping the newest).
    async fn enforce_cap(&self, st: &mut State) -> Result<(), BufferError> {
        while st.bytes > self.limits.max_bytes && st.batches > 1 {
            let Some((k, v)) = self.tree.scan_prefix([BATCH]).next().transpose()? else {
                break;
            };
            self.drop_entry(st, &k, &v, DropReason::Capacity).await?;
        }
        Ok(())
    }

    /// Removes one stored batch and records what it held as a drop report.
    async fn drop_entry(
        &self,
        st: &mut State,
        k: &[u8],
        v: &[u8],
        reason: DropReason,
    ) -> Result<(), BufferError> {
        let last = seq_of(k).unwrap_or(0);
        let whole = resolve(&st.cold, v);
        let parsed = whole.as_deref().and_then(Entry::parse);
        let first = Entry::parse(v).map_or(last, |e| e.first_sequence);
        let mut reports = vec![];
        let mut samples = 0;
        let mut spans = vec![];
        let mut reason = reason;
        match parsed.and_then(|e| wire::decode(e.frame).ok()) {
            Some(batch) => {
                samples = batch.sample_count() as u64;
                spans = spans_of(&batch);
                // Drop reports this batch was carrying were never delivered either.
                reports.extend(batch.drops);
            }
            None => reason = DropReason::Corrupt,
        }
        reports.push(Drop {
            first_sequence: first,
            last_sequence: last,
            reason,
            spans,
        });
        let mut b = sled::Batch::default();
        b.remove(k);
        b.remove(&key(OFFERED, last));
        for r in &reports {
            b.insert(&key(DROP, st.next_drop), serde_json::to_vec(r)?);
            st.next_drop += 1;
        }
        b.insert(NEXT_DROP, &st.next_drop.to_be_bytes());
        self.tree.apply_batch(b)?;
        self.db.flush_async().await?;
        if let Some(p) = ptr_of(v) {
            st.cold.release(&p)?;
        }
        st.batches = st.batches.saturating_sub(1);
        st.bytes = st.bytes.saturating_sub(stored_len(v));
        st.live.retain(|s| *s != last);
        match reason {
            DropReason::Corrupt => self.metrics.chunks_corrupt.inc(),
            _ => self.metrics.samples_dropped.inc_by(samples),
        };
        tracing::warn!(
            first,
            last,
            samples,
            reason = reason.as_str(),
            "dropped buffered data; will report it"
        );
        Ok(())
    }

    fn publish(&self, st: &State) {
        self.metrics.buffer_pending_batches.set(st.batches as i64);
        self.metrics.buffer_pending_bytes.set(st.bytes as i64);
    }

    /// The next batch to offer: the oldest batch carrying anomaly events if
    /// any, else the oldest live batch, else the oldest of the backlog.
    /// Unreadable entries are dropped (reason `corrupt`), counted and
    /// reported, never returned.
    pub async fn next(&self) -> Result<Option<Pending>, BufferError> {
        let mut st = self.state.lock().await;
        loop {
            if let Some(seq) = st.priority.first().copied() {
                match self.tree.get(key(BATCH, seq))? {
                    Some(v) => {
                        let whole = resolve(&st.cold, &v);
                        if let Some(e) = whole
                            .as_deref()
                            .and_then(Entry::parse)
                            .filter(|e| wire::decode(e.frame).is_ok())
                        {
                            return Ok(Some(Pending {
                                first_sequence: e.first_sequence,
                                sequence: seq,
                                samples: e.samples,
                                created_ms: e.created_ms,
                                frame: e.frame.to_vec(),
                                live: true,
                            }));
                        }
                        tracing::error!(
                            sequence = seq,
                            "corrupt event batch in the buffer: skipping it"
                        );
                        st.priority.remove(&seq);
                        self.drop_entry(&mut st, &key(BATCH, seq), &v, DropReason::Corrupt)
                            .await?;
                        continue;
                    }
                    None => {
                        st.priority.remove(&seq);
                        continue;
                    }
                }
            }
            let live_seq = st.live.front().copied();
            let found = match live_seq {
                Some(seq) => match self.tree.get(key(BATCH, seq))? {
                    Some(v) => Some((key(BATCH, seq).to_vec(), v, true)),
                    None => {
                        st.live.pop_front();
                        continue;
                    }
                },
                None => self
                    .tree
                    .scan_prefix([BATCH])
                    .next()
                    .transpose()?
                    .map(|(k, v)| (k.to_vec(), v, false)),
            };
            let Some((k, v, live)) = found else {
                return Ok(None);
            };
            let Some(sequence) = seq_of(&k) else {
                self.tree.remove(&k)?;
                continue;
            };
            let whole = resolve(&st.cold, &v);
            match whole
                .as_deref()
                .and_then(Entry::parse)
                .filter(|e| wire::decode(e.frame).is_ok())
            {
                Some(e) => {
                    return Ok(Some(Pending {
                        first_sequence: e.first_sequence,
                        sequence,
                        samples: e.samples,
                        created_ms: e.created_ms,
                        frame: e.frame.to_vec(),
                        live,
                    }));
                }
                None => {
                    tracing::error!(sequence, "corrupt batch in the buffer: skipping it");
                    self.drop_entry(&mut st, &k, &v, DropReason::Corrupt)
                        .await?;
                }
            }
        }
    }

    /// Records durably that a batch is about to be offered to the cloud, so
    /// it is never merged afterwards. False when the batch no longer exists.
    pub async fn mark_offered(&self, sequence: u64) -> Result<bool, BufferError> {
        let mut st = self.state.lock().await;
        st.live.retain(|s| *s != sequence);
        if !self.tree.contains_key(key(BATCH, sequence))? {
            return Ok(false);
        }
        if self
            .tree
            .insert(key(OFFERED, sequence), &[] as &[u8])?
            .is_none()
        {
            self.db.flush_async().await?;
        }
        Ok(true)
    }

    /// Forgets an acknowledged batch. Not flushed: after a crash the batch
    /// may be offered again and the cloud acknowledges it as a duplicate.
    pub async fn remove(&self, sequence: u64) -> Result<(), BufferError> {
        let mut st = self.state.lock().await;
        let mut b = sled::Batch::default();
        let old = self.tree.get(key(BATCH, sequence))?;
        b.remove(&key(BATCH, sequence));
        b.remove(&key(OFFERED, sequence));
        self.tree.apply_batch(b)?;
        if let Some(v) = old {
            st.batches = st.batches.saturating_sub(1);
            st.bytes = st.bytes.saturating_sub(stored_len(&v));
            if let Some(p) = ptr_of(&v) {
                // The removal is not flushed (see above): if the pointer
                // comes back after a crash its record must still be there,
                // so the segment is let go after the next flush.
                st.deferred.push(p);
            }
        }
        st.priority.remove(&sequence);
        st.live.retain(|s| *s != sequence);
        self.publish(&st);
        Ok(())
    }

    /// Moves a batch the cloud will never accept out of the send queue, kept
    /// for inspection rather than deleted.
    pub async fn quarantine(&self, sequence: u64) -> Result<(), BufferError> {
        let mut st = self.state.lock().await;
        if let Some(v) = self.tree.get(key(BATCH, sequence))? {
            // Kept whole in sled, so its segment file can go.
            let kept = resolve(&st.cold, &v).map_or_else(|| v.to_vec(), |w| w.into_owned());
            let mut b = sled::Batch::default();
            b.remove(&key(BATCH, sequence));
            b.remove(&key(OFFERED, sequence));
            b.insert(&key(QUARANTINE, sequence), kept);
            self.tree.apply_batch(b)?;
            self.db.flush_async().await?;
            if let Some(p) = ptr_of(&v) {
                st.cold.release(&p)?;
            }
            st.batches = st.batches.saturating_sub(1);
            st.bytes = st.bytes.saturating_sub(stored_len(&v));
        }
        st.priority.remove(&sequence);
        st.live.retain(|s| *s != sequence);
        self.publish(&st);
        Ok(())
    }

    /// Number of quarantined batches.
    pub fn quarantined(&self) -> usize {
        self.tree.scan_prefix([QUARANTINE]).count()
    }

    /// Housekeeping: drops batches past the age cap, then merges runs of
    /// never-offered batches older than `compact_after_ms`. Returns how many
    /// batches were merged away.
    pub async fn maintain(&self, now_ms: i64) -> Result<u64, BufferError> {
        let mut st = self.state.lock().await;
        // Age cap.
        let horizon = now_ms.saturating_sub(self.limits.max_age_ms);
        loop {
            let Some((k, v)) = self.tree.scan_prefix([BATCH]).next().transpose()? else {
                break;
            };
            match Entry::parse(&v) {
                Some(e) if e.created_ms >= horizon => break,
                Some(_) => self.drop_entry(&mut st, &k, &v, DropReason::Age).await?,
                None => {
                    self.drop_entry(&mut st, &k, &v, DropReason::Corrupt)
                        .await?
                }
            }
        }
        // Compaction. Plan runs from the entry headers alone (no decoding, no
        // copies of the values), then decode only the runs that will merge:
        // a week-long backlog must not be read whole every few seconds.
        let cutoff = now_ms.saturating_sub(self.limits.compact_after_ms);
        let max = self.limits.compact_max_samples;
        let mut runs: Vec<Vec<sled::IVec>> = Vec::new();
        let mut run: Vec<sled::IVec> = Vec::new();
        let (mut run_samples, mut run_last) = (0u64, 0u64);
        for item in self.tree.scan_prefix([BATCH]) {
            let (k, v) = item?;
            let seq = seq_of(&k).unwrap_or(0);
            let header = Entry::parse(&v).map(|e| (e.created_ms, e.samples, e.first_sequence));
            let eligible = match header {
                Some((created, n, first))
                    if created < cutoff
                        && n < max
                        && !st.priority.contains(&seq)
                        && !self.tree.contains_key(key(OFFERED, seq))? =>
                {
                    Some((n, first))
                }
                _ => None,
            };
            match eligible {
                // Merge only contiguous sequences: a gap is a batch already
                // delivered (or dropped), whose range the merged one must not cover.
                Some((n, first))
                    if !run.is_empty() && first == run_last + 1 && run_samples + n <= max =>
                {
                    run.push(k);
                    run_samples += n;
                    run_last = seq;
                }
                other => {
                    if run.len() >= 2 {
                        runs.push(std::mem::take(&mut run));
                    }
                    run.clear();
                    run_samples = 0;
                    if let Some((n, _)) = other {
                        run.push(k);
                        run_samples = n;
                        run_last = seq;
                    }
                }
            }
        }
        if run.len() >= 2 {
            runs.push(run);
        }
        let mut merged_away = 0u64;
        for keys in runs {
            let mut batches = Vec::with_capacity(keys.len());
            for k in keys {
                let Some(v) = self.tree.get(&k)? else {
                    continue;
                };
                let decoded = resolve(&st.cold, &v)
                    .as_deref()
                    .and_then(Entry::parse)
                    .and_then(|e| wire::decode(e.frame).ok());
                match decoded {
                    Some(b) => batches.push((k, b, stored_len(&v), ptr_of(&v))),
                    // Unreadable: leave it for `next` to drop and report; merge around it.
                    None => {
                        merged_away += self
                            .merge_run(&mut st, std::mem::take(&mut batches))
                            .await?;
                    }
                }
            }
            merged_away += self.merge_run(&mut st, batches).await?;
        }
        self.publish(&st);
        Ok(merged_away)
    }

    /// Replaces a run of consecutive never-offered batches by one batch
    /// covering their whole sequence range.
    async fn merge_run(
        &self,
        st: &mut State,
        run: Vec<(sled::IVec, Batch, u64, Option<Ptr>)>,
    ) -> Result<u64, BufferError> {
        if run.len() < 2 {
            return Ok(0);
        }
        let first_sequence = run[0].1.first_sequence;
        let sequence = run[run.len() - 1].1.sequence;
        let mut by_point: BTreeMap<(String, String), Series> = BTreeMap::new();
        let mut drops = Vec::new();
        let mut events = Vec::new();
        let (mut created_ms, mut polled_through_ms, mut old_bytes) = (i64::MIN, i64::MIN, 0u64);
        for (_, b, len, _) in &run {
            events.extend(b.events.iter().cloned());
            created_ms = created_ms.max(b.created_ms);
            polled_through_ms = polled_through_ms.max(b.polled_through_ms);
            old_bytes += *len;
            drops.extend(b.drops.iter().cloned());
            for s in &b.series {
                by_point
                    .entry((s.device.clone(), s.point.clone()))
                    .or_insert_with(|| Series {
                        device: s.device.clone(),
                        point: s.point.clone(),
                        unit: s.unit.clone(),
                        samples: Vec::new(),
                    })
                    .samples
                    .extend_from_slice(&s.samples);
            }
        }
        let merged = Batch {
            gateway_id: self.gateway_id.clone(),
            first_sequence,
            sequence,
            created_ms,
            polled_through_ms,
            series: by_point.into_values().collect(),
            drops,
            events,
        };
        let samples = merged.sample_count() as u64;
        // The frame goes to a segment file (durable before the pointer is
        // committed); sled keeps the header and the pointer.
        let frame = encode_frame(&merged)?;
        let p = st.cold.append(&frame)?;
        let mut value = Entry::header(samples, first_sequence, created_ms).to_vec();
        value.extend_from_slice(&p.encode());
        let new_len = stored_len(&value);
        let mut b = sled::Batch::default();
        for (k, _, _, _) in &run {
            b.remove(k);
        }
        b.insert(&key(BATCH, sequence), value);
        self.tree.apply_batch(b)?;
        self.db.flush_async().await?;
        for (_, _, _, old) in &run {
            if let Some(old) = old {
                st.cold.release(old)?;
            }
        }
        st.release_deferred()?;
        let n = run.len() as u64;
        st.batches = st.batches - n + 1;
        st.bytes = st.bytes.saturating_sub(old_bytes) + new_len;
        for (k, _, _, _) in &run {
            if let Some(s) = seq_of(k) {
                st.live.retain(|x| *x != s);
            }
        }
        self.metrics.batches_compacted.inc_by(n - 1);
        tracing::debug!(
            first_sequence,
            sequence,
            batches = n,
            old_bytes,
            new_len,
            "merged backlog"
        );
        Ok(n - 1)
    }

    /// Flushes everything to disk (at shutdown).
    pub async fn flush(&self) -> Result<(), BufferError> {
        let mut st = self.state.lock().await;
        self.db.flush_async().await?;
        st.release_deferred()?;
        Ok(())
    }

    /// Bytes on disk: sled's files and the segment files.
    pub async fn size_on_disk(&self) -> Result<u64, BufferError> {
        let cold = self.state.lock().await.cold.bytes_on_disk();
        Ok(self.db.size_on_disk()? + cold)
    }

    /// Test hook: overwrites the stored frame of a batch with garbage, as a
    /// torn write or bad sector would.
    #[doc(hidden)]
    pub fn corrupt_for_test(&self, sequence: u64) -> Result<bool, BufferError> {
        let Some(v) = self.tree.get(key(BATCH, sequence))? else {
            return Ok(false);
        };
        let mut bad = v.to_vec();
        let n = bad.len();
        for b in &mut bad[Entry::HEADER_LEN.min(n)..] {
            *b ^= 0x5a;
        }
        self.tree.insert(key(BATCH, sequence), bad)?;
        self.db.flush()?;
        Ok(true)
    }
}

/// Opens sled, waiting up to 5 s for its file lock: a previous instance of
/// the agent (a pod being replaced, or a handle in the same process whose
/// background flusher is finishing) may still hold it.
fn open_sled(path: &Path, cache_capacity: u64) -> Result<sled::Db, BufferError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match sled::Config::new()
            .path(path)
            .cache_capacity(cache_capacity)
            .mode(sled::Mode::LowSpace)
            .open()
        {
            Err(sled::Error::Io(e))
                if e.kind() == std::io::ErrorKind::Other
                    && e.to_string().contains("lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Per point: first and last timestamp and count, for a drop report.
fn spans_of(b: &Batch) -> Vec<DroppedSpan> {
    b.series
        .iter()
        .filter_map(|s| {
            let from_ms = s.samples.iter().map(|x| x.ts_ms).min()?;
            let to_ms = s.samples.iter().map(|x| x.ts_ms).max()?;
            Some(DroppedSpan {
                device: s.device.clone(),
                point: s.point.clone(),
                from_ms,
                to_ms,
                samples: s.samples.len() as u64,
            })
        })
        .collect()
}

/// True when a stored entry's frame is wire version 3 (anomaly events).
/// Merged batches (pointers) never carry events.
fn carries_events(v: &[u8]) -> bool {
    ptr_of(v).is_none()
        && Entry::parse(v).and_then(|e| e.frame.get(4).copied()) == Some(wire::VERSION)
}

/// Encodes a batch as the wire frame stored and sent.
pub fn encode_frame(batch: &Batch) -> Result<Vec<u8>, wire::EncodeError> {
    wire::encode(batch, Compression::Zstd { level: 3 })
}

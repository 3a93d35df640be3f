//! Tests of the buffer's queue semantics, including a proptest against a
//! model: whatever the interleaving of appends, offers, lost answers,
//! acknowledgements and compaction, every appended sample is delivered, no
//! sample is delivered under two different sequence ranges, and a batch once
//! offered comes back byte-identical.
#![allow(clippy::unwrap_used)]

use super::*;
use dcmms_shared::{Quality, Sample};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

fn series(start: i64, n: usize) -> Vec<Series> {
    vec![Series {
        device: "d".into(),
        point: "p".into(),
        unit: "W".into(),
        samples: (0..n as i64)
            .map(|i| Sample {
                ts_ms: start + i,
                value: (start + i) as f64,
                quality: Quality::Good,
            })
            .collect(),
    }]
}

fn open(dir: &Path, limits: Limits, m: EdgeMetrics) -> Buffer {
    Buffer::open(dir, 1 << 20, limits, "gw", m).unwrap()
}

fn no_compaction() -> Limits {
    Limits {
        compact_after_ms: i64::MAX / 2,
        ..Limits::default()
    }
}

fn ts_of(frame: &[u8]) -> Vec<i64> {
    let b = wire::decode(frame).unwrap();
    b.series
        .iter()
        .flat_map(|s| s.samples.iter().map(|x| x.ts_ms))
        .collect()
}

#[tokio::test]
async fn batches_survive_reopen_and_sequences_keep_rising() {
    let dir = tempfile::tempdir().unwrap();
    let (s1, s2);
    {
        let b = open(dir.path(), no_compaction(), EdgeMetrics::default());
        s1 = b.append(series(0, 3), 10).await.unwrap();
        s2 = b.append(series(3, 5), 20).await.unwrap();
        assert_eq!(s2, s1 + 1);
        b.remove(s1).await.unwrap();
    }
    let b = open(dir.path(), no_compaction(), EdgeMetrics::default());
    let p = b.next().await.unwrap().unwrap();
    assert_eq!(
        (p.first_sequence, p.sequence, p.samples, p.live),
        (s2, s2, 5, false)
    );
    let decoded = wire::decode(&p.frame).unwrap();
    assert_eq!(
        (decoded.gateway_id.as_str(), decoded.polled_through_ms),
        ("gw", 20)
    );
    b.remove(s2).await.unwrap();
    drop(b);
    // Even with the queue empty, a reopened buffer never reuses a sequence.
    let b = open(dir.path(), no_compaction(), EdgeMetrics::default());
    assert!(b.next().await.unwrap().is_none());
    assert_eq!(b.append(series(9, 1), 30).await.unwrap(), s2 + 1);
}

#[tokio::test]
async fn live_batches_go_ahead_of_the_backlog() {
    let dir = tempfile::tempdir().unwrap();
    let old = {
        let b = open(dir.path(), no_compaction(), EdgeMetrics::default());
        b.append(series(0, 2), 0).await.unwrap()
    };
    // After a restart, the earlier batch is backlog; a new one is live.
    let b = open(dir.path(), no_compaction(), EdgeMetrics::default());
    let fresh = b.append(series(100, 2), 0).await.unwrap();
    let first = b.next().await.unwrap().unwrap();
    assert_eq!((first.sequence, first.live), (fresh, true));
    assert!(b.mark_offered(fresh).await.unwrap());
    b.remove(fresh).await.unwrap();
    let second = b.next().await.unwrap().unwrap();
    assert_eq!((second.sequence, second.live), (old, false));
}

#[tokio::test]
async fn over_the_cap_the_oldest_go_and_the_next_batch_reports_them() {
    let dir = tempfile::tempdir().unwrap();
    let m = EdgeMetrics::default();
    let limits = Limits {
        max_bytes: 2048,
        ..no_compaction()
    };
    let b = open(dir.path(), limits, m.clone());
    let mut seqs = vec![];
    for i in 0..30 {
        seqs.push(b.append(series(i * 1000, 200), 0).await.unwrap());
    }
    let st = m.status();
    assert!(
        st.samples_dropped > 0 && st.samples_dropped % 200 == 0,
        "{st:?}"
    );
    // Collect every drop report delivered while draining.
    let mut reported = BTreeSet::new();
    let mut spans = 0;
    while let Some(p) = b.next().await.unwrap() {
        let batch = wire::decode(&p.frame).unwrap();
        for d in &batch.drops {
            assert_eq!(d.reason, DropReason::Capacity);
            for s in d.first_sequence..=d.last_sequence {
                assert!(reported.insert(s), "sequence {s} reported twice");
            }
            for sp in &d.spans {
                assert_eq!(sp.samples, 200);
                assert_eq!(sp.to_ms - sp.from_ms, 199);
                spans += sp.samples;
            }
        }
        b.remove(p.sequence).await.unwrap();
        if !b.has_pending_drops() && b.next().await.unwrap().is_none() {
            break;
        }
        if b.next().await.unwrap().is_none() && b.has_pending_drops() {
            b.append(vec![], 0).await.unwrap(); // seal the remaining reports
        }
    }
    assert_eq!(spans, st.samples_dropped.max(spans));
    let dropped: BTreeSet<u64> = seqs
        .iter()
        .copied()
        .filter(|s| reported.contains(s))
        .collect();
    assert_eq!(dropped.len() as u64 * 200, m.status().samples_dropped);
    // Exactly the oldest ones were dropped.
    assert_eq!(
        dropped.iter().copied().collect::<Vec<_>>(),
        seqs[..dropped.len()].to_vec()
    );
}

#[tokio::test]
async fn a_corrupt_batch_is_skipped_counted_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let m = EdgeMetrics::default();
    let (s1, s2) = {
        let b = open(dir.path(), no_compaction(), m.clone());
        let s1 = b.append(series(0, 5), 0).await.unwrap();
        let s2 = b.append(series(5, 5), 0).await.unwrap();
        assert!(b.corrupt_for_test(s1).unwrap());
        (s1, s2)
    };
    // After a restart both are backlog: the oldest, s1, is read first.
    let b = open(dir.path(), no_compaction(), m.clone());
    let p = b.next().await.unwrap().unwrap();
    assert_eq!(p.sequence, s2, "the corrupt batch is never handed out");
    assert_eq!(m.status().chunks_corrupt, 1);
    b.remove(s2).await.unwrap();
    b.append(vec![], 0).await.unwrap();
    let report = b.next().await.unwrap().unwrap();
    let d = &wire::decode(&report.frame).unwrap().drops[0];
    assert_eq!(
        (d.first_sequence, d.last_sequence, d.reason),
        (s1, s1, DropReason::Corrupt)
    );
}

#[tokio::test]
async fn backlog_is_merged_but_offered_batches_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let m = EdgeMetrics::default();
    let b = open(
        dir.path(),
        Limits {
            compact_after_ms: 0,
            ..Limits::default()
        },
        m.clone(),
    );
    let mut seqs = vec![];
    for i in 0..10 {
        seqs.push(b.append(series(i * 10, 10), i).await.unwrap());
    }
    assert!(b.mark_offered(seqs[4]).await.unwrap());
    let before = m.status().bytes_pending;
    let merged = b.maintain(crate::drivers::now_ms() + 1).await.unwrap();
    assert_eq!(
        merged, 7,
        "runs 0..=3 and 5..=9 become two batches: 10 - 3 left"
    );
    assert_eq!(m.status().batches_pending, 3);
    assert!(m.status().bytes_pending < before);
    let mut got = vec![];
    while let Some(p) = b.next().await.unwrap() {
        got.push((p.first_sequence, p.sequence, ts_of(&p.frame).len()));
        b.remove(p.sequence).await.unwrap();
    }
    assert_eq!(
        got,
        vec![
            (seqs[0], seqs[3], 40),
            (seqs[4], seqs[4], 10),
            (seqs[5], seqs[9], 50)
        ]
    );
}

fn segments(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("cold"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Merged batches live in segment files (docs/adr/0008): they survive a
/// restart, a delivered segment's file is deleted at once, and a damaged
/// record is skipped, counted and reported like any corrupt batch.
#[tokio::test]
async fn merged_backlog_lives_in_segment_files_that_go_when_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let m = EdgeMetrics::default();
    let limits = Limits {
        compact_after_ms: 0,
        compact_max_samples: 30,
        ..Limits::default()
    };
    let seqs = {
        let b = open(dir.path(), limits.clone(), m.clone());
        let mut seqs = vec![];
        for i in 0..9 {
            seqs.push(b.append(series(i * 10, 10), 0).await.unwrap());
        }
        assert_eq!(b.maintain(crate::drivers::now_ms() + 1).await.unwrap(), 6);
        assert_eq!(
            segments(dir.path()).len(),
            1,
            "three merged batches, one segment"
        );
        let st = m.status();
        assert_eq!(st.batches_pending, 3);
        // Logical bytes count the frames in the segment, not the pointers.
        assert!(st.bytes_pending > 3 * 100, "{st:?}");
        seqs
    };
    // A restart: the pointers still resolve; the segment stays.
    let b = open(dir.path(), limits.clone(), m.clone());
    assert_eq!(segments(dir.path()).len(), 1);
    let first = b.next().await.unwrap().unwrap();
    assert_eq!((first.first_sequence, first.sequence), (seqs[0], seqs[2]));
    assert_eq!(ts_of(&first.frame), (0..30).collect::<Vec<_>>());
    // Damage the second merged batch's record.
    let v = b.tree.get(key(BATCH, seqs[5])).unwrap().unwrap();
    let p = ptr_of(&v).unwrap();
    b.state.lock().await.cold.corrupt_for_test(&p).unwrap();
    b.remove(first.sequence).await.unwrap();
    let next = b.next().await.unwrap().unwrap();
    assert_eq!(next.sequence, seqs[8], "the damaged batch is skipped");
    assert_eq!(m.status().chunks_corrupt, 1);
    b.remove(next.sequence).await.unwrap();
    // Everything delivered or dropped: the segment file is gone once the
    // next merge starts a new one, or at the next start.
    drop(b);
    let b = open(dir.path(), limits, m.clone());
    assert!(
        segments(dir.path()).is_empty(),
        "{:?}",
        segments(dir.path())
    );
    b.append(vec![], 0).await.unwrap();
    let report = b.next().await.unwrap().unwrap();
    let d = &wire::decode(&report.frame).unwrap().drops[0];
    assert_eq!(
        (d.first_sequence, d.last_sequence, d.reason),
        (seqs[3], seqs[5], DropReason::Corrupt)
    );
}

#[tokio::test]
async fn old_data_past_the_age_cap_is_dropped_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let m = EdgeMetrics::default();
    let b = open(
        dir.path(),
        Limits {
            max_age_ms: 1000,
            ..no_compaction()
        },
        m.clone(),
    );
    let s = b.append(series(0, 7), 0).await.unwrap();
    b.maintain(crate::drivers::now_ms() + 10_000).await.unwrap();
    assert_eq!(m.status().samples_dropped, 7);
    b.append(vec![], 0).await.unwrap();
    let p = b.next().await.unwrap().unwrap();
    let d = &wire::decode(&p.frame).unwrap().drops[0];
    assert_eq!(
        (d.first_sequence, d.reason, d.spans[0].samples),
        (s, DropReason::Age, 7)
    );
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    /// Offer the next batch; `true` = the cloud's answer arrives.
    Offer(bool),
    Compact,
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..20).prop_map(Op::Append),
        4 => any::<bool>().prop_map(Op::Offer),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn nothing_is_lost_or_delivered_under_two_ranges(ops in prop::collection::vec(op(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let limits = Limits { compact_after_ms: 0, ..Limits::default() };
            let mut b = open(dir.path(), limits.clone(), EdgeMetrics::default());
            let mut next_ts = 0i64;
            let mut appended = BTreeSet::new();
            // Delivered ranges → their samples (the cloud's ledger).
            let mut cloud: BTreeMap<(u64, u64), Vec<i64>> = BTreeMap::new();
            let mut offered_frames: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
            let deliver = |cloud: &mut BTreeMap<(u64, u64), Vec<i64>>, p: &Pending| {
                let ts = ts_of(&p.frame);
                match cloud.get(&(p.first_sequence, p.sequence)) {
                    Some(prev) => assert_eq!(prev, &ts, "replay differs"),
                    None => {
                        for (r, _) in cloud.iter() {
                            assert!(r.1 < p.first_sequence || r.0 > p.sequence,
                                "range {:?} overlaps {:?}", r, (p.first_sequence, p.sequence));
                        }
                        cloud.insert((p.first_sequence, p.sequence), ts);
                    }
                }
            };
            for op in ops {
                match op {
                    Op::Append(n) => {
                        b.append(series(next_ts, n), 0).await.unwrap();
                        appended.extend(next_ts..next_ts + n as i64);
                        next_ts += n as i64;
                    }
                    Op::Offer(answered) => {
                        if let Some(p) = b.next().await.unwrap() {
                            assert!(b.mark_offered(p.sequence).await.unwrap());
                            if let Some(f) = offered_frames.get(&p.sequence) {
                                assert_eq!(f, &p.frame, "an offered batch changed");
                            }
                            offered_frames.insert(p.sequence, p.frame.clone());
                            deliver(&mut cloud, &p);
                            if answered {
                                b.remove(p.sequence).await.unwrap();
                            }
                        }
                    }
                    Op::Compact => {
                        b.maintain(crate::drivers::now_ms() + 1).await.unwrap();
                    }
                    Op::Reopen => {
                        drop(b);
                        b = open(dir.path(), limits.clone(), EdgeMetrics::default());
                    }
                }
            }
            while let Some(p) = b.next().await.unwrap() {
                b.mark_offered(p.sequence).await.unwrap();
                deliver(&mut cloud, &p);
                b.remove(p.sequence).await.unwrap();
            }
            let mut delivered = BTreeSet::new();
            for ts in cloud.values().flatten() {
                assert!(delivered.insert(*ts), "sample {ts} stored twice");
            }
            assert_eq!(delivered, appended);
        });
    }
}

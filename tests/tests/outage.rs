//! A long outage, accelerated: the edge buffer holds 24 hours of a site's
//! data (written straight into the buffer with past timestamps, as the
//! batcher would have), then the cloud comes back while live polling goes
//! on. The backlog drains under the configured rate cap, live batches go
//! first, and nothing is lost or stored twice. The drain rate and the live
//! latency percentiles are printed (measured, not asserted).
#![allow(clippy::unwrap_used)]

use dcmms_cloud::{gateways, testing};
use dcmms_edge::EdgeMetrics;
use dcmms_edge::buffer::{Buffer, Limits};
use dcmms_shared::{Quality, Sample, Series};
use dcmms_simulators::demo::{SiteLink, edge_config};
use dcmms_simulators::device::SimulatedInverter;
use dcmms_simulators::modbus::{FleetConfig, start_fleet};
use dcmms_simulators::solar::SiteModel;
use dcmms_simulators::sunspec;
use sqlx::Row;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const HOURS: i64 = 24;
const RATE: u64 = 400_000; // backlog bytes/s

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_day_of_backlog_drains_at_the_cap_behind_live_data_without_loss() {
    let dir = tempfile::tempdir().unwrap();
    let buffer_path = dir.path().join("buffer");
    let now = dcmms_edge::drivers::now_ms();
    let start = now - HOURS * 3_600_000 - 60_000;

    // 1. The outage: a day of one inverter (23 points at 1 Hz), one batch a minute.
    let defs: Vec<_> = sunspec::inverter_points();
    let mut inv = SimulatedInverter::fleet_member(SiteModel::bhadla(3), 3, 0, 100_000.0, 1);
    let (prefill_samples, prefill_last_seq, prefill_bytes) = {
        let pm = EdgeMetrics::default();
        let buf = Buffer::open(
            &buffer_path,
            16 << 20,
            Limits::default(),
            "out-gw",
            pm.clone(),
        )
        .unwrap();
        let mut n = 0u64;
        let mut last = 0;
        for minute in 0..HOURS * 60 {
            let mut series: Vec<Series> = defs
                .iter()
                .map(|p| Series {
                    device: "inv-01".into(),
                    point: p.name.into(),
                    unit: p.unit.into(),
                    samples: vec![],
                })
                .collect();
            for s in 0..60 {
                let ts = start + (minute * 60 + s) * 1000;
                let img = inv.image_at(ts);
                for (series, p) in series.iter_mut().zip(&defs) {
                    let (value, quality) = match sunspec::expected_value(&img, p) {
                        Some(v) => (v, Quality::Good),
                        None => (f64::NAN, Quality::Bad),
                    };
                    series.samples.push(Sample {
                        ts_ms: ts,
                        value,
                        quality,
                    });
                }
            }
            n += series.iter().map(|s| s.samples.len() as u64).sum::<u64>();
            last = buf
                .append(series, start + (minute + 1) * 60_000)
                .await
                .unwrap();
            // The agent's housekeeping merges the backlog as it grows (every
            // sealed batch is past `compact_after_ms` for this clock).
            if minute % 30 == 29 {
                buf.maintain(now + 3_600_000).await.unwrap();
            }
        }
        // Far enough in the future that every batch counts as old backlog.
        buf.maintain(now + 3_600_000).await.unwrap();
        let bytes = pm.status().bytes_pending as u64;
        buf.flush().await.unwrap();
        (n, last, bytes)
    };
    println!(
        "outage: {HOURS} h backlog = {prefill_samples} samples, {prefill_bytes} bytes buffered ({:.2} bytes/sample)",
        prefill_bytes as f64 / prefill_samples as f64
    );
    // Everything sled keeps on disk for it (files, logs, snapshots).
    fn du(p: &std::path::Path) -> u64 {
        std::fs::read_dir(p).map_or(0, |rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => du(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
    }
    let on_disk = du(&buffer_path);
    println!(
        "outage: buffer directory {on_disk} bytes on disk = {:.2} bytes/sample, all overhead counted",
        on_disk as f64 / prefill_samples as f64
    );

    // 2. The cloud comes back; live polling goes on.
    let stop = CancellationToken::new();
    let cloud = dcmms_tests::support::start_cloud(testing::sqlite_url(dir.path()), &stop).await;
    let gw = gateways::create(&cloud.db, "out-gw", "outage")
        .await
        .unwrap();
    let stop_sim = CancellationToken::new();
    let fleet = start_fleet(
        FleetConfig {
            count: 1,
            ..FleetConfig::default()
        },
        stop_sim.clone(),
    )
    .await
    .unwrap();
    let mut cfg = edge_config(&SiteLink {
        gateway_id: "out-gw".into(),
        credential: gw.credential,
        cloud_url: cloud.url(),
        buffer_path,
        edge_listen: "127.0.0.1:0".parse().unwrap(),
        inverters: fleet.addrs(),
        unit_id: 1,
        poll_interval_ms: 200,
        flush_interval_ms: 200,
    });
    cfg.cloud.backlog_bytes_per_s = RATE;
    cfg.cloud.shutdown_grace_ms = 60_000;
    let stop_edge = CancellationToken::new();
    let t0 = Instant::now();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();
    let backlog_done = loop {
        let st = m.status();
        if st.samples_acknowledged >= prefill_samples && st.batches_pending <= 1 {
            break t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(900),
            "backlog did not drain: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop_sim.cancel();
    stop_edge.cancel();
    edge.wait().await;
    let st = m.status();

    // 3. Nothing lost, nothing twice.
    let (total, unique, live_first): (i64, i64, i64) = match &cloud.db {
        dcmms_cloud::Db::Sqlite(p) => {
            let r = sqlx::query(
                "SELECT COUNT(*), COUNT(DISTINCT point_id || ':' || ts_ms) FROM samples",
            )
            .fetch_one(p)
            .await
            .unwrap();
            // Live batches acknowledged before the last backlog batch arrived.
            let l = sqlx::query(
                "SELECT COUNT(*) FROM ingested_batches WHERE sequence > $1 AND received_ms < \
                 (SELECT MAX(received_ms) FROM ingested_batches WHERE sequence <= $1)",
            )
            .bind(prefill_last_seq as i64)
            .fetch_one(p)
            .await
            .unwrap();
            (r.get(0), r.get(1), l.get(0))
        }
        dcmms_cloud::Db::Postgres(_) => unreachable!(),
    };
    assert_eq!(total, unique, "a sample was stored twice");
    assert_eq!(total as u64, prefill_samples + st.samples_polled, "{st:?}");
    assert!(live_first > 0, "no live batch went ahead of the backlog");
    println!(
        "outage: backlog drained in {:.1} s ({:.0} bytes/s, cap {RATE} B/s); \
         {live_first} live batches delivered during the drain; live latency p50 {:?} ms, p95 {:?} ms",
        backlog_done.as_secs_f64(),
        prefill_bytes as f64 / backlog_done.as_secs_f64(),
        m.live_latency_percentile(50.0),
        m.live_latency_percentile(95.0),
    );
    stop.cancel();
    cloud.wait().await.unwrap();
}

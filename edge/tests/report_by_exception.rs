//! Report-by-exception through the whole agent: with the simulator's clock
//! frozen every value is steady, so after the first sample of each point
//! nothing more is buffered; moving the clock changes values and only the
//! changed points are buffered again. Suppressed samples are counted.
#![allow(clippy::unwrap_used)]

use dcmms_edge::config::ReportConfig;
use dcmms_simulators::demo::{SiteLink, edge_config};
use dcmms_simulators::modbus::{FleetConfig, SimClock, start_fleet};
use dcmms_simulators::solar::SiteModel;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// 2026-06-21 06:30 UTC, noon at Bhadla.
const NOON: i64 = 1_782_023_400_000;

async fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_values_are_buffered_once_and_changes_again() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let fleet = start_fleet(
        FleetConfig {
            count: 1,
            seed: 5,
            site: SiteModel::bhadla(1),
            clock: SimClock::frozen(NOON),
            update_interval: Duration::from_millis(20),
            ..FleetConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut cfg = edge_config(&SiteLink {
        gateway_id: "rbe-gw".into(),
        credential: format!("rbe-gw.{}", "0".repeat(64)),
        // Nothing listens here: batches stay in the buffer, which is fine.
        cloud_url: "http://127.0.0.1:9".into(),
        buffer_path: dir.path().join("buffer"),
        edge_listen: "127.0.0.1:0".parse().unwrap(),
        inverters: fleet.addrs(),
        unit_id: fleet.unit_id(),
        poll_interval_ms: 20,
        flush_interval_ms: 50,
    });
    // No deadband: any change is reported; a long silence limit so the
    // heartbeat does not fire during the test.
    cfg.devices[0].report = Some(ReportConfig {
        deadband: None,
        deadband_percent: None,
        max_silence_ms: 600_000,
        points: Vec::new(),
    });
    let points = cfg.devices[0].points.len() as u64;
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();

    wait_for("20 polls", || edge.status().samples_polled >= 20 * points).await;
    // Let the batcher take in what was polled so far.
    wait_for("polled = buffered + suppressed", || {
        let s = edge.status();
        s.samples_polled == s.samples_buffered + s.samples_suppressed
    })
    .await;
    let s = edge.status();
    assert_eq!(
        s.samples_buffered, points,
        "steady values: one sample per point, status {s:?}"
    );
    assert!(s.samples_suppressed >= 19 * points, "{s:?}");

    // Ten simulated minutes later power, energy and temperatures differ.
    fleet.clock().advance(600_000).unwrap();
    let before = edge.status().samples_buffered;
    wait_for("changed values buffered", || {
        edge.status().samples_buffered > before
    })
    .await;
    let polled = edge.status().samples_polled;
    wait_for("10 more polls", || {
        edge.status().samples_polled >= polled + 10 * points
    })
    .await;
    wait_for("polled = buffered + suppressed", || {
        let s = edge.status();
        s.samples_polled == s.samples_buffered + s.samples_suppressed
    })
    .await;
    let grew = edge.status().samples_buffered - before;
    // Only the points that changed, once each: the steady ones (model
    // constants, state) stay suppressed.
    assert!(
        (1..points).contains(&grew),
        "{grew} samples buffered after one change of {points} points"
    );
    stop_edge.cancel();
    edge.wait().await;
    shutdown.cancel();
    fleet.wait().await;
}

//! Simulated inverters → edge agent → cloud, on ephemeral ports, against
//! SQLite (always) and Postgres (`--features postgres-tests`).
//!
//! Asserts that every sample the edge polled is stored in the cloud exactly
//! once, and that each stored value equals what the simulator served, scaled
//! by the simulator's own independent SunSpec decoder.
#![allow(clippy::unwrap_used)]

use dcmms_cloud::{gateways, testing};
use dcmms_simulators::demo::{SiteLink, edge_config, inverter_name};
use dcmms_simulators::modbus::{FleetConfig, SimClock, start_fleet};
use dcmms_simulators::solar::SiteModel;
use dcmms_simulators::sunspec::{self, RegisterImage};
use dcmms_tests::support::{CloudReader, wait_until};
use std::collections::HashSet;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// 2026-06-21 06:30 UTC = noon at Bhadla: every power point is non-zero.
const NOON: i64 = 1_782_023_400_000;
/// Two hours later: every analog value differs from noon's.
const AFTERNOON: i64 = NOON + 2 * 3_600_000;
const INVERTERS: usize = 3;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

async fn scenario(database_url: String) {
    let dir = tempfile::tempdir().unwrap();
    let stop_cloud = CancellationToken::new();
    let cloud = dcmms_tests::support::start_cloud(database_url, &stop_cloud).await;
    let gw = gateways::create(&cloud.db, "e2e-gw", "e2e").await.unwrap();

    let stop_sim = CancellationToken::new();
    let clock = SimClock::frozen(NOON);
    let fleet = start_fleet(
        FleetConfig {
            count: INVERTERS,
            base_port: 0,
            seed: 7,
            site: SiteModel::bhadla(7),
            clock: clock.clone(),
            update_interval: Duration::from_millis(50),
            ..FleetConfig::default()
        },
        stop_sim.clone(),
    )
    .await
    .unwrap();

    let stop_edge = CancellationToken::new();
    let cfg = edge_config(&SiteLink {
        gateway_id: "e2e-gw".into(),
        credential: gw.credential.clone(),
        cloud_url: cloud.url(),
        buffer_path: dir.path().join("buffer"),
        edge_listen: "127.0.0.1:0".parse().unwrap(),
        inverters: fleet.addrs(),
        unit_id: 1,
        poll_interval_ms: 100,
        flush_interval_ms: 100,
    });
    let points_per_poll = cfg.devices[0].points.len() as u64;
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();

    // Phase 1 at noon, phase 2 in the afternoon; at least 5 polls of each device in each.
    let noon: Vec<RegisterImage> = (0..INVERTERS).map(|i| fleet.snapshot(i)).collect();
    let per_phase = INVERTERS as u64 * points_per_poll * 5;
    let m = edge.metrics.clone();
    wait_until("noon polls", Duration::from_secs(30), || {
        m.status().samples_polled >= per_phase
    })
    .await;
    clock.set(AFTERNOON).unwrap();
    let afternoon: Vec<RegisterImage> = (0..INVERTERS).map(|i| fleet.snapshot(i)).collect();
    let mark = m.status().samples_polled;
    wait_until("afternoon polls", Duration::from_secs(30), || {
        m.status().samples_polled >= mark + per_phase
    })
    .await;

    // Stop the edge: it seals what it polled and drains the buffer to the cloud.
    stop_edge.cancel();
    edge.wait().await;
    let st = m.status();
    assert_eq!(st.samples_buffered, st.samples_polled, "{st:?}");
    assert_eq!(st.samples_acknowledged, st.samples_polled, "{st:?}");
    assert_eq!(st.batches_pending, 0);
    assert_eq!(st.samples_dropped, 0);
    assert_eq!(
        testing::count_samples(&cloud.db).await.unwrap() as u64,
        st.samples_polled
    );

    // Every stored value is one the simulator served, in order, each poll once.
    let reader = CloudReader::new(&cloud).await;
    let defs = sunspec::inverter_points();
    let mut total = 0u64;
    for i in 0..INVERTERS {
        let device = inverter_name(i);
        let pts = reader
            .get_json(&format!(
                "/api/v1/points?gateway_id=e2e-gw&device={device}&limit=1000"
            ))
            .await;
        let pts = pts["items"].as_array().unwrap();
        assert_eq!(pts.len() as u64, points_per_poll, "{device}");
        let mut counts = HashSet::new();
        for p in pts {
            let name = p["point"].as_str().unwrap();
            let def = defs.iter().find(|d| d.name == name).unwrap();
            assert_eq!(p["unit"], def.unit);
            let v1 = sunspec::expected_value(&noon[i], def);
            let v2 = sunspec::expected_value(&afternoon[i], def);
            let body = reader
                .get_json(&format!(
                    "/api/v1/points/{}/samples?from=0&to={}&limit=10000",
                    p["id"],
                    i64::MAX
                ))
                .await;
            let samples = body["samples"].as_array().unwrap();
            let mut seen_ts = HashSet::new();
            let mut in_afternoon = false;
            for s in samples {
                assert!(
                    seen_ts.insert(s["ts_ms"].as_i64().unwrap()),
                    "{device}/{name}: duplicate"
                );
                let got = s["value"].as_f64();
                let is = |v: Option<f64>| match (v, got) {
                    (Some(a), Some(b)) => close(a, b) && s["quality"] == "good",
                    (None, None) => s["quality"] == "bad",
                    _ => false,
                };
                let (a, b) = (is(v1), is(v2));
                assert!(a || b, "{device}/{name}: {s} is neither {v1:?} nor {v2:?}");
                if b && !a {
                    in_afternoon = true;
                }
                assert!(
                    !(in_afternoon && a && !b),
                    "{device}/{name}: noon value after afternoon"
                );
            }
            if name == "ac_power" {
                assert_ne!(v1, v2, "test premise: power changes between phases");
                assert!(in_afternoon, "{device}: no afternoon sample of ac_power");
            }
            counts.insert(samples.len());
            total += samples.len() as u64;
        }
        // Each poll reads every point, so every point has the same count.
        assert_eq!(counts.len(), 1, "{device}: uneven counts {counts:?}");
    }
    assert_eq!(total, st.samples_polled);

    // Devices differ: the simulator's inverters are distinguishable.
    let p0 = defs.iter().find(|d| d.name == "ac_power").unwrap();
    assert_ne!(
        sunspec::expected_value(&noon[0], p0),
        sunspec::expected_value(&noon[1], p0)
    );

    stop_sim.cancel();
    stop_cloud.cancel();
    cloud.wait().await.unwrap();
    fleet.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_polled_sample_arrives_once_with_served_values_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(testing::sqlite_url(dir.path())).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_polled_sample_arrives_once_with_served_values_on_postgres() {
    scenario(testing::fresh_postgres_database().await.unwrap()).await;
}

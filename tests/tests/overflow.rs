//! The cloud is unreachable and the edge buffer is smaller than the outage:
//! the oldest data is dropped, and once the cloud is back its completeness
//! endpoint reports exactly what was dropped — per point, per sequence —
//! and everything else arrived once.
#![allow(clippy::unwrap_used)]

use dcmms_cloud::{CloudConfig, gateways, testing};
use dcmms_simulators::demo::{SiteLink, edge_config};
use dcmms_simulators::modbus::{FleetConfig, start_fleet};
use dcmms_tests::support::{CloudReader, free_port, wait_until};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_ranges_are_reported_exactly_by_the_completeness_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let cloud_addr = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let db_url = testing::sqlite_url(dir.path());
    // Register the gateway before the outage, then take the cloud down.
    let credential = {
        let db = dcmms_cloud::Db::connect(&db_url).await.unwrap();
        let gw = gateways::create(&db, "ovf-gw", "overflow").await.unwrap();
        db.close().await;
        gw.credential
    };
    let stop_sim = CancellationToken::new();
    let fleet = start_fleet(
        FleetConfig {
            count: 2,
            ..FleetConfig::default()
        },
        stop_sim.clone(),
    )
    .await
    .unwrap();
    let mut cfg = edge_config(&SiteLink {
        gateway_id: "ovf-gw".into(),
        credential,
        cloud_url: format!("http://{cloud_addr}"),
        buffer_path: dir.path().join("buffer"),
        edge_listen: "127.0.0.1:0".parse().unwrap(),
        inverters: fleet.addrs(),
        unit_id: 1,
        poll_interval_ms: 20,
        flush_interval_ms: 20,
    });
    cfg.buffer.max_bytes = 1024 * 1024; // the validated minimum
    // No merging during this outage, so the 1 MiB cap fills within seconds.
    cfg.buffer.compact_after_ms = 600_000;
    cfg.cloud.backoff_min_ms = 50;
    cfg.cloud.backoff_max_ms = 200;
    cfg.cloud.shutdown_grace_ms = 180_000;
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();
    // Outage: poll until the cap has dropped data several times over.
    wait_until("buffer overflow", Duration::from_secs(120), || {
        m.status().samples_dropped > 20_000
    })
    .await;
    // Stop polling, then bring the cloud back and let the edge drain.
    stop_sim.cancel();
    fleet.wait().await;
    let stop_cloud = CancellationToken::new();
    let cloud = dcmms_cloud::start(
        &CloudConfig {
            listen: cloud_addr,
            database_url: db_url,
            ..CloudConfig::default()
        },
        stop_cloud.clone(),
    )
    .await
    .unwrap();
    stop_edge.cancel();
    edge.wait().await;
    let st = m.status();
    assert_eq!(st.batches_pending, 0, "{st:?}");
    assert!(st.samples_dropped > 0);
    assert_eq!(
        st.samples_acknowledged + st.samples_dropped,
        st.samples_polled,
        "{st:?}"
    );

    let c: Value = CloudReader::new(&cloud)
        .await
        .get_json(&format!(
            "/api/v1/gateways/ovf-gw/completeness?from=0&to={}",
            i64::MAX
        ))
        .await;
    // Sequences: everything is either received or dropped; nothing in flight.
    assert_eq!(st.batches_quarantined, 0, "{st:?}");
    assert_eq!(
        c["sequences"]["in_flight"],
        Value::Array(vec![]),
        "{}",
        c["sequences"]
    );
    assert!(
        !c["sequences"]["dropped"].as_array().unwrap().is_empty(),
        "{c}"
    );
    // Per point: received + dropped spans add up, and dropped samples total the edge's count.
    let mut dropped_total = 0u64;
    let mut per_device: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for p in c["points"].as_array().unwrap() {
        let received = p["received"].as_u64().unwrap();
        let dropped: u64 = p["dropped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["samples"].as_u64().unwrap())
            .sum();
        for d in p["dropped"].as_array().unwrap() {
            assert_eq!(d["reason"], "capacity");
            assert!(d["from_ms"].as_i64().unwrap() <= d["to_ms"].as_i64().unwrap());
            // Dropped data is older than everything received for the point.
            assert!(d["to_ms"].as_i64().unwrap() < p["last_ms"].as_i64().unwrap());
        }
        dropped_total += dropped;
        let e = per_device
            .entry(p["device"].as_str().unwrap().to_string())
            .or_default();
        e.0 += received;
        e.1 += dropped;
    }
    assert_eq!(dropped_total, st.samples_dropped);
    let received_total: u64 = per_device.values().map(|v| v.0).sum();
    assert_eq!(received_total, st.samples_acknowledged);
    assert_eq!(
        testing::count_samples(&cloud.db).await.unwrap() as u64,
        st.samples_acknowledged
    );
    stop_cloud.cancel();
    cloud.wait().await.unwrap();
}

//! Anomaly events reach the real cloud: a buffer holding a backlog of
//! sample batches and then an event batch (wire version 3) is drained by
//! the edge's forwarder into `dcmms-cloud`; every batch is acknowledged
//! (none quarantined: the cloud reads version 3), and the event batch is
//! the first one offered.
#![allow(clippy::unwrap_used)]

use dcmms_cloud::{gateways, testing};
use dcmms_edge::buffer::{Buffer, Limits};
use dcmms_edge::config::CloudLink;
use dcmms_edge::metrics::EdgeMetrics;
use dcmms_shared::{AnomalyEvent, AnomalyKind, Contribution, Quality, Sample, Series, wire};
use dcmms_tests::support::wait_until;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn series(k: i64) -> Vec<Series> {
    vec![Series {
        device: "turbine1".into(),
        point: "GearboxTemperature".into(),
        unit: "°C".into(),
        samples: (0..10)
            .map(|i| Sample {
                ts_ms: 1_775_001_600_000 + (k * 10 + i) * 1000,
                value: 40.0 + i as f64,
                quality: Quality::Good,
            })
            .collect(),
    }]
}

fn event() -> AnomalyEvent {
    let text = "gearbox temperature 14 °C above expected for this power".to_string();
    AnomalyEvent {
        kind: AnomalyKind::Raised,
        asset: "WTG-01".into(),
        asset_class: "wind_turbine".into(),
        model_id: "wind-turbine-ae".into(),
        model_version: "1.0.0".into(),
        ts_ms: 1_775_001_900_000,
        window_start_ms: 1_775_001_721_000,
        score: 40.0,
        raise_level: 13.2,
        summary: text.clone(),
        explanation: vec![Contribution {
            feature: "gearbox_rise".into(),
            unit: "°C".into(),
            share: 0.9,
            value: 52.0,
            expected: 38.0,
            text,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_batches_are_offered_first_and_the_cloud_acknowledges_them() {
    let dir = tempfile::tempdir().unwrap();
    let stop_cloud = CancellationToken::new();
    let cloud =
        dcmms_tests::support::start_cloud(testing::sqlite_url(dir.path()), &stop_cloud).await;
    let gw = gateways::create(&cloud.db, "wind-gw", "wind")
        .await
        .unwrap();

    let metrics = EdgeMetrics::default();
    let buffer = Arc::new(
        Buffer::open(
            &dir.path().join("buffer"),
            16 << 20,
            Limits::default(),
            "wind-gw",
            metrics.clone(),
        )
        .unwrap(),
    );
    // A backlog of 25 sample batches (more than the 20 "live" ones), then
    // one event batch.
    for k in 0..25 {
        buffer.append(series(k), 0).await.unwrap();
    }
    let event_seq = buffer
        .append_with_events(Vec::new(), vec![event()], 0)
        .await
        .unwrap();
    let first = buffer.next().await.unwrap().unwrap();
    assert_eq!(first.sequence, event_seq, "the event batch goes first");
    let decoded = wire::decode(&first.frame).unwrap();
    assert_eq!(first.frame[4], wire::VERSION);
    assert_eq!(decoded.events, vec![event()]);

    let shutdown = CancellationToken::new();
    let sealing_done = CancellationToken::new();
    let forwarder = tokio::spawn(dcmms_edge::forwarder::run_forwarder(
        CloudLink {
            url: cloud.url(),
            credential: gw.credential.clone(),
            request_timeout_ms: 10_000,
            backoff_min_ms: 50,
            backoff_max_ms: 500,
            shutdown_grace_ms: 5_000,
            backlog_bytes_per_s: 0,
        },
        buffer.clone(),
        Arc::new(tokio::sync::Notify::new()),
        metrics.clone(),
        shutdown.clone(),
        sealing_done.clone(),
    ));
    let m = metrics.clone();
    wait_until(
        "all 26 batches acknowledged",
        Duration::from_secs(60),
        || m.batches_acknowledged.get() == 26,
    )
    .await;
    assert_eq!(metrics.batches_quarantined.get(), 0);
    assert!(buffer.next().await.unwrap().is_none());
    assert_eq!(metrics.samples_acknowledged.get(), 250);
    shutdown.cancel();
    sealing_done.cancel();
    forwarder.await.unwrap();
    stop_cloud.cancel();
}

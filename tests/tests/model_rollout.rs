//! Model rollout end to end (docs/specs/model-registry.md): the operations
//! centre uploads a new version of the wind-turbine model and assigns it to
//! a gateway; the running edge, scoring a live OPC UA turbine, pulls it and
//! hot-swaps it without stopping. A corrupt version assigned next is
//! refused by the edge, which keeps the good one running and reports the
//! error the cloud then shows. The installed version survives a restart of
//! the edge with the cloud gone. Built with `--features opcua`.
#![cfg(feature = "opcua")]
#![allow(clippy::unwrap_used)]

mod opcua_support;

use base64::Engine as _;
use dcmms_simulators::modbus::SimClock;
use dcmms_simulators::opcua::{RunningTurbine, TurbineModel, TurbineServerConfig};
use opcua_support::{Api, connected, site, wait_until};
use serde_json::{Value, json};
use sha2::Digest;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const GATEWAY: &str = "rollout-gw";
const DEVICE: &str = "wtg-01";

async fn edge_status(addr: std::net::SocketAddr) -> Value {
    reqwest::get(format!("http://{addr}/api/v1/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn upload(metadata: &Value, onnx: &[u8]) -> Value {
    json!({"metadata": metadata,
           "onnx_base64": base64::engine::general_purpose::STANDARD.encode(onnx)})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_assigned_model_is_pulled_and_swapped_and_a_corrupt_one_is_refused_and_reported() {
    let site = site(GATEWAY).await;
    let api = Api::admin(&site.cloud).await;

    // A live turbine (10× real time) and an edge scoring it.
    let stop_sim = CancellationToken::new();
    let turbine = RunningTurbine::start(
        TurbineServerConfig {
            port: 0,
            model: TurbineModel::new(77, 3000.0),
            clock: SimClock::accelerated(opcua_support::T0, 10.0),
            update_interval: Duration::from_millis(50),
            ..TurbineServerConfig::default()
        },
        &stop_sim,
    )
    .await
    .unwrap();
    let committed = opcua_support::committed_wind_model();
    let toml = opcua_support::turbine_with_model_toml(&turbine, 50, "sync_interval_ms = 300\n");
    let config = site.edge_config(GATEWAY, &toml);
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(config.clone(), stop_edge.clone())
        .await
        .unwrap();
    let m = edge.metrics.clone();
    wait_until("subscribed", Duration::from_secs(30), || {
        connected(&m, DEVICE)
    })
    .await;

    // Version 1.0.1: the same network, new metadata.
    let onnx = std::fs::read(&committed).unwrap();
    let mut meta: Value =
        serde_json::from_slice(&std::fs::read(committed.with_extension("json")).unwrap()).unwrap();
    meta["version"] = "1.0.1".into();
    api.post("/api/v1/models", upload(&meta, &onnx)).await;
    api.put(
        "/api/v1/models/assignments",
        json!({"target": {"gateway_id": GATEWAY}, "model_id": "wind-turbine-ae", "version": "1.0.1"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = edge_status(edge.http_addr).await;
        if s["anomaly"]["models"][0]["version"] == "1.0.1" {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "never swapped: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let g = api.get("/api/v1/models/gateways").await;
        if g[0]["running_version"] == "1.0.1" && g[0]["in_sync"] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "cloud view: {g}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scored_before = edge_status(edge.http_addr).await["anomaly"]["windows_scored"]
        .as_u64()
        .unwrap();

    // Version 1.0.2: bytes that are not a graph (the hash matches them).
    let garbage = b"definitely not an ONNX graph".to_vec();
    let mut bad = meta.clone();
    bad["version"] = "1.0.2".into();
    bad["onnx_sha256"] = hex::encode(sha2::Sha256::digest(&garbage)).into();
    api.post("/api/v1/models", upload(&bad, &garbage)).await;
    api.put(
        "/api/v1/models/assignments",
        json!({"target": {"gateway_id": GATEWAY}, "model_id": "wind-turbine-ae", "version": "1.0.2"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let reported = loop {
        let g = api.get("/api/v1/models/gateways").await;
        if g[0]["last_error"].is_string() {
            break g;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no error reported: {g}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(
        (
            reported[0]["running_version"].as_str(),
            reported[0]["assigned_version"].as_str(),
            reported[0]["in_sync"].as_bool()
        ),
        (Some("1.0.1"), Some("1.0.2"), Some(false)),
        "{reported}"
    );
    assert!(
        reported[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("not a usable ONNX model"),
        "{reported}"
    );
    // The edge kept scoring with 1.0.1 and says why on its own page.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = edge_status(edge.http_addr).await;
        if s["anomaly"]["windows_scored"].as_u64().unwrap_or(0) > scored_before + 3 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "scoring stopped: {s}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = edge_status(edge.http_addr).await;
    assert_eq!(s["anomaly"]["models"][0]["version"], "1.0.1", "{s}");
    assert!(s["anomaly"]["models"][0]["last_error"].is_string(), "{s}");

    // Rollback: back to 1.0.1, which the edge runs already.
    let r = api
        .post(
            "/api/v1/models/assignments/rollback",
            json!({"target": {"gateway_id": GATEWAY}, "model_id": "wind-turbine-ae"}),
        )
        .await;
    assert_eq!(r["version"], "1.0.1");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let g = api.get("/api/v1/models/gateways").await;
        if g[0]["in_sync"] == true {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "cloud view: {g}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_edge.cancel();
    edge.wait().await;

    // The cloud goes away; a restarted edge runs the installed 1.0.1.
    stop_sim.cancel();
    turbine.wait().await;
    let _files = site.stop_cloud_keep_files().await;
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(config, stop_edge.clone()).await.unwrap();
    let s = edge_status(edge.http_addr).await;
    assert_eq!(s["anomaly"]["models"][0]["version"], "1.0.1", "{s}");
    assert!(
        s["anomaly"]["models"][0]["path"]
            .as_str()
            .unwrap()
            .ends_with("models/wind-turbine-ae.onnx"),
        "{s}"
    );
    stop_edge.cancel();
    edge.wait().await;
}

//! Anomaly detection end to end (issue 6): the OPC UA turbine simulator
//! develops gearbox overheating; the edge subscribes to it, scores the
//! committed wind-turbine model on the live stream and forwards the raise
//! event; the cloud turns it into an alarm carrying the model's explanation
//! and, because its anomaly rule says so, a predictive work order. The
//! technician's view on the edge (its status page, which works without
//! the cloud) shows the same event and explanation.
//!
//! The simulation runs 30× faster than real time from a start chosen so
//! that the turbine is producing (a calm would leave nothing to detect):
//! the fault begins 20 simulated minutes in. Every step is a separate real
//! component (OPC UA over TCP, the edge agent, the cloud over HTTP on
//! SQLite). Built with `--features opcua` (dcmms-tests).
#![cfg(feature = "opcua")]
#![allow(clippy::unwrap_used)]

mod opcua_support;

use dcmms_simulators::modbus::SimClock;
use dcmms_simulators::opcua::{
    RunningTurbine, TurbineModel, TurbineServerConfig, WindFault, WindFaultKind,
};
use opcua_support::{Api, connected, site, wait_until};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const GATEWAY: &str = "anomaly-e2e-gw";
const DEVICE: &str = "wtg-01";
const MINUTE: i64 = 60_000;
const SPEEDUP: f64 = 30.0;

fn now_ms() -> i64 {
    dcmms_cloud::gateways::now_ms()
}

/// The first start (from 40 minutes ago, in 10-minute steps) after which
/// the turbine produces for 45 minutes: every minute's mean wind between
/// 9 and 16 m/s (well above cut-in, below cut-out).
fn windy_start(model: &TurbineModel, from: i64) -> i64 {
    (0..2000)
        .map(|k| from + k * 10 * MINUTE)
        .find(|s| {
            (0..45).all(|m| {
                let t = s + m * MINUTE;
                let mean = (0..60).map(|i| model.wind(t + i * 1000)).sum::<f64>() / 60.0;
                (9.0..=16.0).contains(&mean)
            })
        })
        .expect("no windy 45 minutes in two weeks of the simulated wind")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gearbox_overheating_in_the_turbine_becomes_an_alarm_with_its_explanation_and_a_predictive_work_order()
 {
    let site = site(GATEWAY).await;
    let api = Api::admin(&site.cloud).await;

    // The operations centre's side: the turbine as an asset and a rule
    // that turns the edge's anomalies into alarms with work orders.
    let site_id = api
        .post(
            "/api/v1/sites",
            json!({"code": "WND-E2E", "name": "Wind end to end", "kind": "wind",
                   "ac_capacity_kw": 3000.0, "latitude": 23.2, "longitude": 68.9,
                   "time_zone": "Asia/Kolkata", "grid_connection_point": "Bhuj 220 kV"}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let wtg = api
        .post(
            "/api/v1/assets",
            json!({"site_id": site_id, "name": "WTG-01", "class": "turbine",
                   "nameplate": {"rated_power_kw": 3000.0}}),
        )
        .await["id"]
        .as_i64()
        .unwrap();
    let rule = api
        .post(
            "/api/v1/alarm-rules",
            json!({"name": "Turbine anomaly (edge model)",
                   "scope": {"type": "asset_class", "class": "turbine", "role": "gearbox_temperature"},
                   "condition": {"type": "anomaly", "model_id": "wind-turbine-ae"},
                   "severity": 2, "auto_work_order": true}),
        )
        .await["id"]
        .as_i64()
        .unwrap();

    // The turbine: windy, its gearbox starting to overheat 20 minutes in.
    let probe = TurbineModel::new(1001, 3000.0);
    let start = windy_start(&probe, now_ms() - 40 * MINUTE);
    let onset = start + 20 * MINUTE;
    let model = probe.with_faults(vec![WindFault {
        kind: WindFaultKind::GearboxOverheat,
        start_ms: onset,
        end_ms: None,
    }]);
    let stop_sim = CancellationToken::new();
    let turbine = RunningTurbine::start(
        TurbineServerConfig {
            port: 0,
            model,
            clock: SimClock::accelerated(start, SPEEDUP),
            update_interval: Duration::from_millis(30),
            ..TurbineServerConfig::default()
        },
        &stop_sim,
    )
    .await
    .unwrap();

    // The edge: every variable subscribed, the committed model bound.
    let toml = opcua_support::turbine_with_model_toml(&turbine, 30, "");
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(site.edge_config(GATEWAY, &toml), stop_edge.clone())
        .await
        .unwrap();
    let m = edge.metrics.clone();
    wait_until("subscribed", Duration::from_secs(30), || {
        connected(&m, DEVICE)
    })
    .await;

    // The gearbox temperature point reaches the cloud; link it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let point = loop {
        let pts = api
            .get(&format!(
                "/api/v1/points?gateway_id={GATEWAY}&device={DEVICE}&limit=100"
            ))
            .await;
        let found = pts["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["point"] == "GearboxTemperature")
            .and_then(|p| p["id"].as_i64());
        if let Some(id) = found {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the gearbox temperature never reached the cloud"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    api.post(
        &format!("/api/v1/assets/{wtg}/points"),
        json!({"point_id": point, "role": "gearbox_temperature"}),
    )
    .await;

    // Within 150 simulated minutes (5 real ones) of the start, an alarm.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    let alarm = loop {
        let list = api.get(&format!("/api/v1/alarms?rule_id={rule}")).await;
        if let Some(a) = list["items"].as_array().unwrap().first() {
            break a.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alarm; edge status {:?}",
            m.status()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The technician's view on the edge: the event and its explanation.
    let status: Value = reqwest::get(format!("http://{}/api/v1/status", edge.http_addr))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(status["anomaly"]["windows_scored"].as_u64().unwrap() > 10);
    let local = &status["anomaly"]["recent_events"][0];
    assert_eq!(
        (local["kind"].as_str(), local["asset"].as_str()),
        (Some("raised"), Some("WTG-01")),
        "{status}"
    );
    assert_eq!(
        local["explanation"][0]["feature"], "gearbox_rise",
        "{local}"
    );
    assert_eq!(m.batches_quarantined.get(), 0);
    stop_edge.cancel();
    edge.wait().await;
    stop_sim.cancel();
    turbine.wait().await;

    // Raised after the fault began, not before (no false alarm), on WTG-01.
    let raised = alarm["raised_ms"].as_i64().unwrap();
    assert!(
        raised > onset,
        "raised at {raised}, {} s before the onset",
        (onset - raised) / 1000
    );
    assert_eq!(alarm["asset_id"].as_i64(), Some(wtg));
    let id = alarm["id"].as_i64().unwrap();
    let full = api.get(&format!("/api/v1/alarms/{id}")).await;
    let anomaly = &full["evidence"]["anomaly"];
    assert_eq!(anomaly["model_id"], "wind-turbine-ae", "{full}");
    // The explanation leads with the gearbox, in a technician's words.
    let top = &anomaly["explanation"][0];
    assert_eq!(top["feature"], "gearbox_rise", "{top}");
    // The cloud's alarm is the event the edge raised.
    assert_eq!(alarm["raised_ms"], local["ts_ms"], "{alarm} {local}");
    let text = top["text"].as_str().unwrap();
    assert!(text.contains("gearbox temperature"), "{text}");
    assert!(text.contains("above expected"), "{text}");
    let wo = alarm["work_order_id"].as_i64().expect("a work order");
    let wo = api.get(&format!("/api/v1/work-orders/{wo}")).await;
    assert_eq!(wo["kind"], "predictive", "{wo}");
    assert!(wo["description"].as_str().unwrap().contains(text), "{wo}");
    site.stop().await;
}

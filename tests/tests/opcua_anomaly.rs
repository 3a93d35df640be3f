//! A gearbox fault injected in the OPC UA turbine simulator is raised by
//! the edge's anomaly engine (subscriptions → batcher → model) and the
//! event batch is acknowledged by the cloud. The simulator's clock runs
//! 30× so minutes of turbine time pass in seconds; rows and windows follow
//! the samples' source timestamps, so the model sees turbine time.
//!
//! Built with `--features opcua` (dcmms-tests).
#![cfg(feature = "opcua")]
#![allow(clippy::unwrap_used)]

mod opcua_support;

use dcmms_simulators::modbus::SimClock;
use dcmms_simulators::opcua::{
    RunningTurbine, TurbineModel, TurbineServerConfig, WindFault, WindFaultKind, variable_node_id,
};
use opcua_support::{T0, site, wait_until};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const ROLES: [(&str, &str); 8] = [
    ("wind_speed", "WindSpeed"),
    ("active_power", "ActivePower"),
    ("rotor_speed", "RotorSpeed"),
    ("pitch_angle", "PitchAngle"),
    ("gearbox_temp", "GearboxTemperature"),
    ("generator_temp", "GeneratorTemperature"),
    ("bearing_temp", "BearingTemperature"),
    ("ambient_temp", "AmbientTemperature"),
];
const MIN: i64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gearbox_fault_in_the_simulator_raises_an_explained_anomaly_the_cloud_takes() {
    // A windy stretch, so the fault shows within minutes (at idle it adds
    // only a few degrees: docs/models/wind-turbine.md): the first seed
    // whose mean power in the 20 minutes after onset is above 1 MW.
    let onset = T0 + 6 * MIN;
    let seed = (1u64..200)
        .find(|s| {
            let m = TurbineModel::new(*s, 3000.0);
            let p: f64 = (0..120)
                .map(|k| m.observe(onset + k * 10_000).active_power)
                .sum();
            p / 120.0 > 1000.0
        })
        .unwrap();
    let model = TurbineModel::new(seed, 3000.0).with_faults(vec![WindFault {
        kind: WindFaultKind::GearboxOverheat,
        start_ms: onset,
        end_ms: None,
    }]);
    let gw = "opcua-anomaly-gw";
    let site = site(gw).await;
    let stop_sim = CancellationToken::new();
    let turbine = RunningTurbine::start(
        TurbineServerConfig {
            port: 0,
            model,
            clock: SimClock::accelerated(T0, 30.0),
            update_interval: Duration::from_millis(30),
            ..TurbineServerConfig::default()
        },
        &stop_sim,
    )
    .await
    .unwrap();
    let ns = turbine.namespace();
    let mut opcua = format!(
        "endpoint_url = \"{}\"\npublishing_interval_ms = 50\nsampling_interval_ms = 30\n",
        turbine.endpoint_url()
    );
    for (_, var) in ROLES {
        opcua.push_str(&format!(
            "[[devices.opcua.points]]\nname = \"{var}\"\nnode_id = \"{}\"\n",
            variable_node_id(ns, var)
        ));
    }
    let onnx = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../edge/models/wind-turbine/wind-turbine-ae.onnx");
    opcua.push_str(&format!(
        "[anomaly]\n[[anomaly.models]]\nid = \"wind-turbine-ae\"\npath = {:?}\n\
         [[anomaly.assets]]\nasset = \"WTG-01\"\nmodel = \"wind-turbine-ae\"\n[anomaly.assets.points]\n",
        onnx.display().to_string()
    ));
    for (role, var) in ROLES {
        opcua.push_str(&format!("{role} = \"wtg-01/{var}\"\n"));
    }
    let cfg = site.edge_config(gw, &opcua);
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let status_url = format!("http://{}/api/v1/status", edge.http_addr);
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let status = loop {
        let status: serde_json::Value = http
            .get(&status_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["anomaly"]["raised"].as_u64().unwrap_or(0) >= 1 {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no anomaly raised in 180 s (90 turbine minutes): {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status["anomaly"]["windows_scored"].as_u64().unwrap() > 10);
    // The technician's view: the event and its explanation, on the edge.
    let e = &status["anomaly"]["recent_events"][0];
    assert_eq!(e["kind"], "raised", "{status}");
    assert_eq!(e["asset"], "WTG-01");
    assert!(
        e["ts_ms"].as_i64().unwrap() > onset,
        "raised before the fault: {e}"
    );
    assert_eq!(e["explanation"][0]["feature"], "gearbox_rise", "{e}");
    assert!(
        e["summary"]
            .as_str()
            .unwrap()
            .starts_with("gearbox temperature "),
        "{e}"
    );
    // The event batch leaves ahead of everything else and the cloud takes it.
    let m = edge.metrics.clone();
    let acked = m.batches_acknowledged.get();
    wait_until(
        "later batches acknowledged",
        Duration::from_secs(30),
        || m.batches_acknowledged.get() >= acked + 3,
    )
    .await;
    assert_eq!(m.batches_quarantined.get(), 0);
    stop_edge.cancel();
    edge.wait().await;
    stop_sim.cancel();
    turbine.wait().await;
    site.stop().await;
}

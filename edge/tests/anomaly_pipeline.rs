//! The anomaly engine inside the agent: readings of a simulated turbine
//! with a gearbox fault go through the real batcher and buffer; the event
//! batch is offered before everything else, carries its explanation, and a
//! model hot-swapped mid-stream (then a corrupt replacement) costs no
//! sample. Then the HTTP side: reload and status on a running agent.
#![cfg(feature = "anomaly")]
#![allow(clippy::unwrap_used)]

use dcmms_edge::EdgeConfig;
use dcmms_edge::anomaly::ModelControl;
use dcmms_edge::anomaly::engine::{Engine, Registry};
use dcmms_edge::buffer::{Buffer, Limits};
use dcmms_edge::drivers::Reading;
use dcmms_edge::metrics::EdgeMetrics;
use dcmms_shared::{AnomalyKind, Quality, Sample, wire};
use dcmms_simulators::opcua::{TurbineModel, WindFault, WindFaultKind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Turbine variables in the device's point order; the roles they feed.
const POINTS: [(&str, &str); 8] = [
    ("WindSpeed", "wind_speed"),
    ("ActivePower", "active_power"),
    ("RotorSpeed", "rotor_speed"),
    ("PitchAngle", "pitch_angle"),
    ("GearboxTemperature", "gearbox_temp"),
    ("GeneratorTemperature", "generator_temp"),
    ("BearingTemperature", "bearing_temp"),
    ("AmbientTemperature", "ambient_temp"),
];

fn committed_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/wind-turbine/wind-turbine-ae.onnx")
}

fn copy_model(dir: &Path) -> PathBuf {
    let onnx = dir.join("wt.onnx");
    std::fs::copy(committed_model(), &onnx).unwrap();
    std::fs::copy(
        committed_model().with_extension("json"),
        dir.join("wt.json"),
    )
    .unwrap();
    onnx
}

/// The same model under another version number (metadata only).
fn bump_version(onnx: &Path, version: &str) {
    let json = onnx.with_extension("json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    meta["version"] = version.into();
    std::fs::write(&json, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
}

fn config(dir: &Path, onnx: &Path, watch_ms: u64) -> EdgeConfig {
    let mut t = format!(
        r#"gateway_id = "gw-wind"
[cloud]
url = "http://127.0.0.1:9"
credential = "gw-wind.0000000000000000000000000000000000000000000000000000000000000000"
[buffer]
path = "{buf}"
flush_interval_ms = 100
[http]
listen = "127.0.0.1:0"
[anomaly]
watch_interval_ms = {watch_ms}
[[anomaly.models]]
id = "wind-turbine-ae"
path = "{onnx}"
[[anomaly.assets]]
asset = "WTG-01"
model = "wind-turbine-ae"
[anomaly.assets.points]
"#,
        buf = dir.join("buffer").display(),
        onnx = onnx.display(),
    );
    for (p, role) in POINTS {
        t.push_str(&format!("{role} = \"turbine1/{p}\"\n"));
    }
    t.push_str(
        "[[devices]]\nname = \"turbine1\"\npoll_interval_ms = 1000\n\
         [devices.modbus_tcp]\nhost = \"127.0.0.1\"\nport = 9\nunit_id = 1\ntimeout_ms = 200\n",
    );
    for (i, (p, _)) in POINTS.iter().enumerate() {
        t.push_str(&format!(
            "[[devices.points]]\nname = \"{p}\"\naddress = {i}\ntype = \"u16\"\n"
        ));
    }
    EdgeConfig::from_toml(&t, "test.toml").unwrap()
}

fn reading(m: &TurbineModel, ts: i64) -> Reading {
    let r = m.observe(ts);
    Reading {
        device: 0,
        samples: POINTS
            .iter()
            .enumerate()
            .map(|(i, (p, _))| {
                (
                    i,
                    Sample {
                        ts_ms: ts,
                        value: r.field(p).unwrap(),
                        quality: Quality::Good,
                    },
                )
            })
            .collect(),
    }
}

/// 2026-03-01T00:00:00Z.
const T0: i64 = 1_772_323_200_000;
const MINUTE: i64 = 60_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gearbox_fault_event_goes_first_and_hot_swaps_lose_no_sample() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = copy_model(dir.path());
    let cfg = Arc::new(config(dir.path(), &onnx, 0));
    let registry = Arc::new(Registry::load(&cfg.anomaly).unwrap());
    let engine = Engine::new(&cfg.anomaly.assets, registry.clone()).unwrap();
    let metrics = EdgeMetrics::default();
    let buffer = Arc::new(
        Buffer::open(
            &cfg.buffer.path,
            16 << 20,
            Limits::default(),
            &cfg.gateway_id,
            metrics.clone(),
        )
        .unwrap(),
    );
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let batcher = tokio::spawn(dcmms_edge::pipeline::run_batcher(
        cfg.clone(),
        rx,
        buffer.clone(),
        Arc::new(tokio::sync::Notify::new()),
        metrics.clone(),
        Some(Box::new(engine)),
    ));
    let onset = T0 + 45 * MINUTE;
    let turbine = TurbineModel::new(1001, 3000.0).with_faults(vec![WindFault {
        kind: WindFaultKind::GearboxOverheat,
        start_ms: onset,
        end_ms: None,
    }]);
    let seconds = 90 * 60;
    for k in 0..seconds {
        if k == 20 * 60 {
            // Hot swap mid-stream: the same network as version 1.0.1.
            bump_version(&onnx, "1.0.1");
            let v = registry.reload("wind-turbine-ae").unwrap();
            assert_eq!(v["version"], "1.0.1");
        }
        if k == 30 * 60 {
            // A corrupt replacement: rejected, 1.0.1 keeps scoring.
            std::fs::write(&onnx, b"not an onnx file").unwrap();
            let e = registry.reload("wind-turbine-ae").unwrap_err();
            assert!(e.to_string().contains("wt.onnx"), "{e}");
            let s = registry.status();
            assert_eq!(s["models"][0]["version"], "1.0.1");
            assert!(
                s["models"][0]["last_error"]
                    .as_str()
                    .unwrap()
                    .contains("wt.onnx")
            );
        }
        tx.send(reading(&turbine, T0 + k * 1000)).await.unwrap();
    }
    drop(tx);
    batcher.await.unwrap();

    // Everything the batcher got is in the buffer; the event batch first.
    let mut samples = 0u64;
    let mut events = Vec::new();
    let mut first = true;
    while let Some(p) = buffer.next().await.unwrap() {
        let b = wire::decode(&p.frame).unwrap();
        if first {
            assert!(
                !b.events.is_empty(),
                "first batch offered carries the event"
            );
            first = false;
        }
        samples += b.series.iter().map(|s| s.samples.len() as u64).sum::<u64>();
        events.extend(b.events);
        buffer.remove(p.sequence).await.unwrap();
    }
    assert_eq!(
        samples,
        seconds as u64 * 8,
        "no sample lost across the swaps"
    );
    let raised: Vec<_> = events
        .iter()
        .filter(|e| e.kind == AnomalyKind::Raised)
        .collect();
    assert_eq!(raised.len(), 1, "{events:#?}");
    let e = raised[0];
    assert_eq!(
        (e.asset.as_str(), e.model_version.as_str()),
        ("WTG-01", "1.0.1")
    );
    assert!(
        e.ts_ms > onset,
        "raised at {} before onset {onset}",
        e.ts_ms
    );
    assert_eq!(
        e.explanation[0].feature, "gearbox_rise",
        "{:#?}",
        e.explanation
    );
    assert!(e.summary.contains("gearbox temperature") && e.summary.contains("above expected"));
    assert!(registry.status()["windows_scored"].as_u64().unwrap() > 400);
    // The status shows the same events for a technician.
    let recent = registry.recent_events();
    assert_eq!(recent.len(), events.len());
    assert_eq!(recent.first(), events.first());
}

#[test]
fn changed_files_are_reloaded_once_and_a_bad_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = copy_model(dir.path());
    let cfg = config(dir.path(), &onnx, 1000);
    let registry = Registry::load(&cfg.anomaly).unwrap();
    registry.reload_changed();
    assert_eq!(registry.models()[0].reloads, 0, "nothing changed");
    // A new metadata file: picked up.
    std::thread::sleep(std::time::Duration::from_millis(20));
    bump_version(&onnx, "2.0.0");
    registry.reload_changed();
    let m = &registry.models()[0];
    assert_eq!((m.version.as_str(), m.reloads), ("2.0.0", 1));
    // A broken one: reported once, the running model stays.
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(onnx.with_extension("json"), b"{").unwrap();
    registry.reload_changed();
    registry.reload_changed();
    let m = &registry.models()[0];
    assert_eq!((m.version.as_str(), m.reloads), ("2.0.0", 1));
    assert!(
        m.last_error.as_deref().unwrap().contains("wt.json"),
        "{m:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_api_swaps_or_keeps_the_model_and_status_tells() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = copy_model(dir.path());
    let shutdown = CancellationToken::new();
    let edge = dcmms_edge::start(config(dir.path(), &onnx, 0), shutdown.clone())
        .await
        .unwrap();
    let base = format!("http://{}", edge.http_addr);
    let http = reqwest::Client::new();
    let status = || async {
        http.get(format!("{base}/api/v1/status"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    let s = status().await;
    assert_eq!(s["anomaly"]["models"][0]["version"], "1.0.0");
    assert!(s["anomaly"]["models"][0]["last_error"].is_null());

    let reload = |id: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            http.post(format!("{base}/api/v1/anomaly/models/{id}/reload"))
                .send()
                .await
                .unwrap()
        }
    };
    std::fs::write(&onnx, b"garbage").unwrap();
    let r = reload("wind-turbine-ae").await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("wt.onnx"));
    let s = status().await;
    assert_eq!(
        s["anomaly"]["models"][0]["version"], "1.0.0",
        "old model runs"
    );
    assert!(
        s["anomaly"]["models"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("wt.onnx")
    );
    assert_eq!(reload("no-such-model").await.status(), 404);

    std::fs::copy(committed_model(), &onnx).unwrap();
    bump_version(&onnx, "1.1.0");
    let r = reload("wind-turbine-ae").await;
    assert_eq!(r.status(), 200);
    let s = status().await;
    assert_eq!(s["anomaly"]["models"][0]["version"], "1.1.0");
    assert_eq!(s["anomaly"]["models"][0]["reloads"], 1);
    assert!(s["anomaly"]["models"][0]["last_error"].is_null());
    shutdown.cancel();
    edge.wait().await;
}

#[tokio::test]
async fn a_bad_model_stops_the_agent_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = copy_model(dir.path());
    std::fs::write(&onnx, b"garbage").unwrap();
    let e = dcmms_edge::start(config(dir.path(), &onnx, 0), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("wt.onnx"), "{e}");
}

/// A model from the cloud (docs/specs/model-registry.md §3): installed only
/// after its checks, preferred at the next start; a corrupt one leaves the
/// running model, is reported and is not tried again.
#[test]
fn installed_models_replace_the_running_one_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = copy_model(dir.path());
    let mut cfg = config(dir.path(), &onnx, 0);
    let models_dir = dir.path().join("models");
    cfg.anomaly.models_dir = Some(models_dir.clone());
    let registry = Registry::load(&cfg.anomaly).unwrap();
    let bytes = std::fs::read(&onnx).unwrap();
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(onnx.with_extension("json")).unwrap()).unwrap();
    meta["version"] = "1.1.0".into();
    let meta_bytes = serde_json::to_vec(&meta).unwrap();

    let s = registry
        .install("wind-turbine-ae", "1.1.0", &meta_bytes, &bytes)
        .unwrap();
    assert_eq!(s.version, "1.1.0");
    assert_eq!(
        std::path::PathBuf::from(&s.path),
        models_dir.join("wind-turbine-ae.onnx")
    );
    assert_eq!(registry.running()[0].version, "1.1.0");
    assert!(!models_dir.join("wind-turbine-ae.new.onnx").exists());

    // Corrupt bytes whose hash the metadata names: refused, old one stays.
    let garbage = b"not an onnx graph".to_vec();
    let mut bad = meta.clone();
    bad["version"] = "1.2.0".into();
    bad["onnx_sha256"] = sha256_hex(&garbage).into();
    let err = registry
        .install(
            "wind-turbine-ae",
            "1.2.0",
            &serde_json::to_vec(&bad).unwrap(),
            &garbage,
        )
        .unwrap_err();
    assert!(err.to_string().contains("ONNX"), "{err}");
    let m = &registry.models()[0];
    assert_eq!(m.version, "1.1.0");
    assert!(m.last_error.as_deref().unwrap().contains("ONNX"), "{m:?}");
    assert!(registry.failed_before("wind-turbine-ae", "1.2.0", &sha256_hex(&garbage)));
    assert!(!registry.failed_before("wind-turbine-ae", "1.3.0", &sha256_hex(&garbage)));
    assert!(!models_dir.join("wind-turbine-ae.new.onnx").exists());
    assert!(!models_dir.join("wind-turbine-ae.new.json").exists());
    assert!(
        registry
            .install("nope", "1.1.0", &meta_bytes, &bytes)
            .is_err()
    );

    // A restart runs the installed copy, not the configured file.
    let again = Registry::load(&cfg.anomaly).unwrap();
    assert_eq!(again.models()[0].version, "1.1.0");
    // An installed copy that no longer loads: the configured file runs and
    // the status says why.
    std::fs::write(models_dir.join("wind-turbine-ae.json"), b"{").unwrap();
    let fallback = Registry::load(&cfg.anomaly).unwrap();
    let m = &fallback.models()[0];
    assert_eq!(m.path, onnx.display().to_string());
    assert!(
        m.last_error
            .as_deref()
            .unwrap()
            .contains("running the configured file"),
        "{m:?}"
    );
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(b))
}

/// Drift through the engine: the same turbine over the same hour, healthy
/// and with its gearbox overheating. Only the gearbox feature's PSI
/// against the training reference changes; reports come every
/// `min_windows` and survive a failed sync.
#[test]
fn drift_reports_come_every_min_windows_and_name_the_feature_that_moved() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = copy_model(dir.path());
    let json = onnx.with_extension("json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(
        meta["drift"].is_object(),
        "the committed model carries its training reference"
    );
    meta["drift"]["min_windows"] = 300.into();
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
    let cfg = config(dir.path(), &onnx, 0);
    let from = T0 + 10 * 3_600_000;
    let report = |turbine: &TurbineModel| {
        let registry = Arc::new(Registry::load(&cfg.anomaly).unwrap());
        let mut engine = Engine::new(&cfg.anomaly.assets, registry.clone()).unwrap();
        for s in 0..60 * 60 {
            engine.on_reading(&cfg, &reading(turbine, from + s * 1000));
        }
        (registry.take_drift(), registry)
    };
    let (healthy, _) = report(&TurbineModel::new(7, 3_000.0));
    let onset = WindFault {
        kind: WindFaultKind::GearboxOverheat,
        start_ms: T0,
        end_ms: None,
    };
    let (hot, registry) = report(&TurbineModel::new(7, 3_000.0).with_faults(vec![onset]));
    assert_eq!(healthy.len(), 1, "{healthy:?}");
    assert_eq!(hot.len(), 1, "{hot:?}");
    let (h, f) = (&healthy[0], &hot[0]);
    assert_eq!((f.asset.as_str(), f.windows), ("WTG-01", 300));
    assert_eq!(f.features.len(), 8);
    let psi = |r: &dcmms_shared::api::DriftReport, name: &str| {
        r.features.iter().find(|x| x.feature == name).unwrap().psi
    };
    // Over one hour every feature differs from a training set that spans
    // all weather (hence the week-long default); what matters here is that
    // the fault moves the gearbox feature's distribution and nothing else.
    assert!(
        (psi(f, "gearbox_rise") - psi(h, "gearbox_rise")).abs() > 0.1,
        "{f:?} against {h:?}"
    );
    for x in &h.features {
        if x.feature != "gearbox_rise" {
            assert!(
                (psi(f, &x.feature) - x.psi).abs() < 1e-9,
                "{}: {f:?} against {h:?}",
                x.feature
            );
        }
    }
    assert!(registry.take_drift().is_empty(), "taken once");
    // Undelivered reports go back in order.
    registry.restore_drift(hot.clone());
    assert_eq!(registry.take_drift(), hot);
    let status = registry.status();
    assert_eq!(status["drift"][0]["asset"], "WTG-01");
    assert!(
        status["drift"][0]["last"]["features"].is_array(),
        "{status}"
    );
}

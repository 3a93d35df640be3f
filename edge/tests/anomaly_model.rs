//! The anomaly runtime against the committed wind-turbine, PV inverter and
//! BESS rack models and the parity fixtures written by `edge/models/train.py`.
#![cfg(feature = "anomaly")]
#![allow(clippy::unwrap_used)]

use dcmms_edge::anomaly::detector::{AssetWindow, Hysteresis, WindowReady, score_window};
use dcmms_edge::anomaly::features::{BessParams, FeatureSet, Params, PvParams, WindParams};
use dcmms_edge::anomaly::model::{Model, ModelError};
use dcmms_shared::{AnomalyKind, Quality};
use std::path::{Path, PathBuf};

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/wind-turbine")
}

fn wind_model() -> PathBuf {
    models_dir().join("wind-turbine-ae.onnx")
}

fn pv_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/pv-inverter/pv-inverter-ae.onnx")
}

fn bess_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/bess-rack/bess-rack-ae.onnx")
}

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn csv(text: &str) -> Vec<Vec<f64>> {
    text.lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse::<f64>().unwrap()).collect())
        .collect()
}

/// Feeds a parity fixture (`<prefix>_features_{params.json,input.csv}`)
/// through the same row/window machinery the edge runs and checks every
/// window's features against the ones Python computed
/// (`<prefix>_features_expected.csv`); returns how many windows matched.
fn check_parity(
    prefix: &str,
    set: FeatureSet,
    params: impl Fn(serde_json::Value) -> Params,
) -> usize {
    let meta: serde_json::Value =
        serde_json::from_str(&fixture(&format!("{prefix}_features_params.json"))).unwrap();
    let params = params(meta["params"].clone());
    let window: dcmms_edge::anomaly::model::WindowMeta =
        serde_json::from_value(meta["window"].clone()).unwrap();
    let input = csv(&fixture(&format!("{prefix}_features_input.csv")));
    let expected = csv(&fixture(&format!("{prefix}_features_expected.csv")));
    let roles = set.roles().len();
    let mut w = AssetWindow::new(roles);
    let mut got: Vec<WindowReady> = Vec::new();
    // Each CSV row is one instant; the sample at row k's time lands in the
    // row formed for that time once the next instant arrives.
    for row in &input {
        assert_eq!(row.len(), 1 + roles);
        let ts = row[0] as i64;
        for (role, v) in row[1..].iter().enumerate() {
            w.push(
                role,
                ts,
                *v,
                Quality::Good,
                window,
                set,
                &params,
                &mut |r| got.push(r),
            );
        }
    }
    // A final sample forms the last row.
    let end = input.last().unwrap()[0] as i64 + window.sample_period_ms as i64;
    w.push(0, end, 0.0, Quality::Good, window, set, &params, &mut |r| {
        got.push(r)
    });
    // Python: a window at every `step` rows from the first full one, so
    // both start at the same window and share the cadence; declined
    // windows are missing from both.
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(g.end_ms, e[0] as i64);
        for (i, (a, b)) in g.features.iter().zip(&e[1..]).enumerate() {
            let tol = 1e-9 * b.abs().max(1.0);
            assert!(
                (a - b).abs() <= tol,
                "window {} feature {i}: rust {a} python {b}",
                g.end_ms
            );
        }
    }
    got.len()
}

/// The Rust features equal the Python ones on the committed fixture, window
/// by window, fed through the same row/window machinery the edge runs.
#[test]
fn rust_features_match_the_python_training_code() {
    let n = check_parity("wind", FeatureSet::WindTurbineV1, |v| {
        Params::Wind(serde_json::from_value::<WindParams>(v).unwrap())
    });
    assert!(n > 50, "{n}");
}

/// The same for `pv_inverter/1`: a June day and a half with dusk, night,
/// insulation trips at dawn, clipping, a string outage and a failing fan.
#[test]
fn rust_pv_features_match_the_python_training_code() {
    let n = check_parity("pv", FeatureSet::PvInverterV1, |v| {
        Params::Pv(serde_json::from_value::<PvParams>(v).unwrap())
    });
    assert!(n > 100, "{n}");
    // The fixture holds what it claims: some windows are declined (night),
    // and the faults move the features the way the physics says.
    let expected = csv(&fixture("pv_features_expected.csv"));
    let input = csv(&fixture("pv_features_input.csv"));
    let steps = (input.len() - 900) / 5 + 1;
    assert!(expected.len() < steps, "{} of {steps}", expected.len());
    let tripped = expected.iter().filter(|e| e[4] == 0.0).count();
    assert!(tripped > 0, "no window with a daylight trip");
    let lost = expected.iter().filter(|e| e[3] < -7.0).count();
    assert!(lost > 0, "no window after the string outage");
    let hot = expected.iter().filter(|e| e[5] > 1.0).count();
    assert!(hot > 0, "no window with the failing fan");
}

#[test]
fn the_committed_model_loads_and_explains_an_overheating_gearbox() {
    let m = Model::load(&wind_model()).unwrap();
    assert_eq!(m.meta.model_id, "wind-turbine-ae");
    assert_eq!(m.feature_count(), 8);
    // A typical healthy window: the training means.
    let healthy: Vec<f64> = m.meta.features.iter().map(|f| f.mean).collect();
    let s = m.score(&healthy).unwrap();
    assert!(s.score < m.meta.score.clear, "{}", s.score);
    // The same window with the gearbox 15 °C hotter.
    let mut hot = healthy.clone();
    hot[5] += 15.0;
    let mut h = Hysteresis::default();
    let w = WindowReady {
        start_ms: 0,
        end_ms: 299_000,
        features: hot,
    };
    let mut event = None;
    for _ in 0..m.meta.score.raise_count {
        let (score, e) = score_window(&m, "WTG-01", &mut h, &w).unwrap();
        assert!(score > m.meta.score.raise, "{score}");
        event = event.or(e);
    }
    let e = event.expect("raised after raise_count windows");
    assert_eq!(e.kind, AnomalyKind::Raised);
    assert_eq!(e.explanation[0].feature, "gearbox_rise");
    assert!(e.explanation[0].share > 0.5, "{:?}", e.explanation);
    assert!(
        e.summary.starts_with("gearbox temperature ")
            && e.summary.ends_with(" °C above expected for this power"),
        "{}",
        e.summary
    );
    let shares: f64 = e.explanation.iter().map(|c| c.share).sum();
    assert!((shares - 1.0).abs() < 1e-9);
    assert!(e.explanation.windows(2).all(|p| p[0].share >= p[1].share));
}

/// tract runs the exported graph as sklearn ran the network it came from.
fn check_export(onnx: &Path, expected: &str) {
    let m = Model::load(onnx).unwrap();
    let f = m.feature_count();
    let text = fixture(expected);
    let mut n = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let v: Vec<f64> = line.split(',').map(|x| x.parse().unwrap()).collect();
        assert_eq!(v.len(), 2 * f);
        let z: Vec<f32> = v[..f].iter().map(|x| *x as f32).collect();
        let out = m.reconstruct(&z).unwrap();
        for (a, b) in out.iter().zip(&v[f..]) {
            assert!((f64::from(*a) - b).abs() < 1e-4, "{out:?} vs {:?}", &v[f..]);
        }
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn tract_reproduces_the_sklearn_network() {
    check_export(&wind_model(), "wind_model_expected.csv");
}

#[test]
fn tract_reproduces_the_sklearn_pv_network() {
    check_export(&pv_model(), "pv_model_expected.csv");
}

#[test]
fn tract_reproduces_the_sklearn_bess_network() {
    check_export(&bess_model(), "bess_model_expected.csv");
}

/// The same for `bess_rack/1`: a June day of one rack from 08:00 local,
/// the midday charge and the evening discharge, a weak cell from 10:00 and
/// a cooling failure from 17:00.
#[test]
fn rust_bess_features_match_the_python_training_code() {
    let n = check_parity("bess", FeatureSet::BessRackV1, |v| {
        Params::Bess(serde_json::from_value::<BessParams>(v).unwrap())
    });
    assert!(n > 1000, "{n}");
    // The fixture holds what it claims: the weak cell opens the spread
    // under current, the cooling failure heats the rack beyond its current.
    let expected = csv(&fixture("bess_features_expected.csv"));
    let before = |ms: f64| expected.iter().filter(move |e| e[0] < ms);
    let input = csv(&fixture("bess_features_input.csv"));
    let t0 = input[0][0];
    let wide = |e: &&Vec<f64>| e[3] > 15.0;
    assert_eq!(before(t0 + 7_200_000.0).filter(wide).count(), 0);
    assert!(expected.iter().filter(wide).count() > 10, "no wide spread");
    let hot = |e: &&Vec<f64>| e[4] > 1.0;
    assert_eq!(before(t0 + 32_400_000.0).filter(hot).count(), 0);
    assert!(expected.iter().filter(hot).count() > 10, "no hot rack");
}

/// The committed BESS model: a healthy window is quiet; a cell-voltage
/// spread far above the expected one raises, explained by the spread; a
/// rack hotter than its current explains is explained by the temperature.
#[test]
fn the_committed_bess_model_explains_a_weak_cell_and_a_hot_rack() {
    let m = Model::load(&bess_model()).unwrap();
    assert_eq!(m.meta.model_id, "bess-rack-ae");
    assert_eq!(m.set, FeatureSet::BessRackV1);
    let names: Vec<&str> = m.meta.features.iter().map(|f| f.name.as_str()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    // Discharging at 0.5 C mid-SoC, healthy: no excess, the modules'
    // usual temperature spread; and resting overnight.
    let mut healthy = vec![0.0; names.len()];
    healthy[at("current_rms")] = 140.0;
    healthy[at("soc_mean")] = 50.0;
    healthy[at("temp_spread")] = 0.7;
    let mut resting = healthy.clone();
    resting[at("current_rms")] = 0.0;
    resting[at("soc_mean")] = 18.0;
    resting[at("temp_spread")] = 0.5;
    for x in [&healthy, &resting] {
        let s = m.score(x).unwrap().score;
        assert!(s < m.meta.score.clear, "{x:?}: {s}");
    }
    let raise = |x: Vec<f64>| {
        let mut h = Hysteresis::default();
        let w = WindowReady {
            start_ms: 0,
            end_ms: 1_800_000,
            features: x,
        };
        let mut event = None;
        for _ in 0..m.meta.score.raise_count {
            let (score, e) = score_window(&m, "BESS-01", &mut h, &w).unwrap();
            assert!(score > m.meta.score.raise, "{score}");
            event = event.or(e);
        }
        event.expect("raised after raise_count windows")
    };
    let mut weak = healthy.clone();
    weak[at("spread_excess")] = 30.0;
    let e = raise(weak);
    assert_eq!(e.asset_class, "bess_rack");
    assert_eq!(
        e.explanation[0].feature, "spread_excess",
        "{:?}",
        e.explanation
    );
    assert!(
        e.summary.starts_with("cell voltage spread ")
            && e.summary
                .ends_with(" mV above expected at this state of charge and current"),
        "{}",
        e.summary
    );
    // An operating point far outside training takes the largest share,
    // but current and SoC are context: the summary names the symptom.
    assert!(m.meta.features[at("soc_mean")].context);
    assert!(!m.meta.features[at("spread_excess")].context);
    let mut odd = healthy.clone();
    odd[at("soc_mean")] = 150.0;
    odd[at("spread_excess")] = 30.0;
    let e = raise(odd);
    assert_eq!(e.explanation[0].feature, "soc_mean", "{:?}", e.explanation);
    assert!(
        e.summary.starts_with("cell voltage spread "),
        "{}",
        e.summary
    );
    let mut hot = healthy.clone();
    hot[at("rise_excess")] = 2.0;
    let e = raise(hot);
    assert_eq!(
        e.explanation[0].feature, "rise_excess",
        "{:?}",
        e.explanation
    );
    assert!(
        e.summary.starts_with("hottest cell ")
            && e.summary
                .ends_with(" °C above expected for this current and ambient"),
        "{}",
        e.summary
    );
}

/// Metadata whose `params.sample_period_s` is not the window's period is
/// refused (the thermal prediction's step would be wrong).
#[test]
fn a_bess_model_with_a_mismatched_sample_period_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = bess_model();
    let onnx = dir.path().join("bess-rack-ae.onnx");
    std::fs::copy(&src, &onnx).unwrap();
    let text = std::fs::read_to_string(src.with_extension("json")).unwrap();
    let mut meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["params"]["sample_period_s"] = serde_json::json!(1.0);
    std::fs::write(onnx.with_extension("json"), meta.to_string()).unwrap();
    let err = Model::load(&onnx).unwrap_err().to_string();
    assert!(err.contains("sample_period_s"), "{err}");
}

/// The committed PV model: a healthy window is quiet; one string of twelve
/// lost (DC power 1/12 below the inverter's own level) raises within
/// `raise_count` windows, explained by the DC power; a hot heat sink is
/// explained by the heat sink.
#[test]
fn the_committed_pv_model_explains_a_lost_string_and_a_hot_heat_sink() {
    let m = Model::load(&pv_model()).unwrap();
    assert_eq!(m.meta.model_id, "pv-inverter-ae");
    assert_eq!(m.set, FeatureSet::PvInverterV1);
    let names: Vec<&str> = m.meta.features.iter().map(|f| f.name.as_str()).collect();
    let at = |n: &str| names.iter().position(|x| *x == n).unwrap();
    let healthy: Vec<f64> = m.meta.features.iter().map(|f| f.mean).collect();
    assert!(m.score(&healthy).unwrap().score < m.meta.score.clear);
    let raise = |x: Vec<f64>| {
        let mut h = Hysteresis::default();
        let w = WindowReady {
            start_ms: 0,
            end_ms: 86_340_000,
            features: x,
        };
        let mut event = None;
        for _ in 0..m.meta.score.raise_count {
            let (score, e) = score_window(&m, "INV-01", &mut h, &w).unwrap();
            assert!(score > m.meta.score.raise, "{score}");
            event = event.or(e);
        }
        event.expect("raised after raise_count windows")
    };
    let mut lost = healthy.clone();
    lost[at("dc_change")] = 100.0 * (11.0 / 12.0 - 1.0);
    lost[at("dc_performance")] *= 11.0 / 12.0;
    let e = raise(lost);
    assert_eq!(e.asset_class, "pv_inverter");
    assert_eq!(e.explanation[0].feature, "dc_change", "{:?}", e.explanation);
    assert!(
        e.summary.starts_with("DC power ")
            && e.summary
                .ends_with(" % below its own level of the last 24 hours at the same irradiance"),
        "{}",
        e.summary
    );
    let mut hot = healthy.clone();
    hot[at("heatsink_excess")] = 4.0;
    let e = raise(hot);
    assert_eq!(
        e.explanation[0].feature, "heatsink_excess",
        "{:?}",
        e.explanation
    );
    assert!(
        e.summary.starts_with("heat-sink temperature ") && e.summary.contains(" °C above expected"),
        "{}",
        e.summary
    );
}

/// Copies the committed model into a temp dir for tampering.
fn copy_model(dir: &Path) -> PathBuf {
    let onnx = dir.join("m.onnx");
    std::fs::copy(wind_model(), &onnx).unwrap();
    std::fs::copy(wind_model().with_extension("json"), dir.join("m.json")).unwrap();
    onnx
}

fn set_hash(onnx: &Path) {
    use sha2::Digest;
    let json = onnx.with_extension("json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    meta["onnx_sha256"] = hex::encode(sha2::Sha256::digest(std::fs::read(onnx).unwrap())).into();
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
}

#[test]
fn corrupt_or_mismatched_model_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let onnx = copy_model(dir.path());
    assert!(Model::load(&onnx).is_ok());

    // Flipped bytes: the hash says so.
    let mut bytes = std::fs::read(&onnx).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&onnx, &bytes).unwrap();
    let e = Model::load(&onnx).unwrap_err();
    assert!(matches!(e, ModelError::Hash { .. }), "{e}");
    assert!(e.to_string().contains("m.onnx"), "{e}");

    // Garbage whose hash the metadata vouches for: tract refuses it.
    std::fs::write(&onnx, b"this is not a protobuf").unwrap();
    set_hash(&onnx);
    let e = Model::load(&onnx).unwrap_err();
    assert!(matches!(e, ModelError::Onnx { .. }), "{e}");
    assert!(e.to_string().contains("m.onnx"), "{e}");

    // Truncated real model.
    let good = std::fs::read(wind_model()).unwrap();
    std::fs::write(&onnx, &good[..good.len() / 3]).unwrap();
    set_hash(&onnx);
    let e = Model::load(&onnx).unwrap_err();
    assert!(matches!(e, ModelError::Onnx { .. }), "{e}");

    // Metadata with one feature fewer than the graph takes.
    std::fs::write(&onnx, &good).unwrap();
    let json = onnx.with_extension("json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let full = meta.clone();
    meta["features"].as_array_mut().unwrap().pop();
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
    set_hash(&onnx);
    let e = Model::load(&onnx).unwrap_err();
    assert!(
        e.to_string().contains("m.json") && e.to_string().contains("features"),
        "{e}"
    );

    // Thresholds the wrong way round, and an unknown field.
    let mut meta = full.clone();
    meta["score"]["clear"] = (meta["score"]["raise"].as_f64().unwrap() * 2.0).into();
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
    assert!(
        Model::load(&onnx)
            .unwrap_err()
            .to_string()
            .contains("clear < raise")
    );
    let mut meta = full.clone();
    meta["surprise"] = 1.into();
    std::fs::write(&json, serde_json::to_vec(&meta).unwrap()).unwrap();
    assert!(
        Model::load(&onnx)
            .unwrap_err()
            .to_string()
            .contains("surprise")
    );

    // Missing metadata.
    std::fs::remove_file(&json).unwrap();
    let e = Model::load(&onnx).unwrap_err();
    assert!(
        matches!(e, ModelError::Read { .. }) && e.to_string().contains("m.json"),
        "{e}"
    );
}

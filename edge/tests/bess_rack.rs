//! The BESS rack section of `edge.example.toml` against the rack simulator
//! (`dcmms-sim modbus --device bess`, simulators/src/bess/bms.rs): the
//! Modbus driver reads the BMS map with the example's types and scaling,
//! every value is the rack model's own in the units the `bess_rack/1`
//! feature set expects, and the example's model binding names a point of
//! the device for every role of the set.
#![allow(clippy::unwrap_used)]

use dcmms_edge::anomaly::features::BESS_ROLES;
use dcmms_edge::config::{EdgeConfig, example_with_section};
use dcmms_edge::drivers::{Reading, modbus};
use dcmms_edge::metrics::EdgeMetrics;
use dcmms_shared::Quality;
use dcmms_simulators::bess::RackModel;
use dcmms_simulators::modbus::{DeviceKind, FleetConfig, SimClock, start_fleet};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const SEED: u64 = 7;
/// 2026-06-21 06:30 UTC, noon at the site (UTC+05:30).
const NOON: i64 = 1_782_023_400_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_rack_reads_the_simulated_bms_in_the_model_units() {
    let cfg = EdgeConfig::from_toml(
        &example_with_section("BESS rack").unwrap(),
        "edge.example.toml",
    )
    .unwrap();
    let mut dev = cfg
        .devices
        .iter()
        .find(|d| d.name == "rack-01")
        .unwrap()
        .clone();
    let names: Vec<String> = (0..dev.point_count())
        .map(|i| dev.point_name_unit(i).unwrap().0.to_string())
        .collect();

    // The binding covers the feature set's roles with this device's points.
    let binding = cfg
        .anomaly
        .assets
        .iter()
        .find(|a| a.model == "bess-rack-ae")
        .unwrap();
    let roles: Vec<&str> = binding.points.keys().map(String::as_str).collect();
    let mut want: Vec<&str> = BESS_ROLES.iter().map(|(r, _)| *r).collect();
    want.sort_unstable();
    assert_eq!(roles, want);
    for (role, target) in &binding.points {
        let point = target.strip_prefix("rack-01/").unwrap();
        assert!(names.iter().any(|n| n == point), "{role} -> {target}");
    }

    // Mid-charge: the schedule's charge start plus 20 minutes.
    let rack = RackModel::new(SEED);
    let day = RackModel::day_start(NOON);
    let t = day + rack.schedule(day).charge_from_ms + 20 * 60_000;
    let expected = rack.observe(t);
    assert!(
        expected.rack_current < -20.0,
        "the rack charges at {t}: {expected:?}"
    );

    let shutdown = CancellationToken::new();
    let fleet = start_fleet(
        FleetConfig {
            count: 1,
            seed: SEED,
            base_port: 0,
            clock: SimClock::frozen(t),
            update_interval: Duration::from_millis(50),
            device: DeviceKind::BessRack,
            ..FleetConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let addr = fleet.addrs()[0];
    let tcp = dev.modbus_tcp.as_mut().unwrap();
    tcp.host = addr.ip().to_string();
    tcp.port = addr.port();
    dev.poll_interval_ms = 50;
    let (tx, mut rx) = mpsc::channel::<Reading>(64);
    tokio::spawn(modbus::run_device(
        0,
        dev.clone(),
        Duration::ZERO,
        tx,
        EdgeMetrics::default(),
        shutdown.clone(),
    ));
    let reading = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let r = rx.recv().await.unwrap();
            if r.samples.len() == names.len()
                && r.samples.iter().all(|(_, s)| s.quality == Quality::Good)
            {
                return r;
            }
        }
    })
    .await
    .expect("no complete good reading from the simulated rack within 60 s");
    shutdown.cancel();

    let got: BTreeMap<&str, f64> = reading
        .samples
        .iter()
        .map(|(i, s)| (names[*i].as_str(), s.value))
        .collect();
    // (point, model value, half the register's resolution)
    let checks = [
        ("rack_current", expected.rack_current, 0.05),
        ("soc", expected.soc, 0.05),
        ("cell_v_max", expected.cell_v_max, 0.0005),
        ("cell_v_min", expected.cell_v_min, 0.0005),
        ("cell_t_max", expected.cell_t_max, 0.05),
        ("cell_t_min", expected.cell_t_min, 0.05),
        ("hvac_temp", expected.ambient_temp, 0.05),
        ("rack_voltage", expected.rack_voltage, 0.05),
    ];
    for (point, want, tol) in checks {
        let v = got[point];
        assert!(
            (v - want).abs() <= tol + 1e-9,
            "{point}: read {v}, the rack model says {want}"
        );
    }
    // Units the feature set expects: volts per cell, not millivolts.
    assert!((2.5..3.7).contains(&got["cell_v_min"]), "{got:?}");
}

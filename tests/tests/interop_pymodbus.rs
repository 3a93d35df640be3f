//! The edge's SunSpec discovery and Modbus driver against an independent
//! server: pymodbus (pinned in tests/interop/requirements.txt) serving
//! models 1 + 103 with known values (tests/interop/pymodbus_sunspec_server.py).
//! Needs python3 + pip and PyPI on first run; fails (never skips) otherwise.
#![allow(clippy::unwrap_used)]

use dcmms_edge::config::{DeviceConfig, Discovery, ModbusTcpConfig};
use dcmms_edge::drivers::{Reading, modbus};
use dcmms_edge::metrics::EdgeMetrics;
use dcmms_shared::Quality;
use dcmms_tests::support::interop_python;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Kills the server when the test ends, pass or fail.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(python: &str) -> (Server, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/pymodbus_sunspec_server.py");
    let mut child = Command::new(python)
        .arg(&script)
        .arg(port.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run the interop python");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    assert_eq!(
        line.trim(),
        format!("READY {port}"),
        "pymodbus server did not start"
    );
    (server, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunspec_discovery_against_pymodbus_yields_the_known_points_and_scaled_values() {
    let python = interop_python("pymodbus");
    let (_server, port) = start_server(&python);
    let device = DeviceConfig {
        name: "pymodbus-inv".into(),
        poll_interval_ms: 100,
        modbus_tcp: Some(ModbusTcpConfig {
            host: "127.0.0.1".into(),
            port,
            unit_id: 1,
            timeout_ms: 2000,
            max_gap: 16,
            max_registers_per_read: 125,
        }),
        modbus_rtu: None,
        mqtt: None,
        opcua: None,
        dnp3: None,
        discover: Some(Discovery::Sunspec),
        discovered: Default::default(),
        report: None,
        poll_groups: Vec::new(),
        template: None,
        points: Vec::new(),
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Reading>(64);
    let shutdown = CancellationToken::new();
    tokio::spawn(modbus::run_device(
        0,
        device.clone(),
        Duration::ZERO,
        tx,
        EdgeMetrics::default(),
        shutdown.clone(),
    ));
    let start = Instant::now();
    let reading = loop {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no reading from pymodbus"
        );
        let r = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if r.samples.iter().any(|(_, s)| s.quality == Quality::Good) {
            break r;
        }
    };

    // Addresses from the SunSpec model definitions: model 1 header at
    // 40002 (L = 66), model 103 header at 40070, body from 40072.
    let pts = device.discovered.get().unwrap();
    let by = |n: &str| {
        pts.iter()
            .position(|p| p.name == n)
            .unwrap_or_else(|| panic!("{n} not discovered"))
    };
    let body = 40072u16;
    for (name, off, sf_off, unit) in [
        ("m103.A", 0, Some(4), "A"),
        ("m103.PhVphA", 8, Some(11), "V"),
        ("m103.W", 12, Some(13), "W"),
        ("m103.Hz", 14, Some(15), "Hz"),
        ("m103.PF", 20, Some(21), "Pct"),
        ("m103.WH", 22, Some(24), "Wh"),
        ("m103.DCV", 27, Some(28), "V"),
        ("m103.TmpCab", 31, Some(35), "C"),
        ("m103.St", 36, None, ""),
    ] {
        let p = &pts[by(name)];
        assert_eq!(p.address, body + off, "{name}");
        assert_eq!(p.scale_factor_address, sf_off.map(|o| body + o), "{name}");
        assert_eq!(p.unit, unit, "{name}");
    }
    assert_eq!(pts[by("m1.DA")].address, 40068);

    let sample = |n: &str| reading.samples.iter().find(|(i, _)| *i == by(n)).unwrap().1;
    for (name, want) in [
        ("m103.A", 12.34),
        ("m103.PhVphA", 230.1),
        ("m103.W", 45000.0),
        ("m103.Hz", 50.02),
        ("m103.PF", -95.0),
        ("m103.WH", 123_456_789.0),
        ("m103.DCV", 600.0),
        ("m103.TmpCab", -5.5),
        ("m103.St", 4.0),
        ("m1.DA", 1.0),
    ] {
        let s = sample(name);
        assert_eq!(s.quality, Quality::Good, "{name}");
        assert!(
            (s.value - want).abs() < 1e-9 * want.abs().max(1.0),
            "{name}: {} != {want}",
            s.value
        );
    }
    // Not implemented on the server: reported bad, never as a number.
    for name in ["m103.AphB", "m103.VA", "m103.DCW", "m103.TmpSnk"] {
        let s = sample(name);
        assert_eq!(s.quality, Quality::Bad, "{name}");
        assert!(s.value.is_nan(), "{name}");
    }
    shutdown.cancel();
}

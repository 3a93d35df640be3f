//! The edge's OPC UA driver against an independent server: asyncua
//! (FreeOpcUa, Python; pinned in tests/interop/requirements.txt) serving a
//! turbine with known values (tests/interop/asyncua_turbine_server.py).
//!
//! - Browse discovery from `ns=2;s=Turbine1` finds exactly the numeric
//!   Variables (nested object included, the string one left out), named by
//!   their browse path.
//! - Values, source timestamps and qualities arrive in the cloud as served:
//!   Good → good, Uncertain → stale, Bad → bad; after the outage a value
//!   older than the comms_lost mark is stored at its receipt, after it.
//! - The Python server is killed and started again on the same port with
//!   new values; the edge reports the outage (one comms_lost mark per
//!   point), subscribes again by itself and the new values arrive.
//!
//! Needs python3 + pip and PyPI on first run; fails (never skips)
//! otherwise. Built with `--features opcua` (dcmms-tests).
#![cfg(feature = "opcua")]
#![allow(clippy::unwrap_used)]

mod opcua_support;

use dcmms_tests::support::{free_port, interop_python};
use opcua_support::{T0, connected, polls, site, values, wait_until};
use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "wtg-01";

/// Kills the server when dropped, pass or fail.
struct Server(std::process::Child);

impl Server {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the asyncua server; returns it and its namespace index.
fn start_server(python: &str, port: u16, generation: u32) -> (Server, u16) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/asyncua_turbine_server.py");
    let mut child = Command::new(python)
        .arg(&script)
        .args([port.to_string(), generation.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot run the interop python");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert!(
        parts.len() == 3 && parts[0] == "READY" && parts[1] == port.to_string(),
        "asyncua server did not start: {line:?}"
    );
    (server, parts[2].parse().unwrap())
}

/// What the Python server serves in generation `g`: point → (value, quality).
fn served(g: u32) -> Vec<(&'static str, Option<f64>, &'static str)> {
    let g = f64::from(g);
    vec![
        ("WindSpeed", Some(7.5 + g), "good"),
        ("ActivePower", Some(1234.5 + g), "good"),
        ("RotorSpeed", Some(11.25 + g), "good"),
        ("Status", Some(1.0 + g), "good"),
        ("NacelleTemperature", Some(35.0 + g), "stale"),
        // Bad: the value, if the server sends one, is not asserted.
        ("YawAngle", None, "bad"),
        ("Gearbox.OilTemperature", Some(61.0 + g), "good"),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browse_discovery_values_qualities_and_recovery_against_asyncua() {
    let python = interop_python("asyncua");
    let port = free_port();
    let (mut server, ns) = start_server(&python, port, 0);
    let gw = "opcua-interop-gw";
    let site = site(gw).await;
    let cfg = site.edge_config(
        gw,
        &format!(
            "endpoint_url = \"opc.tcp://127.0.0.1:{port}/\"\npublishing_interval_ms = 100\n\
             discover = \"browse\"\nbrowse_root = \"ns={ns};s=Turbine1\"\n"
        ),
    );
    let discovered = cfg.devices[0].opcua.as_ref().unwrap().discovered.clone();
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();
    let n = served(0).len() as u64;

    wait_until("discovered and subscribed", Duration::from_secs(60), || {
        connected(&m, DEVICE)
    })
    .await;
    let names: BTreeSet<&str> = discovered
        .get()
        .unwrap()
        .iter()
        .map(|p| p.name.as_str())
        .collect();
    let want: BTreeSet<&str> = served(0).iter().map(|(p, _, _)| *p).collect();
    assert_eq!(names, want, "SerialNumber is a string: no point");
    let node = |name: &str| {
        discovered
            .get()
            .unwrap()
            .iter()
            .find(|p| p.name == name)
            .unwrap()
            .node_id
            .clone()
    };
    assert_eq!(
        node("Gearbox.OilTemperature"),
        format!("ns={ns};s=Turbine1.Gearbox.OilTemperature")
    );
    wait_until("initial values", Duration::from_secs(60), || {
        m.status().samples_polled >= n
    })
    .await;

    // The server dies; the edge notices; the server comes back on the same
    // port with new values and no memory of our session.
    server.kill();
    wait_until("disconnect noticed", Duration::from_secs(30), || {
        !connected(&m, DEVICE)
    })
    .await;
    assert!(polls(&m, DEVICE, "error") >= 1);
    // The outage: one comms_lost mark per point, nothing else.
    wait_until("comms_lost marks", Duration::from_secs(30), || {
        m.status().samples_polled >= 2 * n
    })
    .await;
    assert_eq!(m.status().samples_polled, 2 * n);
    let (_server, ns_again) = start_server(&python, port, 1);
    assert_eq!(ns_again, ns);
    wait_until("resubscribed", Duration::from_secs(60), || {
        connected(&m, DEVICE)
    })
    .await;
    wait_until("values after the restart", Duration::from_secs(60), || {
        m.status().samples_polled >= 3 * n
    })
    .await;

    stop_edge.cancel();
    edge.wait().await;
    let st = m.status();
    assert_eq!(st.samples_polled, 3 * n, "{st:?}");
    assert_eq!(st.samples_acknowledged, 3 * n, "{st:?}");

    let stored = site.stored(gw, DEVICE).await;
    assert_eq!(stored.len(), n as usize, "{:?}", stored.keys());
    for ((point, v0, q0), (_, v1, q1)) in served(0).into_iter().zip(served(1)) {
        let (lost, got): (Vec<_>, Vec<_>) = values(&stored[point].1)
            .into_iter()
            .partition(|(_, _, q)| q == "comms_lost");
        assert_eq!(got.len(), 2, "{point}: {got:?}");
        // The mark holds the last good value (NaN when there was none).
        assert_eq!(lost.len(), 1, "{point}: {lost:?}");
        let held = if q0 == "good" { v0 } else { None };
        assert_eq!(lost[0].1, held, "{point}");
        // Source timestamps: T0 in generation 0, T0 + 1 s in generation 1.
        // The mark is on the server's clock (estimated from its values),
        // after generation 0. Generation 1's value keeps its timestamp when
        // that is after the mark; otherwise it would sort before the mark
        // and the point would read as lost, so it is stored at its receipt
        // (on the server's clock), after the mark.
        assert_eq!(got[0].0, T0, "{point}");
        assert!(lost[0].0 > T0, "{point}: mark at {}", lost[0].0);
        assert!(
            got[1].0 > lost[0].0,
            "{point}: generation 1 at {}, mark at {}",
            got[1].0,
            lost[0].0
        );
        if lost[0].0 < T0 + 1000 {
            assert_eq!(got[1].0, T0 + 1000, "{point}");
        }
        assert_eq!((got[0].2.as_str(), got[1].2.as_str()), (q0, q1), "{point}");
        if v0.is_some() {
            assert_eq!((got[0].1, got[1].1), (v0, v1), "{point}");
        }
    }
    site.stop().await;
}

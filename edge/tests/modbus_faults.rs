//! The Modbus driver against the simulator's injected faults: it recovers by
//! itself, keeps its poll period, reports `comms_lost` while the device is
//! unreachable, discovers SunSpec points, and speaks RTU over a pty pair.
//!
//! Each test drives `drivers::modbus::run_device` directly and reads the
//! channel the batcher would read, so every sample is visible.
#![allow(clippy::unwrap_used)]

use dcmms_edge::config::{
    DeviceConfig, Discovery, ModbusRtuConfig, ModbusTcpConfig, PointConfig, SerialParity,
};
use dcmms_edge::drivers::{Reading, modbus};
use dcmms_edge::metrics::EdgeMetrics;
use dcmms_shared::Quality;
use dcmms_simulators::demo;
use dcmms_simulators::modbus::rtu::{RtuConfig, start_rtu};
use dcmms_simulators::modbus::{Fault, FaultPlan, Fleet, FleetConfig, SimClock, start_fleet};
use dcmms_simulators::solar::SiteModel;
use dcmms_simulators::sunspec::{self, RegisterImage};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_modbus::prelude::ExceptionCode;
use tokio_util::sync::CancellationToken;

/// 2026-06-21 06:30 UTC, noon at Bhadla: power points are non-zero.
const NOON: i64 = 1_782_023_400_000;
const INTERVAL_MS: u64 = 50;
const TIMEOUT_MS: u64 = 300;
/// Upper bound on waiting for something that must happen; never asserted
/// as a speed, only to fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(60);

fn tcp_device(name: &str, addr: SocketAddr, interval_ms: u64, timeout_ms: u64) -> DeviceConfig {
    DeviceConfig {
        name: name.into(),
        poll_interval_ms: interval_ms,
        modbus_tcp: Some(ModbusTcpConfig {
            host: addr.ip().to_string(),
            port: addr.port(),
            unit_id: 1,
            timeout_ms,
            max_gap: 16,
            max_registers_per_read: 125,
        }),
        modbus_rtu: None,
        mqtt: None,
        opcua: None,
        dnp3: None,
        discover: None,
        discovered: Default::default(),
        report: None,
        poll_groups: Vec::new(),
        template: None,
        points: demo::inverter_points(),
    }
}

async fn fleet(count: usize, shutdown: &CancellationToken) -> Fleet {
    start_fleet(
        FleetConfig {
            count,
            seed: 3,
            site: SiteModel::bhadla(3),
            clock: SimClock::frozen(NOON),
            update_interval: Duration::from_millis(50),
            ..FleetConfig::default()
        },
        shutdown.clone(),
    )
    .await
    .unwrap()
}

struct Driver {
    rx: mpsc::Receiver<Reading>,
    metrics: EdgeMetrics,
    device: DeviceConfig,
}

fn spawn(index: usize, device: DeviceConfig, shutdown: &CancellationToken) -> Driver {
    let (tx, rx) = mpsc::channel(4096);
    let metrics = EdgeMetrics::default();
    tokio::spawn(modbus::run_device(
        index,
        device.clone(),
        Duration::ZERO,
        tx,
        metrics.clone(),
        shutdown.clone(),
    ));
    Driver {
        rx,
        metrics,
        device,
    }
}

impl Driver {
    /// The next reading whose first sample satisfies `pred`.
    async fn until(&mut self, what: &str, pred: impl Fn(&Reading) -> bool) -> Reading {
        let start = Instant::now();
        loop {
            let left = PATIENCE.saturating_sub(start.elapsed());
            let r = tokio::time::timeout(left, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("{}: no reading with {what}", self.device.name))
                .unwrap_or_else(|| panic!("{}: driver stopped", self.device.name));
            if pred(&r) {
                return r;
            }
        }
    }

    async fn until_quality(&mut self, q: Quality) -> Reading {
        self.until(&format!("{q:?}"), |r| {
            !r.samples.is_empty() && r.samples.iter().all(|(_, s)| s.quality == q)
        })
        .await
    }

    fn polls(&self, result: &str) -> String {
        self.metrics
            .render()
            .lines()
            .find(|l| {
                l.starts_with("dcmms_edge_device_polls_total")
                    && l.contains(&format!("result=\"{result}\""))
            })
            .unwrap_or("")
            .to_string()
    }
}

/// The value the simulator serves for the demo point `name`.
fn served(img: &RegisterImage, name: &str) -> Option<f64> {
    let def = sunspec::inverter_points()
        .into_iter()
        .find(|d| d.name == name)
        .unwrap();
    sunspec::expected_value(img, &def)
}

fn value_of(device: &DeviceConfig, r: &Reading, name: &str) -> f64 {
    let i = device
        .modbus_points()
        .iter()
        .position(|p| p.name == name)
        .unwrap_or_else(|| panic!("no point {name}"));
    r.samples.iter().find(|(j, _)| *j == i).unwrap().1.value
}

/// Good samples equal to what the simulator serves.
fn assert_served(d: &Driver, r: &Reading, img: &RegisterImage) {
    let w = served(img, "ac_power").unwrap();
    assert!(w > 1000.0, "test premise: noon power, got {w}");
    assert!((value_of(&d.device, r, "ac_power") - w).abs() < 1e-6);
}

async fn recovers_from(fault: Fault, during: Quality) {
    let shutdown = CancellationToken::new();
    let fleet = fleet(1, &shutdown).await;
    let mut d = spawn(
        0,
        tcp_device("inv", fleet.addrs()[0], INTERVAL_MS, TIMEOUT_MS),
        &shutdown,
    );
    let img = fleet.snapshot(0);
    let r = d.until_quality(Quality::Good).await;
    assert_served(&d, &r, &img);

    fleet.set_fault(None, FaultPlan::always(fault)).unwrap();
    let r = d.until_quality(during).await;
    assert_eq!(
        r.samples.len(),
        d.device.points.len(),
        "every point reported"
    );
    if during == Quality::CommsLost {
        // The last good value is held.
        assert!(
            (value_of(&d.device, &r, "ac_power") - served(&img, "ac_power").unwrap()).abs() < 1e-6
        );
    } else {
        assert!(r.samples.iter().all(|(_, s)| s.value.is_nan()));
    }

    fleet.set_fault(None, FaultPlan::default()).unwrap();
    let r = d.until_quality(Quality::Good).await;
    assert_served(&d, &r, &img);
    let ok_polls = d.polls("ok");
    assert!(!ok_polls.is_empty(), "no ok polls counted");
    if during == Quality::CommsLost {
        assert!(!d.polls("error").is_empty(), "no error polls counted");
    } else {
        assert!(
            !d.polls("exception").is_empty(),
            "no exception polls counted"
        );
    }
    shutdown.cancel();
    fleet.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_replies_slower_than_the_timeout() {
    recovers_from(
        Fault::Slow(Duration::from_millis(TIMEOUT_MS * 3)),
        Quality::CommsLost,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_dropped_connections() {
    recovers_from(Fault::Drop, Quality::CommsLost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_after_garbage_replies() {
    recovers_from(Fault::Garbage, Quality::CommsLost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_replies_mark_points_bad_and_keep_polling() {
    recovers_from(
        Fault::Exception(ExceptionCode::ServerDeviceFailure),
        Quality::Bad,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_goes_away_reports_comms_lost_each_interval_and_comes_back() {
    let shutdown = CancellationToken::new();
    let fleet = fleet(1, &shutdown).await;
    let interval = 100;
    let mut d = spawn(
        0,
        tcp_device("inv", fleet.addrs()[0], interval, TIMEOUT_MS),
        &shutdown,
    );
    let img = fleet.snapshot(0);
    d.until_quality(Quality::Good).await;

    fleet
        .set_fault(Some(0), FaultPlan::always(Fault::Gone))
        .unwrap();
    let first = d.until_quality(Quality::CommsLost).await;
    // While it is gone, a comms_lost reading arrives every interval, not
    // only on each (backed-off) reconnect attempt.
    let mut ts = vec![first.samples[0].1.ts_ms];
    while ts.len() < 20 {
        let r = d.until("any", |_| true).await;
        assert!(
            r.samples
                .iter()
                .all(|(_, s)| s.quality == Quality::CommsLost),
            "{r:?}"
        );
        assert!(
            (value_of(&d.device, &r, "ac_power") - served(&img, "ac_power").unwrap()).abs() < 1e-6
        );
        ts.push(r.samples[0].1.ts_ms);
    }
    let mean = (ts[19] - ts[0]) as f64 / 19.0;
    let iv = interval as f64;
    // A poller that waited out its backoff (up to 30 s) or the timeout
    // between readings would exceed the upper bound by far.
    assert!(
        mean >= 0.8 * iv && mean <= 2.5 * iv,
        "mean gap {mean} ms for interval {iv} ms"
    );

    fleet.set_fault(Some(0), FaultPlan::default()).unwrap();
    let r = d.until_quality(Quality::Good).await;
    assert_served(&d, &r, &img);
    shutdown.cancel();
    fleet.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_devices_do_not_change_the_poll_period_of_a_live_one() {
    let shutdown = CancellationToken::new();
    let fleet = fleet(2, &shutdown).await;
    // Refused: a port nothing listens on.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    // Black hole: connects (kernel backlog) but never answers, so every
    // request runs into the timeout.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // Gone: a simulated device taken off the network.
    fleet
        .set_fault(Some(1), FaultPlan::always(Fault::Gone))
        .unwrap();
    let interval = 100u64;
    let dead_timeout = 2_000u64;
    let mut dead = vec![
        spawn(
            1,
            tcp_device("refused", refused, interval, dead_timeout),
            &shutdown,
        ),
        spawn(
            2,
            tcp_device("hole", hole.local_addr().unwrap(), interval, dead_timeout),
            &shutdown,
        ),
        spawn(
            3,
            tcp_device("gone", fleet.addrs()[1], interval, dead_timeout),
            &shutdown,
        ),
    ];
    let mut live = spawn(
        0,
        tcp_device("live", fleet.addrs()[0], interval, TIMEOUT_MS),
        &shutdown,
    );
    live.until_quality(Quality::Good).await;
    // Let every dead device start failing before measuring.
    for d in &mut dead {
        d.until_quality(Quality::CommsLost).await;
    }
    let mut ts = Vec::new();
    while ts.len() < 25 {
        let r = live.until_quality(Quality::Good).await;
        ts.push(r.samples[0].1.ts_ms);
    }
    let mean = (ts[24] - ts[0]) as f64 / 24.0;
    let iv = interval as f64;
    // Sharing a task with the black hole would add its 2 s timeout per poll.
    assert!(
        mean >= 0.8 * iv && mean <= 2.5 * iv,
        "live device polled every {mean} ms, configured {iv} ms"
    );
    drop(hole);
    shutdown.cancel();
    fleet.wait().await;
}

fn discovering(name: &str, addr: SocketAddr) -> DeviceConfig {
    DeviceConfig {
        discover: Some(Discovery::Sunspec),
        points: Vec::new(),
        ..tcp_device(name, addr, INTERVAL_MS, TIMEOUT_MS)
    }
}

fn point<'a>(pts: &'a [PointConfig], name: &str) -> &'a PointConfig {
    pts.iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} not discovered"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sunspec_discovery_finds_models_1_and_103_and_retries_until_the_device_is_up() {
    let shutdown = CancellationToken::new();
    let fleet = fleet(1, &shutdown).await;
    // Off the network at start-up: discovery must keep retrying.
    fleet
        .set_fault(Some(0), FaultPlan::always(Fault::Gone))
        .unwrap();
    let mut d = spawn(0, discovering("inv", fleet.addrs()[0]), &shutdown);
    let start = Instant::now();
    while !d.polls("discovery_error").contains("discovery_error") {
        assert!(start.elapsed() < PATIENCE, "no failed discovery attempt");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(d.device.discovered.get().is_none());
    fleet.set_fault(Some(0), FaultPlan::default()).unwrap();
    // Points the simulator leaves not implemented (TmpTrns, …) are `bad`.
    let r = d
        .until("good samples", |r| {
            r.samples.iter().any(|(_, s)| s.quality == Quality::Good)
        })
        .await;

    let pts = d.device.discovered.get().unwrap();
    use sunspec::model103 as m;
    let w = point(pts, "m103.W");
    assert_eq!((w.address, w.scale_factor_address), (m::W, Some(m::W_SF)));
    assert_eq!(w.unit, "W");
    let wh = point(pts, "m103.WH");
    assert_eq!(wh.data_type, dcmms_edge::config::DataType::Acc32);
    assert_eq!(wh.scale_factor_address, Some(m::WH_SF));
    assert_eq!(point(pts, "m1.DA").address, sunspec::model1::DA);
    assert_eq!(point(pts, "m103.EvtVnd4").address, m::EVT_VND4);
    // Every point of model 103 (43 minus its 12 scale factors) and DA.
    assert_eq!(
        pts.len(),
        43 - 12 + 1,
        "{:?}",
        pts.iter().map(|p| &p.name).collect::<Vec<_>>()
    );

    // Values of discovered points equal what the simulator serves.
    let img = fleet.snapshot(0);
    for (def_name, disc) in [
        ("ac_power", "m103.W"),
        ("ac_frequency", "m103.Hz"),
        ("ac_energy", "m103.WH"),
        ("dc_voltage", "m103.DCV"),
    ] {
        let want = served(&img, def_name).unwrap();
        let got = value_of(&d.device, &r, disc);
        assert!((got - want).abs() < 1e-6, "{disc}: {got} != {want}");
    }
    shutdown.cancel();
    fleet.wait().await;
}

/// A socat pseudo-terminal pair: (child, path A, path B).
fn pty_pair() -> (std::process::Child, String, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new("socat")
        .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("socat is required for the Modbus RTU test (apt-get install socat)");
    let stderr = child.stderr.take().unwrap();
    // Keep draining socat's log so it never blocks or dies on a closed pipe.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(p) = line.split("PTY is ").nth(1) {
                let _ = tx.send(p.trim().to_string());
            }
        }
    });
    let paths: Vec<String> = (0..2)
        .filter_map(|_| rx.recv_timeout(Duration::from_secs(10)).ok())
        .collect();
    assert_eq!(paths.len(), 2, "socat did not report two ptys: {paths:?}");
    (child, paths[0].clone(), paths[1].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modbus_rtu_over_a_pty_pair_reads_served_values_and_survives_silence() {
    let (mut socat, a, b) = pty_pair();
    let shutdown = CancellationToken::new();
    let sim = start_rtu(
        RtuConfig {
            baud_rate: 19_200,
            seed: 3,
            site: SiteModel::bhadla(3),
            clock: SimClock::frozen(NOON),
            ..RtuConfig::new(&a)
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    let dev = DeviceConfig {
        modbus_tcp: None,
        modbus_rtu: Some(ModbusRtuConfig {
            path: b.clone(),
            baud_rate: 19_200,
            parity: SerialParity::None,
            data_bits: 8,
            stop_bits: 1,
            unit_id: 1,
            timeout_ms: 500,
            max_gap: 16,
            max_registers_per_read: 125,
        }),
        ..tcp_device("rtu-inv", "127.0.0.1:1".parse().unwrap(), 100, 500)
    };
    let mut d = spawn(0, dev, &shutdown);
    let img = sim.snapshot();
    let r = d.until_quality(Quality::Good).await;
    assert_served(&d, &r, &img);
    // No reply at all (the serial form of a dropped connection).
    sim.set_fault(FaultPlan::always(Fault::Drop));
    d.until_quality(Quality::CommsLost).await;
    sim.set_fault(FaultPlan::default());
    let r = d.until_quality(Quality::Good).await;
    assert_served(&d, &r, &img);
    shutdown.cancel();
    sim.wait().await;
    let _ = socat.kill();
    let _ = socat.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_groups_poll_their_points_at_their_own_interval() {
    let shutdown = CancellationToken::new();
    let fleet = fleet(1, &shutdown).await;
    let mut dev = tcp_device("inv", fleet.addrs()[0], INTERVAL_MS, TIMEOUT_MS);
    let slow = ["cabinet_temperature", "operating_state"];
    dev.poll_groups = vec![dcmms_edge::config::PollGroupConfig {
        name: "slow".into(),
        interval_ms: INTERVAL_MS * 10,
        points: slow.iter().map(|s| s.to_string()).collect(),
    }];
    let slow_idx: Vec<usize> = dev
        .points
        .iter()
        .enumerate()
        .filter(|(_, p)| slow.contains(&p.name.as_str()))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(slow_idx.len(), 2, "test premise: both points exist");
    let mut d = spawn(0, dev, &shutdown);
    let (mut fast_polls, mut slow_polls) = (0, 0);
    while fast_polls < 60 {
        let r = d.until("any", |_| true).await;
        let is_slow = r.samples.iter().all(|(i, _)| slow_idx.contains(i));
        let has_slow = r.samples.iter().any(|(i, _)| slow_idx.contains(i));
        // A reading is one group's poll: never a mix.
        assert_eq!(is_slow, has_slow, "mixed reading {:?}", r.samples);
        if is_slow {
            assert_eq!(r.samples.len(), 2);
            slow_polls += 1;
        } else {
            assert_eq!(r.samples.len(), d.device.points.len() - 2);
            fast_polls += 1;
        }
    }
    // 60 fast polls span ~59 intervals, i.e. ~6 slow intervals.
    assert!(
        (3..=9).contains(&slow_polls),
        "{slow_polls} slow polls against {fast_polls} fast ones (ratio 1:10 configured)"
    );
    shutdown.cancel();
    fleet.wait().await;
}

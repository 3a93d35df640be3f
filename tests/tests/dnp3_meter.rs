//! DNP3 substation meter (our simulator: the `dnp3` crate's outstation) →
//! the edge's DNP3 driver (the same crate's master).
//!
//! Both ends are the Step Function I/O implementation, which its licence
//! allows (it forbids using it as the test peer of *another*
//! implementation); see docs/licensing.md. Built only with
//! `--features dnp3` on dcmms-tests; no throughput is measured or printed.
//!
//! - The startup integrity poll brings every point, scaled as configured,
//!   with quality `good`; the master answers the outstation's NEED_TIME
//!   and the outstation's clock is written.
//! - Class 1/2/3 events arrive unsolicited with the device's time; with
//!   unsolicited off they arrive through the per-class event polls.
//! - Point flags become qualities (RESTART → bad, COMM_LOST → comms_lost,
//!   forced → stale).
//! - The outstation goes away: the driver reports `comms_lost` samples at
//!   the integrity period; it comes back (as after a reboot): good samples
//!   and time sync resume with no operator action. A dropped connection
//!   is recovered the same way.
//! - A refused time write (exception response) is counted and polling
//!   goes on.
//! - A peer that answers garbage, then one that accepts and stays silent
//!   (half-open), are survived; the real outstation on the same port is
//!   then read without operator action.
#![cfg(feature = "dnp3")]
#![allow(clippy::unwrap_used)]

mod dnp3_support;

use dcmms_shared::Quality;
use dcmms_simulators::dnp3::meter::{ai, bi, ctr};
use dcmms_simulators::dnp3::{
    MeterModel, MeterServerConfig, MeterState, POINTS, PointKind, RunningMeter,
};
use dcmms_simulators::modbus::SimClock;
use dnp3_support::{Edge, LIMIT, gauge, now_ms, polls, wait_until};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// 2026-06-21 06:30 UTC: mid-day, the plant exporting.
const T0: i64 = 1_782_023_400_000;
const ONLINE: u8 = 0x01;
const RESTART: u8 = 0x02;
const COMM_LOST: u8 = 0x04;
const LOCAL_FORCED: u8 = 0x10;

/// The meter with frozen values (changed only by the test).
async fn meter(
    unsolicited: bool,
    reject_time_sync: bool,
    stop: &CancellationToken,
) -> RunningMeter {
    RunningMeter::start(
        MeterServerConfig {
            port: 0,
            clock: SimClock::frozen(T0),
            update_interval: None,
            unsolicited,
            reject_time_sync,
            ..MeterServerConfig::default()
        },
        stop,
    )
    .await
    .unwrap()
}

/// The meter's whole map, scaled as its table says.
fn meter_points() -> String {
    POINTS
        .iter()
        .map(|p| {
            format!(
                "[[devices.dnp3.points]]\nname = \"{}\"\nkind = \"{}\"\nindex = {}\nunit = \"{}\"\nscale = {:?}\n",
                p.name,
                p.kind.as_str(),
                p.index,
                p.unit,
                p.scale
            )
        })
        .collect()
}

fn expected(p: &dcmms_simulators::dnp3::MeterPoint, state: &MeterState) -> f64 {
    let raw = match p.kind {
        PointKind::Analog => MeterModel::default()
            .observe(T0)
            .raw_analog(p.index)
            .unwrap(),
        PointKind::Counter if p.index == ctr::IMPORT_KWH => f64::from(state.import_kwh()),
        PointKind::Counter => f64::from(state.export_kwh()),
        PointKind::Binary => match p.index {
            bi::BREAKER_CLOSED => f64::from(u8::from(state.breaker_closed)),
            bi::RECLOSER_LOCKOUT => f64::from(u8::from(state.recloser_lockout)),
            _ => f64::from(u8::from(state.protection_trip)),
        },
    };
    raw * p.scale
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integrity_poll_brings_every_point_scaled_and_good_and_the_clock_is_synchronised() {
    let stop_sim = CancellationToken::new();
    let meter = meter(true, false, &stop_sim).await;
    assert!(meter.needs_time(), "a fresh outstation asks for the time");
    let mut edge = Edge::start(
        meter.addr().port(),
        "integrity_interval_ms = 3600000\nevent_poll_ms = 0\ntime_sync = \"lan\"",
        &meter_points(),
    );
    let state = meter.state();
    for p in POINTS {
        let want = expected(p, &state);
        let s = edge
            .wait_sample(
                &format!("{} from the integrity poll", p.name),
                p.name,
                |_| true,
            )
            .await;
        assert_eq!(s.quality, Quality::Good, "{}: {s:?}", p.name);
        assert!(
            (s.value - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{}: got {} want {want}",
            p.name,
            s.value
        );
    }
    // Frequency travels in centi-hertz: the configured scale made it Hz.
    let f = edge.wait_sample("frequency", "frequency", |_| true).await;
    assert!((49.9..50.1).contains(&f.value), "{f:?}");

    // The outstation's NEED_TIME was answered with our clock.
    wait_until("time written", LIMIT, || {
        meter.time_syncs() >= 1 && !meter.needs_time()
    })
    .await;
    let written = meter.last_time_written_ms().unwrap();
    assert!((written - now_ms()).abs() < 10_000, "wrote {written}");
    wait_until("time sync counted", LIMIT, || {
        polls(&edge.metrics, "time_sync") >= 1
    })
    .await;

    // Health on /metrics.
    assert_eq!(gauge(&edge.metrics, "connected"), 1);
    assert!(polls(&edge.metrics, "ok") >= 1);
    assert!(gauge(&edge.metrics, "last_success") > now_ms() - 60_000);
    assert_eq!(polls(&edge.metrics, "exception"), 0);

    edge.stop().await;
    meter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn class_1_2_3_events_arrive_unsolicited_with_the_device_time_and_flags_become_qualities() {
    let stop_sim = CancellationToken::new();
    let meter = meter(true, false, &stop_sim).await;
    // No periodic event poll and an hour between integrity polls: what
    // arrives after start-up can only be unsolicited.
    let mut edge = Edge::start(
        meter.addr().port(),
        "integrity_interval_ms = 3600000\nevent_poll_ms = 0\nunsolicited = true",
        &meter_points(),
    );
    edge.wait_sample("start-up values", "breaker_closed", |s| s.value == 1.0)
        .await;
    // The master enables unsolicited reporting after the integrity poll;
    // change the breaker (every 300 ms) until a change is reported.
    let mut stamps: Vec<i64> = Vec::new();
    let mut last_set = std::time::Instant::now() - Duration::from_secs(1);
    wait_until("unsolicited breaker event", LIMIT, || {
        edge.drain();
        let seen = edge
            .got
            .iter()
            .any(|(n, s)| n == "breaker_closed" && s.value == 0.0 && stamps.contains(&s.ts_ms));
        if !seen && last_set.elapsed() >= Duration::from_millis(300) {
            stamps.push(meter.set_binary(bi::BREAKER_CLOSED, false, ONLINE).unwrap());
            last_set = std::time::Instant::now();
        }
        seen
    })
    .await;
    assert!(polls(&edge.metrics, "unsolicited") >= 1);

    // Class 1 (binary), 2 (analog), 3 (counter), each with its own time.
    let t1 = meter.set_binary(bi::PROTECTION_TRIP, true, ONLINE).unwrap();
    let t2 = meter.set_analog(ai::ACTIVE_POWER, 1234.5, ONLINE).unwrap();
    let t3 = meter
        .set_counter(ctr::EXPORT_KWH, 4_000_000, ONLINE)
        .unwrap();
    let s = edge
        .wait_sample("class 1 event", "protection_trip", |s| s.value == 1.0)
        .await;
    assert_eq!((s.ts_ms, s.quality), (t1, Quality::Good));
    let s = edge
        .wait_sample("class 2 event", "active_power", |s| s.value == 1234.5)
        .await;
    assert_eq!((s.ts_ms, s.quality), (t2, Quality::Good));
    let s = edge
        .wait_sample("class 3 event", "energy_export", |s| s.value == 4_000_000.0)
        .await;
    assert_eq!((s.ts_ms, s.quality), (t3, Quality::Good));

    // Device-reported quality.
    meter.set_analog(ai::VOLTAGE_A, 0.0, RESTART).unwrap();
    meter
        .set_analog(ai::CURRENT_A, 77.0, ONLINE | COMM_LOST)
        .unwrap();
    meter
        .set_counter(ctr::IMPORT_KWH, 5, ONLINE | LOCAL_FORCED)
        .unwrap();
    let s = edge
        .wait_sample("restart flag", "voltage_a", |s| s.value == 0.0)
        .await;
    assert_eq!(s.quality, Quality::Bad);
    let s = edge
        .wait_sample("comm-lost flag", "current_a", |s| s.value == 77.0)
        .await;
    assert_eq!(s.quality, Quality::CommsLost);
    let s = edge
        .wait_sample("forced flag", "energy_import", |s| s.value == 5.0)
        .await;
    assert_eq!(s.quality, Quality::Stale);

    edge.stop().await;
    meter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_unsolicited_the_per_class_event_polls_bring_the_events() {
    let stop_sim = CancellationToken::new();
    let meter = meter(false, false, &stop_sim).await;
    let mut edge = Edge::start(
        meter.addr().port(),
        "integrity_interval_ms = 3600000\nunsolicited = false\nclass1_poll_ms = 200\nclass2_poll_ms = 300\nclass3_poll_ms = 400",
        &meter_points(),
    );
    edge.wait_sample("start-up values", "breaker_closed", |_| true)
        .await;
    let ok_before = polls(&edge.metrics, "ok");
    let t1 = meter
        .set_binary(bi::RECLOSER_LOCKOUT, true, ONLINE)
        .unwrap();
    let t2 = meter
        .set_analog(ai::REACTIVE_POWER, -321.0, ONLINE)
        .unwrap();
    let t3 = meter.set_counter(ctr::IMPORT_KWH, 1_300, ONLINE).unwrap();
    let s = edge
        .wait_sample("class 1 by poll", "recloser_lockout", |s| s.value == 1.0)
        .await;
    assert_eq!(s.ts_ms, t1);
    let s = edge
        .wait_sample("class 2 by poll", "reactive_power", |s| s.value == -321.0)
        .await;
    assert_eq!(s.ts_ms, t2);
    let s = edge
        .wait_sample("class 3 by poll", "energy_import", |s| s.value == 1_300.0)
        .await;
    assert_eq!(s.ts_ms, t3);
    wait_until("event polls keep running", LIMIT, || {
        polls(&edge.metrics, "ok") >= ok_before + 6
    })
    .await;
    assert_eq!(polls(&edge.metrics, "unsolicited"), 0);

    edge.stop().await;
    meter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_outstation_goes_away_and_comes_back_samples_resume_by_themselves() {
    let stop_sim = CancellationToken::new();
    let mut meter = meter(true, false, &stop_sim).await;
    let mut edge = Edge::start(
        meter.addr().port(),
        "integrity_interval_ms = 300\nevent_poll_ms = 200",
        &meter_points(),
    );
    let state = meter.state();
    let before = edge
        .wait_sample("good values", "energy_export", |s| {
            s.quality == Quality::Good
        })
        .await;
    assert_eq!(before.value, f64::from(state.export_kwh()));
    wait_until("connected", LIMIT, || {
        gauge(&edge.metrics, "connected") == 1
    })
    .await;
    wait_until("first time sync", LIMIT, || meter.time_syncs() >= 1).await;
    let syncs = meter.time_syncs();

    // Gone: the listener closed, connections refused.
    meter.go_away().await;
    let errors = polls(&edge.metrics, "error");
    wait_until("outage noticed", LIMIT, || {
        gauge(&edge.metrics, "connected") == 0
    })
    .await;
    edge.clear();
    // comms_lost at the integrity period, carrying the last good value.
    let s = edge
        .wait_sample("comms_lost during the outage", "energy_export", |s| {
            s.quality == Quality::CommsLost
        })
        .await;
    assert_eq!(s.value, before.value);
    wait_until("comms_lost keeps coming", LIMIT, || {
        edge.drain();
        edge.got
            .iter()
            .filter(|(n, s)| n == "energy_export" && s.quality == Quality::CommsLost)
            .count()
            >= 3
    })
    .await;
    assert!(
        edge.got
            .iter()
            .all(|(_, s)| s.quality == Quality::CommsLost),
        "only comms_lost while the device is gone"
    );
    wait_until("failed reconnects counted", LIMIT, || {
        polls(&edge.metrics, "error") > errors
    })
    .await;

    // Back, as after a reboot: nobody touches the edge.
    meter.come_back().await.unwrap();
    let back_at = now_ms();
    edge.wait_sample("good values after the comeback", "voltage_a", |s| {
        s.quality == Quality::Good && s.ts_ms >= back_at
    })
    .await;
    wait_until("connected again", LIMIT, || {
        gauge(&edge.metrics, "connected") == 1
    })
    .await;
    assert!(meter.connections() >= 2, "{}", meter.connections());
    wait_until("time synchronised again after the reboot", LIMIT, || {
        meter.time_syncs() > syncs && !meter.needs_time()
    })
    .await;

    // Dropped connection: recovered the same way.
    let conns = meter.connections();
    meter.drop_connection().await;
    wait_until("reconnected after the drop", LIMIT, || {
        meter.connections() > conns && meter.is_connected()
    })
    .await;
    let t = meter.set_analog(ai::FREQUENCY, 4990.0, ONLINE).unwrap();
    let s = edge
        .wait_sample("values after the drop", "frequency", |s| {
            (s.value - 49.9).abs() < 1e-9
        })
        .await;
    assert_eq!((s.ts_ms, s.quality), (t, Quality::Good));

    edge.stop().await;
    meter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_time_write_is_counted_as_an_exception_and_polling_goes_on() {
    let stop_sim = CancellationToken::new();
    let meter = meter(true, true, &stop_sim).await;
    let mut edge = Edge::start(
        meter.addr().port(),
        "integrity_interval_ms = 500\nevent_poll_ms = 0\ntime_sync = \"non_lan\"",
        &meter_points(),
    );
    wait_until("time write refused", LIMIT, || {
        polls(&edge.metrics, "exception") >= 1
    })
    .await;
    assert_eq!(meter.time_syncs(), 0);
    assert!(meter.needs_time());
    let ok = polls(&edge.metrics, "ok");
    edge.clear();
    edge.wait_sample("integrity polls go on", "breaker_closed", |s| {
        s.quality == Quality::Good
    })
    .await;
    wait_until("more polls", LIMIT, || polls(&edge.metrics, "ok") > ok).await;
    assert_eq!(gauge(&edge.metrics, "connected"), 1);

    edge.stop().await;
    meter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_runs_a_dnp3_device_and_reports_its_health_on_metrics() {
    let stop_sim = CancellationToken::new();
    let mut meter = meter(true, false, &stop_sim).await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
gateway_id = "gw-dnp3"
[cloud]
url = "http://127.0.0.1:1"
credential = "gw-dnp3.secret"
[buffer]
path = "{buffer}"
[http]
listen = "127.0.0.1:0"
[[devices]]
name = "{device}"
[devices.dnp3]
host = "127.0.0.1"
port = {port}
integrity_interval_ms = 300
reconnect_min_ms = 100
reconnect_max_ms = 500
{points}"#,
        buffer = dir.path().join("buffer").display(),
        device = dnp3_support::DEVICE,
        port = meter.addr().port(),
        points = meter_points(),
    );
    let cfg = dcmms_edge::EdgeConfig::from_toml(&text, "edge.toml").unwrap();
    let stop = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop.clone()).await.unwrap();
    let url = format!("http://{}/metrics", edge.http_addr);
    let line = format!(
        "dcmms_edge_device_connected{{device=\"{}\"}} ",
        dnp3_support::DEVICE
    );
    let metrics = || async { reqwest::get(&url).await.unwrap().text().await.unwrap() };
    let mut body = String::new();
    let deadline = std::time::Instant::now() + LIMIT;
    while !body.contains(&format!("{line}1")) {
        assert!(
            std::time::Instant::now() < deadline,
            "never connected:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        body = metrics().await;
    }
    assert!(edge.status().samples_polled > 0);
    assert!(body.contains("dcmms_edge_device_last_success_ms{device=\"sub-meter-01\"} 1"));
    // The outage shows on /metrics too, and comms_lost samples keep the
    // pipeline fed.
    meter.go_away().await;
    let polled = edge.status().samples_polled;
    while !body.contains(&format!("{line}0")) {
        assert!(
            std::time::Instant::now() < deadline,
            "outage not shown:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        body = metrics().await;
    }
    wait_until("comms_lost samples polled", LIMIT, || {
        edge.status().samples_polled >= polled + 2 * POINTS.len() as u64
    })
    .await;
    stop.cancel();
    edge.wait().await;
    meter.stop().await;
}

/// A "device" on `listener` that answers every connection with `reply`
/// (garbage bytes, or nothing at all) and keeps it open: not a proxy, a
/// broken peer in the outstation's place.
fn broken_peer(
    listener: tokio::net::TcpListener,
    reply: &'static [u8],
) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 512];
                // Answer each request (or stay silent), until the master
                // gives up on us.
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || (!reply.is_empty() && s.write_all(reply).await.is_err()) {
                        break;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_silence_are_survived_and_the_real_outstation_is_read_after_them() {
    // Start-of-frame bytes with a broken header CRC, then noise.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter("warn")
        .try_init();
    const GARBAGE: &[u8] =
        b"\x05\x64\x0a\x44\x01\x00\x00\x04\xff\xff\xde\xad\xbe\xef garbage \x00\x01";
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut edge = Edge::start(
        port,
        "integrity_interval_ms = 300\nevent_poll_ms = 0\nresponse_timeout_ms = 300",
        &meter_points(),
    );

    // A peer that answers garbage: counted, never connected, comms_lost.
    let peer = broken_peer(listener, GARBAGE);
    edge.wait_sample(
        "comms_lost while the peer talks garbage",
        "voltage_a",
        |s| s.quality == Quality::CommsLost && s.value.is_nan(),
    )
    .await;
    wait_until("garbage counted", LIMIT, || {
        polls(&edge.metrics, "error") + polls(&edge.metrics, "bad_response") >= 2
    })
    .await;
    assert_eq!(gauge(&edge.metrics, "connected"), 0);
    peer.abort();
    let _ = peer.await;

    // A peer that accepts and never answers: response timeouts. Its
    // connection stays open after it stops accepting (a half-open device,
    // a hung stack). The library never drops a connection for timeouts;
    // the driver does, after RECONNECT_AFTER_TIMEOUTS in a row.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let errors = polls(&edge.metrics, "error");
    let peer = broken_peer(listener, b"");
    wait_until("timeouts counted", LIMIT, || {
        polls(&edge.metrics, "error") >= errors + 2
    })
    .await;
    assert_eq!(gauge(&edge.metrics, "connected"), 0);
    assert!(
        edge.got
            .iter()
            .all(|(_, s)| s.quality == Quality::CommsLost),
        "nothing but comms_lost from broken peers"
    );
    peer.abort();
    let _ = peer.await;

    // The real outstation on the same port: read without operator action.
    let stop_sim = CancellationToken::new();
    let meter = RunningMeter::start(
        MeterServerConfig {
            port,
            clock: SimClock::frozen(T0),
            update_interval: None,
            ..MeterServerConfig::default()
        },
        &stop_sim,
    )
    .await
    .unwrap();
    let want = f64::from(meter.state().export_kwh());
    edge.wait_sample("good values after the broken peers", "energy_export", |s| {
        s.quality == Quality::Good && s.value == want
    })
    .await;
    wait_until("connected", LIMIT, || {
        gauge(&edge.metrics, "connected") == 1
    })
    .await;

    edge.stop().await;
    meter.stop().await;
}

/// The shared fault proxy (`simulators/src/proxy`) between master and
/// outstation: slow replies within the response timeout only delay values;
/// injected garbage breaks frames, and the master recovers by itself once
/// the link is clean again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_replies_and_garbage_through_the_fault_proxy_are_survived() {
    use dcmms_simulators::proxy::{FaultProxy, ProxyFaults};
    let stop_sim = CancellationToken::new();
    let meter = meter(true, false, &stop_sim).await;
    let proxy = FaultProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        meter.addr().to_string(),
        ProxyFaults::none(),
    )
    .await
    .unwrap();
    let mut edge = Edge::start(
        proxy.addr().port(),
        "integrity_interval_ms = 300\nevent_poll_ms = 200\nresponse_timeout_ms = 1000",
        &meter_points(),
    );
    edge.wait_sample("good values", "voltage_a", |s| s.quality == Quality::Good)
        .await;

    // Slow: every reply 300 ms late, inside the 1 s response timeout.
    proxy.set_faults(ProxyFaults {
        delay: Some(Duration::from_millis(300)),
        ..ProxyFaults::none()
    });
    meter.set_analog(ai::FREQUENCY, 5012.0, ONLINE).unwrap();
    // The newest matching sample may come from an integrity poll (time of
    // receipt) rather than the event (device time): check value and quality.
    let s = edge
        .wait_sample("a changed value through slow replies", "frequency", |s| {
            (s.value - 50.12).abs() < 1e-9
        })
        .await;
    assert_eq!(s.quality, Quality::Good);
    assert_eq!(gauge(&edge.metrics, "connected"), 1, "slow is not down");

    // Garbage every second: frames break, the driver must not stall.
    let bad_before = polls(&edge.metrics, "error") + polls(&edge.metrics, "bad_response");
    proxy.set_faults(ProxyFaults {
        garbage_every: Some(Duration::from_millis(500)),
        ..ProxyFaults::none()
    });
    wait_until("garbage injected and noticed", LIMIT, || {
        proxy.counters().garbage >= 3
            && polls(&edge.metrics, "error") + polls(&edge.metrics, "bad_response") > bad_before
    })
    .await;

    // Clean again: fresh values arrive without anyone touching the edge.
    proxy.clear_faults();
    let cleared = now_ms();
    meter.set_analog(ai::FREQUENCY, 4987.0, ONLINE).unwrap();
    let s = edge
        .wait_sample("values after the garbage stopped", "frequency", |s| {
            (s.value - 49.87).abs() < 1e-9 && s.ts_ms >= cleared
        })
        .await;
    assert_eq!(s.quality, Quality::Good);
    edge.wait_sample("every point good again", "energy_export", |s| {
        s.quality == Quality::Good && s.ts_ms >= cleared
    })
    .await;

    edge.stop().await;
    proxy.stop().await;
    meter.stop().await;
}

#![cfg(feature = "opcua")]
//! The edge's OPC UA driver against the turbine simulator through the
//! fault-injecting TCP proxy (`dcmms_simulators::proxy`): for every link
//! fault, the edge does not panic, reports the outage (comms_lost samples,
//! `device_connected` 0, `device_polls{result="error"}`) where there is
//! one, and once the fault is cleared every point reports good values
//! again without anyone touching the edge.
//!
//! Recovery means, in the cloud: every point's latest sample is good, the
//! wind speed (which changes on every update) has good samples from after
//! the clear, and after an outage every point was reported good again after
//! its comms_lost mark. Points that do not change (Status) cannot be asked
//! for samples after the clear when the subscription survived: a
//! subscription only reports changes.
//!
//! Built with `--features opcua` (dcmms-tests). Loopback only; every wait
//! is bounded by a deadline.
#![allow(clippy::unwrap_used)]

mod opcua_support;

use dcmms_edge::RunningEdge;
use dcmms_edge::metrics::EdgeMetrics;
use dcmms_simulators::modbus::SimClock;
use dcmms_simulators::opcua::{
    RunningTurbine, TurbineModel, TurbineServerConfig, VARIABLES, variable_node_id,
};
use dcmms_simulators::proxy::{FaultProxy, GoneMode, ProxyFaults, ProxyHandle};
use opcua_support::{Site, connected, polls, site, values, wait_until};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "wtg-01";
/// Changes on every update of the model (gusts, 0.01 m/s resolution).
const WIND: &str = "wind_speed";
const REQUEST_TIMEOUT_MS: u64 = 1000;
/// The minimum the driver accepts; the gone test outlasts it.
const SESSION_TIMEOUT_MS: u64 = 10_000;
const RECOVERY_LIMIT: Duration = Duration::from_secs(60);

/// Panics on the runtime's worker threads, where the edge's tasks run; a
/// panicking task would otherwise only show as a driver that went quiet.
/// (Assertion failures of the tests themselves happen on the test threads.)
static WORKER_PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_worker_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-runtime-worker"))
            {
                WORKER_PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// Point names are the variable names in snake case.
fn point_name(var: &str) -> String {
    let mut out = String::new();
    for (i, c) in var.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

struct Rig {
    gw: String,
    site: Site,
    proxy: ProxyHandle,
    turbine: RunningTurbine,
    edge: RunningEdge,
    m: EdgeMetrics,
    stop_edge: CancellationToken,
    stop_sim: CancellationToken,
}

/// Cloud, turbine (real-time clock, so that the comms_lost samples the
/// edge stamps with its own clock sort among the server's source
/// timestamps), proxy without faults, and an edge subscribed to every
/// variable through the proxy; returns once every point has a good value
/// in the cloud.
async fn rig(gw: &str) -> Rig {
    count_worker_panics();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let site = site(gw).await;
    let stop_sim = CancellationToken::new();
    let turbine = RunningTurbine::start(
        TurbineServerConfig {
            port: 0,
            model: TurbineModel::default(),
            clock: SimClock::realtime(),
            update_interval: Duration::from_millis(50),
            ..TurbineServerConfig::default()
        },
        &stop_sim,
    )
    .await
    .unwrap();
    let proxy = FaultProxy::start(
        "127.0.0.1:0".parse().unwrap(),
        turbine.addr().to_string(),
        ProxyFaults::none(),
    )
    .await
    .unwrap();
    let points: String = VARIABLES
        .iter()
        .map(|(var, unit)| {
            format!(
                "[[devices.opcua.points]]\nname = \"{}\"\nnode_id = \"{}\"\nunit = \"{unit}\"\n",
                point_name(var),
                variable_node_id(turbine.namespace(), var)
            )
        })
        .collect();
    let cfg = site.edge_config(
        gw,
        &format!(
            "endpoint_url = \"opc.tcp://{}/\"\npublishing_interval_ms = 100\n\
             sampling_interval_ms = 50\nrequest_timeout_ms = {REQUEST_TIMEOUT_MS}\n\
             session_timeout_ms = {SESSION_TIMEOUT_MS}\n{points}",
            proxy.addr()
        ),
    );
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();
    let rig = Rig {
        gw: gw.to_string(),
        site,
        proxy,
        turbine,
        edge,
        m,
        stop_edge,
        stop_sim,
    };
    wait_until("subscribed", Duration::from_secs(30), || {
        connected(&rig.m, DEVICE)
    })
    .await;
    rig.wait_recovered("the first values", 0, false).await;
    rig
}

/// Every point's samples in the cloud: (ts_ms, value, quality), by time.
type Stored = Vec<(String, Vec<(i64, Option<f64>, String)>)>;

impl Rig {
    async fn stored(&self) -> Stored {
        let mut got = self.site.stored(&self.gw, DEVICE).await;
        VARIABLES
            .iter()
            .map(|(var, _)| {
                let name = point_name(var);
                let v = got
                    .remove(&name)
                    .map(|(_, s)| values(&s))
                    .unwrap_or_default();
                (name, v)
            })
            .collect()
    }

    /// Polls the cloud until `ok` holds for what is stored; fails naming
    /// `what` (and showing each point's last samples) after `limit`.
    async fn wait_stored(
        &self,
        what: &str,
        limit: Duration,
        ok: impl Fn(&Stored) -> bool,
    ) -> Stored {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.stored().await;
            if ok(&s) {
                return s;
            }
            if Instant::now() >= deadline {
                let tails: Vec<_> = s
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.clone(),
                            v.iter().rev().take(3).cloned().collect::<Vec<_>>(),
                        )
                    })
                    .collect();
                panic!(
                    "timed out after {limit:?} waiting for {what}; proxy {:?}; last samples {tails:?}",
                    self.proxy.counters()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Recovery, asserted: every point's latest sample is good; the wind
    /// speed has good samples newer than `cleared_ms`; after an outage
    /// (`outage`) every point has a good sample newer than its last
    /// comms_lost mark, which the first condition already implies, and
    /// none is left without a value.
    async fn wait_recovered(&self, what: &str, cleared_ms: i64, outage: bool) {
        let s = self
            .wait_stored(what, RECOVERY_LIMIT, |s| {
                s.iter().all(|(name, v)| {
                    let latest_good = v.last().is_some_and(|(_, _, q)| q == "good");
                    let fresh =
                        name != WIND || v.iter().any(|(ts, _, q)| *ts > cleared_ms && q == "good");
                    latest_good && fresh
                })
            })
            .await;
        if outage {
            for (name, v) in &s {
                let lost = v.iter().rposition(|(_, _, q)| q == "comms_lost");
                assert!(lost.is_some(), "{name}: the outage was not reported");
            }
        }
        assert_eq!(WORKER_PANICS.load(Ordering::SeqCst), 0, "a task panicked");
    }

    /// The newest timestamp stored for any point (the server's clock).
    async fn newest_ts(&self) -> i64 {
        self.stored()
            .await
            .iter()
            .flat_map(|(_, v)| v.iter().map(|(ts, _, _)| *ts))
            .max()
            .unwrap_or(0)
    }

    /// (c): the outage reached the cloud as one comms_lost mark per point
    /// stamped after `since_ms` (on the server's clock, as the driver spec
    /// says: the newest timestamp stored before the fault), holding a value the point really had
    /// (good, before the mark), never a made-up one. Not necessarily the
    /// good value with the latest timestamp: a value measured just before
    /// the loss can arrive after it, once the session is back.
    async fn wait_comms_lost(&self, since_ms: i64) {
        let s = self
            .wait_stored(
                "comms_lost samples of every point",
                Duration::from_secs(45),
                |s| {
                    s.iter().all(|(_, v)| {
                        v.iter()
                            .any(|(ts, _, q)| *ts > since_ms && q == "comms_lost")
                    })
                },
            )
            .await;
        for (name, v) in &s {
            let (i, (_, held, _)) = v
                .iter()
                .enumerate()
                .find(|(_, (ts, _, q))| *ts > since_ms && q == "comms_lost")
                .unwrap();
            let held = held.unwrap_or_else(|| panic!("{name}: comms_lost without the held value"));
            assert!(
                v[..i]
                    .iter()
                    .any(|(_, g, q)| q == "good" && *g == Some(held)),
                "{name}: comms_lost holds {held}, which was never read: {:?}",
                &v[i.saturating_sub(4)..(i + 3).min(v.len())]
            );
        }
    }

    fn errors(&self) -> u64 {
        polls(&self.m, DEVICE, "error")
    }

    async fn stop(self) {
        assert_eq!(WORKER_PANICS.load(Ordering::SeqCst), 0, "a task panicked");
        self.stop_edge.cancel();
        self.edge.wait().await;
        self.proxy.stop().await;
        self.stop_sim.cancel();
        self.turbine.wait().await;
        self.site.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_replies_delay_values_and_replies_slower_than_the_timeout_are_an_outage_that_ends() {
    let rig = rig("opcua-faults-slow").await;
    // Slower than usual but within every timeout: values keep coming.
    rig.proxy.set_faults(ProxyFaults {
        delay: Some(Duration::from_millis(300)),
        ..ProxyFaults::none()
    });
    let t = now_ms();
    rig.wait_stored(
        "wind values through a slow link",
        Duration::from_secs(30),
        |s| {
            s.iter().any(|(n, v)| {
                n == WIND && v.iter().filter(|(ts, _, q)| *ts > t && q == "good").count() >= 5
            })
        },
    )
    .await;
    assert!(connected(&rig.m, DEVICE));

    // Slower than the request timeout: the session's keep-alives fail, the
    // driver gives the connection up and reports the outage.
    let errors = rig.errors();
    let before = rig.newest_ts().await;
    rig.proxy.set_faults(ProxyFaults {
        delay: Some(Duration::from_millis(3 * REQUEST_TIMEOUT_MS)),
        ..ProxyFaults::none()
    });
    wait_until("the slow link given up", Duration::from_secs(45), || {
        rig.errors() > errors
    })
    .await;
    rig.wait_comms_lost(before).await;

    rig.proxy.clear_faults();
    let cleared = now_ms();
    rig.wait_recovered("recovery after slow replies", cleared, true)
        .await;
    assert!(connected(&rig.m, DEVICE));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dropped_connections_are_reported_and_values_return_when_they_stop() {
    let rig = rig("opcua-faults-drop").await;
    let errors = rig.errors();
    let before = rig.newest_ts().await;
    rig.proxy.set_faults(ProxyFaults {
        drop_every: Some(Duration::from_secs(1)),
        ..ProxyFaults::none()
    });
    wait_until("three cuts noticed", Duration::from_secs(45), || {
        rig.proxy.counters().cut >= 3 && rig.errors() >= errors + 3
    })
    .await;
    rig.wait_comms_lost(before).await;

    rig.proxy.clear_faults();
    let cleared = now_ms();
    rig.wait_recovered("recovery after dropped connections", cleared, true)
        .await;
    wait_until("connected", Duration::from_secs(30), || {
        connected(&rig.m, DEVICE)
    })
    .await;
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garbage_bytes_break_the_connection_not_the_driver() {
    let rig = rig("opcua-faults-garbage").await;
    let errors = rig.errors();
    let before = rig.newest_ts().await;
    rig.proxy.set_faults(ProxyFaults {
        garbage_every: Some(Duration::from_millis(700)),
        ..ProxyFaults::none()
    });
    wait_until(
        "garbage injected and noticed",
        Duration::from_secs(45),
        || rig.proxy.counters().garbage >= 3 && rig.errors() > errors,
    )
    .await;
    rig.wait_comms_lost(before).await;

    rig.proxy.clear_faults();
    let cleared = now_ms();
    rig.wait_recovered("recovery after garbage", cleared, true)
        .await;
    // Whatever the garbage did, no value was made up: a good sample is
    // never NaN, and the bad_value path did not turn garbage into data.
    let s = rig.stored().await;
    for (name, v) in &s {
        for (ts, value, q) in v {
            if q == "good" {
                assert!(value.is_some(), "{name} at {ts}: good without a value");
            }
        }
    }
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_gone_longer_than_the_session_timeout_comes_back_by_itself() {
    let rig = rig("opcua-faults-gone").await;
    let errors = rig.errors();
    let before = rig.newest_ts().await;
    let t = now_ms();
    rig.proxy.set_faults(ProxyFaults {
        gone: Some(GoneMode::Refuse),
        ..ProxyFaults::none()
    });
    wait_until("disconnect noticed", Duration::from_secs(30), || {
        !connected(&rig.m, DEVICE)
    })
    .await;
    rig.wait_comms_lost(before).await;
    // It keeps trying while the device is away...
    wait_until("retries while gone", Duration::from_secs(30), || {
        rig.errors() >= errors + 3
    })
    .await;
    // ...for longer than the session lives on the server, so that it must
    // start over with a new session and subscription. (How long the fault
    // lasts, not an assertion.)
    let gone_for = Duration::from_millis(SESSION_TIMEOUT_MS + 2000)
        .saturating_sub(Duration::from_millis((now_ms() - t) as u64));
    tokio::time::sleep(gone_for).await;
    let lost_samples = rig.m.status().samples_polled;

    rig.proxy.clear_faults();
    let cleared = now_ms();
    rig.wait_recovered("recovery after the device came back", cleared, true)
        .await;
    wait_until("connected", Duration::from_secs(30), || {
        connected(&rig.m, DEVICE)
    })
    .await;
    // One mark per point for the whole outage, not one per failed attempt.
    let s = rig.stored().await;
    for (name, v) in &s {
        let marks = v
            .iter()
            .filter(|(ts, _, q)| *ts > before && *ts < cleared && q == "comms_lost")
            .count();
        assert_eq!(marks, 1, "{name}: {marks} comms_lost marks for one outage");
    }
    assert!(rig.m.status().samples_polled > lost_samples);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_device_that_hangs_without_closing_is_noticed_and_comes_back() {
    let rig = rig("opcua-faults-hung").await;
    let before = rig.newest_ts().await;
    // Power cut: no FIN, no RST; the open connection just goes silent and
    // new ones are never answered.
    rig.proxy.set_faults(ProxyFaults {
        gone: Some(GoneMode::Blackhole),
        ..ProxyFaults::none()
    });
    wait_until("the silent link given up", Duration::from_secs(45), || {
        !connected(&rig.m, DEVICE)
    })
    .await;
    rig.wait_comms_lost(before).await;

    rig.proxy.clear_faults();
    let cleared = now_ms();
    rig.wait_recovered("recovery after the device hung", cleared, true)
        .await;
    wait_until("connected", Duration::from_secs(30), || {
        connected(&rig.m, DEVICE)
    })
    .await;
    rig.stop().await;
}

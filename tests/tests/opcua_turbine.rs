//! OPC UA wind turbine (our simulator, async-opcua server) → edge agent
//! (async-opcua client) → cloud on SQLite.
//!
//! - Every value the edge's subscription delivers arrives in the cloud
//!   under the right point and unit, stamped with the server's source
//!   time, and equals what the turbine model says for that time; a point
//!   with an absolute deadband only reports moves larger than it.
//! - The server is stopped and started again on the same port (a
//!   controller reboot: sessions and subscriptions gone); the edge notices,
//!   and the monitored items come back by themselves: new values of every
//!   changing point arrive after the restart. The outage is in the cloud
//!   as one comms_lost mark per point.
//!
//! Built with `--features opcua` (dcmms-tests), so default builds need no
//! OPC UA stack.
#![cfg(feature = "opcua")]
#![allow(clippy::unwrap_used)]

mod opcua_support;

use dcmms_simulators::modbus::SimClock;
use dcmms_simulators::opcua::{
    RunningTurbine, TurbineModel, TurbineServerConfig, VARIABLES, variable_node_id,
};
use opcua_support::{T0, connected, polls, site, values, wait_until};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

const DEVICE: &str = "wtg-01";
/// Deadband of the wind speed point, m/s.
const WIND_DEADBAND: f64 = 0.5;

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

fn points_toml(ns: u16) -> String {
    VARIABLES
        .iter()
        .map(|(var, unit)| {
            let deadband = if *var == "WindSpeed" {
                format!("deadband_abs = {WIND_DEADBAND}\n")
            } else {
                String::new()
            };
            format!(
                "[[devices.opcua.points]]\nname = \"{}\"\nnode_id = \"{}\"\nunit = \"{unit}\"\n{deadband}",
                point_name(var),
                variable_node_id(ns, var)
            )
        })
        .collect()
}

async fn start_turbine(port: u16, clock: SimClock, shutdown: &CancellationToken) -> RunningTurbine {
    RunningTurbine::start(
        TurbineServerConfig {
            port,
            model: TurbineModel::default(),
            clock,
            update_interval: Duration::from_millis(50),
            ..TurbineServerConfig::default()
        },
        shutdown,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn subscribed_values_reach_the_cloud_and_come_back_after_a_server_restart() {
    let gw = "opcua-sim-gw";
    let site = site(gw).await;
    let stop_sim = CancellationToken::new();
    // Fast clock: the wind changes between updates, minutes of it per test.
    let clock = SimClock::accelerated(T0, 60.0);
    let turbine = start_turbine(0, clock.clone(), &stop_sim).await;
    let port = turbine.addr().port();
    let cfg = site.edge_config(
        gw,
        &format!(
            "endpoint_url = \"{}\"\npublishing_interval_ms = 100\nsampling_interval_ms = 50\n{}",
            turbine.endpoint_url(),
            points_toml(turbine.namespace())
        ),
    );
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();

    // Phase 1: values flow.
    wait_until("subscribed", Duration::from_secs(30), || {
        connected(&m, DEVICE)
    })
    .await;
    wait_until("values before the restart", Duration::from_secs(60), || {
        m.status().samples_polled >= 60
    })
    .await;
    assert_eq!(polls(&m, DEVICE, "bad_value"), 0);

    // Phase 2: the server goes away; the edge notices and nothing arrives.
    let cfg_back = turbine.stop().await;
    assert_eq!(cfg_back.port, port);
    wait_until("disconnect noticed", Duration::from_secs(30), || {
        !connected(&m, DEVICE)
    })
    .await;
    let errors = polls(&m, DEVICE, "error");
    assert!(errors >= 1);
    let stopped_at = clock.now_ms();
    // It keeps retrying while the server is down...
    wait_until("retries while down", Duration::from_secs(30), || {
        polls(&m, DEVICE, "error") >= errors + 2
    })
    .await;
    let before_restart = m.status().samples_polled;

    // Phase 3: the server is back on the same port with no sessions; the
    // subscription must be created again without anyone doing anything.
    let turbine = RunningTurbine::start(cfg_back, &stop_sim).await.unwrap();
    assert_eq!(turbine.addr().port(), port);
    wait_until("resubscribed", Duration::from_secs(60), || {
        connected(&m, DEVICE)
    })
    .await;
    wait_until("values after the restart", Duration::from_secs(60), || {
        m.status().samples_polled >= before_restart + 60
    })
    .await;

    stop_edge.cancel();
    edge.wait().await;
    stop_sim.cancel();
    turbine.wait().await;
    let st = m.status();
    assert_eq!(st.samples_acknowledged, st.samples_polled, "{st:?}");

    let model = TurbineModel::default();
    let stored = site.stored(gw, DEVICE).await;
    assert_eq!(stored.len(), VARIABLES.len(), "{:?}", stored.keys());
    let mut total = 0;
    for (var, unit) in VARIABLES {
        let name = point_name(var);
        let (u, samples) = &stored[&name];
        assert_eq!(u, unit, "{name}");
        let all = values(samples);
        total += all.len() as u64;
        // The restart is one outage: one comms_lost mark per point, holding
        // a value it had (stamped by the edge's clock, not the simulation's).
        let (lost, v): (Vec<_>, Vec<_>) = all.into_iter().partition(|(_, _, q)| q == "comms_lost");
        assert_eq!(lost.len(), 1, "{name}: {lost:?}");
        assert!(
            v.iter().any(|(_, g, _)| *g == lost[0].1),
            "{name}: comms_lost holds {:?}, never read",
            lost[0].1
        );
        for (ts, value, q) in &v {
            assert_eq!(q, "good", "{name} at {ts}");
            assert_eq!(
                *value,
                model.observe(*ts).field(var),
                "{name} at {ts}: the model's value for the source time"
            );
        }
        // Every point reported again after the restart (at least its
        // initial value in the new subscription).
        assert!(
            v.iter().any(|(ts, _, _)| *ts > stopped_at),
            "{name}: nothing after the restart"
        );
        if var == "WindSpeed" {
            let after = v.iter().filter(|(ts, _, _)| *ts > stopped_at).count();
            assert!(after >= 3, "wind speed after the restart: {after} samples");
            // Within one subscription, the server reports only moves beyond
            // the deadband (the new subscription's first value may be close
            // to the old one's last).
            for w in v.windows(2) {
                let (a, b) = (w[0].1.unwrap(), w[1].1.unwrap());
                let across_restart = w[0].0 <= stopped_at && w[1].0 > stopped_at;
                assert!(
                    across_restart || (b - a).abs() > WIND_DEADBAND - 1e-9,
                    "wind {a} -> {b} within the deadband at {}",
                    w[1].0
                );
            }
        }
    }
    assert_eq!(total, st.samples_polled);
    site.stop().await;
}

//! `dcmms-sim opcua`: the turbine server on the command line.

use super::server::{RunningTurbine, TurbineServerConfig, variable_node_id};
use super::turbine::{TurbineModel, VARIABLES, WindFault};
use crate::SimError;
use crate::modbus::SimClock;
use crate::proxy::cli::ProxyFaultArgs;
use crate::proxy::{FaultProxy, ProxyHandle};
use std::net::IpAddr;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct OpcuaArgs {
    /// TCP port of the OPC UA endpoint (opc.tcp://BIND:PORT/).
    #[arg(long, default_value_t = 4840)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Seed of the wind.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Rated power in kW.
    #[arg(long, default_value_t = 3000.0)]
    pub rated_kw: f64,
    /// Variable update interval in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub update_ms: u64,
    /// Fault: every this many seconds, stop the server and start it again
    /// on the same port (sessions and subscriptions are lost).
    #[arg(long)]
    pub restart_every_s: Option<u64>,
    /// ...staying down this many seconds.
    #[arg(long, default_value_t = 3)]
    pub down_for_s: u64,
    /// Turbine fault, `KIND@START_S[-END_S]` in seconds after the server
    /// starts (kinds: gearbox_overheat, pitch_misalignment, bearing_creep).
    /// Repeatable.
    #[arg(long = "fault", value_name = "KIND@START_S[-END_S]")]
    pub turbine_faults: Vec<String>,
    /// Link faults: with any of them the server listens on an internal
    /// port and a fault proxy serves the public one.
    #[command(flatten)]
    pub faults: ProxyFaultArgs,
}

/// Serves until Ctrl-C.
pub async fn run(args: OpcuaArgs) -> Result<(), SimError> {
    if !(args.rated_kw.is_finite() && args.rated_kw > 0.0) {
        return Err(SimError::InvalidConfig(
            "--rated-kw must be a positive number".into(),
        ));
    }
    if args.restart_every_s == Some(0) {
        return Err(SimError::InvalidConfig(
            "--restart-every-s must be positive".into(),
        ));
    }
    let clock = SimClock::realtime();
    let started = clock.now_ms();
    let turbine_faults = args
        .turbine_faults
        .iter()
        .map(|f| WindFault::parse(f, started))
        .collect::<Result<Vec<_>, _>>()
        .map_err(SimError::InvalidConfig)?;
    let (faults, gone) = args.faults.faults()?;
    let shutdown = CancellationToken::new();
    let proxied = args.faults.any();
    let cfg = TurbineServerConfig {
        bind: args.bind,
        // Behind the proxy the server takes any free port; the restart
        // fault then reuses that one (the proxy's upstream).
        port: if proxied { 0 } else { args.port },
        model: TurbineModel::new(args.seed, args.rated_kw).with_faults(turbine_faults.clone()),
        clock,
        update_interval: Duration::from_millis(args.update_ms),
        advertised_port: proxied.then_some(args.port),
    };
    let mut server = RunningTurbine::start(cfg, &shutdown).await?;
    let proxy: Option<ProxyHandle> = if proxied {
        let p = FaultProxy::start_with_shutdown(
            SocketAddr::new(args.bind, args.port),
            server.addr().to_string(),
            faults,
            &shutdown,
        )
        .await?;
        if let Some(s) = gone {
            tokio::spawn(s.run(p.control(), shutdown.clone()));
        }
        Some(p)
    } else {
        None
    };
    let public = match &proxy {
        Some(p) => format!("opc.tcp://{}/", p.addr()),
        None => server.endpoint_url(),
    };
    println!(
        "wind turbine ({} kW, seed {}): OPC UA {public} (security None, anonymous)",
        args.rated_kw, args.seed,
    );
    if proxied {
        println!(
            "  link faults: {} (server itself on {})",
            args.faults.describe(),
            server.addr()
        );
    }
    for f in &turbine_faults {
        println!(
            "  fault {} from {} ms{}",
            f.kind.name(),
            f.start_ms,
            f.end_ms.map(|e| format!(" to {e} ms")).unwrap_or_default()
        );
    }
    for (name, unit) in VARIABLES {
        println!("  {}  [{unit}]", variable_node_id(server.namespace(), name));
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let next_fault = async {
            match args.restart_every_s {
                Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = next_fault => {
                println!("fault: server down for {} s", args.down_for_s);
                let cfg = server.stop().await;
                tokio::time::sleep(Duration::from_secs(args.down_for_s)).await;
                server = RunningTurbine::start(cfg, &shutdown).await?;
                println!("fault: server back on {}", server.endpoint_url());
            }
        }
    }
    shutdown.cancel();
    server.wait().await;
    if let Some(p) = proxy {
        p.wait().await;
    }
    Ok(())
}

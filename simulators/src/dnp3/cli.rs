//! `dcmms-sim dnp3`: the meter outstation on the command line.

use super::meter::{MeterModel, POINTS};
use super::outstation::{MeterServerConfig, RunningMeter};
use crate::SimError;
use crate::modbus::SimClock;
use std::net::IpAddr;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct Dnp3Args {
    /// TCP port of the outstation.
    #[arg(long, default_value_t = 20000)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// The outstation's link address.
    #[arg(long, default_value_t = 1024)]
    pub outstation_address: u16,
    /// The master's link address (requests from others are ignored).
    #[arg(long, default_value_t = 1)]
    pub master_address: u16,
    /// Seed of the weather and of the grid's wander.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Plant AC rating at the point of connection, kW.
    #[arg(long, default_value_t = 30_000.0)]
    pub rated_kw: f64,
    /// Measurement update interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub update_ms: u64,
    /// Do not support unsolicited responses.
    #[arg(long)]
    pub no_unsolicited: bool,
    /// Fault (exception response): refuse the master's time writes with
    /// PARAMETER_ERROR.
    #[arg(long)]
    pub reject_time_sync: bool,
    /// Fault: every this many seconds, close the master's connection.
    #[arg(long)]
    pub drop_every_s: Option<u64>,
    /// Fault: every this many seconds, go away (connection closed, port
    /// refusing) ...
    #[arg(long)]
    pub gone_every_s: Option<u64>,
    /// ... for this many seconds, then come back as after a reboot.
    #[arg(long, default_value_t = 120)]
    pub gone_for_s: u64,
    /// Every this many seconds, trip the recloser (breaker opens, trip
    /// flag set) and reclose after 2 s: class 1 events.
    #[arg(long)]
    pub trip_every_s: Option<u64>,
    /// Fault (link, through the shared fault proxy): deliver every reply
    /// this many milliseconds late.
    #[arg(long)]
    pub delay_ms: Option<u64>,
    /// Fault (link, through the shared fault proxy): write 1–64 random
    /// bytes into the reply stream this often (seconds).
    #[arg(long)]
    pub garbage_every_s: Option<u64>,
}

fn positive(name: &str, v: Option<u64>) -> Result<(), SimError> {
    if v == Some(0) {
        return Err(SimError::InvalidConfig(format!("{name} must be positive")));
    }
    Ok(())
}

/// A fault's schedule: first after one period, then every period.
fn schedule(every_s: Option<u64>) -> Option<tokio::time::Interval> {
    every_s.map(|s| {
        let period = Duration::from_secs(s);
        let mut i = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        i
    })
}

async fn tick(schedule: &mut Option<tokio::time::Interval>) {
    match schedule {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Serves until Ctrl-C.
pub async fn run(args: Dnp3Args) -> Result<(), SimError> {
    if !(args.rated_kw.is_finite() && args.rated_kw > 0.0) {
        return Err(SimError::InvalidConfig(
            "--rated-kw must be a positive number".into(),
        ));
    }
    if args.update_ms == 0 {
        return Err(SimError::InvalidConfig(
            "--update-ms must be positive".into(),
        ));
    }
    positive("--drop-every-s", args.drop_every_s)?;
    positive("--gone-every-s", args.gone_every_s)?;
    positive("--trip-every-s", args.trip_every_s)?;
    positive("--delay-ms", args.delay_ms)?;
    positive("--garbage-every-s", args.garbage_every_s)?;
    let shutdown = CancellationToken::new();
    // Link faults: the outstation moves to a free port and the shared
    // fault proxy serves the public one.
    let link_faults = crate::proxy::ProxyFaults {
        delay: args.delay_ms.map(Duration::from_millis),
        garbage_every: args.garbage_every_s.map(Duration::from_secs),
        ..crate::proxy::ProxyFaults::none()
    };
    let proxied = link_faults.any();
    let cfg = MeterServerConfig {
        bind: args.bind,
        port: if proxied { 0 } else { args.port },
        outstation_address: args.outstation_address,
        master_address: args.master_address,
        model: MeterModel::new(args.seed, args.rated_kw),
        clock: SimClock::realtime(),
        update_interval: Some(Duration::from_millis(args.update_ms)),
        unsolicited: !args.no_unsolicited,
        reject_time_sync: args.reject_time_sync,
    };
    let mut meter = RunningMeter::start(cfg, &shutdown).await?;
    let proxy = if proxied {
        let p = crate::proxy::FaultProxy::start_with_shutdown(
            std::net::SocketAddr::new(args.bind, args.port),
            meter.addr().to_string(),
            link_faults,
            &shutdown,
        )
        .await?;
        println!(
            "  link faults on {}: {:?} (outstation itself on {})",
            p.addr(),
            link_faults,
            meter.addr()
        );
        Some(p)
    } else {
        None
    };
    println!(
        "33 kV revenue meter + recloser ({} kW plant, seed {}): DNP3 outstation {} on {} (master {})",
        args.rated_kw,
        args.seed,
        args.outstation_address,
        proxy.as_ref().map_or(meter.addr(), |p| p.addr()),
        args.master_address
    );
    for p in POINTS {
        println!(
            "  {:<8} {:>3}  {:<18} [{}] scale {} class {}",
            p.kind.as_str(),
            p.index,
            p.name,
            p.unit,
            p.scale,
            p.class
        );
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut drops = schedule(args.drop_every_s);
    let mut gone = schedule(args.gone_every_s);
    let mut trips = schedule(args.trip_every_s);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => break,
            _ = tick(&mut drops) => {
                println!("fault: dropping the master's connection");
                meter.drop_connection().await;
            }
            _ = tick(&mut gone) => {
                println!("fault: gone for {} s", args.gone_for_s);
                meter.go_away().await;
                tokio::select! {
                    _ = &mut ctrl_c => break,
                    _ = tokio::time::sleep(Duration::from_secs(args.gone_for_s)) => {}
                }
                meter.come_back().await?;
                println!("fault: back on {}", meter.addr());
            }
            _ = tick(&mut trips) => {
                use super::meter::bi;
                let ok = dnp3::app::measurement::Flags::ONLINE.value;
                println!("fault: protection trip, reclosing in 2 s");
                meter.set_binary(bi::PROTECTION_TRIP, true, ok);
                meter.set_binary(bi::BREAKER_CLOSED, false, ok);
                tokio::time::sleep(Duration::from_secs(2)).await;
                meter.set_binary(bi::BREAKER_CLOSED, true, ok);
                meter.set_binary(bi::PROTECTION_TRIP, false, ok);
            }
        }
    }
    meter.stop().await;
    shutdown.cancel();
    if let Some(p) = proxy {
        p.wait().await;
    }
    Ok(())
}

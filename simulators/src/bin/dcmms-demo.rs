//! `dcmms-demo`: the site in a box. Starts the cloud (SQLite), a fleet of
//! simulated SunSpec inverters and an edge agent polling them, then prints a
//! status line every few seconds until Ctrl-C.

use anyhow::{Context, bail};
use chrono::{Duration as ChronoDuration, TimeZone, Utc};
use clap::Parser;
use dcmms_cloud::{CloudConfig, gateways};
use dcmms_simulators::demo::{SiteLink, edge_config, inverter_name};
use dcmms_simulators::modbus::{FleetConfig, SimClock, start_fleet};
use dcmms_simulators::solar::SiteModel;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "dcmms-demo",
    version,
    about = "dCMMS site in a box: cloud + simulated PV inverters + edge agent, nothing to install"
)]
struct Cli {
    /// Where the cloud's SQLite file, the edge buffer and the generated edge.toml live.
    #[arg(long, default_value = "dcmms-demo-data")]
    data_dir: PathBuf,
    /// Cloud API port (0 = any free port).
    #[arg(long, default_value_t = 8080)]
    cloud_port: u16,
    /// Edge status and metrics port (0 = any free port).
    #[arg(long, default_value_t = 9100)]
    edge_port: u16,
    /// Modbus port of the first inverter; the others follow (0 = any free ports).
    #[arg(long, default_value_t = 5020)]
    modbus_port: u16,
    /// Number of simulated inverters.
    #[arg(long, default_value_t = 3)]
    inverters: usize,
    /// AC rating of each inverter, kW.
    #[arg(long, default_value_t = 100.0)]
    rated_kw: f64,
    /// Simulated seconds per real second. The simulated day starts at 07:30
    /// site time today, so the demo shows a sunrise even at night.
    #[arg(long, default_value_t = 60.0)]
    speed: f64,
    /// Seed of the weather and of the inverters' individual variation.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5)]
    status_every: u64,
    /// Stop by itself after this many seconds (for scripted runs).
    #[arg(long)]
    exit_after: Option<u64>,
}

const GATEWAY_ID: &str = "demo-gw";
/// India Standard Time, the site's zone (UTC+05:30).
const IST_OFFSET_MIN: i64 = 330;

fn site_morning_ms() -> i64 {
    let now = Utc::now() + ChronoDuration::minutes(IST_OFFSET_MIN);
    let local_midnight = now.date_naive().and_hms_opt(7, 30, 0).unwrap_or_default();
    Utc.from_utc_datetime(&local_midnight).timestamp_millis() - IST_OFFSET_MIN * 60_000
}

fn fmt_site_time(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms + IST_OFFSET_MIN * 60_000)
        .single()
        .map_or_else(|| "?".into(), |t| t.format("%H:%M").to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if cli.inverters == 0 || cli.inverters > 100 {
        bail!("--inverters must be between 1 and 100");
    }
    std::fs::create_dir_all(&cli.data_dir)
        .with_context(|| format!("cannot create {}", cli.data_dir.display()))?;
    // Stopped in order at the end: edge (drains into the cloud), then the
    // simulated devices, then the cloud.
    let (stop_edge, stop_fleet, stop_cloud) = (
        CancellationToken::new(),
        CancellationToken::new(),
        CancellationToken::new(),
    );
    let localhost = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // 1. Cloud on SQLite.
    let cloud_cfg = CloudConfig {
        listen: SocketAddr::new(localhost, cli.cloud_port),
        database_url: format!("sqlite://{}", cli.data_dir.join("cloud.sqlite").display()),
        ..CloudConfig::default()
    };
    let cloud = dcmms_cloud::start(&cloud_cfg, stop_cloud.clone())
        .await
        .context("cannot start the cloud (is the port taken? try --cloud-port 0)")?;

    // 2. The gateway and its credential (kept in the data dir for reruns).
    let cred_file = cli.data_dir.join("gateway.credential");
    let credential = match std::fs::read_to_string(&cred_file) {
        Ok(c) => c.trim().to_string(),
        Err(_) => {
            let gw = gateways::create(&cloud.db, GATEWAY_ID, "Demo site gateway")
                .await
                .with_context(|| {
                    format!(
                        "cannot create gateway {GATEWAY_ID}; remove {} to start over",
                        cli.data_dir.display()
                    )
                })?;
            std::fs::write(&cred_file, &gw.credential)
                .with_context(|| format!("cannot write {}", cred_file.display()))?;
            gw.credential
        }
    };

    // The CMMS side: users of every role, the site's asset tree, work orders.
    let seeded = dcmms_cloud::seed::seed_demo(&cloud.db, &cloud.caches, cli.inverters)
        .await
        .context("cannot seed the demo's users, site and work orders")?;

    // 3. Simulated inverters, on an accelerated clock starting at 07:30 site time.
    let clock = SimClock::accelerated(site_morning_ms(), cli.speed);
    let fleet = start_fleet(
        FleetConfig {
            count: cli.inverters,
            bind: localhost,
            base_port: cli.modbus_port,
            unit_id: 1,
            seed: cli.seed,
            site: SiteModel::bhadla(cli.seed),
            rated_ac_w: cli.rated_kw * 1000.0,
            clock: clock.clone(),
            update_interval: Duration::from_millis(500),
            ..FleetConfig::default()
        },
        stop_fleet.clone(),
    )
    .await
    .context("cannot start the simulated inverters (ports taken? try --modbus-port 0)")?;

    // 4. The edge agent, configured for them.
    let link = SiteLink {
        gateway_id: GATEWAY_ID.into(),
        credential,
        cloud_url: cloud.url(),
        buffer_path: cli.data_dir.join("edge-buffer"),
        edge_listen: SocketAddr::new(localhost, cli.edge_port),
        inverters: fleet.addrs(),
        unit_id: 1,
        poll_interval_ms: 1000,
        flush_interval_ms: 500,
    };
    let edge_cfg = edge_config(&link);
    let edge_toml = cli.data_dir.join("edge.toml");
    std::fs::write(&edge_toml, toml::to_string(&edge_cfg)?)
        .with_context(|| format!("cannot write {}", edge_toml.display()))?;
    let edge = dcmms_edge::start(edge_cfg, stop_edge.clone())
        .await
        .context("cannot start the edge agent (is the port taken? try --edge-port 0)")?;

    let points_per_inverter = dcmms_simulators::demo::inverter_points().len();
    println!("dCMMS site in a box is running. Ctrl-C stops it.");
    println!(
        "  site       Bhadla, Rajasthan: {} × {:.0} kW inverters, simulated day at {}× speed",
        cli.inverters, cli.rated_kw, cli.speed
    );
    for (i, a) in fleet.addrs().iter().enumerate() {
        println!(
            "  {}     Modbus TCP {a} (SunSpec models 1 + 103, {points_per_inverter} points polled every 1 s)",
            inverter_name(i)
        );
    }
    println!(
        "  cloud API  {}/api/docs   (OpenAPI: {}/api/v1/openapi.json)",
        cloud.url(),
        cloud.url()
    );
    println!(
        "  log in     POST {}/api/v1/auth/login {{\"username\": \"supervisor\", \"password\": \"{}\"}}",
        cloud.url(),
        dcmms_cloud::seed::DEMO_PASSWORD
    );
    println!(
        "             users: {} (all with that password{})",
        dcmms_cloud::seed::DEMO_USERS
            .iter()
            .map(|(u, _, r)| format!("{u} ({r})"))
            .collect::<Vec<_>>()
            .join(", "),
        if seeded { "; just created" } else { "" }
    );
    println!(
        "  cloud      {}/metrics  {}/healthz",
        cloud.url(),
        cloud.url()
    );
    println!(
        "  edge       http://{}/api/v1/status  http://{}/metrics",
        edge.http_addr, edge.http_addr
    );
    println!(
        "  data       {} (edge config: {})",
        cli.data_dir.display(),
        edge_toml.display()
    );

    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(cli.status_every.max(1)));
    tick.tick().await;
    let deadline = cli.exit_after.map(|s| started + Duration::from_secs(s));
    let mut linked = 0;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => {}
        }
        if linked < cli.inverters * dcmms_cloud::seed::DEMO_POINT_ROLES.len() {
            // Inverter points appear with the edge's first batch.
            match dcmms_cloud::seed::link_demo_points(&cloud.db, &cloud.caches).await {
                Ok(n) => linked += n,
                Err(e) => tracing::warn!(error = %e, "cannot link the inverters' points"),
            }
        }
        let s = edge.status();
        let power_kw: f64 = (0..fleet.len())
            .filter_map(|i| fleet.try_snapshot(i))
            .filter_map(|img| {
                let p = dcmms_simulators::sunspec::inverter_points()
                    .into_iter()
                    .find(|p| p.name == "ac_power")?;
                dcmms_simulators::sunspec::expected_value(&img, &p)
            })
            .sum::<f64>()
            / 1000.0;
        println!(
            "[{:>4}s] site {} IST, {:6.1} kW | polled {} | buffered {} | forwarded {} | acknowledged {} | pending {} batches | cloud stored {}",
            started.elapsed().as_secs(),
            fmt_site_time(clock.now_ms()),
            power_kw,
            s.samples_polled,
            s.samples_buffered,
            s.samples_forwarded,
            s.samples_acknowledged,
            s.batches_pending,
            cloud.metrics.samples_committed(),
        );
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
    }
    println!("stopping: sealing and flushing the edge buffer…");
    stop_edge.cancel();
    edge.wait().await;
    stop_fleet.cancel();
    fleet.wait().await;
    stop_cloud.cancel();
    cloud.wait().await?;
    println!("stopped cleanly");
    Ok(())
}

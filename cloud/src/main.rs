//! `dcmms-cloud`: the cloud service binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dcmms_cloud::{CloudConfig, Db, gateways};
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "dcmms-cloud",
    version,
    about = "dCMMS cloud service: telemetry ingest and REST API"
)]
struct Cli {
    /// TOML configuration file (see `dcmms-cloud print-config`).
    #[arg(long, global = true, env = "DCMMS_CONFIG")]
    config: Option<PathBuf>,
    /// Database: sqlite://PATH or postgres://… (overrides the file and DATABASE_URL).
    #[arg(long, global = true)]
    database_url: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Serve the HTTP API, /metrics and /healthz.
    Serve {
        /// Listen address (overrides the file).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Manage edge gateways.
    Gateway {
        #[command(subcommand)]
        cmd: GatewayCmd,
    },
    /// Print a commented example configuration.
    PrintConfig,
}

#[derive(Subcommand, Debug)]
enum GatewayCmd {
    /// Register a gateway and print its credential (shown once).
    Add {
        id: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List registered gateways.
    List,
}

fn load(cli: &Cli) -> anyhow::Result<CloudConfig> {
    let mut cfg = CloudConfig::load(cli.config.as_deref())?;
    if let Some(url) = &cli.database_url {
        cfg.database_url = url.clone();
    }
    Ok(cfg)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match &cli.cmd {
        Cmd::PrintConfig => print!("{}", dcmms_cloud::config::EXAMPLE),
        Cmd::Serve { listen } => {
            let mut cfg = load(&cli)?;
            if let Some(l) = listen {
                cfg.listen = *l;
            }
            let shutdown = CancellationToken::new();
            let cloud = dcmms_cloud::start(&cfg, shutdown.clone())
                .await
                .context("cannot start the cloud service")?;
            println!(
                "dcmms-cloud listening on {} (database: {})",
                cloud.url(),
                cloud.db.kind()
            );
            println!("  API:     {}/api/v1/", cloud.url());
            println!("  OpenAPI: {}/api/v1/openapi.json", cloud.url());
            println!("  metrics: {}/metrics", cloud.url());
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
            cloud.wait().await?;
        }
        Cmd::Gateway { cmd } => {
            let cfg = load(&cli)?;
            let db = Db::connect(&cfg.database_url).await?;
            match cmd {
                GatewayCmd::Add { id, name } => {
                    let gw =
                        gateways::create(&db, id, if name.is_empty() { id } else { name }).await?;
                    println!("gateway {} created; its credential (shown once):", gw.id);
                    println!("{}", gw.credential);
                }
                GatewayCmd::List => {
                    for g in gateways::list(&db, 10_000, 0).await? {
                        println!(
                            "{}\t{}\tlast sequence {}",
                            g.id,
                            g.name,
                            g.last_sequence.map_or("-".into(), |s| s.to_string())
                        );
                    }
                }
            }
            db.close().await;
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        b.json().init();
    } else {
        b.init();
    }
}

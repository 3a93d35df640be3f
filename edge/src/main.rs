//! `dcmms-edge`: the edge agent binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dcmms_edge::EdgeConfig;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "dcmms-edge",
    version,
    about = "dCMMS edge agent: polls field devices, buffers, forwards to the cloud"
)]
struct Cli {
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the agent until SIGTERM or Ctrl-C.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and exit.
    CheckConfig {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Print a commented example configuration.
    PrintConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_json);
    match cli.cmd {
        Cmd::PrintConfig => print!("{}", dcmms_edge::config::EXAMPLE),
        Cmd::CheckConfig { config } => {
            let cfg = EdgeConfig::load(&config)?;
            println!(
                "{}: valid ({} devices, {} points)",
                config.display(),
                cfg.devices.len(),
                cfg.devices.iter().map(|d| d.point_count()).sum::<usize>()
            );
        }
        Cmd::Run { config } => {
            let cfg = EdgeConfig::load(&config)?;
            let shutdown = CancellationToken::new();
            let edge = dcmms_edge::start(cfg, shutdown.clone())
                .await
                .context("cannot start the edge agent")?;
            println!(
                "dcmms-edge running; status and metrics on http://{}",
                edge.http_addr
            );
            wait_for_signal().await;
            tracing::info!("shutting down: sealing and flushing buffered data");
            shutdown.cancel();
            edge.wait().await;
        }
    }
    Ok(())
}

async fn wait_for_signal() {
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

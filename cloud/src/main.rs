//! `dcmms-cloud`: the cloud service binary.

use anyhow::Context;
use clap::{Parser, Subcommand};
use dcmms_cloud::auth::{Role, users};
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
    /// Manage users (the first admin is created here).
    User {
        #[command(subcommand)]
        cmd: UserCmd,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        cmd: AuditCmd,
    },
    /// Print a commented example configuration.
    PrintConfig,
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Create a user. The password comes from DCMMS_NEW_PASSWORD, or a
    /// random one is generated and printed once.
    Add {
        username: String,
        /// admin, operations_manager, supervisor, technician, auditor or installer.
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        display_name: String,
    },
    /// List users.
    List,
}

#[derive(Subcommand, Debug)]
enum AuditCmd {
    /// Re-walk the hash chain; exits 1 naming the first entry at fault.
    Verify,
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
            println!("  API docs: {}/api/docs", cloud.url());
            println!("  metrics: {}/metrics", cloud.url());
            wait_for_signal().await;
            tracing::info!("shutting down");
            shutdown.cancel();
            cloud.wait().await?;
        }
        Cmd::User { cmd } => {
            let cfg = load(&cli)?;
            let db = Db::connect(&cfg.database_url).await?;
            let caches = dcmms_cloud::db::Caches::default();
            match cmd {
                UserCmd::Add {
                    username,
                    role,
                    display_name,
                } => {
                    let role = Role::parse(role).with_context(|| {
                        format!("--role {role:?}: one of admin, operations_manager, supervisor, technician, auditor, installer")
                    })?;
                    let (password, generated) = match std::env::var("DCMMS_NEW_PASSWORD") {
                        Ok(p) => (p, false),
                        Err(_) => (random_password(), true),
                    };
                    let name = if display_name.is_empty() {
                        username
                    } else {
                        display_name
                    };
                    let u =
                        users::create(&db, &caches, "system:cli", username, name, role, &password)
                            .await
                            .with_context(|| format!("cannot create user {username:?}"))?;
                    println!("user {} ({}) created with id {}", u.username, u.role, u.id);
                    if generated {
                        println!("password (shown once): {password}");
                    }
                }
                UserCmd::List => {
                    for u in users::list(&db, 10_000, 0).await? {
                        println!(
                            "{}\t{}\t{}\t{}",
                            u.id,
                            u.username,
                            u.role,
                            if u.active { "active" } else { "inactive" }
                        );
                    }
                }
            }
            db.close().await;
        }
        Cmd::Audit {
            cmd: AuditCmd::Verify,
        } => {
            let cfg = load(&cli)?;
            let db = Db::connect(&cfg.database_url).await?;
            let result = dcmms_cloud::audit::verify(&db).await;
            db.close().await;
            match result {
                Ok(n) => println!("audit log intact: {n} entries, every hash links"),
                Err(e) => {
                    eprintln!("audit log BROKEN: {e}");
                    std::process::exit(1);
                }
            }
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

/// 20 characters from an unambiguous alphabet (about 110 bits).
fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
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

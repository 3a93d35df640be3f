//! `dcmms-bench-drivers`: how fast the edge polls field devices, and what
//! it costs.
//!
//! The real `dcmms-edge` binary runs as its own process against simulators
//! that run as their own processes (`dcmms-sim modbus --count N`, `dcmms-sim
//! mqtt --count N` through the broker on 127.0.0.1:1883, one `dcmms-sim
//! opcua` per turbine). The edge forwards to a minimal sink inside this
//! program that answers every batch as the cloud answers a stored one
//! (`200 {"status": "stored", …}`), so the edge's forwarding cost is counted
//! and the cloud's storage cost is not. Figures, over a steady window after
//! a warm-up:
//! - points/s polled: `samples_polled` of the edge's `/api/v1/status`;
//! - edge CPU seconds per second: utime + stime from `/proc/<pid>/stat`;
//! - peak RSS (`VmHWM`) and steady RSS (median of `VmRSS`, sampled each
//!   second) from `/proc/<pid>/status`;
//! - poll-to-buffer p50/p99 from `/api/v1/status` (since the edge started).
//!
//! No DNP3 figures: the dnp3 crate's licence forbids publishing benchmarks.
//!
//! Build first (sibling binaries are found next to this one):
//! `cargo build --release -p dcmms-edge -p dcmms-simulators -p dcmms-tests`
//! (add `--features dcmms-tests/opcua` for the OPC UA scenario), then run
//! `target/release/dcmms-bench-drivers --help`.

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use clap::{Parser, ValueEnum};
use dcmms_shared::api::{BATCH_CONTENT_TYPE, INGEST_PATH};
use dcmms_tests::procstat::{cpu_seconds, machine_busy, proc_status_kib};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

const GATEWAY: &str = "bench-gw";
const CREDENTIAL: &str = "bench-gw.0123456789abcdef0123456789abcdef";
const BROKER: &str = "127.0.0.1:1883";

#[derive(Parser, Debug)]
#[command(
    name = "dcmms-bench-drivers",
    about = "Driver benchmark: the dcmms-edge binary polling simulated devices (Modbus TCP, OPC UA, MQTT)"
)]
struct Cli {
    /// Which scenario to run.
    #[arg(long, value_enum, default_value_t = Scenario::Modbus)]
    scenario: Scenario,
    /// Seconds of the measured steady window (after the warm-up).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Seconds of warm-up before the window (connections, discovery, caches).
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Devices per scenario (default: modbus 440, mqtt 100, opcua 10).
    #[arg(long)]
    devices: Option<usize>,
    /// Poll / publish / update interval in ms (default 100 for every scenario).
    #[arg(long)]
    interval_ms: Option<u64>,
    /// The edge's `buffer.cache_capacity_bytes` in MiB (default: the edge's
    /// own default, 64 MiB), to see how much of its RSS is sled's cache.
    #[arg(long)]
    sled_cache_mib: Option<u64>,
    /// Modbus: let the edge find each inverter's points by SunSpec discovery
    /// instead of listing them in its configuration file.
    #[arg(long)]
    modbus_discover: bool,
    /// Directory holding dcmms-edge and dcmms-sim (default: this program's).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Modbus,
    Opcua,
    Mqtt,
    All,
}

/// One row of the printed table.
#[derive(Debug)]
struct Row {
    scenario: &'static str,
    shape: String,
    /// Points/s the simulators offer, where known in advance.
    offered: Option<f64>,
    result: Result<Measured, String>,
}

#[derive(Debug)]
struct Measured {
    polled_per_s: f64,
    cpu_per_s: f64,
    peak_rss_mib: f64,
    steady_rss_mib: f64,
    p50_ms: Option<u64>,
    p99_ms: Option<u64>,
    /// Samples the sink acknowledged per second in the window.
    acked_per_s: f64,
    /// CPU s/s of the simulator processes and of this program (the sink).
    sims_cpu_per_s: f64,
    bench_cpu_per_s: f64,
    /// Busy fraction of the whole machine (all processes), in cores.
    machine_busy_cores: f64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("cannot find this program's path")?
            .parent()
            .map(Path::to_path_buf)
            .context("this program's path has no directory")?,
    };
    let edge_bin = sibling(&bin_dir, "dcmms-edge")?;
    let sim_bin = sibling(&bin_dir, "dcmms-sim")?;
    let scenarios: Vec<Scenario> = match cli.scenario {
        Scenario::All => vec![Scenario::Modbus, Scenario::Opcua, Scenario::Mqtt],
        s => vec![s],
    };

    println!(
        "dcmms-bench-drivers: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "edge: {} (own process); simulators: {} (own processes); loopback only",
        edge_bin.display(),
        sim_bin.display()
    );
    println!(
        "uplink: a sink in this program answers each batch as the cloud answers a stored one \
         (edge forwarding cost included, cloud storage cost excluded)"
    );
    println!(
        "window: {} s steady after {} s warm-up; CPU from /proc/<pid>/stat, RSS from /proc/<pid>/status \
         (peak = VmHWM, steady = median VmRSS sampled each second); \
         poll-to-buffer percentiles from /api/v1/status, since the edge started",
        cli.seconds, cli.warmup
    );
    println!("machine: {} cores", cores());
    println!("DNP3: no figures (the dnp3 crate's licence forbids publishing benchmark results)");
    println!();

    let mut rows = Vec::new();
    let run = async {
        for s in scenarios {
            let row = match s {
                Scenario::Modbus => modbus(&cli, &edge_bin, &sim_bin).await,
                Scenario::Mqtt => mqtt(&cli, &edge_bin, &sim_bin).await,
                Scenario::Opcua => opcua(&cli, &edge_bin, &sim_bin).await,
                Scenario::All => continue,
            };
            if let Err(e) = &row.result {
                eprintln!("{}: failed: {e}", row.scenario);
            }
            rows.push(row);
        }
    };
    tokio::select! {
        () = run => {}
        _ = tokio::signal::ctrl_c() => {
            // Dropping the scenario future killed its child processes.
            bail!("interrupted; every child process was stopped");
        }
    }
    print_table(&rows);
    if rows.iter().any(|r| r.result.is_err()) {
        bail!("a scenario failed (see above)");
    }
    Ok(())
}

fn sibling(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let p = dir.join(name);
    if !p.is_file() {
        bail!(
            "{} not found: build the binaries first with \
             `cargo build --release -p dcmms-edge -p dcmms-simulators -p dcmms-tests` \
             (and `--features dcmms-tests/opcua` for the OPC UA scenario), or pass --bin-dir",
            p.display()
        );
    }
    Ok(p)
}

fn print_table(rows: &[Row]) {
    println!(
        "| scenario | devices × points @ rate | offered pts/s | points/s polled | edge CPU s/s | peak RSS MiB | steady RSS MiB | poll→buffer p50 / p99 ms | target |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| v.to_string());
    let offered = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    for r in rows {
        match &r.result {
            Ok(m) => {
                let target = if r.scenario == "modbus" {
                    let ok = |b: bool| if b { "met" } else { "MISSED" };
                    format!(
                        "≥100,000 pts/s ({}), ≤0.5 core ({}), ≤64 MiB ({})",
                        ok(m.polled_per_s >= 100_000.0),
                        ok(m.cpu_per_s <= 0.5),
                        ok(m.peak_rss_mib <= 64.0)
                    )
                } else {
                    "-".to_string()
                };
                println!(
                    "| {} | {} | {} | {:.0} | {:.3} | {:.1} | {:.1} | {} / {} | {} |",
                    r.scenario,
                    r.shape,
                    offered(r.offered),
                    m.polled_per_s,
                    m.cpu_per_s,
                    m.peak_rss_mib,
                    m.steady_rss_mib,
                    ms(m.p50_ms),
                    ms(m.p99_ms),
                    target
                );
            }
            Err(e) => println!(
                "| {} | {} | {} | {e} | | | | | |",
                r.scenario,
                r.shape,
                offered(r.offered)
            ),
        }
    }
    println!();
    println!("load generators and context, same window:");
    println!(
        "| scenario | samples/s acknowledged by the sink | simulators CPU s/s | this program (sink) CPU s/s | whole machine busy, cores |"
    );
    println!("|---|---|---|---|---|");
    for r in rows {
        if let Ok(m) = &r.result {
            println!(
                "| {} | {:.0} | {:.3} | {:.3} | {:.2} |",
                r.scenario,
                m.acked_per_s,
                m.sims_cpu_per_s,
                m.bench_cpu_per_s,
                m.machine_busy_cores
            );
        }
    }
}

// ---------------------------------------------------------------- scenarios

async fn modbus(cli: &Cli, edge_bin: &Path, sim_bin: &Path) -> Row {
    let devices = cli.devices.unwrap_or(440);
    let interval = cli.interval_ms.unwrap_or(100);
    let points = dcmms_simulators::demo::inverter_points();
    let (shape, offered) = if cli.modbus_discover {
        (
            format!(
                "{devices} SunSpec inverters (model 103), points by SunSpec discovery, @ {interval} ms, Modbus TCP, one port each"
            ),
            None,
        )
    } else {
        (
            format!(
                "{devices} SunSpec inverters (model 103) × {} points (one shared template) @ {interval} ms, Modbus TCP, one port each",
                points.len()
            ),
            Some(rate(devices, points.len(), interval)),
        )
    };
    let result = async {
        let work = tempfile::tempdir()?;
        let mut sims = Vec::new();
        let mut sim = spawn(
            "dcmms-sim modbus",
            Command::new(sim_bin).args([
                "modbus",
                "--count",
                &devices.to_string(),
                "--base-port",
                "0",
                "--update-ms",
                &interval.max(100).to_string(),
            ]),
            work.path(),
        )?;
        let mut addrs = Vec::with_capacity(devices);
        while addrs.len() < devices {
            let line = sim.line(Duration::from_secs(60)).await?;
            if let Some(a) = line
                .split_once("Modbus TCP ")
                .and_then(|(_, rest)| rest.split(',').next())
            {
                addrs.push(
                    a.trim()
                        .parse::<SocketAddr>()
                        .with_context(|| format!("dcmms-sim printed {line:?}"))?,
                );
            }
        }
        sims.push(sim);
        // Points come from discovery, or from one shared template (as an
        // installer writes a fleet of one inverter model).
        let discover = if cli.modbus_discover {
            "discover = \"sunspec\"\n"
        } else {
            "template = \"sunspec-103\"\n"
        };
        let mut toml = String::new();
        if !cli.modbus_discover {
            toml.push_str("[[templates]]\nname = \"sunspec-103\"\n\n");
            for p in &points {
                toml.push_str("[[templates.points]]\n");
                toml.push_str(&toml::to_string(p).context("point to TOML")?);
                toml.push('\n');
            }
        }
        for (i, a) in addrs.iter().enumerate() {
            toml.push_str(&format!(
                "[[devices]]\nname = \"inv-{:03}\"\npoll_interval_ms = {interval}\n{discover}\n\
                 [devices.modbus_tcp]\nhost = \"{}\"\nport = {}\nunit_id = 1\ntimeout_ms = 1000\n\n",
                i + 1,
                a.ip(),
                a.port()
            ));
        }
        measure(cli, edge_bin, work.path(), &toml, sims).await
    }
    .await;
    Row {
        scenario: "modbus",
        shape,
        offered,
        result: result.map_err(|e: anyhow::Error| format!("{e:#}")),
    }
}

/// The fields of a weather station message, as edge points.
const WEATHER: [(&str, &str); 5] = [
    ("irradiance", "W/m²"),
    ("module_temperature", "°C"),
    ("ambient_temperature", "°C"),
    ("wind_speed", "m/s"),
    ("wind_direction", "deg"),
];

async fn mqtt(cli: &Cli, edge_bin: &Path, sim_bin: &Path) -> Row {
    let devices = cli.devices.unwrap_or(100);
    let interval = cli.interval_ms.unwrap_or(100);
    let shape = format!(
        "{devices} weather stations × {} points @ {interval} ms, MQTT QoS 1 via {BROKER}",
        WEATHER.len()
    );
    let offered = Some(rate(devices, WEATHER.len(), interval));
    let result = async {
        let broker: SocketAddr = BROKER.parse()?;
        std::net::TcpStream::connect_timeout(&broker, Duration::from_secs(2)).with_context(
            || format!("the MQTT scenario needs a broker on {BROKER} (e.g. mosquitto); none answers"),
        )?;
        let work = tempfile::tempdir()?;
        // Unique per run, so parallel runs and other users of the broker do
        // not see each other's messages.
        let prefix = format!("dcmms-bench/{}/wx", std::process::id());
        let mut sim = spawn(
            "dcmms-sim mqtt",
            Command::new(sim_bin).args([
                "mqtt",
                "--broker",
                BROKER,
                "--count",
                &devices.to_string(),
                "--interval-ms",
                &interval.to_string(),
                "--topic-prefix",
                &prefix,
                "--client-id",
                &format!("dcmms-bench-sim-{}", std::process::id()),
            ]),
            work.path(),
        )?;
        let mut topics = Vec::with_capacity(devices);
        while topics.len() < devices {
            let line = sim.line(Duration::from_secs(60)).await?;
            if let Some(t) = line
                .strip_prefix("weather station: publishing to ")
                .and_then(|rest| rest.split(' ').next())
            {
                topics.push(t.to_string());
            }
        }
        let mut toml = String::new();
        for (i, topic) in topics.iter().enumerate() {
            toml.push_str(&format!(
                "[[devices]]\nname = \"wx-{:03}\"\n\n[devices.mqtt]\nhost = \"127.0.0.1\"\nport = 1883\n\
                 client_id = \"dcmms-bench-edge-{}-{i}\"\nclean_session = true\nqos = 1\n\n",
                i + 1,
                std::process::id()
            ));
            for (name, unit) in WEATHER {
                toml.push_str(&format!(
                    "[[devices.mqtt.points]]\nname = \"{name}\"\ntopic = \"{topic}\"\n\
                     json_pointer = \"/{name}\"\ntimestamp_pointer = \"/ts\"\nunit = \"{unit}\"\n\n"
                ));
            }
        }
        measure(cli, edge_bin, work.path(), &toml, vec![sim]).await
    }
    .await;
    Row {
        scenario: "mqtt",
        shape,
        offered,
        result: result.map_err(|e: anyhow::Error| format!("{e:#}")),
    }
}

#[cfg(feature = "opcua")]
async fn opcua(cli: &Cli, edge_bin: &Path, sim_bin: &Path) -> Row {
    let devices = cli.devices.unwrap_or(10);
    let interval = cli.interval_ms.unwrap_or(100);
    let vars = dcmms_simulators::opcua::turbine::VARIABLES;
    let shape = format!(
        "{devices} wind turbines × {} variables @ {interval} ms, OPC UA subscriptions (changes only), one server each",
        vars.len()
    );
    let offered = Some(rate(devices, vars.len(), interval));
    let result = async {
        let work = tempfile::tempdir()?;
        let mut sims = Vec::new();
        let mut toml = String::new();
        for i in 0..devices {
            let port = free_port()?;
            let mut sim = spawn(
                "dcmms-sim opcua",
                Command::new(sim_bin).args([
                    "opcua",
                    "--port",
                    &port.to_string(),
                    "--seed",
                    &(42 + i).to_string(),
                    "--update-ms",
                    &interval.to_string(),
                ]),
                work.path(),
            )?;
            let mut endpoint = None;
            let mut nodes = Vec::new();
            while nodes.len() < vars.len() {
                let line = sim.line(Duration::from_secs(60)).await?;
                if let Some(url) = line
                    .split_once("OPC UA ")
                    .and_then(|(_, rest)| rest.split(' ').next())
                {
                    endpoint = Some(url.to_string());
                } else if let Some(node) = line.trim_start().strip_prefix("ns=") {
                    let node = format!("ns={}", node.split_whitespace().next().unwrap_or(""));
                    nodes.push(node);
                }
            }
            let endpoint = endpoint.context("dcmms-sim opcua printed no endpoint")?;
            toml.push_str(&format!(
                "[[devices]]\nname = \"wtg-{:02}\"\n\n[devices.opcua]\nendpoint_url = \"{endpoint}\"\n\
                 publishing_interval_ms = {interval}\nsampling_interval_ms = {interval}\n\
                 queue_size = 100\npki_dir = \"{}\"\n\n",
                i + 1,
                work.path().join(format!("pki-{i}")).display()
            ));
            for ((name, unit), node) in vars.iter().zip(&nodes) {
                toml.push_str(&format!(
                    "[[devices.opcua.points]]\nname = \"{name}\"\nnode_id = \"{node}\"\nunit = \"{unit}\"\n\n"
                ));
            }
            sims.push(sim);
        }
        measure(cli, edge_bin, work.path(), &toml, sims).await
    }
    .await;
    Row {
        scenario: "opcua",
        shape,
        offered,
        result: result.map_err(|e: anyhow::Error| format!("{e:#}")),
    }
}

#[cfg(not(feature = "opcua"))]
async fn opcua(_cli: &Cli, _edge_bin: &Path, _sim_bin: &Path) -> Row {
    Row {
        scenario: "opcua",
        shape: "-".into(),
        offered: None,
        result: Err("skipped: built without --features opcua".into()),
    }
}

#[cfg(feature = "opcua")]
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn rate(devices: usize, points: usize, interval_ms: u64) -> f64 {
    (devices * points) as f64 * 1000.0 / interval_ms.max(1) as f64
}

// ---------------------------------------------------------------- measuring

/// Starts the sink and the edge with `devices_toml`, warms up, measures.
/// `sims` are already running; every child is stopped when this returns.
async fn measure(
    cli: &Cli,
    edge_bin: &Path,
    work: &Path,
    devices_toml: &str,
    sims: Vec<Proc>,
) -> anyhow::Result<Measured> {
    let sink = Sink::start().await?;
    let config = work.join("edge.toml");
    let cache = cli
        .sled_cache_mib
        .map(|m| format!("cache_capacity_bytes = {}\n", m << 20))
        .unwrap_or_default();
    let text = format!(
        "gateway_id = \"{GATEWAY}\"\n\n[cloud]\nurl = \"http://{}\"\ncredential = \"{CREDENTIAL}\"\n\n\
         [buffer]\npath = \"{}\"\n{cache}\n[http]\nlisten = \"127.0.0.1:0\"\n\n{devices_toml}",
        sink.addr,
        work.join("buffer").display()
    );
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    let mut edge = spawn(
        "dcmms-edge",
        Command::new(edge_bin)
            .arg("run")
            .arg("--config")
            .arg(&config),
        work,
    )?;
    let status_url = loop {
        let line = edge.line(Duration::from_secs(60)).await?;
        if let Some(rest) = line.split_once("status and metrics on ") {
            break format!("{}/api/v1/status", rest.1.trim());
        }
    };
    let client = reqwest::Client::new();
    let warm_end = Instant::now() + Duration::from_secs(cli.warmup);
    while Instant::now() < warm_end {
        tokio::time::sleep(Duration::from_millis(500)).await;
        edge.alive()?;
        for s in &sims {
            s.alive()?;
        }
    }

    let sims_cpu =
        |sims: &[Proc]| -> anyhow::Result<f64> { sims.iter().map(|s| cpu_seconds(s.pid())).sum() };
    let status0 = status(&client, &status_url).await?;
    let (t0, cpu0) = (Instant::now(), cpu_seconds(edge.pid())?);
    let (sims0, bench0, busy0) = (
        sims_cpu(&sims)?,
        cpu_seconds(std::process::id())?,
        machine_busy()?,
    );
    let acked0 = sink.samples.load(Ordering::Relaxed);
    let mut rss = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for _ in 0..cli.seconds {
        tick.tick().await;
        edge.alive()?;
        for s in &sims {
            s.alive()?;
        }
        rss.push(proc_status_kib(edge.pid(), "VmRSS:")?);
    }
    tick.tick().await;
    let status1 = status(&client, &status_url).await?;
    let (secs, cpu1) = (t0.elapsed().as_secs_f64(), cpu_seconds(edge.pid())?);
    let (sims1, bench1, busy1) = (
        sims_cpu(&sims)?,
        cpu_seconds(std::process::id())?,
        machine_busy()?,
    );
    let acked1 = sink.samples.load(Ordering::Relaxed);
    let peak = proc_status_kib(edge.pid(), "VmHWM:")?;
    rss.sort_unstable();
    let steady = rss.get(rss.len() / 2).copied().unwrap_or(0);
    let field = |s: &serde_json::Value, f: &str| -> anyhow::Result<u64> {
        s[f].as_u64()
            .with_context(|| format!("/api/v1/status has no number {f:?}: {s}"))
    };
    let polled =
        field(&status1, "samples_polled")?.saturating_sub(field(&status0, "samples_polled")?);
    let pct = |f: &str| status1[f].as_u64();
    if status1.get("poll_to_buffer_p50_ms").is_none() {
        eprintln!(
            "note: this dcmms-edge's /api/v1/status has no poll_to_buffer_p50_ms / _p99_ms (older build?)"
        );
    }
    let m = Measured {
        polled_per_s: polled as f64 / secs,
        cpu_per_s: (cpu1 - cpu0) / secs,
        peak_rss_mib: peak as f64 / 1024.0,
        steady_rss_mib: steady as f64 / 1024.0,
        p50_ms: pct("poll_to_buffer_p50_ms"),
        p99_ms: pct("poll_to_buffer_p99_ms"),
        acked_per_s: acked1.saturating_sub(acked0) as f64 / secs,
        sims_cpu_per_s: (sims1 - sims0) / secs,
        bench_cpu_per_s: (bench1 - bench0) / secs,
        machine_busy_cores: (busy1 - busy0) / secs,
    };
    drop(edge);
    drop(sims);
    sink.stop().await;
    Ok(m)
}

async fn status(client: &reqwest::Client, url: &str) -> anyhow::Result<serde_json::Value> {
    let r = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(r.status().is_success(), "GET {url} answered {}", r.status());
    r.json()
        .await
        .with_context(|| format!("GET {url}: not JSON"))
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

// ---------------------------------------------------------------- children

/// A child process, killed and reaped when dropped (also on error and on
/// Ctrl-C, when the scenario future is dropped). Its stdout lines arrive on
/// a channel; its stderr goes to a log file shown when it dies.
struct Proc {
    name: &'static str,
    child: Child,
    lines: mpsc::UnboundedReceiver<String>,
    log: PathBuf,
}

fn spawn(name: &'static str, cmd: &mut Command, work: &Path) -> anyhow::Result<Proc> {
    let log = work.join(format!(
        "{}-{}.log",
        name.replace(' ', "-"),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let err = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("cannot start {name}"))?;
    let (tx, lines) = mpsc::unbounded_channel();
    if let Some(out) = child.stdout.take() {
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                // Nobody listening any more: keep draining the pipe.
                let _ = tx.send(line);
            }
        });
    }
    Ok(Proc {
        name,
        child,
        lines,
        log,
    })
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, or an error if the process ends or is silent
    /// for `limit`.
    async fn line(&mut self, limit: Duration) -> anyhow::Result<String> {
        match tokio::time::timeout(limit, self.lines.recv()).await {
            Ok(Some(l)) => Ok(l),
            Ok(None) => {
                // Stdout closed: give the exit status a moment to appear.
                tokio::time::sleep(Duration::from_millis(200)).await;
                self.alive()?;
                bail!("{} closed its stdout\n{}", self.name, self.log_tail())
            }
            Err(_) => bail!(
                "{} printed nothing for {} s\n{}",
                self.name,
                limit.as_secs(),
                self.log_tail()
            ),
        }
    }

    fn alive(&self) -> anyhow::Result<()> {
        let path = format!("/proc/{}/stat", self.pid());
        let state = std::fs::read_to_string(&path)
            .ok()
            .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()));
        match state {
            Some(s) if !s.starts_with('Z') => Ok(()),
            _ => bail!("{} exited early\n{}", self.name, self.log_tail()),
        }
    }

    fn log_tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let len = f.metadata().map_or(0, |m| m.len());
            let _ = f.seek(SeekFrom::Start(len.saturating_sub(4000)));
            let _ = f.read_to_string(&mut text);
        }
        format!("--- end of {} stderr ---\n{text}", self.name)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- the sink

/// Answers `POST /api/v1/ingest` the way the cloud answers a batch it has
/// just stored, without storing anything.
struct Sink {
    addr: SocketAddr,
    samples: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Sink {
    async fn start() -> anyhow::Result<Sink> {
        let samples = Arc::new(AtomicU64::new(0));
        let app = Router::new()
            .route(INGEST_PATH, axum::routing::post(ingest))
            .layer(DefaultBodyLimit::max(64 << 20))
            .with_state(samples.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stop = tokio_util::sync::CancellationToken::new();
        let s = stop.clone();
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(s.cancelled_owned());
            if let Err(e) = serve.await {
                eprintln!("sink: {e}");
            }
        });
        Ok(Sink {
            addr,
            samples,
            stop,
            task,
        })
    }

    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn ingest(State(count): State<Arc<AtomicU64>>, headers: HeaderMap, body: Bytes) -> Response {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth != Some(&format!("Bearer {CREDENTIAL}")) {
        return (StatusCode::UNAUTHORIZED, "wrong credential").into_response();
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.split(';').next().map(str::trim) != Some(BATCH_CONTENT_TYPE) {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, "wrong content type").into_response();
    }
    // Decoded as the cloud decodes it, so the answer carries the real
    // sequence range and sample count.
    match dcmms_shared::wire::decode(&body) {
        Ok(batch) => {
            let samples: usize = batch.series.iter().map(|s| s.samples.len()).sum();
            count.fetch_add(samples as u64, Ordering::Relaxed);
            axum::Json(serde_json::json!({
                "gateway_id": batch.gateway_id,
                "first_sequence": batch.first_sequence,
                "sequence": batch.sequence,
                "status": "stored",
                "samples": samples,
            }))
            .into_response()
        }
        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    }
}

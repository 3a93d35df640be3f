//! `dcmms-bench`: measures the store-and-forward path and prints a table.
//!
//! Data: a simulated 2,000 samples/s site (87 SunSpec inverters × 23 points
//! at 1 Hz, from the simulators' physical model), sealed every 500 ms as the
//! edge does. Figures:
//! - buffer append (durable: every append is flushed), in 500 ms batches and
//!   in 50,000-sample batches (the batcher's ceiling under heavy load);
//! - buffer bytes per sample as sealed and after backlog compaction;
//! - local drain rate (next + mark offered + remove);
//! - cloud ingest over HTTP (decode + commit) into SQLite and Postgres;
//! - peak RSS of this process.
//!
//! Run: `cargo run --release -p dcmms-tests --bin dcmms-bench -- --help`.

use anyhow::Context;
use clap::Parser;
use dcmms_cloud::{CloudConfig, gateways};
use dcmms_edge::EdgeMetrics;
use dcmms_edge::buffer::{Buffer, Limits};
use dcmms_shared::api::{BATCH_CONTENT_TYPE, INGEST_PATH};
use dcmms_shared::{Batch, Quality, Sample, Series};
use dcmms_simulators::device::SimulatedInverter;
use dcmms_simulators::solar::SiteModel;
use dcmms_simulators::sunspec;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "dcmms-bench",
    about = "Benchmarks of the dCMMS buffer and ingest path"
)]
struct Cli {
    /// Minutes of simulated site data to generate.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
    /// Inverters in the simulated site (23 points each, polled at 1 Hz).
    #[arg(long, default_value_t = 87)]
    inverters: usize,
    /// Skip the Postgres ingest figure. Otherwise the server named by
    /// DCMMS_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
    /// gets a fresh database.
    #[arg(long)]
    no_postgres: bool,
    /// Concurrent uploaders in the ingest benchmark.
    #[arg(long, default_value_t = 4)]
    uploaders: usize,
    /// Days of insert/delete churn at the site's rate (0 = skip). Each cycle
    /// appends 5 s of data (one flushed batch) and deletes the oldest batch
    /// beyond a standing one-hour backlog; disk use and RSS are printed per day.
    #[arg(long, default_value_t = 0)]
    churn_days: u64,
    /// Hours of an outage backlog to fill (0 = skip): the site's 500 ms
    /// batches appended durably, with compaction run every 30 s of data as
    /// the agent runs it; sled's whole directory is measured every 6 hours.
    #[arg(long, default_value_t = 0)]
    outage_hours: u64,
    /// Samples per merged batch in the outage run (the buffer's
    /// `compact_max_samples`; default: the agent's).
    #[arg(long)]
    compact_max_samples: Option<u64>,
    /// Skip the SQLite ingest figure.
    #[arg(long)]
    no_sqlite: bool,
    /// Only the cloud ingest figures (skip the buffer figures).
    #[arg(long)]
    ingest_only: bool,
    /// Print per-phase ingest time and process CPU after each ingest figure.
    #[arg(long)]
    phases: bool,
}

const T0: i64 = 1_782_000_000_000; // 2026-06-21 00:00 UTC, 05:30 at the site

/// One second of the site: every point of every inverter, split into two
/// half-second batches as the batcher would seal them.
fn site_second(
    fleet: &mut [SimulatedInverter],
    defs: &[sunspec::PointDef],
    t: i64,
) -> [Vec<Series>; 2] {
    let mut halves = [Vec::new(), Vec::new()];
    let n = fleet.len().max(1) as i64;
    for (i, inv) in fleet.iter_mut().enumerate() {
        // Polls are staggered over the second, as the edge staggers devices.
        let ts = t + (i as i64 * 1000) / n;
        let img = inv.image_at(ts);
        let half = usize::from(ts - t >= 500);
        for p in defs {
            let (value, quality) = match sunspec::expected_value(&img, p) {
                Some(v) => (v, Quality::Good),
                None => (f64::NAN, Quality::Bad),
            };
            halves[half].push(Series {
                device: format!("inv-{:03}", i + 1),
                point: p.name.to_string(),
                unit: p.unit.to_string(),
                samples: vec![Sample {
                    ts_ms: ts,
                    value,
                    quality,
                }],
            });
        }
    }
    halves
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
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
    let site = SiteModel::bhadla(42);
    let mut fleet: Vec<SimulatedInverter> = (0..cli.inverters)
        .map(|i| SimulatedInverter::fleet_member(site.clone(), 42, i, 100_000.0, 1))
        .collect();
    let defs: Vec<_> = sunspec::inverter_points()
        .into_iter()
        .filter(|p| {
            !matches!(
                p.reg_type,
                sunspec::RegType::Str(_) | sunspec::RegType::Sunssf
            )
        })
        .collect();
    // Start mid-morning so power is non-zero.
    let start = T0 + 4 * 3_600_000;
    let seconds = cli.minutes * 60;
    let mut batches: Vec<Vec<Series>> = Vec::with_capacity(seconds as usize * 2);
    for s in 0..seconds as i64 {
        let [a, b] = site_second(&mut fleet, &defs, start + s * 1000);
        batches.push(a);
        batches.push(b);
    }
    let total: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let rate = total as f64 / seconds as f64;
    println!(
        "dcmms-bench: {} inverters × {} points at 1 Hz = {rate:.0} samples/s; {} min = {total} samples",
        cli.inverters,
        defs.len(),
        cli.minutes
    );
    println!();
    println!("| figure | value |");
    println!("|---|---|");

    let dir = tempfile::tempdir()?;
    if !cli.ingest_only {
        buffer_figures(&batches, total, dir.path()).await?;
    }
    ingest_figures(&cli, &batches, start, dir.path()).await?;
    println!(
        "| peak RSS of this process | {:.1} MiB |",
        peak_rss_kib() as f64 / 1024.0
    );
    if cli.outage_hours > 0 {
        outage_fill(
            &batches,
            rate,
            cli.outage_hours,
            cli.compact_max_samples,
            dir.path(),
        )
        .await?;
    }
    if cli.churn_days > 0 {
        churn(&batches, rate, cli.churn_days, dir.path()).await?;
    }
    Ok(())
}

async fn buffer_figures(
    batches: &[Vec<Series>],
    total: u64,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    // 1. Buffer append, durable, 500 ms batches.
    let metrics = EdgeMetrics::default();
    let limits = Limits {
        compact_after_ms: 0,
        ..Limits::default()
    };
    let buf = Buffer::open(
        &dir.join("a"),
        64 << 20,
        limits.clone(),
        "bench-gw",
        metrics.clone(),
    )?;
    let t = Instant::now();
    for b in batches {
        buf.append(b.clone(), 0).await?;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "| buffer append, durable, 500 ms batches ({} samples each, {} flushes) | {:.0} samples/s |",
        total / batches.len() as u64,
        batches.len(),
        total as f64 / secs
    );
    let sealed_bytes = metrics.status().bytes_pending as f64;
    println!(
        "| buffer bytes/sample as sealed (500 ms batches) | {:.2} |",
        sealed_bytes / total as f64
    );
    let t = Instant::now();
    buf.maintain(dcmms_edge::drivers::now_ms() + 1).await?;
    let csecs = t.elapsed().as_secs_f64();
    let compacted = metrics.status();
    println!(
        "| buffer bytes/sample after backlog compaction ({} batches left) | {:.2} |",
        compacted.batches_pending,
        compacted.bytes_pending as f64 / total as f64
    );
    println!("| compaction | {:.0} samples/s |", total as f64 / csecs);
    println!(
        "| buffer size on disk / logical bytes | {:.2} |",
        buf.size_on_disk().await? as f64 / compacted.bytes_pending.max(1) as f64
    );

    // 2. Big batches: the batcher seals at 50,000 samples under heavy load.
    let big: Vec<Vec<Series>> = batches.chunks(50).map(|c| c.concat()).collect();
    let buf2 = Buffer::open(
        &dir.join("b"),
        64 << 20,
        limits.clone(),
        "bench-gw",
        EdgeMetrics::default(),
    )?;
    let t = Instant::now();
    for b in &big {
        buf2.append(b.clone(), 0).await?;
    }
    println!(
        "| buffer append, durable, 50,000-sample batches | {:.0} samples/s |",
        total as f64 / t.elapsed().as_secs_f64()
    );

    // 3. Local drain of the compacted backlog.
    let mut frames: Vec<(u64, Vec<u8>)> = Vec::new();
    let t = Instant::now();
    while let Some(p) = buf.next().await? {
        buf.mark_offered(p.sequence).await?;
        frames.push((p.samples, p.frame));
        buf.remove(p.sequence).await?;
    }
    println!(
        "| buffer drain (next + mark offered + remove) | {:.0} samples/s |",
        total as f64 / t.elapsed().as_secs_f64()
    );
    drop(frames);
    Ok(())
}

async fn ingest_figures(
    cli: &Cli,
    batches: &[Vec<Series>],
    start: i64,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    // 4. Cloud ingest over HTTP: re-seal the site data as 10,000-sample batches.
    let ingest_batches: Vec<Batch> = batches
        .chunks(10)
        .enumerate()
        .map(|(i, c)| Batch {
            gateway_id: "bench-gw".into(),
            first_sequence: i as u64 + 1,
            sequence: i as u64 + 1,
            created_ms: start,
            polled_through_ms: start,
            series: c.concat(),
            drops: vec![],
            events: vec![],
        })
        .collect();
    let encoded: Vec<Vec<u8>> = ingest_batches
        .iter()
        .map(dcmms_edge::buffer::encode_frame)
        .collect::<Result<_, _>>()?;
    let mut targets = Vec::new();
    if !cli.no_sqlite {
        targets.push(("SQLite", dcmms_cloud::testing::sqlite_url(dir)));
    }
    if !cli.no_postgres {
        match dcmms_cloud::testing::fresh_postgres_database().await {
            Ok(url) => targets.push(("Postgres", url)),
            Err(e) => println!("| cloud ingest into Postgres | not measured: {e} |"),
        }
    }
    for (name, url) in targets {
        let before = dcmms_cloud::ingest::phases::snapshot();
        let (n, cpu) = ingest(&url, &encoded, cli.uploaders)
            .await
            .with_context(|| format!("ingest into {name}"))?;
        println!(
            "| cloud ingest over HTTP into {name} ({} uploaders, 10,000-sample batches) | {n:.0} samples/s |",
            cli.uploaders
        );
        if cli.phases {
            let after = dcmms_cloud::ingest::phases::snapshot();
            let phases: Vec<String> = after
                .iter()
                .zip(&before)
                .map(|((name, a), (_, b))| format!("{name} {:.2}", a - b))
                .collect();
            println!(
                "| {name}: phase seconds (summed over requests) | {} |",
                phases.join(", ")
            );
            println!(
                "| {name}: wall {:.2} s, this process CPU {:.2} s, database backends CPU {:.2} s |  |",
                cpu.wall, cpu.own, cpu.backends
            );
            println!(
                "| {name}: fold of the {} rollup deltas left unfolded at the end | {:.2} s |",
                cpu.folded, cpu.fold_secs
            );
        }
    }
    Ok(())
}

/// CPU seconds spent during one ingest figure.
#[derive(Debug, Default)]
struct Cpu {
    wall: f64,
    own: f64,
    /// Postgres backends of the benchmark's database (0 on SQLite).
    backends: f64,
    /// Folding the rollup deltas left after the last batch.
    fold_secs: f64,
    folded: u64,
}

/// utime + stime of a process, in seconds (Linux, 100 ticks/s).
fn proc_cpu(pid: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let k: f64 = f.get(12)?.parse().ok()?;
            Some((u + k) / 100.0)
        })
        .unwrap_or(0.0)
}

/// CPU of the Postgres backends connected to the database of `db`.
async fn backends_cpu(db: &dcmms_cloud::Db) -> f64 {
    let dcmms_cloud::Db::Postgres(pool) = db else {
        return 0.0;
    };
    let pids: Vec<i32> =
        sqlx::query_scalar("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            .fetch_all(pool)
            .await
            .unwrap_or_default();
    pids.iter().map(|p| proc_cpu(&p.to_string())).sum()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A long outage as the agent lives it: 500 ms batches appended durably,
/// compaction every 30 s of data (the agent's default cadence), nothing sent.
/// Prints the logical and the on-disk bytes per sample every 6 hours.
async fn outage_fill(
    batches: &[Vec<Series>],
    rate: f64,
    hours: u64,
    compact_max_samples: Option<u64>,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let path = dir.join("outage");
    let metrics = EdgeMetrics::default();
    let defaults = Limits::default();
    let limits = Limits {
        max_bytes: u64::MAX / 2,
        compact_max_samples: compact_max_samples.unwrap_or(defaults.compact_max_samples),
        ..defaults
    };
    let compact_every = (limits.compact_after_ms / 500).max(1) as u64;
    let buf = Buffer::open(&path, 64 << 20, limits.clone(), "bench-gw", metrics.clone())?;
    let per_batch = (rate / 2.0).max(1.0);
    let total_batches = (hours as f64 * 3_600.0 * 2.0).round() as u64;
    let cycle_ms = batches.len() as i64 * 500;
    println!();
    println!(
        "outage: {hours} h at {rate:.0} samples/s in 500 ms batches, compaction every {compact_every} batches into at most {} samples",
        limits.compact_max_samples
    );
    println!(
        "| hours of backlog | samples | batches held | logical bytes/sample | buffer directory bytes/sample (sled + segment files, all overhead) |"
    );
    println!("|---|---|---|---|---|");
    let t = Instant::now();
    let mut samples = 0u64;
    for i in 0..total_batches {
        let src = &batches[(i % batches.len() as u64) as usize];
        let shift = (i / batches.len() as u64) as i64 * cycle_ms;
        let mut next = src.clone();
        for s in &mut next {
            for x in &mut s.samples {
                x.ts_ms += shift;
            }
        }
        samples += next.iter().map(|s| s.samples.len() as u64).sum::<u64>();
        buf.append(next, 0).await?;
        if (i + 1) % compact_every == 0 {
            // Every batch sealed so far is past `compact_after_ms` for the
            // agent's clock by now.
            buf.maintain(dcmms_edge::drivers::now_ms() + limits.compact_after_ms + 1)
                .await?;
        }
        if (i + 1) % (6 * 3_600 * 2) == 0 || i + 1 == total_batches {
            buf.flush().await?;
            let st = metrics.status();
            println!(
                "| {:.1} | {samples} | {} | {:.2} | {:.2} |",
                (i + 1) as f64 / 7_200.0,
                st.batches_pending,
                st.bytes_pending as f64 / samples as f64,
                dir_bytes(&path) as f64 / samples as f64
            );
        }
    }
    println!(
        "outage: {:.0} s wall time ({:.0} samples/s appended and compacted; {per_batch:.0} samples per batch)",
        t.elapsed().as_secs_f64(),
        samples as f64 / t.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Insert/delete churn equivalent to `days` at `rate` samples/s.
async fn churn(
    batches: &[Vec<Series>],
    rate: f64,
    days: u64,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let path = dir.join("churn");
    let metrics = EdgeMetrics::default();
    let limits = Limits {
        compact_after_ms: i64::MAX / 2,
        ..Limits::default()
    };
    let buf = Buffer::open(&path, 64 << 20, limits, "bench-gw", metrics.clone())?;
    // 5 s of data per cycle: ten 500 ms batches merged.
    let chunk: Vec<Series> = batches
        .iter()
        .take(10)
        .flat_map(|b| b.iter().cloned())
        .collect();
    let per_cycle = chunk
        .iter()
        .map(|s| s.samples.len() as u64)
        .sum::<u64>()
        .max(1);
    let cycles_per_day = (rate * 86_400.0 / per_cycle as f64).round() as u64;
    let standing = 720u64; // one hour of 5 s batches
    println!();
    println!(
        "churn: {days} day(s) at {rate:.0} samples/s = {} cycles of {per_cycle} samples, standing backlog {standing} batches",
        cycles_per_day * days
    );
    println!("| simulated day | cycles | logical buffer bytes | sled files on disk | RSS |");
    println!("|---|---|---|---|---|");
    let mut queue = std::collections::VecDeque::new();
    let t = Instant::now();
    for day in 1..=days {
        for c in 0..cycles_per_day {
            let shift = ((day - 1) * cycles_per_day + c) as i64 * 5_000;
            let mut next = chunk.clone();
            for s in &mut next {
                for x in &mut s.samples {
                    x.ts_ms += shift;
                }
            }
            queue.push_back(buf.append(next, 0).await?);
            while queue.len() as u64 > standing {
                if let Some(old) = queue.pop_front() {
                    buf.mark_offered(old).await?;
                    buf.remove(old).await?;
                }
            }
        }
        buf.flush().await?;
        println!(
            "| {day} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            day * cycles_per_day,
            metrics.status().bytes_pending as f64 / 1048576.0,
            dir_bytes(&path) as f64 / 1048576.0,
            rss_kib() as f64 / 1024.0
        );
    }
    println!("churn: {:.0} s wall time", t.elapsed().as_secs_f64());
    Ok(())
}

/// Posts every frame over HTTP; returns committed samples per second.
async fn ingest(url: &str, frames: &[Vec<u8>], uploaders: usize) -> anyhow::Result<(f64, Cpu)> {
    let stop = CancellationToken::new();
    let cloud = dcmms_cloud::start(
        &CloudConfig {
            listen: "127.0.0.1:0".parse()?,
            database_url: url.to_string(),
            ..CloudConfig::default()
        },
        stop.clone(),
    )
    .await?;
    let gw = gateways::create(&cloud.db, "bench-gw", "bench").await?;
    let client = reqwest::Client::new();
    let endpoint = format!("{}{}", cloud.url(), INGEST_PATH);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let frames = std::sync::Arc::new(frames.to_vec());
    let own0 = proc_cpu("self");
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..uploaders.max(1) {
        let (client, endpoint, cred, next, frames) = (
            client.clone(),
            endpoint.clone(),
            gw.credential.clone(),
            next.clone(),
            frames.clone(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(f) = frames.get(i) else {
                    return Ok::<_, anyhow::Error>(());
                };
                let r = client
                    .post(&endpoint)
                    .bearer_auth(&cred)
                    .header(reqwest::header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
                    .body(f.clone())
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "ingest answered {}", r.status());
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    let secs = t.elapsed().as_secs_f64();
    let own1 = proc_cpu("self");
    let backends1 = backends_cpu(&cloud.db).await;
    // The rollup deltas not folded yet by the background task: fold them now
    // and report how long that took (the fold is part of the cost of ingest).
    let tf = Instant::now();
    let caches = dcmms_cloud::db::Caches::default();
    let mut folded = 0u64;
    for _ in 0..100 {
        match dcmms_cloud::ingest::rollups::fold(&cloud.db, &caches).await {
            Ok(0) => break,
            Ok(n) => folded += n,
            // A concurrent fold by the service's own task: try again.
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
        }
    }
    let fold_secs = tf.elapsed().as_secs_f64();
    let cpu = Cpu {
        wall: secs,
        own: own1 - own0,
        // The backends were opened for this figure, so their total is its share.
        backends: backends1,
        fold_secs,
        folded,
    };
    let committed = cloud.metrics.samples_committed();
    stop.cancel();
    cloud.wait().await?;
    Ok((committed as f64 / secs, cpu))
}

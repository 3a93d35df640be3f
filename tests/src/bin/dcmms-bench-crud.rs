//! `dcmms-bench-crud`: the CMMS API under a CRUD load.
//!
//! Seeds a database (SQLite by default, a fresh Postgres database with
//! `--postgres`) with sites, 10,000 assets and 100,000 work orders, starts
//! the real `dcmms-cloud serve` on it as its own process (loopback), and
//! runs N concurrent HTTP clients (default 100), each a closed loop (next
//! request when the last one answered, after an optional think time), over
//! a warm-up and then a measured window. The mix per request:
//!
//! | share | operation |
//! |---|---|
//! | 50 % | `GET /api/v1/work-orders/{id}` |
//! | 15 % | `GET /api/v1/work-orders?site_id&status&sort=-priority&limit=50&offset` |
//! | 10 % | `GET /api/v1/assets/{id}` |
//! | 10 % | `POST /api/v1/work-orders` |
//! | 10 % | `PATCH /api/v1/work-orders/{id}` with the version this client read (a stale one: 409, counted as a conflict, not an error) |
//! | 5 % | `POST /api/v1/work-orders/{id}/comments` |
//!
//! Prints per operation and overall: count, errors, conflicts, latency
//! percentiles (exact, from every sample), throughput; and the cloud
//! process's CPU (utime + stime per second of window) and RSS.
//!
//! Run: `cargo build --release -p dcmms-cloud -p dcmms-tests --bin dcmms-cloud --bin dcmms-bench-crud`
//! then `target/release/dcmms-bench-crud [--postgres]`.

use anyhow::{Context, bail};
use clap::Parser;
use dcmms_cloud::Db;
use dcmms_cloud::auth::{Role, users};
use dcmms_cloud::db::Caches;
use dcmms_tests::procstat::{cpu_seconds, machine_busy, proc_status_kib};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "dcmms-bench-crud",
    about = "CRUD load on the dCMMS cloud API (real dcmms-cloud process, loopback)"
)]
struct Cli {
    /// Use a fresh database on the Postgres server named by
    /// DCMMS_TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
    /// instead of a SQLite file.
    #[arg(long)]
    postgres: bool,
    /// Sites to seed (assets and work orders are spread over them).
    #[arg(long, default_value_t = 10)]
    sites: i64,
    #[arg(long, default_value_t = 10_000)]
    assets: i64,
    #[arg(long, default_value_t = 100_000)]
    work_orders: i64,
    /// Concurrent HTTP clients (each one request at a time).
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Warm-up seconds (load runs, nothing recorded).
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Measured seconds.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Pause of each client between its requests, in ms (0: as fast as
    /// answers come, which measures saturation).
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Directory holding dcmms-cloud (default: this program's directory).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    GetWorkOrder,
    ListWorkOrders,
    GetAsset,
    CreateWorkOrder,
    PatchWorkOrder,
    AddComment,
}

const OPS: [Op; 6] = [
    Op::GetWorkOrder,
    Op::ListWorkOrders,
    Op::GetAsset,
    Op::CreateWorkOrder,
    Op::PatchWorkOrder,
    Op::AddComment,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::GetWorkOrder => "GET work order",
            Op::ListWorkOrders => "list work orders",
            Op::GetAsset => "GET asset",
            Op::CreateWorkOrder => "POST work order",
            Op::PatchWorkOrder => "PATCH work order",
            Op::AddComment => "POST comment",
        }
    }

    /// From a number in 0..100: the mix.
    fn pick(r: u64) -> Op {
        match r % 100 {
            0..50 => Op::GetWorkOrder,
            50..65 => Op::ListWorkOrders,
            65..75 => Op::GetAsset,
            75..85 => Op::CreateWorkOrder,
            85..95 => Op::PatchWorkOrder,
            _ => Op::AddComment,
        }
    }

    fn index(self) -> usize {
        OPS.iter().position(|o| *o == self).unwrap_or(0)
    }
}

const STATUSES: [&str; 9] = [
    "REQUESTED",
    "APPROVED",
    "SCHEDULED",
    "WAITING",
    "IN_PROGRESS",
    "ON_HOLD",
    "COMPLETED",
    "CLOSED",
    "CANCELLED",
];

/// What one client measured in the window, per operation.
#[derive(Debug, Default, Clone)]
struct Stats {
    /// Latency of every answered request, µs.
    lat_us: Vec<u32>,
    errors: u64,
    conflicts: u64,
}

/// xorshift64*: a fast, seedable generator (the mix needs no more).
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// 1..=n.
    fn id(&mut self, n: i64) -> i64 {
        (self.next() % n.max(1) as u64) as i64 + 1
    }
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
    let bin_dir = match &cli.bin_dir {
        Some(d) => d.clone(),
        None => std::env::current_exe()
            .context("cannot find this program's path")?
            .parent()
            .map(Path::to_path_buf)
            .context("this program's path has no directory")?,
    };
    let cloud_bin = bin_dir.join("dcmms-cloud");
    if !cloud_bin.is_file() {
        bail!(
            "{} not found: build it first with `cargo build --release -p dcmms-cloud -p dcmms-tests`, or pass --bin-dir",
            cloud_bin.display()
        );
    }
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    let url = if cli.postgres {
        dcmms_cloud::testing::fresh_postgres_database()
            .await
            .map_err(anyhow::Error::msg)?
    } else {
        dcmms_cloud::testing::sqlite_url(work.path())
    };

    println!(
        "dcmms-bench-crud: {}",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    println!(
        "database: {} ({})",
        if cli.postgres { "postgres" } else { "sqlite" },
        dcmms_cloud::db::redact_url(&url)
    );
    println!(
        "machine: {} cores; cloud: {} (own process, loopback)",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        cloud_bin.display()
    );

    // Seed, then close: the server opens the database itself.
    let db = Db::connect(&url)
        .await
        .context("cannot open the database")?;
    let caches = Caches::default();
    let token = dcmms_cloud::testing::api_token(&db, &caches, Role::Admin)
        .await
        .context("cannot create the benchmark's admin user")?;
    let admin = users::authenticate(&db, &token)
        .await?
        .context("the new token does not authenticate")?;
    let t = Instant::now();
    seed(&db, &cli, admin.user_id).await?;
    println!(
        "seeded {} sites, {} assets, {} work orders in {:.1} s: one INSERT … SELECT over a generated \
         series per table (SQLite recursive CTE, Postgres generate_series), in one transaction; \
         no history or audit rows for seeded data; then ANALYZE",
        cli.sites,
        cli.assets,
        cli.work_orders,
        t.elapsed().as_secs_f64()
    );
    db.close().await;

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .context("no free loopback port")?;
    let mut cloud = Cloud::spawn(&cloud_bin, &url, port, work.path())?;
    cloud.wait_listening(Duration::from_secs(60))?;
    let base = format!("http://127.0.0.1:{port}");

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(cli.clients)
        .build()
        .context("cannot build the HTTP client")?;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(cli.warmup);
    let end = measure_from + Duration::from_secs(cli.seconds);
    let cfg = Arc::new(Load {
        base,
        token,
        work_orders: cli.work_orders,
        assets: cli.assets,
        sites: cli.sites,
        think: Duration::from_millis(cli.think_ms),
        measure_from,
        end,
    });
    let tasks: Vec<_> = (0..cli.clients)
        .map(|i| tokio::spawn(client_loop(client.clone(), cfg.clone(), i as u64)))
        .collect();

    // Resource samples over the window.
    let pid = cloud.pid();
    tokio::time::sleep_until(measure_from.into()).await;
    let cpu0 = cpu_seconds(pid)?;
    let self0 = cpu_seconds(std::process::id())?;
    let busy0 = machine_busy()?;
    let t0 = Instant::now();
    let mut rss = Vec::new();
    while Instant::now() + Duration::from_secs(1) <= end {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss.push(proc_status_kib(pid, "VmRSS:")?);
    }
    tokio::time::sleep_until(end.into()).await;
    let window = t0.elapsed().as_secs_f64();
    let cpu = (cpu_seconds(pid)? - cpu0) / window;
    let self_cpu = (cpu_seconds(std::process::id())? - self0) / window;
    let busy = (machine_busy()? - busy0) / window;
    let peak = proc_status_kib(pid, "VmHWM:")?;

    let mut per_op: Vec<Stats> = vec![Stats::default(); OPS.len()];
    for t in tasks {
        let s = t.await.context("a client task failed")?;
        for (acc, s) in per_op.iter_mut().zip(s) {
            acc.lat_us.extend(s.lat_us);
            acc.errors += s.errors;
            acc.conflicts += s.conflicts;
        }
    }
    cloud.check_alive()?;

    println!(
        "load: {} clients, closed loop, think {} ms; {} s warm-up, then {:.1} s measured",
        cli.clients, cli.think_ms, cli.warmup, window
    );
    println!();
    println!(
        "| operation | count | errors | conflicts (409) | p50 ms | p95 ms | p99 ms | max ms | per s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut all = Stats::default();
    for (op, s) in OPS.iter().zip(per_op.iter_mut()) {
        print_row(op.name(), s, window);
        all.lat_us.extend_from_slice(&s.lat_us);
        all.errors += s.errors;
        all.conflicts += s.conflicts;
    }
    print_row("all", &mut all, window);
    println!();
    rss.sort_unstable();
    println!(
        "cloud process: CPU {cpu:.2} s/s, RSS median {:.1} MiB, peak (VmHWM) {:.1} MiB; \
         this program: CPU {self_cpu:.2} s/s; whole machine busy {busy:.2} s/s of {} cores",
        rss.get(rss.len() / 2).copied().unwrap_or(0) as f64 / 1024.0,
        peak as f64 / 1024.0,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if all.errors > 0 {
        eprintln!("{}", cloud.log_tail());
    }
    drop(cloud);
    if cli.postgres {
        drop_database(&url).await;
    }
    if all.errors > 0 {
        bail!("{} requests failed (see the errors column)", all.errors);
    }
    Ok(())
}

fn print_row(name: &str, s: &mut Stats, window: f64) {
    s.lat_us.sort_unstable();
    let pct = |p: f64| -> f64 {
        if s.lat_us.is_empty() {
            return 0.0;
        }
        let i = ((s.lat_us.len() as f64 * p).ceil() as usize).clamp(1, s.lat_us.len()) - 1;
        f64::from(s.lat_us[i]) / 1000.0
    };
    println!(
        "| {name} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} |",
        s.lat_us.len(),
        s.errors,
        s.conflicts,
        pct(0.50),
        pct(0.95),
        pct(0.99),
        s.lat_us.last().map_or(0.0, |v| f64::from(*v) / 1000.0),
        s.lat_us.len() as f64 / window
    );
}

/// Sites, assets and work orders, each table by one `INSERT … SELECT` over
/// a generated series (deterministic spread of site, asset, status,
/// priority, kind, times), in one transaction.
async fn seed(db: &Db, cli: &Cli, admin: i64) -> anyhow::Result<()> {
    let now = dcmms_cloud::gateways::now_ms();
    let (series, from) = match db {
        Db::Postgres(_) => ("", "FROM generate_series(1, $1::bigint) AS n(i)"),
        Db::Sqlite(_) => (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) ",
            "FROM n",
        ),
    };
    let status_case: String = STATUSES
        .iter()
        .enumerate()
        .map(|(k, s)| format!("WHEN {k} THEN '{s}' "))
        .collect();
    let sites = format!(
        "{series}INSERT INTO sites (code, name, kind, ac_capacity_kw, dc_capacity_kwp, latitude, longitude, \
         time_zone, grid_connection_point, created_ms, updated_ms, version) \
         SELECT 'BENCH-' || i, 'Bench site ' || i, 'solar', 50000.0, 62000.0, 27.5, 71.9, 'Asia/Kolkata', \
         'GSS-' || i, $2, $2, 1 {from}"
    );
    let assets = format!(
        "{series}INSERT INTO assets (site_id, parent_id, name, class, make, model, serial, nameplate, \
         commissioned_on, criticality, tags, created_ms, updated_ms, version) \
         SELECT (i % $3) + 1, NULL, 'INV-' || i, 'inverter', 'Acme', 'PV-100', 'SN' || i, \
         '{{\"rated_power_kw\": 100}}', '2025-01-01', (i % 5) + 1, '[]', $2, $2, 1 {from}"
    );
    let work_orders = format!(
        "{series}INSERT INTO work_orders (site_id, asset_id, kind, title, description, priority, status, \
         status_reason, assignee_id, due_ms, created_by, created_ms, updated_ms, version, sla_due_ms) \
         SELECT (((i * 7919) % $4) + 1) % $3 + 1, ((i * 7919) % $4) + 1, \
         CASE i % 4 WHEN 0 THEN 'corrective' WHEN 1 THEN 'preventive' WHEN 2 THEN 'predictive' ELSE 'inspection' END, \
         'Work order ' || i, 'Seeded for the CRUD benchmark', (i % 5) + 1, \
         CASE i % 9 {status_case}END, CASE WHEN i % 9 IN (3, 5) THEN 'parts' ELSE NULL END, CASE WHEN i % 3 = 0 THEN $5 ELSE NULL END, \
         $2 - (i % 86400) * 1000 + 7 * 86400000, $5, $2 - (i % 86400) * 1000, $2 - (i % 86400) * 1000, 1, \
         $2 - (i % 86400) * 1000 + 86400000 {from}"
    );
    // $1 rows, $2 now, $3 sites, $4 assets, $5 the admin's user id: each
    // statement binds the first `n` of them.
    let values = [0, now, cli.sites, cli.assets, admin];
    let run = |sql: String, rows: i64, n: usize| async move {
        let mut binds = values;
        binds[0] = rows;
        dcmms_cloud::on_db!(db, p => {
            let mut tx = p.begin().await?;
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in &binds[..n] {
                q = q.bind(*b);
            }
            q.execute(&mut *tx).await?;
            tx.commit().await?;
        });
        Ok::<_, sqlx::Error>(())
    };
    run(sites, cli.sites, 2).await.context("seeding sites")?;
    run(assets, cli.assets, 3).await.context("seeding assets")?;
    run(work_orders, cli.work_orders, 5)
        .await
        .context("seeding work orders")?;
    dcmms_cloud::on_db!(db, p => sqlx::query("ANALYZE").execute(p).await.map(|_| ()))
        .context("ANALYZE")?;
    Ok(())
}

#[derive(Debug)]
struct Load {
    base: String,
    token: String,
    work_orders: i64,
    assets: i64,
    sites: i64,
    think: Duration,
    measure_from: Instant,
    end: Instant,
}

/// One client: a request at a time until `end`; records only what starts
/// inside the window.
async fn client_loop(client: reqwest::Client, cfg: Arc<Load>, n: u64) -> Vec<Stats> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (n + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut stats = vec![Stats::default(); OPS.len()];
    // Work orders this client read, with the version it saw (for PATCH).
    let mut seen: Vec<(i64, i64)> = Vec::new();
    let auth = format!("Bearer {}", cfg.token);
    loop {
        let began = Instant::now();
        if began >= cfg.end {
            break;
        }
        let mut op = Op::pick(rng.next());
        let mut patched = 0;
        if op == Op::PatchWorkOrder && seen.is_empty() {
            op = Op::GetWorkOrder;
        }
        let req = match op {
            Op::GetWorkOrder => client.get(format!(
                "{}/api/v1/work-orders/{}",
                cfg.base,
                rng.id(cfg.work_orders)
            )),
            Op::ListWorkOrders => client.get(format!(
                "{}/api/v1/work-orders?site_id={}&status={}&sort=-priority&limit=50&offset={}",
                cfg.base,
                rng.id(cfg.sites),
                STATUSES[(rng.next() % STATUSES.len() as u64) as usize],
                (rng.next() % 4) * 50
            )),
            Op::GetAsset => {
                client.get(format!("{}/api/v1/assets/{}", cfg.base, rng.id(cfg.assets)))
            }
            Op::CreateWorkOrder => {
                // Asset i is at site (i % sites) + 1, as seeded.
                let asset = rng.id(cfg.assets);
                client
                    .post(format!("{}/api/v1/work-orders", cfg.base))
                    .json(&serde_json::json!({
                        "site_id": asset % cfg.sites + 1,
                        "asset_id": asset,
                        "kind": "corrective",
                        "title": "Inverter fault during bench",
                        "description": "raised by dcmms-bench-crud",
                        "priority": rng.id(5),
                    }))
            }
            Op::PatchWorkOrder => {
                let (id, version) = seen[(rng.next() % seen.len() as u64) as usize];
                patched = id;
                client
                    .patch(format!("{}/api/v1/work-orders/{id}", cfg.base))
                    .json(&serde_json::json!({"version": version, "priority": rng.id(5)}))
            }
            Op::AddComment => client
                .post(format!(
                    "{}/api/v1/work-orders/{}/comments",
                    cfg.base,
                    rng.id(cfg.work_orders)
                ))
                .json(&serde_json::json!({"body": "checked on site, see photos"})),
        };
        let resp = req.header("authorization", &auth).send().await;
        let outcome = match resp {
            Ok(r) => {
                let status = r.status().as_u16();
                match r.bytes().await {
                    Ok(body) => Some((status, body)),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        let elapsed = began.elapsed();
        let s = &mut stats[op.index()];
        let record = began >= cfg.measure_from;
        let expected = match op {
            Op::CreateWorkOrder | Op::AddComment => 201,
            _ => 200,
        };
        match outcome {
            Some((status, body)) if status == expected => {
                if matches!(op, Op::GetWorkOrder | Op::PatchWorkOrder) {
                    remember(&mut seen, &body);
                }
                if record {
                    s.lat_us
                        .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
                }
            }
            Some((409, _)) if op == Op::PatchWorkOrder => {
                // Someone else changed it since this client read it.
                if record {
                    s.conflicts += 1;
                    s.lat_us
                        .push(elapsed.as_micros().min(u128::from(u32::MAX)) as u32);
                }
                seen.retain(|x| x.0 != patched);
            }
            Some((status, body)) => {
                if record {
                    s.errors += 1;
                    if s.errors <= 3 && n < 3 {
                        eprintln!(
                            "{}: {status} {}",
                            op.name(),
                            String::from_utf8_lossy(&body[..body.len().min(300)])
                        );
                    }
                }
            }
            None => {
                if record {
                    s.errors += 1;
                }
            }
        }
        if !cfg.think.is_zero() {
            tokio::time::sleep(cfg.think).await;
        }
    }
    stats
}

/// Keeps the id and version of an editable work order the client read.
fn remember(seen: &mut Vec<(i64, i64)>, body: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    let (Some(id), Some(version), Some(status)) = (
        v["id"].as_i64(),
        v["version"].as_i64(),
        v["status"].as_str(),
    ) else {
        return;
    };
    seen.retain(|x| x.0 != id);
    if matches!(status, "CLOSED" | "CANCELLED" | "COMPLETED") {
        return;
    }
    seen.push((id, version));
    if seen.len() > 32 {
        seen.remove(0);
    }
}

/// Drops the benchmark's fresh Postgres database (best effort: a failure
/// is reported, not fatal).
async fn drop_database(url: &str) {
    let admin_url = std::env::var(dcmms_cloud::testing::PG_ENV)
        .unwrap_or_else(|_| dcmms_cloud::testing::PG_DEFAULT.to_string());
    let Some(name) = url.rsplit('/').next() else {
        return;
    };
    let res = async {
        let admin = sqlx::PgPool::connect(&admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await?;
        admin.close().await;
        Ok::<_, sqlx::Error>(())
    }
    .await;
    if let Err(e) = res {
        eprintln!("note: could not drop the benchmark database {name}: {e}");
    }
}

// ---------------------------------------------------------------- the cloud process

/// `dcmms-cloud serve`, killed and reaped when dropped.
struct Cloud {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    log: PathBuf,
}

impl Cloud {
    fn spawn(bin: &Path, url: &str, port: u16, work: &Path) -> anyhow::Result<Cloud> {
        let log = work.join("cloud.log");
        let err =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut child = Command::new(bin)
            .args(["--database-url", url, "serve", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let (tx, lines) = std::sync::mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
        }
        Ok(Cloud { child, lines, log })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_listening(&mut self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.contains("listening on") => return Ok(()),
                Ok(_) => {}
                Err(_) => bail!(
                    "dcmms-cloud did not say it listens within {} s\n{}",
                    limit.as_secs(),
                    self.log_tail()
                ),
            }
        }
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(st)) => bail!("dcmms-cloud exited ({st})\n{}", self.log_tail()),
            Err(e) => bail!("cannot check dcmms-cloud: {e}"),
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail = &text[text.len().saturating_sub(4000)..];
        format!("--- end of dcmms-cloud stderr ---\n{tail}")
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

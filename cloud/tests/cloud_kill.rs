//! The cloud process is killed with SIGKILL mid-ingest, again and again
//! (and, on Postgres, the database server is restarted too) while an edge
//! keeps polling and forwarding. Afterwards every polled sample is stored
//! exactly once: a kill before COMMIT stores nothing and the edge retries; a
//! kill after COMMIT but before the answer makes the retry a duplicate.
#![allow(clippy::unwrap_used)]

use dcmms_simulators::demo::{SiteLink, edge_config};
use dcmms_simulators::modbus::{FleetConfig, start_fleet};
use sqlx::Row;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const KILLS: usize = 10;

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn cloud_cmd(db_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dcmms-cloud"));
    c.arg("--database-url").arg(db_url).env("RUST_LOG", "warn");
    c
}

fn spawn_cloud(db_url: &str, addr: SocketAddr) -> Child {
    cloud_cmd(db_url)
        .args(["serve", "--listen", &addr.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

async fn wait_healthy(addr: SocketAddr) {
    let start = Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("http://{addr}/healthz")).await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            // A deadline, not a speed: after a Postgres restart on a loaded
            // machine the server's first connections can take a while.
            start.elapsed() < Duration::from_secs(120),
            "cloud did not come up"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn jitter(i: usize) -> u64 {
    let x = (i as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (x >> 33) % 900
}

fn restart_postgres() {
    for v in std::fs::read_dir("/etc/postgresql").unwrap() {
        let v = v.unwrap().file_name();
        let ok = Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                v.to_str().unwrap(),
                "main",
                "restart",
            ])
            .status()
            .unwrap()
            .success();
        assert!(ok, "pg_ctlcluster restart failed");
    }
}

async fn scenario(db_url: String, restart_db: bool) {
    let dir = tempfile::tempdir().unwrap();
    let out = cloud_cmd(&db_url)
        .args(["gateway", "add", "ck-gw"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let credential = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .to_string();
    let addr = free_port();

    let stop_sim = CancellationToken::new();
    let fleet = start_fleet(
        FleetConfig {
            count: 3,
            ..FleetConfig::default()
        },
        stop_sim.clone(),
    )
    .await
    .unwrap();
    let mut cfg = edge_config(&SiteLink {
        gateway_id: "ck-gw".into(),
        credential,
        cloud_url: format!("http://{addr}"),
        buffer_path: dir.path().join("buffer"),
        edge_listen: "127.0.0.1:0".parse().unwrap(),
        inverters: fleet.addrs(),
        unit_id: 1,
        poll_interval_ms: 100,
        flush_interval_ms: 100,
    });
    cfg.cloud.backoff_min_ms = 50;
    cfg.cloud.backoff_max_ms = 300;
    cfg.cloud.shutdown_grace_ms = 60_000;
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();

    for i in 0..KILLS {
        let mut c = spawn_cloud(&db_url, addr);
        wait_healthy(addr).await;
        tokio::time::sleep(Duration::from_millis(200 + jitter(i))).await;
        if restart_db && i % 4 == 1 {
            restart_postgres();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        c.kill().unwrap(); // SIGKILL, mid-ingest more often than not
        c.wait().unwrap();
    }
    let mut c = spawn_cloud(&db_url, addr);
    wait_healthy(addr).await;
    stop_sim.cancel();
    stop_edge.cancel();
    edge.wait().await;
    let st = m.status();
    assert_eq!(st.batches_pending, 0, "edge could not drain: {st:?}");
    Command::new("kill")
        .args(["-TERM", &c.id().to_string()])
        .status()
        .unwrap();
    c.wait().unwrap();

    let db = dcmms_cloud::Db::connect(&db_url).await.unwrap();
    let (total, unique): (i64, i64) = dcmms_cloud::on_db!(&db, p => {
        let r = sqlx::query(
            "SELECT COUNT(*), COUNT(DISTINCT CAST(point_id AS TEXT) || ':' || CAST(ts_ms AS TEXT)) FROM samples")
            .fetch_one(p).await.unwrap();
        (r.get(0), r.get(1))
    });
    println!(
        "cloud kills: {KILLS}{}; edge polled {}, acknowledged {} (duplicates acked: {}), stored {total}",
        if restart_db {
            " + Postgres restarts"
        } else {
            ""
        },
        st.samples_polled,
        st.samples_acknowledged,
        m.batches_duplicate.get()
    );
    assert_eq!(total, unique, "a sample was stored twice");
    assert_eq!(total as u64, st.samples_polled, "a polled sample was lost");
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_sigkill_mid_ingest_stores_every_sample_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(dcmms_cloud::testing::sqlite_url(dir.path()), false).await;
}

#[cfg(feature = "postgres-tests")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cloud_sigkill_and_postgres_restart_store_every_sample_once() {
    let url = dcmms_cloud::testing::fresh_postgres_database()
        .await
        .unwrap();
    scenario(url, true).await;
}

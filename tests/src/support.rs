//! Helpers the end-to-end and interoperability suites share.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `ok` every 20 ms; fails the test, naming `what`, after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free loopback port: {e}"))
}

/// The interop venv's python, set up (idempotently) by
/// `tests/interop/setup-python.sh` from `tests/interop/requirements.txt`.
/// `needed_for` names the peer the calling test needs, for the failure message.
pub fn interop_python(needed_for: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/setup-python.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "tests/interop/setup-python.sh failed ({needed_for} is required by this test):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Reads the cloud's user-facing API as a test does: an auditor's API
/// token made with [`dcmms_cloud::testing::api_token`] (the one way
/// harnesses get a token), sent on every request. Panics, naming the URL,
/// on any failure, as a test helper should.
#[derive(Debug, Clone)]
pub struct CloudReader {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl CloudReader {
    /// A reader of `cloud` with a fresh auditor token (the least privileged
    /// role; every role has `read_telemetry`).
    pub async fn new(cloud: &dcmms_cloud::RunningCloud) -> CloudReader {
        let token = dcmms_cloud::testing::api_token(
            &cloud.db,
            &cloud.caches,
            dcmms_cloud::auth::Role::Auditor,
        )
        .await
        .unwrap_or_else(|e| panic!("cannot make a test user and token: {e}"));
        CloudReader {
            client: reqwest::Client::new(),
            base: cloud.url(),
            token,
        }
    }

    /// GET `path` (e.g. `/api/v1/points?…`) with the token; 2xx JSON or panic.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        let url = format!("{}{path}", self.base);
        let r = self
            .client
            .get(&url)
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let status = r.status();
        let body = r.text().await.unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(status.is_success(), "{url}: {status} {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: {e}: {body}"))
    }

    /// Stored raw samples of each point of `device`: point → (unit, samples).
    pub async fn stored(
        &self,
        gateway: &str,
        device: &str,
    ) -> std::collections::HashMap<String, (String, Vec<serde_json::Value>)> {
        let pts = self
            .get_json(&format!(
                "/api/v1/points?gateway_id={gateway}&device={device}&limit=1000"
            ))
            .await;
        let mut out = std::collections::HashMap::new();
        for p in pts["items"].as_array().into_iter().flatten() {
            let body = self
                .get_json(&format!(
                    "/api/v1/points/{}/samples?from=0&to={}&limit=10000",
                    p["id"],
                    i64::MAX
                ))
                .await;
            out.insert(
                p["point"].as_str().unwrap_or_default().to_string(),
                (
                    p["unit"].as_str().unwrap_or_default().to_string(),
                    body["samples"].as_array().cloned().unwrap_or_default(),
                ),
            );
        }
        out
    }
}

/// The cloud service on a free loopback port over `database_url` (the
/// suites' SQLite file or a fresh Postgres database), stopped by `stop`.
pub async fn start_cloud(
    database_url: String,
    stop: &tokio_util::sync::CancellationToken,
) -> dcmms_cloud::RunningCloud {
    dcmms_cloud::start(
        &dcmms_cloud::CloudConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url,
            ..dcmms_cloud::CloudConfig::default()
        },
        stop.clone(),
    )
    .await
    .unwrap_or_else(|e| panic!("cannot start the cloud: {e:#}"))
}

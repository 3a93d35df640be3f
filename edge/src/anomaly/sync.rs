//! The model sync with the cloud (docs/specs/model-registry.md §3): every
//! `anomaly.sync_interval_ms`, report what runs and the completed drift
//! reports, read the assignments, and fetch and install any assigned model
//! whose SHA-256 differs from the running one. Failures are logged and
//! retried at the next interval; scoring never waits on this.

use super::engine::Registry;
use crate::config::CloudLink;
use dcmms_shared::api::{MODEL_FILES_PATH, MODEL_SYNC_PATH, ModelSyncRequest, ModelSyncResponse};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Why one sync round failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("model sync: {0}")]
    Http(#[from] reqwest::Error),
    #[error("model sync: the cloud answered {status}: {body}")]
    Status {
        status: reqwest::StatusCode,
        body: String,
    },
    #[error("model sync: {0} is larger than {MAX_FILE_BYTES} bytes")]
    TooLarge(String),
}

/// What one round did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SyncRound {
    pub drift_sent: usize,
    pub installed: Vec<String>,
    pub failed: Vec<String>,
}

/// Largest model file accepted (the cloud's own limit).
pub const MAX_FILE_BYTES: usize = 16 << 20;

async fn get_bytes(
    client: &reqwest::Client,
    link: &CloudLink,
    path: &str,
) -> Result<Vec<u8>, SyncError> {
    let mut resp = client
        .get(format!("{}{path}", link.url.trim_end_matches('/')))
        .bearer_auth(&link.credential)
        .send()
        .await?;
    let status = resp.status();
    if !status.is_success() {
        let body = resp.text().await.unwrap_or_default();
        return Err(SyncError::Status { status, body });
    }
    // Read in chunks so a wrong answer cannot take the gateway's memory.
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        out.extend_from_slice(&chunk);
        if out.len() > MAX_FILE_BYTES {
            return Err(SyncError::TooLarge(path.to_string()));
        }
    }
    Ok(out)
}

/// One round: report, read assignments, install what changed.
pub async fn sync_once(
    client: &reqwest::Client,
    link: &CloudLink,
    registry: &Arc<Registry>,
) -> Result<SyncRound, SyncError> {
    let drift = registry.take_drift();
    let req = ModelSyncRequest {
        running: registry.running(),
        drift: drift.clone(),
    };
    let sent = client
        .post(format!(
            "{}{MODEL_SYNC_PATH}",
            link.url.trim_end_matches('/')
        ))
        .bearer_auth(&link.credential)
        .json(&req)
        .send()
        .await;
    let resp = match sent {
        Ok(r) if r.status().is_success() => r,
        Ok(r) => {
            registry.restore_drift(drift);
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            return Err(SyncError::Status { status, body });
        }
        Err(e) => {
            registry.restore_drift(drift);
            return Err(e.into());
        }
    };
    let mut round = SyncRound {
        drift_sent: req.drift.len(),
        ..SyncRound::default()
    };
    let answer: ModelSyncResponse = resp.json().await?;
    for a in answer.assignments {
        let Some(running) = req.running.iter().find(|r| r.model_id == a.model_id) else {
            continue; // not a model this gateway is configured for
        };
        // A new version may keep the network and change only metadata
        // (thresholds, drift reference): the version counts as well.
        if (running.version == a.version
            && running.onnx_sha256.eq_ignore_ascii_case(&a.onnx_sha256))
            || registry.failed_before(&a.model_id, &a.version, &a.onnx_sha256)
        {
            continue;
        }
        let base = format!("{MODEL_FILES_PATH}/{}/{}", a.model_id, a.version);
        let files = async {
            let meta = get_bytes(client, link, &format!("{base}/metadata")).await?;
            let onnx = get_bytes(client, link, &format!("{base}/onnx")).await?;
            Ok::<_, SyncError>((meta, onnx))
        }
        .await;
        let (meta, onnx) = match files {
            Ok(f) => f,
            Err(e) => {
                // A network failure: retried at the next round.
                tracing::warn!(model = %a.model_id, version = %a.version, error = %e, "cannot fetch the assigned model");
                round.failed.push(a.model_id.clone());
                continue;
            }
        };
        let actual = hex::encode(Sha256::digest(&onnx));
        if !actual.eq_ignore_ascii_case(&a.onnx_sha256) {
            registry.note_failure(
                &a.model_id,
                format!(
                    "{}@{}: the downloaded file's SHA-256 is {actual}, the assignment says {}",
                    a.model_id, a.version, a.onnx_sha256
                ),
                &a.version,
                &a.onnx_sha256,
            );
            round.failed.push(a.model_id.clone());
            continue;
        }
        let r = registry.clone();
        let id = a.model_id.clone();
        let version = a.version.clone();
        let done =
            tokio::task::spawn_blocking(move || r.install(&id, &version, &meta, &onnx)).await;
        match done {
            Ok(Ok(s)) => {
                tracing::info!(model = %s.model_id, version = %s.version, "assigned anomaly model installed");
                round.installed.push(a.model_id.clone());
            }
            Ok(Err(_)) => round.failed.push(a.model_id.clone()),
            Err(e) => {
                tracing::error!(error = %e, "model install task failed");
                round.failed.push(a.model_id.clone());
            }
        }
    }
    Ok(round)
}

/// Syncs at start and then every `every` until `shutdown`.
pub async fn run(
    link: CloudLink,
    registry: Arc<Registry>,
    every: Duration,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(link.request_timeout_ms.max(30_000)))
        .connect_timeout(Duration::from_millis(link.request_timeout_ms.min(10_000)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "model sync disabled: cannot build an HTTP client");
            return;
        }
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        let round = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = sync_once(&client, &link, &registry) => r,
        };
        match round {
            Ok(r) if !r.installed.is_empty() || !r.failed.is_empty() => {
                tracing::info!(installed = ?r.installed, failed = ?r.failed, drift_reports = r.drift_sent, "model sync");
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "model sync failed; retrying at the next interval")
            }
        }
    }
}

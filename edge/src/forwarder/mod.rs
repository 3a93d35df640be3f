//! The forwarder: sends buffered batches to the cloud and deletes a batch
//! only after a 2xx (which the cloud sends only after commit).
//!
//! Order: freshly sealed batches first (live data stays live during a
//! backfill), then the backlog oldest first, paced by a token bucket of
//! `backlog_bytes_per_s` so a reconnect never floods a cellular link.
//! Before a batch is first offered it is durably marked, so the buffer never
//! merges it afterwards (the cloud may already hold it).
//!
//! - 2xx: acknowledged (stored now or earlier), removed from the buffer.
//! - 401/403: credential problem; kept, retried with backoff (an operator can
//!   fix the credential without losing data).
//! - 408, 429, 5xx, network errors: kept, retried with backoff and jitter.
//! - other 4xx: the cloud will never accept this batch; it is quarantined,
//!   counted and logged so the queue behind it keeps moving.
//!
//! On shutdown the forwarder drains: once the batcher has sealed the last
//! readings (`sealing_done`), it keeps sending until the buffer is empty or
//! `cloud.shutdown_grace_ms` has passed, whichever comes first. What is left
//! stays on disk for the next start.

use crate::buffer::Buffer;
use crate::config::CloudLink;
use crate::drivers::Backoff;
use crate::metrics::EdgeMetrics;
use dcmms_shared::api::{BATCH_CONTENT_TYPE, INGEST_PATH};
use reqwest::StatusCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

pub async fn run_forwarder(
    link: CloudLink,
    buffer: Arc<Buffer>,
    sealed: Arc<Notify>,
    metrics: EdgeMetrics,
    shutdown: CancellationToken,
    sealing_done: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_millis(link.request_timeout_ms))
        .connect_timeout(Duration::from_millis(link.request_timeout_ms.min(10_000)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client; forwarding disabled");
            return;
        }
    };
    let url = format!("{}{}", link.url.trim_end_matches('/'), INGEST_PATH);
    let mut backoff = Backoff::new(link.backoff_min_ms, link.backoff_max_ms);
    let mut pacer = Pacer::new(link.backlog_bytes_per_s);
    let grace = Duration::from_millis(link.shutdown_grace_ms);
    let mut deadline: Option<Instant> = None;
    // Resolves when the shutdown grace period is over (never before shutdown).
    let give_up = |deadline: Option<Instant>| async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d.into()).await,
            None => std::future::pending().await,
        }
    };
    loop {
        if shutdown.is_cancelled() && deadline.is_none() {
            deadline = Some(Instant::now() + grace);
            tracing::info!(
                grace_ms = link.shutdown_grace_ms,
                "draining the buffer before stopping"
            );
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let next = match buffer.next().await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the buffer");
                None
            }
        };
        let Some(batch) = next else {
            if deadline.is_some() && sealing_done.is_cancelled() {
                break; // drained
            }
            tokio::select! {
                _ = shutdown.cancelled(), if deadline.is_none() => {}
                _ = sealing_done.cancelled(), if deadline.is_some() => {}
                _ = sealed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
            continue;
        };
        if !batch.live {
            let wait = pacer.take(batch.frame.len() as u64);
            if !wait.is_zero() {
                tokio::select! {
                    _ = give_up(deadline) => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                // Fresh data may have arrived while the backlog waited.
                continue;
            }
        }
        match buffer.mark_offered(batch.sequence).await {
            Ok(true) => {}
            Ok(false) => continue, // merged or dropped meanwhile
            Err(e) => {
                tracing::error!(error = %e, "cannot mark a batch as offered");
                continue;
            }
        }
        metrics.samples_forwarded.inc_by(batch.samples);
        let req = client
            .post(&url)
            .bearer_auth(&link.credential)
            .header(reqwest::header::CONTENT_TYPE, BATCH_CONTENT_TYPE)
            .body(batch.frame.clone())
            .send();
        let res = tokio::select! {
            _ = give_up(deadline) => break,
            r = req => r,
        };
        let retry = match res {
            Ok(resp) if resp.status().is_success() => {
                let duplicate = resp
                    .json::<serde_json::Value>()
                    .await
                    .map(|v| v["status"] == "duplicate")
                    .unwrap_or(false);
                if let Err(e) = buffer.remove(batch.sequence).await {
                    tracing::error!(error = %e, sequence = batch.sequence, "cannot delete an acknowledged batch");
                }
                metrics.samples_acknowledged.inc_by(batch.samples);
                metrics.batches_acknowledged.inc();
                if batch.live {
                    // Latency of live data: from the oldest sample's poll to the ack.
                    if let Ok(b) = dcmms_shared::wire::decode(&batch.frame) {
                        let oldest = b
                            .series
                            .iter()
                            .flat_map(|s| s.samples.iter().map(|x| x.ts_ms))
                            .min();
                        if let Some(t) = oldest {
                            metrics.live_delivered(crate::drivers::now_ms() - t);
                        }
                    }
                }
                if duplicate {
                    metrics.batches_duplicate.inc();
                }
                backoff.reset();
                false
            }
            Ok(resp) => {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                match status {
                    StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                        metrics.forward_failure("unauthorized");
                        tracing::error!(%status, %body, "cloud rejected the gateway credential; will retry");
                        true
                    }
                    s if s.is_server_error()
                        || s == StatusCode::REQUEST_TIMEOUT
                        || s == StatusCode::TOO_MANY_REQUESTS =>
                    {
                        metrics.forward_failure("server");
                        tracing::warn!(%status, "cloud unavailable; will retry");
                        true
                    }
                    _ => {
                        metrics.forward_failure("rejected");
                        metrics.batches_quarantined.inc();
                        tracing::error!(%status, %body, sequence = batch.sequence, "cloud rejected the batch for good; quarantined");
                        if let Err(e) = buffer.quarantine(batch.sequence).await {
                            tracing::error!(error = %e, "cannot quarantine batch");
                        }
                        false
                    }
                }
            }
            Err(e) => {
                metrics.forward_failure("network");
                tracing::warn!(error = %e, "upload failed; will retry");
                true
            }
        };
        if retry {
            let wait = backoff.next_delay();
            tokio::select! {
                _ = shutdown.cancelled(), if deadline.is_none() => {}
                _ = give_up(deadline) => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
    tracing::info!("forwarder stopped");
}

/// Token bucket for backlog bytes: one second of burst, refilled at `rate`.
#[derive(Debug)]
pub struct Pacer {
    rate: u64,
    tokens: f64,
    last: Instant,
}

impl Pacer {
    /// `rate` bytes per second; 0 means unlimited.
    pub fn new(rate: u64) -> Self {
        Pacer {
            rate,
            tokens: rate as f64,
            last: Instant::now(),
        }
    }

    /// Takes `bytes` if the bucket allows, returning zero; otherwise takes
    /// nothing and returns how long to wait before asking again. A batch
    /// larger than the burst is let through once the bucket is full.
    pub fn take(&mut self, bytes: u64) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let burst = self.rate as f64;
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * burst).min(burst);
        self.last = now;
        let need = (bytes as f64).min(burst);
        if self.tokens >= need {
            self.tokens -= bytes as f64; // may go negative: a large batch is paid off later
            Duration::ZERO
        } else {
            Duration::from_secs_f64((need - self.tokens) / burst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pacer_admits_a_burst_then_asks_to_wait_in_proportion() {
        let mut p = Pacer::new(1000);
        assert_eq!(p.take(600), Duration::ZERO);
        let w = p.take(600);
        // 400 tokens left, 600 needed: about 0.2 s at 1000 B/s.
        assert!(
            w > Duration::from_millis(150) && w <= Duration::from_millis(200),
            "{w:?}"
        );
        assert_eq!(Pacer::new(0).take(u64::MAX), Duration::ZERO);
    }

    #[test]
    fn pacer_lets_an_oversized_batch_through_and_charges_it() {
        let mut p = Pacer::new(100);
        assert_eq!(p.take(5000), Duration::ZERO);
        assert!(p.take(1) > Duration::from_secs(40));
    }
}

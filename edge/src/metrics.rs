//! Prometheus metrics of the edge agent, on its own registry, and the
//! counters behind `/api/v1/status` and the demo's status line.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabels {
    pub device: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceResultLabels {
    pub device: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

/// All edge metrics. Cloning shares the underlying counters.
#[derive(Clone)]
pub struct EdgeMetrics {
    pub samples_polled: Counter,
    pub samples_buffered: Counter,
    pub samples_forwarded: Counter,
    pub samples_acknowledged: Counter,
    pub samples_dropped: Counter,
    /// Samples report-by-exception held back (inside the deadband).
    pub samples_suppressed: Counter,
    pub batches_acknowledged: Counter,
    pub batches_duplicate: Counter,
    pub batches_quarantined: Counter,
    pub batches_compacted: Counter,
    pub chunks_corrupt: Counter,
    pub buffer_pending_batches: Gauge,
    pub buffer_pending_bytes: Gauge,
    pub forward_failures: Family<ReasonLabels, Counter>,
    pub device_polls: Family<DeviceResultLabels, Counter>,
    pub device_connected: Family<DeviceLabels, Gauge>,
    pub device_last_success_ms: Family<DeviceLabels, Gauge>,
    /// Oldest sample's age when the cloud acknowledged a live batch.
    pub live_latency_seconds: Histogram,
    /// Time from a poll's timestamp to its samples being durable in the
    /// buffer, per sample (Prometheus view; coarse buckets).
    pub poll_to_buffer_seconds: Histogram,
    /// The same, in 1 ms buckets, for exact percentiles in the status.
    poll_to_buffer_ms: Arc<MsHistogram>,
    recent_live_latency_ms: Arc<Mutex<VecDeque<i64>>>,
    registry: std::sync::Arc<Registry>,
}

/// Live-latency values kept for `live_latency_percentile` (about an hour of
/// batches at the default flush interval).
const RECENT_LATENCIES: usize = 8192;

impl std::fmt::Debug for EdgeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeMetrics")
            .field("samples_polled", &self.samples_polled.get())
            .finish_non_exhaustive()
    }
}

impl Default for EdgeMetrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("dcmms_edge");
        let m = EdgeMetrics {
            samples_polled: Counter::default(),
            samples_buffered: Counter::default(),
            samples_forwarded: Counter::default(),
            samples_acknowledged: Counter::default(),
            samples_dropped: Counter::default(),
            samples_suppressed: Counter::default(),
            batches_acknowledged: Counter::default(),
            batches_duplicate: Counter::default(),
            batches_quarantined: Counter::default(),
            batches_compacted: Counter::default(),
            chunks_corrupt: Counter::default(),
            buffer_pending_batches: Gauge::default(),
            buffer_pending_bytes: Gauge::default(),
            forward_failures: Family::default(),
            device_polls: Family::default(),
            device_connected: Family::default(),
            device_last_success_ms: Family::default(),
            live_latency_seconds: Histogram::new(exponential_buckets(0.05, 2.0, 12)),
            poll_to_buffer_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            poll_to_buffer_ms: Arc::new(MsHistogram::default()),
            recent_live_latency_ms: Arc::new(Mutex::new(VecDeque::new())),
            registry: std::sync::Arc::new(Registry::default()),
        };
        r.register(
            "samples_polled",
            "Samples read from field devices",
            m.samples_polled.clone(),
        );
        r.register(
            "samples_buffered",
            "Samples durably written to the buffer",
            m.samples_buffered.clone(),
        );
        r.register(
            "samples_forwarded",
            "Samples in upload attempts (retries count again)",
            m.samples_forwarded.clone(),
        );
        r.register(
            "samples_acknowledged",
            "Samples the cloud acknowledged (2xx)",
            m.samples_acknowledged.clone(),
        );
        r.register(
            "samples_dropped",
            "Samples dropped because the buffer was full",
            m.samples_dropped.clone(),
        );
        r.register(
            "samples_suppressed",
            "Samples held back by report-by-exception (inside the deadband)",
            m.samples_suppressed.clone(),
        );
        r.register(
            "poll_to_buffer_seconds",
            "Time from a sample's poll to its durable append to the buffer",
            m.poll_to_buffer_seconds.clone(),
        );
        r.register(
            "batches_acknowledged",
            "Batches the cloud acknowledged",
            m.batches_acknowledged.clone(),
        );
        r.register(
            "batches_duplicate",
            "Acknowledged batches the cloud already had",
            m.batches_duplicate.clone(),
        );
        r.register(
            "batches_quarantined",
            "Batches the cloud rejected for good (4xx)",
            m.batches_quarantined.clone(),
        );
        r.register(
            "buffer_pending_batches",
            "Batches waiting for acknowledgement",
            m.buffer_pending_batches.clone(),
        );
        r.register(
            "buffer_pending_bytes",
            "Bytes of batches waiting for acknowledgement",
            m.buffer_pending_bytes.clone(),
        );
        r.register(
            "forward_failures",
            "Failed uploads by reason",
            m.forward_failures.clone(),
        );
        r.register(
            "device_polls",
            "Device polls by result",
            m.device_polls.clone(),
        );
        r.register(
            "device_connected",
            "1 while the device connection is up",
            m.device_connected.clone(),
        );
        r.register(
            "device_last_success_ms",
            "Unix ms of the last successful poll",
            m.device_last_success_ms.clone(),
        );
        EdgeMetrics {
            registry: std::sync::Arc::new(r),
            ..m
        }
    }
}

/// A snapshot of the headline counters.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Status {
    pub samples_polled: u64,
    pub samples_buffered: u64,
    pub samples_forwarded: u64,
    pub samples_acknowledged: u64,
    pub samples_dropped: u64,
    pub batches_pending: i64,
    pub bytes_pending: i64,
    pub batches_quarantined: u64,
    pub chunks_corrupt: u64,
    pub samples_suppressed: u64,
    /// Median and 99th percentile of poll-to-buffer latency since start, ms.
    pub poll_to_buffer_p50_ms: Option<u64>,
    pub poll_to_buffer_p99_ms: Option<u64>,
}

impl EdgeMetrics {
    pub fn status(&self) -> Status {
        Status {
            samples_polled: self.samples_polled.get(),
            samples_buffered: self.samples_buffered.get(),
            samples_forwarded: self.samples_forwarded.get(),
            samples_acknowledged: self.samples_acknowledged.get(),
            samples_dropped: self.samples_dropped.get(),
            batches_pending: self.buffer_pending_batches.get(),
            bytes_pending: self.buffer_pending_bytes.get(),
            batches_quarantined: self.batches_quarantined.get(),
            chunks_corrupt: self.chunks_corrupt.get(),
            samples_suppressed: self.samples_suppressed.get(),
            poll_to_buffer_p50_ms: self.poll_to_buffer_ms.percentile(50.0),
            poll_to_buffer_p99_ms: self.poll_to_buffer_ms.percentile(99.0),
        }
    }

    /// Records that `samples` samples polled at `polled_ms` became durable
    /// at `durable_ms`.
    pub fn polled_to_buffer(&self, polled_ms: i64, durable_ms: i64, samples: u64) {
        let ms = (durable_ms - polled_ms).max(0) as u64;
        self.poll_to_buffer_ms.record(ms, samples);
        self.poll_to_buffer_seconds.observe(ms as f64 / 1000.0);
    }

    /// Records a live batch's delivery latency (ack time − oldest sample).
    pub fn live_delivered(&self, latency_ms: i64) {
        self.live_latency_seconds
            .observe(latency_ms.max(0) as f64 / 1000.0);
        let mut q = self
            .recent_live_latency_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if q.len() == RECENT_LATENCIES {
            q.pop_front();
        }
        q.push_back(latency_ms);
    }

    /// The `p`-th percentile (0–100) of recent live latencies, in ms.
    pub fn live_latency_percentile(&self, p: f64) -> Option<i64> {
        let mut v: Vec<i64> = self
            .recent_live_latency_ms
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        v.get(idx.min(v.len() - 1)).copied()
    }

    pub fn device_poll(&self, device: &str, result: &str) {
        self.device_polls
            .get_or_create(&DeviceResultLabels {
                device: device.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    pub fn device_gauge(&self, family: &Family<DeviceLabels, Gauge>, device: &str, v: i64) {
        family
            .get_or_create(&DeviceLabels {
                device: device.to_string(),
            })
            .set(v);
    }

    pub fn forward_failure(&self, reason: &str) {
        self.forward_failures
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Latencies in 1 ms buckets up to [`MsHistogram::MAX_MS`] (everything
/// slower lands in the last bucket): exact enough for p50/p99 at any rate,
/// fixed memory, lock-free.
#[derive(Debug)]
struct MsHistogram {
    buckets: Vec<std::sync::atomic::AtomicU64>,
}

impl MsHistogram {
    const MAX_MS: usize = 60_000;

    fn record(&self, ms: u64, weight: u64) {
        let i = (ms as usize).min(Self::MAX_MS);
        if let Some(b) = self.buckets.get(i) {
            b.fetch_add(weight, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// The smallest latency (ms) at or below which `p` percent of the
    /// recorded weight lies; `None` before anything was recorded.
    fn percentile(&self, p: f64) -> Option<u64> {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(std::sync::atomic::Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (ms, c) in counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(ms as u64);
            }
        }
        Some(Self::MAX_MS as u64)
    }
}

impl Default for MsHistogram {
    fn default() -> Self {
        MsHistogram {
            buckets: (0..=Self::MAX_MS)
                .map(|_| std::sync::atomic::AtomicU64::new(0))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_to_buffer_percentiles_weigh_by_samples() {
        let m = EdgeMetrics::default();
        assert_eq!(m.status().poll_to_buffer_p50_ms, None);
        // 98 samples at 10 ms, 2 at 900 ms: p50 is 10, p99 is 900.
        m.polled_to_buffer(1_000, 1_010, 98);
        m.polled_to_buffer(2_000, 2_900, 2);
        let s = m.status();
        assert_eq!(s.poll_to_buffer_p50_ms, Some(10));
        assert_eq!(s.poll_to_buffer_p99_ms, Some(900));
        // A clock step backwards counts as 0, not as a huge latency.
        m.polled_to_buffer(5_000, 4_000, 1000);
        assert_eq!(m.status().poll_to_buffer_p50_ms, Some(0));
    }
}

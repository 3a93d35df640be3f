//! Prometheus metrics of the cloud service, on its own registry (no global
//! state, so several services can share one process, as in `dcmms-demo`).

use super::AppState;
use crate::ingest::IngestStatus;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

type RouteHistogram = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct CloudMetrics {
    registry: Registry,
    requests: RouteHistogram,
    batches: Family<ResultLabels, Counter>,
    samples: Counter,
}

impl std::fmt::Debug for CloudMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudMetrics").finish_non_exhaustive()
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for CloudMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("dcmms_cloud");
        let requests: RouteHistogram = Family::new_with_constructor(latency_histogram);
        let batches = Family::<ResultLabels, Counter>::default();
        let samples = Counter::default();
        registry.register(
            "http_request_duration_seconds",
            "HTTP requests by route template and status",
            requests.clone(),
        );
        registry.register(
            "ingest_batches",
            "Ingest requests by result (stored, duplicate, malformed, unauthorized, ...)",
            batches.clone(),
        );
        registry.register(
            "ingest_samples",
            "Samples committed by ingest",
            samples.clone(),
        );
        CloudMetrics {
            registry,
            requests,
            batches,
            samples,
        }
    }
}

impl CloudMetrics {
    pub fn ingest_accepted(&self, status: IngestStatus, samples: usize) {
        let result = match status {
            IngestStatus::Stored => "stored",
            IngestStatus::Duplicate => "duplicate",
        };
        self.batch(result);
        self.samples.inc_by(samples as u64);
    }

    pub fn ingest_rejected(&self, result: &str) {
        self.batch(result);
    }

    fn batch(&self, result: &str) {
        self.batches
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// Samples committed since start.
    pub fn samples_committed(&self) -> u64 {
        self.samples.get()
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Middleware: one histogram observation per request, by route template.
pub async fn track(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let resp = next.run(req).await;
    st.metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: resp.status().as_u16(),
        })
        .observe(start.elapsed().as_secs_f64());
    resp
}

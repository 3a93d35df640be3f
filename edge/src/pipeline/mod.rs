//! The batcher: gathers drivers' readings, drops what report-by-exception
//! says is not worth sending, and seals the rest into buffered batches at
//! least every `flush_interval`, which bounds how long a polled sample lives
//! only in memory.
//!
//! - [`exception`]: the per-point report-by-exception filter.

pub mod exception;

use crate::buffer::Buffer;
use crate::config::EdgeConfig;
use crate::drivers::Reading;
use crate::metrics::EdgeMetrics;
use dcmms_shared::{AnomalyEvent, Sample, Series};
use exception::ExceptionFilter;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Seal early when this many samples are waiting, to bound batch size.
pub const MAX_SAMPLES_PER_BATCH: usize = 50_000;

/// Sees every reading before report-by-exception and may answer with
/// events to send ahead of everything else (the anomaly engine).
pub trait Tap: Send {
    fn on_reading(&mut self, cfg: &EdgeConfig, r: &Reading) -> Vec<AnomalyEvent>;
}

#[cfg(feature = "anomaly")]
impl Tap for crate::anomaly::engine::Engine {
    fn on_reading(&mut self, cfg: &EdgeConfig, r: &Reading) -> Vec<AnomalyEvent> {
        crate::anomaly::engine::Engine::on_reading(self, cfg, r)
    }
}

/// Runs until every driver has dropped its sender; then seals what is left.
pub async fn run_batcher(
    cfg: Arc<EdgeConfig>,
    mut rx: mpsc::Receiver<Reading>,
    buffer: Arc<Buffer>,
    sealed: Arc<Notify>,
    metrics: EdgeMetrics,
    mut tap: Option<Box<dyn Tap>>,
) {
    // Events not yet durable (a failed write keeps them for the next try).
    let mut events: Vec<AnomalyEvent> = Vec::new();
    // Watermark of the last sealed sample batch: an events-only batch
    // repeats it, since samples still pending are not in it.
    let mut watermark = 0i64;
    let mut pending: BTreeMap<(usize, usize), Vec<Sample>> = BTreeMap::new();
    // Report-by-exception state per (device, point), made on first sight
    // (a discovering device's point names are known only then).
    let mut filters: HashMap<(usize, usize), ExceptionFilter> = HashMap::new();
    // (poll timestamp, samples kept) of every reading in `pending`.
    let mut polls: Vec<(i64, u64)> = Vec::new();
    let mut count = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.buffer.flush_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closed = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => {
                    if let Some(t) = tap.as_mut() {
                        events.extend(t.on_reading(&cfg, &r));
                    }
                    if !events.is_empty() {
                        // Sealed at once, in a batch of their own, which the
                        // forwarder offers before any other.
                        match buffer.append_with_events(Vec::new(), events.clone(), watermark).await {
                            Ok(seq) => {
                                tracing::info!(sequence = seq, events = events.len(), "anomaly events sealed");
                                events.clear();
                                sealed.notify_one();
                            }
                            Err(e) => tracing::error!(error = %e, "cannot write anomaly events to the buffer; retrying"),
                        }
                    }
                    let report = cfg.devices.get(r.device).and_then(|d| d.report.as_ref());
                    let mut kept = 0u64;
                    let mut polled_at = i64::MAX;
                    for (point, s) in r.samples {
                        if let Some(report) = report {
                            let f = filters.entry((r.device, point)).or_insert_with(|| {
                                let name = cfg.devices.get(r.device)
                                    .and_then(|d| d.point_name_unit(point))
                                    .map_or("", |(n, _)| n);
                                ExceptionFilter::new(report.rule_for(name))
                            });
                            if !f.keep(&s) {
                                metrics.samples_suppressed.inc();
                                continue;
                            }
                        }
                        polled_at = polled_at.min(s.ts_ms);
                        kept += 1;
                        pending.entry((r.device, point)).or_default().push(s);
                    }
                    if kept > 0 {
                        polls.push((polled_at, kept));
                    }
                    count += kept as usize;
                    if count < MAX_SAMPLES_PER_BATCH {
                        continue;
                    }
                    false
                }
                None => true,
            },
            _ = tick.tick() => false,
        };
        if count > 0 || buffer.has_pending_drops() {
            let series = to_series(&cfg, &pending);
            // Every reading received so far is in this batch or an earlier one.
            let polled_through = crate::drivers::now_ms();
            match buffer.append(series, polled_through).await {
                Ok(seq) => {
                    watermark = polled_through;
                    tracing::debug!(sequence = seq, samples = count, "batch sealed");
                    let durable = crate::drivers::now_ms();
                    for (polled, n) in polls.drain(..) {
                        metrics.polled_to_buffer(polled, durable, n);
                    }
                    pending.clear();
                    count = 0;
                    sealed.notify_one();
                }
                // Keep the samples and try again at the next tick.
                Err(e) => {
                    tracing::error!(error = %e, samples = count, "cannot write to the buffer")
                }
            }
        }
        if closed {
            // The last seal may itself have pushed old batches over the cap:
            // seal their drop reports too, so they leave with the drain rather
            // than wait on disk for the next start.
            for _ in 0..16 {
                if !buffer.has_pending_drops() {
                    break;
                }
                match buffer.append(Vec::new(), crate::drivers::now_ms()).await {
                    Ok(_) => sealed.notify_one(),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot seal the last drop reports");
                        break;
                    }
                }
            }
            if count > 0 {
                tracing::error!(
                    samples = count,
                    "samples could not be buffered before shutdown"
                );
            }
            break;
        }
    }
}

fn to_series(cfg: &EdgeConfig, pending: &BTreeMap<(usize, usize), Vec<Sample>>) -> Vec<Series> {
    pending
        .iter()
        .filter_map(|((d, p), samples)| {
            let dev = cfg.devices.get(*d)?;
            // Modbus and MQTT devices keep their points in different tables.
            let (point, unit) = dev.point_name_unit(*p)?;
            Some(Series {
                device: dev.name.clone(),
                point: point.to_string(),
                unit: unit.to_string(),
                samples: samples.clone(),
            })
        })
        .collect()
}

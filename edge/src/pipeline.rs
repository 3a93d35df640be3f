//! The batcher: gathers drivers' readings and seals them into buffered
//! batches at least every `flush_interval`, which bounds how long a polled
//! sample lives only in memory.

use crate::buffer::Buffer;
use crate::config::EdgeConfig;
use crate::drivers::Reading;
use dcmms_shared::{Sample, Series};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// Seal early when this many samples are waiting, to bound batch size.
pub const MAX_SAMPLES_PER_BATCH: usize = 50_000;

/// Runs until every driver has dropped its sender; then seals what is left.
pub async fn run_batcher(
    cfg: Arc<EdgeConfig>,
    mut rx: mpsc::Receiver<Reading>,
    buffer: Arc<Buffer>,
    sealed: Arc<Notify>,
) {
    let mut pending: BTreeMap<(usize, usize), Vec<Sample>> = BTreeMap::new();
    let mut count = 0usize;
    let mut tick = tokio::time::interval(Duration::from_millis(cfg.buffer.flush_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let closed = tokio::select! {
            r = rx.recv() => match r {
                Some(r) => {
                    count += r.samples.len();
                    for (point, s) in r.samples {
                        pending.entry((r.device, point)).or_default().push(s);
                    }
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
                    tracing::debug!(sequence = seq, samples = count, "batch sealed");
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

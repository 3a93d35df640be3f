//! Modbus TCP driver (tokio-modbus).
//!
//! tokio-modbus has no timeout and no reconnect of its own, so every request
//! runs under a timeout and any transport error or timeout drops the
//! connection: a late reply would otherwise be read as the answer to the next
//! request. A Modbus exception is a valid reply and keeps the connection.
//! Each device runs in its own task, so one dead device never delays others.

pub mod decode;
pub mod plan;

use super::{Backoff, Reading, ReadingTx, now_ms};
use crate::config::{DeviceConfig, ModbusTcpConfig, RegisterTable};
use crate::metrics::EdgeMetrics;
use plan::{ReadRange, Registers};
use std::time::Duration;
use tokio::time::{MissedTickBehavior, timeout};
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::{Slave, client::tcp};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(#[from] tokio_modbus::Error),
}

/// Runs one device until `shutdown`.
pub async fn run_device(
    index: usize,
    device: DeviceConfig,
    stagger: Duration,
    tx: ReadingTx,
    metrics: EdgeMetrics,
    shutdown: CancellationToken,
) {
    let Some(m) = device.modbus_tcp.clone() else {
        return;
    };
    let span = tracing::info_span!("modbus", device = %device.name, host = %m.host, port = m.port);
    async move {
        let ranges = plan::plan(&device.points, m.max_gap, m.max_registers_per_read);
        tracing::info!(reads = ranges.len(), points = device.points.len(), "polling");
        let per_call = Duration::from_millis(m.timeout_ms);
        let mut ctx: Option<Context> = None;
        let mut backoff = Backoff::new(250, 30_000);
        // Stagger the first poll so devices sharing an interval are not hit at once.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(stagger) => {}
        }
        let mut tick = tokio::time::interval(Duration::from_millis(device.poll_interval_ms));
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            match poll_once(&mut ctx, &m, &ranges, per_call).await {
                Ok((regs, exceptions)) => {
                    backoff.reset();
                    let ts = now_ms();
                    let samples: Vec<_> = device
                        .points
                        .iter()
                        .enumerate()
                        .filter_map(|(i, p)| decode::decode_point(p, &regs, ts).map(|s| (i, s)))
                        .collect();
                    metrics.device_poll(&device.name, if exceptions > 0 { "exception" } else { "ok" });
                    metrics.device_gauge(&metrics.device_connected, &device.name, 1);
                    metrics.device_gauge(&metrics.device_last_success_ms, &device.name, ts);
                    let n = samples.len() as u64;
                    if n > 0 {
                        if tx.send(Reading { device: index, samples }).await.is_err() {
                            break; // pipeline gone: shutting down
                        }
                        metrics.samples_polled.inc_by(n);
                    }
                }
                Err(e) => {
                    ctx = None;
                    metrics.device_poll(&device.name, "error");
                    metrics.device_gauge(&metrics.device_connected, &device.name, 0);
                    let wait = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "poll failed; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        tracing::info!("stopped");
    }
    .instrument(span)
    .await
}

/// One poll: connect if needed, then every planned read. Returns the
/// registers read and how many reads the device answered with an exception.
async fn poll_once(
    ctx: &mut Option<Context>,
    m: &ModbusTcpConfig,
    ranges: &[ReadRange],
    per_call: Duration,
) -> Result<(Registers, usize), PollError> {
    if ctx.is_none() {
        let target = format!("{}:{}", m.host, m.port);
        let addr = timeout(per_call, tokio::net::lookup_host(target.clone()))
            .await
            .map_err(|_| PollError::Timeout(per_call))?
            .map_err(|_| PollError::Resolve(target.clone()))?
            .next()
            .ok_or(PollError::Resolve(target))?;
        let c = timeout(per_call, tcp::connect_slave(addr, Slave(m.unit_id)))
            .await
            .map_err(|_| PollError::Timeout(per_call))?
            .map_err(PollError::Connect)?;
        *ctx = Some(c);
    }
    let Some(c) = ctx.as_mut() else {
        return Err(PollError::Resolve(m.host.clone()));
    };
    let mut regs = Registers::default();
    let mut exceptions = 0;
    for r in ranges {
        let fut = async {
            match r.table {
                RegisterTable::Holding => c.read_holding_registers(r.start, r.count).await,
                RegisterTable::Input => c.read_input_registers(r.start, r.count).await,
            }
        };
        match timeout(per_call, fut)
            .await
            .map_err(|_| PollError::Timeout(per_call))??
        {
            Ok(words) if words.len() == r.count as usize => regs.push(*r, words),
            Ok(words) => {
                tracing::warn!(
                    start = r.start,
                    asked = r.count,
                    got = words.len(),
                    "short reply"
                );
                exceptions += 1;
            }
            Err(code) => {
                tracing::warn!(
                    start = r.start,
                    count = r.count,
                    ?code,
                    "device answered with an exception"
                );
                exceptions += 1;
            }
        }
    }
    Ok((regs, exceptions))
}

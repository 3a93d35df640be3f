//! Modbus TCP and RTU driver (tokio-modbus).
//!
//! tokio-modbus has no timeout and no reconnect of its own, so every request
//! runs under a timeout and any transport error or timeout drops the
//! connection (TCP) or reopens the port (RTU): a late reply would otherwise
//! be read as the answer to the next request. A Modbus exception is a valid
//! reply and keeps the connection. Each device runs in its own task, so one
//! dead device never delays others.
//!
//! The poll loop keeps its interval while the device is down: every tick
//! either polls or, while the reconnect backoff has not expired, emits the
//! device's points with quality `comms_lost` (last good value, or NaN) — see
//! docs/specs/drivers.md.
//!
//! - [`plan`]: coalesced read requests; [`decode`]: words to values;
//! - [`groups`]: poll groups, each with its own interval and reads;
//! - [`sunspec`]: SunSpec model-chain discovery.

pub mod decode;
pub mod groups;
pub mod plan;
pub mod sunspec;

use super::{Backoff, Reading, ReadingTx, now_ms};
use crate::config::{
    DeviceConfig, ModbusRequestSettings, ModbusRtuConfig, ModbusTcpConfig, PointConfig,
    RegisterTable, SerialParity,
};
use crate::metrics::EdgeMetrics;
use dcmms_shared::{Quality, Sample};
use plan::{ReadRange, Registers};
use std::time::Duration;
use tokio::time::{Instant, timeout};
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::{Slave, client::rtu, client::tcp};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error("cannot resolve {0}")]
    Resolve(String),
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    #[error("cannot open serial port {path}: {source}")]
    Serial {
        path: String,
        source: tokio_serial::Error,
    },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("transport error: {0}")]
    Transport(#[from] tokio_modbus::Error),
    #[error("discovery failed: {0}")]
    Discovery(#[from] sunspec::DiscoveryError),
}

/// How the device is reached.
#[derive(Debug, Clone)]
pub enum Transport {
    Tcp(ModbusTcpConfig),
    Rtu(ModbusRtuConfig),
}

impl Transport {
    pub fn of(device: &DeviceConfig) -> Option<Transport> {
        match (&device.modbus_tcp, &device.modbus_rtu) {
            (Some(t), _) => Some(Transport::Tcp(t.clone())),
            (None, Some(r)) => Some(Transport::Rtu(r.clone())),
            (None, None) => None,
        }
    }

    /// Opens a fresh connection (TCP) or a freshly opened port (RTU, which
    /// also discards whatever stale bytes the old handle had buffered).
    pub async fn connect(&self, unit_id: u8, per_call: Duration) -> Result<Context, PollError> {
        match self {
            Transport::Tcp(m) => {
                let target = format!("{}:{}", m.host, m.port);
                let addr = timeout(per_call, tokio::net::lookup_host(target.clone()))
                    .await
                    .map_err(|_| PollError::Timeout(per_call))?
                    .map_err(|_| PollError::Resolve(target.clone()))?
                    .next()
                    .ok_or(PollError::Resolve(target))?;
                timeout(per_call, tcp::connect_slave(addr, Slave(unit_id)))
                    .await
                    .map_err(|_| PollError::Timeout(per_call))?
                    .map_err(PollError::Connect)
            }
            Transport::Rtu(r) => {
                use tokio_serial::SerialPortBuilderExt;
                let port = tokio_serial::new(r.path.clone(), r.baud_rate)
                    .parity(match r.parity {
                        SerialParity::None => tokio_serial::Parity::None,
                        SerialParity::Even => tokio_serial::Parity::Even,
                        SerialParity::Odd => tokio_serial::Parity::Odd,
                    })
                    .data_bits(if r.data_bits == 7 {
                        tokio_serial::DataBits::Seven
                    } else {
                        tokio_serial::DataBits::Eight
                    })
                    .stop_bits(if r.stop_bits == 2 {
                        tokio_serial::StopBits::Two
                    } else {
                        tokio_serial::StopBits::One
                    })
                    .open_native_async()
                    .map_err(|source| PollError::Serial {
                        path: r.path.clone(),
                        source,
                    })?;
                Ok(rtu::attach_slave(port, Slave(unit_id)))
            }
        }
    }

    /// The silence to keep between frames: 3.5 character times on a serial
    /// line (11 bits per character), at least 1.75 ms above 19200 baud as
    /// the Modbus serial spec recommends; none on TCP.
    pub fn inter_frame_gap(&self) -> Option<Duration> {
        match self {
            Transport::Tcp(_) => None,
            Transport::Rtu(r) => {
                let us = 3.5 * 11.0 * 1e6 / f64::from(r.baud_rate.max(1));
                Some(Duration::from_micros(us.max(1750.0) as u64))
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Transport::Tcp(m) => format!("tcp://{}:{}", m.host, m.port),
            Transport::Rtu(r) => format!("rtu://{}@{}", r.path, r.baud_rate),
        }
    }
}

/// A connection plus what a request needs: the discovery reader.
struct Link<'a> {
    ctx: &'a mut Context,
    per_call: Duration,
    gap: Option<Duration>,
}

impl sunspec::ReadHolding for Link<'_> {
    async fn read_holding(
        &mut self,
        addr: u16,
        count: u16,
    ) -> Result<Option<Vec<u16>>, sunspec::DiscoveryError> {
        if let Some(g) = self.gap {
            tokio::time::sleep(g).await;
        }
        match timeout(self.per_call, self.ctx.read_holding_registers(addr, count)).await {
            Err(_) => Err(sunspec::DiscoveryError::Read(format!(
                "timed out after {:?}",
                self.per_call
            ))),
            Ok(Err(e)) => Err(sunspec::DiscoveryError::Read(e.to_string())),
            Ok(Ok(Ok(words))) if words.len() == usize::from(count) => Ok(Some(words)),
            Ok(Ok(Ok(_))) => Err(sunspec::DiscoveryError::Read("short reply".into())),
            Ok(Ok(Err(_exception))) => Ok(None),
        }
    }
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
    let (Some(transport), Some(settings)) = (Transport::of(&device), device.modbus_settings())
    else {
        return;
    };
    let span = tracing::info_span!("modbus", device = %device.name, at = %transport.describe());
    async move {
        let per_call = Duration::from_millis(settings.timeout_ms);
        let gap = transport.inter_frame_gap();
        let mut ctx: Option<Context> = None;
        let mut backoff = Backoff::new(250, 30_000);
        // Stagger the first poll so devices sharing an interval are not hit at once.
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(stagger) => {}
        }
        if device.discover.is_some() && device.discovered.get().is_none() {
            let Some(points) = discover_until_found(
                &device, &transport, settings, &mut ctx, &mut backoff, &metrics, &shutdown,
            )
            .await
            else {
                return;
            };
            device.discovered.set(points);
        }
        let points: &[PointConfig] = device.modbus_points();
        let mut groups = groups::schedule(
            &device,
            points,
            settings,
            device.poll_interval_ms,
            Instant::now(),
        );
        tracing::info!(
            reads = groups.iter().map(|g| g.ranges.len()).sum::<usize>(),
            points = points.len(),
            groups = groups.len(),
            "polling"
        );
        let mut last_good: Vec<Option<f64>> = vec![None; points.len()];
        // While the backoff runs no I/O is attempted, but ticks keep coming.
        let mut retry_at: Option<Instant> = None;
        while let Some(g) = groups::next_due(&groups) {
            let due = groups[g].due;
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep_until(due) => {}
            }
            let group = &mut groups[g];
            group.advance(Instant::now());
            let samples = if retry_at.is_some_and(|t| Instant::now() < t) {
                comms_lost(&last_good, &group.points, now_ms())
            } else {
                retry_at = None;
                match poll_once(&mut ctx, &transport, settings.unit_id, &group.ranges, per_call, gap).await {
                    Ok((regs, exceptions)) => {
                        backoff.reset();
                        let ts = now_ms();
                        // A point whose read got an exception is reported `bad`.
                        let samples: Vec<_> = group
                            .points
                            .iter()
                            .filter_map(|&i| Some((i, points.get(i)?)))
                            .map(|(i, p)| {
                                let s = decode::decode_point(p, &regs, ts).unwrap_or(Sample {
                                    ts_ms: ts,
                                    value: f64::NAN,
                                    quality: Quality::Bad,
                                });
                                (i, s)
                            })
                            .collect();
                        for (i, s) in &samples {
                            if s.quality == Quality::Good
                                && let Some(slot) = last_good.get_mut(*i)
                            {
                                *slot = Some(s.value);
                            }
                        }
                        metrics.device_poll(&device.name, if exceptions > 0 { "exception" } else { "ok" });
                        metrics.device_gauge(&metrics.device_connected, &device.name, 1);
                        metrics.device_gauge(&metrics.device_last_success_ms, &device.name, ts);
                        samples
                    }
                    Err(e) => {
                        ctx = None;
                        metrics.device_poll(&device.name, "error");
                        metrics.device_gauge(&metrics.device_connected, &device.name, 0);
                        let wait = backoff.next_delay();
                        retry_at = Some(Instant::now() + wait);
                        tracing::warn!(error = %e, group = %group.name, retry_in_ms = wait.as_millis() as u64, "poll failed; reconnecting");
                        comms_lost(&last_good, &group.points, now_ms())
                    }
                }
            };
            let n = samples.len() as u64;
            if n > 0 {
                if tx.send(Reading { device: index, samples }).await.is_err() {
                    break; // pipeline gone: shutting down
                }
                metrics.samples_polled.inc_by(n);
            }
        }
        tracing::info!("stopped");
    }
    .instrument(span)
    .await
}

/// One `comms_lost` sample for each of `points` (indices into the device's
/// points): the last good value, NaN if none.
pub fn comms_lost(last_good: &[Option<f64>], points: &[usize], ts_ms: i64) -> Vec<(usize, Sample)> {
    points
        .iter()
        .map(|&i| {
            (
                i,
                Sample {
                    ts_ms,
                    value: last_good.get(i).copied().flatten().unwrap_or(f64::NAN),
                    quality: Quality::CommsLost,
                },
            )
        })
        .collect()
}

/// Retries SunSpec discovery with backoff until it finds points; `None` at
/// shutdown. The device sends nothing meanwhile (it has no points yet).
async fn discover_until_found(
    device: &DeviceConfig,
    transport: &Transport,
    settings: ModbusRequestSettings,
    ctx: &mut Option<Context>,
    backoff: &mut Backoff,
    metrics: &EdgeMetrics,
    shutdown: &CancellationToken,
) -> Option<Vec<PointConfig>> {
    let per_call = Duration::from_millis(settings.timeout_ms);
    loop {
        let attempt = async {
            if ctx.is_none() {
                *ctx = Some(transport.connect(settings.unit_id, per_call).await?);
            }
            let Some(c) = ctx.as_mut() else {
                return Err(PollError::Resolve(transport.describe()));
            };
            let mut link = Link {
                ctx: c,
                per_call,
                gap: transport.inter_frame_gap(),
            };
            Ok::<_, PollError>(sunspec::discover(&mut link).await?)
        };
        let result = tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = attempt => r,
        };
        match result {
            Ok(points) if !points.is_empty() => {
                backoff.reset();
                return Some(points);
            }
            Ok(_) => tracing::warn!("SunSpec discovery found no known model"),
            Err(e) => tracing::warn!(error = %e, "SunSpec discovery failed"),
        }
        *ctx = None;
        metrics.device_poll(&device.name, "discovery_error");
        metrics.device_gauge(&metrics.device_connected, &device.name, 0);
        let wait = backoff.next_delay();
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// One poll: connect if needed, then every planned read. Returns the
/// registers read and how many reads the device answered with an exception.
async fn poll_once(
    ctx: &mut Option<Context>,
    transport: &Transport,
    unit_id: u8,
    ranges: &[ReadRange],
    per_call: Duration,
    gap: Option<Duration>,
) -> Result<(Registers, usize), PollError> {
    if ctx.is_none() {
        *ctx = Some(transport.connect(unit_id, per_call).await?);
    }
    let Some(c) = ctx.as_mut() else {
        return Err(PollError::Resolve(transport.describe()));
    };
    let mut regs = Registers::default();
    let mut exceptions = 0;
    for r in ranges {
        if let Some(g) = gap {
            tokio::time::sleep(g).await;
        }
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn comms_lost_repeats_the_last_good_value_or_nan() {
        let s = comms_lost(&[Some(4.5), None], &[0, 1], 7);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].0, 0);
        assert_eq!(
            (s[0].1.value, s[0].1.quality, s[0].1.ts_ms),
            (4.5, Quality::CommsLost, 7)
        );
        assert!(s[1].1.value.is_nan());
        assert_eq!(s[1].1.quality, Quality::CommsLost);
    }

    #[test]
    fn serial_gap_is_three_and_a_half_characters_with_a_floor() {
        let rtu = |baud| {
            Transport::Rtu(ModbusRtuConfig {
                path: "/dev/null".into(),
                baud_rate: baud,
                parity: SerialParity::None,
                data_bits: 8,
                stop_bits: 1,
                unit_id: 1,
                timeout_ms: 100,
                max_gap: 0,
                max_registers_per_read: 125,
            })
        };
        // 9600 baud: 38.5 bits / 9600 = 4.01 ms.
        assert_eq!(
            rtu(9600).inter_frame_gap(),
            Some(Duration::from_micros(4010))
        );
        assert_eq!(
            rtu(115_200).inter_frame_gap(),
            Some(Duration::from_micros(1750))
        );
    }
}

//! One simulated inverter on a serial line (Modbus RTU, tokio-modbus
//! `rtu-server`), e.g. one end of a `socat` pseudo-terminal pair.
//!
//! It serves the same register image and the same faults as a TCP device,
//! except that a serial line cannot be closed: `Drop`, `Garbage` and `Gone`
//! mean no reply at all, and requests to other unit ids get no reply (on a
//! shared bus another device may own them).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU8;
use std::time::Duration;

use tokio_modbus::server::rtu::Server;
use tokio_serial::{DataBits, Parity, SerialPortBuilderExt, StopBits};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Device, FaultPlan, InverterService, SimClock};
use crate::SimError;
use crate::device::SimulatedInverter;
use crate::solar::SiteModel;
use crate::sunspec::RegisterImage;

/// Configuration of a serial-line inverter.
#[derive(Debug, Clone)]
pub struct RtuConfig {
    /// The serial device, e.g. `/dev/ttyUSB0` or `/dev/pts/3`.
    pub path: PathBuf,
    pub baud_rate: u32,
    pub parity: Parity,
    pub data_bits: DataBits,
    pub stop_bits: StopBits,
    pub unit_id: u8,
    pub seed: u64,
    pub site: SiteModel,
    pub rated_ac_w: f64,
    pub clock: SimClock,
    pub update_interval: Duration,
}

impl RtuConfig {
    /// 9600 8N1, unit 1, one 100 kW inverter at Bhadla in real time.
    #[must_use]
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            baud_rate: 9600,
            parity: Parity::None,
            data_bits: DataBits::Eight,
            stop_bits: StopBits::One,
            unit_id: 1,
            seed: 0,
            site: SiteModel::default(),
            rated_ac_w: 100_000.0,
            clock: SimClock::realtime(),
            update_interval: Duration::from_secs(1),
        }
    }
}

/// A running serial-line inverter.
#[derive(Debug)]
pub struct RtuDevice {
    device: Arc<Device>,
    tracker: TaskTracker,
}

impl RtuDevice {
    /// The registers it currently serves.
    #[must_use]
    pub fn snapshot(&self) -> RegisterImage {
        RegisterImage::clone(&self.device.current())
    }

    /// Injects a fault (see the module docs for what they mean on a serial line).
    pub fn set_fault(&self, plan: FaultPlan) {
        self.device.faults.send_replace(plan);
    }

    /// Read requests answered with data.
    #[must_use]
    pub fn reads_served(&self) -> u64 {
        self.device.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until shutdown and the end of the server task.
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Opens the serial port and serves until `shutdown`.
///
/// # Errors
/// [`SimError::Serial`] if the port cannot be opened,
/// [`SimError::InvalidConfig`] for a zero baud rate or update interval.
pub async fn start_rtu(cfg: RtuConfig, shutdown: CancellationToken) -> Result<RtuDevice, SimError> {
    if cfg.baud_rate == 0 || cfg.update_interval.is_zero() {
        return Err(SimError::InvalidConfig(
            "baud rate and update interval must be positive".into(),
        ));
    }
    let path = cfg.path.display().to_string();
    let port = tokio_serial::new(path.clone(), cfg.baud_rate)
        .parity(cfg.parity)
        .data_bits(cfg.data_bits)
        .stop_bits(cfg.stop_bits)
        .open_native_async()
        .map_err(|source| SimError::Serial {
            path: path.clone(),
            source,
        })?;
    let sim = SimulatedInverter::fleet_member(cfg.site, cfg.seed, 0, cfg.rated_ac_w, cfg.unit_id);
    let device = Arc::new(Device::new(
        super::DeviceSim::Inverter(Box::new(sim)),
        cfg.clock,
    ));
    let service = InverterService {
        device: Arc::clone(&device),
        unit_id: cfg.unit_id,
        next_reply: Arc::new(AtomicU8::new(0)),
        serial: true,
    };
    let tracker = TaskTracker::new();
    let token = shutdown.clone();
    tracker.spawn(async move {
        match Server::new(port)
            .serve_until(service, token.cancelled_owned())
            .await
        {
            Ok(_) => tracing::debug!(%path, "Modbus RTU server stopped"),
            Err(err) => tracing::error!(%path, error = %err, "Modbus RTU server failed"),
        }
    });
    let ticker = Arc::clone(&device);
    let interval = cfg.update_interval;
    tracker.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => ticker.refresh(),
            }
        }
    });
    tracing::info!(path = %cfg.path.display(), unit_id = cfg.unit_id, "SunSpec inverter simulator on a serial line");
    Ok(RtuDevice { device, tracker })
}

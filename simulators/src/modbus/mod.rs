//! Modbus TCP server for a fleet of simulated SunSpec inverters, or of
//! simulated BESS racks ([`DeviceKind::BessRack`]: the BMS register map of
//! [`crate::bess::bms`], same server, same link faults).
//!
//! Every inverter listens on its own TCP port (`base_port + index`, or an
//! ephemeral port each when `base_port` is 0) and serves its register image
//! ([`crate::sunspec`]) for:
//!
//! - function code 3 (Read Holding Registers) and 4 (Read Input Registers),
//!   both on the same image;
//! - any other function code: exception IllegalFunction (0x01);
//! - a quantity of 0 or more than 125 registers: exception IllegalDataValue
//!   (0x03);
//! - a range that is not entirely inside the map: exception
//!   IllegalDataAddress (0x02);
//! - a unit id other than the configured one: exception
//!   GatewayTargetDevice (0x0B), so a misconfigured poller gets a clear,
//!   immediate answer instead of a timeout.
//!
//! The image of each device is recomputed every `update_interval`, and
//! additionally on the next read or [`Fleet::snapshot`] after the clock was
//! changed with [`SimClock::set`] / [`SimClock::advance`]. Images are
//! swapped whole behind a `std::sync::RwLock` (never held across an
//! `.await`), so a read always sees one consistent image.
//!
//! Faults ([`fault`]) are injected per device or for the whole fleet with
//! [`Fleet::set_fault`] and [`Fleet::go_away_for`], at any time. Inverter
//! faults (the physics of [`crate::solar::faults`], each with its own start
//! and end on the simulation clock) with [`Fleet::set_inverter_faults`].
//!
//! Shutdown closes the listeners *and* every open connection: each
//! device's server runs inside tokio-modbus `serve_until`, whose connection
//! tasks are cancelled when the serving future is dropped; the same
//! mechanism closes connections when a device "goes away".
//!
//! [`rtu`] serves one inverter over a serial line (Modbus RTU).

pub mod cli;
mod clock;
pub mod fault;
pub mod rtu;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_modbus::prelude::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_modbus::server::Service;
use tokio_modbus::server::tcp::Server;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use self::clock::SimClock;
pub use self::fault::{Fault, FaultParseError, FaultPlan};
use self::fault::{FaultyStream, REPLY_DROP, REPLY_GARBAGE};
use crate::SimError;
use crate::bess::bms::BmsDevice;
use crate::bess::faults::BessFault;
use crate::device::SimulatedInverter;
use crate::solar::SiteModel;
use crate::solar::faults::PvFault;
use crate::sunspec::{ReadError, RegisterImage};

/// Maximum registers per read request (Modbus application protocol).
pub const MAX_READ_QUANTITY: u16 = 125;

/// What the devices of a fleet are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceKind {
    /// SunSpec inverters ([`crate::sunspec`]).
    #[default]
    Inverter,
    /// BESS racks, each the rack of seed `seed + index`
    /// ([`crate::bess::bms::BmsDevice`]).
    BessRack,
}

/// The simulation behind one served device.
#[derive(Debug)]
enum DeviceSim {
    Inverter(Box<SimulatedInverter>),
    Bess(Box<BmsDevice>),
}

impl DeviceSim {
    fn image_at(&mut self, unix_ms: i64) -> RegisterImage {
        match self {
            DeviceSim::Inverter(s) => s.image_at(unix_ms),
            DeviceSim::Bess(b) => b.image_at(unix_ms),
        }
    }
}

/// Configuration of a simulated inverter fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Number of inverters (at least 1).
    pub count: usize,
    /// Address to listen on.
    pub bind: IpAddr,
    /// Port of inverter 0; inverter `i` listens on `base_port + i`.
    /// 0 = an ephemeral port per inverter.
    pub base_port: u16,
    /// Modbus unit id the inverters answer to.
    pub unit_id: u8,
    /// Fleet seed: individual variation of the inverters.
    /// (The weather comes from `site.seed`.)
    pub seed: u64,
    /// The site (location, weather).
    pub site: SiteModel,
    /// AC rating of each inverter (W).
    pub rated_ac_w: f64,
    /// Simulation clock.
    pub clock: SimClock,
    /// How often the register images are recomputed.
    pub update_interval: Duration,
    /// Inverters (default) or BESS racks; for racks, `site` and
    /// `rated_ac_w` do not apply.
    pub device: DeviceKind,
}

impl Default for FleetConfig {
    /// One 100 kW inverter at Bhadla on 127.0.0.1, ephemeral port, unit 1,
    /// seed 0, real time, 1 s updates.
    fn default() -> Self {
        Self {
            count: 1,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            base_port: 0,
            unit_id: 1,
            seed: 0,
            site: SiteModel::default(),
            rated_ac_w: 100_000.0,
            clock: SimClock::realtime(),
            update_interval: Duration::from_secs(1),
            device: DeviceKind::Inverter,
        }
    }
}

/// One served device: the simulation and its current image.
#[derive(Debug)]
struct Device {
    sim: Mutex<DeviceSim>,
    image: RwLock<Arc<RegisterImage>>,
    /// Clock generation the current image was computed for.
    image_generation: AtomicU64,
    clock: SimClock,
    /// Read requests answered with data, for loss accounting in tests.
    reads: AtomicU64,
    /// The injected fault, switchable at run time.
    faults: watch::Sender<FaultPlan>,
}

impl Device {
    fn new(mut sim: DeviceSim, clock: SimClock) -> Self {
        let (generation, now) = clock.read();
        let image = sim.image_at(now);
        Self {
            sim: Mutex::new(sim),
            image: RwLock::new(Arc::new(image)),
            image_generation: AtomicU64::new(generation),
            clock,
            reads: AtomicU64::new(0),
            faults: watch::Sender::new(FaultPlan::default()),
        }
    }

    /// Recomputes the image for the current clock time.
    fn refresh(&self) {
        // Holding the simulation lock while publishing keeps concurrent
        // refreshes (ticker vs. on-demand) ordered.
        let mut sim = self.sim.lock().unwrap_or_else(PoisonError::into_inner);
        let (generation, now) = self.clock.read();
        let image = Arc::new(sim.image_at(now));
        *self.image.write().unwrap_or_else(PoisonError::into_inner) = image;
        self.image_generation.store(generation, Ordering::SeqCst);
    }

    /// The current image, recomputed first if the clock was set since.
    fn current(&self) -> Arc<RegisterImage> {
        if self.clock.generation() != self.image_generation.load(Ordering::SeqCst) {
            self.refresh();
        }
        Arc::clone(&self.image.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The tokio-modbus service of one device, one instance per connection.
#[derive(Debug, Clone)]
struct InverterService {
    device: Arc<Device>,
    unit_id: u8,
    /// Shared with the connection's [`FaultyStream`]: how to write the
    /// next reply.
    next_reply: Arc<AtomicU8>,
    /// On a serial line: no reply to other unit ids (it is a shared bus)
    /// and "no reply" for the faults that close a TCP connection.
    serial: bool,
}

impl InverterService {
    fn read(&self, addr: u16, count: u16) -> Result<Vec<u16>, ExceptionCode> {
        if count == 0 || count > MAX_READ_QUANTITY {
            return Err(ExceptionCode::IllegalDataValue);
        }
        let words = self
            .device
            .current()
            .read(addr, count)
            .map_err(|ReadError::OutOfRange { .. }| ExceptionCode::IllegalDataAddress)?;
        self.device.reads.fetch_add(1, Ordering::Relaxed);
        Ok(words)
    }

    fn handle(&self, req: SlaveRequest<'static>) -> Result<Response, ExceptionCode> {
        if req.slave != self.unit_id {
            return Err(ExceptionCode::GatewayTargetDevice);
        }
        match req.request {
            Request::ReadHoldingRegisters(addr, count) => {
                self.read(addr, count).map(Response::ReadHoldingRegisters)
            }
            Request::ReadInputRegisters(addr, count) => {
                self.read(addr, count).map(Response::ReadInputRegisters)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

impl Service for InverterService {
    type Request = SlaveRequest<'static>;
    /// `None` = no reply at all (used on serial lines, which cannot be
    /// "closed", for `Drop`, `Garbage` and `Gone`).
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Option<Response>, ExceptionCode>> + Send>,
    >;

    fn call(&self, req: Self::Request) -> Self::Future {
        let plan = *self.device.faults.borrow();
        let fault = if plan.strikes() {
            plan.fault
        } else {
            Fault::None
        };
        let this = self.clone();
        Box::pin(async move {
            if this.serial {
                if req.slave != this.unit_id {
                    return Ok(None);
                }
                if matches!(fault, Fault::Drop | Fault::Garbage | Fault::Gone) {
                    return Ok(None);
                }
            }
            match fault {
                Fault::None => this.handle(req).map(Some),
                Fault::Slow(delay) => {
                    tokio::time::sleep(delay).await;
                    this.handle(req).map(Some)
                }
                Fault::Exception(code) => Err(code),
                Fault::Drop | Fault::Gone => {
                    this.next_reply.store(REPLY_DROP, Ordering::SeqCst);
                    Ok(Some(dummy_reply(&req)))
                }
                Fault::Garbage => {
                    this.next_reply.store(REPLY_GARBAGE, Ordering::SeqCst);
                    Ok(Some(dummy_reply(&req)))
                }
            }
        })
    }
}

/// A reply of the right shape whose bytes the faulty stream replaces (or
/// never sends), so garbage has the length of a real reply.
fn dummy_reply(req: &SlaveRequest<'static>) -> Response {
    match req.request {
        Request::ReadInputRegisters(_, n) => {
            Response::ReadInputRegisters(vec![0; usize::from(n.min(MAX_READ_QUANTITY))])
        }
        Request::ReadHoldingRegisters(_, n) => {
            Response::ReadHoldingRegisters(vec![0; usize::from(n.min(MAX_READ_QUANTITY))])
        }
        _ => Response::ReadHoldingRegisters(vec![0]),
    }
}

fn targets(devices: &[Arc<Device>], device: Option<usize>) -> Result<&[Arc<Device>], SimError> {
    match device {
        None => Ok(devices),
        Some(i) => devices
            .get(i..=i)
            .ok_or_else(|| SimError::InvalidConfig(format!("no device {i} in the fleet"))),
    }
}

/// Switches the faults of a fleet's devices; see [`Fleet::set_fault`].
#[derive(Debug, Clone)]
pub struct FaultSwitch {
    devices: Vec<Arc<Device>>,
}

impl FaultSwitch {
    /// See [`Fleet::set_fault`].
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] if there is no such device or the
    /// probability is not within 0..=1.
    pub fn set_fault(&self, device: Option<usize>, plan: FaultPlan) -> Result<(), SimError> {
        if !(0.0..=1.0).contains(&plan.probability) {
            return Err(SimError::InvalidConfig(format!(
                "fault probability must be within 0..=1, got {}",
                plan.probability
            )));
        }
        for d in targets(&self.devices, device)? {
            d.faults.send_replace(plan);
        }
        Ok(())
    }
}

/// A running fleet of simulated inverters.
#[derive(Debug)]
pub struct Fleet {
    devices: Vec<Arc<Device>>,
    addrs: Vec<SocketAddr>,
    clock: SimClock,
    unit_id: u8,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Fleet {
    /// Where each inverter listens, by device index.
    #[must_use]
    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Number of inverters.
    #[must_use]
    pub fn len(&self) -> usize {
        self.devices.len()
    }

    /// True if the fleet has no inverters (never, for a started fleet).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// The unit id the inverters answer to.
    #[must_use]
    pub fn unit_id(&self) -> u8 {
        self.unit_id
    }

    /// Read requests device `device` has answered with data (0 for no such
    /// device): the ground truth of how often a poller read it.
    #[must_use]
    pub fn reads_served(&self, device: usize) -> u64 {
        self.devices
            .get(device)
            .map_or(0, |d| d.reads.load(Ordering::Relaxed))
    }

    /// The registers device `device` currently serves, `None` if there is
    /// no such device.
    #[must_use]
    pub fn try_snapshot(&self, device: usize) -> Option<RegisterImage> {
        self.devices
            .get(device)
            .map(|d| RegisterImage::clone(&d.current()))
    }

    /// The registers device `device` currently serves.
    ///
    /// # Panics
    /// If `device >= self.len()` (a programming error, never network input);
    /// use [`Self::try_snapshot`] to avoid that.
    #[must_use]
    pub fn snapshot(&self, device: usize) -> RegisterImage {
        RegisterImage::clone(&self.devices[device].current())
    }

    /// The fleet's simulation clock.
    #[must_use]
    pub fn clock(&self) -> &SimClock {
        &self.clock
    }

    fn targets(&self, device: Option<usize>) -> Result<&[Arc<Device>], SimError> {
        targets(&self.devices, device)
    }

    /// Injects `plan` into device `device`, or into every device for
    /// `None`; `FaultPlan::default()` clears it. Takes effect with the next
    /// request (`Gone`: at once).
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] if there is no such device or the
    /// probability is not within 0..=1.
    pub fn set_fault(&self, device: Option<usize>, plan: FaultPlan) -> Result<(), SimError> {
        self.fault_switch().set_fault(device, plan)
    }

    /// A cheap handle that switches this fleet's faults from another task.
    #[must_use]
    pub fn fault_switch(&self) -> FaultSwitch {
        FaultSwitch {
            devices: self.devices.clone(),
        }
    }

    /// Sets the inverter faults (physics: [`crate::solar::faults`]) of
    /// device `device`, or of every device for `None`, replacing earlier
    /// ones; an empty list clears them. The image is recomputed at once.
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] if there is no such device.
    pub fn set_inverter_faults(
        &self,
        device: Option<usize>,
        faults: &[PvFault],
    ) -> Result<(), SimError> {
        for d in self.targets(device)? {
            match &mut *d.sim.lock().unwrap_or_else(PoisonError::into_inner) {
                DeviceSim::Inverter(s) => s.faults = faults.to_vec(),
                DeviceSim::Bess(_) => {
                    return Err(SimError::InvalidConfig(
                        "inverter faults on a BESS rack".into(),
                    ));
                }
            }
            d.refresh();
        }
        Ok(())
    }

    /// Sets the rack faults (physics: [`crate::bess::faults`]) of device
    /// `device`, or of every device for `None`, replacing earlier ones; an
    /// empty list clears them. The image is recomputed at once.
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] if there is no such device or it is not
    /// a BESS rack.
    pub fn set_bess_faults(
        &self,
        device: Option<usize>,
        faults: &[BessFault],
    ) -> Result<(), SimError> {
        for d in self.targets(device)? {
            match &mut *d.sim.lock().unwrap_or_else(PoisonError::into_inner) {
                DeviceSim::Bess(b) => b.set_faults(faults.to_vec()),
                DeviceSim::Inverter(_) => {
                    return Err(SimError::InvalidConfig("rack faults on an inverter".into()));
                }
            }
            d.refresh();
        }
        Ok(())
    }

    /// Whether the fleet's devices are BESS racks.
    #[must_use]
    pub fn is_bess(&self) -> bool {
        self.devices.first().is_some_and(|d| {
            matches!(
                *d.sim.lock().unwrap_or_else(PoisonError::into_inner),
                DeviceSim::Bess(_)
            )
        })
    }

    /// The inverter faults of device `device` (`None` for a rack).
    #[must_use]
    pub fn inverter_faults(&self, device: usize) -> Option<Vec<PvFault>> {
        self.devices.get(device).and_then(|d| {
            match &*d.sim.lock().unwrap_or_else(PoisonError::into_inner) {
                DeviceSim::Inverter(s) => Some(s.faults.clone()),
                DeviceSim::Bess(_) => None,
            }
        })
    }

    /// The fault plan of device `device`.
    #[must_use]
    pub fn fault(&self, device: usize) -> Option<FaultPlan> {
        self.devices.get(device).map(|d| *d.faults.borrow())
    }

    /// Takes device `device` (or all) off the network for `duration`: the
    /// port refuses connections and open ones are closed; afterwards it
    /// listens again on the same port with no fault (unless the plan was
    /// changed meanwhile, which wins).
    ///
    /// # Errors
    /// [`SimError::InvalidConfig`] if there is no such device.
    pub fn go_away_for(&self, device: Option<usize>, duration: Duration) -> Result<(), SimError> {
        let targets: Vec<Arc<Device>> = self.targets(device)?.to_vec();
        for d in &targets {
            d.faults.send_replace(FaultPlan::always(Fault::Gone));
        }
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = tokio::time::sleep(duration) => {
                    for d in &targets {
                        d.faults.send_if_modified(|p| {
                            let gone = p.fault == Fault::Gone;
                            if gone {
                                *p = FaultPlan::default();
                            }
                            gone
                        });
                    }
                }
            }
        });
        Ok(())
    }

    /// Waits until the shutdown token is cancelled and all server and
    /// update tasks have finished.
    pub async fn wait(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

fn validate(cfg: &FleetConfig) -> Result<(), SimError> {
    if cfg.count == 0 {
        return Err(SimError::InvalidConfig("count must be at least 1".into()));
    }
    if !(cfg.rated_ac_w.is_finite() && cfg.rated_ac_w > 0.0) {
        return Err(SimError::InvalidConfig(format!(
            "rated AC power must be positive, got {} W",
            cfg.rated_ac_w
        )));
    }
    if cfg.update_interval.is_zero() {
        return Err(SimError::InvalidConfig(
            "update interval must be positive".into(),
        ));
    }
    let lat_ok = cfg.site.latitude_deg.is_finite() && cfg.site.latitude_deg.abs() <= 90.0;
    let lon_ok = cfg.site.longitude_deg.is_finite() && cfg.site.longitude_deg.abs() <= 180.0;
    if !(lat_ok && lon_ok) {
        return Err(SimError::InvalidConfig(format!(
            "invalid site location {}, {}",
            cfg.site.latitude_deg, cfg.site.longitude_deg
        )));
    }
    Ok(())
}

/// Binds one listener per inverter and starts serving until `shutdown` is
/// cancelled. All listeners are bound before anything is spawned, so on
/// error nothing keeps running.
///
/// # Errors
/// [`SimError::InvalidConfig`], [`SimError::PortOverflow`] or
/// [`SimError::Bind`].
pub async fn start_fleet(cfg: FleetConfig, shutdown: CancellationToken) -> Result<Fleet, SimError> {
    validate(&cfg)?;

    let mut listeners = Vec::with_capacity(cfg.count);
    let mut addrs = Vec::with_capacity(cfg.count);
    for index in 0..cfg.count {
        let port = if cfg.base_port == 0 {
            0
        } else {
            u16::try_from(index)
                .ok()
                .and_then(|i| cfg.base_port.checked_add(i))
                .ok_or(SimError::PortOverflow {
                    base: cfg.base_port,
                    index,
                })?
        };
        let addr = SocketAddr::new(cfg.bind, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SimError::Bind { addr, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| SimError::Bind { addr, source })?;
        listeners.push(listener);
        addrs.push(local);
    }

    let devices: Vec<Arc<Device>> = (0..cfg.count)
        .map(|index| {
            let sim = match cfg.device {
                DeviceKind::Inverter => {
                    DeviceSim::Inverter(Box::new(SimulatedInverter::fleet_member(
                        cfg.site.clone(),
                        cfg.seed,
                        index,
                        cfg.rated_ac_w,
                        cfg.unit_id,
                    )))
                }
                DeviceKind::BessRack => DeviceSim::Bess(Box::new(BmsDevice::new(
                    cfg.seed.wrapping_add(index as u64),
                ))),
            };
            Arc::new(Device::new(sim, cfg.clock.clone()))
        })
        .collect();

    let tracker = TaskTracker::new();

    for ((listener, device), addr) in listeners.into_iter().zip(&devices).zip(&addrs) {
        tracker.spawn(serve_device(
            *addr,
            listener,
            Arc::clone(device),
            cfg.unit_id,
            shutdown.clone(),
        ));
    }

    let ticker_devices = devices.clone();
    let interval = cfg.update_interval;
    let token = shutdown.clone();
    tracker.spawn(async move {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                _ = ticks.tick() => {
                    for d in &ticker_devices {
                        d.refresh();
                    }
                }
            }
        }
    });

    for (i, addr) in addrs.iter().enumerate() {
        match cfg.device {
            DeviceKind::Inverter => {
                tracing::info!(device = i, %addr, unit_id = cfg.unit_id, "SunSpec inverter simulator listening")
            }
            DeviceKind::BessRack => {
                tracing::info!(device = i, %addr, unit_id = cfg.unit_id, "BESS rack (BMS map) simulator listening")
            }
        }
    }

    Ok(Fleet {
        devices,
        addrs,
        clock: cfg.clock,
        unit_id: cfg.unit_id,
        tracker,
        shutdown,
    })
}

/// Serves one device on `addr` until `shutdown`, going off the network
/// while its fault plan is [`Fault::Gone`].
async fn serve_device(
    addr: SocketAddr,
    listener: TcpListener,
    device: Arc<Device>,
    unit_id: u8,
    shutdown: CancellationToken,
) {
    let mut listener = Some(listener);
    let mut plans = device.faults.subscribe();
    loop {
        if plans.borrow_and_update().fault == Fault::Gone {
            // Dropping the listener refuses new connections.
            listener = None;
            tracing::info!(%addr, "simulated device gone");
            tokio::select! {
                () = shutdown.cancelled() => break,
                r = plans.changed() => if r.is_err() { break },
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            // Back from "gone": the same port again (tokio sets SO_REUSEADDR).
            None => match TcpListener::bind(addr).await {
                Ok(l) => {
                    tracing::info!(%addr, "simulated device back");
                    l
                }
                Err(err) => {
                    tracing::warn!(%addr, error = %err, "cannot listen again; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                    continue;
                }
            },
        };
        // This serving cycle ends at shutdown or when the device goes away;
        // dropping the server then cancels its connection tasks too.
        let cycle = shutdown.child_token();
        let watcher = {
            let cycle = cycle.clone();
            let mut plans = device.faults.subscribe();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = cycle.cancelled() => break,
                        r = plans.changed() => {
                            if r.is_err() || plans.borrow_and_update().fault == Fault::Gone {
                                cycle.cancel();
                                break;
                            }
                        }
                    }
                }
            })
        };
        let dev = Arc::clone(&device);
        let on_connected = move |stream: TcpStream, peer: SocketAddr| {
            tracing::debug!(%addr, %peer, "Modbus client connected");
            let next_reply = Arc::new(AtomicU8::new(0));
            let service = InverterService {
                device: Arc::clone(&dev),
                unit_id,
                next_reply: Arc::clone(&next_reply),
                serial: false,
            };
            let gone = dev.faults.borrow().fault == Fault::Gone;
            async move {
                std::io::Result::Ok(if gone {
                    None
                } else {
                    Some((service, FaultyStream::new(stream, next_reply)))
                })
            }
        };
        let on_process_error = move |err: std::io::Error| {
            tracing::debug!(%addr, error = %err, "Modbus connection ended with an error");
        };
        let result = Server::new(l)
            .serve_until(
                &on_connected,
                on_process_error,
                cycle.clone().cancelled_owned(),
            )
            .await;
        cycle.cancel();
        let _ = watcher.await;
        match result {
            Ok(_) => tracing::debug!(%addr, "Modbus server cycle ended"),
            Err(err) => {
                tracing::error!(%addr, error = %err, "Modbus server failed");
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
        if shutdown.is_cancelled() {
            break;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::sunspec::{
        BASE_ADDRESS, MODEL103_ADDRESS, MODEL103_LENGTH, SUNS_MARKER, expected_value,
        inverter_points,
    };
    use tokio_modbus::client::{Reader, tcp::connect_slave};
    use tokio_modbus::prelude::Slave;

    /// 2026-06-21T00:00:00Z.
    const JUNE21: i64 = 1_782_000_000_000;
    const NIGHT: i64 = JUNE21 + 19 * 3_600_000;
    const NOON: i64 = JUNE21 + 7 * 3_600_000 + 14 * 60_000;

    async fn fleet_of_two(clock: SimClock, shutdown: &CancellationToken) -> Fleet {
        let cfg = FleetConfig {
            count: 2,
            seed: 42,
            site: SiteModel::bhadla(42),
            clock,
            update_interval: Duration::from_millis(50),
            ..FleetConfig::default()
        };
        start_fleet(cfg, shutdown.clone()).await.unwrap()
    }

    #[tokio::test]
    async fn serves_snapshot_over_modbus_and_follows_the_clock() {
        let shutdown = CancellationToken::new();
        let clock = SimClock::frozen(NIGHT);
        let fleet = fleet_of_two(clock.clone(), &shutdown).await;
        let addrs = fleet.addrs();
        assert_eq!(addrs.len(), 2);
        assert_ne!(addrs[0].port(), addrs[1].port());
        assert_ne!(fleet.snapshot(0), fleet.snapshot(1));

        let body = MODEL103_ADDRESS;
        let len = MODEL103_LENGTH + 2;
        for (i, addr) in addrs.iter().enumerate() {
            let mut ctx = connect_slave(*addr, Slave(1)).await.unwrap();
            let marker = ctx
                .read_holding_registers(BASE_ADDRESS, 2)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(marker, SUNS_MARKER.to_vec());
            let snap = fleet.snapshot(i);
            let block = ctx
                .read_holding_registers(body, len)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(block, snap.read(body, len).unwrap());
            let input = ctx.read_input_registers(body, len).await.unwrap().unwrap();
            assert_eq!(input, block);
            let whole = ctx
                .read_holding_registers(BASE_ADDRESS, 124)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(whole, snap.registers());

            // Out of range: an exception, and the connection stays usable.
            let err = ctx.read_holding_registers(40_120, 10).await.unwrap();
            assert_eq!(err, Err(ExceptionCode::IllegalDataAddress));
            let err = ctx.read_holding_registers(0, 1).await.unwrap();
            assert_eq!(err, Err(ExceptionCode::IllegalDataAddress));
            let err = ctx.read_holding_registers(BASE_ADDRESS, 126).await.unwrap();
            assert_eq!(err, Err(ExceptionCode::IllegalDataValue));
            let err = ctx.read_coils(0, 1).await.unwrap();
            assert_eq!(err, Err(ExceptionCode::IllegalFunction));
            let again = ctx
                .read_holding_registers(BASE_ADDRESS, 2)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(again, SUNS_MARKER.to_vec());

            // Another unit id is refused with an exception.
            let mut other = connect_slave(*addr, Slave(7)).await.unwrap();
            let err = other.read_holding_registers(BASE_ADDRESS, 2).await.unwrap();
            assert_eq!(err, Err(ExceptionCode::GatewayTargetDevice));
        }

        let power = inverter_points()
            .into_iter()
            .find(|p| p.name == "ac_power")
            .unwrap();
        let night = fleet.snapshot(0);
        assert_eq!(expected_value(&night, &power), Some(0.0));

        // Setting the frozen clock is visible immediately, in the snapshot
        // and over the wire.
        fleet.clock().set(NOON).unwrap();
        let noon = fleet.snapshot(0);
        assert_ne!(noon, night);
        let w = expected_value(&noon, &power).unwrap();
        assert!(w > 10_000.0, "{w}");
        let mut ctx = connect_slave(addrs[0], Slave(1)).await.unwrap();
        let block = ctx
            .read_holding_registers(body, len)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(block, noon.read(body, len).unwrap());

        // The periodic update does not change anything while frozen.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(fleet.snapshot(0), noon);

        shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(5), fleet.wait())
            .await
            .unwrap();
        // The listeners are closed after shutdown.
        assert!(connect_slave(addrs[0], Slave(1)).await.is_err());
    }

    /// Inverter faults change what the registers say, on the chosen device
    /// only, from their start on the fleet's clock.
    #[tokio::test]
    async fn inverter_faults_show_in_the_registers_of_their_device() {
        use crate::solar::faults::{EVT_GROUND_FAULT, PvFaultKind};
        let points = inverter_points();
        let get = |img: &RegisterImage, name: &str| {
            let p = points.iter().find(|p| p.name == name).unwrap();
            expected_value(img, p).unwrap()
        };
        let shutdown = CancellationToken::new();
        // Mid-morning: below clipping, so a lost string shows in full.
        let morning = JUNE21 + 3 * 3_600_000;
        let clock = SimClock::frozen(morning);
        let faulty = fleet_of_two(clock.clone(), &shutdown).await;
        let healthy = fleet_of_two(SimClock::frozen(morning), &shutdown).await;
        let outage = PvFault::parse("string_outage@60", morning).unwrap();
        faulty.set_inverter_faults(Some(0), &[outage]).unwrap();
        assert_eq!(faulty.snapshot(0), healthy.snapshot(0), "before its start");
        for f in [&faulty, &healthy] {
            f.clock().set(morning + 61_000).unwrap();
        }
        let (a, b) = (faulty.snapshot(0), healthy.snapshot(0));
        let ratio = get(&a, "dc_current") / get(&b, "dc_current");
        assert!((ratio - 11.0 / 12.0).abs() < 0.01, "{ratio}");
        assert_eq!(get(&a, "dc_voltage"), get(&b, "dc_voltage"));
        assert!(get(&a, "ac_power") < get(&b, "ac_power"));
        // The other inverter is untouched.
        assert_eq!(faulty.snapshot(1), healthy.snapshot(1));
        assert!(faulty.set_inverter_faults(Some(2), &[outage]).is_err());

        // An insulation fault trips the inverter at night, in the first
        // quarter of an hour: St = Fault (7), Evt1 ground fault.
        let insulation = PvFault {
            kind: PvFaultKind::InsulationFault,
            start_ms: JUNE21,
            end_ms: None,
        };
        faulty.set_inverter_faults(None, &[insulation]).unwrap();
        assert_eq!(faulty.inverter_faults(1), Some(vec![insulation]));
        clock.set(JUNE21 + 20 * 3_600_000 + 5 * 60_000).unwrap();
        let night = faulty.snapshot(1);
        assert_eq!(get(&night, "operating_state"), 7.0);
        assert_eq!(get(&night, "event_flags") as u32 & EVT_GROUND_FAULT, 1);
        clock.set(JUNE21 + 20 * 3_600_000 + 20 * 60_000).unwrap();
        assert_eq!(get(&faulty.snapshot(1), "event_flags"), 0.0);
        shutdown.cancel();
        faulty.wait().await;
        healthy.wait().await;
    }

    #[tokio::test]
    async fn same_seed_fleets_serve_identical_images() {
        let shutdown = CancellationToken::new();
        let a = fleet_of_two(SimClock::frozen(NOON), &shutdown).await;
        let b = fleet_of_two(SimClock::frozen(NOON), &shutdown).await;
        assert_eq!(a.snapshot(0), b.snapshot(0));
        assert_eq!(a.snapshot(1), b.snapshot(1));
        assert!(a.try_snapshot(2).is_none());
        shutdown.cancel();
        a.wait().await;
        b.wait().await;
    }

    #[tokio::test]
    async fn invalid_config_and_port_clash_are_errors() {
        let shutdown = CancellationToken::new();
        let bad = FleetConfig {
            count: 0,
            ..FleetConfig::default()
        };
        assert!(matches!(
            start_fleet(bad, shutdown.clone()).await,
            Err(SimError::InvalidConfig(_))
        ));
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = taken.local_addr().unwrap().port();
        let clash = FleetConfig {
            base_port: port,
            ..FleetConfig::default()
        };
        assert!(matches!(
            start_fleet(clash, shutdown.clone()).await,
            Err(SimError::Bind { .. })
        ));
        let overflow = FleetConfig {
            count: 3,
            base_port: u16::MAX - 1,
            ..FleetConfig::default()
        };
        assert!(matches!(
            start_fleet(overflow, shutdown).await,
            Err(SimError::PortOverflow { .. } | SimError::Bind { .. })
        ));
    }
}

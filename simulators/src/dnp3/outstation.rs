//! The meter served as a DNP3 outstation over TCP (Step Function I/O
//! `dnp3` crate), with the fault injection a test needs through the
//! outstation's own API: drop the master's connection, or go away (the
//! listener closed, the port refusing) and come back on the same port as
//! after a reboot (restart IIN set, clock unsynchronised, energy
//! registers kept).

use super::meter::{MeterModel, MeterState, POINTS, PointKind, ai, bi, ctr};
use crate::SimError;
use crate::modbus::SimClock;
use dnp3::app::control::CommandStatus;
use dnp3::app::measurement::{AnalogInput, BinaryInput, Counter, Flags, Time};
use dnp3::app::{Listener, MaybeAsync, Timestamp};
use dnp3::decode::DecodeLevel;
use dnp3::link::{EndpointAddress, LinkErrorMode};
use dnp3::outstation::database::{
    Add, AnalogInputConfig, BinaryInputConfig, CounterConfig, Database, DatabaseHandle,
    EventAnalogInputVariation, EventBinaryInputVariation, EventBufferConfig, EventClass,
    EventCounterVariation, EventMode, StaticAnalogInputVariation, StaticBinaryInputVariation,
    StaticCounterVariation, Update, UpdateOptions,
};
use dnp3::outstation::{
    ApplicationIin, ConnectionState, DefaultControlHandler, Feature, OutstationApplication,
    OutstationConfig, OutstationHandle, OutstationInformation, RequestError,
};
use dnp3::tcp::{AddressFilter, Server, ServerHandle};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One simulated meter outstation.
#[derive(Debug, Clone)]
pub struct MeterServerConfig {
    pub bind: IpAddr,
    /// 0 = an ephemeral port (then [`RunningMeter::addr`] says which; a
    /// restart keeps it).
    pub port: u16,
    pub outstation_address: u16,
    pub master_address: u16,
    pub model: MeterModel,
    pub clock: SimClock,
    /// How often the measurements are recomputed from the model (changes
    /// beyond each point's deadband become events). `None`: values change
    /// only through the `set_*` methods (tests that want exact values).
    pub update_interval: Option<Duration>,
    /// Whether the outstation supports unsolicited responses.
    pub unsolicited: bool,
    /// Refuse time writes (PARAMETER_ERROR in IIN2): an exception response
    /// to the master's time synchronisation.
    pub reject_time_sync: bool,
}

impl Default for MeterServerConfig {
    fn default() -> Self {
        MeterServerConfig {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 20000,
            outstation_address: 1024,
            master_address: 1,
            model: MeterModel::default(),
            clock: SimClock::realtime(),
            update_interval: Some(Duration::from_millis(1000)),
            unsolicited: true,
            reject_time_sync: false,
        }
    }
}

/// What survives restarts and what a test can observe.
#[derive(Debug, Default)]
struct Shared {
    state: Mutex<MeterState>,
    need_time: AtomicBool,
    reject_time_sync: AtomicBool,
    time_syncs: AtomicU64,
    last_time_written_ms: AtomicI64,
    connections: AtomicU64,
    connected: AtomicBool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, MeterState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A meter outstation running in the background.
#[derive(Debug)]
pub struct RunningMeter {
    cfg: MeterServerConfig,
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// `None` while gone.
    live: Option<Live>,
    shutdown: CancellationToken,
}

#[derive(Debug)]
struct Live {
    /// Dropping it stops the server and its outstation.
    _server: ServerHandle,
    outstation: OutstationHandle,
    stop_updates: CancellationToken,
}

fn now_real_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn stamp(ms: i64) -> Time {
    Time::synchronized(u64::try_from(ms).unwrap_or(0))
}

fn online() -> Flags {
    Flags::new(Flags::ONLINE.value)
}

/// The analog deadbands on the wire (raw units): small enough that the
/// model's swings make events, large enough not to flood the buffer.
fn analog_deadband(index: u16) -> f64 {
    match index {
        ai::VOLTAGE_A | ai::VOLTAGE_B | ai::VOLTAGE_C => 20.0,
        ai::CURRENT_A | ai::CURRENT_B | ai::CURRENT_C => 2.0,
        ai::ACTIVE_POWER | ai::REACTIVE_POWER => 50.0,
        ai::FREQUENCY => 1.0,
        _ => 5.0,
    }
}

fn class(c: u8) -> EventClass {
    match c {
        1 => EventClass::Class1,
        2 => EventClass::Class2,
        _ => EventClass::Class3,
    }
}

/// Adds every point of the map with its value at `ms`.
fn build_database(db: &mut Database, model: &MeterModel, state: &MeterState, ms: i64) {
    let reading = model.observe(ms);
    let t = stamp(now_real_ms());
    for p in POINTS {
        let c = Some(class(p.class));
        match p.kind {
            PointKind::Analog => {
                db.add(
                    p.index,
                    c,
                    AnalogInputConfig {
                        s_var: StaticAnalogInputVariation::Group30Var6,
                        e_var: EventAnalogInputVariation::Group32Var8,
                        deadband: analog_deadband(p.index),
                    },
                );
                let v = reading.raw_analog(p.index).unwrap_or(0.0);
                db.update(
                    p.index,
                    &AnalogInput::new(v, online(), t),
                    UpdateOptions::no_event(),
                );
            }
            PointKind::Binary => {
                db.add(
                    p.index,
                    c,
                    BinaryInputConfig {
                        s_var: StaticBinaryInputVariation::Group1Var2,
                        e_var: EventBinaryInputVariation::Group2Var2,
                    },
                );
                let v = match p.index {
                    bi::BREAKER_CLOSED => state.breaker_closed,
                    bi::RECLOSER_LOCKOUT => state.recloser_lockout,
                    _ => state.protection_trip,
                };
                db.update(
                    p.index,
                    &BinaryInput::new(v, online(), t),
                    UpdateOptions::no_event(),
                );
            }
            PointKind::Counter => {
                db.add(
                    p.index,
                    c,
                    CounterConfig {
                        s_var: StaticCounterVariation::Group20Var1,
                        e_var: EventCounterVariation::Group22Var5,
                        deadband: 0,
                    },
                );
                let v = if p.index == ctr::IMPORT_KWH {
                    state.import_kwh()
                } else {
                    state.export_kwh()
                };
                db.update(
                    p.index,
                    &Counter::new(v, online(), t),
                    UpdateOptions::no_event(),
                );
            }
        }
    }
}

struct App(Arc<Shared>);

impl OutstationApplication for App {
    fn write_absolute_time(&mut self, time: Timestamp) -> Result<(), RequestError> {
        if self.0.reject_time_sync.load(Ordering::Relaxed) {
            return Err(RequestError::ParameterError);
        }
        let ms = i64::try_from(time.raw_value()).unwrap_or(i64::MAX);
        self.0.last_time_written_ms.store(ms, Ordering::Relaxed);
        self.0.time_syncs.fetch_add(1, Ordering::Relaxed);
        self.0.need_time.store(false, Ordering::Relaxed);
        Ok(())
    }

    fn get_application_iin(&self) -> ApplicationIin {
        ApplicationIin {
            need_time: self.0.need_time.load(Ordering::Relaxed),
            ..ApplicationIin::default()
        }
    }
}

struct Info;

impl OutstationInformation for Info {}

struct Connections(Arc<Shared>);

impl Listener<ConnectionState> for Connections {
    fn update(&mut self, value: ConnectionState) -> MaybeAsync<()> {
        let up = value == ConnectionState::Connected;
        if up {
            self.0.connections.fetch_add(1, Ordering::Relaxed);
        }
        self.0.connected.store(up, Ordering::Relaxed);
        MaybeAsync::ready(())
    }
}

impl RunningMeter {
    /// Binds the port and starts serving; the meter stops with `shutdown`
    /// (or when dropped).
    pub async fn start(
        cfg: MeterServerConfig,
        shutdown: &CancellationToken,
    ) -> Result<RunningMeter, SimError> {
        let shared = Arc::new(Shared::default());
        shared
            .reject_time_sync
            .store(cfg.reject_time_sync, Ordering::Relaxed);
        let mut meter = RunningMeter {
            addr: SocketAddr::new(cfg.bind, cfg.port),
            cfg,
            shared,
            live: None,
            shutdown: shutdown.child_token(),
        };
        meter.serve().await?;
        Ok(meter)
    }

    async fn serve(&mut self) -> Result<(), SimError> {
        let outstation_address = EndpointAddress::try_new(self.cfg.outstation_address)
            .map_err(|e| SimError::InvalidConfig(format!("outstation address: {e}")))?;
        let master_address = EndpointAddress::try_new(self.cfg.master_address)
            .map_err(|e| SimError::InvalidConfig(format!("master address: {e}")))?;
        let mut ocfg = OutstationConfig::new(
            outstation_address,
            master_address,
            EventBufferConfig::new(100, 0, 0, 100, 0, 1000, 0, 0),
        );
        ocfg.decode_level = DecodeLevel::nothing();
        ocfg.features.unsolicited = if self.cfg.unsolicited {
            Feature::Enabled
        } else {
            Feature::Disabled
        };
        // A rebooted device has lost its clock sync.
        self.shared.need_time.store(true, Ordering::Relaxed);

        // The port stays ours across a restart: if the old listener is
        // still closing, try again for a moment.
        let mut tries = 0;
        let (server, outstation) = loop {
            let mut server = Server::new_tcp_server(LinkErrorMode::Close, self.addr);
            let outstation = server
                .add_outstation(
                    ocfg,
                    Box::new(App(self.shared.clone())),
                    Box::new(Info),
                    DefaultControlHandler::with_status(CommandStatus::NotSupported),
                    Box::new(Connections(self.shared.clone())),
                    AddressFilter::Any,
                )
                .map_err(|e| SimError::InvalidConfig(format!("outstation: {e}")))?;
            match server.bind().await {
                Ok(handle) => break (handle, outstation),
                Err(e) if tries < 40 && self.addr.port() != 0 => {
                    tries += 1;
                    tracing::debug!(error = %e, "port busy; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(source) => {
                    return Err(SimError::Bind {
                        addr: self.addr,
                        source,
                    });
                }
            }
        };
        if let Some(local) = server.local_addr() {
            self.addr = local;
        }
        let model = self.cfg.model.clone();
        let clock = self.cfg.clock.clone();
        let state = *self.shared.state();
        outstation.transaction(|db| build_database(db, &model, &state, clock.now_ms()));

        let stop_updates = self.shutdown.child_token();
        if let Some(every) = self.cfg.update_interval {
            tokio::spawn(update_loop(
                outstation.get_database_handle(),
                self.shared.clone(),
                model,
                clock,
                every,
                stop_updates.clone(),
            ));
        }
        self.live = Some(Live {
            _server: server,
            outstation,
            stop_updates,
        });
        Ok(())
    }

    /// Where the outstation listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many time writes the outstation accepted.
    pub fn time_syncs(&self) -> u64 {
        self.shared.time_syncs.load(Ordering::Relaxed)
    }

    /// The last time a master wrote (Unix ms).
    pub fn last_time_written_ms(&self) -> Option<i64> {
        (self.time_syncs() > 0).then(|| self.shared.last_time_written_ms.load(Ordering::Relaxed))
    }

    /// Whether the outstation still asks for the time (IIN1.4).
    pub fn needs_time(&self) -> bool {
        self.shared.need_time.load(Ordering::Relaxed)
    }

    /// How many master connections were accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// A master is connected now.
    pub fn is_connected(&self) -> bool {
        self.shared.connected.load(Ordering::Relaxed)
    }

    /// Switchgear and energy registers now.
    pub fn state(&self) -> MeterState {
        *self.shared.state()
    }

    /// Fault: close the master's connection (the outstation disables and
    /// enables its communications; the listener stays).
    pub async fn drop_connection(&mut self) {
        if let Some(live) = &mut self.live {
            let _ = live.outstation.disable().await;
            let _ = live.outstation.enable().await;
        }
    }

    /// Fault: the device goes away: connection closed, nothing listens on
    /// the port until [`Self::come_back`].
    pub async fn go_away(&mut self) {
        if let Some(live) = self.live.take() {
            live.stop_updates.cancel();
            let mut o = live.outstation;
            let _ = o.disable().await;
            drop(o);
            drop(live._server);
        }
        self.shared.connected.store(false, Ordering::Relaxed);
    }

    /// The device is back on the same port, as after a reboot.
    pub async fn come_back(&mut self) -> Result<(), SimError> {
        if self.live.is_none() {
            self.serve().await?;
        }
        Ok(())
    }

    pub fn is_gone(&self) -> bool {
        self.live.is_none()
    }

    /// Sets analog input `index` to `raw` (on-the-wire units) with
    /// `flags`, stamped now, always as an event. Returns the stamp (Unix
    /// ms), or `None` while gone.
    pub fn set_analog(&self, index: u16, raw: f64, flags: u8) -> Option<i64> {
        let live = self.live.as_ref()?;
        let ms = now_real_ms();
        let ok = live.outstation.transaction(|db| {
            db.update(
                index,
                &AnalogInput::new(raw, Flags::new(flags), stamp(ms)),
                UpdateOptions::new(true, EventMode::Force),
            )
        });
        ok.then_some(ms)
    }

    /// Sets binary input `index`, like [`Self::set_analog`]. The breaker,
    /// lockout and trip states are kept across restarts.
    pub fn set_binary(&self, index: u16, value: bool, flags: u8) -> Option<i64> {
        let live = self.live.as_ref()?;
        {
            let mut s = self.shared.state();
            match index {
                bi::BREAKER_CLOSED => s.breaker_closed = value,
                bi::RECLOSER_LOCKOUT => s.recloser_lockout = value,
                bi::PROTECTION_TRIP => s.protection_trip = value,
                _ => {}
            }
        }
        let ms = now_real_ms();
        let ok = live.outstation.transaction(|db| {
            db.update(
                index,
                &BinaryInput::new(value, Flags::new(flags), stamp(ms)),
                UpdateOptions::new(true, EventMode::Force),
            )
        });
        ok.then_some(ms)
    }

    /// Sets counter `index` (kWh), like [`Self::set_analog`].
    pub fn set_counter(&self, index: u16, value: u32, flags: u8) -> Option<i64> {
        let live = self.live.as_ref()?;
        {
            let mut s = self.shared.state();
            let wh = f64::from(value) * 1000.0;
            match index {
                ctr::IMPORT_KWH => s.import_wh = wh,
                ctr::EXPORT_KWH => s.export_wh = wh,
                _ => {}
            }
        }
        let ms = now_real_ms();
        let ok = live.outstation.transaction(|db| {
            db.update(
                index,
                &Counter::new(value, Flags::new(flags), stamp(ms)),
                UpdateOptions::new(true, EventMode::Force),
            )
        });
        ok.then_some(ms)
    }

    /// Stops serving.
    pub async fn stop(mut self) {
        self.go_away().await;
        self.shutdown.cancel();
    }
}

impl Drop for RunningMeter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Recomputes the measurements from the model and integrates the energy.
async fn update_loop(
    outstation: DatabaseHandle,
    shared: Arc<Shared>,
    model: MeterModel,
    clock: SimClock,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_ms = clock.now_ms();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let now = clock.now_ms();
        let reading = model.observe(now);
        let state = {
            let mut s = shared.state();
            s.integrate(reading.active_power_kw, now - last_ms);
            *s
        };
        last_ms = now;
        let t = stamp(now_real_ms());
        outstation.transaction(|db| {
            for p in POINTS.iter().filter(|p| p.kind == PointKind::Analog) {
                if let Some(v) = reading.raw_analog(p.index) {
                    db.update(
                        p.index,
                        &AnalogInput::new(v, online(), t),
                        UpdateOptions::detect_event(),
                    );
                }
            }
            db.update(
                ctr::IMPORT_KWH,
                &Counter::new(state.import_kwh(), online(), t),
                UpdateOptions::detect_event(),
            );
            db.update(
                ctr::EXPORT_KWH,
                &Counter::new(state.export_kwh(), online(), t),
                UpdateOptions::detect_event(),
            );
        });
    }
}

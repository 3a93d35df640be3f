//! The task per DNP3 device: one TCP master channel with one association,
//! the library's polls and unsolicited reporting, and the `comms_lost`
//! ticker while the outstation cannot be reached.

use super::config::{Dnp3Config, Dnp3PointConfig, Dnp3PointKind, Dnp3TimeSync};
use super::quality::{quality, sample_time, scaled};
use crate::config::DeviceConfig;
use crate::drivers::mqtt::LogThrottle;
use crate::drivers::{Backoff, Reading, ReadingTx, now_ms};
use crate::metrics::EdgeMetrics;
use dcmms_shared::{Quality, Sample};
use dnp3::app::measurement::{
    AnalogInput, AnalogOutputStatus, BinaryInput, BinaryOutputStatus, Counter, DoubleBit,
    DoubleBitBinaryInput, FrozenCounter, Time,
};
use dnp3::app::{
    ConnectStrategy, Listener, MaybeAsync, ResponseHeader, Sequence, Timeout, Timestamp,
};
use dnp3::decode::DecodeLevel;
use dnp3::link::{EndpointAddress, LinkErrorMode};
use dnp3::master::{
    AssociationConfig, AssociationHandle, AssociationHandler, AssociationInformation, Classes,
    EventClasses, HeaderInfo, MasterChannel, MasterChannelConfig, PollHandle, ReadHandler,
    ReadRequest, ReadType, TaskError, TaskType, TimeSyncProcedure,
};
use dnp3::tcp::{ClientState, EndpointList, spawn_master_tcp_client};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a clean disable of the channel may take at shutdown.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Consecutive unanswered requests after which the driver closes the TCP
/// connection and connects again. The library itself never drops a
/// connection for timeouts, so a device that stops answering while its
/// TCP connection stays up (half-open after a power cut, a hung
/// protocol stack) would otherwise hold the master for good.
pub const RECONNECT_AFTER_TIMEOUTS: u32 = 3;

/// Why the channel or association could not be set up (retried).
#[derive(Debug, thiserror::Error)]
enum SetupError {
    #[error("link address {0}: {1}")]
    Address(u16, String),
    #[error("response timeout: {0}")]
    Timeout(String),
    #[error("add association: {0}")]
    Association(String),
    #[error("the master channel stopped")]
    Shutdown,
}

/// What the library's callbacks and the driver task share.
struct Shared {
    index: usize,
    name: String,
    points: Vec<Dnp3PointConfig>,
    by_address: HashMap<(Dnp3PointKind, u16), usize>,
    metrics: EdgeMetrics,
    link: Mutex<Link>,
    /// Woken when the link goes from usable to not.
    went_down: Notify,
    /// Woken when the connection should be closed and opened again.
    reconnect: Notify,
}

#[derive(Debug)]
struct Link {
    /// The TCP connection is up.
    tcp_up: bool,
    /// The outstation answered since the connection came up, and the last
    /// request did not time out.
    healthy: bool,
    last_good: Vec<Option<f64>>,
    bad_response_log: LogThrottle,
    /// Requests in a row that got no response on this connection.
    timeouts_in_a_row: u32,
}

impl Shared {
    fn link(&self) -> std::sync::MutexGuard<'_, Link> {
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_connected_gauge(&self, up: bool) {
        self.metrics
            .device_gauge(&self.metrics.device_connected, &self.name, i64::from(up));
    }

    /// The outstation answered: the link is usable.
    fn answered(&self) {
        let mut l = self.link();
        l.timeouts_in_a_row = 0;
        if l.tcp_up && !l.healthy {
            l.healthy = true;
            tracing::info!("outstation answering");
        }
        let up = l.healthy;
        drop(l);
        self.set_connected_gauge(up);
        self.metrics
            .device_gauge(&self.metrics.device_last_success_ms, &self.name, now_ms());
    }

    /// The link is not usable (closed, or a request timed out).
    fn lost(&self, tcp_down: bool) {
        let mut l = self.link();
        if tcp_down {
            l.tcp_up = false;
        }
        let was = std::mem::replace(&mut l.healthy, false);
        drop(l);
        self.set_connected_gauge(false);
        if was {
            self.went_down.notify_one();
        }
    }

    fn is_healthy(&self) -> bool {
        self.link().healthy
    }

    /// One `comms_lost` sample per point: the last good value, NaN if none.
    fn comms_lost(&self, ts_ms: i64) -> Vec<(usize, Sample)> {
        self.link()
            .last_good
            .iter()
            .enumerate()
            .map(|(i, v)| {
                (
                    i,
                    Sample {
                        ts_ms,
                        value: v.unwrap_or(f64::NAN),
                        quality: Quality::CommsLost,
                    },
                )
            })
            .collect()
    }
}

/// Runs one DNP3 device until `shutdown`. Never returns early on a network
/// or outstation error: the library reconnects forever, and a failed setup
/// is retried with backoff.
pub async fn run_device(
    index: usize,
    device: DeviceConfig,
    tx: ReadingTx,
    metrics: EdgeMetrics,
    shutdown: CancellationToken,
) {
    let Some(cfg) = device.dnp3.clone() else {
        return;
    };
    let endpoint = format!("{}:{}", cfg.host, cfg.port);
    let span = tracing::info_span!("dnp3", device = %device.name, endpoint = %endpoint);
    let by_address = cfg
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| ((p.kind, p.index), i))
        .collect();
    let shared = Arc::new(Shared {
        index,
        name: device.name.clone(),
        points: cfg.points.clone(),
        by_address,
        metrics,
        link: Mutex::new(Link {
            tcp_up: false,
            healthy: false,
            last_good: vec![None; cfg.points.len()],
            bad_response_log: LogThrottle::new(Duration::from_secs(60)),
            timeouts_in_a_row: 0,
        }),
        went_down: Notify::new(),
        reconnect: Notify::new(),
    });
    run(cfg, endpoint, shared, tx, shutdown)
        .instrument(span)
        .await
}

async fn run(
    cfg: Dnp3Config,
    endpoint: String,
    shared: Arc<Shared>,
    tx: ReadingTx,
    shutdown: CancellationToken,
) {
    shared.set_connected_gauge(false);
    let mut backoff = Backoff::new(cfg.reconnect_min_ms, cfg.reconnect_max_ms);
    let mut master = loop {
        match start(&cfg, &endpoint, &shared, &tx).await {
            Ok(m) => break m,
            Err(e) => {
                shared.metrics.device_poll(&shared.name, "setup_error");
                let wait = backoff.next_delay();
                tracing::error!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot set up the DNP3 master");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    tracing::info!("master started");

    // While the link is unusable, the points go out as `comms_lost` at the
    // integrity period, so the cloud sees the outage as data.
    let period = Duration::from_millis(cfg.integrity_interval_ms);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        let emit = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = shared.went_down.notified() => {
                tick.reset();
                true
            }
            _ = shared.reconnect.notified() => {
                tracing::warn!(
                    timeouts = RECONNECT_AFTER_TIMEOUTS,
                    "outstation stopped answering; closing the connection to connect again"
                );
                if master.channel.disable().await.is_err() || master.channel.enable().await.is_err() {
                    tracing::error!("the master channel stopped");
                }
                false
            }
            _ = tick.tick() => !shared.is_healthy(),
        };
        if emit && !shared.is_healthy() {
            let samples = shared.comms_lost(now_ms());
            let n = samples.len() as u64;
            if n > 0 {
                if tx
                    .send(Reading {
                        device: shared.index,
                        samples,
                    })
                    .await
                    .is_err()
                {
                    break; // pipeline gone: shutting down
                }
                shared.metrics.samples_polled.inc_by(n);
            }
        }
    }
    if tokio::time::timeout(CLOSE_GRACE, master.channel.disable())
        .await
        .is_err()
    {
        tracing::warn!("channel did not close within {CLOSE_GRACE:?}");
    }
    master.polls.clear();
    drop(master);
    shared.set_connected_gauge(false);
    tracing::info!("stopped");
}

/// The running master: dropping it stops the channel task.
struct Master {
    channel: MasterChannel,
    _association: AssociationHandle,
    polls: Vec<PollHandle>,
}

async fn start(
    cfg: &Dnp3Config,
    endpoint: &str,
    shared: &Arc<Shared>,
    tx: &ReadingTx,
) -> Result<Master, SetupError> {
    let master_address = EndpointAddress::try_new(cfg.master_address)
        .map_err(|e| SetupError::Address(cfg.master_address, e.to_string()))?;
    let outstation_address = EndpointAddress::try_new(cfg.outstation_address)
        .map_err(|e| SetupError::Address(cfg.outstation_address, e.to_string()))?;
    let mut channel_cfg = MasterChannelConfig::new(master_address);
    channel_cfg.decode_level = DecodeLevel::nothing();
    let min = Duration::from_millis(cfg.reconnect_min_ms);
    let max = Duration::from_millis(cfg.reconnect_max_ms);
    // The library retries connecting forever: exponential from min to
    // max after a failed attempt, min after a lost connection.
    let mut channel = spawn_master_tcp_client(
        LinkErrorMode::Close,
        channel_cfg,
        EndpointList::new(endpoint.to_string(), &[]),
        ConnectStrategy::new(min, max, min),
        Box::new(StateListener(shared.clone())),
    );

    let events = EventClasses::all();
    let mut assoc_cfg = AssociationConfig::new(
        events,
        if cfg.unsolicited {
            events
        } else {
            EventClasses::none()
        },
        Classes::all(),
        EventClasses::none(),
    );
    assoc_cfg.response_timeout = Timeout::from_millis(cfg.response_timeout_ms)
        .map_err(|e| SetupError::Timeout(e.to_string()))?;
    assoc_cfg.auto_time_sync = match cfg.time_sync {
        Dnp3TimeSync::None => None,
        Dnp3TimeSync::Lan => Some(TimeSyncProcedure::Lan),
        Dnp3TimeSync::NonLan => Some(TimeSyncProcedure::NonLan),
    };
    assoc_cfg.keep_alive_timeout =
        (cfg.keep_alive_ms > 0).then(|| Duration::from_millis(cfg.keep_alive_ms));
    // An overflowed event buffer lost changes: read everything again.
    assoc_cfg.auto_integrity_scan_on_buffer_overflow = true;

    let mut association = channel
        .add_association(
            outstation_address,
            assoc_cfg,
            Box::new(Handler {
                shared: shared.clone(),
                tx: tx.clone(),
                pending: Vec::new(),
                now: 0,
            }),
            Box::new(Clock),
            Box::new(Info(shared.clone())),
        )
        .await
        .map_err(|e| SetupError::Association(e.to_string()))?;

    let mut polls = Vec::new();
    polls.push(
        association
            .add_poll(
                ReadRequest::ClassScan(Classes::all()),
                Duration::from_millis(cfg.integrity_interval_ms),
            )
            .await
            .map_err(|_| SetupError::Shutdown)?,
    );
    // One event poll per distinct period, covering the classes that share it.
    let mut by_period: Vec<(u64, [bool; 3])> = Vec::new();
    for class in 1..=3u8 {
        let ms = cfg.class_poll_ms(class);
        if ms == 0 {
            continue;
        }
        let slot = match by_period.iter_mut().find(|(p, _)| *p == ms) {
            Some(s) => s,
            None => {
                by_period.push((ms, [false; 3]));
                let last = by_period.len() - 1;
                &mut by_period[last]
            }
        };
        slot.1[usize::from(class - 1)] = true;
    }
    for (ms, [c1, c2, c3]) in by_period {
        polls.push(
            association
                .add_poll(
                    ReadRequest::ClassScan(Classes::new(false, EventClasses::new(c1, c2, c3))),
                    Duration::from_millis(ms),
                )
                .await
                .map_err(|_| SetupError::Shutdown)?,
        );
    }
    channel.enable().await.map_err(|_| SetupError::Shutdown)?;
    Ok(Master {
        channel,
        _association: association,
        polls,
    })
}

/// The time the master writes to the outstation: our clock.
struct Clock;

impl AssociationHandler for Clock {
    fn get_current_time(&self) -> Option<Timestamp> {
        Timestamp::try_from_system_time(std::time::SystemTime::now())
    }
}

/// Connection state changes of the TCP client.
struct StateListener(Arc<Shared>);

impl Listener<ClientState> for StateListener {
    fn update(&mut self, state: ClientState) -> MaybeAsync<()> {
        let s = &self.0;
        match state {
            ClientState::Connected => {
                tracing::info!("connected");
                let mut l = s.link();
                l.tcp_up = true;
                l.timeouts_in_a_row = 0;
            }
            ClientState::Connecting | ClientState::Disabled | ClientState::Shutdown => {
                s.lost(true);
            }
            ClientState::WaitAfterFailedConnect(d) => {
                s.metrics.device_poll(&s.name, "error");
                tracing::warn!(retry_in_ms = d.as_millis() as u64, "connect failed");
                s.lost(true);
            }
            ClientState::WaitAfterDisconnect(d) => {
                s.metrics.device_poll(&s.name, "error");
                tracing::warn!(retry_in_ms = d.as_millis() as u64, "connection lost");
                s.lost(true);
            }
        }
        MaybeAsync::ready(())
    }
}

/// Task outcomes: the per-device health in the metrics.
struct Info(Arc<Shared>);

impl AssociationInformation for Info {
    fn task_success(&mut self, task_type: TaskType, _fc: dnp3::app::FunctionCode, _seq: Sequence) {
        let s = &self.0;
        match task_type {
            TaskType::PeriodicPoll
            | TaskType::StartupIntegrity
            | TaskType::AutoEventScan
            | TaskType::UserRead => s.metrics.device_poll(&s.name, "ok"),
            TaskType::TimeSync => s.metrics.device_poll(&s.name, "time_sync"),
            _ => {}
        }
        s.answered();
    }

    fn task_fail(&mut self, task_type: TaskType, error: TaskError) {
        let s = &self.0;
        match error {
            // Not the outstation's doing: no connection yet, or stopping.
            TaskError::NoConnection | TaskError::Shutdown | TaskError::Disabled => {}
            TaskError::ResponseTimeout => {
                s.metrics.device_poll(&s.name, "error");
                tracing::warn!(?task_type, %error, "request failed");
                let in_a_row = {
                    let mut l = s.link();
                    l.timeouts_in_a_row = l.timeouts_in_a_row.saturating_add(1);
                    l.timeouts_in_a_row
                };
                s.lost(false);
                if in_a_row == RECONNECT_AFTER_TIMEOUTS {
                    s.reconnect.notify_one();
                }
            }
            TaskError::Link(_) | TaskError::Transport | TaskError::WriteError => {
                s.metrics.device_poll(&s.name, "error");
                tracing::warn!(?task_type, %error, "request failed");
                s.lost(false);
            }
            TaskError::RejectedByIin2(_) => {
                // The outstation answered, refusing the request.
                s.metrics.device_poll(&s.name, "exception");
                tracing::warn!(?task_type, %error, "outstation refused the request");
            }
            _ => {
                s.metrics.device_poll(&s.name, "bad_response");
                let allow = s.link().bad_response_log.allow(Instant::now());
                if let Some(held_back) = allow {
                    tracing::warn!(?task_type, %error, held_back, "bad response");
                }
            }
        }
    }

    fn unsolicited_response(&mut self, is_duplicate: bool, _seq: Sequence) {
        let s = &self.0;
        if !is_duplicate {
            s.metrics.device_poll(&s.name, "unsolicited");
        }
        s.answered();
    }
}

/// Turns each response fragment into one [`Reading`].
struct Handler {
    shared: Arc<Shared>,
    tx: ReadingTx,
    pending: Vec<(usize, Sample)>,
    /// Receipt time of the fragment being handled.
    now: i64,
}

impl Handler {
    fn push(&mut self, kind: Dnp3PointKind, index: u16, raw: f64, flags: u8, time: Option<Time>) {
        let Some(&i) = self.shared.by_address.get(&(kind, index)) else {
            return; // not configured
        };
        let Some(p) = self.shared.points.get(i) else {
            return;
        };
        let (device_ms, synchronized) = match time {
            Some(Time::Synchronized(t)) => (Some(t.raw_value()), true),
            Some(Time::Unsynchronized(t)) => (Some(t.raw_value()), false),
            None => (None, false),
        };
        let ts_ms = sample_time(device_ms, synchronized, self.now);
        let q = quality(kind, flags);
        let sample = match scaled(raw, p.scale, p.offset) {
            Some(value) => Sample {
                ts_ms,
                value,
                quality: q,
            },
            None => Sample {
                ts_ms,
                value: f64::NAN,
                quality: Quality::Bad,
            },
        };
        self.pending.push((i, sample));
    }
}

fn double_bit(v: DoubleBit) -> f64 {
    match v {
        DoubleBit::Intermediate => 0.0,
        DoubleBit::DeterminedOff => 1.0,
        DoubleBit::DeterminedOn => 2.0,
        DoubleBit::Indeterminate => 3.0,
    }
}

impl ReadHandler for Handler {
    fn begin_fragment(&mut self, _read_type: ReadType, header: ResponseHeader) -> MaybeAsync<()> {
        self.pending.clear();
        self.now = now_ms();
        let iin2 = header.iin.iin2;
        if iin2.get_no_func_code_support()
            || iin2.get_object_unknown()
            || iin2.get_parameter_error()
        {
            let s = &self.shared;
            s.metrics.device_poll(&s.name, "exception");
            let allow = s.link().bad_response_log.allow(Instant::now());
            if let Some(held_back) = allow {
                tracing::warn!(
                    iin2 = iin2.value,
                    held_back,
                    "outstation reports an error in IIN2"
                );
            }
        }
        MaybeAsync::ready(())
    }

    fn end_fragment(&mut self, _read_type: ReadType, _header: ResponseHeader) -> MaybeAsync<()> {
        let samples = std::mem::take(&mut self.pending);
        if samples.is_empty() {
            return MaybeAsync::ready(());
        }
        let shared = self.shared.clone();
        {
            let mut l = shared.link();
            for (i, s) in &samples {
                if s.quality == Quality::Good
                    && let Some(slot) = l.last_good.get_mut(*i)
                {
                    *slot = Some(s.value);
                }
            }
        }
        let tx = self.tx.clone();
        // Waiting here holds the library back: back-pressure rather than
        // dropping samples when the pipeline is slow.
        MaybeAsync::asynchronous(async move {
            let n = samples.len() as u64;
            if tx
                .send(Reading {
                    device: shared.index,
                    samples,
                })
                .await
                .is_ok()
            {
                shared.metrics.samples_polled.inc_by(n);
            }
        })
    }

    fn handle_binary_input(
        &mut self,
        _info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (BinaryInput, u16)>,
    ) {
        for (x, idx) in iter {
            let raw = if x.value { 1.0 } else { 0.0 };
            self.push(Dnp3PointKind::Binary, idx, raw, x.flags.value, x.time);
        }
    }

    fn handle_double_bit_binary_input(
        &mut self,
        _info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (DoubleBitBinaryInput, u16)>,
    ) {
        for (x, idx) in iter {
            let raw = double_bit(x.value);
            self.push(Dnp3PointKind::DoubleBit, idx, raw, x.flags.value, x.time);
        }
    }

    fn handle_binary_output_status(
        &mut self,
        _info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (BinaryOutputStatus, u16)>,
    ) {
        for (x, idx) in iter {
            let raw = if x.value { 1.0 } else { 0.0 };
            self.push(Dnp3PointKind::BinaryOutput, idx, raw, x.flags.value, x.time);
        }
    }

    fn handle_counter(
        &mut self,
        _info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (Counter, u16)>,
    ) {
        for (x, idx) in iter {
            self.push(
                Dnp3PointKind::Counter,
                idx,
                f64::from(x.value),
                x.flags.value,
                x.time,
            );
        }
    }

    fn handle_frozen_counter(
        &mut self,
        _info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (FrozenCounter, u16)>,
    ) {
        for (x, idx) in iter {
            self.push(
                Dnp3PointKind::FrozenCounter,
                idx,
                f64::from(x.value),
                x.flags.value,
                x.time,
            );
        }
    }

    fn handle_analog_input(
        &mut self,
        _info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (AnalogInput, u16)>,
    ) {
        for (x, idx) in iter {
            self.push(Dnp3PointKind::Analog, idx, x.value, x.flags.value, x.time);
        }
    }

    fn handle_analog_output_status(
        &mut self,
        _info: HeaderInfo,
        iter: &mut dyn Iterator<Item = (AnalogOutputStatus, u16)>,
    ) {
        for (x, idx) in iter {
            self.push(
                Dnp3PointKind::AnalogOutput,
                idx,
                x.value,
                x.flags.value,
                x.time,
            );
        }
    }
}

//! The task per OPC UA device: one async-opcua session, its event loop on a
//! task of its own, and one subscription this driver (re)creates whenever
//! the server hands out a new session.

use super::browse::discover;
use super::config::{OpcuaConfig, OpcuaPointConfig};
use super::value::{ValueProblem, sample};
use crate::config::DeviceConfig;
use crate::drivers::mqtt::LogThrottle;
use crate::drivers::{Backoff, Reading, ReadingTx, now_ms};
use crate::metrics::EdgeMetrics;
use dcmms_shared::{Quality, Sample};
use futures::StreamExt;
use opcua::client::{
    ClientBuilder, DataChangeCallback, IdentityToken, MonitoredItem, Session, SessionConnectMode,
    SessionPollResult,
};
use opcua::types::{
    DataChangeFilter, DataChangeTrigger, DataValue, DeadbandType, EndpointDescription,
    ExtensionObject, MessageSecurityMode, MonitoredItemCreateRequest, MonitoringMode,
    MonitoringParameters, NodeId, ReadValueId, StatusCode, TimestampsToReturn, UserTokenPolicy,
};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a clean CloseSession may take at shutdown.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Subscription keep-alive: publishes without data before the server sends
/// an empty one; the lifetime is three times that (the minimum allowed).
const MAX_KEEP_ALIVE_COUNT: u32 = 10;
const LIFETIME_COUNT: u32 = 3 * MAX_KEEP_ALIVE_COUNT;
/// Failed session keep-alives (reads of the server state) after which the
/// connection is given up. Without a limit (the library's default) a
/// server that vanished without closing the TCP connection (power cut,
/// cable pulled, hung controller) is never noticed: no reconnect, no
/// comms_lost, until the kernel gives up on the socket many minutes later.
const MAX_FAILED_KEEP_ALIVES: u64 = 2;
/// How long a new subscription has to report a point's current value
/// before the driver reads it (at least; see [`fill_in_delay`]).
const FILL_IN_MIN: Duration = Duration::from_secs(1);
/// Bounds of the session keep-alive interval (see [`keep_alive_interval`]).
const KEEP_ALIVE_MIN: Duration = Duration::from_secs(1);
const KEEP_ALIVE_MAX: Duration = Duration::from_secs(10);

/// Why a subscription could not be set up (retried with backoff).
#[derive(Debug, thiserror::Error)]
enum SubscribeError {
    #[error("discovery: {0}")]
    Discovery(#[from] super::browse::BrowseError),
    #[error("create subscription: {0}")]
    CreateSubscription(StatusCode),
    #[error("create monitored items: {0}")]
    CreateItems(StatusCode),
    #[error("no point could be monitored ({0} refused)")]
    AllRefused(usize),
}

/// State of one device's task.
struct Device {
    index: usize,
    name: String,
    cfg: OpcuaConfig,
    tx: ReadingTx,
    metrics: EdgeMetrics,
    /// Our subscription in the current session, if any.
    subscription: Option<u32>,
    /// Counts the subscriptions this task created; each data change
    /// carries the generation of the subscription that reported it.
    generation: u32,
    /// Per point (index): the time of its last `comms_lost` mark and the
    /// generation current when it was made, until a value follows it.
    marks: Vec<Option<Mark>>,
    /// The server's clock as its values show it, for stamping marks.
    clock: DeviceClock,
    /// Per point: the generation of the last value it received.
    seen: Vec<u32>,
    /// Per point: the last sample passed on (an exact repeat is dropped).
    last_sent: Vec<Option<Sample>>,
    /// Last value read with quality good per point (index), held in the
    /// comms_lost samples of an outage.
    last_good: Vec<Option<f64>>,
    /// The current outage has been reported with comms_lost samples; reset
    /// once a subscription is in place again.
    outage_reported: bool,
    error_log: LogThrottle,
    value_log: LogThrottle,
}

/// A data change as the library's callback hands it over: the generation
/// of the subscription that reported it, the client handle (point index
/// + 1) and the value.
type Change = (u32, u32, DataValue);

/// A `comms_lost` mark not yet followed by a value.
#[derive(Debug, Clone, Copy)]
struct Mark {
    ts_ms: i64,
    generation: u32,
}

/// The server's clock, estimated from its values: samples carry the
/// server's source timestamps, so the `comms_lost` marks between them must
/// be on the same clock, or a server whose clock is behind ours (or runs
/// simulated time) would have every value after an outage sort before the
/// mark. The estimate is the largest lead of a source timestamp over its
/// receipt among the values of the newest subscription (the freshest value
/// is the closest to the server's now; values that did not change for a
/// while only lag), and never earlier than the newest value seen.
#[derive(Debug, Default, Clone, Copy)]
struct DeviceClock {
    /// (lead in ms, generation it was measured in), once a value came.
    lead: Option<(i64, u32)>,
    /// The latest source timestamp seen.
    latest_ms: Option<i64>,
}

impl DeviceClock {
    fn observe(&mut self, source_ms: i64, received_ms: i64, generation: u32) {
        let lead = source_ms.saturating_sub(received_ms);
        self.lead = Some(match self.lead {
            Some((l, g)) if g >= generation => (l.max(lead), g),
            _ => (lead, generation),
        });
        self.latest_ms = Some(self.latest_ms.map_or(source_ms, |l| l.max(source_ms)));
    }

    /// Our `now_ms` on the server's clock.
    fn now(&self, now_ms: i64) -> i64 {
        let t = self.lead.map_or(now_ms, |(l, _)| now_ms.saturating_add(l));
        self.latest_ms.map_or(t, |l| t.max(l.saturating_add(1)))
    }
}

/// The time a sample at `source_ms`, received at `received_ms` (on the
/// server's clock), is stored under. The first value a subscription created
/// after a `comms_lost` mark reports for a point is the server's current
/// value; when its source timestamp is not later than the mark (a value
/// that has not changed since before the outage) it would sort before the
/// mark and the point would read as lost although its value is known
/// again, so it takes the time of receipt, kept after the mark. Values of
/// older subscriptions (measured before the loss, delivered late) keep
/// their own time.
fn restamp(source_ms: i64, received_ms: i64, generation: u32, mark: Option<Mark>) -> i64 {
    match mark {
        Some(m) if generation > m.generation && source_ms <= m.ts_ms => {
            received_ms.max(m.ts_ms + 1)
        }
        _ => source_ms,
    }
}

/// Runs one OPC UA device until `shutdown`. Never returns early on a
/// network or server error: the library reconnects forever and this
/// driver subscribes again whenever the session is new.
pub async fn run_device(
    index: usize,
    device: DeviceConfig,
    tx: ReadingTx,
    metrics: EdgeMetrics,
    shutdown: CancellationToken,
) {
    let Some(cfg) = device.opcua.clone() else {
        return;
    };
    let span = tracing::info_span!("opcua", device = %device.name, endpoint = %cfg.endpoint_url);
    let mut d = Device {
        index,
        name: device.name.clone(),
        cfg,
        tx,
        metrics,
        subscription: None,
        generation: 0,
        marks: Vec::new(),
        clock: DeviceClock::default(),
        seen: Vec::new(),
        last_sent: Vec::new(),
        last_good: Vec::new(),
        outage_reported: false,
        error_log: LogThrottle::new(Duration::from_secs(10)),
        value_log: LogThrottle::new(Duration::from_secs(60)),
    };
    d.run(shutdown).instrument(span).await
}

fn endpoint(cfg: &OpcuaConfig) -> EndpointDescription {
    // Security None is the only mode implemented (validated).
    (
        cfg.endpoint_url.as_str(),
        "None",
        MessageSecurityMode::None,
        UserTokenPolicy::anonymous(),
    )
        .into()
}

/// A hung server is given up after [`MAX_FAILED_KEEP_ALIVES`] keep-alives,
/// each of which can take a whole request timeout: pinging as often as a
/// request may take keeps that near two request timeouts, within bounds
/// that neither flood a slow link nor wait longer than the library would.
/// A new subscription's first notification carries every item's current
/// value. It can be lost: on a reactivated session the server may answer a
/// Publish request that was sent on the connection that just died, and
/// that response goes nowhere (seen with async-opcua's server under
/// repeated connection drops; nothing in the protocol makes a client
/// notice short of Republish bookkeeping). Points whose value does not
/// change would then never report again. So the driver waits this long
/// (three publishing intervals, at least [`FILL_IN_MIN`]) and then reads
/// the points the subscription has not reported.
fn fill_in_delay(cfg: &OpcuaConfig) -> Duration {
    Duration::from_millis(cfg.publishing_interval_ms.saturating_mul(3)).max(FILL_IN_MIN)
}

fn keep_alive_interval(cfg: &OpcuaConfig) -> Duration {
    Duration::from_millis(cfg.request_timeout_ms).clamp(KEEP_ALIVE_MIN, KEEP_ALIVE_MAX)
}

fn client_builder(cfg: &OpcuaConfig) -> ClientBuilder {
    let pki = cfg
        .pki_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("dcmms-edge-opcua-pki"));
    ClientBuilder::new()
        .application_name("dCMMS edge")
        .application_uri("urn:dcmms:edge")
        .product_uri("urn:dcmms:edge")
        .create_sample_keypair(false)
        .trust_server_certs(false)
        .pki_dir(pki)
        // Retry forever; the design brief's rule for every field link.
        .session_retry_limit(-1)
        .session_retry_initial(Duration::from_millis(cfg.reconnect_min_ms))
        .session_retry_max(Duration::from_millis(cfg.reconnect_max_ms))
        .session_timeout(u32::try_from(cfg.session_timeout_ms).unwrap_or(u32::MAX))
        .request_timeout(Duration::from_millis(cfg.request_timeout_ms))
        .keep_alive_interval(keep_alive_interval(cfg))
        .max_failed_keep_alive_count(MAX_FAILED_KEEP_ALIVES)
        // We create our subscription again ourselves on a new session, so
        // that a failure is seen, counted and retried rather than logged
        // once by the library.
        .recreate_subscriptions(false)
}

fn filter(p: &OpcuaPointConfig) -> ExtensionObject {
    let (deadband_type, deadband_value) = match (p.deadband_abs, p.deadband_pct) {
        (Some(v), _) => (DeadbandType::Absolute, v),
        (None, Some(v)) => (DeadbandType::Percent, v),
        (None, None) => return ExtensionObject::null(),
    };
    ExtensionObject::from_message(DataChangeFilter {
        trigger: DataChangeTrigger::StatusValue,
        deadband_type: deadband_type as u32,
        deadband_value,
    })
}

impl Device {
    fn connected(&self, up: bool) {
        self.metrics
            .device_gauge(&self.metrics.device_connected, &self.name, i64::from(up));
    }

    async fn run(&mut self, shutdown: CancellationToken) {
        self.connected(false);
        let mut client = match client_builder(&self.cfg).client() {
            Ok(c) => c,
            Err(errors) => {
                // Only reachable through a configuration validation missed.
                tracing::error!(
                    ?errors,
                    "invalid OPC UA client configuration; device disabled"
                );
                return;
            }
        };
        let mut backoff = Backoff::new(self.cfg.reconnect_min_ms, self.cfg.reconnect_max_ms);
        // Outer loop: the library's event loop only ends on a retry limit
        // (there is none) or on close; rebuild the session if it ever does.
        while !shutdown.is_cancelled() {
            let (session, event_loop) = match client
                .connect_to_endpoint_directly(endpoint(&self.cfg), IdentityToken::Anonymous)
            {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "invalid endpoint; device disabled");
                    return;
                }
            };
            let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
            let poller = tokio::spawn(async move {
                let events = event_loop.enter();
                futures::pin_mut!(events);
                while let Some(ev) = events.next().await {
                    let end = ev.is_err();
                    if ev_tx.send(ev).is_err() || end {
                        break;
                    }
                }
            });
            let (data_tx, mut data_rx) = mpsc::unbounded_channel::<Change>();
            self.subscription = None;
            let stop = self
                .session_loop(
                    &session,
                    &mut ev_rx,
                    &data_tx,
                    &mut data_rx,
                    &mut backoff,
                    &shutdown,
                )
                .await;
            self.connected(false);
            if stop {
                let _ = tokio::time::timeout(CLOSE_GRACE, session.disconnect()).await;
                // Values that arrived before the close are kept.
                while let Ok((g, h, dv)) = data_rx.try_recv() {
                    if !self.on_change(g, h, dv).await {
                        break;
                    }
                }
            }
            poller.abort();
            if stop {
                break;
            }
            let wait = backoff.next_delay();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        self.connected(false);
        tracing::info!("stopped");
    }

    /// Drives one session. Returns true to stop (shutdown or pipeline
    /// gone), false when the session's event loop ended and it must be
    /// rebuilt.
    async fn session_loop(
        &mut self,
        session: &Arc<Session>,
        ev_rx: &mut mpsc::UnboundedReceiver<Result<SessionPollResult, StatusCode>>,
        data_tx: &mpsc::UnboundedSender<Change>,
        data_rx: &mut mpsc::UnboundedReceiver<Change>,
        backoff: &mut Backoff,
        shutdown: &CancellationToken,
    ) -> bool {
        // When to try (again) to create the subscription; None = not needed.
        let mut subscribe_at: Option<tokio::time::Instant> = None;
        // When to read the points the new subscription has not reported.
        let mut fill_in_at: Option<tokio::time::Instant> = None;
        loop {
            let due = async {
                match subscribe_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            let fill_in_due = async {
                match fill_in_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return true,
                ev = ev_rx.recv() => match ev {
                    Some(Ok(SessionPollResult::Reconnected(mode))) => {
                        match mode {
                            SessionConnectMode::NewSession(id) => {
                                tracing::info!(session = %id, "connected; new session, subscribing");
                                // Whatever we had lived in the old session.
                                self.forget_subscription(session).await;
                                subscribe_at = Some(tokio::time::Instant::now());
                            }
                            SessionConnectMode::ReactivatedSession(id) => {
                                // The old subscription may still live, but
                                // it only reports what changes: points
                                // marked comms_lost that kept their value
                                // would stay marked. A new one reports every
                                // point's current value.
                                tracing::info!(session = %id, "connected; session reactivated, subscribing again");
                                subscribe_at = Some(tokio::time::Instant::now());
                            }
                        }
                    }
                    Some(Ok(SessionPollResult::ConnectionLost(code))) => {
                        fill_in_at = None;
                        self.connected(false);
                        self.metrics.device_poll(&self.name, "error");
                        tracing::warn!(status = %code, "connection lost; reconnecting");
                        // What arrived before the loss goes first, so that
                        // the mark holds the very last good value.
                        while let Ok((g, h, dv)) = data_rx.try_recv() {
                            if !self.on_change(g, h, dv).await {
                                return true;
                            }
                        }
                        if !self.report_outage().await {
                            return true;
                        }
                    }
                    Some(Ok(SessionPollResult::ReconnectFailed(code))) => {
                        self.metrics.device_poll(&self.name, "error");
                        if let Some(suppressed) = self.error_log.allow(Instant::now()) {
                            tracing::warn!(status = %code, suppressed, "cannot connect; retrying");
                        }
                        if !self.report_outage().await {
                            return true;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(code)) => {
                        tracing::error!(status = %code, "session event loop ended; starting a new one");
                        return false;
                    }
                    None => return false,
                },
                change = data_rx.recv() => {
                    // data_tx is held here, so the channel never closes.
                    if let Some((g, h, dv)) = change
                        && !self.on_change(g, h, dv).await
                    {
                        return true; // pipeline gone: shutting down
                    }
                }
                _ = due => {
                    match self.subscribe(session, data_tx).await {
                        Ok(n) => {
                            subscribe_at = None;
                            backoff.reset();
                            self.outage_reported = false;
                            self.connected(true);
                            tracing::info!(items = n, "subscribed");
                            fill_in_at = Some(tokio::time::Instant::now() + fill_in_delay(&self.cfg));
                        }
                        Err(e) => {
                            let wait = backoff.next_delay();
                            self.metrics.device_poll(&self.name, "subscribe_error");
                            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "cannot subscribe; retrying");
                            subscribe_at = Some(tokio::time::Instant::now() + wait);
                        }
                    }
                }
                _ = fill_in_due => {
                    fill_in_at = None;
                    // What already arrived counts first.
                    while let Ok((g, h, dv)) = data_rx.try_recv() {
                        if !self.on_change(g, h, dv).await {
                            return true;
                        }
                    }
                    if !self.fill_in(session).await {
                        return true;
                    }
                }
            }
        }
    }

    /// Drops our subscription from the client's state (the server's copy,
    /// if any, expires with its session).
    async fn forget_subscription(&mut self, session: &Session) {
        if let Some(id) = self.subscription.take() {
            let _ = tokio::time::timeout(
                Duration::from_millis(self.cfg.request_timeout_ms),
                session.delete_subscription(id),
            )
            .await;
        }
    }

    /// Discovers the points if needed, then creates the subscription and
    /// one monitored item per point. Returns how many items the server took.
    async fn subscribe(
        &mut self,
        session: &Session,
        data_tx: &mpsc::UnboundedSender<Change>,
    ) -> Result<usize, SubscribeError> {
        if self.cfg.points.is_empty()
            && self.cfg.discovered.get().is_none()
            && let Some(root) = &self.cfg.browse_root
        {
            let root = NodeId::from_str(root).map_err(|_| super::browse::BrowseError::Root {
                node: root.clone(),
                status: StatusCode::BadNodeIdInvalid,
            })?;
            let found = discover(session, &root, self.cfg.max_discovered_points)
                .await
                .inspect_err(|_| self.metrics.device_poll(&self.name, "discovery_error"))?;
            tracing::info!(points = found.len(), names = ?found.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), "discovered by browsing");
            self.cfg.discovered.set(found);
        }
        self.forget_subscription(session).await;
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let tx = data_tx.clone();
        let id = session
            .create_subscription(
                Duration::from_millis(self.cfg.publishing_interval_ms),
                LIFETIME_COUNT,
                MAX_KEEP_ALIVE_COUNT,
                0,
                0,
                true,
                DataChangeCallback::new(move |dv: DataValue, item: &MonitoredItem| {
                    // Unbounded: the callback runs inside the library's
                    // event loop and must not block it.
                    let _ = tx.send((generation, item.client_handle(), dv));
                }),
            )
            .await
            .map_err(|e| SubscribeError::CreateSubscription(e.status()))?;
        self.subscription = Some(id);
        let mut items = Vec::new();
        let mut invalid = 0;
        for (i, p) in self.cfg.points().iter().enumerate() {
            let Ok(node) = NodeId::from_str(&p.node_id) else {
                invalid += 1;
                tracing::error!(point = %p.name, node_id = %p.node_id, "node id does not parse");
                continue;
            };
            items.push(MonitoredItemCreateRequest::new(
                ReadValueId::new_value(node),
                MonitoringMode::Reporting,
                MonitoringParameters {
                    client_handle: i as u32 + 1,
                    sampling_interval: self.cfg.sampling_interval_ms as f64,
                    filter: filter(p),
                    queue_size: self.cfg.queue_size,
                    discard_oldest: true,
                },
            ));
        }
        let created = session
            .create_monitored_items(id, TimestampsToReturn::Both, items)
            .await
            .map_err(|e| SubscribeError::CreateItems(e.status()))?;
        let mut ok = 0;
        for c in &created {
            let status = c.result.status_code;
            if status.is_good() {
                ok += 1;
            } else {
                let h = c.requested_parameters.client_handle as usize;
                let point = self.cfg.points().get(h.wrapping_sub(1));
                self.metrics
                    .device_poll(&self.name, "monitored_item_refused");
                tracing::error!(
                    point = point.map(|p| p.name.as_str()),
                    node_id = point.map(|p| p.node_id.as_str()),
                    %status,
                    "server refused the monitored item"
                );
            }
        }
        if ok == 0 {
            return Err(SubscribeError::AllRefused(created.len() + invalid));
        }
        Ok(ok)
    }

    /// Reads the points the current subscription has not reported yet and
    /// passes their values on as if the subscription had (see
    /// [`fill_in_delay`]). A failed read is left to the next reconnect: the
    /// connection is then in trouble anyway. Returns false when the
    /// pipeline is gone.
    async fn fill_in(&mut self, session: &Session) -> bool {
        let generation = self.generation;
        let missing: Vec<(usize, NodeId)> = self
            .cfg
            .points()
            .iter()
            .enumerate()
            .filter(|(i, _)| self.seen.get(*i).copied() != Some(generation))
            .filter_map(|(i, p)| NodeId::from_str(&p.node_id).ok().map(|n| (i, n)))
            .collect();
        if missing.is_empty() {
            return true;
        }
        let to_read: Vec<_> = missing
            .iter()
            .map(|(_, n)| ReadValueId::new_value(n.clone()))
            .collect();
        let read = tokio::time::timeout(
            Duration::from_millis(self.cfg.request_timeout_ms),
            session.read(&to_read, TimestampsToReturn::Both, 0.0),
        )
        .await;
        let values = match read {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, points = missing.len(), "cannot read the points the subscription did not report");
                return true;
            }
            Err(_) => {
                tracing::warn!(
                    points = missing.len(),
                    "reading the points the subscription did not report timed out"
                );
                return true;
            }
        };
        tracing::info!(
            points = missing.len(),
            "the new subscription did not report every point; read them"
        );
        self.metrics.device_poll(&self.name, "filled_in");
        for ((i, _), dv) in missing.into_iter().zip(values) {
            let handle = u32::try_from(i + 1).unwrap_or(u32::MAX);
            if !self.on_change(generation, handle, dv).await {
                return false;
            }
        }
        true
    }

    /// Marks every point `comms_lost` once per outage (the first lost
    /// connection or failed connect since the last subscription), holding
    /// its last good value (NaN if none). Once, not per interval: there is
    /// no poll period to repeat on, and the mark stands until the next
    /// subscription reports each point's current value. Without it a
    /// report-by-exception stream cannot tell "unchanged" from "unknown".
    /// Returns false when the pipeline is gone.
    async fn report_outage(&mut self) -> bool {
        if self.outage_reported {
            return true;
        }
        self.outage_reported = true;
        let ts_ms = self.clock.now(now_ms());
        let n_points = self.cfg.points().len();
        let mark = Mark {
            ts_ms,
            generation: self.generation,
        };
        self.marks = vec![Some(mark); n_points];
        let samples: Vec<_> = (0..n_points)
            .map(|i| {
                let value = self.last_good.get(i).copied().flatten();
                (
                    i,
                    Sample {
                        ts_ms,
                        value: value.unwrap_or(f64::NAN),
                        quality: Quality::CommsLost,
                    },
                )
            })
            .collect();
        if samples.is_empty() {
            return true;
        }
        let n = samples.len() as u64;
        if self
            .tx
            .send(Reading {
                device: self.index,
                samples,
            })
            .await
            .is_err()
        {
            return false;
        }
        self.metrics.samples_polled.inc_by(n);
        true
    }

    /// One data change → one sample. Returns false when the pipeline is gone.
    async fn on_change(&mut self, generation: u32, handle: u32, dv: DataValue) -> bool {
        let index = (handle as usize).wrapping_sub(1);
        let Some(point) = self.cfg.points().get(index) else {
            tracing::debug!(handle, "data change for an unknown client handle");
            return true;
        };
        let received_ms = now_ms();
        let (mut s, problem) = sample(point, &dv, received_ms);
        tracing::trace!(generation, handle, ts_ms = s.ts_ms, quality = ?s.quality, "data change");
        if self.seen.len() <= index {
            self.seen.resize(index + 1, 0);
        }
        if let Some(g) = self.seen.get_mut(index) {
            *g = (*g).max(generation);
        }
        let mark = self.marks.get(index).copied().flatten();
        let stamped = restamp(s.ts_ms, self.clock.now(received_ms), generation, mark);
        if stamped == s.ts_ms {
            self.clock.observe(s.ts_ms, received_ms, generation);
        }
        s.ts_ms = stamped;
        if mark.is_some_and(|m| generation > m.generation)
            && let Some(slot) = self.marks.get_mut(index)
        {
            *slot = None; // the point has its value after the outage
        }
        if s.quality == Quality::Good {
            if self.last_good.len() <= index {
                self.last_good.resize(index + 1, None);
            }
            if let Some(slot) = self.last_good.get_mut(index) {
                *slot = Some(s.value);
            }
        }
        match problem {
            Some(p) => {
                self.metrics.device_poll(&self.name, "bad_value");
                if let Some(suppressed) = self.value_log.allow(Instant::now()) {
                    let kind = match p {
                        ValueProblem::NotANumber => "not_a_number",
                        ValueProblem::NotFinite => "not_finite",
                    };
                    tracing::warn!(point = %point.name, kind, suppressed, "value is not a usable number; reported as bad");
                }
            }
            None => self.metrics.device_poll(&self.name, "ok"),
        }
        // The same value at the same time again (a read that filled in a
        // point and the subscription's own report of it, arriving late).
        let same = |a: &Sample| {
            a.ts_ms == s.ts_ms && a.quality == s.quality && a.value.to_bits() == s.value.to_bits()
        };
        if self
            .last_sent
            .get(index)
            .and_then(Option::as_ref)
            .is_some_and(same)
        {
            return true;
        }
        if self.last_sent.len() <= index {
            self.last_sent.resize(index + 1, None);
        }
        if let Some(slot) = self.last_sent.get_mut(index) {
            *slot = Some(s);
        }
        if self
            .tx
            .send(Reading {
                device: self.index,
                samples: vec![(index, s)],
            })
            .await
            .is_err()
        {
            return false;
        }
        self.metrics.samples_polled.inc();
        self.metrics
            .device_gauge(&self.metrics.device_last_success_ms, &self.name, now_ms());
        true
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn point(abs: Option<f64>, pct: Option<f64>) -> OpcuaPointConfig {
        OpcuaPointConfig {
            name: "p".into(),
            node_id: "ns=2;s=p".into(),
            unit: String::new(),
            deadband_abs: abs,
            deadband_pct: pct,
            scale: 1.0,
            offset: 0.0,
        }
    }

    #[test]
    fn a_value_older_than_the_outage_mark_is_stored_after_it_when_a_new_subscription_confirms_it() {
        let mark = Some(Mark {
            ts_ms: 1_000,
            generation: 3,
        });
        // A new subscription's current value, unchanged since before the
        // mark: stored at receipt.
        assert_eq!(restamp(900, 1_500, 4, mark), 1_500);
        // Received in the same millisecond as the mark: still after it.
        assert_eq!(restamp(900, 1_000, 4, mark), 1_001);
        // Measured after the mark: its own time.
        assert_eq!(restamp(1_200, 1_500, 4, mark), 1_200);
        // The old subscription's late delivery keeps its time.
        assert_eq!(restamp(900, 1_500, 3, mark), 900);
        // No mark pending: untouched.
        assert_eq!(restamp(900, 1_500, 4, None), 900);
    }

    #[test]
    fn the_server_clock_is_the_freshest_values_lead_and_never_before_the_latest_value() {
        let mut c = DeviceClock::default();
        assert_eq!(c.now(5_000), 5_000, "no value yet: our clock");
        // A server 1 h behind; one value unchanged for 10 min lags more.
        c.observe(5_000 - 3_600_000, 5_000, 1);
        c.observe(5_000 - 4_200_000, 5_000, 1);
        assert_eq!(c.now(6_000), 6_000 - 3_600_000);
        // A new subscription measures afresh (the server's clock was set).
        c.observe(7_000 - 60_000, 7_000, 2);
        assert_eq!(c.now(8_000), 8_000 - 60_000);
        // Never at or before a value already seen (same-millisecond loss).
        let mut c = DeviceClock::default();
        c.observe(9_000, 9_000, 1);
        c.observe(9_500, 9_000, 1); // a server clock ahead
        assert_eq!(c.now(9_000), 9_501);
    }

    #[test]
    fn deadbands_become_data_change_filters() {
        assert!(filter(&point(None, None)).is_null());
        let f = filter(&point(Some(0.5), None));
        let f = f.inner_as::<DataChangeFilter>().unwrap();
        assert_eq!(f.deadband_type, DeadbandType::Absolute as u32);
        assert_eq!(f.deadband_value, 0.5);
        assert_eq!(f.trigger, DataChangeTrigger::StatusValue);
        let f = filter(&point(None, Some(2.0)));
        let f = f.inner_as::<DataChangeFilter>().unwrap();
        assert_eq!(
            (f.deadband_type, f.deadband_value),
            (DeadbandType::Percent as u32, 2.0)
        );
    }
}

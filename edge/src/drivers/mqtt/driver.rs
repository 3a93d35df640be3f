//! The task per MQTT device: one rumqttc event loop, driven here.

use super::LogThrottle;
use super::config::MqttConfig;
use super::payload::{Message, topic_matches};
use crate::config::DeviceConfig;
use crate::drivers::{Backoff, Reading, ReadingTx, now_ms};
use crate::metrics::EdgeMetrics;
use rumqttc::{
    AsyncClient, ConnectionError, Event, EventLoop, MqttOptions, Packet, Publish, QoS,
    SubscribeFilter, SubscribeReasonCode,
};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a clean DISCONNECT may take at shutdown.
const DISCONNECT_GRACE: Duration = Duration::from_secs(1);

fn qos(q: u8) -> QoS {
    match q {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

fn options(m: &MqttConfig) -> MqttOptions {
    let mut o = MqttOptions::new(m.client_id.clone(), m.host.clone(), m.port);
    // Validation guarantees keep_alive_s >= 5 and a non-empty client id,
    // the preconditions of these two setters (they assert).
    o.set_keep_alive(Duration::from_secs(u64::from(m.keep_alive_s)));
    o.set_clean_session(m.clean_session);
    if let Some(user) = &m.username {
        o.set_credentials(user.clone(), m.password.clone().unwrap_or_default());
    }
    // Outgoing is only CONNECT/SUBSCRIBE: small.
    o.set_max_packet_size(m.max_payload_bytes + 1024, 64 * 1024);
    o
}

/// State of one device's task.
struct Device {
    index: usize,
    name: String,
    cfg: MqttConfig,
    filters: Vec<String>,
    tx: ReadingTx,
    metrics: EdgeMetrics,
    bad_log: LogThrottle,
}

/// Runs one MQTT device until `shutdown`. Never returns early on a network
/// or payload error: it backs off, reconnects and resubscribes by itself.
pub async fn run_device(
    index: usize,
    device: DeviceConfig,
    tx: ReadingTx,
    metrics: EdgeMetrics,
    shutdown: CancellationToken,
) {
    let Some(cfg) = device.mqtt.clone() else {
        return;
    };
    let span = tracing::info_span!("mqtt", device = %device.name, broker = %format!("{}:{}", cfg.host, cfg.port));
    let mut d = Device {
        index,
        name: device.name.clone(),
        filters: cfg.filters(),
        bad_log: LogThrottle::new(Duration::from_secs(cfg.bad_payload_log_interval_s)),
        cfg,
        tx,
        metrics,
    };
    d.run(shutdown).instrument(span).await
}

impl Device {
    fn connected(&self, up: bool) {
        self.metrics
            .device_gauge(&self.metrics.device_connected, &self.name, i64::from(up));
    }

    async fn run(&mut self, shutdown: CancellationToken) {
        let (client, mut events) = AsyncClient::new(options(&self.cfg), 16);
        let mut backoff = Backoff::new(self.cfg.reconnect_min_ms, self.cfg.reconnect_max_ms);
        self.connected(false);
        tracing::info!(client_id = %self.cfg.client_id, filters = ?self.filters, "subscribing");
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => break,
                e = events.poll() => e,
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff.reset();
                    if ack.session_present {
                        // The broker kept our subscriptions and queued messages.
                        tracing::info!("connected; session resumed");
                        self.connected(true);
                    } else {
                        tracing::info!("connected; new session, subscribing");
                        let subs = self
                            .filters
                            .iter()
                            .map(|f| SubscribeFilter::new(f.clone(), qos(self.cfg.qos)));
                        if let Err(e) = client.try_subscribe_many(subs) {
                            tracing::error!(error = %e, "cannot queue the subscription");
                        }
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    let refused = ack
                        .return_codes
                        .iter()
                        .filter(|c| matches!(c, SubscribeReasonCode::Failure))
                        .count();
                    if refused > 0 {
                        self.metrics.device_poll(&self.name, "subscribe_refused");
                        tracing::error!(
                            refused,
                            of = ack.return_codes.len(),
                            "broker refused subscriptions (ACL?)"
                        );
                    }
                    self.connected(true);
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if !self.on_publish(&p).await {
                        break; // pipeline gone: shutting down
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    self.connected(false);
                    self.metrics.device_poll(&self.name, "error");
                    let wait = backoff.next_delay();
                    log_connection_error(&e, wait);
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        // A clean DISCONNECT, so the broker does not wait out the keep-alive;
        // the persistent session stays.
        if client.try_disconnect().is_ok() {
            let _ = tokio::time::timeout(DISCONNECT_GRACE, self.drain(&mut events)).await;
        }
        self.connected(false);
        tracing::info!("stopped");
    }

    /// Polls until the DISCONNECT is out. Messages still arriving are
    /// acknowledged by rumqttc when read, so they are kept, not dropped.
    async fn drain(&mut self, events: &mut EventLoop) {
        loop {
            match events.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect)) | Err(_) => return,
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if !self.on_publish(&p).await {
                        return;
                    }
                }
                Ok(_) => {}
            }
        }
    }

    /// Turns one message into samples of every point whose topic matches.
    /// Returns false when the pipeline is gone.
    async fn on_publish(&mut self, p: &Publish) -> bool {
        let mut msg = Message::new(&p.payload, now_ms(), p.retain);
        let mut samples = Vec::new();
        let mut first_error = None;
        for (i, point) in self.cfg.points.iter().enumerate() {
            if !topic_matches(&point.topic, &p.topic) {
                continue;
            }
            match msg.sample(point) {
                Ok(s) => samples.push((i, s)),
                Err(e) => {
                    first_error.get_or_insert((point.name.as_str(), e));
                }
            }
        }
        match first_error {
            Some((point, e)) => {
                self.metrics.device_poll(&self.name, "bad_payload");
                if let Some(suppressed) = self.bad_log.allow(Instant::now()) {
                    tracing::warn!(
                        topic = %p.topic,
                        point,
                        kind = e.kind(),
                        error = %e,
                        bytes = p.payload.len(),
                        suppressed,
                        "bad payload (counted in device_polls{{result=\"bad_payload\"}})"
                    );
                }
            }
            None if samples.is_empty() => {
                tracing::debug!(topic = %p.topic, "message matches no point");
                return true;
            }
            None => self.metrics.device_poll(&self.name, "ok"),
        }
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
        self.metrics
            .device_gauge(&self.metrics.device_last_success_ms, &self.name, now_ms());
        true
    }
}

fn log_connection_error(e: &ConnectionError, wait: Duration) {
    let retry_in_ms = wait.as_millis() as u64;
    match e {
        ConnectionError::ConnectionRefused(code) => {
            tracing::error!(?code, retry_in_ms, "broker refused the connection")
        }
        e => tracing::warn!(error = %e, retry_in_ms, "connection lost; reconnecting"),
    }
}

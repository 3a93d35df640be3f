//! A weather station publishing JSON over MQTT (rumqttc), with fault
//! injection: garbage payloads, publishing pauses (the station goes away and
//! comes back) and abrupt broker disconnects.
//!
//! Every message goes to `<prefix>/weather` at QoS 1:
//!
//! ```json
//! {"ts": 1782023400000, "irradiance": 1034.2, "module_temperature": 63.81,
//!  "ambient_temperature": 31.45, "wind_speed": 4.12, "wind_direction": 231.7}
//! ```
//!
//! The values are [`WeatherModel::observe`] of `ts`: a pure function of the
//! seed and the instant, so a test can recompute what any message carried.

pub mod cli;
pub mod weather;

pub use weather::{Observation, WeatherModel};

use crate::SimError;
use crate::modbus::SimClock;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What goes wrong, on purpose.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Every Nth message is garbage (0 = never). Kinds rotate: not JSON, a
    /// field missing, a string instead of a number.
    pub garbage_every: u32,
    /// Every this often, stop publishing for `outage_for`.
    pub outage_every: Option<Duration>,
    pub outage_for: Duration,
    /// Every this often, drop the broker connection without a DISCONNECT
    /// and connect again.
    pub disconnect_every: Option<Duration>,
}

/// One simulated weather station.
#[derive(Debug, Clone)]
pub struct StationConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    /// Messages go to `<topic_prefix>/weather`.
    pub topic_prefix: String,
    pub interval: Duration,
    pub model: WeatherModel,
    pub clock: SimClock,
    pub faults: Faults,
}

/// The topic a station with `prefix` publishes to.
pub fn weather_topic(prefix: &str) -> String {
    format!("{}/weather", prefix.trim_end_matches('/'))
}

/// Counters of a running station.
#[derive(Debug, Default)]
pub struct StationStats {
    /// Good messages the broker acknowledged (PUBACK).
    pub acknowledged: AtomicU64,
    /// Good messages handed to the client.
    pub published: AtomicU64,
    /// Garbage messages handed to the client.
    pub garbage: AtomicU64,
    /// Connections made (ConnAck received).
    pub connects: AtomicU64,
    /// Outages and disconnects injected.
    pub outages: AtomicU64,
    pub disconnects: AtomicU64,
}

/// A station running in the background until its shutdown token fires.
#[derive(Debug)]
pub struct RunningStation {
    pub stats: Arc<StationStats>,
    pub topic: String,
    task: tokio::task::JoinHandle<()>,
}

impl RunningStation {
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Garbage message number `k`.
fn garbage(k: u64, ts: i64) -> Vec<u8> {
    match k % 3 {
        0 => b"\x00\xffnot json {".to_vec(),
        1 => format!(r#"{{"ts": {ts}, "module_temperature": 40.0}}"#).into_bytes(),
        _ => format!(r#"{{"ts": {ts}, "irradiance": "bright", "module_temperature": "hot", "ambient_temperature": null, "wind_speed": [], "wind_direction": {{}}}}"#).into_bytes(),
    }
}

/// Message number `seq` (from 1) at `ts`, and whether it is garbage.
fn message(cfg: &StationConfig, seq: u64, ts: i64) -> (Vec<u8>, bool) {
    let every = u64::from(cfg.faults.garbage_every);
    if every > 0 && seq.is_multiple_of(every) {
        (garbage(seq / every, ts), true)
    } else {
        (cfg.model.observe(ts).to_json().into_bytes(), false)
    }
}

/// Starts publishing. Fails only on an invalid configuration; an
/// unreachable broker is retried (with a capped backoff) until shutdown.
pub fn start_station(
    cfg: StationConfig,
    shutdown: CancellationToken,
) -> Result<RunningStation, SimError> {
    if cfg.interval.is_zero() {
        return Err(SimError::InvalidConfig("interval must be positive".into()));
    }
    if cfg.client_id.is_empty() {
        return Err(SimError::InvalidConfig(
            "client id must not be empty".into(),
        ));
    }
    if cfg.faults.outage_every.is_some_and(|d| d.is_zero())
        || cfg.faults.disconnect_every.is_some_and(|d| d.is_zero())
    {
        return Err(SimError::InvalidConfig(
            "fault periods must be positive".into(),
        ));
    }
    let stats = Arc::new(StationStats::default());
    let topic = weather_topic(&cfg.topic_prefix);
    let task = tokio::spawn(run(cfg, topic.clone(), stats.clone(), shutdown));
    Ok(RunningStation { stats, topic, task })
}

async fn run(
    cfg: StationConfig,
    topic: String,
    stats: Arc<StationStats>,
    shutdown: CancellationToken,
) {
    let mut next_outage = cfg.faults.outage_every.map(|d| Instant::now() + d);
    let mut seq: u64 = 0;
    let mut retry = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        let mut opts = MqttOptions::new(cfg.client_id.clone(), cfg.host.clone(), cfg.port);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut events) = AsyncClient::new(opts, 64);
        let session_end = cfg.faults.disconnect_every.map(|d| Instant::now() + d);
        let mut tick = tokio::time::interval(cfg.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut up = false;
        loop {
            let until_end = async {
                match session_end {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = client.try_disconnect();
                    let _ = tokio::time::timeout(Duration::from_secs(1), async {
                        while events.poll().await.is_ok() {}
                    }).await;
                    return;
                }
                _ = until_end => {
                    stats.disconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!("fault: dropping the broker connection");
                    break; // drops the event loop: the TCP connection closes abruptly
                }
                ev = events.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        up = true;
                        retry = Duration::from_millis(100);
                        stats.connects.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        stats.acknowledged.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = retry.as_millis() as u64, "broker connection failed");
                        break;
                    }
                },
                _ = tick.tick(), if up => {
                    let now = Instant::now();
                    if let Some(t) = next_outage && now >= t {
                        stats.outages.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(for_ms = cfg.faults.outage_for.as_millis() as u64, "fault: station goes quiet");
                        // Keep the connection serviced while quiet.
                        let quiet_until = now + cfg.faults.outage_for;
                        next_outage = cfg.faults.outage_every.map(|d| quiet_until + d);
                        loop {
                            tokio::select! {
                                _ = tokio::time::sleep_until(quiet_until) => break,
                                _ = shutdown.cancelled() => return,
                                ev = events.poll() => if ev.is_err() { break },
                            }
                        }
                        continue;
                    }
                    seq += 1;
                    let ts = cfg.clock.now_ms();
                    let (payload, bad) = message(&cfg, seq, ts);
                    // The request channel has room: the loop drains it.
                    match client.try_publish(topic.clone(), QoS::AtLeastOnce, false, payload) {
                        Ok(()) if bad => { stats.garbage.fetch_add(1, Ordering::Relaxed); }
                        Ok(()) => { stats.published.fetch_add(1, Ordering::Relaxed); }
                        Err(e) => tracing::warn!(error = %e, "publish not queued"),
                    }
                }
            }
        }
        drop(events);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(Duration::from_secs(5));
    }
}

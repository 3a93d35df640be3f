//! MQTT field devices → edge agent → cloud, through real Mosquitto brokers.
//!
//! - An independent publisher (Python, paho-mqtt) sends known values, a
//!   malformed payload among them; every value arrives in the cloud under the
//!   right point, unit and timestamp, and the bad payload is counted without
//!   stopping the driver.
//! - The simulated weather station publishes for a while with garbage mixed
//!   in; every stored value is what the station's model says for its time.
//! - Against a broker of the test's own (behind a proxy it can cut): the
//!   driver comes back by itself after losing the connection, the persistent
//!   session delivers QoS 1 messages published while it was away, and after
//!   a broker restart that lost the session it subscribes again.
//!
//! The shared broker is 127.0.0.1:1883 (`.ci/run` starts it); topics carry a
//! per-run prefix so parallel runs do not see each other.
//!
//! Broker-backed: built with `--features broker-tests` (as `.ci/run` does),
//! so `cargo test --workspace` needs no broker on a developer's machine.
#![cfg(feature = "broker-tests")]
#![allow(clippy::unwrap_used)]

use dcmms_cloud::{RunningCloud, gateways, testing};
use dcmms_edge::EdgeConfig;
use dcmms_edge::metrics::{DeviceLabels, DeviceResultLabels, EdgeMetrics};
use dcmms_simulators::modbus::SimClock;
use dcmms_simulators::mqtt::weather::FIELDS;
use dcmms_simulators::mqtt::{Faults, StationConfig, WeatherModel, start_station};
use dcmms_simulators::solar::SiteModel;
use dcmms_tests::support::{CloudReader, free_port, interop_python, wait_until};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

const SHARED_BROKER: &str = "127.0.0.1:1883";
/// 2026-06-21 06:30 UTC.
const T0: i64 = 1_782_023_400_000;

fn unique(what: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{what}-{}-{nanos}", std::process::id())
}

fn require_broker(addr: &str) {
    let a: SocketAddr = addr.parse().unwrap();
    if let Err(e) = TcpStream::connect_timeout(&a, Duration::from_secs(2)) {
        panic!(
            "no MQTT broker at {addr} ({e}): start one with \
             `mosquitto -d -c /etc/mosquitto/mosquitto.conf` (.ci/run does)"
        );
    }
}

fn polls(m: &EdgeMetrics, device: &str, result: &str) -> u64 {
    m.device_polls
        .get_or_create(&DeviceResultLabels {
            device: device.into(),
            result: result.into(),
        })
        .get()
}

fn connected(m: &EdgeMetrics, device: &str) -> bool {
    m.device_connected
        .get_or_create(&DeviceLabels {
            device: device.into(),
        })
        .get()
        == 1
}

struct Site {
    _dir: tempfile::TempDir,
    cloud: RunningCloud,
    stop_cloud: CancellationToken,
    credential: String,
    buffer: std::path::PathBuf,
}

async fn site(gateway: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let stop_cloud = CancellationToken::new();
    let cloud =
        dcmms_tests::support::start_cloud(testing::sqlite_url(dir.path()), &stop_cloud).await;
    let gw = gateways::create(&cloud.db, gateway, gateway).await.unwrap();
    Site {
        buffer: dir.path().join("buffer"),
        _dir: dir,
        cloud,
        stop_cloud,
        credential: gw.credential,
    }
}

impl Site {
    /// An edge configuration with one MQTT device, given as the TOML a user
    /// would write (so it goes through the same validation).
    fn edge_config(&self, gateway: &str, device_toml: &str) -> EdgeConfig {
        let text = format!(
            r#"
gateway_id = "{gateway}"
[cloud]
url = "{url}"
credential = "{cred}"
backoff_min_ms = 100
backoff_max_ms = 1000
[buffer]
path = "{buffer}"
flush_interval_ms = 100
[http]
listen = "127.0.0.1:0"
{device_toml}
"#,
            url = self.cloud.url(),
            cred = self.credential,
            buffer = self.buffer.display(),
        );
        EdgeConfig::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    async fn stop(self) {
        self.stop_cloud.cancel();
        self.cloud.wait().await.unwrap();
    }

    /// Stored samples of each point of `device`: point → (unit, samples).
    async fn stored(&self, gateway: &str, device: &str) -> HashMap<String, (String, Vec<Value>)> {
        CloudReader::new(&self.cloud)
            .await
            .stored(gateway, device)
            .await
    }
}

fn mqtt_section(addr: &str, client_id: &str, extra: &str) -> String {
    let (host, port) = addr.rsplit_once(':').unwrap();
    format!(
        r#"
[[devices]]
name = "wx-01"
[devices.mqtt]
host = "{host}"
port = {port}
client_id = "{client_id}"
keep_alive_s = 5
reconnect_min_ms = 100
reconnect_max_ms = 1000
bad_payload_log_interval_s = 1
{extra}
"#
    )
}

fn point(
    name: &str,
    topic: &str,
    ptr: Option<&str>,
    ts: Option<&str>,
    unit: &str,
    more: &str,
) -> String {
    let mut s = format!(
        "[[devices.mqtt.points]]\nname = \"{name}\"\ntopic = \"{topic}\"\nunit = \"{unit}\"\n"
    );
    if let Some(p) = ptr {
        s.push_str(&format!("json_pointer = \"{p}\"\n"));
    }
    if let Some(t) = ts {
        s.push_str(&format!("timestamp_pointer = \"{t}\"\n"));
    }
    s.push_str(more);
    s
}

fn paho_publish(python: &str, broker: &str, messages: &Value) {
    let (host, port) = broker.rsplit_once(':').unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/paho_weather_publisher.py");
    let mut child = Command::new(python)
        .arg(&script)
        .args([
            "--host",
            host,
            "--port",
            port,
            "--client-id",
            &unique("paho"),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(messages.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "paho publisher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = messages.as_array().unwrap().len();
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()["published"],
        n
    );
}

fn values(samples: &[Value]) -> Vec<(i64, f64, String)> {
    let mut v: Vec<_> = samples
        .iter()
        .map(|s| {
            (
                s["ts_ms"].as_i64().unwrap(),
                s["value"].as_f64().unwrap(),
                s["quality"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort_by_key(|s| s.0);
    v
}

fn good(ts: i64, v: f64) -> (i64, f64, String) {
    (ts, v, "good".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paho_published_values_arrive_with_points_units_and_timestamps() {
    require_broker(SHARED_BROKER);
    let python = interop_python("paho-mqtt");
    let prefix = unique("dcmms-test/paho");
    let gw = "mqtt-paho-gw";
    let site = site(gw).await;
    let weather = format!("{prefix}/weather");
    let mut points = String::new();
    points += &point(
        "irradiance",
        &weather,
        Some("/irradiance"),
        Some("/ts"),
        "W/m²",
        "",
    );
    points += &point(
        "module_temperature",
        &weather,
        Some("/module_temperature"),
        Some("/ts"),
        "°C",
        "",
    );
    points += &point(
        "wind_speed_kmh",
        &weather,
        Some("/wind_speed"),
        Some("/ts"),
        "km/h",
        "scale = 3.6\n",
    );
    points += &point(
        "ambient_temperature",
        &format!("{prefix}/ambient"),
        Some("/t/value"),
        Some("/t/time"),
        "°C",
        "offset = -0.5\n",
    );
    // A wildcard filter and a bare-number payload stamped on receipt.
    points += &point(
        "inverter_power",
        &format!("{prefix}/+/power"),
        None,
        None,
        "W",
        "",
    );
    let cfg = site.edge_config(
        gw,
        &mqtt_section(SHARED_BROKER, &unique("edge-paho"), &points),
    );
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();
    wait_until("subscribed", Duration::from_secs(30), || {
        connected(&m, "wx-01")
    })
    .await;

    let msgs = json!([
        {"topic": weather, "payload": json!({"ts": T0, "irradiance": 812.5, "module_temperature": 51.25, "wind_speed": 5.0}).to_string()},
        {"topic": weather, "payload_hex": "00ff6e6f74206a736f6e207b"},
        // Partly bad: wind_speed missing; the other two values still count.
        {"topic": weather, "payload": json!({"ts": T0 + 1000, "irradiance": 640.0, "module_temperature": 50.5}).to_string()},
        {"topic": format!("{prefix}/ambient"), "payload": json!({"t": {"time": "2026-06-21T12:00:05.5+05:30", "value": 33.75}}).to_string()},
        {"topic": format!("{prefix}/inv7/power"), "payload": "1234.5"},
        {"topic": weather, "payload": json!({"ts": T0 + 2000, "irradiance": "bright", "module_temperature": 49.0, "wind_speed": 2.5}).to_string()},
        {"topic": weather, "payload": json!({"ts": T0 + 3000, "irradiance": 700.25, "module_temperature": 48.0, "wind_speed": 2.5}).to_string()},
    ]);
    let before = dcmms_edge::drivers::now_ms();
    let publisher = python.clone();
    let broker = SHARED_BROKER.to_string();
    tokio::task::spawn_blocking(move || paho_publish(&publisher, &broker, &msgs))
        .await
        .unwrap();
    // 3 + 0 + 2 + 1 + 1 + 2 + 3 samples.
    wait_until("all values", Duration::from_secs(30), || {
        m.status().samples_polled >= 12
    })
    .await;
    // Received (and stamped) after `before` and by now: the broker hands
    // a message on after the publisher is done, so not by the end of
    // publishing.
    let after = dcmms_edge::drivers::now_ms();
    wait_until("bad payloads counted", Duration::from_secs(30), || {
        polls(&m, "wx-01", "bad_payload") >= 3
    })
    .await;
    assert_eq!(polls(&m, "wx-01", "bad_payload"), 3);
    assert_eq!(polls(&m, "wx-01", "ok"), 4);
    assert!(
        connected(&m, "wx-01"),
        "a bad payload must not stop the driver"
    );

    stop_edge.cancel();
    edge.wait().await;
    let st = m.status();
    assert_eq!(st.samples_polled, 12, "{st:?}");
    assert_eq!(st.samples_acknowledged, 12, "{st:?}");

    let stored = site.stored(gw, "wx-01").await;
    let unit = |p: &str| stored[p].0.clone();
    let got = |p: &str| values(&stored[p].1);
    assert_eq!(stored.len(), 5, "{:?}", stored.keys());
    assert_eq!(unit("irradiance"), "W/m²");
    assert_eq!(unit("module_temperature"), "°C");
    assert_eq!(unit("wind_speed_kmh"), "km/h");
    assert_eq!(unit("ambient_temperature"), "°C");
    assert_eq!(unit("inverter_power"), "W");
    assert_eq!(
        got("irradiance"),
        vec![
            good(T0, 812.5),
            good(T0 + 1000, 640.0),
            good(T0 + 3000, 700.25)
        ]
    );
    assert_eq!(
        got("module_temperature"),
        vec![
            good(T0, 51.25),
            good(T0 + 1000, 50.5),
            good(T0 + 2000, 49.0),
            good(T0 + 3000, 48.0)
        ]
    );
    assert_eq!(
        got("wind_speed_kmh"),
        vec![good(T0, 18.0), good(T0 + 2000, 9.0), good(T0 + 3000, 9.0)]
    );
    // RFC 3339 with an offset: 12:00:05.5+05:30 is 06:30:05.500Z.
    assert_eq!(got("ambient_temperature"), vec![good(T0 + 5500, 33.25)]);
    let power = got("inverter_power");
    assert_eq!(power.len(), 1);
    assert_eq!((power[0].1, power[0].2.as_str()), (1234.5, "good"));
    assert!(
        (before..=after).contains(&power[0].0),
        "no timestamp pointer: stamped on receipt, {} not in {before}..={after}",
        power[0].0
    );
    site.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simulated_weather_station_values_match_its_model_despite_garbage() {
    require_broker(SHARED_BROKER);
    let prefix = unique("dcmms-test/sim");
    let gw = "mqtt-sim-gw";
    let site = site(gw).await;
    let topic = dcmms_simulators::mqtt::weather_topic(&prefix);
    let points: String = FIELDS
        .iter()
        .map(|(name, unit)| {
            point(
                name,
                &topic,
                Some(&format!("/{name}")),
                Some("/ts"),
                unit,
                "",
            )
        })
        .collect();
    let cfg = site.edge_config(
        gw,
        &mqtt_section(SHARED_BROKER, &unique("edge-sim"), &points),
    );
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();
    wait_until("subscribed", Duration::from_secs(30), || {
        connected(&m, "wx-01")
    })
    .await;

    let model = WeatherModel::new(SiteModel::bhadla(42), 42);
    let stop_station = CancellationToken::new();
    let station = start_station(
        StationConfig {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: unique("wx-sim"),
            topic_prefix: prefix.clone(),
            interval: Duration::from_millis(20),
            model: model.clone(),
            // Fast clock: each message a distinct instant, minutes apart.
            clock: SimClock::accelerated(T0, 3000.0),
            faults: Faults {
                garbage_every: 4,
                ..Faults::default()
            },
        },
        stop_station.clone(),
    )
    .unwrap();
    let stats = station.stats.clone();
    wait_until("station published", Duration::from_secs(60), || {
        stats.published.load(Ordering::Relaxed) >= 30 && polls(&m, "wx-01", "ok") >= 30
    })
    .await;
    stop_station.cancel();
    station.wait().await;
    // Everything the broker acknowledged reaches the edge: good or bad.
    let acked = stats.acknowledged.load(Ordering::Relaxed);
    wait_until(
        "every acknowledged message handled",
        Duration::from_secs(30),
        || polls(&m, "wx-01", "ok") + polls(&m, "wx-01", "bad_payload") >= acked,
    )
    .await;
    let ok = polls(&m, "wx-01", "ok");
    let bad = polls(&m, "wx-01", "bad_payload");
    assert_eq!(ok + bad, acked);
    assert!(bad >= 5, "garbage every 4th message: {bad} of {acked}");
    assert!(connected(&m, "wx-01"));
    stop_edge.cancel();
    edge.wait().await;

    let stored = site.stored(gw, "wx-01").await;
    assert_eq!(stored.len(), FIELDS.len());
    for (name, unit) in FIELDS {
        let (u, samples) = &stored[name];
        assert_eq!(u, unit, "{name}");
        let v = values(samples);
        // Good messages have every field; garbage kind 1 has module_temperature.
        let extra = if name == "module_temperature" {
            v.len() as u64 - ok
        } else {
            0
        };
        assert_eq!(v.len() as u64, ok + extra, "{name}");
        for (ts, value, q) in v {
            assert_eq!(q, "good");
            if extra > 0 && value == 40.0 {
                continue; // the garbage message's stray field
            }
            assert_eq!(Some(value), model.observe(ts).field(name), "{name} at {ts}");
        }
    }
    site.stop().await;
}

/// A Mosquitto of the test's own, killed when dropped.
struct Broker {
    port: u16,
    child: Child,
}

impl Broker {
    fn start(port: u16) -> Broker {
        let child = Command::new("mosquitto")
            .args(["-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run mosquitto ({e}): apt-get install -y mosquitto (.ci/run does)")
            });
        let b = Broker { port, child };
        let start = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "mosquitto -p {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        b
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn publish(&self, topic: &str, payload: &str) {
        let out = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-q", "1"])
            .args(["-i", &unique("pub"), "-t", topic, "-m", payload])
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run mosquitto_pub ({e}): apt-get install -y mosquitto-clients")
            });
        assert!(
            out.status.success(),
            "mosquitto_pub: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A TCP proxy the test can cut: while cut, it closes every connection and
/// refuses new ones, like a link that went down.
struct Proxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    generation: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(target: SocketAddr) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let (u, g) = (up.clone(), generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !u.load(Ordering::SeqCst) {
                    continue; // dropped: connection closed at once
                }
                let mut cut = g.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            up,
            generation,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn driver_reconnects_resumes_its_session_and_resubscribes_after_a_broker_restart() {
    let mut broker = Broker::start(free_port());
    let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], broker.port))).await;
    let gw = "mqtt-reconnect-gw";
    let site = site(gw).await;
    let topic = "site/wx1/weather";
    let points = point(
        "irradiance",
        topic,
        Some("/irradiance"),
        Some("/ts"),
        "W/m²",
        "",
    );
    let cfg = site.edge_config(
        gw,
        &mqtt_section(&proxy.addr.to_string(), "edge-reconnect", &points),
    );
    let stop_edge = CancellationToken::new();
    let edge = dcmms_edge::start(cfg, stop_edge.clone()).await.unwrap();
    let m = edge.metrics.clone();
    let msg = |k: i64| json!({"ts": T0 + k, "irradiance": 100.0 + k as f64}).to_string();
    let polled = |n: u64| {
        let m = m.clone();
        move || m.status().samples_polled >= n
    };

    wait_until("subscribed", Duration::from_secs(30), || {
        connected(&m, "wx-01")
    })
    .await;
    broker.publish(topic, &msg(1));
    wait_until("first message", Duration::from_secs(30), polled(1)).await;

    // The link goes down; the broker keeps the session and queues QoS 1.
    proxy.cut();
    wait_until("disconnect noticed", Duration::from_secs(30), || {
        !connected(&m, "wx-01")
    })
    .await;
    broker.publish(topic, &msg(2));
    broker.publish(topic, &msg(3));
    let errors = polls(&m, "wx-01", "error");
    assert!(errors >= 1);
    // It keeps retrying (with backoff) while the link is down...
    wait_until("retries while down", Duration::from_secs(30), || {
        polls(&m, "wx-01", "error") >= errors + 2
    })
    .await;
    assert_eq!(m.status().samples_polled, 1);
    // ...and is back without anyone doing anything once the link is.
    proxy.restore();
    wait_until(
        "queued messages after reconnect",
        Duration::from_secs(30),
        polled(3),
    )
    .await;
    assert!(connected(&m, "wx-01"));

    // The broker restarts without persistence: the session is gone, so the
    // driver must subscribe again (it is only "connected" after the SubAck).
    broker.kill();
    wait_until("broker loss noticed", Duration::from_secs(30), || {
        !connected(&m, "wx-01")
    })
    .await;
    let port = broker.port;
    drop(broker);
    let broker = Broker::start(port);
    wait_until("resubscribed", Duration::from_secs(30), || {
        connected(&m, "wx-01")
    })
    .await;
    broker.publish(topic, &msg(4));
    wait_until("message after restart", Duration::from_secs(30), polled(4)).await;

    stop_edge.cancel();
    edge.wait().await;
    assert_eq!(m.status().samples_acknowledged, 4);
    let stored = site.stored(gw, "wx-01").await;
    assert_eq!(
        values(&stored["irradiance"].1),
        (1..=4)
            .map(|k| good(T0 + k, 100.0 + k as f64))
            .collect::<Vec<_>>()
    );
    site.stop().await;
}

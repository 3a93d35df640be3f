//! The `mqtt` section of a device and its points.
//!
//! Compiled with or without the `mqtt` feature, so a configuration naming an
//! MQTT device is validated the same way by every build (a build without the
//! driver then refuses to start it).
//!
//! ```toml
//! [[devices]]
//! name = "wx-01"
//!
//! [devices.mqtt]
//! host = "127.0.0.1"
//! client_id = "bhadla-gw-01-wx-01"
//!
//! [[devices.mqtt.points]]
//! name = "irradiance"
//! topic = "site/wx1/weather"
//! json_pointer = "/irradiance"
//! timestamp_pointer = "/ts"
//! unit = "W/m²"
//! ```

use super::payload::{validate_filter, validate_pointer};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Connection to one MQTT broker, and what to subscribe to there.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    pub host: String,
    #[serde(default = "d_port")]
    pub port: u16,
    /// Stable across restarts: with `clean_session = false` the broker keeps
    /// the subscriptions and queues QoS 1/2 messages for this id while the
    /// gateway is away. Must be unique per broker.
    pub client_id: String,
    #[serde(default)]
    pub username: Option<String>,
    /// Secret: never shown by `Debug`.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default = "d_keep_alive")]
    pub keep_alive_s: u16,
    /// `false` (the default) asks the broker for a persistent session.
    #[serde(default)]
    pub clean_session: bool,
    /// Subscription QoS: 0, 1 (default) or 2.
    #[serde(default = "d_qos")]
    pub qos: u8,
    /// Reconnect delays: exponential with full jitter between these.
    #[serde(default = "d_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// A bad payload is logged at most once per this many seconds (all are
    /// counted).
    #[serde(default = "d_bad_log")]
    pub bad_payload_log_interval_s: u64,
    /// Largest message accepted. A larger one breaks the connection (MQTT has
    /// no way to refuse one message), so keep this above what devices send.
    #[serde(default = "d_max_payload")]
    pub max_payload_bytes: usize,
    /// Each point maps a topic (a filter may use `+` and `#`) and a JSON
    /// pointer to one value.
    #[serde(default)]
    pub points: Vec<MqttPointConfig>,
}

impl std::fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("keep_alive_s", &self.keep_alive_s)
            .field("clean_session", &self.clean_session)
            .field("qos", &self.qos)
            .field("reconnect_min_ms", &self.reconnect_min_ms)
            .field("reconnect_max_ms", &self.reconnect_max_ms)
            .field(
                "bad_payload_log_interval_s",
                &self.bad_payload_log_interval_s,
            )
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("points", &self.points)
            .finish()
    }
}

/// One value carried in MQTT messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttPointConfig {
    pub name: String,
    /// Topic, or topic filter with `+` / `#`, whose messages carry the value.
    pub topic: String,
    /// RFC 6901 pointer to the number in a JSON payload (`/irradiance`);
    /// without it the whole payload is the number (`"812.5"`).
    #[serde(default)]
    pub json_pointer: Option<String>,
    /// Pointer to the sample time: epoch milliseconds or an RFC 3339 string.
    /// Without it the sample is stamped with the time of receipt.
    #[serde(default)]
    pub timestamp_pointer: Option<String>,
    /// value = raw × scale + offset
    #[serde(default = "d_scale")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    #[serde(default)]
    pub unit: String,
}

fn d_port() -> u16 {
    1883
}
fn d_keep_alive() -> u16 {
    30
}
fn d_qos() -> u8 {
    1
}
fn d_reconnect_min() -> u64 {
    250
}
fn d_reconnect_max() -> u64 {
    30_000
}
fn d_bad_log() -> u64 {
    60
}
fn d_max_payload() -> usize {
    256 * 1024
}
fn d_scale() -> f64 {
    1.0
}

impl MqttConfig {
    /// The distinct topic filters to subscribe to, in point order.
    pub fn filters(&self) -> Vec<String> {
        let mut seen = HashSet::new();
        self.points
            .iter()
            .filter(|p| seen.insert(p.topic.as_str()))
            .map(|p| p.topic.clone())
            .collect()
    }

    /// Checks one device's section; `at` is its path (`devices[2].mqtt`).
    /// Returns the field at fault and the problem.
    pub(crate) fn validate(&self, at: &str) -> Result<(), (String, String)> {
        let f = |name: &str| format!("{at}.{name}");
        let bad = |name: &str, problem: &str| Err((f(name), problem.to_string()));
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty");
        }
        if self.port == 0 {
            return bad("port", "must not be 0");
        }
        if self.client_id.is_empty() || self.client_id.len() > 256 {
            return bad("client_id", "must be 1 to 256 bytes");
        }
        if self.client_id.chars().any(|c| c.is_control() || c == ' ') {
            return bad("client_id", "must not contain spaces or control characters");
        }
        if self.password.is_some() && self.username.is_none() {
            return bad("password", "needs a username (MQTT 3.1.1)");
        }
        if self.keep_alive_s < 5 {
            return bad("keep_alive_s", "must be between 5 and 65535");
        }
        if self.qos > 2 {
            return bad("qos", "must be 0, 1 or 2");
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return bad(
                "reconnect_min_ms",
                "must be positive and not above reconnect_max_ms",
            );
        }
        if self.bad_payload_log_interval_s == 0 {
            return bad("bad_payload_log_interval_s", "must be at least 1");
        }
        if !(64..=16 * 1024 * 1024).contains(&self.max_payload_bytes) {
            return bad("max_payload_bytes", "must be between 64 and 16777216");
        }
        if self.points.is_empty() {
            return bad("points", "at least one point is required");
        }
        let mut names = HashSet::new();
        for (j, p) in self.points.iter().enumerate() {
            let pf = |name: &str| format!("{at}.points[{j}].{name}");
            let pbad = |name: &str, problem: String| Err((pf(name), problem));
            if !crate::config::valid_name(&p.name) {
                return pbad("name", crate::config::name_rule(&p.name));
            }
            if !names.insert(p.name.as_str()) {
                return pbad(
                    "name",
                    format!("{:?} is used by another point of this device", p.name),
                );
            }
            if let Err(why) = validate_filter(&p.topic) {
                return pbad("topic", format!("{:?} {why}", p.topic));
            }
            if let Some(ptr) = &p.json_pointer
                && let Err(why) = validate_pointer(ptr)
            {
                return pbad("json_pointer", format!("{ptr:?} {why}"));
            }
            if let Some(ptr) = &p.timestamp_pointer {
                if let Err(why) = validate_pointer(ptr) {
                    return pbad("timestamp_pointer", format!("{ptr:?} {why}"));
                }
                if p.json_pointer.is_none() {
                    return pbad(
                        "timestamp_pointer",
                        "needs json_pointer: a bare-number payload has no timestamp".into(),
                    );
                }
            }
            if !p.scale.is_finite() || p.scale == 0.0 {
                return pbad("scale", "must be a finite, non-zero number".into());
            }
            if !p.offset.is_finite() {
                return pbad("offset", "must be a finite number".into());
            }
            if p.unit.len() > 32 {
                return pbad("unit", "at most 32 bytes".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::{ConfigError, EdgeConfig};

    /// The example with its commented MQTT device enabled.
    fn with_mqtt() -> String {
        crate::config::example_with_section("MQTT weather station")
            .expect("example has the MQTT block")
    }

    fn broken(from: &str, to: &str) -> ConfigError {
        let text = with_mqtt();
        assert!(text.contains(from), "example lacks {from:?}");
        EdgeConfig::from_toml(&text.replacen(from, to, 1), "edge.toml").unwrap_err()
    }

    #[test]
    fn commented_weather_station_example_is_valid_when_enabled() {
        let cfg = EdgeConfig::from_toml(&with_mqtt(), "edge.example.toml").unwrap();
        assert_eq!(cfg.devices.len(), 2);
        let wx = &cfg.devices[1];
        let m = wx.mqtt.as_ref().unwrap();
        assert!(!m.clean_session);
        assert_eq!((m.qos, m.port, m.keep_alive_s), (1, 1883, 30));
        assert_eq!(m.points.len(), 5);
        assert_eq!(m.filters(), vec!["site/wx1/weather".to_string()]);
        assert_eq!(wx.point_count(), 5);
        assert_eq!(wx.point_name_unit(0), Some(("irradiance", "W/m²")));
        assert_eq!(wx.point_name_unit(5), None);
        // The Modbus device still resolves its points the old way.
        assert_eq!(cfg.devices[0].point_name_unit(0), Some(("ac_power", "W")));
    }

    #[test]
    fn mqtt_point_without_topic_is_named() {
        let e = broken(
            "topic = \"site/wx1/weather\"\njson_pointer = \"/irradiance\"",
            "json_pointer = \"/irradiance\"",
        );
        assert_eq!(e.field, "devices[1].mqtt.points[0].topic", "{e}");
        assert!(e.problem.contains("missing"), "{e}");
    }

    #[test]
    fn invalid_mqtt_fields_are_named_with_their_path() {
        let cases = [
            ("qos = 1", "qos = 3", "devices[1].mqtt.qos", "0, 1 or 2"),
            (
                "keep_alive_s = 30",
                "keep_alive_s = 1",
                "devices[1].mqtt.keep_alive_s",
                "between 5",
            ),
            (
                "client_id = \"bhadla-gw-01-wx-01\"",
                "client_id = \"\"",
                "devices[1].mqtt.client_id",
                "1 to 256",
            ),
            (
                "topic = \"site/wx1/weather\"",
                "topic = \"site/#/weather\"",
                "devices[1].mqtt.points[0].topic",
                "'#'",
            ),
            (
                "json_pointer = \"/irradiance\"",
                "json_pointer = \"irradiance\"",
                "devices[1].mqtt.points[0].json_pointer",
                "must start with '/'",
            ),
            (
                "name = \"module_temperature\"",
                "name = \"irradiance\"",
                "devices[1].mqtt.points[1].name",
                "used by another point",
            ),
            (
                "reconnect_min_ms = 250",
                "reconnect_min_ms = 60000",
                "devices[1].mqtt.reconnect_min_ms",
                "not above",
            ),
            (
                "unit = \"W/m²\"",
                "unit = \"W/m²\"\ncolour = \"red\"",
                "devices[1].mqtt.points[0].colour",
                "unknown field",
            ),
        ];
        for (from, to, field, problem) in cases {
            let e = broken(from, to);
            assert_eq!(e.field, field, "{from} -> {to}: {e}");
            assert!(e.problem.contains(problem), "{from} -> {to}: {e}");
        }
    }

    #[test]
    fn timestamp_pointer_needs_a_json_pointer() {
        let e = broken("json_pointer = \"/irradiance\"\n", "");
        assert_eq!(
            e.field, "devices[1].mqtt.points[0].timestamp_pointer",
            "{e}"
        );
    }

    #[test]
    fn a_device_has_exactly_one_protocol_section() {
        let e = broken(
            "[devices.mqtt]\n",
            "[devices.modbus_tcp]\nhost = \"127.0.0.1\"\n\n[devices.mqtt]\n",
        );
        assert_eq!(e.field, "devices[1].mqtt", "{e}");
        assert!(e.problem.contains("exactly one protocol section"), "{e}");
        let e = broken(
            "[devices.mqtt]\n",
            "[[devices.points]]\nname = \"x\"\naddress = 1\ntype = \"u16\"\n\n[devices.mqtt]\n",
        );
        assert_eq!(e.field, "devices[1].points", "{e}");
        assert!(e.problem.contains("mqtt.points"), "{e}");
    }

    #[test]
    fn two_devices_may_not_share_a_client_id_on_one_broker() {
        let text = with_mqtt();
        let at = text.find("[[devices]]\nname = \"wx-01\"").unwrap();
        let second = text[at..].replace("name = \"wx-01\"", "name = \"wx-02\"");
        let e = EdgeConfig::from_toml(&format!("{text}\n{second}"), "edge.toml").unwrap_err();
        assert_eq!(e.field, "devices[2].mqtt.client_id", "{e}");
    }

    #[test]
    fn debug_output_hides_the_mqtt_password() {
        let text = with_mqtt().replace(
            "keep_alive_s = 30",
            "username = \"gw\"\npassword = \"hunter2-very-secret\"\nkeep_alive_s = 30",
        );
        let cfg = EdgeConfig::from_toml(&text, "x").unwrap();
        assert!(cfg.devices[1].mqtt.as_ref().unwrap().password.is_some());
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("username: Some(\"gw\")"), "{dbg}");
    }
}

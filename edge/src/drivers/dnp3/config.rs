//! The `dnp3` section of a device and its points.
//!
//! Compiled with or without the `dnp3` feature, so a configuration naming a
//! DNP3 device is validated the same way by every build (a build without
//! the driver then refuses to start it).
//!
//! ```toml
//! [[devices]]
//! name = "sub-meter-01"
//!
//! [devices.dnp3]
//! host = "10.0.0.31"
//! port = 20000
//! master_address = 1
//! outstation_address = 1024
//! integrity_interval_ms = 60000
//! event_poll_ms = 5000
//! unsolicited = true
//! time_sync = "lan"
//!
//! [[devices.dnp3.points]]
//! name = "voltage_a"
//! kind = "analog"
//! index = 0
//! unit = "V"
//! scale = 1.0
//! ```

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One DNP3 outstation reached over TCP, and the points read from it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dnp3Config {
    /// Host name or address of the outstation (or of its terminal server).
    pub host: String,
    #[serde(default = "d_port")]
    pub port: u16,
    /// Our (the master's) link-layer address.
    #[serde(default = "d_master_address")]
    pub master_address: u16,
    /// The outstation's link-layer address.
    #[serde(default = "d_outstation_address")]
    pub outstation_address: u16,
    /// Period of the integrity poll (class 0 + 1/2/3). While the link is
    /// down, the points are reported `comms_lost` at this period.
    #[serde(default = "d_integrity_interval")]
    pub integrity_interval_ms: u64,
    /// Period of the event poll (classes 1, 2 and 3); 0 = no periodic event
    /// poll (unsolicited responses and the integrity poll only).
    #[serde(default = "d_event_poll")]
    pub event_poll_ms: u64,
    /// Per-class event poll periods; each, when given, replaces
    /// `event_poll_ms` for its class (0 = never poll that class alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class1_poll_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class2_poll_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class3_poll_ms: Option<u64>,
    /// Ask the outstation to report events unsolicited (classes 1/2/3).
    #[serde(default = "d_true")]
    pub unsolicited: bool,
    /// Answer the outstation's NEED_TIME (IIN1.4) with this procedure.
    #[serde(default)]
    pub time_sync: Dnp3TimeSync,
    /// How long the master waits for each response.
    #[serde(default = "d_response_timeout")]
    pub response_timeout_ms: u64,
    /// A link-status request is sent when nothing was received for this
    /// long (0 = never); it finds half-open connections.
    #[serde(default = "d_keep_alive")]
    pub keep_alive_ms: u64,
    /// Reconnect delays: exponential between these, retried forever.
    #[serde(default = "d_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Measured values.
    #[serde(default)]
    pub points: Vec<Dnp3PointConfig>,
}

/// The time synchronisation procedure (IEEE 1815 §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dnp3TimeSync {
    /// Never write the outstation's clock.
    None,
    /// Record Current Time, then write the time (networks with negligible
    /// delay: Ethernet, TCP).
    #[default]
    Lan,
    /// Delay Measurement, then write the time corrected by it (serial
    /// links, terminal servers).
    NonLan,
}

/// Which kind of DNP3 point a value is (its object group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dnp3PointKind {
    /// Analog input (groups 30/32).
    Analog,
    /// Binary input (groups 1/2): 0 or 1.
    Binary,
    /// Double-bit binary input (groups 3/4): 0 intermediate, 1 off, 2 on,
    /// 3 indeterminate.
    DoubleBit,
    /// Running counter (groups 20/22).
    Counter,
    /// Frozen counter (groups 21/23).
    FrozenCounter,
    /// Analog output status (groups 40/42).
    AnalogOutput,
    /// Binary output status (groups 10/11): 0 or 1.
    BinaryOutput,
}

/// One measured value: a kind and index on the outstation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dnp3PointConfig {
    pub name: String,
    pub kind: Dnp3PointKind,
    /// The point's index within its kind.
    pub index: u16,
    #[serde(default)]
    pub unit: String,
    /// value = raw × scale + offset
    #[serde(default = "d_scale")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
}

fn d_port() -> u16 {
    20000
}
fn d_master_address() -> u16 {
    1
}
fn d_outstation_address() -> u16 {
    1024
}
fn d_integrity_interval() -> u64 {
    60_000
}
fn d_event_poll() -> u64 {
    5_000
}
fn d_true() -> bool {
    true
}
fn d_response_timeout() -> u64 {
    5_000
}
fn d_keep_alive() -> u64 {
    30_000
}
fn d_reconnect_min() -> u64 {
    500
}
fn d_reconnect_max() -> u64 {
    30_000
}
fn d_scale() -> f64 {
    1.0
}

/// Highest link address a station may have; 0xFFF0 and up are reserved
/// (broadcast and self addresses).
pub const MAX_LINK_ADDRESS: u16 = 0xFFEF;

impl Dnp3Config {
    /// The event poll period of class `class` (1, 2 or 3); 0 = none.
    pub fn class_poll_ms(&self, class: u8) -> u64 {
        let own = match class {
            1 => self.class1_poll_ms,
            2 => self.class2_poll_ms,
            _ => self.class3_poll_ms,
        };
        own.unwrap_or(self.event_poll_ms)
    }

    /// Checks one device's section; `at` is its path (`devices[2].dnp3`).
    /// Returns the field at fault and the problem.
    pub(crate) fn validate(&self, at: &str) -> Result<(), (String, String)> {
        let f = |name: &str| format!("{at}.{name}");
        let bad = |name: &str, problem: &str| Err((f(name), problem.to_string()));
        if self.host.trim().is_empty() {
            return bad("host", "must not be empty");
        }
        if self
            .host
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return bad("host", "must not contain spaces or control characters");
        }
        if self.port == 0 {
            return bad("port", "must not be 0");
        }
        if self.master_address > MAX_LINK_ADDRESS {
            return bad(
                "master_address",
                "must be between 0 and 65519 (0xFFF0 and up are reserved)",
            );
        }
        if self.outstation_address > MAX_LINK_ADDRESS {
            return bad(
                "outstation_address",
                "must be between 0 and 65519 (0xFFF0 and up are reserved)",
            );
        }
        if self.master_address == self.outstation_address {
            return bad("outstation_address", "must differ from master_address");
        }
        if !(100..=86_400_000).contains(&self.integrity_interval_ms) {
            return bad("integrity_interval_ms", "must be between 100 and 86400000");
        }
        for (name, v) in [
            ("event_poll_ms", Some(self.event_poll_ms)),
            ("class1_poll_ms", self.class1_poll_ms),
            ("class2_poll_ms", self.class2_poll_ms),
            ("class3_poll_ms", self.class3_poll_ms),
        ] {
            if let Some(v) = v
                && v != 0
                && !(50..=86_400_000).contains(&v)
            {
                return bad(name, "must be 0 (no poll) or between 50 and 86400000");
            }
        }
        if !(100..=60_000).contains(&self.response_timeout_ms) {
            return bad("response_timeout_ms", "must be between 100 and 60000");
        }
        if self.keep_alive_ms != 0 && !(1_000..=3_600_000).contains(&self.keep_alive_ms) {
            return bad(
                "keep_alive_ms",
                "must be 0 (off) or between 1000 and 3600000",
            );
        }
        if self.reconnect_min_ms < 10 || self.reconnect_min_ms > self.reconnect_max_ms {
            return bad(
                "reconnect_min_ms",
                "must be at least 10 and not above reconnect_max_ms",
            );
        }
        if self.reconnect_max_ms > 3_600_000 {
            return bad("reconnect_max_ms", "must be at most 3600000");
        }
        if self.points.is_empty() {
            return bad("points", "at least one point is required");
        }
        let mut names = HashSet::new();
        let mut addresses = HashSet::new();
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
            if !addresses.insert((p.kind, p.index)) {
                return pbad(
                    "index",
                    format!(
                        "{:?} index {} is used by another point of this device",
                        p.kind, p.index
                    ),
                );
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
    use crate::config::EdgeConfig;

    /// Two Modbus devices, then the DNP3 device under test at devices[2].
    fn config(dnp3: &str) -> Result<EdgeConfig, crate::config::ConfigError> {
        let modbus = "[devices.modbus_tcp]\nhost = \"127.0.0.1\"\n[[devices.points]]\nname = \"p\"\naddress = 0\ntype = \"u16\"\n";
        let text = format!(
            r#"
gateway_id = "gw-1"
[cloud]
url = "http://127.0.0.1:1"
credential = "gw-1.secret"
[[devices]]
name = "inv-01"
{modbus}
[[devices]]
name = "inv-02"
{modbus}
[[devices]]
name = "sub-01"
{dnp3}
"#
        );
        EdgeConfig::from_toml(&text, "edge.toml")
    }

    const GOOD: &str = r#"
[devices.dnp3]
host = "127.0.0.1"
[[devices.dnp3.points]]
name = "v_a"
kind = "analog"
index = 0
unit = "V"
scale = 0.1
[[devices.dnp3.points]]
name = "breaker_closed"
kind = "binary"
index = 0
"#;

    fn field_of(dnp3: &str) -> String {
        match config(dnp3) {
            Err(e) => e.field,
            Ok(_) => panic!("accepted:\n{dnp3}"),
        }
    }

    #[test]
    fn a_complete_section_is_accepted_with_its_defaults() {
        let cfg = config(GOOD).unwrap();
        let d = &cfg.devices[2];
        let s = d.dnp3.as_ref().unwrap();
        assert_eq!(s.port, 20000);
        assert_eq!((s.master_address, s.outstation_address), (1, 1024));
        assert_eq!(s.time_sync, super::Dnp3TimeSync::Lan);
        assert!(s.unsolicited);
        assert_eq!(s.class_poll_ms(2), 5000);
        assert_eq!(d.point_count(), 2);
        assert_eq!(d.point_name_unit(0), Some(("v_a", "V")));
        assert_eq!(d.point_name_unit(1), Some(("breaker_closed", "")));
        assert_eq!(d.point_name_unit(2), None);
    }

    #[test]
    fn errors_name_the_field_at_fault() {
        let cases = [
            (
                GOOD.replace("index = 0\nunit", "index = 0\nbogus = 1\nunit"),
                "devices[2].dnp3.points[0].bogus",
            ),
            (
                GOOD.replace(
                    "kind = \"binary\"\nindex = 0",
                    "kind = \"analog\"\nindex = 0",
                ),
                "devices[2].dnp3.points[1].index",
            ),
            (
                GOOD.replace("name = \"breaker_closed\"", "name = \"v_a\""),
                "devices[2].dnp3.points[1].name",
            ),
            (
                GOOD.replace("scale = 0.1", "scale = 0.0"),
                "devices[2].dnp3.points[0].scale",
            ),
            (
                GOOD.replace("host = \"127.0.0.1\"", "host = \"\""),
                "devices[2].dnp3.host",
            ),
            (
                GOOD.replace("host = \"127.0.0.1\"", "host = \"h\"\nport = 0"),
                "devices[2].dnp3.port",
            ),
            (
                GOOD.replace(
                    "host = \"127.0.0.1\"",
                    "host = \"h\"\nmaster_address = 65520",
                ),
                "devices[2].dnp3.master_address",
            ),
            (
                GOOD.replace(
                    "host = \"127.0.0.1\"",
                    "host = \"h\"\noutstation_address = 1",
                ),
                "devices[2].dnp3.outstation_address",
            ),
            (
                GOOD.replace(
                    "host = \"127.0.0.1\"",
                    "host = \"h\"\nintegrity_interval_ms = 5",
                ),
                "devices[2].dnp3.integrity_interval_ms",
            ),
            (
                GOOD.replace("host = \"127.0.0.1\"", "host = \"h\"\nclass2_poll_ms = 3"),
                "devices[2].dnp3.class2_poll_ms",
            ),
            (
                GOOD.replace("host = \"127.0.0.1\"", "host = \"h\"\ntime_sync = \"gps\""),
                "devices[2].dnp3.time_sync",
            ),
            (
                GOOD.replace("host = \"127.0.0.1\"", "host = \"h\"\nreconnect_min_ms = 5"),
                "devices[2].dnp3.reconnect_min_ms",
            ),
            (
                GOOD.replace("kind = \"binary\"", "kind = \"octet\""),
                "devices[2].dnp3.points[1].kind",
            ),
            (
                "[devices.dnp3]\nhost = \"h\"\n".to_string(),
                "devices[2].dnp3.points",
            ),
        ];
        for (text, field) in cases {
            assert_eq!(field_of(&text), field, "{text}");
        }
    }

    #[test]
    fn commented_meter_example_is_valid_when_enabled() {
        let text = crate::config::example_with_section("DNP3 substation meter").unwrap();
        let cfg = EdgeConfig::from_toml(&text, "edge.example.toml").unwrap();
        assert_eq!(cfg.devices.len(), 2);
        let m = &cfg.devices[1];
        assert_eq!(m.point_count(), 4);
        assert_eq!(m.point_name_unit(1), Some(("frequency", "Hz")));
        assert_eq!(m.dnp3.as_ref().unwrap().points[1].scale, 0.01);
    }

    #[test]
    fn a_device_has_exactly_one_protocol_section() {
        let text = format!("{GOOD}[devices.modbus_tcp]\nhost = \"127.0.0.1\"\n");
        assert_eq!(field_of(&text), "devices[2].dnp3");
        let text = format!("{GOOD}[[devices.points]]\nname = \"x\"\naddress = 0\ntype = \"u16\"\n");
        assert_eq!(field_of(&text), "devices[2].points");
    }
}

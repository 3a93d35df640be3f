//! The `opcua` section of a device and its points.
//!
//! Compiled with or without the `opcua` feature, so a configuration naming
//! an OPC UA device is validated the same way by every build (a build
//! without the driver then refuses to start it).
//!
//! ```toml
//! [[devices]]
//! name = "wtg-01"
//!
//! [devices.opcua]
//! endpoint_url = "opc.tcp://10.0.0.21:4840/"
//! publishing_interval_ms = 1000
//!
//! [[devices.opcua.points]]
//! name = "wind_speed"
//! node_id = "ns=2;s=Turbine1.WindSpeed"
//! unit = "m/s"
//! deadband_abs = 0.1
//! ```
//!
//! Or, with no points, browse for them:
//!
//! ```toml
//! [devices.opcua]
//! endpoint_url = "opc.tcp://10.0.0.21:4840/"
//! discover = "browse"
//! browse_root = "ns=2;s=Turbine1"
//! ```

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// Connection to one OPC UA server, and what to monitor there.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcuaConfig {
    /// `opc.tcp://host:port/path` of the server's endpoint.
    pub endpoint_url: String,
    /// Message security. Only `none` (no signing, no encryption, anonymous
    /// user) is implemented for now.
    #[serde(default)]
    pub security: OpcuaSecurity,
    /// Requested session timeout; the server may revise it.
    #[serde(default = "d_session_timeout")]
    pub session_timeout_ms: u64,
    /// How often the server publishes the changes it collected.
    #[serde(default = "d_publishing_interval")]
    pub publishing_interval_ms: u64,
    /// How often the server samples each monitored item (0 = as fast as
    /// the server can).
    #[serde(default = "d_sampling_interval")]
    pub sampling_interval_ms: u64,
    /// Changes the server may queue per item between two publishes.
    #[serde(default = "d_queue_size")]
    pub queue_size: u32,
    /// Per service request (read, browse, create subscription, …).
    #[serde(default = "d_request_timeout")]
    pub request_timeout_ms: u64,
    /// Reconnect and resubscribe delays: exponential between these, retried
    /// forever.
    #[serde(default = "d_reconnect_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "d_reconnect_max")]
    pub reconnect_max_ms: u64,
    /// Where the client keeps its certificate store. With security `none`
    /// nothing is read from it, but the library creates it; default: a
    /// `dcmms-edge-opcua-pki` directory under the system's temporary
    /// directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pki_dir: Option<PathBuf>,
    /// Find the points by browsing instead of listing them (`points` must
    /// then be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discover: Option<OpcuaDiscovery>,
    /// The node browsing starts from (with `discover = "browse"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browse_root: Option<String>,
    /// Most points discovery makes (and most nodes it visits ten times over).
    #[serde(default = "d_max_discovered")]
    pub max_discovered_points: usize,
    /// Monitored values.
    #[serde(default)]
    pub points: Vec<OpcuaPointConfig>,
    /// The points browsing found, shared by every clone of this section (so
    /// the batcher names what the driver found).
    #[serde(skip)]
    pub discovered: DiscoveredOpcuaPoints,
}

/// Message security of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcuaSecurity {
    /// SecurityPolicy None, MessageSecurityMode None, anonymous identity.
    #[default]
    None,
}

/// How an OPC UA device's points are found when `points` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpcuaDiscovery {
    /// Browse the hierarchy below `browse_root` for Variable nodes whose
    /// value is a number.
    Browse,
}

/// One monitored value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpcuaPointConfig {
    pub name: String,
    /// The node's id in the OPC UA string form, e.g. `ns=2;s=Turbine1.WindSpeed`
    /// or `ns=3;i=1042`.
    pub node_id: String,
    #[serde(default)]
    pub unit: String,
    /// Data-change filter: report a change only when the value moved by
    /// more than this (in the server's units, before scale/offset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband_abs: Option<f64>,
    /// Data-change filter: percent of the node's EURange (the server must
    /// know the range, or it refuses the item).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadband_pct: Option<f64>,
    /// value = raw × scale + offset
    #[serde(default = "d_scale")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
}

/// Points found on the server at run time; set once, then read by driver
/// and batcher alike.
#[derive(Debug, Clone, Default)]
pub struct DiscoveredOpcuaPoints(Arc<OnceLock<Vec<OpcuaPointConfig>>>);

impl DiscoveredOpcuaPoints {
    /// Records the discovered points; `false` if they were already set.
    pub fn set(&self, points: Vec<OpcuaPointConfig>) -> bool {
        self.0.set(points).is_ok()
    }

    pub fn get(&self) -> Option<&[OpcuaPointConfig]> {
        self.0.get().map(Vec::as_slice)
    }
}

fn d_session_timeout() -> u64 {
    60_000
}
fn d_publishing_interval() -> u64 {
    1000
}
fn d_sampling_interval() -> u64 {
    500
}
fn d_queue_size() -> u32 {
    10
}
fn d_request_timeout() -> u64 {
    10_000
}
fn d_reconnect_min() -> u64 {
    250
}
fn d_reconnect_max() -> u64 {
    30_000
}
fn d_max_discovered() -> usize {
    1000
}
fn d_scale() -> f64 {
    1.0
}

impl OpcuaConfig {
    /// The configured points, or the discovered ones (empty until browsing
    /// succeeded).
    pub fn points(&self) -> &[OpcuaPointConfig] {
        if self.points.is_empty() {
            self.discovered.get().unwrap_or(&[])
        } else {
            &self.points
        }
    }

    /// Checks one device's section; `at` is its path (`devices[2].opcua`).
    /// Returns the field at fault and the problem.
    pub(crate) fn validate(&self, at: &str) -> Result<(), (String, String)> {
        let f = |name: &str| format!("{at}.{name}");
        let bad = |name: &str, problem: &str| Err((f(name), problem.to_string()));
        if let Err(why) = validate_endpoint_url(&self.endpoint_url) {
            return Err((f("endpoint_url"), format!("{:?} {why}", self.endpoint_url)));
        }
        if !(10_000..=3_600_000).contains(&self.session_timeout_ms) {
            return bad("session_timeout_ms", "must be between 10000 and 3600000");
        }
        if !(50..=3_600_000).contains(&self.publishing_interval_ms) {
            return bad("publishing_interval_ms", "must be between 50 and 3600000");
        }
        if self.sampling_interval_ms > 3_600_000 {
            return bad("sampling_interval_ms", "must be at most 3600000");
        }
        if !(1..=1000).contains(&self.queue_size) {
            return bad("queue_size", "must be between 1 and 1000");
        }
        if !(100..=600_000).contains(&self.request_timeout_ms) {
            return bad("request_timeout_ms", "must be between 100 and 600000");
        }
        if self.reconnect_min_ms == 0 || self.reconnect_min_ms > self.reconnect_max_ms {
            return bad(
                "reconnect_min_ms",
                "must be positive and not above reconnect_max_ms",
            );
        }
        if self.reconnect_max_ms > u64::from(u32::MAX) {
            return bad("reconnect_max_ms", "must be at most 4294967295");
        }
        if !(1..=100_000).contains(&self.max_discovered_points) {
            return bad("max_discovered_points", "must be between 1 and 100000");
        }
        match (self.discover, &self.browse_root) {
            (Some(OpcuaDiscovery::Browse), None) => {
                return bad(
                    "browse_root",
                    "missing: discover = \"browse\" needs the node to start from",
                );
            }
            (Some(OpcuaDiscovery::Browse), Some(root)) => {
                if let Err(why) = validate_node_id(root) {
                    return Err((f("browse_root"), format!("{root:?} {why}")));
                }
                if !self.points.is_empty() {
                    return bad(
                        "points",
                        "a device with discover finds its points itself; remove points or discover",
                    );
                }
                return Ok(());
            }
            (None, Some(_)) => {
                return bad("browse_root", "only used with discover = \"browse\"");
            }
            (None, None) => {}
        }
        if self.points.is_empty() {
            return bad(
                "points",
                "at least one point is required (or discover = \"browse\")",
            );
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
            if let Err(why) = validate_node_id(&p.node_id) {
                return pbad("node_id", format!("{:?} {why}", p.node_id));
            }
            if p.deadband_abs.is_some() && p.deadband_pct.is_some() {
                return pbad(
                    "deadband_pct",
                    "a point has one deadband: deadband_abs or deadband_pct".into(),
                );
            }
            if let Some(d) = p.deadband_abs
                && !(d.is_finite() && d >= 0.0)
            {
                return pbad(
                    "deadband_abs",
                    "must be a finite, non-negative number".into(),
                );
            }
            if let Some(d) = p.deadband_pct
                && !(0.0..=100.0).contains(&d)
            {
                return pbad("deadband_pct", "must be between 0 and 100".into());
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

/// `opc.tcp://host[:port][/path]`.
fn validate_endpoint_url(url: &str) -> Result<(), &'static str> {
    let rest = url
        .strip_prefix("opc.tcp://")
        .ok_or("must start with opc.tcp://")?;
    let authority = rest.split('/').next().unwrap_or_default();
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (h, Some(p)),
        _ => (authority, None),
    };
    if host.trim_matches(['[', ']']).is_empty() {
        return Err("has no host");
    }
    if let Some(p) = port
        && !matches!(p.parse::<u16>(), Ok(n) if n > 0)
    {
        return Err("has an invalid port");
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters");
    }
    Ok(())
}

/// The OPC UA string form of a node id: optional `ns=<0..65535>;` then
/// `i=<u32>`, `s=<text>`, `g=<guid>` or `b=<base64>`. (The driver parses
/// it with the library as well; this check needs no feature.)
pub fn validate_node_id(s: &str) -> Result<(), &'static str> {
    let rest = match s.strip_prefix("ns=") {
        Some(r) => {
            let (ns, rest) = r.split_once(';').ok_or("needs ';' after ns=<index>")?;
            ns.parse::<u16>()
                .map_err(|_| "has a namespace index that is not 0 to 65535")?;
            rest
        }
        None => s,
    };
    let (kind, id) = rest
        .split_once('=')
        .ok_or("must look like ns=2;s=Name or ns=2;i=123")?;
    match kind {
        "i" => id
            .parse::<u32>()
            .map(|_| ())
            .map_err(|_| "has a numeric identifier that is not a u32"),
        "s" if !id.is_empty() && id.len() <= 4096 => Ok(()),
        "s" => Err("has an empty or over-long string identifier"),
        "g" if id.len() == 36
            && id.bytes().enumerate().all(|(k, b)| {
                matches!(k, 8 | 13 | 18 | 23) == (b == b'-') && (b == b'-' || b.is_ascii_hexdigit())
            }) =>
        {
            Ok(())
        }
        "g" => Err("has a GUID that is not 8-4-4-4-12 hex digits"),
        "b" if !id.is_empty() => Ok(()),
        "b" => Err("has an empty opaque identifier"),
        _ => Err("must have an identifier of type i=, s=, g= or b="),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, EdgeConfig};

    const BASE: &str = r#"
gateway_id = "gw-1"
[cloud]
url = "http://127.0.0.1:1"
credential = "gw-1.secret"
[[devices]]
name = "wtg-01"
[devices.opcua]
endpoint_url = "opc.tcp://127.0.0.1:4840/"
publishing_interval_ms = 500
[[devices.opcua.points]]
name = "wind_speed"
node_id = "ns=2;s=Turbine1.WindSpeed"
unit = "m/s"
deadband_abs = 0.1
[[devices.opcua.points]]
name = "active_power_kw"
node_id = "ns=2;s=Turbine1.ActivePower"
unit = "kW"
scale = 0.001
"#;

    fn broken(from: &str, to: &str) -> ConfigError {
        assert!(BASE.contains(from), "base lacks {from:?}");
        EdgeConfig::from_toml(&BASE.replacen(from, to, 1), "edge.toml").unwrap_err()
    }

    #[test]
    fn commented_turbine_example_is_valid_when_enabled() {
        let text = crate::config::example_with_section("OPC UA wind turbine").unwrap();
        let cfg = EdgeConfig::from_toml(&text, "edge.example.toml").unwrap();
        assert_eq!(cfg.devices.len(), 2);
        let t = &cfg.devices[1];
        assert_eq!(t.point_count(), 3);
        assert_eq!(t.point_name_unit(2), Some(("gearbox_temperature", "°C")));
        // Still one device when left commented out.
        assert_eq!(
            EdgeConfig::from_toml(crate::config::EXAMPLE, "x")
                .unwrap()
                .devices
                .len(),
            1
        );
    }

    #[test]
    fn an_opcua_device_is_valid_and_names_its_points() {
        let cfg = EdgeConfig::from_toml(BASE, "edge.toml").unwrap();
        let d = &cfg.devices[0];
        let o = d.opcua.as_ref().unwrap();
        assert_eq!(o.security, OpcuaSecurity::None);
        assert_eq!(
            (o.session_timeout_ms, o.publishing_interval_ms),
            (60_000, 500)
        );
        assert_eq!(o.points[0].deadband_abs, Some(0.1));
        assert_eq!(d.point_count(), 2);
        assert_eq!(d.point_name_unit(1), Some(("active_power_kw", "kW")));
        assert_eq!(d.point_name_unit(2), None);
    }

    #[test]
    fn invalid_opcua_fields_are_named_with_their_path() {
        let cases = [
            (
                "endpoint_url = \"opc.tcp://127.0.0.1:4840/\"",
                "endpoint_url = \"http://127.0.0.1:4840/\"",
                "devices[0].opcua.endpoint_url",
                "opc.tcp://",
            ),
            (
                "endpoint_url = \"opc.tcp://127.0.0.1:4840/\"",
                "endpoint_url = \"opc.tcp://127.0.0.1:0/\"",
                "devices[0].opcua.endpoint_url",
                "port",
            ),
            (
                "publishing_interval_ms = 500",
                "publishing_interval_ms = 5",
                "devices[0].opcua.publishing_interval_ms",
                "between",
            ),
            (
                "publishing_interval_ms = 500",
                "security = \"basic256\"",
                "devices[0].opcua.security",
                "unknown variant",
            ),
            (
                "node_id = \"ns=2;s=Turbine1.WindSpeed\"",
                "node_id = \"Turbine1.WindSpeed\"",
                "devices[0].opcua.points[0].node_id",
                "ns=2;s=Name",
            ),
            (
                "node_id = \"ns=2;s=Turbine1.WindSpeed\"",
                "node_id = \"ns=99999;i=3\"",
                "devices[0].opcua.points[0].node_id",
                "namespace index",
            ),
            (
                "deadband_abs = 0.1",
                "deadband_abs = 0.1\ndeadband_pct = 2.0",
                "devices[0].opcua.points[0].deadband_pct",
                "one deadband",
            ),
            (
                "deadband_abs = 0.1",
                "deadband_abs = -1.0",
                "devices[0].opcua.points[0].deadband_abs",
                "non-negative",
            ),
            (
                "name = \"active_power_kw\"",
                "name = \"wind_speed\"",
                "devices[0].opcua.points[1].name",
                "used by another point",
            ),
            (
                "scale = 0.001",
                "scale = 0.0",
                "devices[0].opcua.points[1].scale",
                "non-zero",
            ),
            (
                "unit = \"m/s\"",
                "unit = \"m/s\"\ncolour = \"red\"",
                "devices[0].opcua.points[0].colour",
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
    fn a_device_has_exactly_one_protocol_section() {
        let e = broken(
            "[devices.opcua]\n",
            "[devices.modbus_tcp]\nhost = \"127.0.0.1\"\n\n[devices.opcua]\n",
        );
        assert_eq!(e.field, "devices[0].opcua", "{e}");
        assert!(e.problem.contains("exactly one protocol section"), "{e}");
        let e = broken(
            "[devices.opcua]\n",
            "[devices.mqtt]\nhost = \"h\"\nclient_id = \"c\"\n\n[devices.opcua]\n",
        );
        assert_eq!(e.field, "devices[0].opcua", "{e}");
        let e = broken(
            "[devices.opcua]\n",
            "[[devices.points]]\nname = \"x\"\naddress = 1\ntype = \"u16\"\n\n[devices.opcua]\n",
        );
        assert_eq!(e.field, "devices[0].points", "{e}");
        assert!(e.problem.contains("opcua.points"), "{e}");
        let e = broken(
            "name = \"wtg-01\"\n",
            "name = \"wtg-01\"\ndiscover = \"sunspec\"\n",
        );
        assert_eq!(e.field, "devices[0].discover", "{e}");
    }

    #[test]
    fn browse_discovery_needs_a_root_and_no_points() {
        let start = BASE.find("[[devices.opcua.points]]").unwrap();
        let head = &BASE[..start];
        let ok = format!("{head}discover = \"browse\"\nbrowse_root = \"ns=2;s=Turbine1\"\n");
        let cfg = EdgeConfig::from_toml(&ok, "edge.toml").unwrap();
        let d = &cfg.devices[0];
        assert_eq!(d.point_count(), 0);
        let o = d.opcua.as_ref().unwrap();
        assert!(o.discovered.set(vec![OpcuaPointConfig {
            name: "WindSpeed".into(),
            node_id: "ns=2;s=Turbine1.WindSpeed".into(),
            unit: String::new(),
            deadband_abs: None,
            deadband_pct: None,
            scale: 1.0,
            offset: 0.0,
        }]));
        // Clones (the batcher's copy) see what discovery found.
        let clone = d.clone();
        assert_eq!(clone.point_name_unit(0), Some(("WindSpeed", "")));

        let no_root = format!("{head}discover = \"browse\"\n");
        let e = EdgeConfig::from_toml(&no_root, "edge.toml").unwrap_err();
        assert_eq!(e.field, "devices[0].opcua.browse_root", "{e}");
        let both = BASE.replacen(
            "publishing_interval_ms = 500",
            "discover = \"browse\"\nbrowse_root = \"ns=2;s=Turbine1\"",
            1,
        );
        let e = EdgeConfig::from_toml(&both, "edge.toml").unwrap_err();
        assert_eq!(e.field, "devices[0].opcua.points", "{e}");
        let no_points = head.to_string();
        let e = EdgeConfig::from_toml(&no_points, "edge.toml").unwrap_err();
        assert_eq!(e.field, "devices[0].opcua.points", "{e}");
    }

    #[test]
    fn node_ids_in_every_form_are_accepted() {
        for ok in [
            "i=85",
            "ns=0;i=2253",
            "ns=2;s=Turbine1.WindSpeed",
            "ns=3;g=72962B91-FA75-4AE6-8D28-B404DC7DAF63",
            "ns=1;b=M/RbKBsRVkePCePcx24oRA==",
        ] {
            assert_eq!(validate_node_id(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "ns=2",
            "ns=x;i=1",
            "ns=2;i=-1",
            "ns=2;s=",
            "ns=2;g=not-a-guid",
            "ns=2;q=1",
        ] {
            assert!(validate_node_id(bad).is_err(), "{bad}");
        }
    }
}

//! Edge configuration: defaults, then the TOML file, then `DCMMS_…`
//! environment variables (`__` separates levels: `DCMMS_CLOUD__CREDENTIAL`).
//!
//! The whole file is parsed and validated before anything starts; every error
//! names the file, the field (as a path like `devices[1].points[3].address`)
//! and what is wrong.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub use crate::anomaly::config::{AnomalyAssetConfig, AnomalyConfig, AnomalyModelConfig};
pub use crate::drivers::dnp3::config::{Dnp3Config, Dnp3PointConfig, Dnp3PointKind, Dnp3TimeSync};
pub use crate::drivers::mqtt::config::{MqttConfig, MqttPointConfig};
pub use crate::drivers::opcua::config::{OpcuaConfig, OpcuaPointConfig};
pub use crate::pipeline::exception::{ReportConfig, ReportOverride};

/// The commented example printed by `dcmms-edge print-config`.
pub const EXAMPLE: &str = include_str!("../edge.example.toml");

/// [`EXAMPLE`] with one of its optional sections enabled: the lines from
/// the section's `# --- <title>` marker to the next marker (or the end)
/// lose one leading `#` (and the space after it); the rest is unchanged.
/// `None` when there is no section of that title.
pub fn example_with_section(title: &str) -> Option<String> {
    let start = EXAMPLE.find(&format!("# --- {title}"))?;
    let body = start + EXAMPLE[start..].find('\n')? + 1;
    let end = EXAMPLE[body..]
        .find("\n# --- ")
        .map_or(EXAMPLE.len(), |i| body + i + 1);
    let mut text = EXAMPLE[..start].to_string();
    for line in EXAMPLE[body..end].lines() {
        let line = line.strip_prefix('#').unwrap_or(line);
        text.push_str(line.strip_prefix(' ').unwrap_or(line));
        text.push('\n');
    }
    text.push_str(&EXAMPLE[end..]);
    Some(text)
}

/// A configuration error: which file, which field, what is wrong.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{file}: {field}: {problem}")]
pub struct ConfigError {
    pub file: String,
    pub field: String,
    pub problem: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// The id the cloud knows this gateway by.
    pub gateway_id: String,
    pub cloud: CloudLink,
    #[serde(default)]
    pub buffer: BufferConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub devices: Vec<DeviceConfig>,
    /// Named point lists that many devices of one model share
    /// (`template = "…"` on the device), so 400 identical inverters do not
    /// repeat their register map 400 times.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<PointTemplate>,
    /// Anomaly models and the assets they score
    /// (docs/specs/anomaly-models.md).
    #[serde(default, skip_serializing_if = "AnomalyConfig::is_empty")]
    pub anomaly: AnomalyConfig,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudLink {
    /// Base URL of the cloud service, e.g. `https://cloud.example.com`.
    pub url: String,
    /// The gateway credential printed by `dcmms-cloud gateway add`.
    pub credential: String,
    #[serde(default = "d_request_timeout")]
    pub request_timeout_ms: u64,
    #[serde(default = "d_backoff_min")]
    pub backoff_min_ms: u64,
    #[serde(default = "d_backoff_max")]
    pub backoff_max_ms: u64,
    /// At shutdown, how long to keep uploading buffered batches.
    #[serde(default = "d_shutdown_grace")]
    pub shutdown_grace_ms: u64,
    /// Most bytes per second spent on the backlog after an outage (live data
    /// is not limited). 0 = no limit.
    #[serde(default = "d_backlog_rate")]
    pub backlog_bytes_per_s: u64,
}

impl std::fmt::Debug for CloudLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CloudLink")
            .field("url", &self.url)
            .field("credential", &"***")
            .field("request_timeout_ms", &self.request_timeout_ms)
            .field("backoff_min_ms", &self.backoff_min_ms)
            .field("backoff_max_ms", &self.backoff_max_ms)
            .field("shutdown_grace_ms", &self.shutdown_grace_ms)
            .field("backlog_bytes_per_s", &self.backlog_bytes_per_s)
            .finish()
    }
}

fn d_request_timeout() -> u64 {
    10_000
}
fn d_backoff_min() -> u64 {
    500
}
fn d_backoff_max() -> u64 {
    60_000
}
fn d_shutdown_grace() -> u64 {
    5_000
}
fn d_backlog_rate() -> u64 {
    1024 * 1024
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    /// Directory of the sled database.
    pub path: PathBuf,
    /// Longest time a polled sample waits in memory before it is sealed into
    /// a chunk and flushed to disk: the durability window.
    pub flush_interval_ms: u64,
    /// Most bytes of sealed chunks kept on disk; the oldest go first.
    pub max_bytes: u64,
    /// sled's page cache (its default of 1 GiB is too much for a gateway).
    pub cache_capacity_bytes: u64,
    /// Buffered data older than this is dropped (and reported).
    pub max_age_hours: u64,
    /// Never-sent batches older than this are merged into larger ones.
    pub compact_after_ms: u64,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            path: PathBuf::from("dcmms-edge-buffer"),
            flush_interval_ms: 500,
            max_bytes: 2 * 1024 * 1024 * 1024,
            cache_capacity_bytes: 64 * 1024 * 1024,
            max_age_hours: 7 * 24,
            compact_after_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Where `/metrics`, `/healthz` and `/api/v1/status` are served.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9100)),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique within the gateway; becomes the `device` of every sample.
    pub name: String,
    #[serde(default = "d_poll_interval")]
    pub poll_interval_ms: u64,
    /// Exactly one protocol section.
    pub modbus_tcp: Option<ModbusTcpConfig>,
    /// A Modbus RTU device on a serial line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub modbus_rtu: Option<ModbusRtuConfig>,
    /// Find the points on the device instead of listing them (Modbus only;
    /// `points` must then be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discover: Option<Discovery>,
    /// The points discovery found, shared by every clone of this device's
    /// configuration (so the batcher sees what the driver found).
    #[serde(skip)]
    pub discovered: DiscoveredPoints,
    /// An MQTT device: broker, subscriptions and its points (which live in
    /// `mqtt.points`, not in `points`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttConfig>,
    /// An OPC UA device: server, subscription settings and its points
    /// (which live in `opcua.points`, not in `points`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opcua: Option<OpcuaConfig>,
    /// A DNP3 outstation over TCP: link addresses, polls, unsolicited
    /// reporting, time sync and its points (which live in `dnp3.points`,
    /// not in `points`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dnp3: Option<Dnp3Config>,
    /// Register points of a Modbus device.
    #[serde(default)]
    pub points: Vec<PointConfig>,
    /// Take `points` from the template of this name (Modbus; `points`
    /// must then be empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Report-by-exception (deadbands, maximum silence) for this device's
    /// points, any protocol; without it every sample is sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<ReportConfig>,
    /// Points polled at their own interval instead of `poll_interval_ms`
    /// (polled protocols only: Modbus).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub poll_groups: Vec<PollGroupConfig>,
}

/// A register map shared by the devices of one model.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointTemplate {
    pub name: String,
    pub points: Vec<PointConfig>,
}

/// Points of a polled device that share their own poll interval, named so
/// that discovered points can be grouped too.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PollGroupConfig {
    pub name: String,
    pub interval_ms: u64,
    /// Point names; a point is in at most one group, and points in no group
    /// poll at the device's `poll_interval_ms`.
    pub points: Vec<String>,
}

impl DeviceConfig {
    /// Name and unit of point `index` of this device, whatever its protocol
    /// (the index a driver puts in a [`crate::drivers::Reading`]).
    pub fn point_name_unit(&self, index: usize) -> Option<(&str, &str)> {
        if let Some(d) = &self.dnp3 {
            return d
                .points
                .get(index)
                .map(|p| (p.name.as_str(), p.unit.as_str()));
        }
        if let Some(o) = &self.opcua {
            return o
                .points()
                .get(index)
                .map(|p| (p.name.as_str(), p.unit.as_str()));
        }
        match &self.mqtt {
            Some(m) => m
                .points
                .get(index)
                .map(|p| (p.name.as_str(), p.unit.as_str())),
            None => self
                .modbus_points()
                .get(index)
                .map(|p| (p.name.as_str(), p.unit.as_str())),
        }
    }

    /// How many points this device has, whatever its protocol (for a
    /// discovering Modbus device, 0 until discovery succeeded).
    pub fn point_count(&self) -> usize {
        if let Some(d) = &self.dnp3 {
            return d.points.len();
        }
        if let Some(o) = &self.opcua {
            return o.points().len();
        }
        self.mqtt
            .as_ref()
            .map_or(self.modbus_points().len(), |m| m.points.len())
    }
}

fn d_poll_interval() -> u64 {
    1000
}

/// How a device's points are found when `points` is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Discovery {
    /// Walk the SunSpec model chain (marker `SunS` at 40000, 50000 or 0).
    Sunspec,
}

/// Points found on the device at run time; set once, then read by driver
/// and batcher alike.
#[derive(Debug, Clone, Default)]
pub struct DiscoveredPoints(std::sync::Arc<std::sync::OnceLock<Vec<PointConfig>>>);

impl DiscoveredPoints {
    /// Records the discovered points; `false` if they were already set.
    pub fn set(&self, points: Vec<PointConfig>) -> bool {
        self.0.set(points).is_ok()
    }

    pub fn get(&self) -> Option<&[PointConfig]> {
        self.0.get().map(Vec::as_slice)
    }
}

/// The common request settings of Modbus TCP and RTU.
#[derive(Debug, Clone, Copy)]
pub struct ModbusRequestSettings {
    pub unit_id: u8,
    pub timeout_ms: u64,
    pub max_gap: u16,
    pub max_registers_per_read: u16,
}

impl DeviceConfig {
    /// The configured points, or the discovered ones for a device with
    /// `discover` (empty until discovery succeeded).
    pub fn modbus_points(&self) -> &[PointConfig] {
        if self.points.is_empty() {
            self.discovered.get().unwrap_or(&[])
        } else {
            &self.points
        }
    }

    /// The Modbus request settings, whichever Modbus section the device has.
    pub fn modbus_settings(&self) -> Option<ModbusRequestSettings> {
        if let Some(m) = &self.modbus_tcp {
            Some(ModbusRequestSettings {
                unit_id: m.unit_id,
                timeout_ms: m.timeout_ms,
                max_gap: m.max_gap,
                max_registers_per_read: m.max_registers_per_read,
            })
        } else {
            self.modbus_rtu.as_ref().map(|m| ModbusRequestSettings {
                unit_id: m.unit_id,
                timeout_ms: m.timeout_ms,
                max_gap: m.max_gap,
                max_registers_per_read: m.max_registers_per_read,
            })
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusTcpConfig {
    pub host: String,
    #[serde(default = "d_modbus_port")]
    pub port: u16,
    #[serde(default = "d_unit_id")]
    pub unit_id: u8,
    /// Per request; a request that takes longer drops the connection.
    #[serde(default = "d_modbus_timeout")]
    pub timeout_ms: u64,
    /// Unused registers a merged read may span to save a request.
    #[serde(default = "d_max_gap")]
    pub max_gap: u16,
    /// Largest read (the protocol allows 125 registers).
    #[serde(default = "d_max_read")]
    pub max_registers_per_read: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModbusRtuConfig {
    /// The serial device, e.g. `/dev/ttyUSB0`. One device per port for now.
    pub path: String,
    #[serde(default = "d_baud_rate")]
    pub baud_rate: u32,
    #[serde(default)]
    pub parity: SerialParity,
    /// 7 or 8.
    #[serde(default = "d_data_bits")]
    pub data_bits: u8,
    /// 1 or 2.
    #[serde(default = "d_stop_bits")]
    pub stop_bits: u8,
    #[serde(default = "d_unit_id")]
    pub unit_id: u8,
    /// Per request; a request that takes longer reopens the port.
    #[serde(default = "d_modbus_timeout")]
    pub timeout_ms: u64,
    #[serde(default = "d_max_gap")]
    pub max_gap: u16,
    #[serde(default = "d_max_read")]
    pub max_registers_per_read: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SerialParity {
    #[default]
    None,
    Even,
    Odd,
}

fn d_baud_rate() -> u32 {
    9600
}
fn d_data_bits() -> u8 {
    8
}
fn d_stop_bits() -> u8 {
    1
}

fn d_modbus_port() -> u16 {
    502
}
fn d_unit_id() -> u8 {
    1
}
fn d_modbus_timeout() -> u64 {
    1000
}
fn d_max_gap() -> u16 {
    16
}
fn d_max_read() -> u16 {
    125
}

/// Which Modbus table a point lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterTable {
    Holding,
    Input,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    /// SunSpec accumulator: unsigned 32-bit, 0 means not implemented.
    Acc32,
}

impl DataType {
    pub fn registers(self) -> u16 {
        match self {
            DataType::U16 | DataType::I16 => 1,
            DataType::U32 | DataType::I32 | DataType::F32 | DataType::Acc32 => 2,
            DataType::U64 | DataType::I64 | DataType::F64 => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Big,
    Little,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointConfig {
    pub name: String,
    /// 0-based protocol address of the first register (Modicon 40001 is 0).
    pub address: u16,
    #[serde(default = "d_table")]
    pub table: RegisterTable,
    #[serde(rename = "type")]
    pub data_type: DataType,
    /// Byte order within each register.
    #[serde(default)]
    pub byte_order: Order,
    /// Register order of multi-register values (`little` = low word first).
    #[serde(default)]
    pub word_order: Order,
    /// value = raw × scale × 10^sf + offset
    #[serde(default = "d_scale")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    /// Address of a SunSpec scale-factor register (signed, same table). When
    /// set, SunSpec "not implemented" values are reported with quality `bad`.
    pub scale_factor_address: Option<u16>,
    #[serde(default)]
    pub unit: String,
}

fn d_table() -> RegisterTable {
    RegisterTable::Holding
}
fn d_scale() -> f64 {
    1.0
}

impl EdgeConfig {
    /// Reads, merges and validates the configuration in `file`.
    pub fn load(file: &Path) -> Result<EdgeConfig, ConfigError> {
        let name = file.display().to_string();
        if !file.exists() {
            return Err(ConfigError {
                file: name,
                field: "(file)".into(),
                problem: "does not exist".into(),
            });
        }
        let fig = Figment::from(Serialized::defaults(serde_json::json!({})))
            .merge(Toml::file_exact(file))
            .merge(
                Env::prefixed("DCMMS_")
                    .split("__")
                    .filter(|k| env_key_is_ours(k.as_str())),
            );
        Self::from_figment(fig, &name)
    }

    /// Parses and validates a configuration given as TOML text.
    pub fn from_toml(text: &str, name: &str) -> Result<EdgeConfig, ConfigError> {
        Self::from_figment(Figment::from(Toml::string(text)), name)
    }

    fn from_figment(fig: Figment, file: &str) -> Result<EdgeConfig, ConfigError> {
        let cfg: EdgeConfig = fig.extract().map_err(|e| {
            // Name the offending key itself, not only the table it sits in.
            let mut path = e.path.clone();
            if let figment::error::Kind::MissingField(f) = &e.kind {
                path.push(f.to_string());
            }
            let field = if path.is_empty() {
                "(top level)".to_string()
            } else {
                figment_path(&path)
            };
            ConfigError {
                file: file.to_string(),
                field,
                problem: e.kind.to_string(),
            }
        })?;
        let mut cfg = cfg;
        cfg.resolve_templates()
            .map_err(|(field, problem)| ConfigError {
                file: file.to_string(),
                field,
                problem,
            })?;
        cfg.validate(file)?;
        Ok(cfg)
    }

    /// Gives each device that names a template the template's points.
    pub fn resolve_templates(&mut self) -> Result<(), (String, String)> {
        let mut names = HashSet::new();
        for (t, tpl) in self.templates.iter().enumerate() {
            if !valid_name(&tpl.name) {
                return Err((format!("templates[{t}].name"), name_rule(&tpl.name)));
            }
            if !names.insert(tpl.name.as_str()) {
                return Err((
                    format!("templates[{t}].name"),
                    format!("{:?} is used by another template", tpl.name),
                ));
            }
        }
        for (i, d) in self.devices.iter_mut().enumerate() {
            let Some(name) = &d.template else { continue };
            let Some(tpl) = self.templates.iter().find(|t| &t.name == name) else {
                return Err((
                    format!("devices[{i}].template"),
                    format!("no [[templates]] entry is named {name:?}"),
                ));
            };
            if !d.points.is_empty() || d.discover.is_some() {
                return Err((
                    format!("devices[{i}].template"),
                    "a device takes its points from a template, from discovery or from its own points: only one".into(),
                ));
            }
            d.points = tpl.points.clone();
        }
        Ok(())
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |field: String, problem: String| ConfigError {
            file: file.to_string(),
            field,
            problem,
        };
        if !valid_name(&self.gateway_id) {
            return Err(err("gateway_id".into(), name_rule(&self.gateway_id)));
        }
        if !(self.cloud.url.starts_with("http://") || self.cloud.url.starts_with("https://")) {
            return Err(err(
                "cloud.url".into(),
                format!("{:?} must start with http:// or https://", self.cloud.url),
            ));
        }
        if reqwest::Url::parse(&self.cloud.url).is_err() {
            return Err(err(
                "cloud.url".into(),
                format!("{:?} is not a valid URL", self.cloud.url),
            ));
        }
        match dcmms_shared::api::split_gateway_credential(&self.cloud.credential) {
            Some((id, _)) if id == self.gateway_id => {}
            Some((id, _)) => {
                return Err(err(
                    "cloud.credential".into(),
                    format!(
                        "is for gateway {id:?}, not for gateway_id {:?}",
                        self.gateway_id
                    ),
                ));
            }
            None => {
                return Err(err(
                    "cloud.credential".into(),
                    "must be '<gateway_id>.<secret>' as printed by 'dcmms-cloud gateway add'"
                        .into(),
                ));
            }
        }
        if self.cloud.shutdown_grace_ms > 600_000 {
            return Err(err(
                "cloud.shutdown_grace_ms".into(),
                "must be at most 600000".into(),
            ));
        }
        if self.cloud.request_timeout_ms == 0 {
            return Err(err(
                "cloud.request_timeout_ms".into(),
                "must be positive".into(),
            ));
        }
        if self.cloud.backoff_min_ms == 0 || self.cloud.backoff_min_ms > self.cloud.backoff_max_ms {
            return Err(err(
                "cloud.backoff_min_ms".into(),
                "must be positive and not above cloud.backoff_max_ms".into(),
            ));
        }
        // None: no such device; Some(false): the device lists its points
        // and this is not one (discovering devices cannot be checked yet).
        let point_known = |device: &str, point: &str| {
            let d = self.devices.iter().find(|d| d.name == device)?;
            let n = d.point_count();
            Some(n == 0 || (0..n).any(|i| d.point_name_unit(i).is_some_and(|(p, _)| p == point)))
        };
        self.anomaly
            .validate(&point_known)
            .map_err(|(field, problem)| err(field, problem))?;
        if !(10..=60_000).contains(&self.buffer.flush_interval_ms) {
            return Err(err(
                "buffer.flush_interval_ms".into(),
                "must be between 10 and 60000".into(),
            ));
        }
        if self.buffer.max_bytes < 1024 * 1024 {
            return Err(err(
                "buffer.max_bytes".into(),
                "must be at least 1 MiB".into(),
            ));
        }
        if self.buffer.max_age_hours == 0 {
            return Err(err(
                "buffer.max_age_hours".into(),
                "must be at least 1".into(),
            ));
        }
        if self.buffer.compact_after_ms < 1000 {
            return Err(err(
                "buffer.compact_after_ms".into(),
                "must be at least 1000".into(),
            ));
        }
        if self.buffer.cache_capacity_bytes < 1024 * 1024 {
            return Err(err(
                "buffer.cache_capacity_bytes".into(),
                "must be at least 1 MiB".into(),
            ));
        }
        if self.devices.is_empty() {
            return Err(err(
                "devices".into(),
                "at least one device is required".into(),
            ));
        }
        let mut names = HashSet::new();
        let mut mqtt_clients = HashSet::new();
        let mut serial_paths = HashSet::new();
        for (i, d) in self.devices.iter().enumerate() {
            let at = |f: &str| format!("devices[{i}].{f}");
            if !valid_name(&d.name) {
                return Err(err(at("name"), name_rule(&d.name)));
            }
            if !names.insert(d.name.as_str()) {
                return Err(err(
                    at("name"),
                    format!("{:?} is used by another device", d.name),
                ));
            }
            if !(10..=86_400_000).contains(&d.poll_interval_ms) {
                return Err(err(
                    at("poll_interval_ms"),
                    "must be between 10 and 86400000".into(),
                ));
            }
            validate_report_and_groups(d).map_err(|(f, p)| err(at(&f), p))?;
            if d.modbus_rtu.is_some() && d.mqtt.is_some() {
                return Err(err(
                    at("modbus_rtu"),
                    "a device has exactly one protocol section; this one also has mqtt".into(),
                ));
            }
            if let Some(n) = &d.dnp3 {
                for (other, present) in [
                    ("modbus_tcp", d.modbus_tcp.is_some()),
                    ("modbus_rtu", d.modbus_rtu.is_some()),
                    ("mqtt", d.mqtt.is_some()),
                    ("opcua", d.opcua.is_some()),
                ] {
                    if present {
                        return Err(err(
                            at("dnp3"),
                            format!(
                                "a device has exactly one protocol section; this one also has {other}"
                            ),
                        ));
                    }
                }
                if d.discover.is_some() {
                    return Err(err(
                        at("discover"),
                        "discovery is not available for DNP3 devices; list the points".into(),
                    ));
                }
                if !d.points.is_empty() {
                    return Err(err(
                        at("points"),
                        format!("a DNP3 device lists its points under devices[{i}].dnp3.points"),
                    ));
                }
                n.validate(&at("dnp3")).map_err(|(f, p)| err(f, p))?;
                continue;
            }
            if let Some(o) = &d.opcua {
                for (other, present) in [
                    ("modbus_tcp", d.modbus_tcp.is_some()),
                    ("modbus_rtu", d.modbus_rtu.is_some()),
                    ("mqtt", d.mqtt.is_some()),
                ] {
                    if present {
                        return Err(err(
                            at("opcua"),
                            format!(
                                "a device has exactly one protocol section; this one also has {other}"
                            ),
                        ));
                    }
                }
                if d.discover.is_some() {
                    return Err(err(
                        at("discover"),
                        format!(
                            "an OPC UA device discovers with devices[{i}].opcua.discover = \"browse\""
                        ),
                    ));
                }
                if !d.points.is_empty() {
                    return Err(err(
                        at("points"),
                        format!(
                            "an OPC UA device lists its points under devices[{i}].opcua.points"
                        ),
                    ));
                }
                o.validate(&at("opcua")).map_err(|(f, p)| err(f, p))?;
                continue;
            }
            if d.discover.is_some() && d.mqtt.is_some() {
                return Err(err(
                    at("discover"),
                    "discovery is for Modbus devices only".into(),
                ));
            }
            if let Some(q) = &d.mqtt {
                if d.modbus_tcp.is_some() {
                    return Err(err(
                        at("mqtt"),
                        "a device has exactly one protocol section; this one also has modbus_tcp"
                            .into(),
                    ));
                }
                if !d.points.is_empty() {
                    return Err(err(
                        at("points"),
                        format!("an MQTT device lists its points under devices[{i}].mqtt.points"),
                    ));
                }
                q.validate(&at("mqtt")).map_err(|(f, p)| err(f, p))?;
                // Two connections with one client id take the session from
                // each other in an endless loop.
                if !mqtt_clients.insert((q.host.as_str(), q.port, q.client_id.as_str())) {
                    return Err(err(
                        at("mqtt.client_id"),
                        format!(
                            "{:?} is used by another device on the same broker",
                            q.client_id
                        ),
                    ));
                }
                continue;
            }
            let Some(m) = d.modbus_settings() else {
                return Err(err(
                    at("modbus_tcp"),
                    "missing: each device needs exactly one protocol section (modbus_tcp, modbus_rtu, mqtt, opcua or dnp3)"
                        .into(),
                ));
            };
            let section = if let Some(t) = &d.modbus_tcp {
                if d.modbus_rtu.is_some() {
                    return Err(err(
                        at("modbus_rtu"),
                        "a device has exactly one protocol section; this one also has modbus_tcp"
                            .into(),
                    ));
                }
                if t.host.trim().is_empty() {
                    return Err(err(at("modbus_tcp.host"), "must not be empty".into()));
                }
                if t.port == 0 {
                    return Err(err(at("modbus_tcp.port"), "must not be 0".into()));
                }
                "modbus_tcp"
            } else {
                if let Some(r) = &d.modbus_rtu {
                    validate_rtu(r).map_err(|(f, p)| err(at(&format!("modbus_rtu.{f}")), p))?;
                    if !serial_paths.insert(r.path.as_str()) {
                        return Err(err(
                            at("modbus_rtu.path"),
                            format!(
                                "{:?} is used by another device (one device per serial port)",
                                r.path
                            ),
                        ));
                    }
                }
                "modbus_rtu"
            };
            if m.timeout_ms == 0 || m.timeout_ms > 60_000 {
                return Err(err(
                    at(&format!("{section}.timeout_ms")),
                    "must be between 1 and 60000".into(),
                ));
            }
            if !(1..=125).contains(&m.max_registers_per_read) {
                return Err(err(
                    at(&format!("{section}.max_registers_per_read")),
                    "must be between 1 and 125".into(),
                ));
            }
            if d.discover.is_some() {
                if !d.points.is_empty() {
                    return Err(err(
                        at("points"),
                        "a device with discover finds its points itself; remove points or discover"
                            .into(),
                    ));
                }
                continue;
            }
            if d.points.is_empty() {
                return Err(err(at("points"), "at least one point is required".into()));
            }
            let mut pnames = HashSet::new();
            // A template's point is reported where it is written.
            let tpl = d
                .template
                .as_ref()
                .and_then(|n| self.templates.iter().position(|t| &t.name == n));
            for (j, p) in d.points.iter().enumerate() {
                let pat = |f: &str| match tpl {
                    Some(t) => format!("templates[{t}].points[{j}].{f} (used by devices[{i}])"),
                    None => format!("devices[{i}].points[{j}].{f}"),
                };
                if !valid_name(&p.name) {
                    return Err(err(pat("name"), name_rule(&p.name)));
                }
                if !pnames.insert(p.name.as_str()) {
                    return Err(err(
                        pat("name"),
                        format!("{:?} is used by another point of this device", p.name),
                    ));
                }
                let last = u32::from(p.address) + u32::from(p.data_type.registers()) - 1;
                if last > u32::from(u16::MAX) {
                    return Err(err(
                        pat("address"),
                        format!(
                            "register {} with type {:?} ({} registers) runs past the last register 65535",
                            p.address,
                            p.data_type,
                            p.data_type.registers()
                        ),
                    ));
                }
                if p.data_type.registers() > m.max_registers_per_read {
                    return Err(err(
                        pat("type"),
                        "needs more registers than one read allows".into(),
                    ));
                }
                if !p.scale.is_finite() || p.scale == 0.0 {
                    return Err(err(
                        pat("scale"),
                        "must be a finite, non-zero number".into(),
                    ));
                }
                if !p.offset.is_finite() {
                    return Err(err(pat("offset"), "must be a finite number".into()));
                }
                if p.unit.len() > 32 {
                    return Err(err(pat("unit"), "at most 32 bytes".into()));
                }
            }
        }
        Ok(())
    }
}

/// Checks a serial section; the error names the field inside it.
/// The device's `report` and `poll_groups` sections. Point names are checked
/// only where the configuration lists the points (not for discovery).
fn validate_report_and_groups(d: &DeviceConfig) -> Result<(), (String, String)> {
    let names: Option<Vec<&str>> = d.discover.is_none().then(|| {
        (0..d.point_count())
            .filter_map(|i| d.point_name_unit(i).map(|(n, _)| n))
            .collect()
    });
    if let Some(r) = &d.report {
        r.validate(names.as_deref())
            .map_err(|(f, p)| (format!("report.{f}"), p))?;
    }
    if d.poll_groups.is_empty() {
        return Ok(());
    }
    if d.modbus_tcp.is_none() && d.modbus_rtu.is_none() {
        return Err((
            "poll_groups".into(),
            "poll groups are for polled devices (modbus_tcp, modbus_rtu); this one reports by itself"
                .into(),
        ));
    }
    let mut groups = HashSet::new();
    let mut grouped: HashMap<&str, &str> = HashMap::new();
    for (g, group) in d.poll_groups.iter().enumerate() {
        let at = |f: &str| format!("poll_groups[{g}].{f}");
        if !valid_name(&group.name) {
            return Err((at("name"), name_rule(&group.name)));
        }
        if !groups.insert(group.name.as_str()) {
            return Err((
                at("name"),
                format!("{:?} is used by another group", group.name),
            ));
        }
        if !(10..=86_400_000).contains(&group.interval_ms) {
            return Err((at("interval_ms"), "must be between 10 and 86400000".into()));
        }
        if group.points.is_empty() {
            return Err((at("points"), "must name at least one point".into()));
        }
        for (k, p) in group.points.iter().enumerate() {
            if let Some(names) = &names
                && !names.contains(&p.as_str())
            {
                return Err((
                    at(&format!("points[{k}]")),
                    format!("{p:?} is not a point of this device"),
                ));
            }
            if let Some(other) = grouped.insert(p.as_str(), group.name.as_str()) {
                return Err((
                    at(&format!("points[{k}]")),
                    format!("{p:?} is already in poll group {other:?}"),
                ));
            }
        }
    }
    Ok(())
}

fn validate_rtu(r: &ModbusRtuConfig) -> Result<(), (&'static str, String)> {
    if r.path.trim().is_empty() {
        return Err(("path", "must not be empty".into()));
    }
    if !(300..=4_000_000).contains(&r.baud_rate) {
        return Err(("baud_rate", "must be between 300 and 4000000".into()));
    }
    if !(7..=8).contains(&r.data_bits) {
        return Err(("data_bits", "must be 7 or 8".into()));
    }
    if !(1..=2).contains(&r.stop_bits) {
        return Err(("stop_bits", "must be 1 or 2".into()));
    }
    // 0 is broadcast (no reply) and 248-255 are reserved on a serial line.
    if !(1..=247).contains(&r.unit_id) {
        return Err(("unit_id", "must be between 1 and 247".into()));
    }
    Ok(())
}

/// Only `DCMMS_…` variables aimed at this file's sections override it:
/// others (`DCMMS_TEST_DATABASE_URL`, a cloud's `DCMMS_LISTEN` on the same
/// host) belong to other programs and must not fail the unknown-field check.
pub fn env_key_is_ours(key: &str) -> bool {
    let top = key
        .split('.')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(top.as_str(), "gateway_id" | "cloud" | "buffer" | "http")
}

/// Turns figment's key path (`devices`, `0`, `points`, `3`, `address`) into
/// `devices[0].points[3].address`.
fn figment_path(path: &[String]) -> String {
    let mut out = String::new();
    for part in path {
        if part.parse::<usize>().is_ok() {
            out.push_str(&format!("[{part}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(part);
        }
    }
    out
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(crate) fn name_rule(s: &str) -> String {
    format!("{s:?} is invalid: use 1 to 64 characters of a-z, A-Z, 0-9, '.', '_' or '-'")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn example_is_valid() {
        let cfg = EdgeConfig::from_toml(EXAMPLE, "edge.example.toml").unwrap();
        assert_eq!(cfg.devices.len(), 1);
        assert!(cfg.devices[0].points.len() > 3);
    }

    #[test]
    fn one_example_section_is_enabled_at_a_time() {
        assert!(example_with_section("No such section").is_none());
        let text = example_with_section("Templates").unwrap();
        let cfg = EdgeConfig::from_toml(&text, "edge.example.toml").unwrap();
        assert_eq!(cfg.templates.len(), 1);
        assert_eq!(
            cfg.devices
                .iter()
                .map(|d| d.name.as_str())
                .collect::<Vec<_>>(),
            ["inv-01", "inv-02"]
        );
        // The sections after it stay commented out.
        assert!(text.contains("#name = \"wtg-01\""));
        assert!(text.ends_with(&EXAMPLE[EXAMPLE.find("# --- DNP3").unwrap()..]));
    }

    fn broken(from: &str, to: &str) -> ConfigError {
        assert!(EXAMPLE.contains(from), "example lacks {from:?}");
        EdgeConfig::from_toml(&EXAMPLE.replacen(from, to, 1), "edge.toml").unwrap_err()
    }

    #[test]
    fn unknown_field_is_named_with_its_path() {
        let e = broken("unit = \"W\"", "unit = \"W\"\ncolour = \"red\"");
        assert_eq!(e.file, "edge.toml");
        assert_eq!(e.field, "devices[0].points[0].colour", "{e}");
        assert!(e.problem.contains("unknown field"), "{e}");
    }

    #[test]
    fn register_out_of_range_is_named() {
        let e = broken(
            "address = 40094\ntype = \"acc32\"",
            "address = 65535\ntype = \"acc32\"",
        );
        assert_eq!(e.field, "devices[0].points[1].address", "{e}");
        assert!(e.problem.contains("runs past the last register"), "{e}");
    }

    #[test]
    fn missing_device_address_is_named() {
        let e = broken("host = \"127.0.0.1\"\n", "");
        assert_eq!(e.field, "devices[0].modbus_tcp.host", "{e}");
        assert!(e.problem.contains("missing"), "{e}");
    }

    #[test]
    fn report_and_poll_group_errors_name_the_field() {
        let e = broken(
            "name = \"ac_energy\"\ndeadband",
            "name = \"ac_enrgy\"\ndeadband",
        );
        assert_eq!(e.field, "devices[0].report.points[0].name", "{e}");
        assert!(e.problem.contains("ac_enrgy"), "{e}");
        let e = broken("deadband_percent = 0.5", "deadband_percent = 150");
        assert_eq!(e.field, "devices[0].report.deadband_percent", "{e}");
        let e = broken("interval_ms = 10000", "interval_ms = 5");
        assert_eq!(e.field, "devices[0].poll_groups[0].interval_ms", "{e}");
        let e = broken(
            "points = [\"cabinet_temperature\", \"operating_state\"]",
            "points = [\"cabinet_temperature\", \"cabinet_temperature\"]",
        );
        assert_eq!(e.field, "devices[0].poll_groups[0].points[1]", "{e}");
        assert!(e.problem.contains("already in poll group"), "{e}");
        let e = broken(
            "points = [\"cabinet_temperature\",",
            "points = [\"cabinet_temp\",",
        );
        assert_eq!(e.field, "devices[0].poll_groups[0].points[0]", "{e}");
    }

    #[test]
    fn devices_take_their_points_from_a_named_template() {
        let head = EXAMPLE.split("[[devices]]").next().unwrap();
        let text = format!(
            "{head}
[[templates]]
name = \"inv-103\"
[[templates.points]]
name = \"ac_power\"
address = 40083
type = \"i16\"
scale_factor_address = 40084

[[devices]]
name = \"inv-01\"
template = \"inv-103\"
[devices.modbus_tcp]
host = \"127.0.0.1\"
port = 5020

[[devices]]
name = \"inv-02\"
template = \"inv-103\"
[devices.modbus_tcp]
host = \"127.0.0.1\"
port = 5021
"
        );
        let cfg = EdgeConfig::from_toml(&text, "t.toml").unwrap();
        assert_eq!(cfg.devices.len(), 2);
        for d in &cfg.devices {
            assert_eq!(d.points.len(), 1);
            assert_eq!(d.points[0].scale_factor_address, Some(40084));
        }
        let e = EdgeConfig::from_toml(
            &text.replacen("template = \"inv-103\"", "template = \"inv-104\"", 1),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(e.field, "devices[0].template", "{e}");
        let e = EdgeConfig::from_toml(
            &text.replace(
                "address = 40083\ntype = \"i16\"",
                "address = 65535\ntype = \"u32\"",
            ),
            "t.toml",
        )
        .unwrap_err();
        assert_eq!(
            e.field, "templates[0].points[0].address (used by devices[0])",
            "{e}"
        );
        let both = text.replacen(
            "template = \"inv-103\"",
            "template = \"inv-103\"\ndiscover = \"sunspec\"",
            1,
        );
        let e = EdgeConfig::from_toml(&both, "t.toml").unwrap_err();
        assert_eq!(e.field, "devices[0].template", "{e}");
    }

    #[test]
    fn credential_for_another_gateway_is_rejected() {
        let e = broken("credential = \"bhadla-gw-01.", "credential = \"other-gw.");
        assert_eq!(e.field, "cloud.credential");
    }

    #[test]
    fn only_environment_keys_for_our_sections_apply() {
        assert!(env_key_is_ours("cloud.credential"));
        assert!(env_key_is_ours("BUFFER.path"));
        assert!(env_key_is_ours("gateway_id"));
        assert!(!env_key_is_ours("test_database_url"));
        assert!(!env_key_is_ours("listen"));
        assert!(!env_key_is_ours("config"));
    }

    #[test]
    fn debug_output_hides_the_credential() {
        let cfg = EdgeConfig::from_toml(EXAMPLE, "x").unwrap();
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains(&cfg.cloud.credential), "{dbg}");
    }

    const RTU: &str =
        "[devices.modbus_rtu]\npath = \"/dev/ttyUSB0\"\nbaud_rate = 19200\nparity = \"even\"\n";

    #[test]
    fn an_rtu_device_is_valid_and_a_second_modbus_section_is_rejected() {
        let tcp = EXAMPLE
            .split("[devices.modbus_tcp]")
            .nth(1)
            .and_then(|rest| rest.split("\n\n").next())
            .unwrap();
        let rtu_only = EXAMPLE.replacen(&format!("[devices.modbus_tcp]{tcp}"), RTU, 1);
        let cfg = EdgeConfig::from_toml(&rtu_only, "edge.toml").unwrap();
        let r = cfg.devices[0].modbus_rtu.as_ref().unwrap();
        assert_eq!(
            (r.baud_rate, r.parity, r.data_bits, r.stop_bits),
            (19200, SerialParity::Even, 8, 1)
        );
        assert_eq!(cfg.devices[0].modbus_settings().unwrap().timeout_ms, 1000);

        let both = EXAMPLE.replacen(
            "[devices.modbus_tcp]",
            &format!("{RTU}\n[devices.modbus_tcp]"),
            1,
        );
        let e = EdgeConfig::from_toml(&both, "edge.toml").unwrap_err();
        assert_eq!(e.field, "devices[0].modbus_rtu", "{e}");
        assert!(e.problem.contains("exactly one protocol section"), "{e}");

        let bad = rtu_only.replacen("baud_rate = 19200", "baud_rate = 0", 1);
        let e = EdgeConfig::from_toml(&bad, "edge.toml").unwrap_err();
        assert_eq!(e.field, "devices[0].modbus_rtu.baud_rate", "{e}");
    }

    #[test]
    fn discovery_replaces_points_and_may_not_be_combined_with_them() {
        let e = broken(
            "poll_interval_ms = 1000\n",
            "poll_interval_ms = 1000\ndiscover = \"sunspec\"\n",
        );
        assert_eq!(e.field, "devices[0].points", "{e}");
        assert!(e.problem.contains("discover"), "{e}");
        let start = EXAMPLE.find("[[devices.points]]").unwrap();
        let no_points = EXAMPLE[..start].replacen(
            "poll_interval_ms = 1000\n",
            "poll_interval_ms = 1000\ndiscover = \"sunspec\"\n",
            1,
        );
        let cfg = EdgeConfig::from_toml(&no_points, "edge.toml").unwrap();
        assert_eq!(cfg.devices[0].discover, Some(Discovery::Sunspec));
        assert!(cfg.devices[0].modbus_points().is_empty());
        assert!(cfg.devices[0].discovered.set(Vec::new()));
        // Clones share what discovery found.
        let clone = cfg.devices[0].clone();
        assert!(!clone.discovered.set(Vec::new()));
    }
}

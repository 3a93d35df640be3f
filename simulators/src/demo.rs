//! Building blocks of the site-in-a-box demo, shared by `dcmms-demo` and the
//! end-to-end tests: the edge configuration for a simulated inverter fleet.

use crate::sunspec::{self, RegType};
use dcmms_edge::config::{
    BufferConfig, CloudLink, DataType, DeviceConfig, EdgeConfig, HttpConfig, ModbusTcpConfig,
    Order, PointConfig, RegisterTable,
};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What the edge needs to know about the site to poll it.
#[derive(Debug, Clone)]
pub struct SiteLink {
    pub gateway_id: String,
    pub credential: String,
    pub cloud_url: String,
    pub buffer_path: PathBuf,
    pub edge_listen: SocketAddr,
    /// One Modbus TCP address per inverter.
    pub inverters: Vec<SocketAddr>,
    pub unit_id: u8,
    pub poll_interval_ms: u64,
    pub flush_interval_ms: u64,
}

/// The edge points of a SunSpec model 103 inverter, from the simulator's
/// published register map (until SunSpec discovery makes this unnecessary).
pub fn inverter_points() -> Vec<PointConfig> {
    sunspec::inverter_points()
        .into_iter()
        .filter_map(|p| {
            let data_type = match p.reg_type {
                RegType::U16 | RegType::Enum16 => DataType::U16,
                RegType::I16 => DataType::I16,
                RegType::U32 | RegType::Bitfield32 => DataType::U32,
                RegType::Acc32 => DataType::Acc32,
                RegType::Sunssf | RegType::Str(_) => return None,
            };
            Some(PointConfig {
                name: p.name.to_string(),
                address: p.address,
                table: RegisterTable::Holding,
                data_type,
                byte_order: Order::Big,
                word_order: Order::Big,
                scale: 1.0,
                offset: 0.0,
                scale_factor_address: p.sf_address,
                unit: p.unit.to_string(),
            })
        })
        .collect()
}

/// Device name of inverter `i` (0-based): `inv-01`, `inv-02`, …
pub fn inverter_name(i: usize) -> String {
    format!("inv-{:02}", i + 1)
}

/// An edge configuration polling every inverter of the fleet.
pub fn edge_config(link: &SiteLink) -> EdgeConfig {
    let points = inverter_points();
    EdgeConfig {
        gateway_id: link.gateway_id.clone(),
        cloud: CloudLink {
            url: link.cloud_url.clone(),
            credential: link.credential.clone(),
            request_timeout_ms: 10_000,
            backoff_min_ms: 200,
            backoff_max_ms: 10_000,
            shutdown_grace_ms: 5_000,
            backlog_bytes_per_s: 1024 * 1024,
        },
        buffer: BufferConfig {
            path: link.buffer_path.clone(),
            flush_interval_ms: link.flush_interval_ms,
            ..BufferConfig::default()
        },
        http: HttpConfig {
            listen: link.edge_listen,
        },
        devices: link
            .inverters
            .iter()
            .enumerate()
            .map(|(i, addr)| DeviceConfig {
                name: inverter_name(i),
                poll_interval_ms: link.poll_interval_ms,
                modbus_tcp: Some(ModbusTcpConfig {
                    host: addr.ip().to_string(),
                    port: addr.port(),
                    unit_id: link.unit_id,
                    timeout_ms: 1000,
                    max_gap: 16,
                    max_registers_per_read: 125,
                }),
                modbus_rtu: None,
                mqtt: None,
                opcua: None,
                dnp3: None,
                discover: None,
                discovered: Default::default(),
                report: None,
                poll_groups: Vec::new(),
                template: None,
                points: points.clone(),
            })
            .collect(),
        templates: Vec::new(),
        anomaly: Default::default(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_is_valid_and_round_trips_through_toml() {
        let link = SiteLink {
            gateway_id: "demo-gw".into(),
            credential: "demo-gw.abc".into(),
            cloud_url: "http://127.0.0.1:8080".into(),
            buffer_path: "buf".into(),
            edge_listen: "127.0.0.1:9100".parse().unwrap(),
            inverters: vec![
                "127.0.0.1:5020".parse().unwrap(),
                "127.0.0.1:5021".parse().unwrap(),
            ],
            unit_id: 1,
            poll_interval_ms: 1000,
            flush_interval_ms: 500,
        };
        let cfg = edge_config(&link);
        cfg.validate("generated").unwrap();
        let text = toml::to_string(&cfg).unwrap();
        let back = EdgeConfig::from_toml(&text, "edge.toml").unwrap();
        assert_eq!(back.devices.len(), 2);
        assert_eq!(back.devices[1].name, "inv-02");
        assert!(back.devices[0].points.iter().any(|p| p.name == "ac_power"));
    }
}

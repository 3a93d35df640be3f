//! Shared by the OPC UA suites: a cloud on SQLite, an edge configured from
//! TOML, the cloud's stored samples, the edge's metrics, and a user's API
//! client.
#![allow(dead_code)]

use dcmms_cloud::{RunningCloud, gateways, testing};
use dcmms_edge::EdgeConfig;
use dcmms_edge::metrics::{DeviceLabels, DeviceResultLabels, EdgeMetrics};
use dcmms_tests::support::CloudReader;
pub use dcmms_tests::support::wait_until;
use serde_json::Value;
use std::collections::HashMap;
use tokio_util::sync::CancellationToken;

/// 2026-06-21 06:30 UTC.
pub const T0: i64 = 1_782_023_400_000;

pub fn polls(m: &EdgeMetrics, device: &str, result: &str) -> u64 {
    m.device_polls
        .get_or_create(&DeviceResultLabels {
            device: device.into(),
            result: result.into(),
        })
        .get()
}

pub fn connected(m: &EdgeMetrics, device: &str) -> bool {
    m.device_connected
        .get_or_create(&DeviceLabels {
            device: device.into(),
        })
        .get()
        == 1
}

pub struct Site {
    _dir: tempfile::TempDir,
    pub cloud: RunningCloud,
    stop_cloud: CancellationToken,
    credential: String,
    buffer: std::path::PathBuf,
    pki: std::path::PathBuf,
}

pub async fn site(gateway: &str) -> Site {
    let dir = tempfile::tempdir().unwrap();
    let stop_cloud = CancellationToken::new();
    let cloud =
        dcmms_tests::support::start_cloud(testing::sqlite_url(dir.path()), &stop_cloud).await;
    let gw = gateways::create(&cloud.db, gateway, gateway).await.unwrap();
    Site {
        buffer: dir.path().join("buffer"),
        pki: dir.path().join("pki"),
        _dir: dir,
        cloud,
        stop_cloud,
        credential: gw.credential,
    }
}

impl Site {
    /// An edge configuration with one OPC UA device `wtg-01`, given as the
    /// TOML a user would write (so it goes through the same validation).
    /// `opcua_toml` is the body of `[devices.opcua]` and what follows; a
    /// key it sets replaces the suite's default for that key.
    pub fn edge_config(&self, gateway: &str, opcua_toml: &str) -> EdgeConfig {
        let defaults: String = [
            "reconnect_min_ms = 100",
            "reconnect_max_ms = 1000",
            "request_timeout_ms = 5000",
        ]
        .iter()
        .filter(|line| {
            let key = line.split(' ').next().unwrap_or_default();
            !opcua_toml.lines().any(|l| {
                l.trim_start().starts_with(&format!("{key} "))
                    || l.trim_start().starts_with(&format!("{key}="))
            })
        })
        .map(|line| format!("{line}\n"))
        .collect();
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
[[devices]]
name = "wtg-01"
[devices.opcua]
pki_dir = "{pki}"
{defaults}{opcua_toml}
"#,
            url = self.cloud.url(),
            cred = self.credential,
            buffer = self.buffer.display(),
            pki = self.pki.display(),
        );
        EdgeConfig::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    pub async fn stop(self) {
        self.stop_cloud.cancel();
        self.cloud.wait().await.unwrap();
    }

    /// Stops the cloud but keeps the site's directory (buffer, installed
    /// models) for an edge that goes on without it.
    pub async fn stop_cloud_keep_files(self) -> tempfile::TempDir {
        self.stop_cloud.cancel();
        self.cloud.wait().await.unwrap();
        self._dir
    }

    /// Stored samples of each point of `device`: point → (unit, samples).
    pub async fn stored(
        &self,
        gateway: &str,
        device: &str,
    ) -> HashMap<String, (String, Vec<Value>)> {
        CloudReader::new(&self.cloud)
            .await
            .stored(gateway, device)
            .await
    }
}

/// (ts_ms, value or None for NaN/null, quality), sorted by time.
pub fn values(samples: &[Value]) -> Vec<(i64, Option<f64>, String)> {
    let mut v: Vec<_> = samples
        .iter()
        .map(|s| {
            (
                s["ts_ms"].as_i64().unwrap(),
                s["value"].as_f64(),
                s["quality"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort_by_key(|s| s.0);
    v
}

/// A user of the cloud's API with a token; panics, naming the request, on
/// anything but 2xx.
pub struct Api {
    pub client: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// An admin's client for `cloud`.
    pub async fn admin(cloud: &RunningCloud) -> Api {
        Api {
            client: reqwest::Client::new(),
            base: cloud.url(),
            token: testing::api_token(&cloud.db, &cloud.caches, dcmms_cloud::auth::Role::Admin)
                .await
                .unwrap(),
        }
    }

    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let mut req = self
            .client
            .request(method.clone(), &url)
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{method} {url}: {status} {text}");
        serde_json::from_str(&text).unwrap()
    }

    pub async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::PUT, path, Some(body)).await
    }
}

/// The turbine's variables and the wind-turbine model's roles they feed.
pub const TURBINE_ROLES: [(&str, &str); 8] = [
    ("WindSpeed", "wind_speed"),
    ("ActivePower", "active_power"),
    ("RotorSpeed", "rotor_speed"),
    ("PitchAngle", "pitch_angle"),
    ("GearboxTemperature", "gearbox_temp"),
    ("GeneratorTemperature", "generator_temp"),
    ("BearingTemperature", "bearing_temp"),
    ("AmbientTemperature", "ambient_temp"),
];

/// The committed wind-turbine model.
pub fn committed_wind_model() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../edge/models/wind-turbine/wind-turbine-ae.onnx")
}

/// `[devices.opcua]` body subscribing every turbine variable of `turbine`,
/// then an `[anomaly]` section (`anomaly_settings`: extra keys of it)
/// binding asset `WTG-01` of device `wtg-01` to the committed model.
pub fn turbine_with_model_toml(
    turbine: &dcmms_simulators::opcua::RunningTurbine,
    sampling_interval_ms: u64,
    anomaly_settings: &str,
) -> String {
    let mut toml = format!(
        "endpoint_url = \"{}\"\npublishing_interval_ms = 100\nsampling_interval_ms = {sampling_interval_ms}\nqueue_size = 20\n",
        turbine.endpoint_url()
    );
    for (var, _) in TURBINE_ROLES {
        toml.push_str(&format!(
            "[[devices.opcua.points]]\nname = \"{var}\"\nnode_id = \"{}\"\n",
            dcmms_simulators::opcua::variable_node_id(turbine.namespace(), var)
        ));
    }
    toml.push_str(&format!(
        "[anomaly]\n{anomaly_settings}[[anomaly.models]]\nid = \"wind-turbine-ae\"\npath = \"{}\"\n\
         [[anomaly.assets]]\nasset = \"WTG-01\"\nmodel = \"wind-turbine-ae\"\n[anomaly.assets.points]\n",
        committed_wind_model().display()
    ));
    for (var, role) in TURBINE_ROLES {
        toml.push_str(&format!("{role} = \"wtg-01/{var}\"\n"));
    }
    toml
}

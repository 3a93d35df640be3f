//! Shared by the DNP3 suites: the edge's DNP3 driver run on its own with
//! a channel instead of the pipeline, and its metrics.
#![allow(dead_code)]

use dcmms_edge::EdgeConfig;
use dcmms_edge::drivers::Reading;
use dcmms_edge::metrics::{DeviceLabels, DeviceResultLabels, EdgeMetrics};
use dcmms_shared::Sample;
pub use dcmms_tests::support::wait_until;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub const DEVICE: &str = "sub-meter-01";
pub const LIMIT: Duration = Duration::from_secs(30);

pub fn polls(m: &EdgeMetrics, result: &str) -> u64 {
    m.device_polls
        .get_or_create(&DeviceResultLabels {
            device: DEVICE.into(),
            result: result.into(),
        })
        .get()
}

pub fn gauge(m: &EdgeMetrics, family: &str) -> i64 {
    let f = match family {
        "connected" => &m.device_connected,
        _ => &m.device_last_success_ms,
    };
    f.get_or_create(&DeviceLabels {
        device: DEVICE.into(),
    })
    .get()
}

pub fn now_ms() -> i64 {
    dcmms_edge::drivers::now_ms()
}

/// The edge's view of one device: every sample the driver sent, by point name.
pub struct Edge {
    names: Vec<String>,
    rx: mpsc::Receiver<Reading>,
    pub got: Vec<(String, Sample)>,
    pub metrics: EdgeMetrics,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Edge {
    /// Starts the driver for the outstation at `port` with `dnp3_toml` as
    /// the rest of `[devices.dnp3]` and `points` its
    /// `[[devices.dnp3.points]]`. Goes through the configuration's
    /// validation like a user's file.
    pub fn start(port: u16, dnp3_toml: &str, points: &str) -> Edge {
        let text = format!(
            r#"
gateway_id = "gw-dnp3"
[cloud]
url = "http://127.0.0.1:1"
credential = "gw-dnp3.secret"
[[devices]]
name = "{DEVICE}"
[devices.dnp3]
host = "127.0.0.1"
port = {port}
reconnect_min_ms = 100
reconnect_max_ms = 1000
{dnp3_toml}
{points}"#
        );
        let cfg =
            EdgeConfig::from_toml(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
        let device = cfg.devices[0].clone();
        let names = (0..device.point_count())
            .map(|i| device.point_name_unit(i).unwrap().0.to_string())
            .collect();
        let (tx, rx) = mpsc::channel(1024);
        let metrics = EdgeMetrics::default();
        let stop = CancellationToken::new();
        let task = tokio::spawn(dcmms_edge::drivers::dnp3::run_device(
            0,
            device,
            tx,
            metrics.clone(),
            stop.clone(),
        ));
        Edge {
            names,
            rx,
            got: Vec::new(),
            metrics,
            stop,
            task,
        }
    }

    pub fn drain(&mut self) {
        while let Ok(r) = self.rx.try_recv() {
            assert_eq!(r.device, 0);
            for (i, s) in r.samples {
                let name = self
                    .names
                    .get(i)
                    .unwrap_or_else(|| panic!("point index {i}"));
                self.got.push((name.clone(), s));
            }
        }
    }

    /// Waits until a sample of `point` satisfies `ok`; returns it.
    pub async fn wait_sample(
        &mut self,
        what: &str,
        point: &str,
        ok: impl Fn(&Sample) -> bool,
    ) -> Sample {
        let mut found = None;
        wait_until(what, LIMIT, || {
            self.drain();
            found = self
                .got
                .iter()
                .rev()
                .find(|(n, s)| n == point && ok(s))
                .map(|(_, s)| *s);
            found.is_some()
        })
        .await;
        found.unwrap()
    }

    /// Forgets the samples seen so far.
    pub fn clear(&mut self) {
        self.drain();
        self.got.clear();
    }

    pub async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the driver stops within 10 s of shutdown")
            .unwrap();
    }
}

//! The wire format is decodable from another language: an independent Python
//! decoder, written from docs/specs/wire-format.md, reads a Rust-encoded frame.
#![allow(clippy::unwrap_used)]

use dcmms_shared::wire::{Compression, encode};
use dcmms_shared::{Batch, Drop, DropReason, DroppedSpan, Quality, Sample, Series};
use std::process::Command;

fn decoder() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/decode_batch.py")
}

fn python(frame: &[u8]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("frame.bin");
    std::fs::write(&f, frame).unwrap();
    Command::new("python3")
        .arg(decoder())
        .arg(&f)
        .output()
        .expect("python3 must be installed for the interop test")
}

#[test]
fn python_decoder_reads_what_rust_encodes() {
    let batch = Batch {
        gateway_id: "bhadla-gw-01".into(),
        first_sequence: 1_782_000_000_000_120,
        sequence: 1_782_000_000_000_123,
        created_ms: 1_782_000_000_000,
        polled_through_ms: 1_782_000_002_000,
        events: vec![],
        drops: vec![Drop {
            first_sequence: 5,
            last_sequence: 6,
            reason: DropReason::Age,
            spans: vec![DroppedSpan {
                device: "inv-01".into(),
                point: "ac_power".into(),
                from_ms: 10,
                to_ms: 20,
                samples: 11,
            }],
        }],
        series: vec![
            Series {
                device: "inv-01".into(),
                point: "ac_power".into(),
                unit: "W".into(),
                samples: vec![
                    Sample {
                        ts_ms: 1_782_000_000_000,
                        value: 81_230.5,
                        quality: Quality::Good,
                    },
                    Sample {
                        ts_ms: 1_782_000_001_000,
                        value: -0.25,
                        quality: Quality::Bad,
                    },
                    Sample {
                        ts_ms: 1_781_999_999_000,
                        value: 1e-3,
                        quality: Quality::Stale,
                    },
                ],
            },
            Series {
                device: "wx".into(),
                point: "module_temperature".into(),
                unit: "°C".into(),
                samples: vec![Sample {
                    ts_ms: -5,
                    value: 61.0,
                    quality: Quality::CommsLost,
                }],
            },
        ],
    };
    let out = python(&encode(&batch, Compression::None).unwrap());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["gateway_id"], "bhadla-gw-01");
    assert_eq!(got["sequence"], 1_782_000_000_000_123u64);
    assert_eq!(got["created_ms"], 1_782_000_000_000i64);
    assert_eq!(got["first_sequence"], 1_782_000_000_000_120u64);
    assert_eq!(got["polled_through_ms"], 1_782_000_002_000i64);
    assert_eq!(got["drops"][0]["reason"], "age");
    assert_eq!(got["drops"][0]["first_sequence"], 5);
    assert_eq!(got["drops"][0]["spans"][0]["samples"], 11);
    assert_eq!(got["drops"][0]["spans"][0]["to_ms"], 20);
    for (gs, s) in got["series"].as_array().unwrap().iter().zip(&batch.series) {
        assert_eq!(gs["device"], s.device.as_str());
        assert_eq!(gs["point"], s.point.as_str());
        assert_eq!(gs["unit"], s.unit.as_str());
        for (g, x) in gs["samples"].as_array().unwrap().iter().zip(&s.samples) {
            assert_eq!(g["ts_ms"], x.ts_ms);
            assert_eq!(g["value"].as_f64().unwrap(), x.value);
            assert_eq!(g["quality"], x.quality.as_str());
        }
    }
}

#[test]
fn python_decoder_rejects_a_corrupted_frame() {
    let batch = Batch {
        gateway_id: "gw".into(),
        first_sequence: 1,
        sequence: 1,
        created_ms: 0,
        polled_through_ms: 0,
        series: vec![],
        drops: vec![],
        events: vec![],
    };
    let mut frame = encode(&batch, Compression::None).unwrap();
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    let out = python(&frame);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("checksum"));
}

#[test]
fn python_decoder_reads_anomaly_events_of_version_3() {
    use dcmms_shared::{AnomalyEvent, AnomalyKind, Contribution};
    let text = "gearbox temperature 14 °C above expected for this power";
    let batch = Batch {
        gateway_id: "gw".into(),
        first_sequence: 7,
        sequence: 7,
        created_ms: 1,
        polled_through_ms: 1,
        series: vec![],
        drops: vec![],
        events: vec![AnomalyEvent {
            kind: AnomalyKind::Raised,
            asset: "WTG-01".into(),
            asset_class: "wind_turbine".into(),
            model_id: "wind-turbine-ae".into(),
            model_version: "1.0.0".into(),
            ts_ms: 1_775_001_900_000,
            window_start_ms: 1_775_001_721_000,
            score: 40.5,
            raise_level: 13.25,
            summary: text.into(),
            explanation: vec![Contribution {
                feature: "gearbox_rise".into(),
                unit: "°C".into(),
                share: 0.875,
                value: 52.5,
                expected: 38.25,
                text: text.into(),
            }],
        }],
    };
    let frame = encode(&batch, Compression::None).unwrap();
    assert_eq!(frame[4], 3);
    let out = python(&frame);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e = &got["events"][0];
    assert_eq!(e["kind"], "raised");
    assert_eq!(e["asset"], "WTG-01");
    assert_eq!(e["ts_ms"], 1_775_001_900_000i64);
    assert_eq!(e["score"].as_f64().unwrap(), 40.5);
    assert_eq!(e["summary"], text);
    let c = &e["explanation"][0];
    assert_eq!(c["feature"], "gearbox_rise");
    assert_eq!(c["unit"], "°C");
    assert_eq!(c["share"].as_f64().unwrap(), 0.875);
    assert_eq!(c["expected"].as_f64().unwrap(), 38.25);
}

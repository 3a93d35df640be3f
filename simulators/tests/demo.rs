//! The site-in-a-box demo runs, moves data end to end, and stops cleanly.
#![allow(clippy::unwrap_used)]

use std::process::Command;

fn field(line: &str, name: &str) -> u64 {
    line.split('|')
        .find_map(|part| part.trim().strip_prefix(name))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name:?} in {line:?}"))
}

#[test]
fn demo_moves_data_to_the_cloud_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dcmms-demo"))
        .args([
            "--cloud-port",
            "0",
            "--edge-port",
            "0",
            "--modbus-port",
            "0",
        ])
        .args([
            "--status-every",
            "2",
            "--exit-after",
            "7",
            "--inverters",
            "2",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stopped cleanly"), "{stdout}");
    let last = stdout
        .lines()
        .rfind(|l| l.contains("acknowledged"))
        .unwrap();
    let polled = field(last, "polled");
    let acked = field(last, "acknowledged");
    let stored = field(last, "cloud stored");
    assert!(acked > 0, "{last}");
    assert!(acked <= polled, "{last}");
    // The cloud commits before it answers, so it is never behind the edge's acks.
    assert!(stored >= acked, "{last}");
    // The demo leaves a valid edge configuration behind for `dcmms-edge run`.
    let toml = std::fs::read_to_string(dir.path().join("edge.toml")).unwrap();
    dcmms_edge::EdgeConfig::from_toml(&toml, "edge.toml").unwrap();
}

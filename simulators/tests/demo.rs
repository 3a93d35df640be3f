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

/// Runs the demo on free ports with 2 inverters into `dir`; its stdout,
/// after checking it exited successfully.
fn run_demo(dir: &std::path::Path, status_every: &str, exit_after: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dcmms-demo"))
        .args([
            "--cloud-port",
            "0",
            "--edge-port",
            "0",
            "--modbus-port",
            "0",
        ])
        .args(["--status-every", status_every, "--exit-after", exit_after])
        .args(["--inverters", "2"])
        .arg("--data-dir")
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn demo_moves_data_to_the_cloud_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let stdout = run_demo(dir.path(), "2", "7");
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

/// The demo's CMMS side is alive: once the edge has sent the inverters'
/// power, each inverter asset is linked to it and has meters derived from
/// telemetry; the seeded PM plans are there.
#[test]
fn demo_links_inverter_power_and_derives_meters() {
    let dir = tempfile::tempdir().unwrap();
    run_demo(dir.path(), "1", "6");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = dcmms_cloud::Db::connect(&dcmms_cloud::testing::sqlite_url(dir.path()))
            .await
            .unwrap();
        let inverters = dcmms_cloud::assets::list_assets(
            &db,
            &dcmms_cloud::assets::asset_filters(None, None, Some("inverter")),
            ("id", false),
            10,
            0,
        )
        .await
        .unwrap();
        assert_eq!(inverters.len(), 2);
        for inv in &inverters {
            let links = dcmms_cloud::assets::asset_points(&db, inv.id)
                .await
                .unwrap();
            assert_eq!(
                links.iter().map(|l| l.role.as_str()).collect::<Vec<_>>(),
                ["ac_power", "event_flags"],
                "{}",
                inv.name
            );
            let meters = dcmms_cloud::assets::meters::meters(
                &db,
                inv.id,
                dcmms_cloud::gateways::now_ms() + 86_400_000,
            )
            .await
            .unwrap();
            let hours = meters
                .iter()
                .find(|m| m.name == "running_hours")
                .unwrap_or_else(|| panic!("{}: {meters:?}", inv.name));
            assert!(hours.value > 0.0, "{}: {meters:?}", inv.name);
            assert_eq!(hours.source, "derived");
        }
        let plans = dcmms_cloud::pm::active_plans(&db).await.unwrap();
        assert_eq!(plans.len(), 4);
        let rules = dcmms_cloud::alarms::active_rules(&db).await.unwrap();
        assert_eq!(
            rules.iter().map(|r| &r.condition).collect::<Vec<_>>(),
            [&dcmms_cloud::alarms::Condition::BitMask { mask: 1, for_s: 0 }]
        );
    });
}

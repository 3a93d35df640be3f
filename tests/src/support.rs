//! Helpers the end-to-end and interoperability suites share.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// Polls `ok` every 20 ms; fails the test, naming `what`, after `limit`.
pub async fn wait_until(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A loopback port that was free a moment ago (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free loopback port: {e}"))
}

/// The interop venv's python, set up (idempotently) by
/// `tests/interop/setup-python.sh` from `tests/interop/requirements.txt`.
/// `needed_for` names the peer the calling test needs, for the failure message.
pub fn interop_python(needed_for: &str) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/setup-python.sh");
    let out = Command::new("bash")
        .arg(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "tests/interop/setup-python.sh failed ({needed_for} is required by this test):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

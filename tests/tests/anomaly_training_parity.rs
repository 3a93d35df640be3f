//! The Python half of the anomaly feature parity: `edge/models/features.py`
//! (what the models are trained on) still computes the committed fixture
//! that `edge/tests/anomaly_model.rs` holds the Rust features to, and the
//! committed model's metadata still matches it. Needs the training venv
//! (`edge/models/setup-python.sh`); fails, never skips, when it cannot be
//! made.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

#[test]
fn python_features_still_match_the_committed_fixture_and_model() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../edge/models");
    let setup = Command::new("bash")
        .arg(models.join("setup-python.sh"))
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "edge/models/setup-python.sh failed (numpy is required by this test):\n{}",
        String::from_utf8_lossy(&setup.stderr)
    );
    let python = String::from_utf8_lossy(&setup.stdout).trim().to_string();
    let out = Command::new(python)
        .arg("check_features.py")
        .current_dir(&models)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("windows checked"));
}

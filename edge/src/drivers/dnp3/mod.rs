//! DNP3 driver (Step Function I/O `dnp3` crate, master side) for
//! substation meters, reclosers and protection relays.
//! Normative behaviour: `docs/specs/drivers.md`, DNP3.
//!
//! The `dnp3` crate is licensed for non-commercial, non-production use
//! only; the feature is off by default and production builds leave it out
//! (`docs/licensing.md`).
//!
//! # Layout
//!
//! - [`config`]: the `[devices.dnp3]` section and its points (always built,
//!   so every build validates the same configuration).
//! - [`quality`]: DNP3 point flags → [`dcmms_shared::Quality`] and the
//!   sample-time rule; pure functions of bytes and numbers, always built
//!   and tested without the library.
//! - `driver` (feature `dnp3`): the task per device: one TCP master
//!   channel (the library reconnects forever with exponential delays), one
//!   association with a startup integrity poll, periodic integrity (class
//!   0123) and event polls (classes 1/2/3), unsolicited reporting and
//!   automatic time sync; a read handler that turns each response fragment
//!   into one [`crate::drivers::Reading`]; `comms_lost` samples at the
//!   integrity period while the outstation cannot be reached.

pub mod config;
#[cfg(feature = "dnp3")]
mod driver;
pub mod quality;

#[cfg(feature = "dnp3")]
pub use driver::run_device;

#[cfg(all(test, not(feature = "dnp3")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::StartError;
    use crate::config::EdgeConfig;

    #[tokio::test]
    async fn a_build_without_the_feature_refuses_a_dnp3_device_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
gateway_id = "gw-1"
[cloud]
url = "http://127.0.0.1:1"
credential = "gw-1.secret"
[buffer]
path = "{}"
[http]
listen = "127.0.0.1:0"
[[devices]]
name = "sub-01"
[devices.dnp3]
host = "127.0.0.1"
[[devices.dnp3.points]]
name = "v_a"
kind = "analog"
index = 0
"#,
            dir.path().join("buffer").display()
        );
        let cfg = EdgeConfig::from_toml(&text, "edge.toml").unwrap();
        let shutdown = tokio_util::sync::CancellationToken::new();
        match crate::start(cfg, shutdown).await {
            Err(StartError::ProtocolDisabled(d)) => assert_eq!(d, "sub-01"),
            other => panic!("expected ProtocolDisabled, got {other:?}"),
        }
    }
}

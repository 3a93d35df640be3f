//! OPC UA driver (async-opcua client) for devices that serve an address
//! space, such as wind-turbine controllers and plant SCADA gateways.
//! Normative behaviour: `docs/specs/drivers.md`, OPC UA.
//!
//! # Layout
//!
//! - [`config`]: the `[devices.opcua]` section and its points (always
//!   built, so every build validates the same configuration).
//! - `value` (feature `opcua`): DataValue → [`dcmms_shared::Sample`],
//!   pure and panic-free (quality from the StatusCode, numbers from the
//!   Variant).
//! - `browse` (feature `opcua`): browse-based point discovery.
//! - `driver` (feature `opcua`): the task per device: one session whose
//!   event loop async-opcua drives (it reconnects forever,
//!   `session_retry_limit(-1)`), one subscription with one monitored item
//!   per point, created again by this driver after every reconnect (a
//!   restarted server has forgotten them; a reactivated session's would
//!   not report unchanged values again).
//!
//! Choices: security `None` only for now. Sample time is the value's
//! source timestamp (else the server's, else the time of receipt). An
//! outage is marked once with a `comms_lost` sample per point (unlike MQTT:
//! a subscription reports by exception, so a silent point would otherwise
//! read as unchanged), and every reconnect subscribes anew so that each
//! point's current value supersedes its mark. Session keep-alives give up
//! a server that went silent without closing the connection.

#[cfg(feature = "opcua")]
mod browse;
pub mod config;
#[cfg(feature = "opcua")]
mod driver;
#[cfg(feature = "opcua")]
pub mod value;

#[cfg(feature = "opcua")]
pub use driver::run_device;

#[cfg(all(test, not(feature = "opcua")))]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::StartError;
    use crate::config::EdgeConfig;

    #[tokio::test]
    async fn a_build_without_the_feature_refuses_an_opcua_device_at_start() {
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
name = "wtg-01"
[devices.opcua]
endpoint_url = "opc.tcp://127.0.0.1:4840/"
[[devices.opcua.points]]
name = "wind_speed"
node_id = "ns=2;s=Turbine1.WindSpeed"
"#,
            dir.path().join("buffer").display()
        );
        // The configuration itself is valid in every build...
        let cfg = EdgeConfig::from_toml(&text, "edge.toml").unwrap();
        // ...but this build cannot run it.
        let shutdown = tokio_util::sync::CancellationToken::new();
        match crate::start(cfg, shutdown).await {
            Err(StartError::ProtocolDisabled(d)) => assert_eq!(d, "wtg-01"),
            other => panic!("expected ProtocolDisabled, got {other:?}"),
        }
    }
}

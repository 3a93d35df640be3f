//! MQTT driver (rumqttc) for devices that publish, such as weather stations
//! and BMS gateways. Normative behaviour: `docs/specs/drivers.md`, MQTT.
//!
//! # Layout
//!
//! - [`config`]: the `[devices.mqtt]` section and its points (always built,
//!   so every build validates the same configuration).
//! - [`payload`]: topic matching and value extraction, pure and panic-free.
//! - `driver` (feature `mqtt`): the task per device that drives rumqttc's
//!   event loop, reconnects with [`super::Backoff`] (rumqttc retries at
//!   once, forever), resubscribes when the broker lost the session, and sends
//!   each message's samples as one [`super::Reading`].
//!
//! Choices: the session is persistent (`clean_session = false`, stable
//! client id) and subscriptions are QoS 1 by default, so messages published
//! while the gateway is away are delivered when it is back, if the broker
//! kept them. Messages are acknowledged by rumqttc when read, i.e. handed to
//! the batcher, the same in-memory window as a polled Modbus sample. On
//! disconnect no `comms_lost` samples are made up: the device is
//! event-driven and its `device_connected` gauge says the link is down.

pub mod config;
#[cfg(feature = "mqtt")]
mod driver;
pub mod payload;

#[cfg(feature = "mqtt")]
pub use driver::run_device;

/// Lets one log line through per interval and counts what it held back.
#[derive(Debug)]
pub struct LogThrottle {
    every: std::time::Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(every: std::time::Duration) -> Self {
        LogThrottle {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged at `now`, `n` being how many were
    /// held back since the last one; `None` to stay quiet.
    pub fn allow(&mut self, now: std::time::Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn throttle_lets_one_line_through_per_interval_and_counts_the_rest() {
        let mut t = LogThrottle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.allow(t0), Some(0));
        assert_eq!(t.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(25)), Some(1));
    }
}

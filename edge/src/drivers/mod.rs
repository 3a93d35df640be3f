//! Field-device drivers behind one interface.
//!
//! A driver owns its devices' connections and sends each completed poll as a
//! [`Reading`] on a channel; it never blocks on another device. Each protocol
//! lives in its own folder behind its own cargo feature.

/// Always built, like `opcua`: the driver itself is behind feature `dnp3`.
pub mod dnp3;
#[cfg(feature = "modbus")]
pub mod modbus;
/// Always built: its configuration types are validated by every build.
pub mod mqtt;
/// Always built, like `mqtt`: the driver itself is behind feature `opcua`.
pub mod opcua;

use dcmms_shared::Sample;

/// The samples of one poll of one device, by point index in the device's
/// configuration.
#[derive(Debug, Clone)]
pub struct Reading {
    pub device: usize,
    pub samples: Vec<(usize, Sample)>,
}

/// Where drivers send their readings.
pub type ReadingTx = tokio::sync::mpsc::Sender<Reading>;

/// Exponential backoff with full jitter, for reconnects and retries.
#[derive(Debug, Clone)]
pub struct Backoff {
    min_ms: u64,
    max_ms: u64,
    attempt: u32,
}

impl Backoff {
    pub fn new(min_ms: u64, max_ms: u64) -> Self {
        Backoff {
            min_ms: min_ms.max(1),
            max_ms: max_ms.max(min_ms.max(1)),
            attempt: 0,
        }
    }

    /// The next delay: uniform in [min, min·2^attempt], capped at max, so a
    /// fleet of gateways that lost the same link do not retry in step.
    pub fn next_delay(&mut self) -> std::time::Duration {
        let ceiling = self
            .min_ms
            .saturating_mul(1u64 << self.attempt.min(20))
            .min(self.max_ms);
        self.attempt = self.attempt.saturating_add(1);
        let ms = rand::Rng::gen_range(&mut rand::thread_rng(), self.min_ms..=ceiling);
        std::time::Duration::from_millis(ms)
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Unix time now, in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds_and_resets() {
        let mut b = Backoff::new(100, 1000);
        for _ in 0..50 {
            let d = b.next_delay().as_millis() as u64;
            assert!((100..=1000).contains(&d), "{d}");
        }
        // After many attempts the ceiling is the max; some draws must exceed the min window.
        let big = (0..200).map(|_| b.next_delay().as_millis() as u64).max();
        assert!(big > Some(400), "{big:?}");
        b.reset();
        assert!(b.next_delay().as_millis() as u64 <= 100);
    }
}

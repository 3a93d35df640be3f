//! The simulation clock shared by all devices of a fleet.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::SimError;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Realtime,
    Accelerated { factor: f64 },
    Frozen,
}

#[derive(Debug)]
struct Anchor {
    unix_ms: i64,
    at: Instant,
    generation: u64,
}

#[derive(Debug)]
struct Inner {
    mode: Mode,
    anchor: Mutex<Anchor>,
}

/// Simulation time source. Cloning gives another handle to the same clock.
///
/// - [`SimClock::realtime`]: the system clock.
/// - [`SimClock::accelerated`]: starts at a given unix time and runs
///   `factor` times faster than real time (factor 1.0 = real time with an
///   offset).
/// - [`SimClock::frozen`]: stands still until [`SimClock::set`] or
///   [`SimClock::advance`]; every change bumps [`SimClock::generation`],
///   which makes a running fleet recompute its images before the next
///   read or snapshot.
#[derive(Debug, Clone)]
pub struct SimClock {
    inner: Arc<Inner>,
}

impl SimClock {
    fn with(mode: Mode, unix_ms: i64) -> Self {
        Self {
            inner: Arc::new(Inner {
                mode,
                anchor: Mutex::new(Anchor {
                    unix_ms,
                    at: Instant::now(),
                    generation: 0,
                }),
            }),
        }
    }

    /// The system clock.
    #[must_use]
    pub fn realtime() -> Self {
        Self::with(Mode::Realtime, 0)
    }

    /// Starts at `start_unix_ms` now and runs `factor` times faster than
    /// real time. Non-finite or negative factors are treated as 0.
    #[must_use]
    pub fn accelerated(start_unix_ms: i64, factor: f64) -> Self {
        let factor = if factor.is_finite() && factor > 0.0 {
            factor
        } else {
            0.0
        };
        Self::with(Mode::Accelerated { factor }, start_unix_ms)
    }

    /// Frozen at `unix_ms`.
    #[must_use]
    pub fn frozen(unix_ms: i64) -> Self {
        Self::with(Mode::Frozen, unix_ms)
    }

    /// True for a frozen clock.
    #[must_use]
    pub fn is_frozen(&self) -> bool {
        self.inner.mode == Mode::Frozen
    }

    fn lock(&self) -> MutexGuard<'_, Anchor> {
        self.inner
            .anchor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_locked(&self, a: &Anchor) -> i64 {
        match self.inner.mode {
            Mode::Realtime => chrono::Utc::now().timestamp_millis(),
            Mode::Frozen => a.unix_ms,
            Mode::Accelerated { factor } => {
                let elapsed_ms = a.at.elapsed().as_secs_f64() * 1000.0 * factor;
                a.unix_ms.saturating_add(elapsed_ms as i64)
            }
        }
    }

    /// Current simulation time (unix ms).
    #[must_use]
    pub fn now_ms(&self) -> i64 {
        let a = self.lock();
        self.now_locked(&a)
    }

    /// Counter bumped by every [`Self::set`] / [`Self::advance`].
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// `(generation, now_ms)` read atomically.
    pub(crate) fn read(&self) -> (u64, i64) {
        let a = self.lock();
        (a.generation, self.now_locked(&a))
    }

    /// Sets the simulation time to `unix_ms` (frozen: stays there;
    /// accelerated: continues from there).
    ///
    /// # Errors
    /// [`SimError::ClockNotSettable`] for a real-time clock.
    pub fn set(&self, unix_ms: i64) -> Result<(), SimError> {
        if self.inner.mode == Mode::Realtime {
            return Err(SimError::ClockNotSettable);
        }
        let mut a = self.lock();
        a.unix_ms = unix_ms;
        a.at = Instant::now();
        a.generation = a.generation.wrapping_add(1);
        Ok(())
    }

    /// Moves the simulation time by `delta_ms` (may be negative).
    ///
    /// # Errors
    /// [`SimError::ClockNotSettable`] for a real-time clock.
    pub fn advance(&self, delta_ms: i64) -> Result<(), SimError> {
        if self.inner.mode == Mode::Realtime {
            return Err(SimError::ClockNotSettable);
        }
        let mut a = self.lock();
        let now = self.now_locked(&a);
        a.unix_ms = now.saturating_add(delta_ms);
        a.at = Instant::now();
        a.generation = a.generation.wrapping_add(1);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn frozen_clock_moves_only_when_set() {
        let c = SimClock::frozen(1_000);
        let c2 = c.clone();
        assert_eq!(c.now_ms(), 1_000);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(c.now_ms(), 1_000);
        let g = c.generation();
        c2.set(5_000).unwrap();
        assert_eq!(c.now_ms(), 5_000);
        assert_ne!(c.generation(), g);
        c.advance(-1_000).unwrap();
        assert_eq!(c2.now_ms(), 4_000);
    }

    #[test]
    fn accelerated_clock_runs_faster() {
        let c = SimClock::accelerated(0, 1000.0);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(c.now_ms() >= 20_000);
        assert!(SimClock::realtime().set(0).is_err());
        let now = chrono::Utc::now().timestamp_millis();
        assert!((SimClock::realtime().now_ms() - now).abs() < 1_000);
    }
}

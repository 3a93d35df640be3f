//! Login rate limiting: after [`MAX_FAILURES`] failed logins for one
//! username within [`WINDOW_MS`], further attempts for it are refused (429)
//! until the window since the first failure has passed; a success clears
//! the count. Keyed by username, so spreading guesses over many client
//! addresses does not help; the price is that an attacker can lock a user
//! out for the window, which operators see in the log.

use std::collections::HashMap;
use std::sync::Mutex;

pub const MAX_FAILURES: u32 = 5;
pub const WINDOW_MS: i64 = 15 * 60_000;
/// Usernames tracked at most; the oldest windows are forgotten first.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (i64, u32)>>,
}

impl LoginLimiter {
    /// `Err(retry_after_ms)` while `username` is locked out at `now_ms`.
    pub fn check(&self, username: &str, now_ms: i64) -> Result<(), i64> {
        let map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match map.get(username) {
            Some(&(since, n)) if n >= MAX_FAILURES && now_ms - since < WINDOW_MS => {
                Err(WINDOW_MS - (now_ms - since))
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&self, username: &str, now_ms: i64) {
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_TRACKED {
            map.retain(|_, (since, _)| now_ms - *since < WINDOW_MS);
        }
        let e = map.entry(username.to_string()).or_insert((now_ms, 0));
        if now_ms - e.0 >= WINDOW_MS {
            *e = (now_ms, 0);
        }
        e.1 += 1;
    }

    pub fn succeeded(&self, username: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_after_five_failures_until_the_window_passes() {
        let l = LoginLimiter::default();
        for i in 0..MAX_FAILURES {
            assert_eq!(l.check("asha", 1000 + i as i64), Ok(()));
            l.failed("asha", 1000 + i as i64);
        }
        assert_eq!(l.check("asha", 2000), Err(WINDOW_MS - 1000));
        assert_eq!(l.check("ravi", 2000), Ok(()), "other users unaffected");
        assert_eq!(l.check("asha", 1000 + WINDOW_MS), Ok(()));
        l.failed("asha", 1000 + WINDOW_MS);
        assert_eq!(l.check("asha", 1001 + WINDOW_MS), Ok(()), "a new window");
        l.succeeded("asha");
        assert_eq!(l.check("asha", 1002 + WINDOW_MS), Ok(()));
    }
}

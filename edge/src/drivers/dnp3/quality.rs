//! What a DNP3 point's flags say about its value, and which time a sample
//! gets. Pure: no I/O, no library types, so every build tests it.

use super::config::Dnp3PointKind;
use dcmms_shared::Quality;

/// Flag bits common to every input type (IEEE 1815 §A.2 and on).
pub const ONLINE: u8 = 0x01;
pub const RESTART: u8 = 0x02;
pub const COMM_LOST: u8 = 0x04;
pub const REMOTE_FORCED: u8 = 0x08;
pub const LOCAL_FORCED: u8 = 0x10;
/// Bit 5: CHATTER_FILTER on binaries, ROLLOVER on counters (obsolete),
/// OVER_RANGE on analogs.
pub const BIT5: u8 = 0x20;
/// Bit 6: DISCONTINUITY on counters, REFERENCE_ERR on analogs; reserved on
/// binaries.
pub const BIT6: u8 = 0x40;

/// The quality of a value with these flags.
///
/// - COMM_LOST: the outstation lost its own source (a downstream IED);
///   the value is its last known one → `comms_lost`.
/// - RESTART (not updated since the device restarted) or not ONLINE
///   (offline, out of service) → `bad`: the value means nothing.
/// - Analog OVER_RANGE or REFERENCE_ERR → `bad`: the device says the
///   number is wrong.
/// - Forced (LOCAL/REMOTE_FORCED), binary CHATTER_FILTER, counter
///   DISCONTINUITY → `stale`: a value that is usable but is not a fresh
///   measurement (substituted, or held while the input chatters, or a
///   counter whose increments are not to be trusted across the jump).
/// - Otherwise → `good`.
pub fn quality(kind: Dnp3PointKind, flags: u8) -> Quality {
    if flags & COMM_LOST != 0 {
        return Quality::CommsLost;
    }
    if flags & RESTART != 0 || flags & ONLINE == 0 {
        return Quality::Bad;
    }
    match kind {
        Dnp3PointKind::Analog | Dnp3PointKind::AnalogOutput => {
            if flags & (BIT5 | BIT6) != 0 {
                return Quality::Bad;
            }
        }
        Dnp3PointKind::Counter | Dnp3PointKind::FrozenCounter => {
            if flags & BIT6 != 0 {
                return Quality::Stale;
            }
        }
        Dnp3PointKind::Binary | Dnp3PointKind::DoubleBit => {
            if flags & BIT5 != 0 {
                return Quality::Stale;
            }
        }
        Dnp3PointKind::BinaryOutput => {}
    }
    if flags & (LOCAL_FORCED | REMOTE_FORCED) != 0 {
        return Quality::Stale;
    }
    Quality::Good
}

/// 2000-01-01T00:00:00Z: a device time before this is an unset clock
/// counting from its epoch.
pub const EARLIEST_DEVICE_TIME_MS: i64 = 946_684_800_000;
/// How far ahead of our clock a device time may be before it is not
/// believed.
pub const MAX_DEVICE_AHEAD_MS: i64 = 3_600_000;

/// The sample time: the device's timestamp when it has a believable one
/// (synchronised, after 2000, at most an hour ahead of `now_ms`), else
/// the time of receipt.
pub fn sample_time(device_ms: Option<u64>, synchronized: bool, now_ms: i64) -> i64 {
    match device_ms.and_then(|t| i64::try_from(t).ok()) {
        Some(t)
            if synchronized
                && t >= EARLIEST_DEVICE_TIME_MS
                && t <= now_ms.saturating_add(MAX_DEVICE_AHEAD_MS) =>
        {
            t
        }
        _ => now_ms,
    }
}

/// value = raw × scale + offset, or `None` when that is not a finite number.
pub fn scaled(raw: f64, scale: f64, offset: f64) -> Option<f64> {
    let v = raw * scale + offset;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Dnp3PointKind::*;

    #[test]
    fn online_alone_is_good_for_every_kind() {
        for k in [
            Analog,
            Binary,
            DoubleBit,
            Counter,
            FrozenCounter,
            AnalogOutput,
            BinaryOutput,
        ] {
            assert_eq!(quality(k, ONLINE), Quality::Good, "{k:?}");
            // The binary state bit (7) is a value, not a quality.
            assert_eq!(quality(k, ONLINE | 0x80), Quality::Good, "{k:?}");
        }
    }

    #[test]
    fn comm_lost_wins_over_everything_else() {
        assert_eq!(quality(Analog, COMM_LOST), Quality::CommsLost);
        assert_eq!(
            quality(Counter, ONLINE | COMM_LOST | RESTART),
            Quality::CommsLost
        );
    }

    #[test]
    fn restart_and_offline_values_are_bad() {
        assert_eq!(quality(Analog, RESTART), Quality::Bad);
        assert_eq!(quality(Binary, ONLINE | RESTART), Quality::Bad);
        assert_eq!(quality(Counter, 0), Quality::Bad);
    }

    #[test]
    fn bits_five_and_six_mean_what_the_kind_says() {
        assert_eq!(quality(Analog, ONLINE | BIT5), Quality::Bad); // over range
        assert_eq!(quality(Analog, ONLINE | BIT6), Quality::Bad); // reference error
        assert_eq!(quality(Binary, ONLINE | BIT5), Quality::Stale); // chatter filter
        assert_eq!(quality(Binary, ONLINE | BIT6), Quality::Good); // reserved
        assert_eq!(quality(Counter, ONLINE | BIT5), Quality::Good); // rollover (obsolete)
        assert_eq!(quality(Counter, ONLINE | BIT6), Quality::Stale); // discontinuity
    }

    #[test]
    fn forced_values_are_stale() {
        assert_eq!(quality(Analog, ONLINE | LOCAL_FORCED), Quality::Stale);
        assert_eq!(quality(Binary, ONLINE | REMOTE_FORCED), Quality::Stale);
    }

    #[test]
    fn device_time_is_used_only_when_believable() {
        let now = 1_782_023_400_000;
        let t = (now - 5_000) as u64;
        assert_eq!(sample_time(Some(t), true, now), now - 5_000);
        assert_eq!(sample_time(Some(t), false, now), now);
        assert_eq!(sample_time(None, true, now), now);
        // A clock never set counts from its epoch.
        assert_eq!(sample_time(Some(12_345), true, now), now);
        assert_eq!(sample_time(Some((now + 7_200_000) as u64), true, now), now);
        assert_eq!(sample_time(Some(u64::MAX), true, now), now);
    }

    #[test]
    fn scaling_rejects_non_finite_results() {
        assert_eq!(scaled(2300.0, 0.1, 0.0), Some(230.0));
        assert_eq!(scaled(1.0, 2.0, -1.0), Some(1.0));
        assert_eq!(scaled(f64::NAN, 1.0, 0.0), None);
        assert_eq!(scaled(f64::MAX, 10.0, 0.0), None);
    }
}

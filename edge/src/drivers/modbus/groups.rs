//! Poll groups: a device's points split by poll interval, each group with
//! its own coalesced reads and its own next-due time, all served by the
//! device's one task and connection (a Modbus device answers one request at
//! a time anyway).
//!
//! Points named in no `poll_groups` entry form the default group at the
//! device's `poll_interval_ms`. Groups start staggered across their interval
//! so a device's slow and fast groups do not fall due together.

use super::plan::{self, ReadRange};
use crate::config::{DeviceConfig, ModbusRequestSettings, PointConfig};
use std::time::Duration;
use tokio::time::Instant;

/// One poll group, ready to poll.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub interval: Duration,
    /// Indices into the device's points.
    pub points: Vec<usize>,
    pub ranges: Vec<ReadRange>,
    pub due: Instant,
}

impl Group {
    /// Moves `due` one interval on; after a late poll the next one is an
    /// interval from now rather than a burst of catch-up polls.
    pub fn advance(&mut self, now: Instant) {
        self.due += self.interval;
        if self.due <= now {
            self.due = now + self.interval;
        }
    }
}

/// Builds the device's groups over `points` (its configured or discovered
/// points). A group whose names match no point (a discovering device that
/// lacks them) is left out with a warning.
pub fn schedule(
    device: &DeviceConfig,
    points: &[PointConfig],
    settings: ModbusRequestSettings,
    default_interval_ms: u64,
    now: Instant,
) -> Vec<Group> {
    let mut taken = vec![false; points.len()];
    let mut named = Vec::new();
    for g in &device.poll_groups {
        let idx: Vec<usize> = points
            .iter()
            .enumerate()
            .filter(|(_, p)| g.points.iter().any(|n| n == &p.name))
            .map(|(i, _)| i)
            .collect();
        if idx.len() < g.points.len() {
            tracing::warn!(
                group = %g.name,
                missing = g.points.len() - idx.len(),
                "poll group names points this device does not have"
            );
        }
        if idx.is_empty() {
            continue;
        }
        for &i in &idx {
            if let Some(t) = taken.get_mut(i) {
                *t = true;
            }
        }
        named.push((g.name.clone(), g.interval_ms, idx));
    }
    let rest: Vec<usize> = (0..points.len()).filter(|&i| !taken[i]).collect();
    let mut all = Vec::new();
    if !rest.is_empty() {
        all.push(("default".to_string(), default_interval_ms, rest));
    }
    all.extend(named);
    let n = all.len().max(1) as u32;
    all.into_iter()
        .enumerate()
        .map(|(k, (name, interval_ms, idx))| {
            let interval = Duration::from_millis(interval_ms.max(1));
            let subset: Vec<PointConfig> =
                idx.iter().filter_map(|&i| points.get(i).cloned()).collect();
            Group {
                name,
                interval,
                ranges: plan::plan(&subset, settings.max_gap, settings.max_registers_per_read),
                points: idx,
                due: now + interval * k as u32 / n,
            }
        })
        .collect()
}

/// The group that falls due first.
pub fn next_due(groups: &[Group]) -> Option<usize> {
    groups
        .iter()
        .enumerate()
        .min_by_key(|(_, g)| g.due)
        .map(|(i, _)| i)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::config::{EdgeConfig, PollGroupConfig};

    fn device() -> DeviceConfig {
        let text = crate::config::EXAMPLE;
        let mut d = EdgeConfig::from_toml(text, "example")
            .unwrap()
            .devices
            .remove(0);
        d.poll_groups = vec![PollGroupConfig {
            name: "slow".into(),
            interval_ms: 10_000,
            points: vec!["cabinet_temperature".into(), "operating_state".into()],
        }];
        d
    }

    #[test]
    fn ungrouped_points_poll_at_the_device_interval_and_groups_read_only_their_registers() {
        let d = device();
        let now = Instant::now();
        let g = schedule(&d, &d.points, d.modbus_settings().unwrap(), 1000, now);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].name, "default");
        assert_eq!(g[0].interval, Duration::from_millis(1000));
        assert_eq!(g[1].name, "slow");
        let names = |grp: &Group| -> Vec<&str> {
            grp.points
                .iter()
                .map(|&i| d.points[i].name.as_str())
                .collect()
        };
        assert_eq!(names(&g[1]), ["cabinet_temperature", "operating_state"]);
        assert_eq!(names(&g[0]), ["ac_power", "ac_energy", "ac_frequency"]);
        // The slow group's reads cover 40103..=40108 and nothing of the
        // fast points (40084..=40096).
        assert!(g[1].ranges.iter().all(|r| r.start >= 40103));
        assert!(g[0].ranges.iter().all(|r| r.start + r.count <= 40097));
        // Staggered: the second group starts half its interval later.
        assert_eq!(g[0].due, now);
        assert_eq!(g[1].due, now + Duration::from_secs(5));
        assert_eq!(next_due(&g), Some(0));
    }

    #[test]
    fn a_late_poll_does_not_cause_a_burst() {
        let d = device();
        let now = Instant::now();
        let mut g = schedule(&d, &d.points, d.modbus_settings().unwrap(), 1000, now).remove(0);
        g.advance(now);
        assert_eq!(g.due, now + Duration::from_secs(1));
        // Woken 3.5 intervals late: next poll one interval from now.
        let late = now + Duration::from_millis(4500);
        g.advance(late);
        assert_eq!(g.due, late + Duration::from_secs(1));
    }

    #[test]
    fn groups_naming_missing_points_are_left_out() {
        let mut d = device();
        d.poll_groups[0].points = vec!["nope".into()];
        let g = schedule(
            &d,
            &d.points,
            d.modbus_settings().unwrap(),
            1000,
            Instant::now(),
        );
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].points.len(), d.points.len());
    }
}

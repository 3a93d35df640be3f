//! Per-asset state, pure and without I/O (docs/specs/anomaly-models.md §3):
//! samples → rows (zero-order hold at the model's sample period) → windows
//! → features; and the score hysteresis that turns scores into raise and
//! clear decisions. The engine and the evaluation program share it.

use super::features::{FeatureSet, Params};
use super::model::{InferError, Model, ScoreMeta, WindowMeta};
use dcmms_shared::{AnomalyEvent, AnomalyKind, Quality};
/// Most roles a feature set may read.
pub const MAX_ROLES: usize = 16;

/// The rows of one window: a ring of `length` rows of the set's roles,
/// allocated at the window's length, so a row costs 8 bytes of time and
/// 8 per role (a PV inverter's 1,440 rows of 6 roles: 80 kB).
#[derive(Debug, Clone)]
struct RowRing {
    roles: usize,
    ts: Vec<i64>,
    values: Vec<f64>,
    /// Slot of the oldest row.
    head: usize,
    len: usize,
}

impl RowRing {
    fn new(roles: usize) -> RowRing {
        RowRing {
            roles,
            ts: Vec::new(),
            values: Vec::new(),
            head: 0,
            len: 0,
        }
    }

    fn capacity(&self) -> usize {
        self.ts.len()
    }

    /// Makes room for exactly `length` rows, keeping the newest (a model
    /// swapped for one with another window length).
    fn fit(&mut self, length: usize) {
        if self.capacity() == length {
            return;
        }
        let keep = self.len.min(length);
        let mut ts = Vec::with_capacity(length);
        let mut values = Vec::with_capacity(length * self.roles);
        for k in self.len - keep..self.len {
            let (t, row) = self.get(k);
            ts.push(t);
            values.extend_from_slice(row);
        }
        ts.resize(length, 0);
        values.resize(length * self.roles, 0.0);
        *self = RowRing {
            roles: self.roles,
            ts,
            values,
            head: 0,
            len: keep,
        };
    }

    /// Appends a row of `roles` values, dropping the oldest when full.
    fn push(&mut self, t: i64, row: &[f64]) {
        let cap = self.capacity();
        if cap == 0 {
            return;
        }
        let slot = if self.len < cap {
            self.len += 1;
            (self.head + self.len - 1) % cap
        } else {
            let s = self.head;
            self.head = (self.head + 1) % cap;
            s
        };
        self.ts[slot] = t;
        let r = self.roles;
        self.values[slot * r..(slot + 1) * r].copy_from_slice(&row[..r]);
    }

    /// Row `k`, oldest first (`k < len`).
    fn get(&self, k: usize) -> (i64, &[f64]) {
        let i = (self.head + k) % self.capacity().max(1);
        let r = self.roles;
        (self.ts[i], &self.values[i * r..(i + 1) * r])
    }

    fn iter(&self) -> impl Iterator<Item = &[f64]> {
        (0..self.len).map(|k| self.get(k).1)
    }

    /// Times of the oldest and the newest row.
    fn span(&self) -> Option<(i64, i64)> {
        (self.len > 0).then(|| (self.get(0).0, self.get(self.len - 1).0))
    }
}

/// What one role holds: the last value and whether it may be used.
#[derive(Debug, Clone, Copy)]
struct Held {
    value: f64,
    usable: bool,
}

/// A window ready to be scored.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReady {
    pub start_ms: i64,
    pub end_ms: i64,
    pub features: Vec<f64>,
}

/// Rows and windows of one asset.
#[derive(Debug, Clone)]
pub struct AssetWindow {
    held: Vec<Option<Held>>,
    next_row_ms: Option<i64>,
    rows: RowRing,
    since_scored: usize,
    /// Rows skipped because a role was missing or not usable.
    pub invalid_rows: u64,
    /// Windows the feature set declined to score (e.g. a stopped turbine).
    pub unscored_windows: u64,
}

impl AssetWindow {
    pub fn new(roles: usize) -> AssetWindow {
        AssetWindow {
            held: vec![None; roles.min(MAX_ROLES)],
            next_row_ms: None,
            rows: RowRing::new(roles.min(MAX_ROLES)),
            since_scored: 0,
            invalid_rows: 0,
            unscored_windows: 0,
        }
    }

    /// Feeds one sample of role `role`. Rows for every row time before the
    /// sample's timestamp are formed first from the values held so far;
    /// each completed window is handed to `on_window` (features computed
    /// with `set`/`params`).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        role: usize,
        ts_ms: i64,
        value: f64,
        quality: Quality,
        window: WindowMeta,
        set: FeatureSet,
        params: &Params,
        on_window: &mut dyn FnMut(WindowReady),
    ) {
        let period = window.sample_period_ms.max(1) as i64;
        let next = *self
            .next_row_ms
            .get_or_insert_with(|| ts_ms.div_euclid(period) * period);
        if ts_ms > next {
            // Row times next, next+p, … below ts_ms; at most `length` of them.
            let last = (ts_ms - 1).div_euclid(period) * period;
            let count = (last - next) / period + 1;
            let skip = (count - window.length as i64).max(0);
            let mut t = next + skip * period;
            while t <= last {
                self.form_row(t, window, set, params, on_window);
                t += period;
            }
            self.next_row_ms = Some(last + period);
        }
        if let Some(h) = self.held.get_mut(role) {
            *h = Some(Held {
                value,
                usable: value.is_finite() && matches!(quality, Quality::Good | Quality::Stale),
            });
        }
    }

    fn form_row(
        &mut self,
        t: i64,
        window: WindowMeta,
        set: FeatureSet,
        params: &Params,
        on_window: &mut dyn FnMut(WindowReady),
    ) {
        let mut row = [0.0; MAX_ROLES];
        for (slot, h) in row.iter_mut().zip(&self.held) {
            match h {
                Some(Held {
                    value,
                    usable: true,
                }) => *slot = *value,
                _ => {
                    self.invalid_rows += 1;
                    return;
                }
            }
        }
        self.rows.fit(window.length);
        self.rows.push(t, &row);
        self.since_scored += 1;
        if self.rows.len < window.length || self.since_scored < window.step {
            return;
        }
        let Some((start_ms, end_ms)) = self.rows.span() else {
            return;
        };
        let max_span = (window.length as f64 * 1.5 * window.sample_period_ms as f64) as i64;
        if end_ms - start_ms > max_span {
            return;
        }
        self.since_scored = 0;
        let mut features = vec![0.0; set.features().len()];
        let scoreable = set.compute(params, self.rows.iter(), &mut features);
        if !scoreable {
            self.unscored_windows += 1;
            return;
        }
        on_window(WindowReady {
            start_ms,
            end_ms,
            features,
        });
    }

    /// Rows currently held (at most the window length).
    pub fn rows(&self) -> usize {
        self.rows.len
    }
}

/// Raise/clear hysteresis of one asset.
#[derive(Debug, Clone, Default)]
pub struct Hysteresis {
    pub anomalous: bool,
    above: u32,
    below: u32,
}

impl Hysteresis {
    /// Counts one window's score; returns a decision when the state flips.
    pub fn update(&mut self, score: f64, s: &ScoreMeta) -> Option<AnomalyKind> {
        if !self.anomalous {
            self.above = if score > s.raise { self.above + 1 } else { 0 };
            if self.above >= s.raise_count {
                self.anomalous = true;
                self.above = 0;
                self.below = 0;
                return Some(AnomalyKind::Raised);
            }
        } else {
            self.below = if score < s.clear { self.below + 1 } else { 0 };
            if self.below >= s.clear_count {
                self.anomalous = false;
                self.above = 0;
                self.below = 0;
                return Some(AnomalyKind::Cleared);
            }
        }
        None
    }
}

/// Scores a window with `model`, updates the hysteresis, and returns the
/// score and the event when the state flipped.
pub fn score_window(
    model: &Model,
    asset: &str,
    hyst: &mut Hysteresis,
    w: &WindowReady,
) -> Result<(f64, Option<AnomalyEvent>), InferError> {
    let scored = model.score(&w.features)?;
    let m = &model.meta;
    let event = hyst.update(scored.score, &m.score).map(|kind| {
        let explanation = match kind {
            AnomalyKind::Raised => model.explain(&scored),
            AnomalyKind::Cleared => Vec::new(),
        };
        let is_context = |name: &str| m.features.iter().any(|f| f.name == name && f.context);
        let top = explanation
            .iter()
            .find(|c| !is_context(&c.feature))
            .or(explanation.first());
        let summary = match (kind, top) {
            (AnomalyKind::Raised, Some(top)) => top.text.clone(),
            _ => "back to normal".to_string(),
        };
        AnomalyEvent {
            kind,
            asset: asset.to_string(),
            asset_class: m.asset_class.clone(),
            model_id: m.model_id.clone(),
            model_version: m.version.clone(),
            ts_ms: w.end_ms,
            window_start_ms: w.start_ms,
            score: scored.score,
            raise_level: m.score.raise,
            summary,
            explanation,
        }
    });
    Ok((scored.score, event))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::anomaly::features::WindParams;

    fn ring_rows(r: &RowRing) -> Vec<(i64, Vec<f64>)> {
        (0..r.len)
            .map(|k| (r.get(k).0, r.get(k).1.to_vec()))
            .collect()
    }

    #[test]
    fn row_ring_keeps_the_newest_rows_in_order_across_wrap_and_refit() {
        let mut r = RowRing::new(2);
        r.push(0, &[9.0, 9.0]);
        assert_eq!(r.len, 0, "no room before fit");
        r.fit(3);
        for t in 1..=5 {
            r.push(t, &[t as f64, -(t as f64), 7.0]);
        }
        assert_eq!(
            ring_rows(&r),
            [
                (3, vec![3.0, -3.0]),
                (4, vec![4.0, -4.0]),
                (5, vec![5.0, -5.0])
            ]
        );
        assert_eq!(r.span(), Some((3, 5)));
        assert_eq!(r.iter().count(), 3);
        r.fit(2);
        assert_eq!(ring_rows(&r), [(4, vec![4.0, -4.0]), (5, vec![5.0, -5.0])]);
        r.fit(4);
        r.push(6, &[6.0, -6.0]);
        assert_eq!(
            ring_rows(&r).iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            [4, 5, 6]
        );
        assert_eq!(r.values.len(), 8, "4 rows of 2 roles, nothing more");
    }

    const W: WindowMeta = WindowMeta {
        sample_period_ms: 1000,
        length: 4,
        step: 2,
    };

    fn params() -> Params {
        Params::Wind(WindParams {
            rated_kw: 3000.0,
            power_curve: vec![[3.0, 0.0], [12.0, 3000.0]],
        })
    }

    /// Feeds every role the same value at `ts`; returns the windows formed.
    fn feed(w: &mut AssetWindow, ts: i64, v: f64, q: Quality) -> Vec<WindowReady> {
        let mut out = Vec::new();
        for role in 0..8 {
            w.push(
                role,
                ts,
                v,
                q,
                W,
                FeatureSet::WindTurbineV1,
                &params(),
                &mut |r| out.push(r),
            );
        }
        out
    }

    #[test]
    fn rows_hold_the_last_value_and_windows_come_every_step() {
        let mut w = AssetWindow::new(8);
        let mut windows = Vec::new();
        for k in 0..10 {
            windows.extend(feed(
                &mut w,
                10_000 + k * 1000 + 300,
                k as f64,
                Quality::Good,
            ));
        }
        // Row T is formed when a sample after T arrives and holds the value
        // sent before T: row 10000 is invalid (nothing seen yet), rows
        // 11000.. hold 0, 1, 2, …; the row at 19000 awaits a later sample.
        let ends: Vec<i64> = windows.iter().map(|x| x.end_ms).collect();
        assert_eq!(ends, vec![14_000, 16_000, 18_000]);
        let first = &windows[0];
        assert_eq!(first.start_ms, 11_000);
        // wind_mean of rows 11000..14000 = values 0,1,2,3 → 1.5.
        assert_eq!(first.features[0], 1.5);
    }

    #[test]
    fn a_gap_repeats_held_values_at_most_a_window_long() {
        let mut w = AssetWindow::new(8);
        feed(&mut w, 0, 1.0, Quality::Good);
        let windows = feed(&mut w, 60_000, 2.0, Quality::Good);
        // 60 row times passed; only the last 4 are formed, all holding 1.0.
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].start_ms, 56_000);
        assert_eq!(windows[0].end_ms, 59_000);
        assert_eq!(windows[0].features[0], 1.0);
    }

    #[test]
    fn comms_lost_roles_make_rows_invalid_and_no_window_is_scored() {
        let mut w = AssetWindow::new(8);
        let mut n = 0;
        for k in 0..20 {
            n += feed(&mut w, k * 1000, 1.0, Quality::CommsLost).len();
        }
        assert_eq!(n, 0);
        assert!(w.invalid_rows >= 19, "{}", w.invalid_rows);
        assert_eq!(w.rows(), 0);
        // Values come back: windows resume once the window is full again.
        for k in 20..30 {
            n += feed(&mut w, k * 1000, 1.0, Quality::Good).len();
        }
        assert!(n >= 2, "{n}");
    }

    #[test]
    fn hysteresis_needs_consecutive_windows_and_does_not_flap() {
        let s = ScoreMeta {
            raise: 1.0,
            clear: 0.5,
            raise_count: 3,
            clear_count: 2,
        };
        let mut h = Hysteresis::default();
        // Two high windows, a low one: no raise.
        for x in [2.0, 2.0, 0.1, 2.0, 2.0] {
            assert_eq!(h.update(x, &s), None, "{x}");
        }
        assert_eq!(h.update(2.0, &s), Some(AnomalyKind::Raised));
        // Scores between clear and raise, or a single low one, keep it raised.
        for x in [0.7, 0.9, 0.4, 0.8, 0.4, 0.6] {
            assert_eq!(h.update(x, &s), None, "{x}");
            assert!(h.anomalous);
        }
        assert_eq!(h.update(0.4, &s), None);
        assert_eq!(h.update(0.3, &s), Some(AnomalyKind::Cleared));
        assert!(!h.anomalous);
    }
}

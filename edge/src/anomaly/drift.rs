//! Feature drift against the training data (docs/specs/model-registry.md
//! §4): windows' normalised features counted into the model's reference
//! bins, and the population stability index per feature. Pure.

use serde::Deserialize;

/// Bins per feature (9 edges).
pub const BINS: usize = 10;
/// Proportions are floored at this before the logarithm.
pub const FLOOR: f64 = 1e-4;

/// The `drift` section of a model's metadata.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DriftMeta {
    /// Per feature: 9 increasing bin edges in normalised units.
    pub edges: Vec<Vec<f64>>,
    /// Per feature: the 10 bin proportions of the training windows.
    pub reference: Vec<Vec<f64>>,
    #[serde(default = "d_notice")]
    pub notice_psi: f64,
    #[serde(default = "d_min_windows")]
    pub min_windows: u64,
}

fn d_notice() -> f64 {
    0.25
}
fn d_min_windows() -> u64 {
    60_480
}

impl DriftMeta {
    /// Checks the section against `features` features.
    pub fn check(&self, features: usize) -> Result<(), String> {
        if self.edges.len() != features || self.reference.len() != features {
            return Err(format!(
                "drift: edges and reference need one row per feature ({features})"
            ));
        }
        for (i, e) in self.edges.iter().enumerate() {
            if e.len() != BINS - 1
                || e.iter().any(|v| !v.is_finite())
                || e.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(format!(
                    "drift.edges[{i}]: need {} finite, strictly increasing values",
                    BINS - 1
                ));
            }
        }
        for (i, r) in self.reference.iter().enumerate() {
            let sum: f64 = r.iter().sum();
            if r.len() != BINS
                || r.iter().any(|v| !v.is_finite() || *v < 0.0)
                || (sum - 1.0).abs() > 0.01
            {
                return Err(format!(
                    "drift.reference[{i}]: need {BINS} proportions ≥ 0 summing to 1"
                ));
            }
        }
        if !(self.notice_psi.is_finite() && self.notice_psi > 0.0) || self.min_windows == 0 {
            return Err("drift: notice_psi must be positive and min_windows ≥ 1".into());
        }
        Ok(())
    }
}

/// The bin of `z` given ascending `edges`: values equal to an edge go up.
pub fn bin_of(edges: &[f64], z: f64) -> usize {
    edges.partition_point(|e| *e <= z)
}

/// PSI of observed `counts` against `reference` proportions.
pub fn psi(counts: &[u64], reference: &[f64]) -> f64 {
    let n: u64 = counts.iter().sum();
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .zip(reference)
        .map(|(c, q)| {
            let p = (*c as f64 / n as f64).max(FLOOR);
            let q = q.max(FLOOR);
            (p - q) * (p / q).ln()
        })
        .sum()
}

/// Windows of one asset counted since the last report.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftCounter {
    pub model_version: String,
    pub counts: Vec<[u64; BINS]>,
    pub windows: u64,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl DriftCounter {
    pub fn new(model_version: &str, features: usize) -> DriftCounter {
        DriftCounter {
            model_version: model_version.to_string(),
            counts: vec![[0; BINS]; features],
            windows: 0,
            from_ms: 0,
            to_ms: 0,
        }
    }

    /// Counts one window's normalised features `z`.
    pub fn observe(&mut self, meta: &DriftMeta, z: &[f64], ts_ms: i64) {
        for ((c, e), v) in self.counts.iter_mut().zip(&meta.edges).zip(z) {
            if v.is_finite()
                && let Some(slot) = c.get_mut(bin_of(e, *v))
            {
                *slot += 1;
            }
        }
        if self.windows == 0 {
            self.from_ms = ts_ms;
        }
        self.windows += 1;
        self.to_ms = ts_ms;
    }

    /// PSI per feature.
    pub fn psi(&self, meta: &DriftMeta) -> Vec<f64> {
        self.counts
            .iter()
            .zip(&meta.reference)
            .map(|(c, q)| psi(c, q))
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn meta() -> DriftMeta {
        // Standard-normal deciles.
        let e = vec![
            -1.2816, -0.8416, -0.5244, -0.2533, 0.0, 0.2533, 0.5244, 0.8416, 1.2816,
        ];
        DriftMeta {
            edges: vec![e.clone(), e],
            reference: vec![vec![0.1; BINS], vec![0.1; BINS]],
            notice_psi: 0.25,
            min_windows: 10,
        }
    }

    #[test]
    fn bins_follow_the_edges() {
        let m = meta();
        assert_eq!(bin_of(&m.edges[0], -9.0), 0);
        assert_eq!(bin_of(&m.edges[0], 0.0), 5, "an edge value goes up");
        assert_eq!(bin_of(&m.edges[0], -0.01), 4);
        assert_eq!(bin_of(&m.edges[0], 9.0), 9);
    }

    #[test]
    fn the_same_distribution_has_a_small_psi_and_a_shifted_one_a_large_psi() {
        let m = meta();
        // Deterministic pseudo-normal draws (sum of 12 uniforms − 6).
        let mut x = 12345u64;
        let mut draw = || {
            let mut s = 0.0;
            for _ in 0..12 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (x >> 11) as f64 / (1u64 << 53) as f64;
            }
            s - 6.0
        };
        let mut c = DriftCounter::new("1", 2);
        for t in 0..20_000 {
            let a = draw();
            let b = draw() + 1.0; // the second feature shifted by one sigma
            c.observe(&m, &[a, b], t);
        }
        let p = c.psi(&m);
        assert!(p[0] < 0.01, "{p:?}");
        assert!(p[1] > 0.5, "{p:?}");
        assert_eq!((c.windows, c.from_ms, c.to_ms), (20_000, 0, 19_999));
    }

    #[test]
    fn psi_matches_a_hand_computation_and_floors_empty_bins() {
        // Half the windows in one bin, half in another.
        let mut counts = [0u64; BINS];
        counts[0] = 50;
        counts[9] = 50;
        let q = [0.1; BINS];
        let want =
            2.0 * (0.5 - 0.1) * (0.5f64 / 0.1).ln() + 8.0 * (FLOOR - 0.1) * (FLOOR / 0.1).ln();
        assert!((psi(&counts, &q) - want).abs() < 1e-12);
        assert_eq!(psi(&[0; BINS], &q), 0.0);
    }

    #[test]
    fn bad_sections_are_refused() {
        let mut m = meta();
        assert!(m.check(2).is_ok());
        assert!(m.check(3).is_err());
        m.edges[1][3] = m.edges[1][2];
        assert!(m.check(2).unwrap_err().contains("drift.edges[1]"));
        let mut m = meta();
        m.reference[0][0] = 0.5;
        assert!(m.check(2).unwrap_err().contains("drift.reference[0]"));
        let mut m = meta();
        m.notice_psi = f64::NAN;
        assert!(m.check(2).is_err());
    }
}

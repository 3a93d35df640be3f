//! The telemetry model: what a gateway measures and sends.

use serde::{Deserialize, Serialize};

/// Identity of a point within one gateway: the device it lives on and its name.
///
/// Globally a point is `(gateway id, device, point)`; the gateway id travels in
/// the [`Batch`] envelope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PointKey {
    pub device: String,
    pub point: String,
}

/// Quality of one sample, as judged by the driver that produced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Read from the device and believed correct.
    Good,
    /// The last good value, repeated because no fresh value arrived in time.
    Stale,
    /// The device could not be reached; the value is the last known one.
    CommsLost,
    /// The device answered but flagged the value as invalid or not implemented.
    Bad,
}

impl Quality {
    /// The wire code of this quality (see `docs/specs/wire-format.md`).
    pub fn code(self) -> u8 {
        match self {
            Quality::Good => 0,
            Quality::Stale => 1,
            Quality::CommsLost => 2,
            Quality::Bad => 3,
        }
    }

    /// The quality for a wire code, or `None` for an unknown code.
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Quality::Good),
            1 => Some(Quality::Stale),
            2 => Some(Quality::CommsLost),
            3 => Some(Quality::Bad),
            _ => None,
        }
    }

    /// Lower-case name, as used in the JSON API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Stale => "stale",
            Quality::CommsLost => "comms_lost",
            Quality::Bad => "bad",
        }
    }
}

/// One measurement of one point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Unix time in milliseconds (UTC) at which the value was read.
    pub ts_ms: i64,
    /// The value in engineering units (scaling already applied).
    pub value: f64,
    pub quality: Quality,
}

/// The samples of one point within a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    pub device: String,
    pub point: String,
    /// Engineering unit, e.g. `W`, `V`, `°C`; empty when dimensionless.
    pub unit: String,
    pub samples: Vec<Sample>,
}

impl Series {
    pub fn key(&self) -> PointKey {
        PointKey {
            device: self.device.clone(),
            point: self.point.clone(),
        }
    }
}

/// What a gateway sends in one uplink request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    /// The gateway that produced the batch; must match its credential.
    pub gateway_id: String,
    /// Per-gateway sequence number, strictly increasing in the order batches
    /// are created. The cloud stores `(gateway_id, sequence)` at most once.
    pub sequence: u64,
    /// Unix ms at which the edge sealed the batch.
    pub created_ms: i64,
    pub series: Vec<Series>,
}

impl Batch {
    /// Total number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

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
    /// First sequence number this batch covers. Equal to `sequence` for a
    /// batch as sealed; lower when the edge merged never-sent batches
    /// `first_sequence..=sequence` into one.
    pub first_sequence: u64,
    /// Last sequence number this batch covers. Sequences are strictly
    /// increasing per gateway in the order batches are sealed; the cloud
    /// stores each at most once.
    pub sequence: u64,
    /// Unix ms at which the edge sealed the batch.
    pub created_ms: i64,
    /// Every sample the edge polled before this instant (Unix ms) is in this
    /// batch, an earlier-sequenced one, or a reported drop: the gateway's
    /// watermark at sealing time.
    pub polled_through_ms: i64,
    pub series: Vec<Series>,
    /// Data the edge discarded since the previous batch, reported once.
    pub drops: Vec<Drop>,
    /// Anomaly events (wire format version 3; none in version 2).
    #[serde(default)]
    pub events: Vec<AnomalyEvent>,
}

/// Whether an anomaly started or ended (docs/specs/anomaly-models.md §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    Raised,
    Cleared,
}

impl AnomalyKind {
    pub fn code(self) -> u8 {
        match self {
            AnomalyKind::Raised => 0,
            AnomalyKind::Cleared => 1,
        }
    }

    pub fn from_code(c: u8) -> Option<AnomalyKind> {
        match c {
            0 => Some(AnomalyKind::Raised),
            1 => Some(AnomalyKind::Cleared),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Raised => "raised",
            AnomalyKind::Cleared => "cleared",
        }
    }
}

/// One feature's part in an anomaly: its share of the reconstruction
/// error, what was observed, what the model expected, and a sentence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    pub unit: String,
    pub share: f64,
    pub value: f64,
    pub expected: f64,
    pub text: String,
}

/// An anomaly raised or cleared by an edge model for one asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnomalyEvent {
    pub kind: AnomalyKind,
    pub asset: String,
    pub asset_class: String,
    pub model_id: String,
    pub model_version: String,
    /// Time of the scored window's last row (Unix ms).
    pub ts_ms: i64,
    pub window_start_ms: i64,
    pub score: f64,
    pub raise_level: f64,
    pub summary: String,
    /// Features, largest share first (empty for `cleared`).
    pub explanation: Vec<Contribution>,
}

/// Why the edge discarded buffered data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The buffer reached its byte cap; the oldest data went first.
    Capacity,
    /// The data was older than the buffer's age cap.
    Age,
    /// The stored chunk was unreadable (checksum or decode failure).
    Corrupt,
}

impl DropReason {
    pub fn code(self) -> u8 {
        match self {
            DropReason::Capacity => 0,
            DropReason::Age => 1,
            DropReason::Corrupt => 2,
        }
    }

    pub fn from_code(c: u8) -> Option<Self> {
        match c {
            0 => Some(DropReason::Capacity),
            1 => Some(DropReason::Age),
            2 => Some(DropReason::Corrupt),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Capacity => "capacity",
            DropReason::Age => "age",
            DropReason::Corrupt => "corrupt",
        }
    }
}

/// Sequences the edge discarded, with what they held per point (when known:
/// a corrupt chunk cannot say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drop {
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub reason: DropReason,
    pub spans: Vec<DroppedSpan>,
}

/// The samples of one point inside a dropped chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DroppedSpan {
    pub device: String,
    pub point: String,
    /// Timestamp of the first and last dropped sample (inclusive).
    pub from_ms: i64,
    pub to_ms: i64,
    pub samples: u64,
}

impl Batch {
    /// Total number of samples over all series.
    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

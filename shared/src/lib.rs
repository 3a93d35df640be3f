//! Types shared by the dCMMS edge agent and cloud service.
//!
//! # Layout
//!
//! - [`model`]: the telemetry model: point identity, samples with quality,
//!   series and the batch envelope an edge gateway sends.
//! - [`wire`]: the versioned binary encoding of a [`model::Batch`]
//!   (normative spec: `docs/specs/wire-format.md`). Decoding outside bytes
//!   never panics; every failure is a [`wire::DecodeError`].
//! - [`api`]: constants of the uplink contract (paths, media types, headers).
//!
//! This crate depends on serde and small codecs only: no async runtime, no
//! database, no web framework, so both sides (and fuzzers) can use it.

pub mod api;
pub mod model;
pub mod wire;

pub use model::{
    AnomalyEvent, AnomalyKind, Batch, Contribution, Drop, DropReason, DroppedSpan, PointKey,
    Quality, Sample, Series,
};

//! Read side of the telemetry store: devices, points and samples, raw or
//! aggregated into 1-minute and 15-minute min/avg/max buckets.
//!
//! Aggregates are read from `rollups_1m` / `rollups_15m` plus the
//! `rollup_deltas` the ingest transactions appended and the background fold
//! has not moved yet (see [`crate::ingest::rollups`]).

pub mod handlers;

pub use handlers::{
    Bucket, DeviceInfo, PointInfo, Resolution, SampleOut, SamplesPage, get_samples, list_devices,
    list_points,
};

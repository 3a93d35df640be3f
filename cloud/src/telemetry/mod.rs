//! Read side of the telemetry store: devices, points and samples, raw or
//! aggregated into 1-minute and 15-minute min/avg/max buckets.
//!
//! Aggregates are computed at query time from raw samples here; maintained
//! rollups on ingest arrive with the store-and-forward work (issue 3).

pub mod handlers;

pub use handlers::{
    Bucket, DeviceInfo, PointInfo, Resolution, SampleOut, SamplesPage, get_samples, list_devices,
    list_points,
};

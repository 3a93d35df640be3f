//! End-to-end and interoperability tests (`tests/tests/`), the independent
//! wire-format decoder (`interop/`), and the benchmark programs
//! (`src/bin/`).
//!
//! # Layout
//!
//! - [`support`]: helpers the suites share (waiting, free ports, the interop
//!   Python venv, [`support::CloudReader`] for the cloud's token-protected
//!   reads).
//! - [`procstat`]: CPU seconds, resident memory and busy cores from /proc,
//!   for the benchmark programs.
//! - `tests/`: the suites; `interop/`: the independent peers (Python);
//!   `src/bin/dcmms-bench.rs`: buffer and ingest benchmark;
//!   `src/bin/dcmms-bench-drivers.rs`: driver benchmark;
//!   `src/bin/dcmms-bench-crud.rs`: CMMS API under CRUD load;
//!   `src/bin/dcmms-bench-anomaly.rs`: anomaly scoring latency and CPU;
//!   `src/bin/dcmms-eval-anomaly.rs`: recall, time to detect and false
//!   alarms of the anomaly models on held-out simulator seeds.

pub mod procstat;
pub mod support;

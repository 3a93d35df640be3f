//! End-to-end and interoperability tests (`tests/tests/`), the independent
//! wire-format decoder (`interop/`), and the `dcmms-bench` program
//! (`src/bin/dcmms-bench.rs`).
//!
//! # Layout
//!
//! - [`support`]: helpers the suites share (waiting, free ports, the interop
//!   Python venv).
//! - `tests/`: the suites; `interop/`: the independent peers (Python);
//!   `src/bin/dcmms-bench.rs`: the benchmark program;
//!   `src/bin/dcmms-bench-drivers.rs`: the drivers' throughput benchmark;
//!   `src/bin/dcmms-bench-anomaly.rs`: anomaly scoring latency and CPU;
//!   `src/bin/dcmms-eval-anomaly.rs`: recall, time to detect and false
//!   alarms of the anomaly models on held-out simulator seeds.

pub mod support;

//! End-to-end and interoperability tests (`tests/tests/`), the independent
//! wire-format decoder (`interop/`), and the `dcmms-bench` program
//! (`src/bin/dcmms-bench.rs`).
//!
//! # Layout
//!
//! - [`support`]: helpers the suites share (waiting, free ports, the interop
//!   Python venv).
//! - `tests/`: the suites; `interop/`: the independent peers (Python);
//!   `src/bin/dcmms-bench.rs`: the benchmark program.

pub mod support;

//! End-to-end and interoperability tests (`tests/tests/`), the independent
//! wire-format decoder (`interop/`), and the `dcmms-bench` program
//! (`src/bin/dcmms-bench.rs`).
//!
//! # Layout
//!
//! This library is empty; everything here is a test or a benchmark binary.

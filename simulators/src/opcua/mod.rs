//! A wind turbine served over OPC UA.
//!
//! - [`turbine`]: the pure, seeded model (gusty wind, power curve with
//!   cut-in 3 m/s, rated 12 m/s and cut-out 25 m/s, rotor, pitch,
//!   temperatures, status) and its injectable faults ([`WindFault`],
//!   `--fault gearbox_overheat@600`). Always built.
//! - `server` (feature `opcua`): the async-opcua server exposing the model
//!   as `ns=<n>;s=Turbine1.<Variable>` below a `Turbine1` folder in
//!   Objects, with stop/restart on the same port for fault injection.
//! - `cli` (feature `opcua`): `dcmms-sim opcua`; with link-fault flags
//!   (`--delay-ms`, `--drop-every-s`, …) it serves through
//!   [`crate::proxy`].
//!
//! Every variable carries the model's value for its source timestamp, so
//! a test can recompute what any sample should be:
//! `TurbineModel::observe(ts).field(name)`.

#[cfg(feature = "opcua")]
pub mod cli;
#[cfg(feature = "opcua")]
pub mod server;
pub mod turbine;

#[cfg(feature = "opcua")]
pub use server::{NAMESPACE_URI, RunningTurbine, TurbineServerConfig, variable_node_id};
pub use turbine::{
    TurbineModel, TurbineReading, TurbineStatus, VARIABLES, WindFault, WindFaultKind,
};

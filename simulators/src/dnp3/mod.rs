//! A 33 kV substation revenue meter and recloser served as a DNP3
//! outstation.
//!
//! - [`meter`]: the pure, seeded model (plant export from the solar site
//!   model less auxiliary load, per-phase voltages and currents, P, Q,
//!   frequency, power factor), the energy registers and switchgear state,
//!   and the published point map ([`meter::POINTS`]). Always built.
//! - `outstation` (feature `dnp3`): the outstation on the Step Function
//!   I/O `dnp3` crate (licence: non-commercial, non-production use only;
//!   see docs/licensing.md): analogs in class 2 with deadbands, binaries in
//!   class 1, counters in class 3, events with time, unsolicited
//!   reporting, NEED_TIME until a master writes the time; faults through
//!   the outstation's API (drop the connection, go away and come back).
//! - `cli` (feature `dnp3`): `dcmms-sim dnp3`.

#[cfg(feature = "dnp3")]
pub mod cli;
pub mod meter;
#[cfg(feature = "dnp3")]
pub mod outstation;

pub use meter::{MeterModel, MeterPoint, MeterReading, MeterState, POINTS, PointKind};
#[cfg(feature = "dnp3")]
pub use outstation::{MeterServerConfig, RunningMeter};

//! dCMMS field-device simulators.
//!
//! # Layout
//!
//! - [`solar`]: deterministic physical model of a PV site (sun position,
//!   clear-sky irradiance, seeded clouds, temperatures) and of its inverters
//!   (DC array, efficiency curve, clipping, grid-side quantities).
//! - [`sunspec`]: the SunSpec register image of one inverter (marker,
//!   model 1 common, model 103 three-phase inverter, end model), the public
//!   point table ([`sunspec::inverter_points`]) for edge configuration
//!   generators and tests, and an independent decoder
//!   ([`sunspec::expected_value`]).
//! - [`device`]: one simulated inverter as a stateful device: the solar model
//!   plus the lifetime energy counter, producing register images for a time.
//! - [`modbus`]: the simulation clock ([`modbus::SimClock`]) and a tokio-modbus
//!   TCP server serving a fleet of simulated inverters, one port each
//!   ([`modbus::start_fleet`]), with run-time fault injection
//!   ([`modbus::fault`]: slow, drop, exception, garbage, gone) and one
//!   inverter on a serial line ([`modbus::rtu`], Modbus RTU); the same
//!   server serves BESS racks ([`modbus::DeviceKind::BessRack`], the BMS
//!   map of [`bess::bms`]).
//! - [`mqtt`]: a weather station publishing JSON over MQTT
//!   ([`mqtt::start_station`], [`mqtt::WeatherModel`]), with fault injection
//!   (garbage payloads, pauses, broker disconnects).
//! - [`opcua`]: a wind turbine (seeded gusty wind, power curve, rotor,
//!   pitch, temperatures, status, [`opcua::TurbineModel`]) and its fault
//!   physics (gearbox overheating, pitch misalignment, generator bearing
//!   creep: [`opcua::turbine::WindFault`]); served over
//!   OPC UA with stop/restart fault injection (and the link faults of
//!   [`proxy`]) behind feature `opcua`.
//! - [`bess`]: a BESS rack (LFP, 16 × 15 cells, 280 Ah): seeded daily
//!   dispatch, coulomb-counted SoC, cell voltages and temperatures
//!   ([`bess::RackModel`]) and its faults (cell imbalance, hot rack:
//!   [`bess::faults::BessFault`]).
//! - [`faults`]: labelled faults of the device physics (kind, start, end;
//!   parsing `KIND@START_S[-END_S]`, dataset labels), one mechanism for the
//!   turbine's and the PV inverter's fault kinds.
//! - [`proxy`]: a fault-injecting TCP proxy ([`proxy::FaultProxy`]) that
//!   puts slow replies, cut connections, garbage bytes and a device that
//!   goes away in front of any TCP simulator, switchable at run time;
//!   `dcmms-sim proxy`, and `dcmms-sim opcua --delay-ms …`.
//! - [`dnp3`]: a 33 kV substation revenue meter and recloser (seeded
//!   model and point map, [`dnp3::MeterModel`]); served as a DNP3
//!   outstation with connection-drop and gone/come-back faults behind
//!   feature `dnp3` (licence-restricted: docs/licensing.md).
//! - [`dataset`]: offline CSV datasets from the physical models (raw point
//!   values at a fixed step with a fault label column), for training and
//!   evaluating anomaly models; `dcmms-sim dataset`.
//! - [`demo`]: the edge configuration for a simulated fleet, used by
//!   `dcmms-demo` and the end-to-end tests.
//! - [`error`]: the library's error type ([`SimError`]).
//!
//! The `dcmms-sim` binary (`src/bin/dcmms-sim.rs`) is a CLI around
//! [`modbus::start_fleet`]; `dcmms-demo` (`src/bin/dcmms-demo.rs`) runs the
//! whole site in a box: cloud, simulated inverters and an edge agent.

pub mod bess;
pub mod dataset;
pub mod demo;
pub mod device;
pub mod dnp3;
pub mod error;
pub mod faults;
pub mod modbus;
pub mod mqtt;
pub mod opcua;
pub mod proxy;
pub mod solar;
pub mod sunspec;

pub use error::SimError;

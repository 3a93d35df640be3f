//! Work orders.
//!
//! - [`lifecycle`]: the status machine with its role checks
//!   (docs/specs/work-order-lifecycle.md), pure and exhaustively tested.
//! - [`store`]: work orders in the database (create, edit with version,
//!   transitions with history and audit, lists).
//! - [`handlers`]: the `/api/v1/work-orders…` endpoints.

pub mod handlers;
pub mod lifecycle;
pub mod store;

pub use lifecycle::{Action, Actor, Reason, Status, TransitionError, transition};

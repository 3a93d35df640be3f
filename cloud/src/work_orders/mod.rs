//! Work orders.
//!
//! - [`lifecycle`]: the status machine with its role checks
//!   (docs/specs/work-order-lifecycle.md), pure and exhaustively tested.
//! - [`store`]: work orders in the database (create, edit with version,
//!   transitions with history and audit, lists).
//! - [`handlers`]: the `/api/v1/work-orders…` endpoints.
//! - [`sla`]: the SLA per priority and the breach rule.
//! - [`tasks`]: checklists, recorded results, follow-up work orders.
//! - [`comments`]: comments on a work order.
//! - [`crews`]: crews and crew assignment (a crew member counts as assignee).
//! - [`detail`]: the endpoints of tasks, comments and crews.

pub mod comments;
pub mod crews;
pub mod detail;
pub mod handlers;
pub mod lifecycle;
pub mod sla;
pub mod store;
pub mod tasks;

pub use lifecycle::{Action, Actor, Reason, Status, TransitionError, transition};

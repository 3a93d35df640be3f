//! Work orders.
//!
//! - [`lifecycle`]: the status machine with its role checks
//!   (docs/specs/work-order-lifecycle.md), pure and exhaustively tested; the
//!   store and API that use it come with the rest of issue 5.

pub mod lifecycle;

pub use lifecycle::{Action, Actor, Reason, Status, TransitionError, transition};

//! Who may do what: user roles and the permission matrix.
//!
//! - [`rbac`]: [`Role`], [`Permission`] and the one matrix between them
//!   (docs/specs/rbac.md). Every handler and the work-order lifecycle ask
//!   [`rbac::allows`]; nothing else decides access.

pub mod rbac;

pub use rbac::{Permission, Role, allows};

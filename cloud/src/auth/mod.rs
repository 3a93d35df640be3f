//! Who may do what: user roles and the permission matrix.
//!
//! - [`rbac`]: [`Role`], [`Permission`] and the one matrix between them
//!   (docs/specs/rbac.md). Every handler and the work-order lifecycle ask
//!   [`rbac::allows`]; nothing else decides access.
//! - [`users`]: users (argon2id), login sessions and API tokens, and
//!   [`users::authenticate`] from a bearer token to a [`Principal`].
//! - [`limiter`]: login rate limiting per username.
//! - [`extract`]: the axum extractor that turns `Authorization: Bearer …`
//!   into a [`Principal`] (401 otherwise).
//! - [`handlers`]: login, logout, me, users, API tokens.

pub mod extract;
pub mod handlers;
pub mod limiter;
pub mod rbac;
pub mod users;

pub use rbac::{Permission, Role, allows};
pub use users::Principal;

//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds
//! the files of `migrations/` but cannot tell cargo about new ones.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
